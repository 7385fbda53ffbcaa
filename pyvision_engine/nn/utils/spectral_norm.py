"""spectral_norm / remove_spectral_norm: torch.nn.utils' hook form of spectral normalisation.

``name`` becomes the parameter ``name_orig`` and the buffers ``name_u`` / ``name_v``
(torch's state_dict keys); a forward pre-hook sets ``name = W / sigma`` before every
call, with sigma = u^T W v after ``n_power_iterations`` power iterations in training
mode (u and v updated in place) and from the stored u, v in eval mode.
"""

from __future__ import annotations

from typing import Any, Optional, TypeVar

import numpy as np

from pyvision_engine.autograd import no_grad
from pyvision_engine.nn import init
from pyvision_engine.nn._f_distance import normalize
from pyvision_engine.nn.conv_transpose import ConvTranspose1d, ConvTranspose2d
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.nn.utils.weight_norm import remove_norm_hook
from pyvision_engine.tensor import Tensor

__all__ = ["SpectralNorm", "spectral_norm", "remove_spectral_norm"]

T_module = TypeVar("T_module", bound=Module)


class SpectralNorm:
    """The forward pre-hook (torch's class and attributes)."""

    _version: int = 1

    def __init__(self, name: str = "weight", n_power_iterations: int = 1, dim: int = 0,
                 eps: float = 1e-12) -> None:
        if n_power_iterations <= 0:
            raise ValueError("spectral_norm: Expected n_power_iterations to be positive, but "
                             f"got n_power_iterations={n_power_iterations}")
        self.name = name
        self.dim = dim
        self.n_power_iterations = n_power_iterations
        self.eps = eps

    def reshape_weight_to_matrix(self, weight: Tensor) -> Tensor:
        if self.dim != 0:  # the output dim first
            weight = weight.permute(self.dim, *[d for d in range(weight.ndim) if d != self.dim])
        return weight.reshape(weight.shape[0], -1)

    def compute_weight(self, module: Module, do_power_iteration: bool) -> Tensor:
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        weight_mat = self.reshape_weight_to_matrix(weight)
        if do_power_iteration:
            with no_grad():
                for _ in range(self.n_power_iterations):
                    # in place: the buffers carry the estimate to the next call
                    v = normalize(weight_mat.t() @ u, dim=0, eps=self.eps, out=v)
                    u = normalize(weight_mat @ v, dim=0, eps=self.eps, out=u)
                # copies, so a graph from this call does not see the next call's update
                u, v = u.clone(), v.clone()
        sigma = u.dot(weight_mat @ v)
        return weight / sigma

    def remove(self, module: Module) -> None:
        with no_grad():
            weight = self.compute_weight(module, do_power_iteration=False)
        for suffix in ("", "_u", "_v", "_orig"):
            delattr(module, self.name + suffix)
        module.register_parameter(self.name, Parameter(weight._data))

    def __call__(self, module: Module, inputs: Any) -> None:
        setattr(module, self.name,
                self.compute_weight(module, do_power_iteration=module.training))

    @staticmethod
    def apply(module: Module, name: str, n_power_iterations: int, dim: int,
              eps: float) -> "SpectralNorm":
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm) and hook.name == name:
                raise RuntimeError(f"spectral_norm: Cannot register two spectral_norm hooks on "
                                   f"the same parameter {name}")
        fn = SpectralNorm(name, n_power_iterations, dim, eps)
        weight = module._parameters[name]
        if weight is None:
            raise ValueError(f"`SpectralNorm` cannot be applied as parameter `{name}` is None")
        with no_grad():
            h, w = fn.reshape_weight_to_matrix(weight).shape
            # random starting vectors, from the global generator as torch's normal_
            u = normalize(init.normal_(Tensor(np.empty(h, np.float32))), dim=0, eps=fn.eps)
            v = normalize(init.normal_(Tensor(np.empty(w, np.float32))), dim=0, eps=fn.eps)
        delattr(module, name)
        module.register_parameter(name + "_orig", weight)
        # torch keeps ``name`` as a plain attribute (code may read it before a forward)
        setattr(module, name, weight.data)
        module.register_buffer(name + "_u", u)
        module.register_buffer(name + "_v", v)
        module.register_forward_pre_hook(fn)
        return fn


def spectral_norm(module: T_module, name: str = "weight", n_power_iterations: int = 1,
                  eps: float = 1e-12, dim: Optional[int] = None) -> T_module:
    """Divide ``module.<name>`` by its spectral norm (power iteration) before every call;
    ``dim`` is the output dim (default 0, 1 for ConvTranspose). Returns the module."""
    if dim is None:
        dim = 1 if isinstance(module, (ConvTranspose1d, ConvTranspose2d)) else 0
    SpectralNorm.apply(module, name, n_power_iterations, dim, eps)
    return module


def remove_spectral_norm(module: T_module, name: str = "weight") -> T_module:
    """Replace ``name_orig`` / ``name_u`` / ``name_v`` by the normalised ``name`` parameter."""
    return remove_norm_hook(module, SpectralNorm, name, "spectral_norm")
