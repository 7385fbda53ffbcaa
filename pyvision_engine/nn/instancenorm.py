"""InstanceNorm1d, InstanceNorm2d: per-sample, per-channel normalisation (torch's layers
and defaults: affine=False, track_running_stats=False)."""

from __future__ import annotations

import warnings
from typing import Any, Dict, List

import numpy as np

from pyvision_engine.nn import functional as F
from pyvision_engine.nn._f_common import check_factory_kwargs
from pyvision_engine.nn.normalization import _NormBase
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["InstanceNorm1d", "InstanceNorm2d"]


class _InstanceNorm(_NormBase):
    """torch's _InstanceNorm over _NormBase: weight (C,) ones and bias (C,) zeros with
    ``affine``; running_mean / running_var / num_batches_tracked buffers with
    ``track_running_stats`` (the count stays 0: torch's instance norm never advances it).
    Training, or no running statistics: each instance's own statistics (the running
    ones, if tracked, updated with ``momentum``; None means 0). Eval with tracked
    statistics: the running ones."""

    _no_batch_dim = 3  # the rank of an unbatched input (2-D: (C, H, W))

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Any = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device: Any = None,
                 dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        check_factory_kwargs(device, dtype, name)
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)):
            raise TypeError(f"{name}: num_features must be an int, got {num_features!r}")
        if num_features < 0:
            raise ValueError(f"{name}: num_features must be non-negative, got {num_features}")
        self._init_state(num_features, eps, momentum, affine, track_running_stats, bias)

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str,
                              local_metadata: Dict[str, Any], strict: bool,
                              missing: List[str], unexpected: List[str],
                              errors: List[str]) -> None:
        """torch's rules for state dicts without version metadata (a plain dict): running
        statistics given to a layer that does not track them are an error (checkpoints
        from before torch 0.4), and a missing num_batches_tracked is not."""
        version = local_metadata.get("version")
        name = type(self).__name__
        if version is None and not self.track_running_stats:
            keys = [prefix + k for k in ("running_mean", "running_var") if prefix + k in state_dict]
            if keys:
                errors.append(
                    "Unexpected running stats buffer(s) {names} for {klass} with "
                    "track_running_stats=False. If state_dict is a checkpoint saved before "
                    "0.4.0, this may be expected because {klass} does not track running stats by "
                    "default since 0.4.0. Please remove these keys from state_dict. If the "
                    "running stats are actually needed, instead set track_running_stats=True in "
                    "{klass} to enable them. See the documentation of {klass} for details."
                    .format(names=" and ".join(f'"{k}"' for k in keys), klass=name))
                state_dict = {k: v for k, v in state_dict.items() if k not in keys}
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing,
                                      unexpected, errors)

    def _check_input_dim(self, x: Tensor) -> None:
        unbatched = self._no_batch_dim
        if x.ndim not in (unbatched, unbatched + 1):
            raise ValueError(f"{type(self).__name__}: expected {unbatched}D or {unbatched + 1}D "
                             f"input (got {x.ndim}D input)")

    def forward(self, input: Any) -> Tensor:
        name = type(self).__name__
        x = as_tensor(input)
        self._check_input_dim(x)
        feature_dim = x.ndim - self._no_batch_dim
        if x.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(f"{name}: expected input's size at dim={feature_dim} to match "
                                 f"num_features ({self.num_features}), but got: "
                                 f"{x.shape[feature_dim]}.")
            warnings.warn(f"input's size at dim={feature_dim} does not match num_features. You "
                          "can silence this warning by not passing in num_features, which is "
                          "not used because affine=False", stacklevel=2)
        unbatched = x.ndim == self._no_batch_dim
        if unbatched:
            x = x.reshape((1,) + tuple(x.shape))
        try:
            y = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                self.training or not self.track_running_stats,
                                self.momentum if self.momentum is not None else 0.0, self.eps)
        except ValueError as e:
            raise type(e)(f"{name}: {e}") from None
        return y.reshape(tuple(y.shape[1:])) if unbatched else y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of (N, C, L) or (C, L) input."""

    _no_batch_dim = 2


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of (N, C, H, W) or (C, H, W) input."""
