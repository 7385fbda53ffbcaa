"""RMSNorm / F.rms_norm, Bilinear / F.bilinear (and the later layers of this file)
against float64 numpy references written here, and their gradients against float64
central finite differences (layers_helpers.check_op)."""

import math

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op

nn, F = pve.nn, pve.nn.functional
rng = np.random.default_rng(31)
F32_EPS = float(np.finfo(np.float32).eps)


def _randn(*shape):
    return rng.standard_normal(shape)


# ------------------------------------------------------------------------- rms_norm
def np_rms_norm(x, shape, w=None, eps=None):
    eps = F32_EPS if eps is None else eps
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    y = x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
    return y if w is None else y * w


@pytest.mark.parametrize("xshape,shape,affine,eps", [
    ((3, 5), [5], True, None), ((2, 3, 4), [3, 4], True, 1e-3), ((4, 6), (6,), False, None),
    ((7,), [7], True, 0.5), ((2, 1, 3), [3], False, 1e-6),
])
def test_rms_norm_values_and_grads(xshape, shape, affine, eps):
    x = _randn(*xshape)
    if affine:
        w = _randn(*tuple(shape))
        check_op(lambda a, b: F.rms_norm(a, shape, b, eps),
                 lambda a, b: np_rms_norm(a, tuple(shape), b, eps), [x, w])
    else:
        check_op(lambda a: F.rms_norm(a, shape, None, eps),
                 lambda a: np_rms_norm(a, tuple(shape), None, eps), [x])


def test_rms_norm_module():
    m = nn.RMSNorm([2, 3])
    assert m.eps is None and m.normalized_shape == (2, 3) and m.elementwise_affine
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones((2, 3), np.float32))
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    assert repr(m) == "RMSNorm((2, 3), eps=None, elementwise_affine=True)"
    with pve.no_grad():
        m.weight.copy_(pve.tensor(_randn(2, 3).astype(np.float32)))
    x = _randn(4, 2, 3).astype(np.float32)
    np.testing.assert_allclose(m(pve.tensor(x)).detach().numpy(),
                               np_rms_norm(x.astype(np.float64), (2, 3),
                                           m.weight.detach().numpy().astype(np.float64)),
                               rtol=1e-5, atol=1e-6)
    m2 = nn.RMSNorm(4, eps=1e-2, elementwise_affine=False)
    assert m2.weight is None and list(m2.parameters()) == []
    x = _randn(3, 4).astype(np.float32)
    np.testing.assert_allclose(m2(pve.tensor(x)).numpy(),
                               np_rms_norm(x.astype(np.float64), (4,), None, 1e-2),
                               rtol=1e-5, atol=1e-6)
    assert m2(pve.tensor(np.zeros((0, 4), np.float32))).shape == (0, 4)


def test_rms_norm_errors():
    x = pve.tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(RuntimeError, match="normalized_shape"):
        F.rms_norm(x, [4])
    with pytest.raises(RuntimeError, match="weight"):
        F.rms_norm(x, [3], pve.tensor(np.ones(2, np.float32)))
    with pytest.raises(RuntimeError, match="at least 1-dimensional"):
        F.rms_norm(x, [])
    with pytest.raises(TypeError, match="normalized_shape"):
        F.rms_norm(x, 3)
    with pytest.raises(RuntimeError, match="normalized_shape"):
        nn.RMSNorm(4)(x)


# ------------------------------------------------------------------------- bilinear
def np_bilinear(x1, x2, w, b=None):
    y = np.einsum("...i,kij,...j->...k", x1, w, x2)
    return y if b is None else y + b


@pytest.mark.parametrize("lead,in1,in2,out,bias", [
    ((4,), 3, 5, 2, True), ((2, 3), 2, 2, 4, False), ((), 3, 4, 5, True), ((0,), 2, 3, 2, True),
    ((1,), 1, 1, 1, True),
])
def test_bilinear_values_and_grads(lead, in1, in2, out, bias):
    x1, x2, w = _randn(*lead, in1), _randn(*lead, in2), _randn(out, in1, in2)
    if bias:
        check_op(F.bilinear, np_bilinear, [x1, x2, w, _randn(out)])
    else:
        check_op(F.bilinear, np_bilinear, [x1, x2, w])


def test_bilinear_module_init_and_forward():
    pve.manual_seed(0)
    m = nn.Bilinear(20, 30, 40)
    assert m.weight.shape == (40, 20, 30) and m.bias.shape == (40,)
    bound = 1 / math.sqrt(20)
    w = m.weight.detach().numpy()
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(m.bias.detach().numpy()) <= bound)
    # U(-b, b): mean 0, variance b^2 / 3 (24000 draws)
    assert abs(w.mean()) < 0.01 and abs(w.var() / (bound ** 2 / 3) - 1) < 0.05
    assert repr(m) == "Bilinear(in1_features=20, in2_features=30, out_features=40, bias=True)"
    x1, x2 = _randn(3, 20).astype(np.float32), _randn(3, 30).astype(np.float32)
    np.testing.assert_allclose(
        m(pve.tensor(x1), pve.tensor(x2)).detach().numpy(),
        np_bilinear(x1.astype(np.float64), x2.astype(np.float64), w.astype(np.float64),
                    m.bias.detach().numpy().astype(np.float64)), rtol=1e-4, atol=1e-5)
    assert nn.Bilinear(2, 3, 4, bias=False).bias is None
    with pytest.raises(ValueError, match="in1_features"):
        nn.Bilinear(0, 3, 4)


def test_bilinear_errors():
    w = pve.tensor(np.zeros((5, 3, 4), np.float32))
    z = lambda *s: pve.tensor(np.zeros(s, np.float32))  # noqa: E731
    with pytest.raises(RuntimeError, match="input2 size"):
        F.bilinear(z(2, 3), z(2, 3), w)
    with pytest.raises(RuntimeError, match="input1 size"):
        F.bilinear(z(2, 2), z(2, 4), w)
    with pytest.raises(RuntimeError, match="batch dimensions"):
        F.bilinear(z(2, 3), z(3, 4), w)
    with pytest.raises(RuntimeError, match="bias size"):
        F.bilinear(z(2, 3), z(2, 4), w, z(4))


# ------------------------------------------------------------------------ embedding
def _idx(a):
    return pve.tensor(np.asarray(a, dtype=np.int64))


@pytest.mark.parametrize("idx_shape", [(4,), (2, 3), (), (2, 0), (2, 2, 2)])
def test_embedding_values_and_grads(idx_shape):
    idx = rng.integers(0, 6, size=idx_shape)
    w = _randn(6, 3)
    check_op(lambda t: F.embedding(_idx(idx), t), lambda a: a[idx], [w])


def _np_embedding_grad(idx, g, num, padding_idx=None, scale=False):
    flat, rows = idx.reshape(-1), g.reshape(idx.size, -1)
    if scale:
        counts = np.bincount(flat, minlength=num)
        rows = rows / counts[flat][:, None]
    gw = np.zeros((num, rows.shape[1]))
    for i, r in zip(flat, rows):
        gw[i] += r
    if padding_idx is not None:
        gw[padding_idx] = 0
    return gw


@pytest.mark.parametrize("padding_idx,scale", [(2, False), (-1, True), (None, True), (0, True)])
def test_embedding_padding_and_scale_grad(padding_idx, scale):
    idx = np.array([[0, 2, 2], [4, 0, 0]])
    w = pve.tensor(_randn(5, 4).astype(np.float32), requires_grad=True)
    y = F.embedding(_idx(idx), w, padding_idx=padding_idx, scale_grad_by_freq=scale)
    np.testing.assert_array_equal(y.detach().numpy(), w.detach().numpy()[idx])
    g = _randn(2, 3, 4)
    y.backward(pve.tensor(g.astype(np.float32)))
    pad = None if padding_idx is None else padding_idx % 5
    np.testing.assert_allclose(w.grad.numpy(), _np_embedding_grad(idx, g.astype(np.float32), 5,
                                                                   pad, scale),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, float("inf")])
def test_embedding_max_norm_renorms_in_place(norm_type):
    w64 = _randn(6, 3) * 2
    w = pve.tensor(w64.astype(np.float32), requires_grad=True)
    idx = np.array([1, 3, 3, 5])
    before = w.detach().numpy().astype(np.float64)
    y = F.embedding(_idx(idx), w, max_norm=1.5, norm_type=norm_type)
    norms = np.linalg.norm(before, ord=norm_type, axis=1)
    expect = before.copy()
    for r in np.unique(idx):
        if norms[r] > 1.5:
            expect[r] *= 1.5 / (norms[r] + 1e-7)
    np.testing.assert_allclose(w.detach().numpy(), expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y.detach().numpy(), expect[idx], rtol=1e-5, atol=1e-6)
    assert np.all(np.linalg.norm(w.detach().numpy()[idx], ord=norm_type, axis=1) <= 1.5 + 1e-5)
    # rows not looked up are untouched
    others = [r for r in range(6) if r not in idx]
    np.testing.assert_array_equal(w.detach().numpy()[others], before[others].astype(np.float32))


def test_embedding_module():
    pve.manual_seed(3)
    m = nn.Embedding(200, 50, padding_idx=-2)
    assert m.padding_idx == 198 and m.weight.shape == (200, 50)
    w = m.weight.detach().numpy()
    np.testing.assert_array_equal(w[198], np.zeros(50, np.float32))
    rest = np.delete(w, 198, axis=0)
    assert abs(rest.mean()) < 0.02 and abs(rest.std() - 1) < 0.02  # N(0, 1), 9950 draws
    assert repr(m) == "Embedding(200, 50, padding_idx=198)"
    m2 = nn.Embedding(4, 2, max_norm=1.0, norm_type=1.0, scale_grad_by_freq=True)
    assert repr(m2) == "Embedding(4, 2, max_norm=1.0, norm_type=1.0, scale_grad_by_freq=True)"
    idx = np.array([[1, 1], [3, 0]])
    y = m2(_idx(idx))
    assert y.shape == (2, 2, 2)
    assert np.all(np.abs(m2.weight.detach().numpy()[np.unique(idx)]).sum(1) <= 1.0 + 1e-6)
    with pytest.raises(NotImplementedError, match="sparse"):
        nn.Embedding(4, 2, sparse=True)
    with pytest.raises(AssertionError, match="Padding_idx"):
        nn.Embedding(4, 2, padding_idx=4)


def test_embedding_from_pretrained():
    e = pve.tensor(_randn(4, 3).astype(np.float32))
    m = nn.Embedding.from_pretrained(e)
    assert not m.weight.requires_grad and m.weight.shape == (4, 3)
    np.testing.assert_array_equal(m(_idx([3, 0])).numpy(), e.numpy()[[3, 0]])
    m = nn.Embedding.from_pretrained(e, freeze=False, padding_idx=1)
    assert m.weight.requires_grad and m.padding_idx == 1
    np.testing.assert_array_equal(m.weight.detach().numpy()[1], e.numpy()[1])  # kept, as torch
    m(_idx([1, 2])).sum().backward()
    np.testing.assert_array_equal(m.weight.grad.numpy(), [[0] * 3, [0] * 3, [1] * 3, [0] * 3])
    with pytest.raises(AssertionError, match="2-dimensional"):
        nn.Embedding.from_pretrained(pve.tensor(np.ones(3, np.float32)))


def test_embedding_errors():
    w = pve.tensor(np.zeros((5, 3), np.float32))
    with pytest.raises(IndexError, match="out of range"):
        F.embedding(_idx([0, 5]), w)
    with pytest.raises(IndexError, match="out of range"):
        F.embedding(_idx([-1]), w)
    with pytest.raises(RuntimeError, match="int64"):
        F.embedding(pve.tensor(np.array([0.0, 1.0], np.float32)), w)
    with pytest.raises(AssertionError, match="Padding_idx"):
        F.embedding(_idx([0]), w, padding_idx=-6)
    with pytest.raises(RuntimeError, match="2-D"):
        F.embedding(_idx([0]), pve.tensor(np.zeros(5, np.float32)))
    with pytest.raises(NotImplementedError):
        F.embedding(_idx([0]), w, sparse=True)


# -------------------------------------------------------- lp_pool1d, max_unpool1d
def np_lp_pool1d(x, p, k, s=None, ceil_mode=False):
    s = k if s is None else s
    L = x.shape[-1]
    n = (-(-(L - k) // s) if ceil_mode else (L - k) // s) + 1
    if ceil_mode and (n - 1) * s >= L:
        n -= 1
    outs = []
    for i in range(n):
        win = x[..., i * s:min(i * s + k, L)]
        # torch: the window mean times kernel_size (partial ceil windows averaged over
        # their own size)
        m = (win ** p).mean(axis=-1) * k
        outs.append(np.sign(m) * np.abs(m) ** (1.0 / p))
    return np.stack(outs, axis=-1)


@pytest.mark.parametrize("shape,p,k,s,ceil", [
    ((2, 3, 8), 2.0, 3, None, False), ((3, 9), 3.0, 2, 1, False), ((1, 2, 7), 1.5, 3, 2, True),
    ((2, 2, 6), 4, 2, None, False),
])
def test_lp_pool1d_values_and_grads(shape, p, k, s, ceil):
    x = np.abs(_randn(*shape)) + 0.2 if p not in (2.0, 4) else _randn(*shape)
    check_op(lambda t: F.lp_pool1d(t, p, k, s, ceil), lambda a: np_lp_pool1d(a, p, k, s, ceil),
             [x])


def test_lp_pool1d_inf_and_module():
    x = _randn(2, 3, 8).astype(np.float32)
    y = F.lp_pool1d(pve.tensor(x), float("inf"), 2)
    np.testing.assert_array_equal(y.numpy(), np.abs(x).reshape(2, 3, 4, 2).max(-1))
    m = nn.LPPool1d(2, 4, stride=2)
    assert repr(m) == "LPPool1d(norm_type=2, kernel_size=4, stride=2, ceil_mode=False)"
    np.testing.assert_allclose(m(pve.tensor(x)).numpy(),
                               np_lp_pool1d(x.astype(np.float64), 2, 4, 2), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="lp_pool1d"):
        F.lp_pool1d(pve.tensor(x), 2, 9)  # window larger than the input


def np_max_unpool1d(x, idx, L):
    out = np.zeros(x.shape[:-1] + (L,))
    flat_o, flat_x, flat_i = out.reshape(-1, L), x.reshape(-1, x.shape[-1]), \
        idx.reshape(-1, x.shape[-1])
    for r in range(flat_o.shape[0]):
        flat_o[r, flat_i[r]] = flat_x[r]
    return out


# windows that don't overlap: an index picked twice would be written once but read
# twice by the gradient (torch's gather), which a finite difference can't see
@pytest.mark.parametrize("shape,k,s,p,out_size", [
    ((2, 3, 8), 2, None, 0, None), ((3, 9), 2, 3, 1, None), ((1, 2, 7), 2, 2, 0, [7]),
    ((2, 1, 6), 2, None, 0, (2, 1, 7)),
])
def test_max_unpool1d(shape, k, s, p, out_size):
    x = pve.tensor(_randn(*shape).astype(np.float32))
    y, idx = F.max_pool1d(x, k, s, p, return_indices=True)
    L = (y.shape[-1] - 1) * (k if s is None else s) + k - 2 * p
    if out_size is not None:
        L = list(out_size)[-1]
    yi = idx.numpy()
    check_op(lambda t: F.max_unpool1d(t, idx, k, s, p, out_size),
             lambda a: np_max_unpool1d(a, yi, L), [y.detach().numpy()])
    m = nn.MaxUnpool1d(k, s, p)
    assert repr(m) == (f"MaxUnpool1d(kernel_size=({k},), stride=({k if s is None else s},), "
                       f"padding=({p},))")
    np.testing.assert_array_equal(m(y, idx, out_size).numpy(),
                                  np_max_unpool1d(y.numpy(), yi, L).astype(np.float32))


def test_max_unpool1d_errors():
    x = pve.tensor(np.ones((1, 2, 3), np.float32))
    idx = pve.tensor(np.zeros((1, 2, 3), np.int64))
    with pytest.raises(ValueError, match="1 or 3 elements"):
        F.max_unpool1d(x, idx, 2, output_size=[1, 6])
    with pytest.raises(RuntimeError, match="max_unpool1d"):
        F.max_unpool1d(x, pve.tensor(np.full((1, 2, 3), 9, np.int64)), 2)
    with pytest.raises(RuntimeError, match="max_unpool1d"):
        F.max_unpool1d(x, idx.float(), 2)
    with pytest.raises(RuntimeError):
        F.max_unpool1d(pve.tensor(np.ones(3, np.float32)), pve.tensor(np.zeros(3, np.int64)), 2)


# ---------------------------------------------------------------------------- pdist
def np_pdist(x, p):
    i, j = np.triu_indices(x.shape[0], k=1)
    d = np.abs(x[i] - x[j])
    if p == np.inf:
        return d.max(axis=1)
    if p == 0:
        return (d != 0).sum(axis=1).astype(np.float64)
    return (d ** p).sum(axis=1) ** (1.0 / p)


@pytest.mark.parametrize("n,m,p", [(5, 3, 2), (4, 6, 1), (6, 2, 3.5), (3, 4, np.inf),
                                   (2, 5, 0.7), (7, 1, 2)])
def test_pdist_values_and_grads(n, m, p):
    check_op(lambda t: F.pdist(t, p), lambda a: np_pdist(a, p), [_randn(n, m)])


def test_pdist_edges_and_errors():
    assert F.pdist(pve.tensor(np.zeros((1, 3), np.float32))).shape == (0,)
    assert F.pdist(pve.tensor(np.zeros((0, 3), np.float32))).shape == (0,)
    x = np.array([[1, 2], [1, 2], [4, 6]], np.float32)
    t = pve.tensor(x, requires_grad=True)
    d = F.pdist(t)
    np.testing.assert_allclose(d.detach().numpy(), [0, 5, 5])
    np.testing.assert_allclose(F.pdist(pve.tensor(x), 0).numpy(), [0, 2, 2])
    d.sum().backward()  # the coinciding pair adds no gradient (and no NaN)
    np.testing.assert_allclose(t.grad.numpy(), [[-0.6, -0.8], [-0.6, -0.8], [1.2, 1.6]],
                               rtol=1e-6)
    with pytest.raises(RuntimeError, match="2D"):
        F.pdist(pve.tensor(np.zeros((2, 2, 2), np.float32)))
    with pytest.raises(RuntimeError, match="non-negative"):
        F.pdist(pve.tensor(x), -1)


# ------------------------------------------------------------------- gumbel_softmax
def _np_softmax(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("shape,tau,dim", [((4, 5), 1.0, -1), ((2, 3, 4), 0.5, 1),
                                           ((6,), 2.0, 0)])
def test_gumbel_softmax_soft(shape, tau, dim):
    pve.manual_seed(17)
    noise = pve.random.default_generator().exponential(1.0, shape).astype(np.float32)
    g = -np.log(noise).astype(np.float64)

    def run(t):
        pve.manual_seed(17)
        return F.gumbel_softmax(t, tau=tau, dim=dim)

    check_op(run, lambda a: _np_softmax((a + g) / tau, dim), [_randn(*shape)])


def test_gumbel_softmax_hard_straight_through():
    shape, tau = (5, 4), 0.7
    pve.manual_seed(3)
    noise = pve.random.default_generator().exponential(1.0, shape).astype(np.float32)
    g = -np.log(noise).astype(np.float64)
    x64 = _randn(*shape)
    x = pve.tensor(x64.astype(np.float32), requires_grad=True)
    pve.manual_seed(3)
    y = F.gumbel_softmax(x, tau=tau, hard=True)
    soft = _np_softmax((x64.astype(np.float32).astype(np.float64) + g) / tau, -1)
    expect = np.zeros(shape)
    expect[np.arange(5), soft.argmax(-1)] = 1
    np.testing.assert_allclose(y.detach().numpy(), expect, atol=1e-6)
    up = _randn(*shape)
    y.backward(pve.tensor(up.astype(np.float32)))
    # the gradient is the soft sample's: J^T up = soft * (up - sum(up * soft)) / tau
    ref = soft * (up - (up * soft).sum(-1, keepdims=True)) / tau
    np.testing.assert_allclose(x.grad.numpy(), ref, rtol=1e-4, atol=1e-5)
    with pytest.warns(UserWarning, match="deprecated"):
        F.gumbel_softmax(x, eps=1e-5)
    # samples follow softmax(logits): frequencies of the hard argmax over many draws
    logits = np.log(np.array([0.1, 0.2, 0.7], np.float32))
    draws = F.gumbel_softmax(pve.tensor(np.tile(logits, (20000, 1))), hard=True).numpy()
    np.testing.assert_allclose(draws.mean(0), [0.1, 0.2, 0.7], atol=0.015)


# ------------------------------------------------------------ feature_alpha_dropout
ALPHA_P = 1.7580993408473766


@pytest.mark.parametrize("shape,p", [((4, 3, 5), 0.3), ((2, 6, 2, 2), 0.5), ((5, 4), 0.2)])
def test_feature_alpha_dropout(shape, p):
    x64 = _randn(*shape)
    pve.manual_seed(9)
    noise_shape = shape[:2] + (1,) * (len(shape) - 2)
    keep = (pve.random.default_generator().random(noise_shape, dtype=np.float32)
            >= np.float32(p)).astype(np.float64)
    a = 1 / np.sqrt((ALPHA_P ** 2 * p + 1) * (1 - p))
    b = a * ALPHA_P * p

    def ref(x):
        return a * (x * keep + (1 - keep) * -ALPHA_P) + b

    def run(t):
        pve.manual_seed(9)
        return F.feature_alpha_dropout(t, p, True)

    check_op(run, ref, [x64])
    m = nn.FeatureAlphaDropout(p)
    assert repr(m) == f"FeatureAlphaDropout(p={p}, inplace=False)"
    pve.manual_seed(9)
    np.testing.assert_allclose(m(pve.tensor(x64.astype(np.float32))).numpy(), ref(x64),
                               rtol=1e-5, atol=1e-5)
    m.eval()
    t = pve.tensor(x64.astype(np.float32))
    assert m(t) is t


def test_feature_alpha_dropout_statistics_and_errors():
    # SELU's fixed point: zero mean, unit variance in, the same out
    x = pve.tensor(np.random.default_rng(0).standard_normal((400, 300, 4)).astype(np.float32))
    y = F.feature_alpha_dropout(x, 0.4, True).numpy()
    assert abs(y.mean()) < 0.03 and abs(y.var() - 1) < 0.03
    # whole channels dropped: constant over the feature's positions
    dropped = np.all(y == y[..., :1], axis=-1)
    assert 0.35 < dropped.mean() < 0.45
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        F.feature_alpha_dropout(pve.tensor(np.ones(3, np.float32)), 0.5, True)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.feature_alpha_dropout(x, 1.5, True)
    with pytest.raises(ValueError):
        nn.FeatureAlphaDropout(-0.1)


# ------------------------------------------------------------ nn.init deprecated names
@pytest.mark.parametrize("name,args", [
    ("uniform", (-1.0, 2.0)), ("normal", (0.5, 2.0)), ("constant", (3.0,)), ("eye", ()),
    ("dirac", ()), ("xavier_uniform", ()), ("xavier_normal", ()), ("kaiming_uniform", ()),
    ("kaiming_normal", ()), ("orthogonal", ()), ("sparse", (0.5,)),
])
def test_init_deprecated_aliases(name, args):
    shape = (4, 4, 3) if name == "dirac" else (6, 5)
    a = pve.tensor(np.zeros(shape, np.float32))
    b = pve.tensor(np.zeros(shape, np.float32))
    pve.manual_seed(1)
    with pytest.warns(FutureWarning,
                      match=rf"`nn.init.{name}` is now deprecated in favor of `nn.init.{name}_`"):
        out = getattr(nn.init, name)(a, *args)
    pve.manual_seed(1)
    getattr(nn.init, name + "_")(b, *args)
    assert out is a and getattr(nn.init, name).__name__ == name
    np.testing.assert_array_equal(a.numpy(), b.numpy())
