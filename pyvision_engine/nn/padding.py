"""ZeroPad2d: pads the last two dims with zeros (left, right, top, bottom)."""

from __future__ import annotations

from typing import Any, Sequence, Tuple, Union

from pyvision_engine.nn import functional as F
from pyvision_engine.nn.module import Module
from pyvision_engine.tensor import Tensor

__all__ = ["ZeroPad2d"]


class ZeroPad2d(Module):
    """padding: an int (all sides) or (left, right, top, bottom); negative crops."""

    def __init__(self, padding: Union[int, Sequence[int]]) -> None:
        super().__init__()
        if isinstance(padding, (tuple, list)):
            if len(padding) != 4:
                raise ValueError(f"ZeroPad2d: padding must be an int or 4 ints, got {padding!r}")
            self.padding: Tuple[int, ...] = tuple(int(p) for p in padding)
        else:
            self.padding = (int(padding),) * 4

    def forward(self, input: Any) -> Tensor:
        return F.pad(input, self.padding, "constant", 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"
