"""nn.Linear / functional.linear against float64 numpy, finite differences and torch."""

import math

import numpy as np
import pytest

import pyvision_engine as pve
import pyvision_engine.nn.functional as F
from reference.gradcheck import assert_grad_close, numerical_grads

pytestmark = pytest.mark.kernels

rng = np.random.default_rng(7)


def np_linear(x, w, b):
    return x @ w.T + (b if b is not None else 0.0)


@pytest.mark.parametrize("batch_shape,fin,fout", [((1,), 1, 1), ((5,), 7, 3), ((2, 3), 17, 33),
                                                  ((64,), 400, 120), ((1,), 512, 1000), ((3,), 1, 9)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_backward(batch_shape, fin, fout, bias, isa):
    x = rng.standard_normal(batch_shape + (fin,))
    w = rng.standard_normal((fout, fin)) / math.sqrt(fin)
    b = rng.standard_normal(fout) if bias else None
    tx, tw = pve.tensor(x, requires_grad=True), pve.tensor(w, requires_grad=True)
    tb = pve.tensor(b, requires_grad=True) if bias else None
    y = F.linear(tx, tw, tb)
    np.testing.assert_allclose(y.detach().numpy(), np_linear(x, w, b), rtol=1e-4, atol=1e-4)
    g = rng.standard_normal(y.shape)
    y.backward(pve.tensor(g))
    g2 = g.reshape(-1, fout)
    assert_grad_close(tx.grad.numpy(), g @ w, name="dx")
    assert_grad_close(tw.grad.numpy(), g2.T @ x.reshape(-1, fin), name="dW")
    if bias:
        assert_grad_close(tb.grad.numpy(), g2.sum(0), name="db")


def test_linear_gradient_against_finite_differences():
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((2, 4)), rng.standard_normal(2)
    ts = [pve.tensor(a, requires_grad=True) for a in (x, w, b)]
    up = rng.standard_normal((3, 2))
    F.linear(*ts).backward(pve.tensor(up))
    for t, g in zip(ts, numerical_grads(np_linear, [x, w, b], up)):
        assert_grad_close(t.grad.numpy(), g)


def test_linear_module_init_and_shapes():
    pve.manual_seed(0)
    layer = pve.nn.Linear(20, 30)
    assert layer.weight.shape == (30, 20) and layer.bias.shape == (30,)
    bound = 1 / math.sqrt(20)
    assert np.abs(layer.weight.detach().numpy()).max() <= bound
    assert np.abs(layer.bias.detach().numpy()).max() <= bound
    assert layer.weight.detach().numpy().std() > bound / 3  # not all zeros
    assert pve.nn.Linear(3, 2, bias=False).bias is None
    out = layer(np.ones((4, 20), dtype=np.float64))  # numpy input accepted
    assert isinstance(out, pve.Tensor) and out.shape == (4, 30)


def test_manual_seed_makes_init_reproducible():
    pve.manual_seed(3)
    a = pve.nn.Linear(5, 5).weight.detach().numpy().copy()
    pve.manual_seed(3)
    b = pve.nn.Linear(5, 5).weight.detach().numpy()
    np.testing.assert_array_equal(a, b)


def test_linear_errors_name_the_layer_and_shapes():
    layer = pve.nn.Linear(4, 2)
    with pytest.raises(ValueError, match=r"Linear\(4, 2\).*last dimension 4.*\(3, 5\)"):
        layer(pve.ones(3, 5))
    with pytest.raises(ValueError, match="bias must have shape"):
        F.linear(pve.ones(3, 4), pve.ones(2, 4), pve.ones(3))
    with pytest.raises(ValueError, match="weight must be 2-D"):
        F.linear(pve.ones(3, 4), pve.ones(4))
    with pytest.raises(ValueError):
        pve.nn.Linear(-1, 2)


def test_linear_matches_torch():
    torch = pytest.importorskip("torch", reason="torch not installed: Linear parity not tested")
    t_layer = torch.nn.Linear(13, 7)
    layer = pve.nn.Linear(13, 7)
    layer.load_state_dict({k: v.detach().numpy() for k, v in t_layer.state_dict().items()})
    x = rng.standard_normal((6, 13)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    px = pve.tensor(x, requires_grad=True)
    t_out, p_out = t_layer(tx), layer(px)
    np.testing.assert_allclose(p_out.detach().numpy(), t_out.detach().numpy(), rtol=1e-5, atol=1e-5)
    (t_out ** 2).sum().backward()
    (p_out ** 2).sum().backward()
    np.testing.assert_allclose(px.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.weight.grad.numpy(), t_layer.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.bias.grad.numpy(), t_layer.bias.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_zero_features_as_torch():
    # in_features 0: the output is the bias, which torch draws from U(0, 0); gradients flow
    layer = pve.nn.Linear(0, 3)
    x = pve.tensor(np.zeros((2, 0), np.float32), requires_grad=True)
    y = layer(x)
    np.testing.assert_array_equal(y.detach().numpy(), np.zeros((2, 3)))
    y.sum().backward()
    assert x.grad.shape == (2, 0) and layer.weight.grad.shape == (3, 0)
    np.testing.assert_array_equal(layer.bias.grad.numpy(), [2, 2, 2])
    # out_features 0: an empty output, a zero input gradient
    layer = pve.nn.Linear(3, 0)
    x = pve.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = layer(x)
    assert y.shape == (2, 0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 3)))


def test_linear_takes_cpu_float32_device_and_dtype():
    for kw in ({"device": "cpu"}, {"dtype": pve.float32}, {"dtype": np.float32},
               {"device": None, "dtype": None}):
        assert pve.nn.Linear(3, 4, **kw).weight.dtype == np.float32
    assert pve.nn.Linear(3, 4, True, "cpu", np.float32).bias is not None
    with pytest.raises(ValueError, match="Linear: only device='cpu' is supported"):
        pve.nn.Linear(3, 4, device="cuda")
    with pytest.raises(TypeError, match="Linear: only dtype float32 is supported"):
        pve.nn.Linear(3, 4, dtype=np.float64)
    with pytest.raises(TypeError, match="Linear: only dtype float32 is supported"):
        pve.nn.Linear(3, 4, dtype="float32")  # (torch takes dtype objects, not names)
    with pytest.raises(TypeError, match="Linear: device must be a str or a torch.device"):
        pve.nn.Linear(3, 4, True, False)  # (torch: "must be torch.device, not bool")
    assert pve.nn.Linear(3, 4, device="cpu:0").out_features == 4


def test_unflatten():
    x = rng.standard_normal((2, 12, 5)).astype(np.float32)
    m = pve.nn.Unflatten(1, (3, -1))
    assert repr(m) == "Unflatten(dim=1, unflattened_size=(3, -1))"
    t = pve.tensor(x, requires_grad=True)
    y = m(t)
    np.testing.assert_array_equal(y.detach().numpy(), x.reshape(2, 3, 4, 5))
    y.backward(pve.tensor(np.arange(y.numel(), dtype=np.float32).reshape(y.shape)))
    np.testing.assert_array_equal(t.grad.numpy(), np.arange(x.size, dtype=np.float32).reshape(x.shape))
    assert pve.nn.Unflatten(-1, [5, 1])(x).shape == (2, 12, 5, 1)
    seq = pve.nn.Sequential(pve.nn.Flatten(), pve.nn.Unflatten(1, (12, 5)))
    assert seq(x).shape == x.shape
    for bad, err, match in [((5, 3), ValueError, "doesn't multiply up"),
                            ((-1, -1), ValueError, "one -1"), ((), ValueError, "non-empty"),
                            ((5, -1), ValueError, "cannot be inferred")]:
        with pytest.raises(err, match=f"Unflatten: .*{match}"):
            pve.nn.Unflatten(1, bad)(x)
    with pytest.raises(IndexError, match="Unflatten: dimension out of range"):
        pve.nn.Unflatten(3, (1, 5))(x)
    with pytest.raises(TypeError, match="unflattened_size must be a tuple of ints"):
        pve.nn.Unflatten(1, 12)
    with pytest.raises(TypeError, match="element of type float at pos 1"):
        pve.nn.Unflatten(1, (3, 4.0))
    assert "Unflatten" in pve.nn.__all__
