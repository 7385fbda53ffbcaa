"""pve.nn.functional: the functional form of every layer (torch's names and arguments).

Inputs may be pve Tensors or numpy arrays; results are pve Tensors.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine.backends import conv as _conv_backend
from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import RuntimeValueError
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["linear", "flatten", "conv2d", "conv2d_algorithm"]  # extended below with the layer functionals


def _float_input(x: Any, op: str) -> Tensor:
    t = as_tensor(x)
    if t.dtype != np.float32:
        raise TypeError(f"{op}: expected a float32 input, got {t.dtype}")
    return t


class _Linear(Function):
    """y = x @ W^T + b through one GEMM with the bias in its epilogue."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        in_features = weight.shape[1]
        rows = int(np.prod(x.shape[:-1], dtype=np.int64))  # (-1 is ambiguous for size 0)
        x2 = x.reshape(rows, in_features)
        ctx.x2, ctx.weight, ctx.x_shape, ctx.has_bias = x2, weight, x.shape, bias is not None
        y = _C.gemm(x2, weight, trans_b=True, bias=bias, bias_axis="col")
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, g):
        g2 = np.asarray(g.reshape(ctx.x2.shape[0], ctx.weight.shape[0]), order="C")
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _C.gemm(g2, ctx.weight).reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            gw = _C.gemm(g2, ctx.x2, trans_a=True)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(axis=0, dtype=np.float32)
        return gx, gw, gb


def linear(input: Any, weight: Any, bias: Optional[Any] = None) -> Tensor:
    """``input @ weight.T + bias``; input (*, in_features), weight (out, in), bias (out,)."""
    x = _float_input(input, "linear")
    w = _float_input(weight, "linear")
    if w.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {w.shape}")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise RuntimeValueError(  # (torch: "mat1 and mat2 shapes cannot be multiplied")
            f"linear: input's last dimension must equal in_features={w.shape[1]}, "
            f"got input shape {x.shape} for weight shape {w.shape}"
        )
    b = None
    if bias is not None:
        b = _float_input(bias, "linear")
        if b.shape != (w.shape[0],):
            raise RuntimeValueError(
                f"linear: bias must have shape ({w.shape[0]},) (out_features), got {b.shape}"
            )
    return _Linear.apply(x, w, b)


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return as_tensor(input).flatten(start_dim, end_dim)


# ------------------------------------------------------------------ conv2d
_MAX_OUTPUT_BYTES = 1 << 36  # refuse results beyond 64 GiB instead of overcommitting


def _int_tuple(value: Any, n: int, name: str, layer: str) -> Tuple[int, ...]:
    """An int, or a sequence of 1 or ``n`` ints, as an ``n``-tuple (torch's _single/_pair
    for convolution arguments)."""
    # Fast path (every call of a layer passes its stored tuples): plain ints.
    if type(value) is int:
        return (value,) * n
    if type(value) is tuple and len(value) == n and all(type(v) is int for v in value):
        return value
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(items) == 1:
        items = items * n
    if len(items) != n:  # (torch: RuntimeError; a wrong type is a TypeError)
        raise RuntimeValueError(f"{layer}: expected {name} to be a single integer value or a "
                                f"list of {n} values to match the convolution dimensions, got "
                                f"{value!r}")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items):
        raise TypeError(f"{layer}: {name} must be an int or a {'pair' if n == 2 else 'list'} of "
                        f"ints, got {value!r}")
    return tuple(int(v) for v in items)


def _int_pair(value: Any, name: str, layer: str) -> Tuple[int, int]:
    return _int_tuple(value, 2, name, layer)  # type: ignore[return-value]


def _conv_padding(padding: Any, kernel: Tuple[int, ...], stride: Tuple[int, ...],
                  dilation: Tuple[int, ...], layer: str) -> Tuple[int, ...]:
    """(before, after) per spatial dim, flattened ((top, bottom, left, right) in 2-D), for
    an int, a tuple, 'valid' or 'same' (torch's rule: total d*(k-1), the odd extra on the
    bottom/right)."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * (2 * n)
        if padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeValueError(f"{layer}: padding='same' is not supported for strided "
                                 f"convolutions (stride={stride})")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            return tuple(pads)
        raise RuntimeValueError(f"{layer}: Invalid padding string {padding!r}, should be one of "
                         f"{{'valid', 'same'}}")
    values = _int_tuple(padding, n, "padding", layer)
    if min(values) < 0:
        raise RuntimeValueError(f"{layer}: padding must be non-negative, got {padding!r}")
    return tuple(p for p in values for _ in range(2))


def _conv2d_padding(padding: Any, kernel: Tuple[int, int], stride: Tuple[int, int],
                    dilation: Tuple[int, int], layer: str) -> Tuple[int, int, int, int]:
    """(top, bottom, left, right): _conv_padding in 2-D."""
    return _conv_padding(padding, kernel, stride, dilation, layer)  # type: ignore[return-value]


class _Conv2dGeometry(NamedTuple):
    stride: Tuple[int, int]
    pads: Tuple[int, int, int, int]  # top, bottom, left, right
    dilation: Tuple[int, int]
    groups: int
    out_size: Tuple[int, int]

    @property
    def top_left(self) -> Tuple[int, int]:
        return (self.pads[0], self.pads[2])


def _conv_shapes_checked(x_shape: Tuple[int, ...], w_shape: Tuple[int, ...], weight_dims: str,
                         layer: str, shown: Optional[Tuple[Tuple[int, ...], ...]]) -> str:
    """The "input shape ..., weight shape ..." text errors end with (the shapes in
    ``shown``, a 1-D convolution's, when given), after the 4-D rank checks."""
    shown_x, shown_w = shown if shown is not None else (x_shape, w_shape)
    shapes = f"input shape {tuple(shown_x)}, weight shape {tuple(shown_w)}"
    if len(w_shape) != 4:
        raise RuntimeValueError(f"{layer}: weight must be 4-D ({weight_dims}, kH, kW), got "
                                f"{shapes}")
    if len(x_shape) != 4:
        raise RuntimeValueError(f"{layer}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, "
                                f"got {shapes}")
    return shapes


def _conv_groups(groups: Any, layer: str, shapes: str) -> int:
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise RuntimeValueError(f"{layer}: groups must be a positive int, got {groups!r} "
                                f"({shapes})")
    return int(groups)


def _check_positive_steps(stride: Tuple[int, int], dilation: Tuple[int, int], layer: str,
                          shapes: str) -> None:
    if min(stride) <= 0:
        raise RuntimeValueError(f"{layer}: stride must be positive, got {stride} ({shapes})")
    if min(dilation) <= 0:
        raise RuntimeValueError(f"{layer}: dilation must be positive, got {dilation} ({shapes})")


def _conv2d_geometry(x_shape: Tuple[int, ...], w_shape: Tuple[int, ...], stride: Any,
                     padding: Any, dilation: Any, groups: Any, layer: str,
                     shown: Optional[Tuple[Tuple[int, ...], Tuple[int, ...]]] = None
                     ) -> _Conv2dGeometry:
    """Checks a conv2d configuration the way torch does (a RuntimeError there, so a
    RuntimeValueError here); errors name the layer and both shapes, or the (input, weight)
    shapes in ``shown`` (a 1-D convolution's, seen through its 2-D view)."""
    shapes = _conv_shapes_checked(x_shape, w_shape, "out_channels, in_channels/groups", layer,
                                  shown)
    groups = _conv_groups(groups, layer, shapes)
    stride = _int_pair(stride, "stride", layer)
    dilation = _int_pair(dilation, "dilation", layer)
    _check_positive_steps(stride, dilation, layer, shapes)
    n, c, h, w = x_shape
    k, cg, kh, kw = w_shape
    if k % groups != 0:
        raise RuntimeValueError(f"{layer}: out_channels ({k}) must be divisible by groups "
                                f"({groups}); {shapes}")
    if cg * groups != c:
        raise RuntimeValueError(f"{layer}: expected input with {cg * groups} channels "
                                f"(weight's {cg} x groups={groups}), got {c} channels; {shapes}")
    if min(kh, kw) < 1:
        raise RuntimeValueError(f"{layer}: kernel size must be positive; {shapes}")
    pads = _conv2d_padding(padding, (kh, kw), stride, dilation, layer)
    padded = (h + pads[0] + pads[1], w + pads[2] + pads[3])
    extent = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    if extent[0] > padded[0] or extent[1] > padded[1]:
        raise RuntimeValueError(f"{layer}: calculated padded input size per channel: "
                                f"({padded[0]} x {padded[1]}); kernel size (dilated): "
                                f"({extent[0]} x {extent[1]}); kernel size can't be greater "
                                f"than the actual input size ({shapes})")
    out = ((padded[0] - extent[0]) // stride[0] + 1, (padded[1] - extent[1]) // stride[1] + 1)
    if 4 * n * k * out[0] * out[1] > _MAX_OUTPUT_BYTES:
        raise RuntimeValueError(f"{layer}: the output ({n}, {k}, {out[0]}, {out[1]}) would need "
                                f"more than {_MAX_OUTPUT_BYTES >> 30} GiB; {shapes}")
    return _Conv2dGeometry(stride, pads, dilation, groups, out)


def _algorithm(pass_: str, x_shape, w_shape, geo: _Conv2dGeometry,
               weights_packed: bool = False) -> str:
    name = _conv_backend.choose_algorithm(pass_, x_shape, w_shape, geo.stride, geo.pads,
                                          geo.dilation, geo.groups, geo.out_size, weights_packed)
    _conv_backend._report(pass_, x_shape, w_shape, name)
    return name


class _Conv2d(Function):
    """y = act(conv2d(x, w) + b), act = ReLU clamped to [0, relu_max] (ReLU6: 6) when
    relu; backward: data and weight gradients by their own kernels."""

    @staticmethod
    def forward(ctx, x, weight, bias, geometry=None, relu=False, relu_max=math.inf):
        geo = geometry
        algorithm = _algorithm("forward", x.shape, weight.shape, geo)
        y = _C.conv2d_forward(x, weight, bias, geo.stride, geo.top_left, geo.dilation, geo.groups,
                              geo.out_size, algorithm, relu, None, relu_max)
        if any(ctx.needs_input_grad):
            ctx.x, ctx.weight, ctx.geo, ctx.has_bias = x, weight, geo, bias is not None
            ctx.y = y if relu else None
            ctx.relu_max = relu_max
        return y

    @staticmethod
    def backward(ctx, g):
        geo = ctx.geo
        x, weight = ctx.x, ctx.weight
        g = np.ascontiguousarray(g, dtype=np.float32)
        if ctx.y is not None:  # fused ReLU(6): gradients pass where the output was not clamped
            # (NaN: ReLU passes its gradient, ReLU6 drops it, as torch's kernels)
            passes = ~(ctx.y <= 0)
            if ctx.relu_max != math.inf:
                passes &= ctx.y < ctx.relu_max
            g = g * passes
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            algorithm = _algorithm("backward_data", x.shape, weight.shape, geo)
            gx = _C.conv2d_backward_data(g, weight, list(x.shape), geo.stride, geo.top_left,
                                         geo.dilation, geo.groups, algorithm)
        want_bias = ctx.has_bias and ctx.needs_input_grad[2]
        if ctx.needs_input_grad[1]:
            algorithm = _algorithm("backward_weight", x.shape, weight.shape, geo)
            gw, gb = _C.conv2d_backward_weight(x, g, list(weight.shape), geo.stride,
                                               geo.top_left, geo.dilation, geo.groups, algorithm,
                                               want_bias)
        elif want_bias:
            gb = g.sum(axis=(0, 2, 3), dtype=np.float64).astype(np.float32)
        return gx, gw, gb


def _conv2d(input: Any, weight: Any, bias: Optional[Any], stride: Any, padding: Any,
            dilation: Any, groups: Any, *, relu: bool = False, layer: str = "conv2d",
            relu_max: float = math.inf,
            shown: Optional[Tuple[Tuple[int, ...], Tuple[int, ...]]] = None) -> Tensor:
    """conv2d with the fused epilogue: ``clamp(conv(x, w) + bias, 0, relu_max)`` when
    ``relu`` (ReLU: relu_max = inf; ReLU6: relu_max = 6). ``shown``: the shapes errors
    name (see _conv2d_geometry).

    Folded BatchNorm enters here as ``weight * scale[:, None, None, None]`` and
    ``bias = (bias - mean) * scale + beta`` (see nn.conv.fuse_conv_bn_eval). The
    eval-mode Conv2d bypasses this for its cached inference plan (nn.conv)."""
    x = _float_input(input, layer)
    w = _float_input(weight, layer)
    b = None
    if bias is not None:
        b = _float_input(bias, layer)
    unbatched = x.ndim == 3
    if unbatched:
        x = x.reshape((1,) + tuple(x.shape))
    geo = _conv2d_geometry(tuple(x.shape), tuple(w.shape), stride, padding, dilation, groups,
                           layer, shown)
    if b is not None and tuple(b.shape) != (w.shape[0],):
        shown_x, shown_w = shown if shown is not None else (x.shape, w.shape)
        raise RuntimeValueError(f"{layer}: bias must have shape ({w.shape[0]},), got "
                                f"{tuple(b.shape)}; input shape {tuple(shown_x)}, weight shape "
                                f"{tuple(shown_w)}")
    y = _Conv2d.apply(x, w, b, geometry=geo, relu=relu, relu_max=relu_max)
    return y.reshape(tuple(y.shape)[1:]) if unbatched else y


def conv2d(input: Any, weight: Any, bias: Optional[Any] = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D convolution with torch's semantics.

    input (N, C, H, W) or (C, H, W); weight (K, C/groups, kH, kW); bias (K,) or None;
    stride, dilation: int or pair (default 1); padding: int, pair, 'valid' or 'same'
    (default 0; 'same' needs stride 1 and pads the odd extra on the bottom/right).
    Returns (N, K, OH, OW) with OH = (H + 2p - d(kH-1) - 1) // s + 1. The algorithm is
    chosen by pve.backends.conv (see conv2d_algorithm)."""
    return _conv2d(input, weight, bias, stride, padding, dilation, groups)


def conv2d_algorithm(input_shape: Sequence[int], weight_shape: Sequence[int], stride: Any = 1,
                     padding: Any = 0, dilation: Any = 1, groups: int = 1,
                     pass_: str = "forward", weights_packed: bool = False) -> str:
    """The kernel family that runs ``pass_`` (forward, backward_data, backward_weight)
    for this configuration: the rule's (or the forced) choice, after a family that
    cannot take the shape has fallen back to im2col. ``weights_packed``: as for an
    eval-mode Conv2d under no_grad, whose Winograd or phase weights are cached.
    The shapes may also be given as the tensors or arrays themselves."""
    x_shape = tuple(getattr(input_shape, "shape", input_shape))
    weight_shape = tuple(getattr(weight_shape, "shape", weight_shape))
    if len(x_shape) == 3:
        x_shape = (1,) + x_shape
    geo = _conv2d_geometry(x_shape, weight_shape, stride, padding, dilation, groups, "conv2d")
    if pass_ not in _conv_backend.PASSES:
        raise ValueError(f"conv2d_algorithm: pass_ must be one of {_conv_backend.PASSES}")
    wanted = _conv_backend.choose_algorithm(pass_, x_shape, weight_shape, geo.stride,
                                            geo.pads, geo.dilation, geo.groups, geo.out_size,
                                            weights_packed)
    family, _ = _C.conv2d_plan(pass_, wanted, list(x_shape), list(weight_shape), geo.stride,
                               geo.top_left, geo.dilation, geo.groups, geo.out_size)
    return family


# ------------------------------------------------------------------ conv1d
# 1-D convolutions run on the 2-D kernels: (N, C, L) is seen as (N, C, 1, L) and a
# (K, C/groups, k) weight as (K, C/groups, 1, k). Both are reshaped views, so autograd
# carries the gradients back to the 1-D tensors.

def _view_1d_as_2d(x: Tensor, w: Tensor, op: str, layer: str) -> Tuple[Tensor, Tensor]:
    """(input, weight) of a 1-D convolution (plain or transposed) as their 2-D views, after
    torch's rank checks."""
    if x.ndim not in (2, 3):
        raise RuntimeValueError(f"{layer}: Expected 2D (unbatched) or 3D (batched) input to "
                                f"{op}, but got input of size: {list(x.shape)}")
    if w.ndim != 3:
        raise RuntimeValueError(f"{layer}: weight must be 3-D (channels, channels/groups, "
                                f"kernel), got shape {tuple(w.shape)}; input shape "
                                f"{tuple(x.shape)}")
    return (x.reshape(tuple(x.shape[:-1]) + (1, x.shape[-1])),
            w.reshape(tuple(w.shape[:-1]) + (1, w.shape[-1])))


def _squeeze_2d_view(y: Tensor) -> Tensor:
    """A 2-D result (..., 1, L) as the 1-D (..., L)."""
    return y.reshape(tuple(y.shape[:-2]) + (y.shape[-1],))


def _single_positive(value: Any, name: str, layer: str) -> int:
    (v,) = _int_tuple(value, 1, name, layer)
    if v <= 0:  # (torch: "non-positive stride is not supported")
        raise RuntimeValueError(f"{layer}: non-positive {name} is not supported, got {value!r}")
    return v


def _conv1d(input: Any, weight: Any, bias: Optional[Any], stride: Any, padding: Any,
            dilation: Any, groups: Any, layer: str) -> Tensor:
    x = _float_input(input, layer)
    w = _float_input(weight, layer)
    x2, w2 = _view_1d_as_2d(x, w, "conv1d", layer)
    s = _single_positive(stride, "stride", layer)
    d = _single_positive(dilation, "dilation", layer)
    # checked with the 1-D values, so that errors show them; 'same' stays a string for the
    # 2-D geometry (which puts its odd extra on the right)
    left, _ = _conv_padding(padding, (w.shape[-1],), (s,), (d,), layer)
    y = _conv2d(x2, w2, bias, (1, s), padding if isinstance(padding, str) else (0, left),
                (1, d), groups, layer=layer, shown=(tuple(x.shape), tuple(w.shape)))
    return _squeeze_2d_view(y)


def conv1d(input: Any, weight: Any, bias: Optional[Any] = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """1-D convolution with torch's semantics, on the 2-D kernels.

    input (N, C, L) or (C, L); weight (K, C/groups, k); bias (K,) or None; stride,
    dilation: int or 1-tuple (default 1); padding: int, 1-tuple, 'valid' or 'same'
    (default 0; 'same' needs stride 1 and pads the odd extra on the right). Returns
    (N, K, OL) with OL = (L + 2p - d(k-1) - 1) // s + 1."""
    return _conv1d(input, weight, bias, stride, padding, dilation, groups, "conv1d")


# Layer functionals (pooling, activations, normalisation, losses, shape ops) live
# in nn/_f_*.py and are re-exported here under torch's names.
from pyvision_engine.nn._f_activation import (  # noqa: E402
    gelu, hardsigmoid, hardswish, leaky_relu, leaky_relu_, log_softmax, prelu, relu, relu6,
    relu_, sigmoid, silu, softmax, tanh,
)
from pyvision_engine.nn._f_loss import (  # noqa: E402
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, huber_loss, kl_div,
    l1_loss, mse_loss, nll_loss, smooth_l1_loss,
)
from pyvision_engine.nn._f_norm import batch_norm, group_norm, layer_norm  # noqa: E402
from pyvision_engine.nn._f_pooling import (  # noqa: E402
    adaptive_avg_pool2d, adaptive_max_pool2d, adaptive_max_pool2d_with_indices, avg_pool2d,
    max_pool2d, max_pool2d_with_indices,
)
from pyvision_engine.nn._f_shape import add, cat, dropout, interpolate, pad, upsample  # noqa: E402
from pyvision_engine.nn.conv_transpose import conv_transpose2d  # noqa: E402

__all__ += [
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "prelu", "sigmoid", "tanh", "gelu",
    "silu", "hardswish", "hardsigmoid", "softmax", "log_softmax",
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div",
    "batch_norm", "group_norm", "layer_norm",
    "max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_avg_pool2d",
    "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices",
    "dropout", "cat", "add", "pad", "interpolate", "upsample", "conv_transpose2d",
]
from pyvision_engine.nn._f_activation import (  # noqa: E402
    celu, celu_, elu, elu_, hardtanh, hardtanh_, logsigmoid, mish, selu, selu_, softmin,
    softplus, softsign, tanhshrink, threshold, threshold_,
)

__all__ += ["threshold", "threshold_", "hardtanh", "hardtanh_", "elu", "elu_", "selu", "selu_",
            "celu", "celu_", "softplus", "mish", "softsign", "tanhshrink", "logsigmoid", "softmin"]
from pyvision_engine.nn._f_shape import (  # noqa: E402
    alpha_dropout, channel_shuffle, dropout2d, pixel_shuffle, pixel_unshuffle, upsample_bilinear,
    upsample_nearest,
)

__all__ += ["dropout2d", "alpha_dropout", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle",
            "upsample_nearest", "upsample_bilinear"]
from pyvision_engine.nn._f_norm import instance_norm, local_response_norm  # noqa: E402

__all__ += ["instance_norm", "local_response_norm"]
from pyvision_engine.nn._f_pooling import (  # noqa: E402
    adaptive_avg_pool1d, adaptive_max_pool1d, adaptive_max_pool1d_with_indices, avg_pool1d,
    max_pool1d, max_pool1d_with_indices,
)
from pyvision_engine.nn._f_shape import dropout1d  # noqa: E402
from pyvision_engine.nn.conv_transpose import conv_transpose1d  # noqa: E402

__all__ += ["conv1d", "conv_transpose1d", "max_pool1d", "max_pool1d_with_indices", "avg_pool1d",
            "adaptive_avg_pool1d", "adaptive_max_pool1d", "adaptive_max_pool1d_with_indices",
            "dropout1d"]
from pyvision_engine.nn._f_activation import glu, hardshrink, rrelu, rrelu_, softshrink  # noqa: E402
from pyvision_engine.nn._f_distance import (  # noqa: E402
    cosine_similarity, normalize, pairwise_distance,
)
from pyvision_engine.nn._f_fold import fold, unfold  # noqa: E402
from pyvision_engine.nn._f_pooling import lp_pool2d, max_unpool2d  # noqa: E402
from pyvision_engine.nn._f_shape import one_hot  # noqa: E402

__all__ += ["hardshrink", "softshrink", "rrelu", "rrelu_", "glu", "normalize", "one_hot",
            "cosine_similarity", "pairwise_distance", "unfold", "fold", "max_unpool2d",
            "lp_pool2d"]
from pyvision_engine.nn._f_loss import (  # noqa: E402
    cosine_embedding_loss, gaussian_nll_loss, hinge_embedding_loss, margin_ranking_loss,
    multi_margin_loss, multilabel_margin_loss, multilabel_soft_margin_loss, poisson_nll_loss,
    soft_margin_loss, triplet_margin_loss, triplet_margin_with_distance_loss,
)

__all__ += ["multilabel_soft_margin_loss", "multilabel_margin_loss", "multi_margin_loss",
            "soft_margin_loss", "margin_ranking_loss", "hinge_embedding_loss",
            "cosine_embedding_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss",
            "poisson_nll_loss", "gaussian_nll_loss"]
from pyvision_engine.nn._f_grid import affine_grid, grid_sample  # noqa: E402

__all__ += ["affine_grid", "grid_sample"]
from pyvision_engine.nn._f_norm import rms_norm  # noqa: E402
from pyvision_engine.nn.linear import bilinear  # noqa: E402

__all__ += ["rms_norm", "bilinear"]
from pyvision_engine.nn._f_embedding import embedding  # noqa: E402

__all__ += ["embedding"]
from pyvision_engine.nn._f_pooling import lp_pool1d, max_unpool1d  # noqa: E402

__all__ += ["lp_pool1d", "max_unpool1d"]
from pyvision_engine.nn._f_activation import gumbel_softmax  # noqa: E402
from pyvision_engine.nn._f_norm import pdist  # noqa: E402
from pyvision_engine.nn.dropout import feature_alpha_dropout  # noqa: E402

__all__ += ["pdist", "gumbel_softmax", "feature_alpha_dropout"]
# Sequence functions load on first use (module __getattr__), as nn's sequence layers.
_LAZY = {"scaled_dot_product_attention": "pyvision_engine.nn.attention",
         "multi_head_attention_forward": "pyvision_engine.nn.attention",
         "ctc_loss": "pyvision_engine.nn._f_ctc"}
_LAZY.update({"fractional_max_pool2d": "pyvision_engine.nn._f_fractional",
              "fractional_max_pool2d_with_indices": "pyvision_engine.nn._f_fractional",
              "embedding_bag": "pyvision_engine.nn._f_embedding_bag",
              "linear_cross_entropy": "pyvision_engine.nn.linear_cross_entropy"})
__all__ += list(_LAZY)
from pyvision_engine._lazy import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
