"""Dropout: zeroes elements with probability p in training, scaling the rest by 1/(1-p)."""

from __future__ import annotations

from typing import Any

from pyvision_engine.nn import functional as F
from pyvision_engine.nn.module import Module
from pyvision_engine.tensor import Tensor

__all__ = ["Dropout"]


class Dropout(Module):
    """Identity in eval mode; masks drawn from the engine generator (pve.manual_seed)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input: Any) -> Tensor:
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
