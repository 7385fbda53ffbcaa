"""Adamax (torch.optim.Adamax): Adam with the infinity norm."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from pyvision_engine import _C
from pyvision_engine.optim import _validate as V
from pyvision_engine.optim.optimizer import Optimizer, ParamsT

__all__ = ["Adamax"]


class Adamax(Optimizer):
    """Adamax: ``m = lerp(m, g, 1 − β1)``, ``u = max(β2·u, |g| + eps)``,
    ``θ = θ − lr/(1 − β1^t) · m/u`` (L2 weight decay only).

    Args:
        lr: default 2e-3. betas: default (0.9, 0.999). eps: default 1e-8.
        weight_decay: default 0. maximize: default False.
    """

    def __init__(self, params: ParamsT, lr: float = 2e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, foreach: Optional[bool] = None, *,
                 maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False) -> None:
        V.check_lr(lr)
        V.check_eps(eps)
        V.check_betas(betas)
        V.check_weight_decay(weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)

    def _tensor_state_spec(self, group: Dict[str, Any]) -> List[Tuple[str, float]]:
        return [("exp_avg", 0.0), ("exp_inf", 0.0)]

    def _update(self, group, lay, i, param, grad) -> None:
        step = self._advance_step(lay, i)
        beta1, beta2 = group["betas"]
        clr = group["lr"] / (1 - beta1 ** step)
        _C.optim_adamax(param, grad, lay.flat_state("exp_avg", i), lay.flat_state("exp_inf", i),
                        1 - beta1, beta2, group["eps"], group["weight_decay"], -clr,
                        group["maximize"])
