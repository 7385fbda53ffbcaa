"""nn.FractionalMaxPool2d (torch.nn.modules.pooling): fractional max pooling as a layer."""

from __future__ import annotations

from typing import Any, Optional

from pyvision_engine.nn._f_fractional import fractional_max_pool2d
from pyvision_engine.nn.module import Module

__all__ = ["FractionalMaxPool2d"]


def _float_pair(value: Any) -> tuple:
    """torch's _pair: a sequence kept as a tuple, anything else repeated twice."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class FractionalMaxPool2d(Module):
    """Max over kernel_size windows at pseudo-random, fractional strides (see
    F.fractional_max_pool2d). Exactly one of output_size (int or (oH, oW)) and
    output_ratio (a number or pair in (0, 1)) must be given. ``_random_samples``
    (N, C, 2), when given, is a persistent buffer fixing the windows; otherwise each
    call draws fresh samples from the engine's generator."""

    def __init__(self, kernel_size: Any, output_size: Optional[Any] = None,
                 output_ratio: Optional[Any] = None, return_indices: bool = False,
                 _random_samples: Optional[Any] = None) -> None:
        super().__init__()
        self.kernel_size = _float_pair(kernel_size)
        self.return_indices = return_indices
        self.register_buffer("_random_samples", _random_samples)
        self.output_size = _float_pair(output_size) if output_size is not None else None
        self.output_ratio = _float_pair(output_ratio) if output_ratio is not None else None
        if output_size is None and output_ratio is None:
            raise ValueError("FractionalMaxPool2d requires specifying either an output size, or "
                             "a pooling ratio")
        if output_size is not None and output_ratio is not None:
            raise ValueError("only one of output_size and output_ratio may be specified")
        if self.output_ratio is not None:
            if len(self.output_ratio) != 2 or \
                    not all(0 < r < 1 for r in self.output_ratio):
                raise ValueError(f"output_ratio must be between 0 and 1 (got {output_ratio})")

    def forward(self, input: Any) -> Any:
        return fractional_max_pool2d(input, self.kernel_size, self.output_size, self.output_ratio,
                                     self.return_indices, _random_samples=self._random_samples)
