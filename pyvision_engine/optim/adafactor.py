"""Adafactor (torch.optim.Adafactor, torch 2.13): factored second moments.

One C++ kernel call per tensor (``_C.optim_adafactor``, csrc/kernels/optim/
adafactor.cpp), not one per group as the element-wise rules: each step needs
whole-tensor reductions before any element can be updated (‖θ‖ for the
relative step size, row and column sums of g² for the factored variance, then
‖update‖ for the clipping denominator), so the kernel makes three passes over
the tensor; the arena's single-buffer layout does not fit the (…, R, 1) and
(…, 1, C) states either. The element-wise arithmetic is torch's
(``_single_tensor_adafactor``), operation by operation; the reductions are
accumulated in double and rounded to float32 once, where torch reduces in
float32 in its own order: those results can differ from torch's in the last
bit.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine.optim.optimizer import Optimizer, ParamsT, _as_array
from pyvision_engine.tensor import Tensor

__all__ = ["Adafactor"]

f32 = np.float32


class Adafactor(Optimizer):
    """Adafactor (Shazeer & Stern 2018) as torch 2.13 implements it.

    For ``t`` = step, ``β2ᵗ`` decay ``1 − t^beta2_decay``, ``ρ = min(lr, 1/√t)`` and
    ``α = max(eps2, RMS(θ))·ρ``: weight decay ``θ ← θ(1 − lr·λ)``; for 2-D and
    higher parameters the row/column means of ``g²`` over the last two dims are
    averaged into ``row_var`` / ``col_var`` and the variance is estimated as
    ``row_var·col_var / mean(row_var)``; 0-D/1-D parameters keep a full
    ``variance``. ``u = g / sqrt(max(var, eps1²))``, clipped by
    ``max(1, RMS(u)/d)``, and ``θ ← θ − α·u/that``.

    Args:
        lr: default 1e-2. beta2_decay: default −0.8. eps: (eps1, eps2), eps1
        None means float32's machine epsilon (default (None, 1e-3)). d:
        clipping threshold (default 1.0). weight_decay: default 0.
        foreach: accepted for torch compatibility. maximize: default False.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, beta2_decay: float = -0.8,
                 eps: Tuple[Optional[float], float] = (None, 1e-3), d: float = 1.0,
                 weight_decay: float = 0.0, *, foreach: Optional[bool] = None,
                 maximize: bool = False) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 >= beta2_decay:
            raise ValueError(f"beta2_decay should be <= 0 but is: {beta2_decay}")
        if eps[0] is not None and not 0.0 <= eps[0]:
            raise ValueError(f"epsilon1 should be >= 0 but is: {eps[0]}")
        if not 0.0 <= eps[1]:
            raise ValueError(f"epsilon2 should be >= 0 but is: {eps[1]}")
        if not 1.0 <= d:
            raise ValueError(f"Clipping threshold d should be >= 1 but is: {d}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight_decay should be >= 0 but is: {weight_decay}")
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d,
                        weight_decay=weight_decay, foreach=foreach, maximize=maximize)
        super().__init__(params, defaults)

    def _step_group(self, index: int, group: Dict[str, Any]) -> None:
        lr = group["lr"].item() if isinstance(group["lr"], Tensor) else group["lr"]
        eps1, eps2 = group["eps"]
        d, wd, beta2_decay = group["d"], group["weight_decay"], group["beta2_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad._data
            if grad.dtype != f32 or not grad.flags.c_contiguous:
                grad = np.array(grad, dtype=f32, order="C")  # keeps 0-d arrays 0-d
            param = p._data
            state = self.state[p]
            if len(state) == 0:
                state["step"] = Tensor._wrap(np.zeros((), f32))
                if grad.ndim > 1:
                    state["row_var"] = Tensor._wrap(np.zeros(grad.shape[:-1] + (1,), f32))
                    state["col_var"] = Tensor._wrap(
                        np.zeros(grad.shape[:-2] + (1,) + grad.shape[-1:], f32))
                else:
                    state["variance"] = Tensor._wrap(np.zeros(grad.shape, f32))
            if eps1 is None:
                eps1 = float(np.finfo(f32).eps)
            step_t = state["step"]._data
            step_t += f32(1)
            step_float = float(step_t)
            one_minus_beta2_t = step_float ** beta2_decay
            rho_t = min(lr, 1 / (step_float ** 0.5))
            factored = grad.ndim > 1
            contiguous = param.flags.c_contiguous
            work = param if contiguous else np.array(param, order="C")
            _C.optim_adafactor(
                work, grad,
                state["row_var"]._data if factored else None,
                state["col_var"]._data if factored else None,
                None if factored else state["variance"]._data,
                lerp_weight=float(f32(one_minus_beta2_t)), eps1=float(f32(eps1)),
                eps1_sq=float(f32(eps1 * eps1)), decay=float(f32(1 - lr * wd)), decay_on=wd != 0,
                maximize=bool(group["maximize"]), eps2=float(eps2), rho=rho_t, d=float(d))
            if not contiguous:
                param[...] = work
            p._bump_version()

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Load :meth:`state_dict`'s output or torch's Adafactor state dict."""
        saved_groups = self._matching_saved_groups(state_dict)
        saved_state = state_dict["state"]
        for group, saved in zip(self.param_groups, saved_groups):
            for key, value in saved.items():
                if key not in ("params", "param_names"):
                    group[key] = tuple(value) if key == "eps" and isinstance(value, list) else value
            for p, saved_id in zip(group["params"], saved["params"]):
                entry = saved_state.get(saved_id, saved_state.get(str(saved_id)))
                self.state.pop(p, None)
                if entry is None:
                    continue
                new = {}
                for key, value in entry.items():
                    arr = np.array(_as_array(value), dtype=f32)
                    expected = {"row_var": p.shape[:-1] + (1,),
                                "col_var": p.shape[:-2] + (1,) + p.shape[-1:],
                                "variance": p.shape, "step": ()}.get(key)
                    if expected is not None and arr.shape != tuple(expected):
                        raise ValueError(f"load_state_dict: Adafactor state '{key}' has shape "
                                         f"{arr.shape}, expected {tuple(expected)}")
                    new[key] = Tensor._wrap(arr)
                self.state[p] = new
