"""Adagrad (torch.optim.Adagrad)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from pyvision_engine import _C
from pyvision_engine.optim import _validate as V
from pyvision_engine.optim.optimizer import Optimizer, ParamsT

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011) with torch's arithmetic.

    ``clr = lr/(1 + (t − 1)·lr_decay)``, ``G = G + g²``, ``θ −= clr·g/(sqrt(G) + eps)``.
    The accumulator G starts at ``initial_accumulator_value``; as in torch the
    state exists from construction.

    Args:
        lr: default 1e-2. lr_decay: default 0. weight_decay: default 0.
        initial_accumulator_value: default 0. eps: default 1e-10. maximize: default False.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0,
                 eps: float = 1e-10, foreach: Optional[bool] = None, *,
                 maximize: bool = False, differentiable: bool = False,
                 fused: Optional[bool] = None) -> None:
        V.check_lr(lr)
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        V.check_weight_decay(weight_decay)
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(
                f"Invalid initial_accumulator_value value: {initial_accumulator_value}"
            )
        V.check_eps(eps)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        V.check_fused(fused, foreach, differentiable)
        # As torch: the state of the groups given here exists from construction;
        # a group added later gets its state at its first step.
        for index, group in enumerate(self.param_groups):
            self._prepare_group(index, group, range(len(group["params"])))

    def _tensor_state_spec(self, group: Dict[str, Any]) -> List[Tuple[str, float]]:
        # torch fills ``sum`` with the constructor's initial_accumulator_value
        # (self.defaults), even for a group that sets its own.
        return [("sum", float(self.defaults["initial_accumulator_value"]))]

    def _fused_safe(self, group: Dict[str, Any]) -> bool:
        # Padding: G = init there, so 0/(sqrt(init) + eps) stays 0 unless both are 0.
        return group["eps"] > 0 or self.defaults["initial_accumulator_value"] > 0

    def _update(self, group, lay, i, param, grad) -> None:
        step = self._advance_step(lay, i)
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        _C.optim_adagrad(param, grad, lay.flat_state("sum", i), -clr, group["eps"],
                         group["weight_decay"], group["maximize"])
