"""RAdam (torch.optim.RAdam): Adam with a rectified adaptive learning rate."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from pyvision_engine import _C
from pyvision_engine.optim import _validate as V
from pyvision_engine.optim.optimizer import Optimizer, ParamsT

__all__ = ["RAdam"]


class RAdam(Optimizer):
    """RAdam (Liu et al. 2020) with torch's arithmetic.

    m, v as in Adam; ``ρ∞ = 2/(1 − β2) − 1``, ``ρ_t = ρ∞ − 2tβ2^t/(1 − β2^t)``.
    If ``ρ_t > 5``: ``θ −= m/(1 − β1^t)·lr·sqrt(1 − β2^t)/(sqrt(v) + eps)·r_t``
    with the rectification ``r_t``; else ``θ −= m/(1 − β1^t)·lr``.

    Args:
        lr: default 1e-3. betas: default (0.9, 0.999). eps: default 1e-8.
        weight_decay: default 0. decoupled_weight_decay: default False.
        maximize: default False.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *,
                 foreach: Optional[bool] = None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False) -> None:
        V.check_lr(lr)
        V.check_eps(eps)
        V.check_betas(betas)
        V.check_weight_decay(weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _tensor_state_spec(self, group: Dict[str, Any]) -> List[Tuple[str, float]]:
        return [("exp_avg", 0.0), ("exp_avg_sq", 0.0)]

    def _update(self, group, lay, i, param, grad) -> None:
        step = self._advance_step(lay, i)
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        rectified = rho_t > 5.0
        rect = 1.0
        if rectified:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                    / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        _C.optim_radam(param, grad, lay.flat_state("exp_avg", i), lay.flat_state("exp_avg_sq", i),
                       1 - beta1, beta2, 1 - beta2, wd, 1 - lr * wd, bias_correction1, lr,
                       bias_correction2 ** 0.5, group["eps"], rect, rectified,
                       group["maximize"], bool(group["decoupled_weight_decay"]))
