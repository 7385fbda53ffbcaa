"""Normalisation layers: BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from pyvision_engine.autograd import no_grad
from pyvision_engine.nn import functional as F
from pyvision_engine.nn._f_common import RuntimeValueError, check_factory_kwargs
from pyvision_engine.nn._f_norm import batch_norm_scale_shift
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm"]


class _NormBase(Module):
    """What BatchNorm and InstanceNorm share, as torch's _NormBase: the affine weight (C,)
    ones and bias (C,) zeros, the running statistics buffers, their reset, and the
    state-dict rule for num_batches_tracked."""

    _version = 2  # (torch's: version 2 added num_batches_tracked)

    def _init_state(self, num_features: int, eps: float, momentum: Any, affine: bool,
                    track_running_stats: bool, bias: bool) -> None:
        self.num_features = int(num_features)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
            self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    # In-place Tensor ops (fill_) bump each tensor's _version, so caches derived
    # from the values (convolutions with this BatchNorm folded in) are rebuilt.
    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.fill_(0)
            self.running_var.fill_(1)
            self.num_batches_tracked.fill_(0)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        with no_grad():
            for param, value in ((self.weight, 1), (self.bias, 0)):
                if param is not None:
                    param.fill_(value)

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str,
                              local_metadata: Dict[str, Any], strict: bool,
                              missing: List[str], unexpected: List[str],
                              errors: List[str]) -> None:
        """torch's _NormBase rule: a state dict without version metadata (a plain dict) or
        one older than version 2 may lack num_batches_tracked (added in version 2); the
        module then keeps its own count instead of reporting the key missing."""
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing,
                                      unexpected, errors)
        key = prefix + "num_batches_tracked"
        if self.track_running_stats and key in missing:
            version = local_metadata.get("version")
            if version is None or version < 2:
                missing.remove(key)


class _BatchNorm(_NormBase):
    """Shared BatchNorm logic; subclasses say which input ranks they accept.

    Buffers (with track_running_stats): running_mean (C,) zeros, running_var (C,)
    ones, num_batches_tracked int64 scalar. In training the batch statistics
    normalise and the running ones are updated with ``momentum`` (None: the
    cumulative average 1 / num_batches_tracked); in eval the running ones are
    used. Parameters (affine): weight (C,) ones, bias (C,) zeros (none with
    ``bias=False``, keyword-only as in torch 2.x)."""

    _ranks: Tuple[int, ...] = ()
    _shape_text = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Any = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device: Any = None,
                 dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        check_factory_kwargs(device, dtype, name)
        if not isinstance(num_features, (int, np.integer)) or num_features <= 0:
            raise ValueError(f"{name}: num_features must be a positive int, got {num_features!r}")
        self._init_state(num_features, eps, momentum, affine, track_running_stats, bias)

    def _check_input(self, x: Tensor) -> None:
        name = type(self).__name__
        if x.ndim not in self._ranks:
            raise ValueError(f"{name}: expected {self._shape_text} input, got shape {x.shape}")
        # num_features 0: a LazyBatchNorm without affine parameters or running statistics
        # (nothing to infer, so it stays 0 as torch's), which any channel count suits
        if x.shape[1] != self.num_features and self.num_features != 0:
            raise RuntimeValueError(f"{name}({self.num_features}): expected input with "
                             f"{self.num_features} channels (dim 1), got shape {x.shape}")

    def forward(self, input: Any) -> Tensor:
        return self._normalize(input)

    def _normalize(self, input: Any, relu_max: Optional[float] = None) -> Tensor:
        """forward, or forward clamped to [0, relu_max] in the same kernel pass, both
        directions (inf: ReLU, 6: ReLU6; the training fusion of Conv2d -> BatchNorm2d
        -> ReLU, nn/fusion.py)."""
        x = as_tensor(input)
        self._check_input(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked._data += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked._data)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        try:
            return F.batch_norm(x, self.running_mean if track else None,
                                self.running_var if track else None, self.weight, self.bias,
                                use_batch_stats, factor, self.eps, _fuse_relu=relu_max)
        except ValueError as e:
            raise ValueError(f"{type(self).__name__}: {e}") from None

    def fusion_scale_shift(self) -> Tuple[np.ndarray, np.ndarray]:
        """Fusion hook: per-channel (scale, shift), float32 (C,), such that in eval
        mode ``bn(x) == x * scale[c] + shift[c]``. A preceding convolution folds
        it as ``W' = W * scale[:, None, None, None]``, ``b' = b * scale + shift``.
        Needs running statistics (track_running_stats=True)."""
        if self.running_mean is None or self.running_var is None:
            raise ValueError(f"{type(self).__name__}: fusion needs running statistics "
                             "(track_running_stats=True)")
        return batch_norm_scale_shift(
            self.running_mean._data, self.running_var._data,
            None if self.weight is None else self.weight._data,
            None if self.bias is None else self.bias._data, self.eps)

    def extra_repr(self) -> str:
        # torch 2.x's text, bias included
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) input over N, H, W per channel."""

    _ranks = (4,)
    _shape_text = "4-D (N, C, H, W)"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) input per channel."""

    _ranks = (2, 3)
    _shape_text = "2-D (N, C) or 3-D (N, C, L)"


class GroupNorm(Module):
    """Normalise (N, C, *) over groups of C / num_groups channels; affine (C,)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device: Any = None, dtype: Any = None, *,
                 bias: bool = True) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, "GroupNorm")
        if num_groups <= 0 or num_channels % num_groups != 0:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        if affine:
            self.weight = Parameter(np.ones(num_channels, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = Parameter(np.zeros(num_channels, dtype=np.float32))
        else:
            self.register_parameter("bias", None)

    def forward(self, input: Any) -> Tensor:
        x = as_tensor(input)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise RuntimeValueError(f"GroupNorm({self.num_groups}, {self.num_channels}): expected input "
                             f"(N, {self.num_channels}, *), got shape {x.shape}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class LayerNorm(Module):
    """Normalise over the trailing normalized_shape dims; elementwise affine of that shape."""

    def __init__(self, normalized_shape: Union[int, Sequence[int]], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, "LayerNorm")
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dtype=np.float32))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Any) -> Tensor:
        try:
            return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)
        except ValueError as e:  # (keeps the class: RuntimeValueError where torch raises)
            raise type(e)(f"LayerNorm{self.normalized_shape}: {e}") from None

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


__all__ += ["LocalResponseNorm"]


class LocalResponseNorm(Module):
    """AlexNet's local response normalisation across ``size`` neighbouring channels:
    b_c = a_c / (k + alpha / size * sum a_c'^2) ** beta (torch's formula)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input: Any) -> Tensor:
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class RMSNorm(Module):
    """torch.nn.RMSNorm: ``x / sqrt(mean(x**2 over the trailing normalized_shape dims) +
    eps) * weight`` (weight ones, no bias); eps None means float32's machine epsilon."""

    def __init__(self, normalized_shape: Union[int, Sequence[int]], eps: Optional[float] = None,
                 elementwise_affine: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, "RMSNorm")
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) \
            else tuple(normalized_shape)
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            with no_grad():
                self.weight.fill_(1.0)

    def forward(self, x: Any) -> Tensor:
        return F.rms_norm(x, list(self.normalized_shape), self.weight, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


__all__ += ["RMSNorm"]
