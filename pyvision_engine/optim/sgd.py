"""SGD: plain, mini-batch or stochastic gradient descent, with momentum (torch.optim.SGD)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine.optim import _validate as V
from pyvision_engine.optim.optimizer import Optimizer, ParamsT, _GroupLayout
from pyvision_engine.tensor import Tensor

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent (torch.optim.SGD semantics).

    With ``g = ∇θ`` (``−∇θ`` if maximize) ``+ weight_decay·θ``: if momentum μ ≠ 0,
    ``b = g`` on the first step, then ``b = μ·b + (1 − dampening)·g``;
    ``g = g + μ·b`` (nesterov) or ``g = b``; finally ``θ = θ − lr·g``.
    Batch, mini-batch and stochastic GD differ only in the batch the gradient
    comes from (see examples/gradient_descent_variants.py).

    Args:
        params: parameters or parameter groups.
        lr: learning rate (default 1e-3).
        momentum: μ (default 0). dampening: τ (default 0).
        weight_decay: L2 penalty λ (default 0).
        nesterov: Nesterov momentum; needs μ > 0 and τ = 0 (default False).
        maximize: maximize the objective (default False).
        foreach, fused: accepted for torch compatibility; every step here is fused.
    """

    _scalar_state: Dict[str, float] = {}

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0,
                 dampening: float = 0, weight_decay: float = 0, nesterov: bool = False, *,
                 maximize: bool = False, foreach: Optional[bool] = None,
                 differentiable: bool = False, fused: Optional[bool] = None) -> None:
        # SGD's checks are `x < 0.0` in torch (so a NaN passes), unlike the others'.
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)
        V.check_fused(fused, foreach, differentiable)

    def _tensor_state_spec(self, group: Dict[str, Any]) -> List[Tuple[str, float]]:
        return [("momentum_buffer", 0.0)] if group["momentum"] != 0 else []

    # The momentum buffer appears in state[p] only once it exists (after the
    # parameter's first step with momentum), as in torch.
    @staticmethod
    def _has_buf(lay: _GroupLayout) -> np.ndarray:
        if not hasattr(lay, "has_buf") or len(lay.has_buf) != len(lay.params):
            lay.has_buf = np.zeros(len(lay.params), dtype=bool)
        return lay.has_buf

    def _exposes_state(self, key: str, lay: _GroupLayout, i: int) -> bool:
        return key != "momentum_buffer" or bool(self._has_buf(lay)[i])

    def _uniform(self, lay: _GroupLayout) -> bool:
        has = self._has_buf(lay)
        return bool(lay.initialized.all()) and (has.all() or not has.any())

    def _fused_safe(self, group: Dict[str, Any]) -> bool:
        return True

    def _after_adopt(self, lay: _GroupLayout, i: int, entry: Dict[str, Any]) -> None:
        self._has_buf(lay)[i] = entry.get("momentum_buffer") is not None
        self._register_state(lay, i)

    def _update(self, group, lay, i, param, grad) -> None:
        momentum = group["momentum"]
        buf = None
        first = False
        if momentum != 0:
            has = self._has_buf(lay)
            first = not (has.all() if i is None else has[i])
            buf = lay.flat_state("momentum_buffer", i)
        _C.optim_sgd(param, grad, buf, group["lr"], momentum, group["dampening"],
                     group["weight_decay"], group["nesterov"], group["maximize"], first)
        if momentum != 0 and first:
            idxs = range(len(lay.params)) if i is None else [i]
            for j in idxs:
                self._has_buf(lay)[j] = True
                self._register_state(lay, j)
