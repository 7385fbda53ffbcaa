"""Upsample: resize by size or scale_factor (F.interpolate's modes)."""

from __future__ import annotations

import numbers
from typing import Any, Optional

from pyvision_engine.nn import functional as F
from pyvision_engine.nn.module import Module
from pyvision_engine.tensor import Tensor

__all__ = ["Upsample"]


class Upsample(Module):
    """F.interpolate as a layer. As torch, a tuple scale_factor is stored as floats and a
    single one as a float (0 or None: no scale factor, so ``size`` must be given)."""

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: Optional[bool] = None, recompute_scale_factor: Optional[bool] = None) -> None:
        super().__init__()
        self.size = size
        if isinstance(scale_factor, tuple):
            if not all(isinstance(f, numbers.Real) for f in scale_factor):
                raise TypeError(f"Upsample: scale_factor must be a number or a tuple of numbers, "
                                f"got {scale_factor!r}")
            self.scale_factor: Any = tuple(float(f) for f in scale_factor)
        elif not scale_factor:
            self.scale_factor = None
        elif isinstance(scale_factor, numbers.Real):
            self.scale_factor = float(scale_factor)
        else:  # (torch: float() of a list fails too)
            raise TypeError(f"Upsample: scale_factor must be a number or a tuple of numbers, "
                            f"got {scale_factor!r}")
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Any) -> Tensor:
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            return f"scale_factor={self.scale_factor!r}, mode={self.mode!r}"
        return f"size={self.size!r}, mode={self.mode!r}"


__all__ += ["UpsamplingNearest2d", "UpsamplingBilinear2d"]


class UpsamplingNearest2d(Upsample):
    """Upsample(size, scale_factor, mode='nearest') of (N, C, H, W) input."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Upsample(size, scale_factor, mode='bilinear', align_corners=True), as torch."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
