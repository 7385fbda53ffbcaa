"""Adadelta (torch.optim.Adadelta)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from pyvision_engine import _C
from pyvision_engine.optim import _validate as V
from pyvision_engine.optim.optimizer import Optimizer, ParamsT

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012) with torch's arithmetic.

    ``s = ρ·s + (1 − ρ)·g²``, ``δ = sqrt(a + eps)/sqrt(s + eps)·g``,
    ``a = ρ·a + (1 − ρ)·δ²``, ``θ −= lr·δ``.

    Args:
        lr: default 1.0. rho: default 0.9. eps: default 1e-6.
        weight_decay: default 0. maximize: default False.
    """

    def __init__(self, params: ParamsT, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, foreach: Optional[bool] = None, *,
                 capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False) -> None:
        V.check_lr(lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        V.check_eps(eps)
        V.check_weight_decay(weight_decay)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def _tensor_state_spec(self, group: Dict[str, Any]) -> List[Tuple[str, float]]:
        return [("square_avg", 0.0), ("acc_delta", 0.0)]

    def _update(self, group, lay, i, param, grad) -> None:
        self._advance_step(lay, i)
        rho = group["rho"]
        _C.optim_adadelta(param, grad, lay.flat_state("square_avg", i),
                          lay.flat_state("acc_delta", i), rho, 1 - rho, group["eps"],
                          group["weight_decay"], -group["lr"], group["maximize"])
