"""Float64 central finite differences, the independent reference for backward passes."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def numerical_grads(f: Callable[..., np.ndarray], inputs: Sequence[np.ndarray],
                    upstream: np.ndarray, eps: float = 1e-6) -> list:
    """d(sum(f(*inputs) * upstream))/d(input) for each input, in float64.

    ``f`` must be a plain-numpy float64 implementation of the op under test.
    """
    inputs = [np.array(x, dtype=np.float64) for x in inputs]
    grads = []
    for x in inputs:
        g = np.zeros_like(x)
        flat, gflat = x.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            saved = flat[i]
            flat[i] = saved + eps
            plus = np.sum(f(*inputs) * upstream)
            flat[i] = saved - eps
            minus = np.sum(f(*inputs) * upstream)
            flat[i] = saved
            gflat[i] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def assert_grad_close(actual, expected, rtol: float = 1e-4, atol: float = 1e-4, name: str = "") -> None:
    """float32 analytic gradient vs float64 numerical one, scaled by the gradient's size."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=name)
