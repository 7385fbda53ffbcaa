"""AdamW (torch.optim.AdamW): Adam with decoupled weight decay, λ = 1e-2 by default."""

from __future__ import annotations

from typing import Optional, Tuple

from pyvision_engine.optim.adam import Adam
from pyvision_engine.optim.optimizer import ParamsT

__all__ = ["AdamW"]


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): ``θ *= 1 − lr·λ``
    before the Adam update, the gradient unchanged. Same arguments as
    :class:`Adam`, with ``weight_decay`` defaulting to 1e-2."""

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach: Optional[bool] = None,
                 capturable: bool = False, differentiable: bool = False,
                 fused: Optional[bool] = None) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
