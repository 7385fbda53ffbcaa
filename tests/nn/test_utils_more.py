"""nn.utils: parameters_to_vector / vector_to_parameters, the BatchNorm fusions,
weight_norm / spectral_norm (hook form), skip_init and the deprecated clip_grad_norm;
numpy references here, torch parity (state_dict keys, outputs after training forwards
from torch's state) in the tests that ask for the ``torch`` fixture (skipped without it)."""

import warnings

import numpy as np
import pytest

import pyvision_engine as pve

U = pve.nn.utils
rng = np.random.default_rng(3)


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="torch parity needs torch")


def _f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_parameters_to_vector_round_trip():
    m = pve.nn.Linear(3, 2)
    vec = U.parameters_to_vector(m.parameters())
    want = np.concatenate([m.weight.detach().numpy().ravel(), m.bias.detach().numpy()])
    np.testing.assert_array_equal(vec.detach().numpy(), want)
    vec.sum().backward()  # differentiable, as torch's cat of views
    np.testing.assert_array_equal(m.weight.grad.numpy(), np.ones((2, 3)))
    new = pve.tensor(np.arange(9, dtype=np.float32))
    U.vector_to_parameters(new, m.parameters())
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.arange(6).reshape(2, 3))
    new.numpy()[0] = 42.0  # the parameters are views of the vector, as torch's .data
    assert m.weight.detach().numpy()[0, 0] == 42.0
    with pytest.raises(TypeError, match="vector_to_parameters"):
        U.vector_to_parameters([1.0] * 8, m.parameters())
    with pytest.raises(ValueError, match="vector_to_parameters.*8 elements"):
        U.vector_to_parameters(pve.tensor(np.zeros(5, np.float32)), m.parameters())
    with pytest.raises(RuntimeError, match="parameters_to_vector"):
        U.parameters_to_vector([])


def _trained_bn(cls, n):
    bn = cls(n)
    bn.running_mean.numpy()[:] = _f32(n)
    bn.running_var.numpy()[:] = rng.uniform(0.5, 2, n)
    bn.weight.data = _f32(n)
    bn.bias.data = _f32(n)
    return bn.eval()


@pytest.mark.parametrize("bias", [True, False])
def test_fusions_match_the_unfused_modules_and_leave_them_untouched(bias):
    conv = pve.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect", bias=bias).eval()
    bn = _trained_bn(pve.nn.BatchNorm2d, 4)
    before = conv.weight.detach().numpy().copy()
    x = _f32(2, 3, 6, 6)
    with pve.no_grad():
        want = bn(conv(x)).numpy().copy()
        fused = U.fuse_conv_bn_eval(conv, bn)
        np.testing.assert_allclose(fused(x).numpy(), want, rtol=1e-4, atol=1e-5)
    assert fused is not conv and fused.padding_mode == "reflect"
    np.testing.assert_array_equal(conv.weight.detach().numpy(), before)
    assert (conv.bias is None) == (not bias) and fused.bias is not None
    assert fused.bias.requires_grad == bias and fused.weight.requires_grad
    assert U.fuse_conv_bn_eval is pve.nn.fuse_conv_bn_eval
    tconv = pve.nn.ConvTranspose2d(3, 4, 3, stride=2, bias=bias).eval()
    with pve.no_grad():
        want = bn(tconv(x)).numpy().copy()
        np.testing.assert_allclose(U.fuse_conv_bn_eval(tconv, bn, transpose=True)(x).numpy(),
                                   want, rtol=1e-4, atol=1e-5)
    lin = pve.nn.Linear(5, 4, bias=bias).eval()
    bn1 = _trained_bn(pve.nn.BatchNorm1d, 4)
    xl = _f32(3, 5)
    with pve.no_grad():
        want = bn1(lin(xl)).numpy().copy()
        np.testing.assert_allclose(U.fuse_linear_bn_eval(lin, bn1)(xl).numpy(), want,
                                   rtol=1e-4, atol=1e-5)
    with pytest.raises(AssertionError, match="eval"):
        U.fuse_linear_bn_eval(lin.train(), bn1)
    with pytest.raises(ValueError, match="eval"):
        U.fuse_conv_bn_eval(conv.train(), bn)


def test_fuse_weights_functions(torch):
    TU = torch.nn.utils
    w, b = _f32(4, 3, 2, 2), _f32(4)
    rm, rv, g, beta = _f32(4), rng.uniform(0.5, 2, 4).astype(np.float32), _f32(4), _f32(4)
    for transpose, ww in ((False, w), (True, np.ascontiguousarray(w.transpose(1, 0, 2, 3)))):
        ours = U.fuse_conv_bn_weights(pve.nn.Parameter(ww), None, rm, rv, 1e-3, g, beta,
                                      transpose)
        theirs = TU.fuse_conv_bn_weights(torch.nn.Parameter(torch.tensor(ww)), None,
                                         *map(torch.tensor, (rm, rv)), 1e-3,
                                         *map(torch.tensor, (g, beta)), transpose)
        for o, t in zip(ours, theirs):
            np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=1e-5,
                                       atol=1e-6)
            assert o.requires_grad == t.requires_grad
    ours = U.fuse_linear_bn_weights(np.ascontiguousarray(w[:, :, 0, 0]), b, rm, rv, 1e-5, g, beta)
    theirs = TU.fuse_linear_bn_weights(torch.tensor(w[:, :, 0, 0]), torch.tensor(b),
                                       *map(torch.tensor, (rm, rv)), 1e-5,
                                       *map(torch.tensor, (g, beta)))
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=1e-5, atol=1e-6)


def _load_from(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


@pytest.mark.parametrize("dim", [0, 1, None, -1])
def test_weight_norm_matches_torch(torch, dim):
    tm = torch.nn.Conv2d(3, 4, 3)
    pm = pve.nn.Conv2d(3, 4, 3)
    with pytest.warns(FutureWarning):
        torch.nn.utils.weight_norm(tm, dim=dim)
    with pytest.warns(FutureWarning):
        U.weight_norm(pm, dim=dim)
    assert list(pm.state_dict()) == list(tm.state_dict())
    assert [n for n, _ in pm.named_parameters()] == [n for n, _ in tm.named_parameters()]
    assert pm.weight_g.shape == tuple(tm.weight_g.shape)
    _load_from(pm, tm)
    with torch.no_grad():
        tm.weight_g.mul_(1.5)  # g no longer the norm of v
    pm.weight_g.data = tm.weight_g.detach().numpy().copy()
    x = _f32(2, 3, 5, 5)
    xt = torch.tensor(x)
    out_t, out_p = tm(xt), pm(x)
    np.testing.assert_allclose(out_p.detach().numpy(), out_t.detach().numpy(), rtol=1e-4,
                               atol=1e-5)
    out_t.square().sum().backward()
    (out_p * out_p).sum().backward()
    for name in ("weight_g", "weight_v", "bias"):
        np.testing.assert_allclose(getattr(pm, name).grad.numpy(),
                                   getattr(tm, name).grad.numpy(), rtol=1e-3, atol=1e-4)
    torch.nn.utils.remove_weight_norm(tm)
    U.remove_weight_norm(pm)
    assert list(pm.state_dict()) == list(tm.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(pm.weight.detach().numpy(), tm.weight.detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="weight_norm of 'weight' not found"):
        U.remove_weight_norm(pm)


def test_weight_norm_recomputes_before_each_forward_and_refuses_twice():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        m = U.weight_norm(pve.nn.Linear(3, 2))
        with pytest.raises(RuntimeError, match="two weight_norm hooks"):
            U.weight_norm(m)
    m.weight_g.data = np.full((2, 1), 2.0, np.float32)
    m(np.zeros((1, 3), np.float32))
    np.testing.assert_allclose(np.linalg.norm(m.weight.detach().numpy(), axis=1), [2.0, 2.0],
                               rtol=1e-6)
    m.eval()
    with pve.no_grad():
        m(np.zeros((1, 3), np.float32))


@pytest.mark.parametrize("make", ["linear", "conv", "convt"])
def test_spectral_norm_matches_torch_after_training_forwards(torch, make):
    builders = {"linear": lambda nn: nn.Linear(5, 4),
                "conv": lambda nn: nn.Conv2d(3, 4, 3),
                "convt": lambda nn: nn.ConvTranspose2d(3, 4, 3)}
    shape = {"linear": (2, 5), "conv": (2, 3, 5, 5), "convt": (2, 3, 4, 4)}[make]
    tm = torch.nn.utils.spectral_norm(builders[make](torch.nn), n_power_iterations=2)
    pm = U.spectral_norm(builders[make](pve.nn), n_power_iterations=2)
    assert list(pm.state_dict()) == list(tm.state_dict())
    assert [n for n, _ in pm.named_buffers()] == [n for n, _ in tm.named_buffers()]
    _load_from(pm, tm)  # the same starting u and v
    for _ in range(3):
        x = _f32(*shape)
        out_t, out_p = tm(torch.tensor(x)), pm(x)
        np.testing.assert_allclose(out_p.detach().numpy(), out_t.detach().numpy(), rtol=1e-4,
                                   atol=1e-5)
    for key in ("weight_u", "weight_v"):
        np.testing.assert_allclose(pm.state_dict()[key].numpy(), tm.state_dict()[key].numpy(),
                                   rtol=1e-4, atol=1e-5)
    out_t.sum().backward()
    out_p.sum().backward()
    np.testing.assert_allclose(pm.weight_orig.grad.numpy(), tm.weight_orig.grad.numpy(),
                               rtol=1e-3, atol=1e-4)
    tm.eval()
    pm.eval()
    u_before = pm.weight_u.numpy().copy()
    x = _f32(*shape)
    with pve.no_grad(), torch.no_grad():
        np.testing.assert_allclose(pm(x).numpy(), tm(torch.tensor(x)).numpy(), rtol=1e-4,
                                   atol=1e-5)
    np.testing.assert_array_equal(pm.weight_u.numpy(), u_before)  # eval: no power iteration
    torch.nn.utils.remove_spectral_norm(tm)
    U.remove_spectral_norm(pm)
    assert sorted(pm.state_dict()) == sorted(tm.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(pm.weight.detach().numpy(), tm.weight.detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_spectral_norm_normalises_the_top_singular_value():
    # (seeded: power iteration converges at the rate sigma2/sigma1, which an unlucky
    # random weight makes too slow for 1e-3 in 30 iterations)
    pve.manual_seed(0)
    m = U.spectral_norm(pve.nn.Linear(6, 5), n_power_iterations=30)
    m(np.zeros((1, 6), np.float32))
    assert abs(np.linalg.svd(m.weight.detach().numpy(), compute_uv=False)[0] - 1) < 1e-3
    with pytest.raises(RuntimeError, match="two spectral_norm hooks"):
        U.spectral_norm(m)
    with pytest.raises(ValueError, match="n_power_iterations"):
        U.spectral_norm(pve.nn.Linear(2, 2), n_power_iterations=0)
    with pytest.raises(ValueError, match="spectral_norm of 'bias' not found"):
        U.remove_spectral_norm(m, "bias")


def test_skip_init_keeps_the_random_stream():
    pve.manual_seed(0)
    m = U.skip_init(pve.nn.Linear, 4, 3, bias=False)
    after = pve.nn.Linear(2, 2).weight.detach().numpy().copy()
    pve.manual_seed(0)
    fresh = pve.nn.Linear(2, 2).weight.detach().numpy()
    np.testing.assert_array_equal(after, fresh)
    assert m.weight.shape == (3, 4) and m.bias is None
    with pytest.raises(RuntimeError, match="device"):
        U.skip_init(pve.nn.ReLU)
    with pytest.raises(RuntimeError, match="Expected a Module"):
        U.skip_init(int)


def test_clip_grad_norm_is_the_deprecated_alias():
    p = pve.nn.Parameter(np.ones(4, np.float32))
    p.grad = pve.tensor(np.full(4, 3.0, np.float32))
    with pytest.warns(FutureWarning, match="clip_grad_norm_"):
        total = U.clip_grad_norm(p, 1.0)
    assert abs(total.item() - 6.0) < 1e-6
    assert abs(np.linalg.norm(p.grad.numpy()) - 1.0) < 1e-5


def test_utils_names_match_torch(torch):
    import inspect
    for name in ("parameters_to_vector", "vector_to_parameters", "fuse_conv_bn_weights",
                 "fuse_linear_bn_eval", "fuse_linear_bn_weights", "weight_norm",
                 "remove_weight_norm", "spectral_norm", "remove_spectral_norm", "clip_grad_norm"):
        ours = inspect.signature(getattr(U, name)).parameters
        theirs = inspect.signature(getattr(torch.nn.utils, name)).parameters
        assert list(ours) == list(theirs), name
        assert [p.default for p in ours.values()] == [p.default for p in theirs.values()], name
    ours = list(inspect.signature(U.fuse_conv_bn_eval).parameters)
    assert ours[:3] == list(inspect.signature(torch.nn.utils.fuse_conv_bn_eval).parameters)
