"""Shared check of the tensor-op test files: a pve op on float32 tensors against a numpy
function on float64 arrays, values and gradients (float64 finite differences)."""

import numpy as np

import pyvision_engine as pve
from reference.gradcheck import assert_grad_close, numerical_grads


def check_values_and_grads(pve_fn, np_fn, *arrays, rng, rtol=1e-4, atol=1e-5):
    """pve_fn on float32 tensors vs np_fn on the float64 arrays. An input that gets no
    gradient (only a condition read it, as in torch) must have a zero numeric one."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    tensors = [pve.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    out = pve_fn(*tensors)
    expected = np.asarray(np_fn(*arrays))
    assert out.shape == expected.shape and out.dtype == pve.float32
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=rtol, atol=atol)
    upstream = rng.standard_normal(expected.shape)
    out.backward(pve.tensor(upstream.astype(np.float32)))
    for i, (t, g) in enumerate(zip(tensors, numerical_grads(np_fn, arrays, upstream))):
        if t.grad is None:
            np.testing.assert_array_equal(g, 0, err_msg=f"input {i}")
            continue
        assert_grad_close(t.grad.numpy(), g, name=f"input {i}")
