"""Pooling layers: MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool1d/2d, AdaptiveMaxPool1d/2d,
MaxUnpool2d, LPPool2d."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

from pyvision_engine.nn import functional as F
from pyvision_engine.nn._f_pooling import _pool_arg
from pyvision_engine.nn.module import Module
from pyvision_engine.tensor import Tensor

__all__ = ["MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d",
           "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "MaxUnpool2d", "LPPool2d"]


class _MaxPoolNd(Module):
    """torch's _MaxPoolNd: the arguments as given (stride defaults to kernel_size) and
    their extra_repr; subclasses pick the functional."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """Max over kernel_size windows of (N, C, L) or (C, L) input; arguments as MaxPool2d's,
    ints or 1-tuples; return_indices also returns int64 indices into L."""

    def forward(self, input: Any):
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class MaxPool2d(_MaxPoolNd):
    """Max over kernel_size windows of (N, C, H, W) or (C, H, W) input.

    stride defaults to kernel_size; padding (at most kernel_size // 2) counts as
    -inf; ceil_mode keeps a last partial window unless it would start in the
    right padding; return_indices also returns flat per-plane int64 indices."""

    def forward(self, input: Any):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class _AvgPoolNd(Module):
    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """Mean over kernel_size windows of (N, C, L) or (C, L) input; the divisor counts the
    padding unless count_include_pad=False. As torch, kernel_size, stride (default:
    kernel_size) and padding are kept as 1-tuples."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size = _pool_arg(kernel_size, 1, "AvgPool1d", "kernel_size")
        self.stride = _pool_arg(stride if stride is not None else kernel_size, 1, "AvgPool1d",
                                "stride")
        self.padding = _pool_arg(padding, 1, "AvgPool1d", "padding")
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input: Any) -> Tensor:
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """Mean over kernel_size windows; divisor per count_include_pad / divisor_override."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: Optional[int] = None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Any) -> Tensor:
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)


class _AdaptiveAvgPoolNd(Module):
    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average pooling of (N, C, L) or (C, L) input to a fixed output_size (an int)."""

    def forward(self, input: Any) -> Tensor:
        return F.adaptive_avg_pool1d(input, self.output_size)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average pooling to a fixed output_size (int or (h, w), None keeps that dim)."""

    def forward(self, input: Any) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)


class _AdaptiveMaxPoolNd(Module):
    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max pooling of (N, C, L) or (C, L) input to a fixed output_size; return_indices as
    MaxPool1d."""

    def forward(self, input: Any):
        return F.adaptive_max_pool1d(input, self.output_size, self.return_indices)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max pooling to a fixed output_size; return_indices as MaxPool2d."""

    def forward(self, input: Any):
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)


def _as_pair(v: Any) -> Tuple[Any, ...]:
    # torch's _pair, for the stored attributes (and so the repr): a sequence as a tuple
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class _MaxUnpoolNd(Module):
    """MaxUnpool1d/2d's common part (torch's _MaxUnpoolNd): the stored geometry, each as a
    tuple of ``_tuple``'s length, and the repr."""

    _tuple: Any = None  # (v) -> the attribute as torch stores it

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        as_tuple = type(self)._tuple
        self.kernel_size = as_tuple(kernel_size)
        self.stride = as_tuple(stride if stride is not None else kernel_size)
        self.padding = as_tuple(padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _as_single(v: Any) -> Tuple[int]:
    return (v[0],) if isinstance(v, (tuple, list)) and len(v) == 1 else \
        v if isinstance(v, tuple) else (v,)


class MaxUnpool1d(_MaxUnpoolNd):
    """Partial inverse of MaxPool1d (torch.nn.MaxUnpool1d): each value goes back to the
    position its index names; everything else is zero. stride defaults to kernel_size."""

    _tuple = staticmethod(_as_single)

    def forward(self, input: Any, indices: Any,
                output_size: Optional[Sequence[int]] = None) -> Tensor:
        return F.max_unpool1d(input, indices, self.kernel_size, self.stride, self.padding,
                              output_size)


class MaxUnpool2d(_MaxUnpoolNd):
    """Partial inverse of MaxPool2d: each value goes back to the position its index
    names; everything else is zero. stride defaults to kernel_size."""

    _tuple = staticmethod(_as_pair)

    def forward(self, input: Any, indices: Any,
                output_size: Optional[Sequence[int]] = None) -> Tensor:
        return F.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding,
                              output_size)


class _LPPoolNd(Module):
    """LPPool1d/2d's common part (torch's _LPPoolNd): the arguments as given, and the repr."""

    def __init__(self, norm_type: float, kernel_size: Any, stride: Any = None,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.norm_type = norm_type
        self.kernel_size = kernel_size
        self.stride = stride
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPoolNd):
    """1-D power-average pooling (torch.nn.LPPool1d): (sum of x ** norm_type over each
    window) ** (1 / norm_type)."""

    def forward(self, input: Any) -> Tensor:
        return F.lp_pool1d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class LPPool2d(_LPPoolNd):
    """Power-average pooling: (sum of x ** norm_type over each window) ** (1 / norm_type)."""

    def forward(self, input: Any) -> Tensor:
        return F.lp_pool2d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)
