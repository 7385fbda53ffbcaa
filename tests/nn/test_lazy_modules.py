"""Lazy modules (nn.LazyLinear, LazyConv*, LazyConvTranspose*, LazyBatchNorm*,
LazyInstanceNorm*) and nn.UninitializedParameter / UninitializedBuffer.

The engine-only tests compare with the regular layer built with the same seed (the same
init code must run), with float64 numpy references of the layer's output, and with the
shapes/values of a loaded state dict. The torch tests (skipped without torch) compare
class changes, state-dict keys, outputs and gradients (torch's lazy module given the
pve module's weights) and error types with torch's lazy modules."""

import numpy as np
import pytest

import pyvision_engine as pve
import pyvision_engine.nn as nn
from pyvision_engine.nn.parameter import is_lazy

rng = np.random.default_rng(11)


def _t(shape):
    return pve.tensor(rng.standard_normal(shape).astype(np.float32))


# (lazy class, regular class, lazy args, lazy kwargs, input shape)
CASES = [
    (nn.LazyLinear, nn.Linear, (3,), {}, (2, 5)),
    (nn.LazyLinear, nn.Linear, (4,), {"bias": False}, (2, 3, 6)),
    (nn.LazyConv1d, nn.Conv1d, (4, 3), {"padding": 1}, (2, 6, 7)),
    (nn.LazyConv1d, nn.Conv1d, (4, 3), {"groups": 2}, (6, 7)),
    (nn.LazyConv2d, nn.Conv2d, (4, 3), {"stride": 2}, (2, 3, 7, 7)),
    (nn.LazyConv2d, nn.Conv2d, (6, (3, 2)), {"groups": 3, "bias": False}, (3, 5, 6)),
    (nn.LazyConvTranspose1d, nn.ConvTranspose1d, (4, 3), {"stride": 2}, (2, 3, 5)),
    (nn.LazyConvTranspose2d, nn.ConvTranspose2d, (4, 3), {"groups": 2}, (2, 6, 4, 4)),
    (nn.LazyConvTranspose2d, nn.ConvTranspose2d, (2, 2), {"output_padding": 1, "stride": 2},
     (3, 4, 4)),
]
NORM_CASES = [
    (nn.LazyBatchNorm1d, nn.BatchNorm1d, (4, 3)),
    (nn.LazyBatchNorm1d, nn.BatchNorm1d, (4, 3, 5)),
    (nn.LazyBatchNorm2d, nn.BatchNorm2d, (2, 3, 4, 5)),
    (nn.LazyInstanceNorm1d, nn.InstanceNorm1d, (2, 3, 6)),
    (nn.LazyInstanceNorm2d, nn.InstanceNorm2d, (2, 3, 4, 5)),
]


def _regular(regular, lazy_args, kwargs, in_size):
    return regular(in_size, *lazy_args, **kwargs)


def _in_size(lazy_cls, shape):
    if lazy_cls is nn.LazyLinear:
        return shape[-1]
    dims = 1 if "1d" in lazy_cls.__name__ else 2
    return shape[1] if len(shape) == dims + 2 else shape[0]


# ------------------------------------------------------------------ before forward
@pytest.mark.parametrize("lazy_cls,regular,args,kwargs,shape", CASES)
def test_uninitialized_before_forward(lazy_cls, regular, args, kwargs, shape):
    m = lazy_cls(*args, **kwargs)
    assert m.has_uninitialized_params()
    names = [n for n, _ in m.named_parameters()]
    assert names == (["weight", "bias"] if kwargs.get("bias", True) else ["weight"])
    for p in m.parameters():
        assert type(p) is nn.UninitializedParameter and isinstance(p, nn.Parameter)
        assert p.requires_grad and p.is_leaf and repr(p) == "<UninitializedParameter>"
        with pytest.raises(RuntimeError, match="shape of an uninitialized"):
            p.shape
        with pytest.raises(ValueError, match="uninitialized parameter"):
            p + 1
    text = repr(m)
    assert text.startswith(lazy_cls.__name__ + "(")
    assert m.train() is m and m.training and not m.eval().training
    assert m.to("cpu") is m and m.to(np.float32) is m
    sd = m.state_dict()
    assert all(is_lazy(v) for v in sd.values())


def test_optimizer_built_over_uninitialized_parameters():
    # torch 2.13 accepts a lazy module's parameters before the first forward: steps skip
    # them (no gradient), the forward materializes them in place, and the optimizer then
    # updates them (the arena is laid out at that step). Reference: SGD-momentum by hand.
    m = nn.Sequential(nn.LazyLinear(3), nn.ReLU(), nn.LazyLinear(2))
    opt = pve.optim.SGD(m.parameters(), lr=0.5, momentum=0.9)
    opt.zero_grad()
    opt.step()  # no gradients yet: nothing happens
    assert len(opt.state) == 0 and opt.state_dict()["state"] == {}
    x = _t((4, 5))
    buf = None
    for _ in range(3):
        opt.zero_grad()
        m(x).sum().backward()
        assert opt.param_groups[0]["params"][0] is m[0].weight
        w, g = m[0].weight.detach().numpy().astype(np.float64), m[0].weight.grad.numpy()
        buf = g if buf is None else 0.9 * buf + g
        opt.step()
        np.testing.assert_allclose(m[0].weight.detach().numpy(), w - 0.5 * buf, rtol=1e-6,
                                   atol=1e-6)
    assert sorted(opt.state_dict()["state"]) == [0, 1, 2, 3]


def test_lookahead_and_state_over_uninitialized_parameters():
    m = nn.LazyLinear(2)
    la = pve.optim.Lookahead(pve.optim.Adam(m.parameters(), lr=0.1), k=2, alpha=0.5)
    assert la.slow_weights() == []
    # saved state for a parameter that has no shape yet cannot be loaded
    fresh = pve.optim.Adam(nn.LazyLinear(2).parameters(), lr=0.1)
    sd = {"state": {0: {"step": pve.tensor(1.0)}}, "param_groups": fresh.state_dict()["param_groups"]}
    with pytest.raises(ValueError, match="uninitialized"):
        fresh.load_state_dict(sd)
    x = _t((3, 4))
    m(x)
    w0 = m.weight.detach().numpy().copy()
    twin = nn.Linear(4, 2)  # the same weights under plain Adam: the fast weights before the sync
    twin.load_state_dict(m.state_dict())
    plain = pve.optim.Adam(twin.parameters(), lr=0.1)
    for model, opt in ((m, la), (twin, plain)):
        for _ in range(2):  # Lookahead's second step syncs: slow = w0 + 0.5 * (fast - w0)
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
    fast = twin.weight.detach().numpy()
    assert not np.allclose(fast, w0)
    np.testing.assert_allclose(la.slow_weights()[0], w0 + 0.5 * (fast - w0), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(m.weight.detach().numpy(), la.slow_weights()[0])


def test_uninitialized_tensors_materialize():
    p = nn.UninitializedParameter(requires_grad=False)
    assert not p.requires_grad and p.size() == (0,) and p.dtype == np.float32
    p.materialize((2, 3))
    assert type(p) is nn.Parameter and p.shape == (2, 3) and not p.requires_grad
    b = nn.UninitializedBuffer()
    assert type(b) is nn.UninitializedBuffer and not b.requires_grad
    assert repr(b) == "<UninitializedBuffer>"
    b.materialize(4)
    assert type(b) is pve.Tensor and b.shape == (4,)
    (b + 1).detach().numpy()  # usable once materialized
    with pytest.raises(TypeError):
        nn.UninitializedParameter(dtype=np.int64)


# ------------------------------------------------------------------- first forward
@pytest.mark.parametrize("lazy_cls,regular,args,kwargs,shape", CASES)
def test_first_forward_initializes_as_the_regular_layer(lazy_cls, regular, args, kwargs, shape):
    x = _t(shape)
    pve.manual_seed(123)
    m = lazy_cls(*args, **kwargs)
    y = m(x)
    assert type(m) is regular and not any(is_lazy(p) for p in m.parameters())
    assert not hasattr(m, "has_uninitialized_params")  # as torch: the mixin is gone
    assert not hasattr(m, "_initialize_hook") and not m._forward_pre_hooks
    pve.manual_seed(123)
    ref = _regular(regular, args, kwargs, _in_size(lazy_cls, shape))
    assert repr(m) == repr(ref)
    for (n1, p1), (n2, p2) in zip(m.named_parameters(), ref.named_parameters()):
        assert n1 == n2 and type(p1) is nn.Parameter and p1.shape == p2.shape
        np.testing.assert_array_equal(p1.detach().numpy(), p2.detach().numpy())
    np.testing.assert_array_equal(y.detach().numpy(), ref(x).detach().numpy())
    # the second call is the regular layer's
    np.testing.assert_array_equal(m(x).detach().numpy(), ref(x).detach().numpy())


def test_lazy_linear_against_numpy_and_gradients():
    x64 = rng.standard_normal((4, 5))
    m = nn.LazyLinear(3)
    x = pve.tensor(x64.astype(np.float32), requires_grad=True)
    y = m(x)
    w = m.weight.detach().numpy().astype(np.float64)
    b = m.bias.detach().numpy().astype(np.float64)
    bound = 1 / np.sqrt(5)
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    xf = x64.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(y.detach().numpy(), xf @ w.T + b, rtol=1e-5, atol=1e-5)
    g = rng.standard_normal((4, 3))
    y.backward(pve.tensor(g.astype(np.float32)))
    np.testing.assert_allclose(m.weight.grad.detach().numpy(), g.T @ xf, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m.bias.grad.detach().numpy(), g.sum(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(x.grad.detach().numpy(), g @ w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("lazy_cls,regular,shape", NORM_CASES)
def test_lazy_norms(lazy_cls, regular, shape):
    x64 = rng.standard_normal(shape) * 2 + 1
    m = lazy_cls()
    assert m.affine and m.track_running_stats and m.num_features == 0
    assert [k for k in m.state_dict()] == ["weight", "bias", "running_mean", "running_var",
                                          "num_batches_tracked"]
    assert type(m.running_mean) is nn.UninitializedBuffer
    y = m(pve.tensor(x64.astype(np.float32)))
    assert type(m) is regular and m.num_features == shape[1]
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones(shape[1], np.float32))
    np.testing.assert_array_equal(m.bias.detach().numpy(), np.zeros(shape[1], np.float32))
    axes = (0,) + tuple(range(2, len(shape)))
    per_instance = "Instance" in lazy_cls.__name__
    red = tuple(range(2, len(shape))) if per_instance else axes
    mean = x64.mean(axis=red, keepdims=True)
    var = x64.var(axis=red, keepdims=True)
    np.testing.assert_allclose(y.detach().numpy(), (x64 - mean) / np.sqrt(var + 1e-5),
                               rtol=1e-4, atol=1e-4)
    # running statistics: momentum 0.1 from zeros / ones, unbiased variance
    n = np.prod([shape[a] for a in red])
    if per_instance:
        bm, bv = mean.reshape(shape[0], shape[1]).mean(0), \
            (var * n / (n - 1)).reshape(shape[0], shape[1]).mean(0)
    else:
        bm, bv = mean.reshape(-1), (var * n / (n - 1)).reshape(-1)
    np.testing.assert_allclose(m.running_mean.detach().numpy(), 0.1 * bm, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.running_var.detach().numpy(), 0.9 + 0.1 * bv, rtol=1e-4, atol=1e-5)


def test_lazy_norm_options():
    m = nn.LazyBatchNorm2d(affine=False, track_running_stats=False)
    assert m.weight is None and m.running_mean is None
    m(_t((2, 3, 2, 2)))
    # nothing to infer: num_features stays 0, as torch's
    assert type(m) is nn.BatchNorm2d and m.num_features == 0 and m.weight is None
    m = nn.LazyInstanceNorm2d(affine=False, track_running_stats=False)
    with pytest.warns(UserWarning, match="does not match num_features"):
        y = m(_t((2, 3, 2, 2)))
    assert type(m) is nn.InstanceNorm2d and m.num_features == 0 and y.shape == (2, 3, 2, 2)
    m = nn.LazyBatchNorm1d(bias=False, eps=1e-3, momentum=None)
    m(_t((4, 2)))
    assert m.bias is None and m.weight.shape == (2,) and m.eps == 1e-3 and m.momentum is None


# --------------------------------------------------------------------- state dicts
def test_load_state_dict_materializes_shapes():
    src = nn.Linear(4, 3)
    m = nn.LazyLinear(3)
    result = m.load_state_dict(src.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    assert type(m) is nn.LazyLinear and not m.has_uninitialized_params()
    assert m.weight.shape == (3, 4) and m.in_features == 0
    np.testing.assert_array_equal(m.weight.detach().numpy(), src.weight.detach().numpy())
    np.testing.assert_array_equal(m.bias.detach().numpy(), src.bias.detach().numpy())
    x = _t((2, 4))
    np.testing.assert_array_equal(m(x).detach().numpy(), src(x).detach().numpy())
    assert type(m) is nn.Linear and m.in_features == 4
    m = nn.LazyLinear(3)
    m.load_state_dict(src.state_dict())
    with pytest.raises(AssertionError, match="in_features"):
        m(_t((2, 5)))


def test_load_state_dict_into_lazy_norm_and_conv():
    src = nn.BatchNorm2d(3)
    src(_t((4, 3, 2, 2)))
    m = nn.LazyBatchNorm2d()
    m.load_state_dict(src.state_dict())
    np.testing.assert_array_equal(m.running_mean.detach().numpy(), src.running_mean.detach().numpy())
    assert int(m.num_batches_tracked.item()) == 1
    conv = nn.Conv2d(2, 4, 3)
    lazy = nn.LazyConv2d(4, 3)
    lazy.load_state_dict(conv.state_dict())
    x = _t((1, 2, 5, 5))
    np.testing.assert_array_equal(lazy(x).detach().numpy(), conv(x).detach().numpy())


def test_load_partial_and_lazy_into_lazy():
    m = nn.LazyLinear(3)
    r = m.load_state_dict({"weight": np.zeros((3, 4), np.float32)}, strict=False)
    assert r.missing_keys == ["bias"] and m.has_uninitialized_params()
    assert m.weight.shape == (3, 4)
    m2 = nn.LazyLinear(3)
    r = m2.load_state_dict(nn.LazyLinear(3).state_dict())
    assert not r.missing_keys and m2.has_uninitialized_params()
    m2(_t((1, 2)))
    assert m2.weight.shape == (3, 2)
    with pytest.raises(RuntimeError, match="Missing"):
        nn.LazyLinear(3).load_state_dict({"weight": np.zeros((3, 4), np.float32)})


# -------------------------------------------------------------------------- errors
def test_errors():
    with pytest.raises(IndexError):
        nn.LazyLinear(3)(pve.tensor(np.float32(1.0)))
    with pytest.raises(RuntimeError, match="Expected 3D"):
        nn.LazyConv2d(4, 3)(_t((2, 3)))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.LazyConv2d(4, 3, groups=2)(_t((1, 3, 5, 5)))
    with pytest.raises(TypeError):
        nn.LazyLinear(3, dtype=np.int64)


def test_lazy_in_a_sequential():
    model = nn.Sequential(nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.ReLU(),
                          nn.Flatten(), nn.LazyLinear(2))
    y = model(_t((2, 3, 6, 6)))
    assert y.shape == (2, 2)
    assert [type(c) for c in model] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Flatten,
                                        nn.Linear]
    assert model[4].in_features == 4 * 4 * 4
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


# -------------------------------------------------------------------- torch parity
@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="torch parity tests need torch")


def _to_torch(t, a):
    return t.tensor(np.asarray(a))


@pytest.mark.parametrize("lazy_cls,regular,args,kwargs,shape", CASES)
def test_torch_parity_modules(torch, lazy_cls, regular, args, kwargs, shape):
    tcls = getattr(torch.nn, lazy_cls.__name__)
    m, tm = lazy_cls(*args, **kwargs), tcls(*args, **kwargs)
    assert list(m.state_dict()) == list(tm.state_dict())
    assert repr(m) == repr(tm)
    x64 = rng.standard_normal(shape).astype(np.float32)
    x = pve.tensor(x64, requires_grad=True)
    tx = torch.tensor(x64, requires_grad=True)
    y = m(x)
    ty = tm(tx)
    assert type(m).__name__ == type(tm).__name__ == regular.__name__
    assert repr(m) == repr(tm)
    with torch.no_grad():
        for (n, p), (tn, tp) in zip(m.named_parameters(), tm.named_parameters()):
            assert n == tn and tuple(tp.shape) == p.shape
            tp.copy_(torch.tensor(p.detach().numpy()))
    ty = tm(tx)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(pve.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.detach().numpy(), tx.grad.detach().numpy(), rtol=1e-4, atol=1e-4)
    for p, tp in zip(m.parameters(), tm.parameters()):
        np.testing.assert_allclose(p.grad.detach().numpy(), tp.grad.detach().numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("lazy_cls,regular,shape", NORM_CASES)
def test_torch_parity_norms(torch, lazy_cls, regular, shape):
    tcls = getattr(torch.nn, lazy_cls.__name__)
    m, tm = lazy_cls(momentum=0.2), tcls(momentum=0.2)
    assert list(m.state_dict()) == list(tm.state_dict())
    assert repr(m) == repr(tm)
    x64 = (rng.standard_normal(shape) * 3 - 1).astype(np.float32)
    y, ty = m(pve.tensor(x64)), tm(torch.tensor(x64))
    assert type(m).__name__ == type(tm).__name__ and repr(m) == repr(tm)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(m.state_dict()[k].detach().numpy(), v.detach().numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=k)


def test_torch_parity_state_dict_and_errors(torch):
    src = torch.nn.Linear(4, 3)
    m = nn.LazyLinear(3)
    m.load_state_dict({k: v for k, v in src.state_dict().items()})
    x = rng.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(m(pve.tensor(x)).detach().numpy(), src(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    # the same error types as torch
    cases = [
        (lambda nnm, T: nnm.LazyLinear(3)(T(np.float32(1.0)))),
        (lambda nnm, T: nnm.LazyConv2d(4, 3)(T(np.zeros((2, 3), np.float32)))),
        (lambda nnm, T: nnm.LazyConv1d(4, 3, groups=2)(T(np.zeros((1, 3, 5), np.float32)))),
        (lambda nnm, T: nnm.LazyLinear(3).weight.shape),
        (lambda nnm, T: nnm.LazyLinear(3).weight.numel()),
        (lambda nnm, T: nnm.LazyBatchNorm1d()(T(np.zeros((3,), np.float32)))),
    ]
    for case in cases:
        with pytest.raises(Exception) as theirs:
            case(torch.nn, torch.tensor)
        with pytest.raises(Exception) as ours:
            case(nn, pve.tensor)
        assert isinstance(ours.value, type(theirs.value)), (ours.value, theirs.value)
    lazy = nn.LazyLinear(3)
    lazy.load_state_dict(src.state_dict())
    tlazy = torch.nn.LazyLinear(3)
    tlazy.load_state_dict(src.state_dict())
    with pytest.raises(AssertionError):
        tlazy(torch.zeros(2, 5))
    with pytest.raises(AssertionError):
        lazy(pve.tensor(np.zeros((2, 5), np.float32)))


@pytest.mark.parametrize("opt_name,kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9}),
                                             ("Adam", {"lr": 0.01}),
                                             ("RMSprop", {"lr": 0.01, "centered": True})])
def test_torch_parity_optimizer_built_before_first_forward(torch, opt_name, kwargs):
    # Both optimizers are built over uninitialized parameters; after the first forward
    # (pve's weights copied into torch's) the trajectories and the state dicts agree.
    m = nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
    tm = torch.nn.Sequential(torch.nn.LazyConv2d(4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                             torch.nn.LazyLinear(3))
    opt = getattr(pve.optim, opt_name)(m.parameters(), **kwargs)
    topt = getattr(torch.optim, opt_name)(tm.parameters(), **kwargs)
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    m(pve.tensor(x)), tm(torch.tensor(x))
    with torch.no_grad():
        for p, tp in zip(m.parameters(), tm.parameters()):
            tp.copy_(torch.tensor(p.detach().numpy()))
    for _ in range(5):
        for model, o, inp in ((m, opt, pve.tensor(x)), (tm, topt, torch.tensor(x))):
            o.zero_grad()
            (model(inp) ** 2).sum().backward()
            o.step()
    for p, tp in zip(m.parameters(), tm.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert sorted(opt.state_dict()["state"]) == sorted(topt.state_dict()["state"])
