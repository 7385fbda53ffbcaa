"""pve.Tensor: creation, memory sharing, dtypes, shape ops, reductions, indexing."""

import numpy as np
import pytest

import pyvision_engine as pve


def test_tensor_copies_and_picks_engine_dtypes():
    data = [[1.0, 2.0], [3.0, 4.0]]
    t = pve.tensor(data)
    assert t.dtype == pve.float32 and t.shape == (2, 2) and t.ndim == 2
    assert pve.tensor([1, 2, 3]).dtype == pve.int64
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = pve.tensor(a)
    assert t.dtype == np.float32
    a[0, 0] = 100
    assert t[0, 0].item() == 0.0  # copied


def test_from_numpy_shares_memory_both_ways():
    a = np.zeros((3, 4), dtype=np.float32)
    t = pve.from_numpy(a)
    a[1, 2] = 5.0
    assert t[1, 2].item() == 5.0
    t.numpy()[0, 0] = -1.0
    assert a[0, 0] == -1.0
    assert np.shares_memory(t.numpy(), a)
    labels = np.array([0, 2, 1], dtype=np.int64)
    assert np.shares_memory(pve.from_numpy(labels).numpy(), labels)


def test_from_numpy_rejects_what_it_cannot_share():
    with pytest.raises(TypeError, match="float32"):
        pve.from_numpy(np.zeros(3, dtype=np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        pve.from_numpy(np.zeros((4, 4), dtype=np.float32)[:, ::2])
    with pytest.raises(TypeError):
        pve.from_numpy([1.0, 2.0])


def test_dlpack_round_trip_shares_memory():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = pve.from_numpy(a)
    back = np.from_dlpack(t)
    assert np.shares_memory(back, a)
    t2 = pve.from_dlpack(a)
    assert np.shares_memory(t2.numpy(), a)


def test_dlpack_with_torch():
    torch = pytest.importorskip("torch", reason="torch not installed: DLPack exchange with torch not tested")
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    t = pve.from_dlpack(x)
    x[0, 0] = 42.0
    assert t[0, 0].item() == 42.0
    y = torch.from_dlpack(t)
    t.numpy()[1, 2] = -7.0
    assert y[1, 2].item() == -7.0


def test_array_protocol_and_item():
    t = pve.tensor([[1.5]])
    assert np.asarray(t).dtype == np.float32
    assert t.item() == 1.5
    assert isinstance(pve.tensor([3]).item(), int)
    with pytest.raises(RuntimeError, match="2 elements cannot be converted to Scalar"):
        pve.tensor([1.0, 2.0]).item()  # (torch's RuntimeError)


def test_reshape_view_flatten_with_inferred_dim():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = pve.from_numpy(a)
    assert t.reshape(-1, 4).shape == (6, 4)
    assert t.view(4, -1).shape == (4, 6)
    assert t.reshape((2, 12)).shape == (2, 12)
    assert t.flatten().shape == (24,)
    assert t.flatten(1).shape == (2, 12)
    assert t.flatten(0, 1).shape == (6, 4)
    assert np.shares_memory(t.view(-1).numpy(), a)
    with pytest.raises(RuntimeError, match="invalid for input of size 24"):
        t.reshape(5, -1)  # (torch's RuntimeError)
    with pytest.raises(RuntimeError, match="only one dimension"):
        t.reshape(-1, -1)


def test_permute_transpose_t_match_numpy():
    a = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    t = pve.tensor(a)
    np.testing.assert_array_equal(t.permute(2, 0, 1).numpy(), a.transpose(2, 0, 1))
    np.testing.assert_array_equal(t.transpose(0, 2).numpy(), a.swapaxes(0, 2))
    np.testing.assert_array_equal(pve.tensor(a[0]).t().numpy(), a[0].T)
    assert t.permute(2, 0, 1).numpy().flags.c_contiguous
    assert t.contiguous() is t
    with pytest.raises(RuntimeError):  # (torch's RuntimeError)
        t.permute(0, 1)
    with pytest.raises(RuntimeError):
        t.t()


@pytest.mark.parametrize("dim", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_mean_match_numpy(dim, keepdim):
    a = np.random.default_rng(1).standard_normal((3, 4, 5)).astype(np.float32)
    t = pve.tensor(a)
    axis = dim if not isinstance(dim, list) else tuple(dim)
    np.testing.assert_allclose(t.sum(dim, keepdim).numpy(), a.sum(axis=axis, keepdims=keepdim), rtol=1e-5)
    np.testing.assert_allclose(t.mean(dim, keepdim).numpy(), a.mean(axis=axis, keepdims=keepdim), rtol=1e-5)


def test_max_min_argmax():
    a = np.array([[1.0, 5.0, 5.0], [7.0, -2.0, 0.0]], dtype=np.float32)
    t = pve.tensor(a)
    assert t.max().item() == 7.0 and t.min().item() == -2.0
    values, indices = t.max(dim=1)
    np.testing.assert_array_equal(values.numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 0])  # first of the tie
    assert t.max(1, keepdim=True).values.shape == (2, 1)
    assert t.max(dim=0).indices.dtype == pve.int64
    assert t.argmax().item() == 3
    np.testing.assert_array_equal(t.argmax(dim=1).numpy(), [1, 0])
    assert t.argmax(dim=0, keepdim=True).shape == (1, 3)
    np.testing.assert_array_equal(t.min(dim=0).indices.numpy(), [0, 1, 1])
    with pytest.raises(IndexError, match="out of range"):
        t.sum(dim=2)


def test_max_propagates_nan():
    t = pve.tensor([1.0, float("nan"), 3.0])
    assert np.isnan(t.max().item())
    assert np.isnan(t.max(dim=0).values.item())


def test_indexing_matches_numpy():
    a = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    t = pve.tensor(a)
    for index in [1, -1, (0, 2), (slice(None), 1), (Ellipsis, 2), (slice(0, 2), slice(None, None, 2)),
                  ([0, 2, 2],), (np.array([True, False, True]),), (None, 1)]:
        np.testing.assert_array_equal(t[index].numpy(), a[index], err_msg=str(index))
    idx = pve.tensor([2, 0])
    np.testing.assert_array_equal(t[idx].numpy(), a[[2, 0]])
    with pytest.raises(IndexError):
        t[5]


def test_arithmetic_broadcasting_and_scalars():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 1, 4)).astype(np.float32)
    b = rng.standard_normal((2, 4)).astype(np.float32) + 3.0
    ta, tb = pve.tensor(a), pve.tensor(b)
    for got, want in [(ta + tb, a + b), (ta - tb, a - b), (ta * tb, a * b), (ta / tb, a / b),
                      (-ta, -a), (2.0 * ta, 2 * a), (1.0 - ta, 1 - a), (ta ** 2, a ** 2),
                      (3.0 / tb, 3 / b), (ta + a, a + a)]:
        assert got.dtype == pve.float32
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    # int tensors: true division gives float32, as torch
    assert (pve.tensor([1, 2]) / 2).dtype == pve.float32
    assert (pve.tensor([1, 2]) + 1).dtype == pve.int64


def test_comparisons_give_bool_tensors():
    t = pve.tensor([1.0, 2.0, 3.0])
    eq = t == pve.tensor([1.0, 0.0, 3.0])
    assert eq.dtype == pve.bool_
    np.testing.assert_array_equal(eq.numpy(), [True, False, True])
    assert (t > 1.5).sum().item() == 2
    assert (eq.float().mean().item() - 2 / 3) < 1e-6


def test_in_place_ops_and_guards():
    t = pve.zeros(3)
    t += 1.0
    t.mul_(3.0)
    t.add_(pve.ones(3), alpha=2.0)
    np.testing.assert_array_equal(t.numpy(), [5.0, 5.0, 5.0])
    t[1] = 0.0
    assert t.numpy()[1] == 0.0
    leaf = pve.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        leaf.add_(1.0)
    with pve.no_grad():
        leaf.add_(1.0)  # allowed, as in torch
    np.testing.assert_array_equal(leaf.detach().numpy(), [2.0, 2.0])


def test_numpy_refuses_tensors_that_require_grad():
    t = pve.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        t.numpy()
    assert np.shares_memory(t.detach().numpy(), t.detach().numpy())


def test_only_float_tensors_require_grad():
    with pytest.raises(RuntimeError, match="float32"):
        pve.tensor([1, 2], requires_grad=True)


def test_repr_mentions_grad():
    assert "requires_grad=True" in repr(pve.ones(1, requires_grad=True))
    assert "grad_fn" in repr(pve.ones(1, requires_grad=True) * 2)


def test_top_level_shape_and_test_functions():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = pve.tensor(a)
    np.testing.assert_array_equal(pve.reshape(t, (4, -1)).numpy(), a.reshape(4, -1))
    np.testing.assert_array_equal(pve.permute(t, (2, 0, 1)).numpy(), a.transpose(2, 0, 1))
    np.testing.assert_array_equal(pve.transpose(t, 0, 2).numpy(), a.swapaxes(0, 2))
    assert pve.unsqueeze(t, 1).shape == (2, 1, 3, 4)
    assert pve.squeeze(pve.unsqueeze(t, 0)).shape == (2, 3, 4)
    assert [p.shape for p in pve.split(t, 2, dim=2)] == [(2, 3, 2), (2, 3, 2)]
    assert [p.shape for p in pve.chunk(t, 3, dim=1)] == [(2, 1, 4)] * 3
    assert pve.numel(t) == 24 and pve.is_tensor(t) and not pve.is_tensor(a)
    b = np.array([1.0, np.nan, np.inf, -2.0], np.float32)
    np.testing.assert_array_equal(pve.isnan(b).numpy(), np.isnan(b))
    np.testing.assert_array_equal(pve.isfinite(b).numpy(), np.isfinite(b))
    assert pve.allclose(t, t + 1e-9) and not pve.allclose(t, t + 1.0)
    assert not pve.allclose(b, b) and pve.allclose(b, b, equal_nan=True)


def test_integers_index_before_arrays_as_torch():
    # torch selects the integer dims first, then applies the array indices;
    # numpy would broadcast 0 with [3, 0, 0] and put that dim first.
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = pve.tensor(x, requires_grad=True)
    y = t[0, :, [3, 0, 0]]
    np.testing.assert_array_equal(y.detach().numpy(), x[0][:, [3, 0, 0]])
    y.backward(pve.tensor(np.ones((3, 3), np.float32)))
    want = np.zeros_like(x)
    want[0, :, 3], want[0, :, 0] = 1, 2
    np.testing.assert_array_equal(t.grad.numpy(), want)
    z = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(pve.tensor(z)[:, [0, 1], 0, [1, 2]].numpy(),
                                  z[:, :, 0][:, [0, 1], [1, 2]])
    u = pve.tensor(x.copy())
    u[0, :, [3, 0]] = 7.0
    expected = x.copy()
    expected[0][:, [3, 0]] = 7.0
    np.testing.assert_array_equal(u.numpy(), expected)
