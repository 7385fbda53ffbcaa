"""nn.LinearCrossEntropyLoss and F.linear_cross_entropy (torch 2.13): cross entropy of a
linear projection of the input, ``cross_entropy(linear(input, W, b), target)``.

torch 2.13 also has a chunked implementation, selected by passing a
``LinearCrossEntropyOptions`` instance: it processes the batch in pieces so the full
(N, C) logits never exist at once, a memory saving for very large C; its values are
those of the reference path. This engine runs the reference path only: ``options`` is
accepted for compatibility and not used, and the options class is not provided.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

from pyvision_engine.nn import functional as F
from pyvision_engine.nn._f_common import RuntimeValueError, check_factory_kwargs, float_input
from pyvision_engine.nn.linear import Linear
from pyvision_engine.nn.loss import _WeightedLoss
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["LinearCrossEntropyLoss", "linear_cross_entropy"]


def _check_shapes(x: Tensor, w: Tensor, bias: Optional[Tensor]) -> Tuple[int, ...]:
    """The logits' shape (*batch, C, *out_features), after torch's checks."""
    if x.ndim < 1 or x.ndim > 2:
        raise RuntimeValueError(f"expected input with dimensionality 1 or 2, got {x.ndim}")
    if w.ndim < 2:
        raise RuntimeValueError(f"expected linear_weight with dimensionality at least 2, got "
                                f"{w.ndim}")
    batch, in_features = tuple(x.shape[:-1]), x.shape[-1]
    if in_features != w.shape[-1]:
        raise RuntimeValueError("expected equal input and linear_weight last dimensions "
                                f"(in_features), got {x.shape[-1]} and {w.shape[-1]}, "
                                "respectively")
    num_classes, out_features = w.shape[0], tuple(w.shape[1:-1])
    if bias is not None and tuple(bias.shape) != (num_classes, *out_features):
        raise RuntimeValueError(f"expected linear_bias shape {(num_classes, *out_features)}, "
                                f"got {tuple(bias.shape)}")
    if out_features and not batch:
        raise RuntimeValueError(f"K-dimensional loss defined by linear_weight shape "
                                f"{tuple(w.shape)} requires batched input, (N, {in_features}), "
                                f"got unbatched input with shape {tuple(x.shape)}")
    return (*batch, num_classes, *out_features)


def linear_cross_entropy(input: Any, linear_weight: Any, target: Any, *,
                         linear_bias: Optional[Any] = None, weight: Optional[Any] = None,
                         reduction: str = "mean", ignore_index: Optional[int] = None,
                         label_smoothing: float = 0.0, options: Any = None) -> Tensor:
    """``cross_entropy(linear(input, linear_weight, linear_bias), target, ...)``.

    input (in_features,) or (N, in_features); linear_weight (C, in_features) or
    (C, d1, ..., dK, in_features) for a K-dimensional loss (batched input only);
    linear_bias (C, d1, ..., dK). target: class indices (int64, shape (), (N,) or
    (N, d1, ..., dK)) or class probabilities (float32, the logits' shape).
    ignore_index None means -100, and is an error with probability targets.
    ``options`` (torch's chunking options) is accepted and not used: the result is
    the reference path's."""
    x = float_input(input, "linear_cross_entropy")
    w = float_input(linear_weight, "linear_cross_entropy")
    b = None if linear_bias is None else float_input(linear_bias, "linear_cross_entropy")
    logits_shape = _check_shapes(x, w, b)
    if tuple(as_tensor(target).shape) == logits_shape and ignore_index is not None:
        raise RuntimeValueError("ignore_index cannot be specified when target contains "
                                "probabilities")
    ignore_index = -100 if ignore_index is None else ignore_index
    rows = math.prod(logits_shape[len(x.shape) - 1:])  # C * d1 * ... * dK
    w2 = w.reshape((rows, x.shape[-1]))
    b2 = None if b is None else b.reshape((rows,))
    logits = F.linear(x, w2, b2).reshape(logits_shape)
    return F.cross_entropy(logits, target, weight=weight, reduction=reduction,
                           ignore_index=ignore_index, label_smoothing=label_smoothing)


class LinearCrossEntropyLoss(_WeightedLoss):
    """torch.nn.LinearCrossEntropyLoss: a ``linear`` submodule (in_features ->
    num_classes * prod(out_features), flat storage, state_dict keys ``linear.weight``
    and ``linear.bias`` with bias=True) followed by cross entropy; ``weight`` (C,) is
    a buffer. forward(input, target) reshapes the weight to (C, *out_features,
    in_features) and calls F.linear_cross_entropy."""

    def __init__(self, in_features: int, num_classes: int, *, out_features: Tuple[int, ...] = (),
                 bias: bool = False, device: Any = None, dtype: Any = None,
                 reduction: str = "mean", weight: Optional[Any] = None,
                 ignore_index: Optional[int] = None, label_smoothing: float = 0.0,
                 options: Any = None) -> None:
        check_factory_kwargs(device, dtype, "LinearCrossEntropyLoss")
        if weight is not None and tuple(as_tensor(weight).shape) != (num_classes,):
            raise RuntimeValueError(f"expected weight shape to be {(num_classes,)}, got "
                                    f"{tuple(as_tensor(weight).shape)}")
        if label_smoothing < 0 or label_smoothing > 1.0:
            raise RuntimeValueError(f"expected label_smoothing to be in range [0, 1], got "
                                    f"{label_smoothing}")
        super().__init__(weight=weight, size_average=None, reduce=None, reduction=reduction)
        self.num_classes = num_classes
        self.out_features = out_features
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        # Linear has no multi-dimensional weights: stored flat, reshaped in forward
        self.linear = Linear(in_features, math.prod(out_features, start=num_classes), bias=bias)
        self.options = options

    def forward(self, input: Any, target: Any) -> Tensor:
        shape = (self.num_classes, *self.out_features)
        linear_weight = self.linear.weight.reshape(shape + (self.linear.in_features,))
        linear_bias = None if self.linear.bias is None else self.linear.bias.reshape(shape)
        return linear_cross_entropy(input, linear_weight, target, linear_bias=linear_bias,
                                    weight=self.weight, reduction=self.reduction,
                                    ignore_index=self.ignore_index,
                                    label_smoothing=self.label_smoothing, options=self.options)

    def extra_repr(self) -> str:
        return (f"in_features={self.linear.in_features}, num_classes={self.num_classes}, "
                f"out_features={self.out_features}, bias={self.linear.bias is not None}, "
                f"reduction={self.reduction}, ignore_index={self.ignore_index}, "
                f"label_smoothing={self.label_smoothing}, options={self.options}")
