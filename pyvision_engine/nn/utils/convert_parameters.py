"""parameters_to_vector / vector_to_parameters (torch.nn.utils names and semantics)."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from pyvision_engine.nn._f_common import RuntimeValueError
from pyvision_engine.nn._f_shape import cat
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """The parameters flattened and concatenated into one vector (differentiable)."""
    flat = [as_tensor(p).reshape(-1) for p in parameters]
    if not flat:  # (torch.cat's RuntimeError)
        raise RuntimeValueError("parameters_to_vector: expected a non-empty iterable of "
                                "parameters")
    return cat(flat)


def vector_to_parameters(vec: Any, parameters: Iterable[Tensor]) -> None:
    """Make each parameter's data the next slice of ``vec``, reshaped: a view, so the
    parameters share ``vec``'s memory, as torch's ``param.data = vec[...]``. Extra
    elements at the end of ``vec`` are left unused, as torch."""
    if not isinstance(vec, (Tensor, np.ndarray)):
        raise TypeError(f"vector_to_parameters: expected a Tensor, but got: "
                        f"{type(vec).__name__}")
    vec = as_tensor(vec)
    params = list(parameters)
    needed = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.shape[0] < needed:
        raise RuntimeValueError(f"vector_to_parameters: expected a 1-D vector of at least "
                                f"{needed} elements for {len(params)} parameters, got shape "
                                f"{tuple(vec.shape)}")
    pointer = 0
    for param in params:
        n = param.numel()
        param.data = vec._data[pointer:pointer + n].reshape(param.shape)
        pointer += n
