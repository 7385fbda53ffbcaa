"""NAdam (torch.optim.NAdam): Adam with Nesterov momentum and momentum decay."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine.optim import _validate as V
from pyvision_engine.optim.optimizer import Optimizer, ParamsT

__all__ = ["NAdam"]


class NAdam(Optimizer):
    """NAdam (Dozat 2016) with torch's arithmetic.

    ``μ_t = β1(1 − ½·0.96^(tψ))``; ``Π_t = Π_{t−1}·μ_t`` (float32, as torch);
    m, v as in Adam; ``denom = sqrt(v/(1 − β2^t)) + eps``;
    ``θ −= lr(1 − μ_t)/(1 − Π_t) · g/denom``, then
    ``θ −= lr·μ_{t+1}/(1 − Π_t·μ_{t+1}) · m/denom``.

    Args:
        lr: default 2e-3. betas: default (0.9, 0.999). eps: default 1e-8.
        weight_decay: default 0. momentum_decay ψ: default 4e-3.
        decoupled_weight_decay: default False. maximize: default False.
    """

    _scalar_state: Dict[str, float] = {"step": 0.0, "mu_product": 1.0}

    def __init__(self, params: ParamsT, lr: float = 2e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach: Optional[bool] = None,
                 maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False) -> None:
        V.check_lr(lr)
        V.check_eps(eps)
        V.check_betas(betas)
        V.check_weight_decay(weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def _tensor_state_spec(self, group: Dict[str, Any]) -> List[Tuple[str, float]]:
        return [("exp_avg", 0.0), ("exp_avg_sq", 0.0)]

    def _update(self, group, lay, i, param, grad) -> None:
        step = self._advance_step(lay, i)
        beta1, beta2 = group["betas"]
        lr, wd, psi = group["lr"], group["weight_decay"], group["momentum_decay"]
        bias_correction2 = 1 - beta2 ** step
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * psi)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * psi)))
        products = self._scalar_slice(lay, "mu_product", i)
        products *= np.float32(mu)  # a float32 tensor in torch: rounded every step
        mu_product = float(products[0])
        mu_product_next = mu_product * mu_next
        _C.optim_nadam(param, grad, lay.flat_state("exp_avg", i), lay.flat_state("exp_avg_sq", i),
                       1 - beta1, beta2, 1 - beta2, wd, 1 - lr * wd, bias_correction2,
                       group["eps"], -lr * (1.0 - mu) / (1.0 - mu_product),
                       (-lr * mu_next) / (1.0 - mu_product_next), group["maximize"],
                       bool(group["decoupled_weight_decay"]))
