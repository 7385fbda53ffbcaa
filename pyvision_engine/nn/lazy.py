"""Lazy modules (torch.nn.modules.lazy): layers whose input size (in_features,
in_channels, num_features) is inferred from the first input.

Before the first forward their weights are UninitializedParameter (and the norm
layers' running statistics UninitializedBuffer). The first call runs a forward
pre-hook that reads the size from the input, materializes the parameters and
initializes them with the regular layer's own ``reset_parameters``; the module then
becomes the regular class (``type(m) is nn.Conv2d``), as torch's ``cls_to_become``.
Loading a state dict into a lazy module materializes the parameters with the loaded
tensors' shapes first (torch's ``_lazy_load_hook``).

Deliberate difference from torch 2.13: torch lets an optimizer be built over
uninitialized parameters (they are materialized in place later); pve's optimizers
lay their parameters out in one arena when they are built, so building one over an
uninitialized parameter raises torch's uninitialized-parameter ValueError instead
(run a forward first)."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any, Dict, List, Optional

import numpy as np

from pyvision_engine.nn._f_common import check_factory_kwargs
from pyvision_engine.nn.conv import Conv1d, Conv2d
from pyvision_engine.nn.conv_transpose import ConvTranspose1d, ConvTranspose2d
from pyvision_engine.nn.instancenorm import InstanceNorm1d, InstanceNorm2d
from pyvision_engine.nn.linear import Linear
from pyvision_engine.nn.module import Module, _as_array
from pyvision_engine.nn.normalization import BatchNorm1d, BatchNorm2d
from pyvision_engine.nn.parameter import UninitializedBuffer, UninitializedParameter, is_lazy
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["LazyModuleMixin", "LazyLinear", "LazyConv1d", "LazyConv2d", "LazyConvTranspose1d",
           "LazyConvTranspose2d", "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyInstanceNorm1d",
           "LazyInstanceNorm2d"]


class LazyModuleMixin:
    """torch's LazyModuleMixin: put first in the bases of a lazy layer, which defines
    ``initialize_parameters(*args, **kwargs)`` (materialize and reset its parameters from
    the first forward's arguments) and ``cls_to_become``."""

    cls_to_become: Optional[type] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy_setup()

    def _lazy_setup(self) -> None:
        # with_kwargs: the hook gets forward's keyword arguments too (torch registers it so)
        self._initialize_hook = self.register_forward_pre_hook(  # type: ignore[attr-defined]
            self._infer_parameters, with_kwargs=True)

    def has_uninitialized_params(self) -> bool:
        """Whether a parameter or buffer of this module (not its children) is still
        uninitialized."""
        return any(is_lazy(t) for t in itertools.chain(
            self._parameters.values(), self._buffers.values()))  # type: ignore[attr-defined]

    def initialize_parameters(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            f"initialize_parameters is not implemented for {type(self).__name__}")

    def _infer_parameters(self, module: Module, args: Any, kwargs: Any = None) -> None:
        module.initialize_parameters(*args, **(kwargs or {}))
        if module.has_uninitialized_params():
            raise RuntimeError(f"module {type(module).__name__} has not been fully initialized")
        module._initialize_hook.remove()
        delattr(module, "_initialize_hook")
        if module.cls_to_become is not None:
            object.__setattr__(module, "__class__", module.cls_to_become)
            Module._structure_changed()

    def _save_to_state_dict(self, destination: Dict[str, Any], prefix: str,
                            keep_vars: bool) -> None:
        """Module's entries, with the uninitialized ones themselves (as torch's: they
        cannot be detached)."""
        for name, p in self._parameters.items():  # type: ignore[attr-defined]
            if p is not None:
                destination[prefix + name] = p if (keep_vars or is_lazy(p)) else p.detach()
        for name, b in self._buffers.items():  # type: ignore[attr-defined]
            if b is not None and name not in self._non_persistent_buffers:  # type: ignore
                destination[prefix + name] = b if (keep_vars or is_lazy(b)) else b.detach()

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str,
                              local_metadata: Dict[str, Any], strict: bool,
                              missing: List[str], unexpected: List[str],
                              errors: List[str]) -> None:
        """torch's _lazy_load_hook: an uninitialized entry takes the shape of the loaded
        tensor (then the values are copied as usual); an uninitialized entry given an
        uninitialized value stays as it is."""
        both_lazy = []
        for name, t in itertools.chain(self._parameters.items(),  # type: ignore[attr-defined]
                                       self._buffers.items()):  # type: ignore[attr-defined]
            key = prefix + name
            if t is None or key not in state_dict or not is_lazy(t):
                continue
            value = state_dict[key]
            if is_lazy(value):
                both_lazy.append(key)
            else:
                t.materialize(_as_array(value).shape)
        if both_lazy:
            metadata = getattr(state_dict, "_metadata", None)
            state_dict = OrderedDict((k, v) for k, v in state_dict.items() if k not in both_lazy)
            if metadata is not None:
                state_dict._metadata = metadata  # type: ignore[attr-defined]
        super()._load_from_state_dict(state_dict, prefix, local_metadata,  # type: ignore[misc]
                                      strict, missing, unexpected, errors)
        for key in both_lazy:
            if key in missing:
                missing.remove(key)


# ----------------------------------------------------------------------------- Linear
class LazyLinear(LazyModuleMixin, Linear):
    """A Linear whose in_features is inferred from the first input's last dimension."""

    cls_to_become = Linear

    def __init__(self, out_features: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        check_factory_kwargs(device, dtype, "LazyLinear")
        super().__init__(0, 0, False)
        self.weight = UninitializedParameter()
        self.out_features = out_features
        if bias:
            self.bias = UninitializedParameter()

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input: Any) -> None:  # type: ignore[override]
        x = as_tensor(input)
        if self.has_uninitialized_params():
            self.in_features = int(x.shape[-1])
            self.weight.materialize((self.out_features, self.in_features))
            if self.bias is not None:
                self.bias.materialize((self.out_features,))
            self.reset_parameters()
        if self.in_features == 0:  # the weight came from a state dict: check and adopt
            if x.shape[-1] != self.weight.shape[-1]:
                raise AssertionError(
                    f"LazyLinear: the in_features inferred from input: {x.shape[-1]} is not "
                    f"equal to in_features from self.weight: {self.weight.shape[-1]}")
            self.in_features = int(x.shape[-1])


# ------------------------------------------------------------------------ convolutions
class _LazyConvXdMixin(LazyModuleMixin):
    """in_channels from dim 1 of a batched input (dim 0 of an unbatched one), then the
    weight of the regular layer's shape and its reset_parameters (torch's init)."""

    _transposed = False

    def _lazy_conv_init(self, out_channels: int, bias: bool) -> None:
        self.weight = UninitializedParameter()
        self.out_channels = out_channels
        if bias:
            self.bias = UninitializedParameter()

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_channels != 0:
            super().reset_parameters()  # type: ignore[misc]

    def _get_in_channels(self, x: Tensor) -> int:
        spatial = self._dims  # type: ignore[attr-defined]
        if x.ndim not in (spatial + 1, spatial + 2):
            raise RuntimeError(
                f"Expected {spatial + 1}D (unbatched) or {spatial + 2}D (batched) input to "
                f"{type(self).__name__}, but got input of size: {tuple(x.shape)}")
        return int(x.shape[1] if x.ndim == spatial + 2 else x.shape[0])

    def initialize_parameters(self, input: Any, *args: Any, **kwargs: Any) -> None:
        if self.has_uninitialized_params():
            self.in_channels = self._get_in_channels(as_tensor(input))
            if self.in_channels % self.groups != 0:
                raise ValueError(f"{type(self).__name__}: in_channels ({self.in_channels}) "
                                 f"must be divisible by groups ({self.groups})")
            if self._transposed:
                shape = (self.in_channels, self.out_channels // self.groups)
            else:
                shape = (self.out_channels, self.in_channels // self.groups)
            self.weight.materialize(shape + tuple(self.kernel_size))
            if self.bias is not None:
                self.bias.materialize((self.out_channels,))
            self.reset_parameters()


class LazyConv1d(_LazyConvXdMixin, Conv1d):
    """A Conv1d whose in_channels is inferred from the first input."""

    cls_to_become = Conv1d

    def __init__(self, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__(0, 0, kernel_size, stride, padding, dilation, groups, False,
                         padding_mode, device, dtype)
        self._lazy_conv_init(out_channels, bias)


class LazyConv2d(_LazyConvXdMixin, Conv2d):
    """A Conv2d whose in_channels is inferred from the first input."""

    cls_to_become = Conv2d

    def __init__(self, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__(0, 0, kernel_size, stride, padding, dilation, groups, False,
                         padding_mode, device, dtype)
        self._lazy_conv_init(out_channels, bias)


class LazyConvTranspose1d(_LazyConvXdMixin, ConvTranspose1d):
    """A ConvTranspose1d whose in_channels is inferred from the first input."""

    cls_to_become = ConvTranspose1d
    _transposed = True

    def __init__(self, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(0, 0, kernel_size, stride, padding, output_padding, groups, False,
                         dilation, padding_mode, device, dtype)
        self._lazy_conv_init(out_channels, bias)


class LazyConvTranspose2d(_LazyConvXdMixin, ConvTranspose2d):
    """A ConvTranspose2d whose in_channels is inferred from the first input."""

    cls_to_become = ConvTranspose2d
    _transposed = True

    def __init__(self, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(0, 0, kernel_size, stride, padding, output_padding, groups, False,
                         dilation, padding_mode, device, dtype)
        self._lazy_conv_init(out_channels, bias)


# ------------------------------------------------------------------------------ norms
class _LazyNormBase(LazyModuleMixin):
    """torch's _LazyNormBase: num_features from dim 1 of the first input (torch's rule,
    for unbatched inputs too). affine and track_running_stats default to True for the
    lazy instance norms as well, as torch's."""

    def __init__(self, eps: float = 1e-5, momentum: Any = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None, *,
                 bias: bool = True) -> None:
        # The regular constructors' size check (BatchNorm's requires num_features > 0) is
        # skipped: a lazy layer starts with num_features 0, as torch's.
        Module.__init__(self)  # type: ignore[arg-type]
        check_factory_kwargs(device, dtype, type(self).__name__)
        self._init_state(0, eps, momentum, False, False, False)  # type: ignore[attr-defined]
        self._lazy_setup()
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = UninitializedParameter()
            if bias:
                self.bias = UninitializedParameter()
        if track_running_stats:
            self.running_mean = UninitializedBuffer()
            self.running_var = UninitializedBuffer()
            self.num_batches_tracked = Tensor(np.array(0, dtype=np.int64))

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.num_features != 0:
            super().reset_parameters()  # type: ignore[misc]

    def initialize_parameters(self, input: Any) -> None:  # type: ignore[override]
        if self.has_uninitialized_params():
            self.num_features = int(as_tensor(input).shape[1])
            if self.affine:
                self.weight.materialize((self.num_features,))
                if self.bias is not None:
                    self.bias.materialize((self.num_features,))
            if self.track_running_stats:
                self.running_mean.materialize((self.num_features,))
                self.running_var.materialize((self.num_features,))
            self.reset_parameters()


class LazyBatchNorm1d(_LazyNormBase, BatchNorm1d):
    """A BatchNorm1d whose num_features is inferred from dim 1 of the first input."""

    cls_to_become = BatchNorm1d


class LazyBatchNorm2d(_LazyNormBase, BatchNorm2d):
    """A BatchNorm2d whose num_features is inferred from dim 1 of the first input."""

    cls_to_become = BatchNorm2d


class LazyInstanceNorm1d(_LazyNormBase, InstanceNorm1d):
    """An InstanceNorm1d whose num_features is inferred from dim 1 of the first input."""

    cls_to_become = InstanceNorm1d


class LazyInstanceNorm2d(_LazyNormBase, InstanceNorm2d):
    """An InstanceNorm2d whose num_features is inferred from dim 1 of the first input."""

    cls_to_become = InstanceNorm2d

