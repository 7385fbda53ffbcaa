"""Hyperparameter checks shared by the optimizers (torch's messages)."""

from __future__ import annotations

from typing import Tuple


def check_lr(lr: float) -> None:
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


def check_supported(name: str, differentiable: bool = False, capturable: bool = False) -> None:
    """The engine steps outside autograd on CPU: no differentiable or capturable steps."""
    if differentiable:
        raise NotImplementedError(f"{name}: differentiable=True is not supported by pyvision_engine")
    if capturable:
        raise NotImplementedError(f"{name}: capturable=True (CUDA graphs) is not supported on CPU")
