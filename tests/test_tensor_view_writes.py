"""In-place ops on views write into the viewed tensor, and in-place ops on a tensor show
in its views, as torch's views share memory.

Every Tensor here is C-contiguous, so ``x.t()``, ``x[:, 1:3]`` or ``x[::2]`` are copies;
each remembers its base and writes an in-place change back (recorded for autograd as an
index-put), and a change of the base refreshes them. Expected values come from numpy
doing the same writes on one array and its views."""

import numpy as np
import pytest

import pyvision_engine as pve
import pyvision_engine.nn.functional as F

A = np.arange(24, dtype=np.float32).reshape(4, 6)


def fresh():
    return pve.tensor(A.copy()), A.copy()


@pytest.mark.parametrize("write,expect", [
    (lambda x: x[:, 1:3].add_(100), lambda a: a[:, 1:3].__iadd__(100)),
    (lambda x: x[:, 2].mul_(-1), lambda a: a[:, 2].__imul__(-1)),
    (lambda x: x[..., -1].fill_(7), lambda a: a[..., -1].fill(7)),
    (lambda x: x[::2].zero_(), lambda a: a[::2].fill(0)),
    (lambda x: x[1:, ::3].copy_(np.ones((3, 2), np.float32)), lambda a: a[1:, ::3].fill(1)),
    (lambda x: x.t().mul_(0.5), lambda a: a.__imul__(0.5)),
    (lambda x: x.T[0].sub_(1), lambda a: a[:, 0].__isub__(1)),
    (lambda x: x.permute(1, 0)[2:4, 1:3].clamp_(max=3.0), lambda a: np.minimum(a[1:3, 2:4], 3.0,
                                                                             out=a[1:3, 2:4])),
    (lambda x: x.transpose(0, 1)[1].__setitem__(slice(1, 3), -5.0),
     lambda a: a[1:3, 1].fill(-5)),
    (lambda x: x.narrow(1, 2, 3).div_(2), lambda a: a[:, 2:5].__itruediv__(2)),
    (lambda x: x.select(1, 4).mul_(-1), lambda a: a[:, 4].__imul__(-1)),
    (lambda x: [c.add_(i) for i, c in enumerate(x.unbind(1))],
     lambda a: a.__iadd__(np.arange(6, dtype=np.float32))),
    (lambda x: [c.mul_(2) for c in x.split(2, dim=1)[1:2]], lambda a: a[:, 2:4].__imul__(2)),
    (lambda x: [c.fill_(i) for i, c in enumerate(x.chunk(3, dim=1))],
     lambda a: [a[:, 2 * i:2 * i + 2].fill(i) for i in range(3)]),
    (lambda x: x[:, 3].unsqueeze(0).add_(1), lambda a: a[:, 3].__iadd__(1)),
])
def test_in_place_writes_through_a_copied_view(write, expect):
    x, a = fresh()
    with pve.no_grad():
        write(x)
    expect(a)
    np.testing.assert_array_equal(x.numpy(), a)


def test_functional_in_place_ops_and_init_write_through():
    x, a = fresh()
    x -= 10
    a -= 10
    F.relu(x[:, 1:4], inplace=True)
    np.maximum(a[:, 1:4], 0, out=a[:, 1:4])
    pve.nn.init.zeros_(x[2])  # (a row: a real view)
    pve.nn.init.ones_(x[:, 5])
    a[2] = 0
    a[:, 5] = 1
    np.testing.assert_array_equal(x.numpy(), a)


def test_partial_weight_init_of_a_module():
    m = pve.nn.Linear(4, 3)
    with pve.no_grad():
        m.weight[:, :2].zero_()
        m.weight.t()[3].fill_(1.0)
    w = m.weight.detach().numpy()
    assert (w[:, :2] == 0).all() and (w[:, 3] == 1).all() and (w[:, 2] != 0).all()


def test_views_taken_before_an_in_place_change_of_the_base_see_it():
    x, a = fresh()
    col, tr, strided = x[:, 1:3], x.t(), x[::2, ::3]
    row_of_tr = tr[4]  # (a view of a view)
    x.mul_(2)
    x[0, 1] = -7.0
    x.t()[5].fill_(9.0)  # (through another view)
    col.add_(100)        # (and through one of these: the others follow)
    a *= 2
    a[0, 1] = -7
    a[:, 5] = 9
    a[:, 1:3] += 100
    np.testing.assert_array_equal(x.numpy(), a)
    np.testing.assert_array_equal(col.numpy(), a[:, 1:3])
    np.testing.assert_array_equal(tr.numpy(), a.T)
    np.testing.assert_array_equal(strided.numpy(), a[::2, ::3])
    np.testing.assert_array_equal(row_of_tr.numpy(), a[:, 4])


def test_a_view_of_a_base_changed_in_place_differentiates_through_the_change():
    c = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    x = pve.tensor(A.copy(), requires_grad=True)
    y = x * 2
    v = y[:, 1:3]
    y.mul_(x)  # y = 2x^2, and v with it
    (v * pve.tensor(c[:, 1:3])).sum().backward()
    g = np.zeros_like(A)
    g[:, 1:3] = 4 * A[:, 1:3] * c[:, 1:3]
    np.testing.assert_allclose(v.detach().numpy(), 2 * A[:, 1:3] ** 2)
    np.testing.assert_allclose(x.grad.numpy(), g, rtol=1e-6)


def test_a_saved_view_whose_base_changed_fails_backward_as_torch():
    x = pve.tensor(A.copy(), requires_grad=True)
    y = x * 2
    v = y[:, 1:3]
    z = (v * v).sum()
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.backward()


def test_replacing_data_detaches_views():
    x, a = fresh()
    v = x[:, 0]
    x.data = np.zeros((2, 2), np.float32)
    x.add_(1)
    v.add_(5)
    np.testing.assert_array_equal(v.numpy(), a[:, 0] + 5)
    np.testing.assert_array_equal(x.numpy(), np.ones((2, 2), np.float32))


def test_advanced_indexing_stays_a_copy_as_torchs():
    x, a = fresh()
    with pve.no_grad():
        x[[0, 2]].add_(100)
        x[x > 20].zero_()
    np.testing.assert_array_equal(x.numpy(), a)


def test_gradient_flows_through_writes_into_a_view():
    c = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    x = pve.tensor(A.copy(), requires_grad=True)
    y = x * 2
    y[:, 1:3].mul_(3)          # y = 6x there
    y.t()[5].add_(x[:, 0])     # y[:, 5] = 2x[:, 5] + x[:, 0]
    (y * pve.tensor(c)).sum().backward()
    g = 2 * c
    g[:, 1:3] = 6 * c[:, 1:3]
    g[:, 0] += c[:, 5]
    np.testing.assert_allclose(x.grad.numpy(), g, rtol=1e-6)
    expect = 2 * A
    expect[:, 1:3] *= 3
    expect[:, 5] += A[:, 0]
    np.testing.assert_allclose(y.detach().numpy(), expect, rtol=1e-6)


def test_in_place_on_a_view_of_a_leaf_that_requires_grad_is_refused_untouched():
    w = pve.tensor(A.copy(), requires_grad=True)
    for write in (lambda: w[:, :2].zero_(), lambda: w.t().mul_(2),
                  lambda: w.T[1].__setitem__(0, 5.0)):
        with pytest.raises(RuntimeError, match="view of a leaf Variable"):
            write()
    np.testing.assert_array_equal(w.detach().numpy(), A)
    with pve.no_grad():  # (allowed without autograd, as torch)
        w.t()[0].mul_(2)
    np.testing.assert_array_equal(w.detach().numpy()[:, 0], 2 * A[:, 0])


def test_torch_parity_of_writes_through_views():
    torch = pytest.importorskip("torch", reason="torch not installed: view writes not compared")
    c = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    results = []
    for lib in (pve, torch):
        x = lib.tensor(A.copy(), requires_grad=True)
        y = x * 2
        y[:, 1:3].mul_(3)
        y.t()[1:3].add_(x[:, 0] ** 2)
        lib.nn.functional.relu(y[1:, ::2] - 20, inplace=True)
        y[1:, ::2].sub_(20)
        y[0, 0] = x[2, 2] * 5
        y.T[2][1:].mul_(x[0, 1:4])
        early = y.permute(1, 0)
        y.permute(1, 0)[::2, 1].clamp_(min=0)
        y.mul_(x)
        loss = (y * lib.tensor(c)).sum() + (early[1:4] ** 2).sum()
        loss.backward()
        results.append((y.detach().numpy().copy(), early.detach().numpy().copy(),
                        x.grad.numpy().copy()))
    for mine, theirs in zip(*results):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6)


def test_tensors_with_views_copy_and_pickle():
    import copy
    import pickle

    x, a = fresh()
    v = x[:, 0]
    for clone in (copy.deepcopy(v), pickle.loads(pickle.dumps(v))):
        clone.add_(1)  # (writes into its own copy of the base)
        np.testing.assert_array_equal(clone._view_base.base.numpy()[:, 0], a[:, 0] + 1)
    np.testing.assert_array_equal(x.numpy(), a)
    x.add_(1)
    np.testing.assert_array_equal(v.numpy(), a[:, 0] + 1)


@pytest.mark.parametrize("write,reaches_base", [
    (lambda x: x.t().contiguous().mul_(2), False),       # a strided view: contiguous() copies
    (lambda x: x.t().reshape(-1).add_(1), False),        # reshape of it copies too
    (lambda x: x[:, 1:3].flatten().add_(1), False),
    (lambda x: x[:, 0].unsqueeze(1).add_(1), True),       # always a view
    (lambda x: x[:, 0].reshape(2, 2).add_(1), True),      # strides allow a view
    (lambda x: x[:, 2].contiguous().add_(1), False),
    (lambda x: x.t().t().contiguous().add_(1), True),     # contiguous again: itself
    (lambda x: x.t()[:, 1].unsqueeze(0).squeeze(0).add_(1), True),
])
def test_reshapes_and_contiguous_of_views_copy_when_torchs_would(write, reaches_base):
    x, a = fresh()
    with pve.no_grad():
        write(x)
    assert (not np.array_equal(x.numpy(), a)) == reaches_base


@pytest.mark.parametrize("make,contiguous", [
    (lambda x: x.t(), False), (lambda x: x[:, 0], False), (lambda x: x[:, 1:3], False),
    (lambda x: x[1:3], True), (lambda x: x.t().t(), True), (lambda x: x[0:1].t(), True),
    (lambda x: x[::2], False),
])
def test_is_contiguous_answers_for_the_strided_view_torch_would_have(make, contiguous):
    x, _ = fresh()
    view = make(x)
    assert view.is_contiguous() == contiguous
    assert view.contiguous().is_contiguous()
