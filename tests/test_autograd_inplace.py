"""In-place ops and autograd, as torch: an in-place op on a tensor in the graph (or with
an operand that requires grad) is recorded and the tensor takes over the new node; ops
that recorded the tensor before keep sending their gradient to its old producer; an op
that saved values changed in place since is an error in backward (torch's version
counter); a leaf that requires grad refuses in-place ops. Values and gradients are
compared with torch (skipped without it) and with numpy / finite differences."""

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine.nn import functional as F

A = np.array([[0.5, -1.25, 2.0], [1.5, 0.25, -0.75]], np.float32)
B = np.array([0.75, -0.5, 1.25], np.float32)
UP = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]], np.float32)


# Each case: fn(lib, a, b) -> output, with a and b leaves that require grad. The in-place
# op is on a non-leaf made from them (or on a plain tensor, with an operand from them).
INPLACE = [
    ("add_", lambda L, a, b: (a * 2).add_(b)),
    ("add_alpha", lambda L, a, b: (a * 2).add_(b, alpha=-3.0)),
    ("sub_scalar", lambda L, a, b: (a * b).sub_(1.5)),
    ("mul_tensor", lambda L, a, b: (a + 1).mul_(b)),
    ("mul_scalar", lambda L, a, b: (a * b).mul_(3.0)),
    ("div_tensor", lambda L, a, b: (a - 1).div_(b)),
    ("iadd", lambda L, a, b: _iadd(a * 2, b)),
    ("imul", lambda L, a, b: _imul(a - b, b)),
    ("zero_", lambda L, a, b: (a * b).zero_() + a),
    ("fill_scalar", lambda L, a, b: (a * b).fill_(2.5) * a),
    ("fill_0d_tensor", lambda L, a, b: (a * 2).fill_(b[1]) * a),
    ("copy_", lambda L, a, b: (a * 3).copy_(b * b) + a),
    ("clamp_", lambda L, a, b: (a * b).clamp_(-0.5, 0.9)),
    ("clamp_min", lambda L, a, b: (a + b).clamp_(min=0.0)),
    ("setitem_scalar", lambda L, a, b: _set(a * b, (0, 1), 7.0)),
    ("setitem_tensor", lambda L, a, b: _set(a * 2, 1, b * b)),
    ("setitem_broadcast", lambda L, a, b: _set(a * 2, (slice(None), 0), b[1])),
    ("setitem_bool_mask", lambda L, a, b: _set(a * 2, (a > 0).detach(), b[2] * 3)),
    ("setitem_adv_int", lambda L, a, b: _set(a * 2, (0, [2, 0]), b[:2])),
    ("setitem_into_plain", lambda L, a, b: _set(L.zeros(2, 3), 0, b * a[1])),
    ("add_into_plain", lambda L, a, b: L.zeros(2, 3).add_(a * b)),
    ("copy_into_plain", lambda L, a, b: L.ones(2, 3).copy_(b)),
    ("twice", lambda L, a, b: (a * 2).add_(b).mul_(b)),
    ("consumer_then_mul_", lambda L, a, b: _consumer_then(L, a, b)),
]


def _iadd(t, o):
    t += o
    return t


def _imul(t, o):
    t *= o
    return t


def _set(t, index, value):
    t[index] = value
    return t


def _consumer_then(L, a, b):
    y = a * 2
    z = y + b  # (records y; Add reads no input values)
    y.mul_(5.0)  # the gradient through z still goes to a * 2, not through mul_
    return z * 1.0 + y


@pytest.mark.parametrize("name,fn", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_values_and_gradients_match_torch(name, fn):
    torch = pytest.importorskip("torch")
    p = [pve.tensor(v, requires_grad=True) for v in (A, B)]
    t = [torch.tensor(v, requires_grad=True) for v in (A, B)]
    out_p, out_t = fn(pve, *p), fn(torch, *t)
    assert tuple(out_p.shape) == tuple(out_t.shape) and out_p.requires_grad
    np.testing.assert_allclose(out_p.detach().numpy(), out_t.detach().numpy(), rtol=1e-6, atol=1e-6)
    up = UP[: out_t.shape[0]] if out_t.ndim == 2 else UP[0]
    out_p.backward(pve.tensor(up))
    out_t.backward(torch.from_numpy(np.ascontiguousarray(up)))
    for x, y in zip(p, t):
        assert (x.grad is None) == (y.grad is None)
        if y.grad is not None:
            np.testing.assert_allclose(x.grad.numpy(), y.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_inplace_returns_the_same_object_and_changes_its_memory():
    a = pve.tensor(A, requires_grad=True)
    y = a * 2
    alias, memory = y, y.detach().numpy()
    y += 1.0
    assert y is alias and y.grad_fn is not None
    np.testing.assert_array_equal(memory, A * 2 + 1)  # written in place
    y.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full_like(A, 2.0))


def test_gradient_of_inplace_chain_matches_finite_differences():
    # f(a) = sum(((a * a).add_(a).mul_(a)) * w): numeric check in float64
    w = np.array([[0.3, -1.1, 0.7], [2.0, 0.5, -0.4]])

    def f(v):
        return float(np.sum(((v * v + v) * v) * w))

    a = pve.tensor(A, requires_grad=True)
    y = (a * a).add_(a).mul_(a)
    (y * pve.tensor(w.astype(np.float32))).sum().backward()
    a64, eps = A.astype(np.float64), 1e-6
    numeric = np.zeros_like(a64)
    for i in np.ndindex(a64.shape):
        d = np.zeros_like(a64)
        d[i] = eps
        numeric[i] = (f(a64 + d) - f(a64 - d)) / (2 * eps)
    np.testing.assert_allclose(a.grad.numpy(), numeric, rtol=1e-4, atol=1e-4)


def test_consumers_recorded_before_an_inplace_op_route_to_the_old_producer():
    # y * 3 recorded y; F.relu(y, inplace=True) then gives y a new node. The gradient of
    # z must reach x through y's old producer (6 everywhere), not through the ReLU mask.
    x = pve.tensor(np.array([-1.0, 2.0, -3.0], np.float32), requires_grad=True)
    y = x * 2
    z = y * 3
    F.relu(y, inplace=True)
    z.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 6.0, np.float32))


def test_inplace_on_a_leaf_that_requires_grad_raises():
    a = pve.tensor(A, requires_grad=True)
    for op in (lambda: a.add_(1), lambda: a.mul_(2), lambda: a.zero_(), lambda: a.fill_(1),
               lambda: a.copy_(pve.tensor(A)), lambda: a.clamp_(0, 1),
               lambda: a.__setitem__(0, 1.0), lambda: a.__iadd__(1)):
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            op()
    np.testing.assert_array_equal(a.detach().numpy(), A)
    with pve.no_grad():
        a.add_(1.0)  # allowed without recording (an optimizer step)
    np.testing.assert_array_equal(a.detach().numpy(), A + 1)


def _version_error():
    return pytest.raises(RuntimeError, match="modified by an inplace operation")


def test_changing_a_saved_input_is_an_error_in_backward():
    a = pve.tensor(A, requires_grad=True)
    y = a * 2
    z = y * y  # saves y
    y.add_(1.0)
    with _version_error():
        z.sum().backward()


def test_changing_a_saved_output_is_an_error_in_backward():
    a = pve.tensor(A, requires_grad=True)
    y = a.exp()  # exp's backward reads its output
    y.mul_(2.0)
    with _version_error():
        y.sum().backward()


def test_changing_a_saved_constant_without_recording_is_an_error_in_backward():
    # Mul saved w for a's gradient; before, backward silently used the new values.
    a = pve.tensor(A, requires_grad=True)
    w = pve.ones(3)
    loss = (a * w).sum()
    with pve.no_grad():
        w.mul_(2.0)
    with _version_error():
        loss.backward()
    w2 = pve.ones(3)
    loss2 = (a * w2).sum()
    w2[0] = 5.0
    with _version_error():
        loss2.backward()


def test_changes_that_backward_does_not_read_are_allowed():
    a = pve.tensor(A, requires_grad=True)
    b = pve.tensor(B, requires_grad=True)
    y = a * 2
    s = y.sum()  # Sum reads no values
    z = y * b  # reads y only for b's gradient... which is needed: so an error below
    y.add_(1.0)
    s.backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full_like(A, 2.0))
    with _version_error():
        z.sum().backward()
    c = pve.ones(3)
    y2 = a * c  # c does not require grad: only c is read (for a's gradient), not a
    with pve.no_grad():
        a.add_(1.0)
    a.grad = None
    y2.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.ones_like(A))


def test_inplace_on_a_view_in_the_graph_is_refused_not_wrong():
    a = pve.tensor(A, requires_grad=True)
    y = a * 2
    v = y.view(-1)
    with pytest.raises(RuntimeError, match="shares its memory"):
        v.mul_(3.0)
    with pytest.raises(RuntimeError, match="shares its memory"):
        y.mul_(3.0)


def test_inplace_without_grad_keeps_views_and_numpy_in_step():
    t = pve.zeros(2, 3)
    v = t.view(-1)
    arr = t.numpy()
    t.add_(pve.tensor(B))
    t[1] = 4.0
    v.mul_(2.0)
    expected = np.stack([B * 2, np.full(3, 8.0, np.float32)])
    np.testing.assert_array_equal(t.numpy(), expected)
    np.testing.assert_array_equal(arr, expected)


def test_setitem_value_gradient_sums_over_its_broadcast_and_repeats():
    # b[[0, 0]] = v: v is written twice (one write wins), and, as torch, each use gets
    # the gradient of the position it was written to.
    torch = pytest.importorskip("torch")
    for lib in (pve, torch):
        v = lib.tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
        b = lib.zeros(4, 3)
        b[[0, 2]] = v * 2
        (b * lib.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))).sum().backward()
        if lib is pve:
            got = v.grad.numpy()
        else:
            want = v.grad.numpy()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, 2 * (np.arange(0, 3) + np.arange(6, 9)).astype(np.float32))


def test_inplace_matmul_gradient_at_each_isa(isa):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    m = rng.standard_normal((5, 7)).astype(np.float32)
    n = rng.standard_normal((7, 4)).astype(np.float32)
    grads = []
    for lib in (pve, torch):
        a, b = lib.tensor(m, requires_grad=True), lib.tensor(n, requires_grad=True)
        y = a @ b
        y.mul_(y.detach() + 1)  # (a constant operand: y's own old values are not read)
        y[0] = 0.0
        y.sum().backward()
        grads.append((a.grad.numpy(), b.grad.numpy()))
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_copies_and_pickles_keep_grad_and_requires_grad():
    import copy
    import pickle

    x = pve.tensor(A, requires_grad=True)
    (x * 2).sum().backward()
    for y in (copy.deepcopy(x), pickle.loads(pickle.dumps(x))):
        assert y.requires_grad and y.is_leaf
        np.testing.assert_array_equal(y.detach().numpy(), A)
        np.testing.assert_array_equal(y.grad.numpy(), np.full_like(A, 2.0))
