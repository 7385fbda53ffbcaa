"""Live parity with torch (skipped without torch) for RMSNorm / rms_norm, Bilinear /
bilinear (and the later layers of test_layers_more3.py): values and gradients of the
functions (layers_helpers.compare_with_torch), modules given the same weights, reprs,
defaults and the exception types of bad input."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is the reference for these parity tests")

import pyvision_engine as pve  # noqa: E402
from layers_helpers import compare_with_torch  # noqa: E402

nn, F = pve.nn, pve.nn.functional
TF = torch.nn.functional
rng = np.random.default_rng(41)


def _randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _same_error(fn_torch, fn_pve):
    with pytest.raises(Exception) as theirs:
        fn_torch()
    with pytest.raises(Exception) as ours:
        fn_pve()
    assert isinstance(ours.value, type(theirs.value)), (ours.value, theirs.value)


def _module_parity(tm, pm, inputs):
    """pm given tm's parameters; outputs, input and parameter gradients compared."""
    pm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    ti = [torch.tensor(a, requires_grad=True) for a in inputs]
    pi = [pve.tensor(a, requires_grad=True) for a in inputs]
    ty, py = tm(*ti), pm(*pi)
    np.testing.assert_allclose(py.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = _randn(*ty.shape)
    ty.backward(torch.tensor(g))
    py.backward(pve.tensor(g))
    for a, b in zip(pi, ti):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)
    tp = dict(tm.named_parameters())
    for name, p in pm.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------- rms_norm
@pytest.mark.parametrize("xshape,shape,affine,eps", [
    ((3, 5), [5], True, None), ((2, 3, 4), [3, 4], True, 1e-3), ((4, 6), (6,), False, None),
    ((0, 3), [3], True, None), ((2, 4), [4], True, 0.0),
])
def test_rms_norm_function(xshape, shape, affine, eps):
    inputs = [_randn(*xshape), list(shape)] + ([_randn(*tuple(shape))] if affine else [None])
    compare_with_torch(torch, "rms_norm", inputs, {"eps": eps},
                       grad_of=(0, 2) if affine else (0,), rng=rng)


def test_rms_norm_module():
    for args, kwargs in (((4,), {}), (([2, 3],), {"eps": 1e-4}),
                         ((3,), {"elementwise_affine": False})):
        tm, pm = torch.nn.RMSNorm(*args, **kwargs), nn.RMSNorm(*args, **kwargs)
        assert repr(pm) == repr(tm) and pm.eps == tm.eps
        assert list(pm.state_dict()) == list(tm.state_dict())
        if tm.weight is not None:
            with torch.no_grad():
                tm.weight.copy_(torch.randn(tm.weight.shape))
        shape = (2,) + tuple(tm.normalized_shape)
        _module_parity(tm, pm, [_randn(*shape)])


def test_rms_norm_errors():
    x = _randn(2, 3)
    for call in (lambda f, T: f.rms_norm(T(x), [4]),
                 lambda f, T: f.rms_norm(T(x), [3], T(np.ones(2, np.float32))),
                 lambda f, T: f.rms_norm(T(x), []),
                 lambda f, T: f.rms_norm(T(x), 3)):
        _same_error(lambda: call(TF, torch.tensor), lambda: call(F, pve.tensor))


# ------------------------------------------------------------------------- bilinear
@pytest.mark.parametrize("lead,in1,in2,out,bias", [
    ((4,), 3, 5, 2, True), ((2, 3), 2, 2, 4, False), ((), 3, 4, 5, True), ((0,), 2, 3, 2, True),
])
def test_bilinear_function(lead, in1, in2, out, bias):
    inputs = [_randn(*lead, in1), _randn(*lead, in2), _randn(out, in1, in2)]
    if bias:
        inputs.append(_randn(out))
    compare_with_torch(torch, "bilinear", inputs, grad_of=tuple(range(len(inputs))), rng=rng,
                       rtol=1e-5, atol=1e-5)


def test_bilinear_module():
    tm, pm = torch.nn.Bilinear(3, 4, 5), nn.Bilinear(3, 4, 5)
    assert repr(pm) == repr(tm) and list(pm.state_dict()) == list(tm.state_dict())
    _module_parity(tm, pm, [_randn(6, 3), _randn(6, 4)])
    tm, pm = torch.nn.Bilinear(2, 2, 3, bias=False), nn.Bilinear(2, 2, 3, bias=False)
    assert repr(pm) == repr(tm)
    _module_parity(tm, pm, [_randn(2, 3, 2), _randn(2, 3, 2)])
    # init statistics: U(-1/sqrt(in1), 1/sqrt(in1)) for weight and bias
    torch.manual_seed(0)
    pve.manual_seed(0)
    big_t, big_p = torch.nn.Bilinear(16, 8, 64), nn.Bilinear(16, 8, 64)
    for name in ("weight", "bias"):
        a = getattr(big_p, name).detach().numpy()
        b = getattr(big_t, name).detach().numpy()
        bound = max(np.abs(b).max(), 0.25)  # torch's bound is 1/sqrt(16)
        assert np.abs(a).max() <= bound + 1e-7
    w_p, w_t = big_p.weight.detach().numpy(), big_t.weight.detach().numpy()
    assert abs(w_p.max() - w_t.max()) < 0.005 and abs(w_p.min() - w_t.min()) < 0.005
    assert abs(w_p.var() - w_t.var()) < 0.002
    _same_error(lambda: torch.nn.Bilinear(0, 2, 3), lambda: nn.Bilinear(0, 2, 3))


def test_bilinear_errors():
    w = _randn(5, 3, 4)
    for call in (lambda f, T: f.bilinear(T(_randn(2, 3)), T(_randn(2, 3)), T(w)),
                 lambda f, T: f.bilinear(T(_randn(2, 2)), T(_randn(2, 4)), T(w)),
                 lambda f, T: f.bilinear(T(_randn(2, 3)), T(_randn(3, 4)), T(w)),
                 lambda f, T: f.bilinear(T(_randn(2, 3)), T(_randn(2, 4)), T(w),
                                         T(_randn(4)))):
        _same_error(lambda: call(TF, torch.tensor), lambda: call(F, pve.tensor))


# ------------------------------------------------------------------------ embedding
@pytest.mark.parametrize("kwargs", [{}, {"padding_idx": 1}, {"padding_idx": -1},
                                    {"scale_grad_by_freq": True, "padding_idx": 0},
                                    {"max_norm": 1.0}, {"max_norm": 0.5, "norm_type": 1.0}])
def test_embedding_function(kwargs):
    idx = np.array([[0, 3, 3], [1, 4, 0]], dtype=np.int64)
    w = _randn(5, 4) * 2
    tw, pw = torch.tensor(w, requires_grad=True), pve.tensor(w, requires_grad=True)
    ty = TF.embedding(torch.tensor(idx), tw, **kwargs)
    py = F.embedding(pve.tensor(idx), pw, **kwargs)
    np.testing.assert_allclose(py.detach().numpy(), ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pw.detach().numpy(), tw.detach().numpy(), rtol=1e-6, atol=1e-6)
    g = _randn(2, 3, 4)
    ty.backward(torch.tensor(g))
    py.backward(pve.tensor(g))
    np.testing.assert_allclose(pw.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_embedding_module():
    for kwargs in ({}, {"padding_idx": -2, "max_norm": 2.0}, {"norm_type": 1.0},
                   {"scale_grad_by_freq": True}):
        tm, pm = torch.nn.Embedding(6, 3, **kwargs), nn.Embedding(6, 3, **kwargs)
        assert repr(pm) == repr(tm) and pm.padding_idx == tm.padding_idx
        assert list(pm.state_dict()) == list(tm.state_dict())
        pm.load_state_dict({"weight": tm.weight.detach().numpy()})
        idx = np.array([[5, 0], [2, 2], [4, 1]], dtype=np.int64)
        ty, py = tm(torch.tensor(idx)), pm(pve.tensor(idx))
        np.testing.assert_allclose(py.detach().numpy(), ty.detach().numpy(), rtol=1e-6,
                                   atol=1e-6)
        g = _randn(3, 2, 3)
        ty.backward(torch.tensor(g))
        py.backward(pve.tensor(g))
        np.testing.assert_allclose(pm.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-5,
                                   atol=1e-6)
    # the padding row is zeroed at init by both
    t0 = torch.nn.Embedding(4, 2, padding_idx=3).weight.detach().numpy()[3]
    p0 = nn.Embedding(4, 2, padding_idx=3).weight.detach().numpy()[3]
    np.testing.assert_array_equal(p0, t0)
    e = _randn(3, 2)
    tm = torch.nn.Embedding.from_pretrained(torch.tensor(e), padding_idx=0)
    pm = nn.Embedding.from_pretrained(pve.tensor(e), padding_idx=0)
    assert repr(pm) == repr(tm) and pm.weight.requires_grad == tm.weight.requires_grad
    np.testing.assert_array_equal(pm.weight.detach().numpy(), tm.weight.detach().numpy())


def test_embedding_errors():
    w = _randn(5, 3)
    i = np.array([0, 1], dtype=np.int64)
    for call in (lambda f, T: f.embedding(T(np.array([0, 5], dtype=np.int64)), T(w)),
                 lambda f, T: f.embedding(T(np.array([-1], dtype=np.int64)), T(w)),
                 lambda f, T: f.embedding(T(np.array([0.0, 1.0], np.float32)), T(w)),
                 lambda f, T: f.embedding(T(i), T(w), padding_idx=5),
                 lambda f, T: f.embedding(T(i), T(w), padding_idx=-6),
                 lambda f, T: f.embedding(T(i), T(np.zeros(5, np.float32)))):
        _same_error(lambda: call(TF, torch.tensor), lambda: call(F, pve.tensor))
    _same_error(lambda: torch.nn.Embedding(4, 2, padding_idx=4),
                lambda: nn.Embedding(4, 2, padding_idx=4))
    _same_error(lambda: torch.nn.Embedding.from_pretrained(torch.ones(3)),
                lambda: nn.Embedding.from_pretrained(pve.tensor(np.ones(3, np.float32))))


# -------------------------------------------------------- lp_pool1d, max_unpool1d
@pytest.mark.parametrize("shape,p,k,s,ceil", [
    ((2, 3, 8), 2.0, 3, None, False), ((3, 9), 3.0, 2, 1, False), ((1, 2, 7), 1.5, 3, 2, True),
    ((2, 2, 6), float("inf"), 2, None, False), ((2, 2, 6), 1, 2, None, True),
])
def test_lp_pool1d(shape, p, k, s, ceil):
    x = _randn(*shape)
    if p not in (2.0, float("inf")):
        x = np.abs(x) + 0.2
    compare_with_torch(torch, "lp_pool1d", [x, p, k], {"stride": s, "ceil_mode": ceil}, rng=rng)
    tm, pm = torch.nn.LPPool1d(p, k, s, ceil), nn.LPPool1d(p, k, s, ceil)
    assert repr(pm) == repr(tm)
    np.testing.assert_allclose(pm(pve.tensor(x)).numpy(), tm(torch.tensor(x)).numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape,k,s,p,out_size", [
    ((2, 3, 8), 2, None, 0, None), ((3, 9), 3, 2, 1, None), ((1, 2, 7), 2, 2, 0, [7]),
    ((2, 1, 6), 2, None, 0, (2, 1, 7)),
])
def test_max_unpool1d(shape, k, s, p, out_size):
    x = _randn(*shape)
    ty, ti = TF.max_pool1d(torch.tensor(x), k, s, p, return_indices=True)
    compare_with_torch(torch, "max_unpool1d", [ty.numpy(), ti.numpy(), k],
                       {"stride": s, "padding": p, "output_size": out_size}, rng=rng)
    tm, pm = torch.nn.MaxUnpool1d(k, s, p), nn.MaxUnpool1d(k, s, p)
    assert repr(pm) == repr(tm)
    np.testing.assert_array_equal(
        pm(pve.tensor(ty.numpy()), pve.tensor(ti.numpy()), out_size).numpy(),
        tm(ty, ti, out_size).numpy())


def test_pool1d_errors():
    x = np.ones((1, 2, 3), np.float32)
    i = np.zeros((1, 2, 3), np.int64)
    for call in (lambda f, T: f.max_unpool1d(T(x), T(i), 2, output_size=[1, 6]),
                 lambda f, T: f.max_unpool1d(T(x), T(np.full((1, 2, 3), 9, np.int64)), 2),
                 lambda f, T: f.max_unpool1d(T(x), T(i.astype(np.float32)), 2),
                 lambda f, T: f.lp_pool1d(T(x), 2, 9)):
        _same_error(lambda: call(TF, torch.tensor), lambda: call(F, pve.tensor))


# ------------------------------------------------------------------ pdist, gumbel, ...
@pytest.mark.parametrize("n,m,p", [(5, 3, 2), (4, 6, 1), (6, 2, 3.5), (3, 4, float("inf")),
                                   (2, 5, 0.7), (1, 3, 2), (4, 3, 0)])
def test_pdist(n, m, p):
    compare_with_torch(torch, "pdist", [_randn(n, m), p], rng=rng, rtol=1e-5, atol=1e-5)


def test_pdist_coinciding_rows_and_errors():
    x = np.array([[1, 2], [1, 2], [4, 6]], np.float32)
    compare_with_torch(torch, "pdist", [x], rng=rng)
    for call in (lambda f, T: f.pdist(T(np.zeros((2, 2, 2), np.float32))),
                 lambda f, T: f.pdist(T(x), -1)):
        _same_error(lambda: call(TF, torch.tensor), lambda: call(F, pve.tensor))


def test_gumbel_softmax_against_torch():
    x = _randn(3, 5)
    for hard in (False, True):
        for dim in (-1, 0):
            ty = TF.gumbel_softmax(torch.tensor(x), tau=0.5, hard=hard, dim=dim)
            py = F.gumbel_softmax(pve.tensor(x), tau=0.5, hard=hard, dim=dim)
            assert tuple(py.shape) == tuple(ty.shape) and py.dtype == np.float32
            np.testing.assert_allclose(py.numpy().sum(dim), ty.numpy().sum(dim), rtol=1e-5)
            if hard:
                assert set(np.unique(py.numpy())) <= {0.0, 1.0}
    # the same sample frequencies as torch's (softmax of the logits)
    logits = np.log(np.array([0.15, 0.25, 0.6], np.float32))
    tile = np.tile(logits, (20000, 1))
    ours = F.gumbel_softmax(pve.tensor(tile), hard=True).numpy().mean(0)
    theirs = TF.gumbel_softmax(torch.tensor(tile), hard=True).numpy().mean(0)
    np.testing.assert_allclose(ours, theirs, atol=0.02)
    _same_error(lambda: TF.gumbel_softmax(torch.tensor(x), dim=2),
                lambda: F.gumbel_softmax(pve.tensor(x), dim=2))


def test_feature_alpha_dropout_against_torch():
    x = _randn(6, 8, 3)
    for p in (0.0, 1.0):
        np.testing.assert_allclose(
            F.feature_alpha_dropout(pve.tensor(x), p, True).numpy(),
            TF.feature_alpha_dropout(torch.tensor(x), p, True).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(F.feature_alpha_dropout(pve.tensor(x), 0.5, False).numpy(),
                                  TF.feature_alpha_dropout(torch.tensor(x), 0.5, False).numpy())
    # a dropped channel takes the same constant in both (a * -alpha' + b)
    ours = F.feature_alpha_dropout(pve.tensor(np.zeros((50, 8, 3), np.float32)) + 5, 0.5,
                                   True).numpy()
    theirs = TF.feature_alpha_dropout(torch.zeros(50, 8, 3) + 5, 0.5, True).numpy()
    np.testing.assert_allclose(np.unique(ours), np.unique(theirs), rtol=1e-6)
    tm, pm = torch.nn.FeatureAlphaDropout(0.2), nn.FeatureAlphaDropout(0.2)
    assert repr(pm) == repr(tm)
    _same_error(lambda: TF.feature_alpha_dropout(torch.ones(3), 0.5, True),
                lambda: F.feature_alpha_dropout(pve.tensor(np.ones(3, np.float32)), 0.5, True))
    _same_error(lambda: torch.nn.FeatureAlphaDropout(1.5), lambda: nn.FeatureAlphaDropout(1.5))


def test_init_deprecated_aliases_match_torch():
    import warnings
    names = sorted(n for n in dir(torch.nn.init)
                   if not n.startswith("_") and hasattr(torch.nn.init, n + "_")
                   and callable(getattr(torch.nn.init, n)))
    assert names == sorted(n for n in dir(nn.init)
                           if not n.startswith("_") and hasattr(nn.init, n + "_")
                           and callable(getattr(nn.init, n)))
    t = torch.empty(3, 4)
    a = pve.tensor(np.zeros((3, 4), np.float32))
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        torch.nn.init.constant(t, 2.0)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        nn.init.constant(a, 2.0)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    assert [w.category for w in ours] == [w.category for w in theirs]
    np.testing.assert_array_equal(a.numpy(), t.numpy())
