"""ASGD (torch.optim.ASGD): averaged stochastic gradient descent, one fused C++ pass per group."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine.optim import _validate as V
from pyvision_engine.optim.optimizer import Optimizer, ParamsT

__all__ = ["ASGD"]


class ASGD(Optimizer):
    """Averaged SGD (Polyak & Juditsky 1992; Bottou's schedule) with torch's arithmetic.

    With ``g = ∇θ`` (``−∇θ`` if maximize) ``+ weight_decay·θ`` and the state's
    ``eta`` η and ``mu`` μ: ``θ = θ·(1 − lambd·η)``, ``θ = θ − η·g``; the
    average ``ax = ax + (θ − ax)·μ`` (``ax = θ`` while μ = 1, i.e. for the first
    ``t0`` steps); then ``η = lr/(1 + lambd·lr·t)^alpha`` and
    ``μ = 1/max(1, t − t0)``. ``step``, ``eta`` and ``mu`` are float32 scalars
    per parameter as in torch (eta starts at lr, mu at 1); ``ax`` holds the
    averaged parameters.

    Args:
        lr: default 1e-2. lambd: decay term (default 1e-4). alpha: power for the
        eta update (default 0.75). t0: step at which averaging starts (default 1e6).
        weight_decay: L2 penalty (default 0). maximize: default False.
    """

    _scalar_state: Dict[str, float] = {"step": 0.0, "eta": 0.0, "mu": 1.0}

    def __init__(self, params: ParamsT, lr: float = 1e-2, lambd: float = 1e-4,
                 alpha: float = 0.75, t0: float = 1e6, weight_decay: float = 0,
                 foreach: Optional[bool] = None, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False) -> None:
        V.check_lr(lr)
        V.check_weight_decay(weight_decay)
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)

    def _scalar_init(self, group: Dict[str, Any]) -> Dict[str, float]:
        return {"step": 0.0, "eta": float(group["lr"]), "mu": 1.0}

    def _tensor_state_spec(self, group: Dict[str, Any]) -> List[Tuple[str, float]]:
        return [("ax", 0.0)]

    def _fused_safe(self, group: Dict[str, Any]) -> bool:
        return True  # zero padding: θ·decay − η·0 = 0 and ax stays 0

    def _update(self, group, lay, i, param, grad) -> None:
        step = self._advance_step(lay, i)
        etas, mus = self._scalar_slice(lay, "eta", i), self._scalar_slice(lay, "mu", i)
        eta, mu = float(etas[0]), float(mus[0])  # this step uses the stored values
        lr, lambd = float(group["lr"]), group["lambd"]
        _C.optim_asgd(param, grad, lay.flat_state("ax", i), group["weight_decay"],
                      1 - lambd * eta, -eta, mu, mu != 1, group["maximize"])
        etas[...] = np.float32(lr / ((1 + lambd * lr * step) ** group["alpha"]))
        mus[...] = np.float32(1 / max(1, step - group["t0"]))
