"""torch.optim.swa_utils: weight averaging (SWA / EMA), SWALR, update_bn.

``AveragedModel`` keeps a deep copy of a model (``module``) and an int64 buffer
``n_averaged``, so its state_dict keys are torch's (``module.<...>``,
``n_averaged``). The averages are computed in float32 with torch's CPU
arithmetic: the default equal-weight average is ``a + (p - a) / (n + 1)`` (torch's
``get_swa_avg_fn``, the path it takes on CPU), the multi-tensor functions use
torch's ``lerp`` formula. Integer tensors (``num_batches_tracked`` with
``use_buffers=True``) are averaged in float32 and truncated on copy, as torch's
``copy_`` into an integer tensor does.
"""

from __future__ import annotations

import itertools
import math
import warnings
from copy import deepcopy
from typing import Any, Callable, Iterable, List, Optional, Sequence, Union

import numpy as np

from pyvision_engine.autograd import no_grad
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.normalization import _BatchNorm
from pyvision_engine.optim.lr_scheduler import LRScheduler, _per_group, _zip_strict
from pyvision_engine.optim.optimizer import Optimizer
from pyvision_engine.tensor import Tensor

__all__ = [
    "AveragedModel", "update_bn", "SWALR", "get_ema_multi_avg_fn", "get_swa_multi_avg_fn",
    "get_ema_avg_fn", "get_swa_avg_fn",
]

ParamList = Union[Sequence[Tensor], List[Tensor]]


def _write(target: Tensor, value: np.ndarray) -> None:
    """``target.copy_(value)``: cast to the target's dtype (a float into an int64 tensor
    truncates toward zero, as torch's copy_) and bump its version, so caches derived
    from the values (packed weights, folded BatchNorm) are rebuilt."""
    np.copyto(target._data, value, casting="unsafe")
    target._bump_version()


def _lerp(start: np.ndarray, end: np.ndarray, weight: np.float32) -> np.ndarray:
    """torch's CPU lerp (its vectorized kernel) in float32: ``fma(w, end - start, start)``
    for |w| < 0.5, else ``fma(w - 1, end - start, end)`` (exact at w = 1). The fused
    multiply-add is done in float64, where the float32 product is exact, then rounded
    once to float32."""
    diff = (end - start).astype(np.float64)
    if abs(float(weight)) < 0.5:
        out = np.float64(weight) * diff + start
    else:
        out = np.float64(np.float32(weight) - np.float32(1)) * diff + end
    return out.astype(np.float32)


def _check_decay(decay: float) -> None:
    if decay < 0.0 or decay > 1.0:
        raise ValueError(
            f"Invalid decay value {decay} provided. Please provide a value in [0,1] range."
        )


def _count(num_averaged: Union[Tensor, int]) -> int:
    return int(num_averaged._data) if isinstance(num_averaged, Tensor) else int(num_averaged)


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable[[ParamList, ParamList, Any], None]:
    """In-place EMA over lists of tensors: ``ema = lerp(ema, current, 1 - decay)``
    (floating tensors), ``ema * decay + current * (1 - decay)`` truncated (integer ones).
    ``decay`` must be in [0, 1] (ValueError)."""
    _check_decay(decay)

    def ema_update(ema_param_list: ParamList, current_param_list: ParamList, _: Any) -> None:
        floating = ema_param_list[0].dtype == np.float32
        for p_ema, p_model in _zip_strict(ema_param_list, current_param_list):
            a, c = p_ema._data, p_model._data
            if floating:
                _write(p_ema, _lerp(a, c.astype(np.float32, copy=False), np.float32(1 - decay)))
            else:  # int64 * python float is float32 in torch
                _write(p_ema, a.astype(np.float32) * np.float32(decay)
                       + c.astype(np.float32) * np.float32(1 - decay))

    return ema_update


def get_swa_multi_avg_fn() -> Callable[[ParamList, ParamList, Union[Tensor, int]], None]:
    """In-place equal-weight average over lists of tensors: ``lerp(avg, current,
    1 / (n + 1))`` (floating), ``avg + (current - avg) / (n + 1)`` (integer)."""

    def swa_update(averaged_param_list: ParamList, current_param_list: ParamList,
                   num_averaged: Union[Tensor, int]) -> None:
        n = _count(num_averaged)
        floating = averaged_param_list[0].dtype == np.float32
        if isinstance(num_averaged, Tensor):  # 1 / (long tensor + 1) is a float32 tensor
            weight = np.float32(1) / np.float32(n + 1)
        else:
            weight = np.float32(1.0 / (n + 1))
        for p_avg, p_model in _zip_strict(averaged_param_list, current_param_list):
            a, c = p_avg._data, p_model._data
            if floating:
                _write(p_avg, _lerp(a, c.astype(np.float32, copy=False), weight))
            elif isinstance(num_averaged, Tensor):  # torch's integer addcdiv_ refuses
                raise RuntimeError(
                    "swa_update: integer tensors can't be averaged with a tensor count "
                    "(torch's addcdiv_: Integer division with addcdiv is no longer supported); "
                    f"got a {a.dtype} tensor of shape {a.shape}")
            else:  # add_(diff, alpha=1/(n+1)) on an integer tensor
                _write(p_avg, a + (c - a) * (1.0 / (n + 1)))

    return swa_update


def get_ema_avg_fn(decay: float = 0.999) -> Callable[[Tensor, Tensor, Any], Tensor]:
    """``decay * ema + (1 - decay) * current`` (returns a new tensor)."""
    _check_decay(decay)

    def ema_update(ema_param: Tensor, current_param: Tensor, num_averaged: Any) -> Tensor:
        with no_grad():
            return decay * ema_param + (1 - decay) * current_param

    return ema_update


def get_swa_avg_fn() -> Callable[[Tensor, Tensor, Union[Tensor, int]], Tensor]:
    """``avg + (current - avg) / (n + 1)`` (returns a new tensor)."""

    def swa_update(averaged_param: Tensor, current_param: Tensor,
                   num_averaged: Union[Tensor, int]) -> Tensor:
        with no_grad():
            return Tensor(_swa_average(averaged_param._data, current_param._data,
                                       _count(num_averaged)))

    return swa_update


def _swa_average(a: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    """torch's ``a + (c - a) / (n + 1)`` with a long count: float32 arithmetic (an
    integer difference divided by an integer is float32 in torch)."""
    diff = (c - a) if a.dtype == np.float32 else (c - a).astype(np.float32)
    return a + diff / np.float32(n + 1)


class AveragedModel(Module):
    """A running average (SWA, or EMA with ``avg_fn`` / ``multi_avg_fn``) of ``model``'s
    parameters (and buffers with ``use_buffers=True``), kept in a deep copy of it,
    ``module``; ``n_averaged`` (int64 buffer) counts the models averaged. The first
    ``update_parameters`` copies the model; the later ones average. Without
    ``use_buffers`` the buffers are copied from the model at each update. Calling it
    runs the copy. ``device`` is accepted for torch compatibility (CPU only)."""

    def __init__(self, model: Module, device: Any = None,
                 avg_fn: Optional[Callable[[Tensor, Tensor, Any], Tensor]] = None,
                 multi_avg_fn: Optional[Callable[[ParamList, ParamList, Any], None]] = None,
                 use_buffers: bool = False) -> None:
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError("Only one of avg_fn and multi_avg_fn should be provided")
        # Module supports copy.deepcopy (its registries are plain dicts, each Tensor
        # gets its own array), so the copy shares no storage with ``model``.
        self.module = deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", Tensor(np.array(0, dtype=np.int64)))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def update_parameters(self, model: Module) -> None:
        """Average ``model``'s current parameters (and buffers) into this copy."""
        if self.use_buffers:
            self_param = itertools.chain(self.module.parameters(), self.module.buffers())
            model_param = itertools.chain(model.parameters(), model.buffers())
        else:
            self_param = self.parameters()
            model_param = model.parameters()
        n = int(self.n_averaged._data)
        pairs = []
        for p_averaged, p_model in zip(self_param, model_param):  # (not strict, as torch)
            pairs.append((p_averaged, p_model.detach()))
            if n == 0:
                _write(p_averaged, p_model._data)
        if n > 0:
            if self.multi_avg_fn is not None:
                # torch groups the tensors by (device, dtype) and calls the function per group
                groups: dict = {}
                for p_averaged, p_model in pairs:
                    groups.setdefault(p_averaged.dtype, ([], []))
                    groups[p_averaged.dtype][0].append(p_averaged)
                    groups[p_averaged.dtype][1].append(p_model)
                for averaged, current in groups.values():
                    self.multi_avg_fn(averaged, current, self.n_averaged)
            elif self.avg_fn is None:
                for p_averaged, p_model in pairs:
                    _write(p_averaged, _swa_average(p_averaged._data, p_model._data, n))
            else:
                for p_averaged, p_model in pairs:
                    value = self.avg_fn(p_averaged.detach(), p_model, self.n_averaged)
                    _write(p_averaged, value._data if isinstance(value, Tensor)
                           else np.asarray(value))
        if not self.use_buffers:
            for b_swa, b_model in _zip_strict(self.module.buffers(), model.buffers()):
                _write(b_swa, b_model._data)
        self.n_averaged._data += 1
        self.n_averaged._bump_version()


def update_bn(loader: Iterable[Any], model: Module, device: Any = None) -> None:
    """Recompute the running statistics of every BatchNorm in ``model`` with one pass
    over ``loader`` (items: a tensor, or a list/tuple whose first element is the
    input): the statistics are reset and accumulated as a cumulative average
    (``momentum=None``); each module's momentum and the model's train/eval mode are
    restored afterwards. Runs under no_grad."""
    momenta = {}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            momenta[module] = module.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None
    with no_grad():
        for input in loader:
            if isinstance(input, (list, tuple)):
                input = input[0]
            if device is not None and hasattr(input, "to"):
                input = input.to(device)
            model(input)
    for bn_module in momenta:
        bn_module.momentum = momenta[bn_module]
    model.train(was_training)


class SWALR(LRScheduler):
    """Anneals each group's lr from its current value to ``swa_lr`` (a float or one per
    group, stored as ``group['swa_lr']``) over ``anneal_epochs`` epochs, by cosine
    (``'cos'``) or linearly (``'linear'``), then keeps it there. torch's arithmetic:
    each step recovers the lr the annealing started from (``_get_initial_lr``) from
    the current one and interpolates with the new factor."""

    def __init__(self, optimizer: Optimizer, swa_lr: Any, anneal_epochs: int = 10,
                 anneal_strategy: str = "cos", last_epoch: int = -1) -> None:
        swa_lrs = _per_group("swa_lr", optimizer, swa_lr)
        for lr, group in _zip_strict(swa_lrs, optimizer.param_groups):
            group["swa_lr"] = lr
        if anneal_strategy not in ["cos", "linear"]:
            raise ValueError("anneal_strategy must be one of 'cos' or 'linear', "
                             f"instead got {anneal_strategy}")
        self._set_anneal_func(anneal_strategy)
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t: float) -> float:
        return t

    @staticmethod
    def _cosine_anneal(t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr: Any, swa_lr: Any, alpha: float) -> Any:
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def get_lr(self) -> List[Any]:
        if not self._get_lr_called_within_step:
            warnings.warn("To get the last learning rate computed by the scheduler, "
                          "please use `get_last_lr()`.", UserWarning, stacklevel=2)
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_t = max(0, min(1, (step - 1) / max(1, self.anneal_epochs)))
        prev_alpha = self.anneal_func(prev_t)
        prev_lrs = [self._get_initial_lr(_value(group["lr"]), group["swa_lr"], prev_alpha)
                    for group in self.optimizer.param_groups]
        t = max(0, min(1, step / max(1, self.anneal_epochs)))
        alpha = self.anneal_func(t)
        return [group["swa_lr"] * alpha + lr * (1 - alpha)
                for group, lr in _zip_strict(self.optimizer.param_groups, prev_lrs)]

    def _set_anneal_func(self, anneal_strategy: str) -> None:
        self._anneal_strategy = anneal_strategy
        self.anneal_func = self._cosine_anneal if anneal_strategy == "cos" else self._linear_anneal

    def state_dict(self) -> dict:
        """Every attribute but the optimizer and anneal_func (torch's keys)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "anneal_func")}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)
        self._set_anneal_func(self._anneal_strategy)


def _value(lr: Any) -> Any:
    """A Tensor lr as a float (the scheduler fills the group's tensor in place)."""
    return float(lr._data) if isinstance(lr, Tensor) else lr
