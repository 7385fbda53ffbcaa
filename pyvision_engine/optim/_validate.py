"""Hyperparameter checks shared by the optimizers (torch's messages and conditions)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from pyvision_engine.tensor import Tensor


def check_lr(lr: Any) -> None:
    # torch accepts a 1-element tensor lr (kept as given in the group).
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")


def check_eps(eps: float) -> None:
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")


def check_betas(betas: Tuple[float, float]) -> None:
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")


def check_weight_decay(weight_decay: float) -> None:
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


def check_fused(fused: Optional[bool], foreach: Optional[bool], differentiable: bool) -> None:
    """torch's constructor checks of ``fused`` (SGD, Adam, AdamW, Adagrad); on CPU
    every pve step is fused, so fused=True itself is fine."""
    if fused:
        if differentiable:
            raise RuntimeError("`fused` does not support `differentiable`")
        if foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


class CapturableStepError(NotImplementedError, AssertionError):
    """capturable=True stepped on CPU: torch raises AssertionError there; it is also
    a NotImplementedError (pve has no CUDA graphs)."""


def check_step_supported(name: str, group: Dict[str, Any]) -> None:
    """torch accepts capturable/differentiable at construction and fails at the
    step on CPU leaf parameters; pve refuses at the step too, with the reason."""
    if group.get("capturable", False):
        raise CapturableStepError(
            f"{name}: if capturable=True, params and state_steps must be on supported devices: "
            "['cuda', 'xpu', 'hpu', 'privateuseone', 'xla'] (pyvision_engine runs on CPU)"
        )
    if group.get("differentiable", False):
        # A NotImplementedError is a RuntimeError, the type torch raises here.
        raise NotImplementedError(
            f"{name}: differentiable=True is not supported by pyvision_engine (the step runs "
            "outside autograd)"
        )
