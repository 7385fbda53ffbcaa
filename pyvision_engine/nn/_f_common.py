"""Helpers shared by the layer functionals (argument parsing, inputs, in-place rebinding)."""

from __future__ import annotations

import operator
from typing import Any, Tuple

import numpy as np

from pyvision_engine.autograd import is_grad_enabled
from pyvision_engine.tensor import Tensor, as_tensor


def float_input(x: Any, op: str) -> Tensor:
    """``x`` as a float32 Tensor, or a TypeError naming ``op``."""
    t = as_tensor(x)
    if t.dtype != np.float32:
        raise TypeError(f"{op}: expected a float32 input, got {t.dtype}")
    return t


def int_arg(v: Any, op: str, name: str) -> int:
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int, got {v!r}") from None


def pair(v: Any, op: str, name: str) -> Tuple[int, int]:
    """An int or a 1/2-sequence of ints as a (h, w) pair."""
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            v = (v[0], v[0])
        if len(v) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
        return int_arg(v[0], op, name), int_arg(v[1], op, name)
    i = int_arg(v, op, name)
    return i, i


class TargetIndexError(ValueError, IndexError):
    """A class-index target outside [0, C) (and not ignore_index): torch raises
    IndexError, this engine's contract ValueError; the error is both."""


class RuntimeValueError(ValueError, RuntimeError):
    """Bad input where torch raises RuntimeError (a failed TORCH_CHECK) and this
    engine's contract ValueError; the error is both."""


class NotImplementedValueError(ValueError, NotImplementedError):
    """Bad input where torch raises NotImplementedError (a mode or rank it has no
    kernel for) and this engine's contract ValueError; the error is both."""


class RuntimeTypeError(TypeError, RuntimeError):
    """A wrong dtype where torch raises RuntimeError; the error is both."""


class AssertionValueError(ValueError, AssertionError):
    """A failed precondition where torch's Python raises AssertionError (fusion of
    modules not in eval mode) and this engine's contract ValueError; the error is both."""


class RankError(RuntimeValueError, IndexError):
    """An input with too few dims: torch raises IndexError there (its size(d) lookup
    fails before its rank check) and RuntimeError for too many; the error is both."""


def check_factory_kwargs(device: Any, dtype: Any, layer: str) -> None:
    """torch's ``device=`` / ``dtype=`` layer-constructor arguments: this engine keeps
    parameters as float32 on the CPU, so those (or None, the defaults) are accepted and
    anything else is an error naming the layer."""
    if device is not None and str(device) not in ("cpu", "cpu:0"):  # (or torch.device('cpu'))
        is_device = hasattr(device, "type") or (isinstance(device, (str, int))
                                                and not isinstance(device, bool))
        if not is_device:  # (torch: "argument 'device' must be torch.device, not bool")
            raise TypeError(f"{layer}: device must be a str or a torch.device, got "
                            f"{type(device).__name__}")
        raise ValueError(f"{layer}: only device='cpu' is supported, got device={device!r}")
    if dtype is None or str(dtype) == "torch.float32":
        return
    try:  # pve.float32, numpy.float32, np.dtype('float32'); strings are not dtypes in torch
        if not isinstance(dtype, str) and np.dtype(dtype) == np.float32:
            return
    except TypeError:
        pass
    raise TypeError(f"{layer}: only dtype float32 is supported (pve.float32, numpy.float32 or "
                    f"torch.float32), got dtype={dtype!r}")


def check_reduction(reduction: str, op: str) -> None:
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{op}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def needs_grad(*tensors: Any) -> bool:
    if not is_grad_enabled():
        return False
    for t in tensors:  # (a loop: a generator would be a frame per call)
        if isinstance(t, Tensor) and t.requires_grad:
            return True
    return False


def rebind_inplace(target: Tensor, result: Tensor) -> Tensor:
    """Make ``target`` (whose buffer ``result`` already wrote into) the result itself.

    torch's in-place ops return their input with a new grad_fn; here the
    input Tensor takes over the new node, so code that ignores the return
    value still differentiates through the op. Its ``_version`` goes up, as for
    every in-place op, so caches built from its values (packed or folded
    convolution weights) are rebuilt."""
    target._count_write()
    if target.requires_grad and target._node is None and is_grad_enabled():
        raise RuntimeError(
            "a leaf Variable that requires grad is being used in an in-place operation."
        )
    if result._node is not None:
        object.__setattr__(target, "_node", result._node)
        object.__setattr__(target, "requires_grad", True)
    target._propagate_write()  # (copy-views and a base record this op, see Tensor)
    return target


def updated_in_place(given: Any, t: Tensor) -> None:
    """After an op updated ``t`` (``float_input(given)``) in place, as running
    statistics are: its version goes up (caches built from its values, such as
    folded convolution weights, are stale), and a strided numpy ``given``, which
    float_input copied, receives the new values, as torch updates a strided view."""
    t._bump_version()
    if isinstance(given, np.ndarray) and t._data is not given:
        given[...] = t._data


def shell_of(t: Tensor) -> Tensor:
    """A new Tensor object standing for ``t`` as it was before an in-place op."""
    s = Tensor._wrap(t._data)
    s._node = t._node
    s.requires_grad = t.requires_grad
    return s
