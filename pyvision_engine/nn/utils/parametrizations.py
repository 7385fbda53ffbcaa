"""torch.nn.utils.parametrizations: weight_norm and spectral_norm as parametrizations.

Both register a parametrization (nn.utils.parametrize), so the state_dict keys are
torch's: ``parametrizations.weight.original0`` (g) / ``original1`` (v) for
weight_norm, ``parametrizations.weight.original`` plus the power-iteration buffers
``parametrizations.weight.0._u`` / ``._v`` for spectral_norm. ``orthogonal`` is not
provided.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from pyvision_engine.autograd import no_grad
from pyvision_engine.nn.conv_transpose import ConvTranspose1d, ConvTranspose2d
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.utils import parametrize
from pyvision_engine.nn.utils.weight_norm import norm_except_dim
from pyvision_engine.tensor import Tensor

__all__ = ["weight_norm", "spectral_norm"]


class _WeightNorm(Module):
    """``weight = v * (g / ||v||)``, the norm over every dim but ``dim`` (-1 / None:
    the whole tensor), torch's ``_weight_norm``; right_inverse gives (g, v)."""

    def __init__(self, dim: Optional[int] = 0) -> None:
        super().__init__()
        if dim is None:
            dim = -1
        self.dim = dim

    def forward(self, weight_g: Tensor, weight_v: Tensor) -> Tensor:
        return weight_v * (weight_g / norm_except_dim(weight_v, self.dim))

    def right_inverse(self, weight: Tensor) -> Tuple[Tensor, Tensor]:
        weight_g = norm_except_dim(weight, self.dim)
        return weight_g, weight


def weight_norm(module: Module, name: str = "weight", dim: Optional[int] = 0) -> Module:
    """Parametrize ``module.<name>`` as ``g * v / ||v||`` (``original0`` = g, the norm
    over every dim but ``dim``, shaped with ones elsewhere; ``original1`` = v).
    ``dim=None``: one norm over the whole tensor. Returns the module. (torch's
    load_state_dict hook that renames old ``name_g`` / ``name_v`` keys is not
    provided.)"""
    parametrize.register_parametrization(module, name, _WeightNorm(dim), unsafe=True)
    return module


def _normalize(x: np.ndarray, eps: float) -> np.ndarray:
    """torch's F.normalize(x, dim=0, eps): x / max(||x||, eps), float32."""
    norm = np.float32(np.sqrt(np.dot(x.astype(np.float64), x.astype(np.float64))))
    return (x / max(norm, np.float32(eps))).astype(np.float32)


class _SpectralNorm(Module):
    """``weight / sigma``, sigma the largest singular value of the weight as a matrix
    (``dim`` first, the rest flattened), estimated by power iteration with the buffers
    ``_u`` (rows) and ``_v`` (columns): 15 iterations at construction, then
    ``n_power_iterations`` at each evaluation in training mode only. A 1-D weight is
    just normalised. torch's _SpectralNorm."""

    def __init__(self, weight: Tensor, n_power_iterations: int = 1, dim: int = 0,
                 eps: float = 1e-12) -> None:
        super().__init__()
        ndim = weight.ndim
        if dim >= ndim or dim < -ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of "
                             f"[-{ndim}, {ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError("Expected n_power_iterations to be positive, but got "
                             f"n_power_iterations={n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps = eps
        if ndim > 1:
            self.n_power_iterations = n_power_iterations
            weight_mat = self._reshape_weight_to_matrix(weight)
            h, w = weight_mat.shape
            # pve's global generator (pve.manual_seed), as torch's normal_ uses torch's
            from pyvision_engine import randn
            u = randn(h)._data
            v = randn(w)._data
            self.register_buffer("_u", Tensor(_normalize(u, self.eps)))
            self.register_buffer("_v", Tensor(_normalize(v, self.eps)))
            self._power_method(weight_mat, 15)

    def _reshape_weight_to_matrix(self, weight: Tensor) -> Tensor:
        if weight.ndim <= 1:
            raise AssertionError(f"Expected weight to have more than 1 dimension, got {weight.ndim}")
        if self.dim != 0:
            weight = weight.permute(self.dim, *(d for d in range(weight.ndim) if d != self.dim))
        return weight.flatten(1)

    def _power_method(self, weight_mat: Tensor, n_power_iterations: int) -> None:
        """Update ``_u`` and ``_v`` in place (their versions bumped), without autograd."""
        with no_grad():
            w = weight_mat._data
            for _ in range(n_power_iterations):
                np.copyto(self._u._data, _normalize(w @ self._v._data, self.eps))
                np.copyto(self._v._data, _normalize(w.T @ self._u._data, self.eps))
            self._u._bump_version()
            self._v._bump_version()

    def forward(self, weight: Tensor) -> Tensor:
        if weight.ndim == 1:
            from pyvision_engine.nn.functional import normalize
            return normalize(weight, dim=0, eps=self.eps)
        weight_mat = self._reshape_weight_to_matrix(weight)
        if self.training:
            self._power_method(weight_mat, self.n_power_iterations)
        u = self._u.clone()
        v = self._v.clone()
        sigma = (u * weight_mat.matmul(v)).sum()  # vdot(u, mv(W, v)): u, v are constants
        return weight / sigma

    def right_inverse(self, value: Any) -> Any:
        return value


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1,
                  eps: float = 1e-12, dim: Optional[int] = None) -> Module:
    """Parametrize ``module.<name>`` as ``weight / sigma(weight)`` (see _SpectralNorm).
    ``dim`` (default: 1 for ConvTranspose, else 0) is the output dimension. ValueError
    when the module has no tensor ``name``. Returns the module."""
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if dim is None:
        dim = 1 if isinstance(module, (ConvTranspose1d, ConvTranspose2d)) else 0
    parametrize.register_parametrization(
        module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
    return module
