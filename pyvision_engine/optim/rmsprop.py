"""RMSprop (torch.optim.RMSprop), optionally centered and with momentum."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from pyvision_engine import _C
from pyvision_engine.optim import _validate as V
from pyvision_engine.optim.optimizer import Optimizer, ParamsT

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop (Hinton) with torch's arithmetic.

    ``s = α·s + (1 − α)·g²``; centered: ``ḡ = lerp(ḡ, g, 1 − α)``,
    ``avg = sqrt(s − ḡ²) + eps``, else ``avg = sqrt(s) + eps``; with momentum μ:
    ``b = μ·b + g/avg``, ``θ −= lr·b``, else ``θ −= lr·g/avg``.

    Args:
        lr: default 1e-2. alpha: default 0.99. eps: default 1e-8.
        weight_decay: default 0. momentum: default 0. centered: default False.
        maximize: default False.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
                 centered: bool = False, capturable: bool = False,
                 foreach: Optional[bool] = None, maximize: bool = False,
                 differentiable: bool = False) -> None:
        V.check_lr(lr)
        V.check_eps(eps)
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        V.check_weight_decay(weight_decay)
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    def _tensor_state_spec(self, group: Dict[str, Any]) -> List[Tuple[str, float]]:
        spec = [("square_avg", 0.0)]
        if group["momentum"] > 0:
            spec.append(("momentum_buffer", 0.0))
        if group["centered"]:
            spec.append(("grad_avg", 0.0))
        return spec

    def _update(self, group, lay, i, param, grad) -> None:
        self._advance_step(lay, i)  # counted, unused by the rule (as torch)
        alpha, momentum, centered = group["alpha"], group["momentum"], group["centered"]
        _C.optim_rmsprop(param, grad, lay.flat_state("square_avg", i),
                         lay.flat_state("grad_avg", i) if centered else None,
                         lay.flat_state("momentum_buffer", i) if momentum > 0 else None,
                         alpha, 1 - alpha, group["eps"], group["weight_decay"], momentum,
                         -group["lr"], centered, group["maximize"])
