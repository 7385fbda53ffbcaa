"""Dropout: zeroes elements with probability p in training, scaling the rest by 1/(1-p)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from pyvision_engine.nn import functional as F
from pyvision_engine.nn._f_common import RuntimeValueError, float_input
from pyvision_engine.nn._f_shape import _SELU_ALPHA_PRIME, _apply_mask, _check_p
from pyvision_engine.random import default_generator
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


__all__ += ["Dropout1d", "Dropout2d", "AlphaDropout"]


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not isinstance(p, numbers.Real) or isinstance(p, bool):
            raise TypeError(f"{type(self).__name__}: p must be a number, got {type(p).__name__}")
        if p < 0 or p > 1:
            raise ValueError(f"{type(self).__name__}: dropout probability has to be between 0 "
                             f"and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(_DropoutNd):
    """Zeroes whole channels of (N, C, L) or (C, L) input with probability p in training
    (scaling the rest by 1 / (1 - p)); identity in eval mode. Other ranks are an error."""

    def forward(self, input: Any) -> Tensor:
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Zeroes whole channels of (N, C, H, W) input with probability p in training
    (scaling the rest by 1 / (1 - p)); identity in eval mode. 3-D input is taken as
    (N, C, L), with torch's warning."""

    def forward(self, input: Any) -> Tensor:
        return F.dropout2d(input, self.p, self.training, self.inplace)


class AlphaDropout(_DropoutNd):
    """Dropout that keeps SELU activations' mean and variance; identity in eval mode.
    (As torch, ``inplace`` is stored and shown but the layer never works in place.)"""

    def forward(self, input: Any) -> Tensor:
        return F.alpha_dropout(input, self.p, self.training)


_F32 = np.float32
__all__ += ["FeatureAlphaDropout", "feature_alpha_dropout"]


def feature_alpha_dropout(input: Any, p: float = 0.5, training: bool = False,
                          inplace: bool = False) -> Tensor:
    """torch's feature_alpha_dropout: alpha_dropout's formula with one draw per channel
    (noise shape (N, C, 1, ...)): a dropped channel becomes SELU's saturation value
    -alpha' entirely, then a * y + b, a = 1 / sqrt((alpha'^2 p + 1)(1 - p)),
    b = a * alpha' * p. Identity when not training or p = 0."""
    op = "feature_alpha_dropout"
    p = _check_p(p, op)
    x = float_input(input, op)
    if p == 0.0 or not training or x._data.size == 0:
        return x
    if x.ndim < 2:
        raise RuntimeValueError(f"{op}: Feature dropout requires at least 2 dimensions in the "
                                f"input, got shape {x.shape}")
    if p == 1.0:
        return _apply_mask(x, np.zeros((), _F32), None, inplace, op)
    noise_shape = tuple(x.shape[:2]) + (1,) * (x.ndim - 2)
    keep = (default_generator().random(noise_shape, dtype=_F32) >= _F32(p)).astype(_F32)
    alpha = _SELU_ALPHA_PRIME
    a = 1.0 / math.sqrt((alpha * alpha * p + 1) * (1 - p))
    shift = (keep - _F32(1)) * _F32(alpha * a) + _F32(alpha * a * p)
    scale = np.broadcast_to(keep * _F32(a), x.shape)
    shift = np.broadcast_to(shift, x.shape)
    return _apply_mask(x, np.ascontiguousarray(scale), np.ascontiguousarray(shift), inplace, op)


class FeatureAlphaDropout(_DropoutNd):
    """AlphaDropout over whole channels (torch.nn.FeatureAlphaDropout): each channel of
    (N, C, ...) input is kept or set to SELU's saturation together; identity in eval
    mode."""

    def forward(self, input: Any) -> Tensor:
        return feature_alpha_dropout(input, self.p, self.training)
