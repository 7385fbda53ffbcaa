"""Random sampling on tensors: the in-place fills (``normal_``, ``uniform_``, ...),
``bernoulli``, ``normal``, ``multinomial`` and the ``*_like`` factories.

Every draw comes from the engine's generator (pyvision_engine.random, seeded by
``pve.manual_seed``): the same seed gives the same values, though not torch's
values (its Philox / mt19937 streams are not reproduced). Argument checks, error
types and messages, result dtypes and the in-place rules (version bump, self
returned, a leaf that requires grad refused) are torch's.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence

import numpy as np

from pyvision_engine import _ops
from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import RuntimeValueError
from pyvision_engine.random import default_generator
from pyvision_engine.tensor import Tensor, _check_fits, _normalize_dtype, as_tensor, bool_, float32

__all__ = ["bernoulli", "normal", "multinomial", "rand_like", "randn_like", "randint_like"]

_TORCH_NAME = {"f": "Float", "i": "Long", "b": "Bool"}
_C_NAME = {"f": "float", "i": "long int", "b": "bool"}


def _generator(generator: Any) -> np.random.Generator:
    """The engine's generator, or a numpy Generator the caller passed as ``generator``."""
    if generator is None:
        return default_generator()
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"generator must be None or a numpy.random.Generator, got "
                    f"{type(generator).__name__}")


class Sampled(Function):
    """Values drawn from a distribution whose parameters are tensors: torch gives the
    parameters a zero gradient (normal's derivative is zeros), so the graph stays
    connected without passing anything back."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, sample, *params):
        ctx.shapes = tuple(np.shape(p) for p in params)
        return sample

    @staticmethod
    def backward(ctx, g):
        return (None,) + tuple(np.zeros(s, dtype=np.float32) for s in ctx.shapes)


def _fill(self: Tensor, values: np.ndarray) -> Tensor:
    """Write sampled ``values`` into self in place, as torch's in-place random ops: the
    version goes up, self is returned; in a recorded graph self takes a node whose
    gradient to the old values is zero."""
    if self._records_inplace():
        sample = Tensor._wrap(np.asarray(values, dtype=self._data.dtype))
        return self._rebind(lambda base: _ops.CopyFrom.apply(base, sample))
    self._before_write()
    np.copyto(self._data, values, casting="unsafe")
    self._bump_version()
    return self


def _float_kernel(self: Tensor, kernel: str) -> None:
    kind = self._data.dtype.kind
    if kind != "f":
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{_TORCH_NAME[kind]}'")


def _continuous(self: Tensor, name: str, c_names: bool = False) -> None:
    kind = self._data.dtype.kind
    if kind != "f":
        spelled = (_C_NAME if c_names else _TORCH_NAME)[kind]
        raise RuntimeError(f"{name} distribution is a continuous probability distribution. "
                           f"dtype must be a floating point but you specified {spelled}")


def _real(value: Any, op: str, name: str) -> float:
    if isinstance(value, Tensor):
        value = value.item()
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{op}(): argument '{name}' must be float, not {type(value).__name__}")
    return float(value)


def normal_(self: Tensor, mean: float = 0, std: float = 1, *, generator: Any = None) -> Tensor:
    mean, std = _real(mean, "normal_", "mean"), _real(std, "normal_", "std")
    if not std >= 0.0:
        raise RuntimeValueError(f"normal expects std >= 0.0, but found std {std:g}")
    _float_kernel(self, "normal_kernel_cpu")
    draw = _generator(generator).standard_normal(self.shape)
    return _fill(self, (draw * std + mean).astype(np.float32))


def uniform_(self: Tensor, from_: float = 0, to: float = 1, *, generator: Any = None) -> Tensor:
    low, high = _real(from_, "uniform_", "from"), _real(to, "uniform_", "to")
    _float_kernel(self, "check_uniform_bounds")
    if low > high:
        raise RuntimeValueError(f"uniform_ expects to return a [from, to) range, but found "
                                f"from={low:g} > to={high:g}")
    draw = _generator(generator).random(self.shape)
    return _fill(self, (draw * (high - low) + low).astype(np.float32))


def _check_probability(p: Any, op: str) -> Any:
    """A float p in [0, 1] or a float tensor of such (torch's two overloads)."""
    if isinstance(p, Tensor):
        if p._data.dtype != float32:
            raise NotImplementedError(f"\"{op}_tensor_cpu_p_\" not implemented for "
                                      f"'{_TORCH_NAME[p._data.dtype.kind]}'")
        values = p._data
        if values.size and not ((values >= 0) & (values <= 1)).all():
            raise RuntimeValueError(f"{op}: expected every probability in [0, 1], got values "
                                    f"outside it (min {values.min():g}, max {values.max():g})")
        return values.astype(np.float64)
    p = _real(p, op, "p")
    if not 0 <= p <= 1:
        raise RuntimeValueError(f"{op} expects p to be in [0, 1], but got p={p:g}")
    return p


def bernoulli_(self: Tensor, p: Any = 0.5, *, generator: Any = None) -> Tensor:
    """Each element becomes 1 with probability p (a float or a tensor broadcast to self),
    in self's dtype."""
    prob = _check_probability(p, "bernoulli_")
    if isinstance(prob, np.ndarray):
        _check_fits(self.shape, prob.shape)
    draw = _generator(generator).random(self.shape) < prob
    return _fill(self, draw)


def bernoulli(input: Any, p: Any = None, *, generator: Any = None) -> Tensor:
    """``torch.bernoulli``: 0/1 draws with the probabilities in ``input`` (float32, each
    in [0, 1]), or with the scalar ``p`` in input's shape and dtype. No gradient."""
    t = as_tensor(input)
    if p is not None:
        out = Tensor._wrap(np.empty(t.shape, dtype=t._data.dtype))
        return bernoulli_(out, p, generator=generator)
    if t._data.dtype != float32:
        raise NotImplementedError(f"\"bernoulli_tensor_cpu_p_\" not implemented for "
                                  f"'{_TORCH_NAME[t._data.dtype.kind]}'")
    probs = t._data
    if probs.size and not ((probs >= 0) & (probs <= 1)).all():
        raise RuntimeValueError("bernoulli: expected every probability of input in [0, 1] "
                                f"(torch: p_in >= 0 && p_in <= 1), got min {probs.min():g}, "
                                f"max {probs.max():g}")
    draw = _generator(generator).random(t.shape) < probs
    return Tensor._wrap(draw.astype(np.float32))


_RANDOM_FULL = {"f": (0, 2 ** 24 + 1), "i": (0, 2 ** 63), "b": (0, 2)}


def random_(self: Tensor, from_: Any = None, to: Any = None, *, generator: Any = None) -> Tensor:
    """Integers drawn uniformly: ``random_()`` over the dtype's exact integers (float32:
    [0, 2^24], int64: [0, 2^63 - 1], bool: {0, 1}); ``random_(to)`` over [0, to);
    ``random_(from, to)`` over [from, to)."""
    kind = self._data.dtype.kind
    if from_ is None and to is None:
        low, high = _RANDOM_FULL[kind]
    else:
        if to is None:  # random_(to)
            low, high = 0, from_
        else:
            low, high = (0 if from_ is None else from_), to
        low, high = int(low), int(high)
        if low >= high:
            raise RuntimeValueError(f"random_ expects 'from' to be less than 'to', but got "
                                    f"from={low} >= to={high}")
        if kind == "b":
            if not 0 <= low <= 1:
                raise RuntimeValueError("from is out of bounds for bool")
            if not 0 <= high - 1 <= 1:
                raise RuntimeValueError("to - 1 is out of bounds for bool")
    draw = _generator(generator).integers(low, high, size=self.shape, dtype=np.int64)
    return _fill(self, draw)


def exponential_(self: Tensor, lambd: float = 1, *, generator: Any = None) -> Tensor:
    lambd = _real(lambd, "exponential_", "lambd")
    if not lambd > 0.0:
        raise RuntimeValueError(f"exponential_ expects lambda > 0.0, but found lambda={lambd:g}")
    _continuous(self, "Exponential")
    draw = _generator(generator).standard_exponential(self.shape) / lambd
    return _fill(self, draw.astype(np.float32))


def log_normal_(self: Tensor, mean: float = 1, std: float = 2, *, generator: Any = None) -> Tensor:
    mean, std = _real(mean, "log_normal_", "mean"), _real(std, "log_normal_", "std")
    if not std > 0.0:
        raise RuntimeValueError(f"log_normal_ expects std > 0.0, but found std={std:g}")
    _float_kernel(self, "log_normal_cpu")
    draw = np.exp(_generator(generator).standard_normal(self.shape) * std + mean)
    return _fill(self, draw.astype(np.float32))


def cauchy_(self: Tensor, median: float = 0, sigma: float = 1, *, generator: Any = None) -> Tensor:
    median, sigma = _real(median, "cauchy_", "median"), _real(sigma, "cauchy_", "sigma")
    if not sigma > 0.0:
        raise RuntimeValueError(f"cauchy_ expects sigma > 0.0, but found sigma={sigma:g}")
    _continuous(self, "Cauchy", c_names=True)
    draw = median + sigma * np.tan(math.pi * (_generator(generator).random(self.shape) - 0.5))
    return _fill(self, draw.astype(np.float32))


def geometric_(self: Tensor, p: float, *, generator: Any = None) -> Tensor:
    """The number of Bernoulli(p) trials up to the first success (1, 2, ...)."""
    p = _real(p, "geometric_", "p")
    if not 0 < p < 1:
        raise RuntimeValueError(f"geometric_ expects p to be in (0, 1), but got p={p:g}")
    if self._data.dtype == bool_:
        raise NotImplementedError("\"geometric_cpu\" not implemented for 'Bool'")
    return _fill(self, _generator(generator).geometric(p, size=self.shape))


def normal(mean: Any, std: Any = 1.0, size: Optional[Sequence[int]] = None, *,
           generator: Any = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``torch.normal``'s overloads: (Tensor mean, Tensor std) broadcast together, (Tensor
    mean, float std), (float mean, Tensor std), and (float mean, float std, size). A
    tensor mean or std gets a zero gradient, as torch's."""
    mean_t, std_t = isinstance(mean, Tensor), isinstance(std, Tensor)
    if not mean_t and not std_t:
        if size is None:
            raise TypeError("normal() received an invalid combination of arguments: with a "
                            "float mean and a float std, size is required")
        mean, std = _real(mean, "normal", "mean"), _real(std, "normal", "std")
        if not std >= 0.0:
            raise RuntimeValueError(f"normal expects std >= 0.0, but found std {std:g}")
        if dtype is not None and _normalize_dtype(dtype) != float32:
            raise NotImplementedError(f"\"normal_kernel_cpu\" not implemented for "
                                      f"'{_TORCH_NAME[_normalize_dtype(dtype).kind]}'")
        out = Tensor._wrap(np.empty(_ops.shape_arg(tuple(size)), dtype=np.float32))
        normal_(out, mean, std, generator=generator)
        return out.requires_grad_(True) if requires_grad else out
    if size is not None:
        raise TypeError("normal(): size is only accepted with a float mean and a float std")
    for value, name in ((mean, "mean"), (std, "std")):
        if isinstance(value, Tensor) and value._data.dtype != float32:
            raise NotImplementedError(f"\"normal_kernel_cpu\" not implemented for "
                                      f"'{_TORCH_NAME[value._data.dtype.kind]}'")
    mean_a = mean._data if mean_t else np.float32(_real(mean, "normal", "mean"))
    std_a = std._data if std_t else np.float32(_real(std, "normal", "std"))
    if std_t:
        if std_a.size and not (std_a >= 0).all():
            raise RuntimeValueError("normal expects all elements of std >= 0.0")
    elif not std_a >= 0.0:
        raise RuntimeValueError(f"normal expects std >= 0.0, but found std {float(std_a):g}")
    shape = np.broadcast_shapes(np.shape(mean_a), np.shape(std_a))
    draw = _generator(generator).standard_normal(shape)
    sample = (draw * std_a + mean_a).astype(np.float32)
    return Sampled.apply(sample, *(v for v in (mean, std) if isinstance(v, Tensor)))


def multinomial(input: Any, num_samples: int, replacement: bool = False, *,
                generator: Any = None) -> Tensor:
    """Category indices (int64) drawn with the weights of input's last dim (1-D or 2-D,
    nonnegative, finite, not all zero). Without replacement, as torch: keys
    w / Exp(1) and the largest num_samples of them (zero weights come last)."""
    t = as_tensor(input)
    w = t._data
    if w.dtype != float32:
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: "
                           f"{_TORCH_NAME[w.dtype.kind]}")
    if w.ndim not in (1, 2):
        raise RuntimeValueError(f"multinomial: prob_dist must be 1 or 2 dim, got {w.ndim} dims")
    n = int(num_samples)
    if n <= 0:
        raise RuntimeValueError(f"multinomial: cannot sample n_sample <= 0 samples (got {n})")
    categories = w.shape[-1]
    if not replacement and n > categories:
        raise RuntimeValueError(f"multinomial: cannot sample n_sample > prob_dist.size(-1) "
                                f"samples without replacement ({n} > {categories})")
    rows = w.reshape(-1, categories).astype(np.float64)
    if not (np.isfinite(rows).all() and (rows >= 0).all()):
        raise RuntimeValueError("multinomial: probability tensor contains either `inf`, `nan` "
                                "or element < 0")
    if (rows.sum(axis=1) <= 0).any():
        raise RuntimeValueError("multinomial: invalid multinomial distribution (sum of "
                                "probabilities <= 0)")
    rng = _generator(generator)
    if replacement:
        cdf = np.cumsum(rows, axis=1)
        cdf /= cdf[:, -1:]
        u = rng.random((rows.shape[0], n))
        out = np.stack([np.searchsorted(c, ui, side="right") for c, ui in zip(cdf, u)])
        # a category of zero weight is never drawn: u < 1 and its cdf step is empty
        out = np.minimum(out, categories - 1)
    else:
        keys = rows / rng.standard_exponential(rows.shape)
        out = np.argsort(-keys, axis=1, kind="stable")[:, :n]
    return Tensor._wrap(out.reshape(w.shape[:-1] + (n,)).astype(np.int64))


def rand_like(input: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    t = as_tensor(input)
    out = Tensor._wrap(np.empty(t.shape, dtype=_normalize_dtype(dtype or t.dtype)))
    uniform_(out)
    return out.requires_grad_(True) if requires_grad else out


def randn_like(input: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    t = as_tensor(input)
    out = Tensor._wrap(np.empty(t.shape, dtype=_normalize_dtype(dtype or t.dtype)))
    normal_(out)
    return out.requires_grad_(True) if requires_grad else out


def randint_like(input: Any, low: int = 0, high: Any = None, *, dtype: Any = None,
                 requires_grad: bool = False) -> Tensor:
    """Integers in [low, high) (``randint_like(t, high)``: [0, high)) in t's shape and
    dtype (or ``dtype``)."""
    t = as_tensor(input)
    if high is None:
        low, high = 0, low
    out = Tensor._wrap(np.empty(t.shape, dtype=_normalize_dtype(dtype or t.dtype)))
    random_(out, low, high)
    return out.requires_grad_(True) if requires_grad else out

