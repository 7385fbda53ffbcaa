"""Adam (torch.optim.Adam), with amsgrad and optional decoupled weight decay."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from pyvision_engine import _C
from pyvision_engine.optim import _validate as V
from pyvision_engine.optim.optimizer import Optimizer, ParamsT
from pyvision_engine.tensor import Tensor

__all__ = ["Adam"]


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with torch's arithmetic.

    Per step t (per parameter, starting at 1): ``m = lerp(m, g, 1 − β1)``,
    ``v = β2·v + (1 − β2)·g²`` (amsgrad: ``v̂ = max(v̂, v)`` replaces v below),
    ``θ = θ − lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + eps)``. Weight
    decay is L2 (``g += λθ``) or, with ``decoupled_weight_decay``, ``θ *= 1 − lr·λ``.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (default 1e-3). betas: (β1, β2) (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: λ (default 0). amsgrad: default False.
        maximize: default False. decoupled_weight_decay: AdamW's decay (default False).
        foreach, fused: accepted for torch compatibility; every step here is fused.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *,
                 foreach: Optional[bool] = None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False,
                 fused: Optional[bool] = None, decoupled_weight_decay: bool = False) -> None:
        if isinstance(lr, Tensor) and foreach and not capturable:
            raise ValueError("lr as a Tensor is not supported for capturable=False and foreach=True")
        V.check_lr(lr)
        V.check_eps(eps)
        V.check_betas(betas)
        V.check_weight_decay(weight_decay)
        # torch: betas (0, 0.999) is refused (an int is neither a float nor a Tensor).
        if not (all(isinstance(b, float) for b in betas[:2])
                or all(isinstance(b, Tensor) for b in betas[:2])):
            raise ValueError("betas must be either both floats or both Tensors")
        for index, b in enumerate(betas[:2]):
            if isinstance(b, Tensor):
                if foreach and not capturable:
                    raise ValueError(f"betas[{index}] as a Tensor is not supported for "
                                     "capturable=False and foreach=True")
                if b.numel() != 1:
                    raise ValueError(f"Tensor betas[{index}] must be 1-element")
        betas = tuple(b.reshape(()) if isinstance(b, Tensor) else b for b in betas)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)
        V.check_fused(fused, foreach, differentiable)

    def _tensor_state_spec(self, group: Dict[str, Any]) -> List[Tuple[str, float]]:
        spec = [("exp_avg", 0.0), ("exp_avg_sq", 0.0)]
        if group["amsgrad"]:
            spec.append(("max_exp_avg_sq", 0.0))
        return spec

    def _update(self, group, lay, i, param, grad) -> None:
        step = self._advance_step(lay, i)
        beta1, beta2 = (float(b) for b in group["betas"])
        lr, wd = group["lr"], group["weight_decay"]
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        amsgrad = group["amsgrad"]
        _C.optim_adam(
            param, grad, lay.flat_state("exp_avg", i), lay.flat_state("exp_avg_sq", i),
            lay.flat_state("max_exp_avg_sq", i) if amsgrad else None,
            1 - beta1, beta2, 1 - beta2, wd, 1 - lr * wd, -step_size,
            bias_correction2 ** 0.5, group["eps"], group["maximize"],
            bool(group.get("decoupled_weight_decay", False)), amsgrad)
