"""Padding layers, as torch's: ZeroPad1d/2d, ConstantPad1d/2d, ReflectionPad1d/2d,
ReplicationPad1d/2d, CircularPad1d/2d. padding lists (left, right) for the last dim, then
(top, bottom) for the one before (F.pad's order); an int pads every side of the layer's
dims."""

from __future__ import annotations

import numbers
from typing import Any, Sequence, Tuple, Union

import numpy as np

from pyvision_engine.nn import functional as F
from pyvision_engine.nn._f_common import int_arg
from pyvision_engine.nn.module import Module
from pyvision_engine.tensor import Tensor

__all__ = ["ZeroPad1d", "ZeroPad2d", "ConstantPad1d", "ConstantPad2d", "ReflectionPad1d",
           "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d", "CircularPad1d",
           "CircularPad2d"]


def _amounts(padding: Any, sides: int, layer: str) -> Tuple[int, ...]:
    """torch's _pair / _quadruple: an int for each of the ``sides``; a sequence is kept as
    it is (F.pad checks its length, so any even length works, as in torch)."""
    if isinstance(padding, (tuple, list)):
        return tuple(int_arg(p, layer, "padding") for p in padding)
    return (int_arg(padding, layer, "padding"),) * sides


class _PadNd(Module):
    """F.pad with the layer's mode over its last ``_sides // 2`` dims; errors keep F.pad's
    type (torch's) and name the layer."""

    _mode = "constant"
    _sides = 4  # the amounts an int padding stands for: 2 per padded dim

    def __init__(self, padding: Union[int, Sequence[int]]) -> None:
        super().__init__()
        self.padding = _amounts(padding, self._sides, type(self).__name__)

    def _pad(self, input: Any, value: Any = None) -> Tensor:
        try:
            return F.pad(input, self.padding, self._mode, value)
        except (ValueError, TypeError) as e:  # the same error, naming the layer
            raise type(e)(f"{type(self).__name__}{self.padding}: {e}") from None

    def forward(self, input: Any) -> Tensor:
        return self._pad(input)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ReflectionPad1d(_PadNd):
    """Pads the last dim with its reflection (the edge not repeated); each amount must be
    smaller than that dim. padding: int or (left, right)."""

    _mode = "reflect"
    _sides = 2


class ReflectionPad2d(_PadNd):
    """Pads the last two dims with their reflection (the edge not repeated); each
    amount must be smaller than that dim. padding: int or (left, right, top, bottom)."""

    _mode = "reflect"


class ReplicationPad1d(_PadNd):
    """Pads the last dim by repeating the edge values."""

    _mode = "replicate"
    _sides = 2


class ReplicationPad2d(_PadNd):
    """Pads the last two dims by repeating the edge values."""

    _mode = "replicate"


class _CircularPadNd(_PadNd):
    """Wraps around (at most once); as torch, the input's rank is checked by the layer:
    the padded dims plus a channel dim and an optional batch dim."""

    _mode = "circular"

    def forward(self, input: Any) -> Tensor:
        ndim = len(getattr(input, "shape", np.shape(input)))
        unbatched = self._sides // 2 + 1
        if ndim not in (unbatched, unbatched + 1):
            raise ValueError(f"{type(self).__name__}: expected {unbatched}D or {unbatched + 1}D "
                             f"input (got {ndim}D input)")
        return self._pad(input)


class CircularPad1d(_CircularPadNd):
    """Pads the last dim of (N, C, L) or (C, L) input by wrapping around."""

    _sides = 2


class CircularPad2d(_CircularPadNd):
    """Pads the last two dims of (N, C, H, W) or (C, H, W) input by wrapping around."""


class _ConstantPadNd(_PadNd):
    """Pads with ``value``; negative amounts crop."""

    def __init__(self, padding: Union[int, Sequence[int]], value: float) -> None:
        super().__init__(padding)
        if value is not None and not isinstance(value, numbers.Real):  # (None: zeros, as F.pad)
            raise TypeError(f"{type(self).__name__}: value must be a number, got "
                            f"{type(value).__name__}")
        self.value = value

    def forward(self, input: Any) -> Tensor:
        return self._pad(input, self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pads the last dim with ``value``. padding: int or (left, right)."""

    _sides = 2


class ConstantPad2d(_ConstantPadNd):
    """Pads the last two dims with ``value``. padding: int or (left, right, top, bottom)."""


class _ZeroPadNd:
    """torch's ZeroPadNd: its ConstantPadNd with value 0, shown by its padding alone."""

    def __init__(self, padding: Union[int, Sequence[int]]) -> None:
        super().__init__(padding, 0.0)  # type: ignore[call-arg]

    def extra_repr(self) -> str:
        return f"{self.padding}"  # type: ignore[attr-defined]


class ZeroPad1d(_ZeroPadNd, ConstantPad1d):
    """Pads the last dim with zeros; negative amounts crop. padding: int or (left, right)."""


class ZeroPad2d(_ZeroPadNd, ConstantPad2d):
    """Pads the last two dims with zeros; negative amounts crop. padding: an int (all four
    sides) or (left, right, top, bottom), or (left, right) for the last dim only (any even
    length works, F.pad checks it)."""
