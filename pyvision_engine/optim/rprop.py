"""Rprop (torch.optim.Rprop): resilient backpropagation, one fused C++ pass per group."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from pyvision_engine import _C
from pyvision_engine.optim import _validate as V
from pyvision_engine.optim.optimizer import Optimizer, ParamsT

__all__ = ["Rprop"]


class Rprop(Optimizer):
    """Resilient backpropagation (Riedmiller & Braun 1993) with torch's arithmetic.

    Per element, with ``s = sign(g·prev)``: the step size is multiplied by
    ``etaplus`` (s > 0), ``etaminus`` (s < 0) or 1 (s = 0) and clamped to
    ``step_sizes``; where it shrank the gradient is taken as 0; then
    ``θ = θ − sign(g)·step_size`` and ``prev = g``. Only the gradient's sign is
    used, so Rprop suits full-batch training. The step sizes start at ``lr``.

    Args:
        lr: initial step size (default 1e-2).
        etas: (etaminus, etaplus), with 0 < etaminus < 1 < etaplus (default (0.5, 1.2)).
        step_sizes: (min, max) step size (default (1e-6, 50)).
        maximize: default False. capturable, foreach, differentiable: accepted as torch does.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2,
                 etas: Tuple[float, float] = (0.5, 1.2),
                 step_sizes: Tuple[float, float] = (1e-6, 50), *, capturable: bool = False,
                 foreach: Optional[bool] = None, maximize: bool = False,
                 differentiable: bool = False) -> None:
        V.check_lr(lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _tensor_state_spec(self, group: Dict[str, Any]) -> List[Tuple[str, float]]:
        # step_size starts at lr (torch.full_like(grad, lr)); prev at zeros.
        return [("prev", 0.0), ("step_size", float(group["lr"]))]

    def _fused_safe(self, group: Dict[str, Any]) -> bool:
        return True  # the arena's zero padding: g·prev = 0, sign(0) = 0, θ stays 0

    def _update(self, group, lay, i, param, grad) -> None:
        self._advance_step(lay, i)
        etaminus, etaplus = group["etas"]
        step_size_min, step_size_max = group["step_sizes"]
        _C.optim_rprop(param, grad, lay.flat_state("prev", i), lay.flat_state("step_size", i),
                       etaminus, etaplus, step_size_min, step_size_max, group["maximize"])
