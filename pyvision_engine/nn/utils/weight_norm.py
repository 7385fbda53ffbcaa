"""weight_norm / remove_weight_norm: torch.nn.utils' hook form of weight normalisation.

``name`` is replaced by the parameters ``name_g`` (magnitude) and ``name_v``
(direction); a forward pre-hook recomputes ``name = g * v / ||v||`` (a plain attribute,
differentiable in g and v) before every call, so state_dict keys are torch's.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, TypeVar

from pyvision_engine.autograd import no_grad
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.tensor import Tensor

__all__ = ["WeightNorm", "weight_norm", "remove_weight_norm"]

T_module = TypeVar("T_module", bound=Module)


def norm_except_dim(v: Tensor, dim: int) -> Tensor:
    """torch.norm_except_dim(v, 2, dim): the 2-norm over every dim but ``dim``, shaped
    with ones except there; dim = -1 (torch's code for None) is the whole tensor's, 0-d."""
    if dim == -1:
        return v.norm()
    d = dim % v.ndim
    moved = v if d == 0 else v.transpose(0, d)
    shape = [1] * v.ndim
    shape[d] = v.shape[d]
    return moved.reshape(v.shape[d], -1).norm(2, 1).reshape(shape)


class WeightNorm:
    """The forward pre-hook (torch's class and attributes: ``name``, ``dim``)."""

    def __init__(self, name: str, dim: Optional[int]) -> None:
        self.name = name
        self.dim = -1 if dim is None else dim

    def compute_weight(self, module: Module) -> Tensor:
        g = getattr(module, self.name + "_g")
        v = getattr(module, self.name + "_v")
        return v * (g / norm_except_dim(v, self.dim))

    @staticmethod
    def apply(module: Module, name: str, dim: Optional[int]) -> "WeightNorm":
        warnings.warn("`nn.utils.weight_norm` is deprecated in torch in favor of "
                      "`torch.nn.utils.parametrizations.weight_norm`; this engine keeps the "
                      "hook form, with torch's state_dict keys.", FutureWarning, stacklevel=3)
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm) and hook.name == name:
                raise RuntimeError(f"weight_norm: Cannot register two weight_norm hooks on the "
                                   f"same parameter {name}")
        fn = WeightNorm(name, dim)
        weight = getattr(module, name)
        del module._parameters[name]
        with no_grad():
            g = norm_except_dim(weight, fn.dim)
        module.register_parameter(name + "_g", Parameter(g._data))
        module.register_parameter(name + "_v", Parameter(weight._data))
        setattr(module, name, fn.compute_weight(module))
        module.register_forward_pre_hook(fn)
        return fn

    def remove(self, module: Module) -> None:
        weight = self.compute_weight(module)
        delattr(module, self.name)
        del module._parameters[self.name + "_g"]
        del module._parameters[self.name + "_v"]
        setattr(module, self.name, Parameter(weight._data))

    def __call__(self, module: Module, inputs: Any) -> None:
        setattr(module, self.name, self.compute_weight(module))


def weight_norm(module: T_module, name: str = "weight", dim: Optional[int] = 0) -> T_module:
    """Reparameterise ``module.<name>`` as ``g * v / ||v||`` (norm over every dim but
    ``dim``; ``dim=None``: over the whole tensor). Returns the module."""
    WeightNorm.apply(module, name, dim)
    return module


def remove_norm_hook(module: T_module, hook_type: type, name: str, what: str) -> T_module:
    """Undo the ``hook_type`` reparametrisation of ``module.<name>`` (its ``remove``
    restores a plain parameter) and drop the hook; ``what`` names it in the error
    (remove_weight_norm and remove_spectral_norm)."""
    for k, hook in module._forward_pre_hooks.items():
        if isinstance(hook, hook_type) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[k]
            return module
    raise ValueError(f"remove_{what}: {what} of '{name}' not found in {module}")


def remove_weight_norm(module: T_module, name: str = "weight") -> T_module:
    """Fold ``g`` and ``v`` back into a plain ``name`` parameter and drop the hook."""
    return remove_norm_hook(module, WeightNorm, name, "weight_norm")
