"""Autograd: every tensor op's backward against float64 finite differences, plus
the tape's rules (accumulation, diamonds, no_grad, detach, retain_graph)."""

import threading

import numpy as np
import pytest

import pyvision_engine as pve
from reference.gradcheck import assert_grad_close, numerical_grads

rng = np.random.default_rng(1234)


def check(pve_fn, np_fn, *shapes, positive=False):
    """pve_fn on float32 Tensors vs np_fn on float64 arrays: values and gradients."""
    arrays = [rng.standard_normal(s) for s in shapes]
    if positive:
        arrays = [np.abs(a) + 0.5 for a in arrays]
    tensors = [pve.tensor(a, requires_grad=True) for a in arrays]
    out = pve_fn(*tensors)
    expected = np_fn(*arrays)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-4, atol=1e-5)
    upstream = rng.standard_normal(expected.shape)
    out.backward(pve.tensor(upstream))
    numeric = numerical_grads(np_fn, arrays, upstream)
    for i, (t, g) in enumerate(zip(tensors, numeric)):
        assert_grad_close(t.grad.numpy(), g, name=f"input {i}")


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 1, 4), (2, 4)), ((4,), (2, 3, 4)), ((1,), (5,))])
def test_binary_ops_with_broadcasting(shapes):
    check(lambda a, b: a + b, lambda a, b: a + b, *shapes)
    check(lambda a, b: a - b, lambda a, b: a - b, *shapes)
    check(lambda a, b: a * b, lambda a, b: a * b, *shapes)
    check(lambda a, b: a / b, lambda a, b: a / b, *shapes, positive=True)


def test_unary_ops():
    check(lambda a: -a, lambda a: -a, (3, 4))
    check(lambda a: a ** 3, lambda a: a ** 3, (3, 4))
    check(lambda a: a ** 0.5, lambda a: a ** 0.5, (5,), positive=True)
    check(lambda a: a.exp(), np.exp, (3, 4))
    check(lambda a: a.log(), np.log, (3, 4), positive=True)
    check(lambda a: a.sqrt(), np.sqrt, (3, 4), positive=True)
    check(lambda a: abs(a), np.abs, (3, 4))
    check(lambda a, b: a ** b, lambda a, b: a ** b, (3,), (3,), positive=True)


@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)])
def test_reductions(dim, keepdim):
    axis = dim
    check(lambda a: a.sum(dim, keepdim), lambda a: a.sum(axis=axis, keepdims=keepdim), (2, 3, 4))
    check(lambda a: a.mean(dim, keepdim), lambda a: a.mean(axis=axis, keepdims=keepdim), (2, 3, 4))


def test_max_min_backward():
    check(lambda a: a.max(dim=1).values, lambda a: a.max(axis=1), (3, 5))
    check(lambda a: a.min(dim=0, keepdim=True).values, lambda a: a.min(axis=0, keepdims=True), (3, 5))
    check(lambda a: a.max(), lambda a: a.max(), (4, 4))


def test_full_max_splits_gradient_between_ties_like_torch():
    t = pve.tensor([1.0, 3.0, 3.0, 0.0], requires_grad=True)
    t.max().backward()
    np.testing.assert_allclose(t.grad.numpy(), [0.0, 0.5, 0.5, 0.0])


def test_shape_ops():
    check(lambda a: a.reshape(6, -1), lambda a: a.reshape(6, -1), (2, 3, 4))
    check(lambda a: a.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1), (2, 3, 4))
    check(lambda a: a.transpose(0, 1), lambda a: a.swapaxes(0, 1), (2, 3, 4))
    check(lambda a: a.t(), lambda a: a.T, (3, 5))
    check(lambda a: a.flatten(1), lambda a: a.reshape(2, -1), (2, 3, 4))
    check(lambda a: a.expand(3, 2, 4), lambda a: np.broadcast_to(a, (3, 2, 4)), (2, 1))
    check(lambda a: a.unsqueeze(1).squeeze(1), lambda a: a, (3, 4))


def test_indexing_backward_accumulates_repeated_indices():
    check(lambda a: a[1:, ::2], lambda a: a[1:, ::2], (4, 5))
    check(lambda a: a[[0, 2, 2, 1]], lambda a: a[[0, 2, 2, 1]], (3, 4))
    check(lambda a: a[:, 1], lambda a: a[:, 1], (3, 4))


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((4,), (4,)), ((4,), (4, 3)), ((3, 4), (4,)),
                                   ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((3, 4), (2, 4, 5)),
                                   ((2, 1, 3, 4), (5, 4, 2)), ((1, 1), (1, 7))])
def test_matmul_all_operand_ranks(sa, sb, isa):
    check(lambda a, b: a @ b, lambda a, b: np.matmul(a, b), sa, sb)


def test_matmul_shape_errors():
    with pytest.raises(RuntimeError, match=r"cannot be multiplied \(2x3 and 4x5\)"):
        pve.ones(2, 3) @ pve.ones(4, 5)  # (torch's RuntimeError and wording)
    with pytest.raises(RuntimeError, match="at least 1D"):
        pve.tensor(1.0) @ pve.ones(3)


def test_gradients_accumulate_across_backward_calls():
    x = pve.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])


def test_diamond_graph_sums_both_paths():
    x = pve.tensor([2.0], requires_grad=True)
    y = x * x          # shared intermediate
    z = y * 3 + y.exp()
    z.backward(pve.ones(1))
    np.testing.assert_allclose(x.grad.numpy(), [6 * 2 + np.exp(4.0) * 4], rtol=1e-5)


def test_second_backward_needs_retain_graph():
    x = pve.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_errors():
    with pytest.raises(RuntimeError, match="does not require grad"):
        pve.ones(2).sum().backward()
    x = pve.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="shape"):
        (x * 2).backward(pve.ones(3))


def test_no_grad_records_nothing():
    x = pve.ones(3, requires_grad=True)
    with pve.no_grad():
        y = x * 2 + 1
    assert not y.requires_grad and y.grad_fn is None

    @pve.no_grad()
    def f(t):
        return t @ t

    assert f(x).grad_fn is None
    assert pve.is_grad_enabled()
    with pve.no_grad():
        with pve.enable_grad():
            assert (x * 2).requires_grad
    pve.set_grad_enabled(False)
    assert not pve.is_grad_enabled()
    pve.set_grad_enabled(True)
    assert pve.is_grad_enabled()


def test_grad_mode_is_thread_local():
    seen = {}

    def worker():
        seen["enabled"] = pve.is_grad_enabled()

    with pve.no_grad():
        th = threading.Thread(target=worker)
        th.start()
        th.join()
    assert seen["enabled"] is True


def test_detach_cuts_the_graph_and_shares_memory():
    x = pve.ones(3, requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.is_leaf
    assert np.shares_memory(d.numpy(), y.detach().numpy())
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_retain_grad_on_intermediate():
    x = pve.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [6.0, 12.0])
    np.testing.assert_allclose(x.grad.numpy(), [18.0, 36.0])


def test_custom_function():
    class Cube(pve.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.a = a
            return a ** 3

        @staticmethod
        def backward(ctx, g):
            return (3 * ctx.a ** 2 * g,)

    x = pve.tensor([1.0, -2.0], requires_grad=True)
    Cube.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])


def test_convenience_ops_against_numpy_and_finite_differences():
    check(lambda a: a.clamp(-0.3, 0.4), lambda a: np.clip(a, -0.3, 0.4), (4, 5))
    check(lambda a: a.var(1), lambda a: a.var(axis=1, ddof=1), (3, 6))
    check(lambda a: a.std(unbiased=False), lambda a: a.std(), (4, 3))
    check(lambda a: a.norm(dim=0), lambda a: np.sqrt((a * a).sum(0)), (3, 4))
    check(lambda a: a.repeat(2, 1, 3), lambda a: np.tile(a, (2, 1, 3)), (2, 3))
    check(lambda a: a.split([1, 3], dim=1)[1], lambda a: a[:, 1:], (2, 4))
    check(lambda a, b: pve.where(a > 0, a, b), lambda a, b: np.where(a > 0, a, b), (3, 4), (4,))
    check(lambda a: a.masked_fill(a < 0, 0.0), lambda a: np.where(a < 0, 0.0, a), (5,))
    check(lambda a: a.topk(2, dim=1).values, lambda a: -np.sort(-a, axis=1)[:, :2], (3, 5))
    check(lambda a: a.sort(dim=0).values, lambda a: np.sort(a, axis=0), (4, 2))
    check(lambda a, b: pve.stack([a, b], dim=1), lambda a, b: np.stack([a, b], axis=1), (2, 3), (2, 3))


def test_convenience_ops_validate_arguments():
    t = pve.ones(2, 3)
    # torch raises RuntimeError for each of these
    with pytest.raises(RuntimeError, match="At least one"):
        t.clamp()
    with pytest.raises(RuntimeError, match="sum exactly to 3"):
        t.split([1, 1], dim=1)
    with pytest.raises(RuntimeError, match="out of range"):
        t.topk(4)
    with pytest.raises(RuntimeError, match="equal size"):
        pve.stack([pve.ones(2), pve.ones(3)])
    with pytest.raises(RuntimeError, match="repeat dims"):
        t.repeat(2)
    with pytest.raises(RuntimeError, match="boolean masks"):
        t.masked_fill(t, 0.0)


def test_inference_mode_is_no_grad_as_context_and_decorator():
    x = pve.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    with pve.inference_mode():
        assert not pve.is_grad_enabled()
        assert not (x * 2).requires_grad
    assert pve.is_grad_enabled()

    @pve.inference_mode
    def bare():
        return pve.is_grad_enabled()

    @pve.inference_mode()
    def called():
        return pve.is_grad_enabled()

    @pve.inference_mode(False)
    def off():
        return pve.is_grad_enabled()

    assert (bare(), called(), off()) == (False, False, True)
    with pve.no_grad(), pve.inference_mode(False):
        assert not pve.is_grad_enabled()  # mode=False changes nothing


def test_large_float32_sums_are_numpys_exactly():
    # Add and gradient accumulation of >= 32K-element float32 arrays run on the
    # threaded add kernel: the same exactly rounded sums as numpy, inf and NaN included
    from pyvision_engine import autograd

    rng = np.random.default_rng(11)
    n = 4 * autograd._THREADED_ADD_MIN + 5  # (a tail past whole vectors)
    a = rng.standard_normal(n).astype(np.float32) * np.float32(1e30)
    b = rng.standard_normal(n).astype(np.float32) * np.float32(1e30)
    a[:3] = [np.inf, np.nan, -np.inf]
    b[:3] = [-np.inf, 1.0, -1.0]
    with np.errstate(invalid="ignore", over="ignore"):
        np.testing.assert_array_equal((pve.tensor(a) + pve.tensor(b)).numpy(), a + b)
        x = pve.tensor(a, requires_grad=True)
        w1, w2 = pve.tensor(b), pve.tensor(a[::-1].copy())
        ((x * w1).sum() + (x * w2).sum()).backward()  # x's two gradient contributions summed
        np.testing.assert_array_equal(x.grad.numpy(), b + a[::-1])
