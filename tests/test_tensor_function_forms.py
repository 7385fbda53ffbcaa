"""torch's function forms of Tensor methods (pve.div, pve.eq, pve.logical_and, ...), the
in-place forms torch has (pow_, remainder_, addcmul_, ...), to(copy=True), and 0-d
results that stay 0-d, against numpy (and torch when installed)."""

import numpy as np
import pytest

import pyvision_engine as pve

X = np.array([1.0, -2.0, 3.5, -4.5], np.float32)
Y = np.array([2.0, 2.0, -1.0, 3.0], np.float32)


@pytest.mark.parametrize("name,reference", [
    ("floor_divide", np.floor_divide), ("remainder", np.remainder), ("mul", np.multiply),
    ("sub", np.subtract), ("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
    ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal),
    ("greater", np.greater), ("greater_equal", np.greater_equal), ("less", np.less),
    ("less_equal", np.less_equal), ("not_equal", np.not_equal),
    ("logical_and", np.logical_and), ("logical_or", np.logical_or),
    ("logical_xor", np.logical_xor),
])
def test_binary_function_forms(name, reference):
    out = getattr(pve, name)(pve.tensor(X), pve.tensor(Y)).numpy()
    expect = reference(X, Y)
    assert out.dtype == expect.dtype
    np.testing.assert_array_equal(out, expect)


def test_other_function_forms():
    x, y = pve.tensor(X), pve.tensor(Y)
    np.testing.assert_array_equal(pve.div(x, y, rounding_mode="floor").numpy(), np.floor(X / Y))
    np.testing.assert_array_equal(pve.div(x, y, rounding_mode="trunc").numpy(), np.trunc(X / Y))
    np.testing.assert_array_equal(x.div(y, rounding_mode="trunc").numpy(), np.trunc(X / Y))
    np.testing.assert_allclose(pve.addcmul(x, x, y, value=2).numpy(), X + 2 * X * Y)
    np.testing.assert_allclose(pve.addcdiv(x, x, y, value=0.5).numpy(), X + 0.5 * X / Y)
    np.testing.assert_array_equal(pve.neg(x).numpy(), -X)
    np.testing.assert_array_equal(pve.logical_not(x).numpy(), np.logical_not(X))
    i = pve.tensor([5, -3, 0])
    np.testing.assert_array_equal(pve.bitwise_not(i).numpy(), ~np.array([5, -3, 0]))
    np.testing.assert_array_equal(pve.bitwise_and(i, 6).numpy(), np.array([5, -3, 0]) & 6)
    np.testing.assert_array_equal(pve.t(pve.ones(2, 3)).numpy(), np.ones((3, 2)))
    c = pve.clone(x)
    c.add_(1)
    np.testing.assert_array_equal(x.numpy(), X)
    s = pve.scalar_tensor(3)
    assert s.shape == () and s.dtype == pve.float32 and s.item() == 3.0
    assert pve.get_default_dtype() == pve.float32
    assert pve.zeros(2, dtype=pve.bool).dtype == pve.bool_


def test_in_place_forms():
    z = pve.tensor([2.0, 3.0, -5.0])
    z.pow_(2)
    np.testing.assert_array_equal(z.numpy(), [4.0, 9.0, 25.0])
    z.remainder_(7)
    np.testing.assert_array_equal(z.numpy(), [4.0, 2.0, 4.0])
    z.floor_divide_(3)
    np.testing.assert_array_equal(z.numpy(), [1.0, 0.0, 1.0])
    z.div_(2, rounding_mode="floor")
    np.testing.assert_array_equal(z.numpy(), [0.0, 0.0, 0.0])
    w = pve.tensor([1.0, 2.0], requires_grad=True)
    u = w * 1
    u.addcmul_(w, w, value=3)  # u = w + 3 w^2
    u.addcdiv_(w, pve.tensor([2.0, 4.0]))  # + w / [2, 4]
    u.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 1 + 6 * np.array([1.0, 2.0]) + [0.5, 0.25])


def test_to_with_copy_returns_a_new_tensor():
    f = pve.tensor([1.0, 2.0])
    for g in (f.to(pve.float32, copy=True), f.to("cpu", copy=True),
              f.to(dtype=pve.float32, copy=True), f.to(pve.float32, False, True)):
        assert g is not f
        g.add_(10)
    np.testing.assert_array_equal(f.numpy(), [1.0, 2.0])
    assert f.to(pve.float32) is f and f.to("cpu") is f
    assert f.to(pve.tensor([1, 2])).dtype == pve.int64  # (another tensor's dtype)
    with pytest.raises(TypeError, match="unexpected keyword"):
        f.to(colour="red")


def test_zero_dim_results_stay_zero_dim():
    assert (pve.tensor(True) & pve.tensor(False)).shape == ()
    assert (pve.tensor(6) | 3).shape == ()
    assert (3 ^ pve.tensor(6)).shape == ()
    x = pve.tensor([4.0, 1.0, 3.0])
    for result in (x.median(0), x.nanmedian(0), x.kthvalue(2, 0)):
        assert result.values.shape == () and result.indices.shape == ()
    assert x[x.median(0).indices].shape == ()
    values, inverse, counts = pve.unique(pve.tensor(3), return_inverse=True, return_counts=True)
    assert values.shape == (1,) and inverse.shape == () and counts.shape == (1,)


def test_torch_parity_of_function_forms():
    torch = pytest.importorskip("torch", reason="torch not installed: function forms not compared")
    x, y = pve.tensor(X), pve.tensor(Y)
    xt, yt = torch.tensor(X), torch.tensor(Y)
    for name in ("floor_divide", "remainder", "mul", "sub", "eq", "ne", "lt", "ge",
                 "logical_and", "logical_xor"):
        np.testing.assert_array_equal(getattr(pve, name)(x, y).numpy(),
                                      getattr(torch, name)(xt, yt).numpy(), err_msg=name)
    for mode in ("floor", "trunc"):
        np.testing.assert_array_equal(pve.div(x, y, rounding_mode=mode).numpy(),
                                      torch.div(xt, yt, rounding_mode=mode).numpy())
    np.testing.assert_allclose(pve.addcdiv(x, x, y, value=2).numpy(),
                               torch.addcdiv(xt, xt, yt, value=2).numpy())
    assert tuple(torch.tensor([4.0, 1.0, 3.0]).median(0).indices.shape) == \
        pve.tensor([4.0, 1.0, 3.0]).median(0).indices.shape


@pytest.mark.parametrize("call", [
    lambda: pve.tensor([1, 2]).add(1, alpha=1.5),
    lambda: pve.add(pve.tensor([1, 2]), pve.tensor([1, 2]), alpha=0.5),
    lambda: pve.tensor([1, 2]).sub(1, alpha=0.5),
    lambda: pve.tensor([1.0, 2.0]).sub_(pve.tensor([True, False])),
    lambda: pve.tensor([1, 2]).sub_(True),
])
def test_torchs_alpha_and_bool_subtraction_checks(call):
    with pytest.raises(RuntimeError):
        call()


def test_alpha_allowed_where_the_result_is_float():
    i, f = pve.tensor([1, 2]), pve.tensor([1.0, 2.0])
    np.testing.assert_array_equal(i.add(f, alpha=0.5).numpy(), [1.5, 3.0])
    np.testing.assert_array_equal(i.add(i, alpha=2).numpy(), [3, 6])


def test_bitwise_ops_refuse_float_scalars():
    with pytest.raises(NotImplementedError):
        pve.tensor([1, 2]) & 2.5
    with pytest.raises(NotImplementedError):
        pve.tensor([1, 2]) | np.float32(1.0)
