"""Transposed 2-D convolution (torch.nn.ConvTranspose2d, F.conv_transpose2d).

A transposed convolution is the adjoint of a convolution: its forward pass is
conv2d's gradient with respect to the input, so it runs on the convolution
kernels with the roles swapped and needs no kernel of its own:

  forward          y  = conv2d_backward_data(x, w)   (x plays conv2d's grad_output)
  grad w.r.t. x    gx = conv2d(gy, w)
  grad w.r.t. w    gw = conv2d_backward_weight(input=gy, grad_output=x)

with the same stride, padding, dilation and groups. ``w`` has torch's layout
(in_channels, out_channels/groups, kH, kW), which is conv2d's (out, in/groups,
kH, kW) for the convolution being transposed.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine.autograd import Function
from pyvision_engine.nn import functional as F
from pyvision_engine.nn._f_common import RuntimeValueError, check_factory_kwargs, float_input
from pyvision_engine.nn.conv import (check_conv_channels, conv_extra_repr,
                                     reset_conv_parameters)
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["ConvTranspose1d", "ConvTranspose2d", "conv_transpose1d", "conv_transpose2d"]


def _transpose_geometry(x_shape: Tuple[int, ...], w_shape: Tuple[int, ...], stride: Any,
                        padding: Any, output_padding: Any, groups: Any, dilation: Any,
                        layer: str, shown: Optional[Tuple[Tuple[int, ...], ...]] = None
                        ) -> Tuple[Tuple[int, int], F._Conv2dGeometry]:
    """(output size, the geometry of the convolution being transposed), checked as torch
    checks conv_transpose2d; errors name the layer and both shapes (or the (input, weight)
    shapes in ``shown``: a 1-D one's, seen through its 2-D view)."""
    shapes = F._conv_shapes_checked(x_shape, w_shape, "in_channels, out_channels/groups",
                                    layer, shown)
    if isinstance(padding, str):
        raise RuntimeValueError(f"{layer}: padding must be an int or a pair of ints (transposed "
                                f"convolutions take no 'same'/'valid'), got {padding!r}")
    groups = F._conv_groups(groups, layer, shapes)
    stride = F._int_pair(stride, "stride", layer)
    pads = F._int_pair(padding, "padding", layer)
    extra = F._int_pair(output_padding, "output_padding", layer)
    dilation = F._int_pair(dilation, "dilation", layer)
    F._check_positive_steps(stride, dilation, layer, shapes)
    if min(pads) < 0:
        raise RuntimeValueError(f"{layer}: negative padding is not supported, got {pads}")
    if min(extra) < 0:
        raise RuntimeValueError(f"{layer}: output_padding must be non-negative, got {extra}")
    for e, s, d in zip(extra, stride, dilation):
        if e >= s and e >= d:
            raise RuntimeValueError(
                f"{layer}: output padding must be smaller than either stride or dilation, got "
                f"output_padding={extra}, stride={stride}, dilation={dilation}")
    n, c, h, w = x_shape
    cin, kg, kh, kw = w_shape
    if cin % groups != 0:
        raise RuntimeValueError(f"{layer}: the weight's in_channels ({cin}) must be divisible "
                                f"by groups ({groups}); {shapes}")
    if c != cin:
        raise RuntimeValueError(f"{layer}: expected input with {cin} channels (the weight's "
                                f"dimension 0), got {c} channels; {shapes}")
    if min(kh, kw) < 1:
        raise RuntimeValueError(f"{layer}: kernel size must be positive; {shapes}")
    out = tuple((size - 1) * s - 2 * p + d * (k - 1) + e + 1
                for size, s, p, d, k, e in zip((h, w), stride, pads, dilation, (kh, kw), extra))
    if min(out) < 1:
        raise RuntimeValueError(f"{layer}: given input size per channel ({h} x {w}), the "
                                f"calculated output size per channel ({out[0]} x {out[1]}) is "
                                f"too small; {shapes}")
    # The convolution whose input has the output's size: its output covers the input's
    # (H, W), and one more row or column per stride of output padding beyond the stride.
    geo = F._conv2d_geometry((n, kg * groups) + out, tuple(w_shape), stride, pads, dilation,
                             groups, layer, shown)
    return out, geo  # type: ignore[return-value]


class _ConvTranspose2d(Function):
    """y = conv2d_backward_data(x, w) + b; backward by conv2d and its weight gradient."""

    @staticmethod
    def forward(ctx, x, weight, bias, out_size=None, geometry=None):
        geo = geometry
        n, cin, h, w = x.shape
        y_shape = (n, weight.shape[1] * geo.groups) + tuple(out_size)
        g = x
        if tuple(geo.out_size) != (h, w):  # output padding >= stride: zero rows/cols below
            g = np.zeros((n, cin) + tuple(geo.out_size), dtype=np.float32)
            g[:, :, :h, :w] = x
        algorithm = F._algorithm("backward_data", y_shape, weight.shape, geo)
        y = _C.conv2d_backward_data(g, weight, list(y_shape), geo.stride, geo.top_left,
                                    geo.dilation, geo.groups, algorithm)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        if any(ctx.needs_input_grad):
            ctx.g, ctx.weight, ctx.geo, ctx.x_size = g, weight, geo, (h, w)
            ctx.y_shape, ctx.has_bias = y_shape, bias is not None
        return y

    @staticmethod
    def backward(ctx, gy):
        geo = ctx.geo
        gy = np.ascontiguousarray(gy, dtype=np.float32)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            algorithm = F._algorithm("forward", ctx.y_shape, ctx.weight.shape, geo)
            gx = _C.conv2d_forward(gy, ctx.weight, None, geo.stride, geo.top_left, geo.dilation,
                                   geo.groups, geo.out_size, algorithm, False, None, math.inf)
            h, w = ctx.x_size
            if gx.shape[2:] != (h, w):
                gx = np.ascontiguousarray(gx[:, :, :h, :w])
        if ctx.needs_input_grad[1]:
            algorithm = F._algorithm("backward_weight", ctx.y_shape, ctx.weight.shape, geo)
            gw, _ = _C.conv2d_backward_weight(gy, ctx.g, list(ctx.weight.shape), geo.stride,
                                              geo.top_left, geo.dilation, geo.groups, algorithm,
                                              False)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gy.sum(axis=(0, 2, 3), dtype=np.float64).astype(np.float32)
        return gx, gw, gb


def conv_transpose2d(input: Any, weight: Any, bias: Optional[Any] = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1) -> Tensor:
    """Transposed 2-D convolution with torch's arguments (note: groups before dilation).

    input (N, C_in, H, W) or (C_in, H, W); weight (C_in, C_out/groups, kH, kW); bias (C_out,)
    or None. Output size per axis: (H - 1) * stride - 2 * padding + dilation * (kH - 1)
    + output_padding + 1; output_padding must be smaller than the stride or the dilation."""
    return _conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups,
                             dilation, "conv_transpose2d")


def _conv_transpose2d(input: Any, weight: Any, bias: Optional[Any], stride: Any, padding: Any,
                      output_padding: Any, groups: Any, dilation: Any, layer: str,
                      shown: Optional[Tuple[Tuple[int, ...], ...]] = None) -> Tensor:
    x = float_input(input, layer)
    w = float_input(weight, layer)
    b = None if bias is None else float_input(bias, layer)
    unbatched = x.ndim == 3
    if unbatched:
        x = x.reshape((1,) + tuple(x.shape))
    out, geo = _transpose_geometry(tuple(x.shape), tuple(w.shape), stride, padding,
                                   output_padding, groups, dilation, layer, shown)
    out_channels = w.shape[1] * geo.groups
    if b is not None and tuple(b.shape) != (out_channels,):
        shown_x, shown_w = shown if shown is not None else (x.shape, w.shape)
        raise RuntimeValueError(f"{layer}: bias must have shape ({out_channels},) "
                                f"(out_channels), got {tuple(b.shape)}; input shape "
                                f"{tuple(shown_x)}, weight shape {tuple(shown_w)}")
    y = _ConvTranspose2d.apply(x, w, b, out_size=out, geometry=geo)
    return y.reshape(tuple(y.shape)[1:]) if unbatched else y


def _conv_transpose1d(input: Any, weight: Any, bias: Optional[Any], stride: Any, padding: Any,
                      output_padding: Any, groups: Any, dilation: Any, layer: str) -> Tensor:
    """conv_transpose1d on the 2-D one through (N, C, 1, L) and (C_in, C_out/groups, 1, k)
    views (see F.conv1d); the arguments are checked in 1-D so that errors show them."""
    x = float_input(input, layer)
    w = float_input(weight, layer)
    if isinstance(padding, str):  # (torch: a TypeError from its argument parser)
        raise TypeError(f"{layer}: padding must be an int or a 1-tuple of ints (transposed "
                        f"convolutions take no 'same'/'valid'), got {padding!r}")
    x2, w2 = F._view_1d_as_2d(x, w, "conv_transpose1d", layer)
    s = F._single_positive(stride, "stride", layer)
    d = F._single_positive(dilation, "dilation", layer)
    (p,) = F._int_tuple(padding, 1, "padding", layer)
    (extra,) = F._int_tuple(output_padding, 1, "output_padding", layer)
    y = _conv_transpose2d(x2, w2, bias, (1, s), (0, p), (0, extra), groups, (1, d), layer,
                          shown=(tuple(x.shape), tuple(w.shape)))
    return F._squeeze_2d_view(y)


def conv_transpose1d(input: Any, weight: Any, bias: Optional[Any] = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1) -> Tensor:
    """Transposed 1-D convolution with torch's arguments (groups before dilation).

    input (N, C_in, L) or (C_in, L); weight (C_in, C_out/groups, k); bias (C_out,) or None.
    Output length: (L - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1;
    output_padding must be smaller than the stride or the dilation."""
    return _conv_transpose1d(input, weight, bias, stride, padding, output_padding, groups,
                             dilation, "conv_transpose1d")


class _ConvTransposeNd(Module):
    """What ConvTranspose1d and ConvTranspose2d share: weight (in_channels,
    out_channels/groups, *kernel_size), bias (out_channels,), torch's init (fan_in =
    weight.shape[1] * prod(kernel_size)), ``output_size`` and extra_repr."""

    _dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        layer = type(self).__name__
        check_factory_kwargs(device, dtype, layer)
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {layer}, got '
                             f'{padding_mode!r}')
        check_conv_channels(layer, in_channels, out_channels, groups)
        if isinstance(padding, str):
            raise ValueError(f"{layer}: padding must be an int or a tuple of ints, got "
                             f"{padding!r}")
        dims = self._dims
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = F._int_tuple(kernel_size, dims, "kernel_size", layer)
        self.stride = F._int_tuple(stride, dims, "stride", layer)
        self.padding = F._int_tuple(padding, dims, "padding", layer)
        self.output_padding = F._int_tuple(output_padding, dims, "output_padding", layer)
        self.dilation = F._int_tuple(dilation, dims, "dilation", layer)
        if min(self.kernel_size) <= 0 or min(self.stride) <= 0 or min(self.dilation) <= 0:
            raise ValueError(f"{layer}: kernel_size, stride and dilation must be positive, got "
                             f"{self.kernel_size}, {self.stride}, {self.dilation}")
        if min(self.padding) < 0 or min(self.output_padding) < 0:
            raise ValueError(f"{layer}: padding and output_padding must be non-negative, got "
                             f"{self.padding}, {self.output_padding}")
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self.weight = Parameter(np.empty((self.in_channels, self.out_channels // self.groups)
                                         + self.kernel_size, dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty((self.out_channels,), dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch's fan_in of a transposed weight: its dimension 1 times the kernel's size
        fan_in = (self.out_channels // self.groups) * math.prod(self.kernel_size)
        reset_conv_parameters(self.weight, self.bias, fan_in)

    def _output_padding(self, x: Tensor, output_size: Optional[Sequence[int]]) -> Tuple[int, ...]:
        """torch's rule: ``output_size`` (spatial, or with the batch/channel dims) gives the
        output padding, each size within [minimum, minimum + stride - 1]."""
        if output_size is None:
            return self.output_padding
        dims = self._dims
        non_spatial = 2 if x.ndim == dims + 2 else 1
        sizes: List[int] = [int(v) for v in output_size]
        if len(sizes) == non_spatial + dims:
            sizes = sizes[non_spatial:]
        if len(sizes) != dims:
            raise ValueError(f"ConvTranspose{dims}D: for {x.ndim}D input, output_size must have "
                             f"{dims} or {non_spatial + dims} elements (got {len(sizes)})")
        in_size = tuple(x.shape)[-dims:]
        mins = [(in_size[d] - 1) * self.stride[d] - 2 * self.padding[d]
                + self.dilation[d] * (self.kernel_size[d] - 1) + 1 for d in range(dims)]
        maxs = [mins[d] + self.stride[d] - 1 for d in range(dims)]
        for d in range(dims):
            if not mins[d] <= sizes[d] <= maxs[d]:
                raise ValueError(f"requested an output size of {sizes}, but valid sizes range "
                                 f"from {mins} to {maxs} (for an input of {list(in_size)})")
        return tuple(sizes[d] - mins[d] for d in range(dims))

    def _layer_name(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size})")

    def extra_repr(self) -> str:
        return conv_extra_repr(self)


class ConvTranspose1d(_ConvTransposeNd):
    """torch.nn.ConvTranspose1d on (N, C, L) or (C, L) input: the gradient of a Conv1d
    with respect to its input, as a layer. weight (in_channels, out_channels/groups, k),
    bias (out_channels,); initialised as ConvTranspose2d. ``forward(input,
    output_size=None)`` as ConvTranspose2d's."""

    _dims = 1

    def forward(self, input: Any, output_size: Optional[Sequence[int]] = None) -> Tensor:
        x = as_tensor(input)
        if x.ndim not in (2, 3):  # (torch checks the rank before output_size)
            raise RuntimeValueError(f"{self._layer_name()}: Expected 2D (unbatched) or 3D "
                                    f"(batched) input to conv_transpose1d, but got input of "
                                    f"size: {list(x.shape)}")
        extra = self._output_padding(x, output_size)
        return _conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding, extra,
                                 self.groups, self.dilation, self._layer_name())


class ConvTranspose2d(_ConvTransposeNd):
    """torch.nn.ConvTranspose2d: the gradient of a Conv2d with respect to its input, as a
    layer (learned upsampling in decoders and detectors).

    weight (in_channels, out_channels/groups, kH, kW), bias (out_channels,). Initialised as
    torch: kaiming_uniform_(a=sqrt(5)) with fan_in = weight.shape[1] * kH * kW, bias
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)). ``forward(input, output_size=None)``: an
    ``output_size`` picks the output padding within [0, stride) per axis, as torch."""

    def forward(self, input: Any, output_size: Optional[Sequence[int]] = None) -> Tensor:
        x = as_tensor(input)
        if x.ndim not in (3, 4):
            raise ValueError(f"{self._layer_name()}: expected a 3-D (C, H, W) or 4-D "
                             f"(N, C, H, W) input, got shape {tuple(x.shape)}")
        extra = self._output_padding(x, output_size)
        return _conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, extra,
                                 self.groups, self.dilation, self._layer_name())
