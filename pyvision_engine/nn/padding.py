"""2-D padding layers: ZeroPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d,
CircularPad2d (padding (left, right, top, bottom), as torch)."""

from __future__ import annotations

import numbers
from typing import Any, Sequence, Tuple, Union

import numpy as np

from pyvision_engine.nn import functional as F
from pyvision_engine.nn._f_common import int_arg
from pyvision_engine.nn.module import Module
from pyvision_engine.tensor import Tensor

__all__ = ["ZeroPad2d"]


class ZeroPad2d(Module):
    """padding: an int (all four sides) or a sequence handed to F.pad as it is, as in
    torch: (left, right, top, bottom), or (left, right) for the last dim only (any even
    length works, F.pad checks it); negative amounts crop."""

    def __init__(self, padding: Union[int, Sequence[int]]) -> None:
        super().__init__()
        if isinstance(padding, (tuple, list)):
            self.padding: Tuple[int, ...] = tuple(int_arg(p, "ZeroPad2d", "padding")
                                                  for p in padding)
        else:
            self.padding = (int_arg(padding, "ZeroPad2d", "padding"),) * 4

    def forward(self, input: Any) -> Tensor:
        return F.pad(input, self.padding, "constant", 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


# ------------------------------------------------------------------ 2-D padding modes
__all__ += ["ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d"]


def _quadruple(padding: Any, layer: str) -> Tuple[int, ...]:
    """torch's _quadruple: an int for all four sides (left, right, top, bottom); a
    sequence is kept as it is (F.pad checks its length)."""
    if isinstance(padding, (tuple, list)):
        return tuple(int_arg(p, layer, "padding") for p in padding)
    return (int_arg(padding, layer, "padding"),) * 4


class _Pad2d(Module):
    _mode = "constant"

    def __init__(self, padding: Union[int, Sequence[int]]) -> None:
        super().__init__()
        self.padding = _quadruple(padding, type(self).__name__)

    def forward(self, input: Any) -> Tensor:
        try:
            return F.pad(input, self.padding, self._mode)
        except (ValueError, TypeError) as e:  # the same error, naming the layer
            raise type(e)(f"{type(self).__name__}{self.padding}: {e}") from None

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ReflectionPad2d(_Pad2d):
    """Pads the last two dims with their reflection (the edge not repeated); each
    amount must be smaller than that dim. padding: int or (left, right, top, bottom)."""

    _mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """Pads the last two dims by repeating the edge values."""

    _mode = "replicate"


class CircularPad2d(_Pad2d):
    """Pads the last two dims by wrapping around (at most once)."""

    _mode = "circular"

    def forward(self, input: Any) -> Tensor:
        ndim = len(getattr(input, "shape", np.shape(input)))
        if ndim not in (3, 4):
            raise ValueError(f"CircularPad2d: expected 3D or 4D input (got {ndim}D input)")
        return super().forward(input)


class ConstantPad2d(_Pad2d):
    """Pads the last two dims with ``value``; negative amounts crop."""

    def __init__(self, padding: Union[int, Sequence[int]], value: float) -> None:
        super().__init__(padding)
        if value is not None and not isinstance(value, numbers.Real):  # (None: zeros, as F.pad)
            raise TypeError(f"ConstantPad2d: value must be a number, got {type(value).__name__}")
        self.value = value

    def forward(self, input: Any) -> Tensor:
        try:
            return F.pad(input, self.padding, "constant", self.value)
        except (ValueError, TypeError) as e:
            raise type(e)(f"ConstantPad2d{self.padding}: {e}") from None

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"
