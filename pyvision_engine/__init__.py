"""pyvision_engine: a small, fast CPU engine that trains and runs CNNs.

    import pyvision_engine as pve

Tensors, autograd, ``pve.nn`` and ``pve.optim`` follow PyTorch's names and
semantics; the heavy lifting is done by SIMD + OpenMP kernels in ``_C``.
"""

from __future__ import annotations

from typing import Any, Dict

from pyvision_engine import _C
from pyvision_engine._version import __version__
from pyvision_engine.autograd import (
    Function, enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled,
)
from pyvision_engine.random import get_rng_state, initial_seed, manual_seed, set_rng_state
from pyvision_engine.tensor import (
    Tensor, arange, as_tensor, bool_, empty, float32, from_dlpack, from_numpy, full, int64,
    ones, ones_like, tensor, zeros, zeros_like,
)
from pyvision_engine import nn  # noqa: E402  (needs the names above)
from pyvision_engine import optim  # noqa: E402
from pyvision_engine.nn.functional import add, cat  # noqa: E402  (torch.cat, torch.add)
from pyvision_engine._functions import (  # noqa: E402  (torch-style top-level functions)
    abs, allclose, amax, amin, argmax, argmin, argsort, argwhere, bmm, ceil, chunk, clamp,
    clamp_max, clamp_min, clip, cos, cumsum, diag, dot, empty_like, equal, erf, exp, eye, flatten,
    flip, floor, full_like, gather, index_select, is_tensor, isclose, isfinite, isinf, isnan, lerp,
    linspace, log, log_softmax, logsumexp, masked_fill, max, maximum, mean, min, minimum, mm,
    nonzero, norm, numel, outer, permute, pow, prod, rand, randint, randn, randperm, reciprocal,
    relu, reshape, roll, round, rsqrt, scatter, sigmoid, sign, sin, softmax, sort, split, sqrt,
    square, squeeze, stack, std, sum, tanh, topk, transpose, tril, triu, unbind, unsqueeze, var,
    where,
)
from pyvision_engine import data  # noqa: E402
from pyvision_engine.io import load, save  # noqa: E402
from pyvision_engine import train  # noqa: E402

long = int64
float = float32  # noqa: A001  (torch's alias: pve.float)

__all__ = [
    "Tensor", "tensor", "from_numpy", "from_dlpack", "as_tensor", "zeros", "ones", "full",
    "empty", "zeros_like", "ones_like", "arange", "float32", "int64", "bool_", "long",
    "no_grad", "inference_mode", "enable_grad", "set_grad_enabled", "is_grad_enabled", "Function",
    "manual_seed", "initial_seed", "get_rng_state", "set_rng_state",
    "set_num_threads", "get_num_threads", "info", "matmul", "cat", "nn", "optim", "data", "save",
    "load", "train", "models", "onnx", "func", "__version__",
]


def set_num_threads(n: int) -> None:
    """Threads used by every kernel (OpenMP). Default: OMP_NUM_THREADS or all cores."""
    _C.set_num_threads(int(n))


def get_num_threads() -> int:
    return _C.get_num_threads()


def matmul(input: Any, other: Any) -> Tensor:
    """torch.matmul semantics (1-D, 2-D and broadcast batched operands)."""
    return as_tensor(input) @ as_tensor(other)


def info() -> Dict[str, Any]:
    """What this engine runs on: version, SIMD level, threads, OpenMP runtime, kernels."""
    return {
        "version": __version__,
        "isa": _C.active_isa(),
        "supported_isas": list(_C.supported_isas()),
        "num_threads": _C.get_num_threads(),
        "openmp": _C.openmp_runtime(),
        "heap": _C.heap_tuning,
        "cpu_features": dict(_C.cpu_features()),
        "kernels": {name: list(_C.kernel_isas(name)) for name in _C.kernel_names()},
    }


def __getattr__(name: str) -> Any:
    # pve.models, pve.onnx and pve.func are imported on first use, keeping
    # `import pyvision_engine` fast.
    if name in ("models", "onnx", "func"):
        import importlib

        return importlib.import_module(f"pyvision_engine.{name}")
    raise AttributeError(f"module 'pyvision_engine' has no attribute '{name}'")

from pyvision_engine._sampling import (  # noqa: E402  (random sampling on tensors)
    bernoulli, multinomial, normal, rand_like, randint_like, randn_like,
)
from pyvision_engine._functions import (  # noqa: E402  (more element-wise math)
    acos, acosh, arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, asin, asinh, atan,
    atan2, atanh, copysign, cosh, divide, exp2, expm1, fix, fmod, frac, heaviside, hypot, log1p,
    log2, log10, logaddexp, logit, multiply, nan_to_num, negative, sinh, subtract, tan,
    true_divide, trunc, xlogy,
)
from pyvision_engine._functions import (  # noqa: E402  (selection and rearrangement)
    broadcast_to, is_complex, is_floating_point, masked_select, moveaxis, movedim, narrow, ravel,
    repeat_interleave, select, split_with_sizes, swapaxes, swapdims, take, take_along_dim,
    tensor_split, tile, unflatten,
)
from pyvision_engine._functions import (  # noqa: E402  (index_* / scatter_* writes)
    index_add, index_copy, index_fill, scatter_add, scatter_reduce,
)
from pyvision_engine._functions import (  # noqa: E402  (reductions and scans)
    all, aminmax, any, count_nonzero, cummax, cummin, cumprod, diff, kthvalue, logcumsumexp,
    median, nanmean, nanmedian, nansum, std_mean, trace, var_mean,
)
from pyvision_engine._functions import (  # noqa: E402  (unique, counting, searching, quantiles)
    bincount, bucketize, histc, nanquantile, quantile, searchsorted, unique, unique_consecutive,
)
from pyvision_engine._functions import (  # noqa: E402  (function forms of Tensor methods)
    addcdiv, addcmul, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, clone, div, eq,
    floor_divide, ge, get_default_dtype, greater, greater_equal, gt, le, less, less_equal,
    logical_and, logical_not, logical_or, logical_xor, lt, mul, ne, neg, not_equal, remainder,
    scalar_tensor, sub, t,
)

bool = bool_  # noqa: A001  (torch.bool: the dtype)
