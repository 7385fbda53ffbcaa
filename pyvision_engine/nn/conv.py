"""Conv2d, and Conv2d + BatchNorm2d (+ ReLU) folded into one convolution for inference.

Inference fast path
-------------------
In ``eval()`` under ``no_grad``, a Conv2d checks its geometry and picks its
algorithm once per input shape and then calls the kernel directly (no autograd
node). One whose shape runs on Winograd, phase (the strided direct kernel) or
pointwise (1x1, groups 1: row panels the kernel streams in order) keeps the
transformed (packed) weights and reuses them. The pack is keyed on
the weight's identity, its buffer address, its ``Tensor._changes()`` (which
moves with every in-place Tensor op, ``load_state_dict``, ``nn.init``,
optimizers through ``Tensor._bump_version()``, and in-place changes made
through ``detach()`` / ``.data`` tensors or numpy views of the weight: while
such a view is alive every call repacks, since its writes leave no trace), the
SIMD level and the family, and is dropped by ``train()``.
So the pack is rebuilt after any of those, never returning stale results.

Per-call cost
-------------
At batch 1 the Python around each kernel call is a large share of a layer, so
an eval-mode call that looks like the previous one (same input shape and
dtype, BatchNorm and activation, forced algorithm and SIMD level, no module
changed through the Module API: ``Module._structure_epoch``) and whose weight,
bias and BatchNorm tensors are the same arrays with the same ``_changes()`` reuses
that call's kernel arguments (``_fast``) and goes straight to the kernel; any
other call takes the checked path above and records its arguments. Thread
counts are read by the kernel itself at every call.

BatchNorm folding
-----------------
For an eval-mode BatchNorm2d, its fusion hook ``fusion_scale_shift()`` gives
per-channel (scale, shift) with bn(x) = x * scale + shift
(scale = gamma / sqrt(running_var + eps), shift = beta - running_mean * scale):

    bn(conv(x)) = conv'(x),  W' = W * scale[k],  b' = b * scale + shift

and a following ReLU runs in the convolution's epilogue (the kernels add the
bias and clamp while the output tile is still in registers). A residual block's
``act(bn(conv(x)) + identity)`` also adds the identity there (nn.fusion's
``conv_bn_add_act``): the output is written once instead of twice. ``fuse_conv_bn_eval``
makes that folded Conv2d once (torch's name and semantics: a snapshot);
``ConvBn2d`` keeps the three modules and folds on the fly in eval mode,
re-folding when any of their tensors changes.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Iterable, Optional, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine.autograd import is_grad_enabled
from pyvision_engine.backends import conv as conv_backend
from pyvision_engine.nn import functional as F
from pyvision_engine.nn import init
from pyvision_engine.nn._f_common import (AssertionValueError, RuntimeValueError,
                                          check_factory_kwargs)
from pyvision_engine.nn._f_norm import batch_norm_scale_shift
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["Conv1d", "Conv2d", "ConvBn2d", "ConvBnReLU2d", "fuse_conv_bn_eval", "fuse_conv_bn_weights",
           "fold_batch_norm"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
# Families whose forward takes weights packed once (the eval-mode cache);
# pointwise packs groups-1 layers only.
_PACKING = ("winograd", "winograd_f2", "phase", "pointwise", "stem", "winograd_s2")
_F32 = np.dtype(np.float32)


def _fold_sources(conv: "Conv2d", bn: Optional[Module]) -> Tuple[Optional[Tensor], ...]:
    """The tensors a convolution's folded or packed weights are made from: its weight and
    bias, then (with ``bn``) running mean and variance, weight and bias, straight from the
    registries (no Module.__getattr__: this runs per layer)."""
    p = conv._parameters
    weight = p.get("weight")
    if weight is None:  # weight_norm / spectral_norm: a plain attribute, recomputed per call
        weight = conv.__dict__.get("weight")
        if weight is None and "parametrizations" in conv._modules:
            # nn.utils.parametrize: a property; its eval/no_grad value is one tensor
            # refreshed in place, and the tensors it is computed from are watched too,
            # so a change of the original is seen before the value is read again.
            # (nn.fusion never folds a parametrized conv: bn is None here.)
            return ((conv.weight, p.get("bias"))
                    + conv._modules["parametrizations"]["weight"]._sources())
    if bn is None:
        return (weight, p.get("bias"))
    return (weight, p.get("bias"), bn._buffers.get("running_mean"),
            bn._buffers.get("running_var"), bn._parameters.get("weight"),
            bn._parameters.get("bias"))


def check_conv_channels(layer: str, in_channels: Any, out_channels: Any, groups: Any) -> None:
    """A convolution layer's (plain or transposed) channel counts and groups, as torch
    checks them in the constructor."""
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("groups", groups)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{layer}: {name} must be a non-negative int, got {value!r}")
    if groups <= 0:
        raise ValueError(f"{layer}: groups must be a positive integer")
    if in_channels % groups != 0:
        raise ValueError(f"{layer}: in_channels ({in_channels}) must be divisible by groups "
                         f"({groups})")
    if out_channels % groups != 0:
        raise ValueError(f"{layer}: out_channels ({out_channels}) must be divisible by groups "
                         f"({groups})")


def reset_conv_parameters(weight: Tensor, bias: Optional[Tensor], fan_in: int) -> None:
    """torch's init of a convolution (plain or transposed): kaiming_uniform_(a=sqrt(5)) on the
    weight, whose own fan_in it computes, and the bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    if fan_in == 0:
        return
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1 / math.sqrt(fan_in)
        init.uniform_(bias, -bound, bound)


def conv_arguments(layer: str, dims: int, kernel_size: Any, stride: Any, padding: Any,
                   dilation: Any) -> Tuple[Any, ...]:
    """(kernel_size, stride, padding, dilation) as ``dims``-tuples (padding may stay 'same'
    or 'valid'), checked as torch's convolution constructors check them."""
    kernel = F._int_tuple(kernel_size, dims, "kernel_size", layer)
    stride = F._int_tuple(stride, dims, "stride", layer)
    dilation = F._int_tuple(dilation, dims, "dilation", layer)
    if min(kernel) <= 0 or min(stride) <= 0 or min(dilation) <= 0:
        raise ValueError(f"{layer}: kernel_size, stride and dilation must be positive, got "
                         f"{kernel}, {stride}, {dilation}")
    if isinstance(padding, str):
        F._conv_padding(padding, kernel, stride, dilation, layer)  # (checks the string)
    else:
        padding = F._int_tuple(padding, dims, "padding", layer)
        if min(padding) < 0:
            raise ValueError(f"{layer}: padding must be non-negative, got {padding}")
    return kernel, stride, padding, dilation


def conv_extra_repr(conv: Module) -> str:
    """torch's _ConvNd.extra_repr, for plain and transposed convolutions of any rank."""
    dims = len(conv.kernel_size)
    s = (f"{conv.in_channels}, {conv.out_channels}, kernel_size={conv.kernel_size}, "
         f"stride={conv.stride}")
    if conv.padding != (0,) * dims:  # torch prints padding=valid too
        s += f", padding={conv.padding}"
    if conv.dilation != (1,) * dims:
        s += f", dilation={conv.dilation}"
    output_padding = getattr(conv, "output_padding", None)
    if output_padding is not None and output_padding != (0,) * dims:
        s += f", output_padding={output_padding}"
    if conv.groups != 1:
        s += f", groups={conv.groups}"
    if conv.bias is None:
        s += ", bias=False"
    if conv.padding_mode != "zeros":
        s += f", padding_mode={conv.padding_mode}"
    return s


class _ConvNd(Module):
    """What Conv1d and Conv2d share (torch's _ConvNd, less the transposed case): the
    checked arguments, weight (out_channels, in_channels/groups, *kernel_size), bias
    (out_channels,), torch's init, padding modes, extra_repr."""

    _dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any,
                 padding: Any, dilation: Any, groups: int, bias: bool, padding_mode: str,
                 device: Any, dtype: Any) -> None:
        super().__init__()
        layer = type(self).__name__
        check_factory_kwargs(device, dtype, layer)
        check_conv_channels(layer, in_channels, out_channels, groups)
        kernel, stride, padding, dilation = conv_arguments(layer, self._dims, kernel_size,
                                                           stride, padding, dilation)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, but got "
                             f"padding_mode='{padding_mode}'")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = kernel
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self.weight = Parameter(np.empty((out_channels, in_channels // groups) + kernel,
                                         dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype=np.float32))
        else:
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        fan_in = (self.in_channels // self.groups) * math.prod(self.kernel_size)
        reset_conv_parameters(self.weight, self.bias, fan_in)

    def _layer_name(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size})")

    def _pad_input(self, x: Tensor) -> Tensor:
        """The input padded by ``padding_mode`` (reflect / replicate / circular)."""
        dims = self._dims
        if x.ndim not in (dims + 1, dims + 2):
            raise ValueError(f"{self._layer_name()}: expected a {dims + 1}-D or {dims + 2}-D "
                             f"(batched) input, got shape {tuple(x.shape)}")
        pads = F._conv_padding(self.padding, self.kernel_size, self.stride, self.dilation,
                               self._layer_name())
        # F.pad lists the last dim first: (left, right[, top, bottom])
        last_first = [p for d in reversed(range(dims)) for p in pads[2 * d:2 * d + 2]]
        try:
            return F.pad(x, last_first, mode=self.padding_mode)
        except ValueError as e:  # the same error (torch's type), naming the layer
            raise type(e)(f"{self._layer_name()}: {e}") from None

    def extra_repr(self) -> str:
        return conv_extra_repr(self)


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L) or (C, L) input, torch.nn.Conv1d's arguments and
    semantics, on the 2-D kernels (see F.conv1d).

    weight (out_channels, in_channels/groups, k), bias (out_channels,); kernel_size,
    stride, dilation: int or 1-tuple; padding: int, 1-tuple, 'valid' or 'same';
    padding_mode: 'zeros', 'reflect', 'replicate' or 'circular'. Initialised as torch:
    kaiming_uniform_(a=sqrt(5)), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    fan_in = in_channels/groups * k."""

    _dims = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype)
        self.reset_parameters()

    def forward(self, input: Any) -> Tensor:
        x = as_tensor(input)
        padding = self.padding
        if self.padding_mode != "zeros":
            x, padding = self._pad_input(x), 0
        return F._conv1d(x, self.weight, self.bias, self.stride, padding, self.dilation,
                         self.groups, self._layer_name())


def _record_state(tensors: Iterable[Optional[Tensor]]) -> Tuple[Any, ...]:
    """Each tensor with its array and ``_changes()`` (None stays None). The state holds the
    tensors and arrays themselves, so identity checks against it stay valid."""
    return tuple(None if t is None else (t, t._data, t._changes()) for t in tensors)


def _unchanged(state: Tuple[Any, ...]) -> bool:
    """Every recorded tensor still holds the recorded array at the recorded version."""
    for recorded in state:
        if recorded is not None:
            t, data, version = recorded
            if t._data is not data or t._changes() != version:
                return False
    return True


def _same_state(tensors: Tuple[Optional[Tensor], ...], state: Tuple[Any, ...]) -> bool:
    """Each tensor is the one recorded, with the same array and ``_changes()``."""
    for t, recorded in zip(tensors, state):
        if (t is None or recorded is None) and t is not recorded:
            return False
        if t is not None and t is not recorded[0]:
            return False
    return _unchanged(state)


def _tensor_key(t: Optional[Tensor]) -> Tuple[Any, ...]:
    """What identifies a tensor's current values without reading them."""
    if t is None:
        return (None,)
    return (id(t), t._data.__array_interface__["data"][0], t._data.shape, t._changes())


class Conv2d(_ConvNd):
    """2-D convolution over NCHW input, torch.nn.Conv2d's arguments and semantics.

    weight (out_channels, in_channels/groups, kH, kW), bias (out_channels,);
    kernel_size, stride, dilation: int or pair; padding: int, pair, 'valid' or
    'same' (default 0); padding_mode: 'zeros', 'reflect', 'replicate' or 'circular'
    (the input is padded that way, then convolved unpadded, as torch). Initialised as torch:
    kaiming_uniform_(a=sqrt(5)) and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype)
        object.__setattr__(self, "_fused_relu", False)
        self._drop_pack()
        self.reset_parameters()

    # ------------------------------------------------------- inference pack
    def _drop_pack(self) -> None:
        object.__setattr__(self, "_pack", None)  # (key, packed weights) as one value
        object.__setattr__(self, "_fold", None)
        object.__setattr__(self, "_plans", {})
        object.__setattr__(self, "_blocked_pack", None)  # (key, weights, bias), nn/blocked.py
        object.__setattr__(self, "_fast", None)  # the last inference call, see _fused_forward
        object.__setattr__(self, "_fusion", None)  # nn.fusion's decision for (bn, act)

    def train(self, mode: bool = True) -> "Module":
        self._drop_pack()
        return super().train(mode)

    def _inference_plan(self, x_shape: Tuple[int, ...], weight: Tensor,
                        padding: Any) -> Tuple[Any, str, bool]:
        """(geometry, algorithm, uses a packed-weight cache (a family in _PACKING))
        for eval + no_grad, checked and chosen once per input shape, forced algorithm and
        SIMD level, then reused."""
        forced = conv_backend.forced_algorithm()
        key = (x_shape, weight.shape, self.stride, padding, self.dilation, self.groups, forced,
               _C.active_isa())  # (the rule depends on the SIMD level)
        plan = self._plans.get(key)
        if plan is None:
            geo = F._conv2d_geometry(x_shape, tuple(weight.shape), self.stride, padding,
                                     self.dilation, self.groups, self._layer_name())
            algorithm = F._algorithm("forward", x_shape, weight.shape, geo, weights_packed=True)
            packs = (algorithm in _PACKING
                     and (algorithm != "pointwise" or geo.groups == 1)) and _C.conv2d_plan(
                "forward", algorithm, list(x_shape), list(weight.shape), geo.stride,
                geo.top_left, geo.dilation, geo.groups, geo.out_size)[0] == algorithm
            if algorithm == "winograd" and not packs:
                algorithm = F._algorithm("forward", x_shape, weight.shape, geo)
            plan = (geo, algorithm, packs)
            if len(self._plans) >= 16:  # a server seeing many shapes: keep the newest
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _packed_weight(self, weight: Tensor, algorithm: str) -> np.ndarray:
        """Weights packed for a family in _PACKING once per weight version (eval +
        no_grad only)."""
        key = (_C.active_isa(), algorithm) + _tensor_key(weight)
        pack = self._pack  # one read: request threads may replace it concurrently
        # (the pack holds the weight itself: an id and address alone could be those of a
        # new tensor after the old one was freed)
        if pack is None or pack[0] != key or pack[2] is not weight:
            pack = (key, _C.conv2d_pack_weight(weight._data, algorithm=algorithm), weight)
            object.__setattr__(self, "_pack", pack)
        return pack[1]

    def _infer(self, x: Tensor, weight: Tensor, bias: Optional[Tensor], relu: bool,
               relu_max: float, padding: Any, residual: Optional[Tensor] = None) -> Tensor:
        """The inference path: a cached plan and one kernel call, no autograd node.
        ``residual`` (float32, the output's shape) is added before the activation."""
        return self._infer_args(x, weight, bias, relu, relu_max, padding, residual)[0]

    def _infer_args(self, x: Tensor, weight: Tensor, bias: Optional[Tensor], relu: bool,
                    relu_max: float, padding: Any, residual: Optional[Tensor]
                    ) -> Tuple[Tensor, Tuple[Any, ...], Tuple[int, ...]]:
        """(_infer's result, the kernel's arguments after the input, the output's shape)."""
        geo, algorithm, packs = self._inference_plan(tuple(x.shape), weight, padding)
        if bias is not None and tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(f"{self._layer_name()}: bias must have shape ({weight.shape[0]},), "
                             f"got {tuple(bias.shape)}")
        out_shape = (x.shape[0], weight.shape[0]) + tuple(geo.out_size)
        if residual is not None:
            self._check_residual(out_shape, residual)
        packed = self._packed_weight(weight, algorithm) if packs else None
        args = (weight._data, None if bias is None else bias._data, geo.stride, geo.top_left,
                geo.dilation, geo.groups, geo.out_size, algorithm, relu, packed, relu_max)
        y = _C.conv2d_forward(x._data, *args, None, None if residual is None else residual._data)
        return Tensor._wrap(y), args, out_shape

    def _check_residual(self, out_shape: Tuple[int, ...], residual: Tensor) -> None:
        if tuple(residual.shape) != out_shape:
            raise ValueError(f"{self._layer_name()}: the residual must have the output's shape "
                             f"{out_shape}, got {tuple(residual.shape)}")

    def _convolve(self, x: Tensor, weight: Tensor, bias: Optional[Tensor], relu: bool,
                  relu_max: float = math.inf, residual: Optional[Tensor] = None) -> Tensor:
        """``clamp(conv(x) + bias + residual, 0, relu_max)`` (no clamp unless ``relu``;
        ``residual`` None: none)."""
        padding = self.padding
        if self.padding_mode != "zeros":
            x, padding = self._pad_input(x), 0
        if (not self.training and not is_grad_enabled() and x.ndim == 4
                and x.dtype == np.float32 and weight.dtype == np.float32
                and (bias is None or bias.dtype == np.float32)
                and (residual is None or residual.dtype == np.float32)):
            return self._infer(x, weight, bias, relu, relu_max, padding, residual)
        if residual is None:
            return F._conv2d(x, weight, bias, self.stride, padding, self.dilation, self.groups,
                             relu=relu, layer=self._layer_name(), relu_max=relu_max)
        # (the fusion helpers only pass a residual on the fast path; this is its meaning)
        y = F._conv2d(x, weight, bias, self.stride, padding, self.dilation, self.groups,
                      layer=self._layer_name())
        if tuple(residual.shape) != tuple(y.shape):
            raise ValueError(f"{self._layer_name()}: the residual must have the output's shape "
                             f"{tuple(y.shape)}, got {tuple(residual.shape)}")
        y = y + residual
        if relu:
            y = F.relu(y) if relu_max == math.inf else y.clamp(0.0, relu_max)
        return y

    # ------------------------------------------------------ inference fusion
    def _fused_forward(self, x: Tensor, bn: Optional[Module], relu_max: Optional[float],
                       residual: Optional[Tensor] = None) -> Tensor:
        """Eval + no_grad (see nn.fusion): this convolution with an eval-mode
        BatchNorm ``bn`` folded in (None: no BatchNorm), plus ``residual`` (None:
        none; else a float32 tensor of the output's shape) and, unless
        ``relu_max`` is None, ReLU clamped to [0, relu_max], all in the epilogue.

        A call like the previous one goes straight to the kernel with that call's
        arguments (see "Per-call cost" above); the checks are in the order of the
        fields of ``_fast``: (input shape, bn, relu_max, structure epoch, forced
        algorithm, SIMD level, watched (tensor, array) pairs, sum of their
        versions (they only grow, so an equal sum means none changed), kernel
        arguments, output shape)."""
        e = self._fast
        if e is not None and not is_grad_enabled():
            data = x._data
            if (data.shape == e[0] and e[1] is bn and e[2] == relu_max
                    and e[3] == Module._structure_epoch and data.dtype == _F32
                    and e[4] == conv_backend.forced_algorithm() and e[5] == _C.active_isa()):
                versions = 0
                for t, array in e[6]:
                    if t._data is not array:
                        break
                    versions += t._changes()
                else:
                    if versions == e[7]:
                        if residual is None:
                            return Tensor._wrap(_C.conv2d_forward(data, *e[8]))
                        r = residual._data
                        if r.shape == e[9] and r.dtype == _F32:
                            return Tensor._wrap(_C.conv2d_forward(data, *e[8], None, r))
        return self._fused_forward_checked(x, bn, relu_max, residual)

    def _fused_forward_checked(self, x: Tensor, bn: Optional[Module], relu_max: Optional[float],
                               residual: Optional[Tensor]) -> Tensor:
        """_fused_forward with every check, recording the call for the next one."""
        epoch = Module._structure_epoch
        forced, isa = conv_backend.forced_algorithm(), _C.active_isa()
        watched = tuple((t, t._data) for t in _fold_sources(self, bn)
                        if t is not None)  # (before folding)
        versions = sum(t._changes() for t, _ in watched)
        weight, bias = (self.weight, self.bias) if bn is None else self._folded_with(bn)
        relu = relu_max is not None or self._fused_relu
        cap = math.inf if relu_max is None else relu_max
        if (self.padding_mode == "zeros" and not self.training and not is_grad_enabled()
                and x.ndim == 4 and x.dtype == _F32 and weight.dtype == _F32
                and (bias is None or bias.dtype == _F32)
                and (residual is None or residual.dtype == _F32)):
            y, args, out_shape = self._infer_args(x, weight, bias, relu, cap, self.padding,
                                                  residual)
            object.__setattr__(self, "_fast", (x._data.shape, bn, relu_max, epoch, forced, isa,
                                               watched, versions, args, out_shape))
            return y
        return self._convolve(x, weight, bias, relu, cap, residual)

    def _folded_with(self, bn: Module) -> Tuple[Tensor, Tensor]:
        """(weight, bias) with ``bn`` folded in, cached until any of the six tensors
        is replaced or changed in place (their ``_changes()``) or ``bn`` changes."""
        tensors = _fold_sources(self, bn)
        fold = self._fold
        if fold is not None and fold[0] is bn and fold[1] == bn.eps and _same_state(
                tensors, fold[2]):
            return fold[3], fold[4]
        w, b = fold_batch_norm(self.weight._data, None if self.bias is None else self.bias._data,
                               bn)
        fold = (bn, bn.eps, _record_state(tensors), Parameter(w, requires_grad=False),
                Parameter(b, requires_grad=False))
        object.__setattr__(self, "_fold", fold)
        return fold[3], fold[4]

    def forward(self, input: Any) -> Tensor:
        x = as_tensor(input)
        if not self.training and not is_grad_enabled():
            return self._fused_forward(x, None, None)  # (the same call, without BatchNorm)
        return self._convolve(x, self.weight, self.bias, self._fused_relu)

    def extra_repr(self) -> str:
        s = conv_extra_repr(self)
        if self._fused_relu:
            s += ", fused_relu=True"
        return s


def _bn_scale_shift(bn: Module) -> Tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale, shift), float64, with bn(x) = x * scale + shift in eval mode:
    BatchNorm2d's fusion hook when it has one, else from its torch-named attributes."""
    if hasattr(bn, "fusion_scale_shift"):
        scale, shift = bn.fusion_scale_shift()
        return np.asarray(scale, np.float64), np.asarray(shift, np.float64)
    mean = np.asarray(as_tensor(bn.running_mean)._data, dtype=np.float64)
    var = np.asarray(as_tensor(bn.running_var)._data, dtype=np.float64)
    gamma = np.ones_like(mean) if getattr(bn, "weight", None) is None else \
        np.asarray(as_tensor(bn.weight)._data, dtype=np.float64)
    beta = np.zeros_like(mean) if getattr(bn, "bias", None) is None else \
        np.asarray(as_tensor(bn.bias)._data, dtype=np.float64)
    scale = gamma / np.sqrt(var + float(bn.eps))
    return scale, beta - mean * scale


def scale_conv_weights(weight: np.ndarray, bias: Optional[np.ndarray], scale: np.ndarray,
                       shift: np.ndarray, axis: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(W * scale along ``axis``, b * scale + shift): a per-output-channel affine map
    folded into a convolution's or linear layer's (weight, bias), in float64, rounded
    once. A missing bias is zeros of scale's shape (torch's zeros_like(running_mean))."""
    scale = np.asarray(scale, dtype=np.float64)
    shape = [1] * weight.ndim
    shape[axis] = -1
    folded_w = (weight.astype(np.float64) * scale.reshape(shape)).astype(np.float32)
    b = np.zeros_like(scale) if bias is None else np.asarray(bias, dtype=np.float64)
    return folded_w, (b * scale + np.asarray(shift, dtype=np.float64)).astype(np.float32)


def fold_batch_norm(weight: np.ndarray, bias: Optional[np.ndarray], bn: Module
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """(W', b') with bn(conv(x; W, b)) == conv(x; W', b') for an eval-mode BatchNorm2d:
    W' = W * scale[k], b' = b * scale + shift (scale, shift from bn.fusion_scale_shift)."""
    return scale_conv_weights(weight, bias, *_bn_scale_shift(bn))


def _tensor_array(t: Any) -> Optional[np.ndarray]:
    return None if t is None else as_tensor(t)._data


def fuse_conv_bn_weights(conv_w: Any, conv_b: Any, bn_rm: Any, bn_rv: Any, bn_eps: float,
                         bn_w: Any, bn_b: Any, transpose: bool = False
                         ) -> Tuple[Parameter, Parameter]:
    """torch.nn.utils.fusion.fuse_conv_bn_weights: the (weight, bias) Parameters of a
    convolution followed by an eval-mode BatchNorm with these statistics and affine
    parameters (None: identity). ``transpose``: the weight's output channels are dim 1
    (ConvTranspose). Each keeps the requires_grad of its source (a missing bias: False)."""
    w = as_tensor(conv_w)
    scale, shift = batch_norm_scale_shift(as_tensor(bn_rm)._data, as_tensor(bn_rv)._data,
                                          _tensor_array(bn_w), _tensor_array(bn_b), bn_eps)
    fused_w, fused_b = scale_conv_weights(w._data, _tensor_array(conv_b), scale, shift,
                                          axis=1 if transpose else 0)
    return (Parameter(fused_w, requires_grad=w.requires_grad),
            Parameter(fused_b,
                      requires_grad=conv_b is not None and as_tensor(conv_b).requires_grad))


def check_fusable(layer: Module, bn: Module, op: str) -> None:
    """torch's fusion preconditions (AssertionError there): both in eval mode, and a
    BatchNorm with running statistics."""
    if layer.training or bn.training:
        raise AssertionValueError(f"{op}: Fusion only for eval! (call .eval() on both modules)")
    if getattr(bn, "running_mean", None) is None or getattr(bn, "running_var", None) is None:
        raise AssertionValueError(f"{op}: bn.running_mean and bn.running_var must not be None")


def fuse_conv_bn_eval(conv: Module, bn: Module, transpose: bool = False, *,
                      relu: bool = False) -> Module:
    """torch.nn.utils.fusion.fuse_conv_bn_eval: a new convolution (a deep copy of ``conv``;
    ``conv`` is left as it is) equal to ``bn(conv(x))`` for eval-mode modules.
    ``transpose`` for a ConvTranspose (output channels in the weight's dim 1). pve's
    ``relu=True`` (Conv2d only) also ends the copy in a ReLU, in the kernel's epilogue."""
    op = "fuse_conv_bn_eval"
    check_fusable(conv, bn, op)
    channels = conv.weight.shape[1 if transpose else 0]
    if bn.running_mean.shape[0] != channels:
        raise RuntimeValueError(f"{op}: {type(conv).__name__} has {channels} output channels, "
                                f"{type(bn).__name__} has {bn.running_mean.shape[0]}")
    if relu and not isinstance(conv, Conv2d):
        raise ValueError(f"{op}: relu=True needs a Conv2d, got {type(conv).__name__}")
    fused = copy.deepcopy(conv)
    fused.weight, fused.bias = fuse_conv_bn_weights(fused.weight, fused.bias, bn.running_mean,
                                                    bn.running_var, bn.eps, bn.weight, bn.bias,
                                                    transpose)
    if isinstance(fused, Conv2d):
        fused._drop_pack()  # (the copy's inference caches describe the unfused weights)
        object.__setattr__(fused, "_fused_relu", fused._fused_relu or bool(relu))
    return fused


class ConvBn2d(Module):
    """conv -> bn (-> relu) as one module. Training: the three ops as written (batch
    statistics). Eval under no_grad: one convolution with the BatchNorm folded in and
    the ReLU in the epilogue, re-folded whenever a parameter or statistic changes."""

    def __init__(self, conv: Conv2d, bn: Module, relu: bool = False) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn
        object.__setattr__(self, "relu", bool(relu))

    def forward(self, input: Any) -> Tensor:
        x = as_tensor(input)
        if self.training or is_grad_enabled():
            y = self.bn(self.conv(x))
            return F.relu(y) if self.relu else y
        return self.conv._fused_forward(x, self.bn, math.inf if self.relu else None)


class ConvBnReLU2d(ConvBn2d):
    """conv -> bn -> relu, folded into one convolution in eval mode (see ConvBn2d)."""

    def __init__(self, conv: Conv2d, bn: Module) -> None:
        super().__init__(conv, bn, relu=True)
