"""ZeroPad2d: pads the last two dims with zeros (left, right, top, bottom)."""

from __future__ import annotations

from typing import Any, Sequence, Tuple, Union

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
