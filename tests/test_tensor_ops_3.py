"""More of torch's tensor API, third part: random fills and sampling, element-wise math,
against independent references: the distributions' own moments and supports (tolerances
from the sample size: 6 standard errors), plain numpy in float64 for values, float64
finite differences for gradients. torch itself: test_tensor_ops_3_torch_parity.py."""

import math

import numpy as np
import pytest

import pyvision_engine as pve

rng = np.random.default_rng(2031)
N = 200_000  # samples per statistical check


def check_moments(values, mean, var, fourth=None):
    """Sample mean and variance within 6 standard errors of the distribution's: the
    mean's error is sqrt(var / N); the variance's sqrt((mu4 - var^2) / N), mu4 the
    fourth central moment (3 var^2 for a normal when not given)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    n = v.size
    mu4 = 3 * var ** 2 if fourth is None else fourth
    assert abs(v.mean() - mean) <= 6 * math.sqrt(var / n), (v.mean(), mean)
    assert abs(v.var() - var) <= 6 * math.sqrt((mu4 - var ** 2) / n), (v.var(), var)


def check_rate(values, p):
    """0/1 draws: the mean within 6 standard errors of p (the variance follows from it)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    assert set(np.unique(v)) <= {0.0, 1.0}
    assert abs(v.mean() - p) <= 6 * math.sqrt(p * (1 - p) / v.size), (v.mean(), p)


# ------------------------------------------------------------ random fills
def test_normal_uniform_fills_moments_range_dtype_and_self():
    pve.manual_seed(1)
    t = pve.empty(N)
    assert t.normal_(2.0, 0.5) is t and t.dtype == pve.float32
    check_moments(t.numpy(), 2.0, 0.25)
    u = pve.zeros(N).uniform_(-1.0, 3.0)
    a = u.numpy()
    assert a.min() >= -1.0 and a.max() < 3.0
    check_moments(a, 1.0, 16 / 12, fourth=4 ** 4 / 80)
    w = pve.zeros(4, 5)
    w.data.normal_(0, 0.01)  # init code's form: the same storage changes
    assert np.abs(w.numpy()).max() > 0


def test_bernoulli_fills_and_functions():
    pve.manual_seed(2)
    b = pve.zeros(N).bernoulli_(0.3).numpy()
    assert set(np.unique(b)) <= {0.0, 1.0}
    check_rate(b, 0.3)
    probs = np.tile(np.array([0.0, 1.0, 0.25], dtype=np.float32), N // 3)
    d = pve.bernoulli(pve.tensor(probs)).numpy()
    assert d.dtype == np.float32
    assert (d[probs == 0] == 0).all() and (d[probs == 1] == 1).all()
    check_rate(d[probs == 0.25], 0.25)
    t = pve.zeros(N, dtype=pve.int64).bernoulli_(pve.tensor(np.float32(0.75)))
    assert t.dtype == pve.int64
    check_rate(t.numpy(), 0.75)
    assert pve.zeros(3).bernoulli(1.0).tolist() == [1.0, 1.0, 1.0]


def test_random_integer_ranges_by_dtype():
    pve.manual_seed(3)
    f = pve.zeros(N).random_().numpy()
    assert f.min() >= 0 and f.max() <= 2 ** 24 and (f == np.floor(f)).all()
    check_moments(f, 2 ** 23, ((2 ** 24 + 1) ** 2 - 1) / 12, fourth=((2 ** 24 + 1) ** 4) / 80)
    i = pve.zeros(N, dtype=pve.int64).random_(-5, 3).numpy()
    assert set(np.unique(i)) == set(range(-5, 3))
    check_moments(i, -1.5, (8 ** 2 - 1) / 12, fourth=(8 ** 2 - 1) * (3 * 8 ** 2 - 7) / 240)
    j = pve.zeros(1000, dtype=pve.int64).random_(4).numpy()
    assert set(np.unique(j)) == {0, 1, 2, 3}
    big = pve.zeros(1000, dtype=pve.int64).random_().numpy()
    assert big.min() >= 0 and big.max() > 2 ** 60
    b = pve.zeros(1000, dtype=pve.bool_).random_()
    assert b.dtype == pve.bool_ and 0 < b.numpy().sum() < 1000


def test_exponential_log_normal_cauchy_geometric():
    pve.manual_seed(4)
    e = pve.zeros(N).exponential_(2.0).numpy()
    assert e.min() >= 0
    check_moments(e, 0.5, 0.25, fourth=9 / 2.0 ** 4)
    ln = pve.zeros(N).log_normal_(0.5, 0.25).numpy()
    check_moments(np.log(ln), 0.5, 0.0625)
    c = pve.zeros(N).cauchy_(1.0, 2.0).numpy()
    # no moments: the quartiles are median -+ sigma; the sample quartile's standard error
    # is sqrt(q (1 - q) / N) / density(quartile) = sqrt(3/16 / N) * 4 pi
    se = math.sqrt(3 / 16 / N) * 4 * math.pi
    q1, q2, q3 = np.quantile(c, [0.25, 0.5, 0.75])
    assert abs(q1 + 1.0) < 6 * se and abs(q3 - 3.0) < 6 * se and abs(q2 - 1.0) < 6 * se
    g = pve.zeros(N, dtype=pve.int64).geometric_(0.25).numpy()
    assert g.min() >= 1 and g.dtype == np.int64
    p = 0.25
    var = (1 - p) / p ** 2
    mu4 = (1 - p) * (p ** 2 - 9 * p + 9) / p ** 4
    check_moments(g, 1 / p, var, fourth=mu4)


def test_normal_overloads_and_like_factories():
    pve.manual_seed(5)
    a = pve.normal(3.0, 2.0, size=(N,))
    assert a.dtype == pve.float32 and a.shape == (N,)
    check_moments(a.numpy(), 3.0, 4.0)
    mean = pve.tensor(np.array([[-10.0], [10.0]], dtype=np.float32))
    std = pve.tensor(np.array([0.5, 1.0, 2.0], dtype=np.float32))
    many = np.stack([pve.normal(mean, std).numpy() for _ in range(4000)])
    assert many.shape == (4000, 2, 3)
    for r, m in enumerate([-10.0, 10.0]):
        for c, s in enumerate([0.5, 1.0, 2.0]):
            check_moments(many[:, r, c], m, s * s)
    b = pve.normal(pve.zeros(N), 3.0)
    check_moments(b.numpy(), 0.0, 9.0)
    c = pve.normal(1.0, pve.full((N,), 0.5))
    check_moments(c.numpy(), 1.0, 0.25)
    x = pve.zeros(N, 1)
    check_moments(pve.randn_like(x).numpy(), 0.0, 1.0)
    u = pve.rand_like(x).numpy()
    assert u.shape == (N, 1) and u.min() >= 0 and u.max() < 1
    check_moments(u, 0.5, 1 / 12, fourth=1 / 80)
    r = pve.randint_like(pve.zeros(1000, dtype=pve.int64), 2, 5)
    assert r.dtype == pve.int64 and set(np.unique(r.numpy())) == {2, 3, 4}
    assert set(np.unique(pve.randint_like(pve.zeros(1000), 3).numpy())) == {0.0, 1.0, 2.0}


def test_normal_gives_its_tensor_parameters_a_zero_gradient():
    mean = pve.zeros(2, 3, requires_grad=True)
    std = pve.ones(3, requires_grad=True)
    out = pve.normal(mean, std)
    assert out.requires_grad
    out.sum().backward()
    assert mean.grad.tolist() == [[0.0] * 3] * 2 and std.grad.tolist() == [0.0] * 3


def test_multinomial_frequencies_and_rules():
    pve.manual_seed(6)
    w = np.array([1.0, 0.0, 3.0, 4.0], dtype=np.float32)
    draws = pve.multinomial(pve.tensor(w), N, replacement=True).numpy()
    assert draws.dtype == np.int64 and draws.shape == (N,)
    for k, p in enumerate(w / w.sum()):
        check_rate(draws == k, p)
    rows = pve.multinomial(pve.tensor(np.stack([w] * 500)), 3).numpy()
    assert rows.shape == (500, 3)
    for row in rows:  # distinct, and the zero-weight category only when nothing else is left
        assert len(set(row.tolist())) == 3 and 1 not in row.tolist()
    # the first draw without replacement has the weights' probabilities
    first = rows[:, 0]
    for k, p in enumerate(w / w.sum()):
        assert abs((first == k).mean() - p) < 6 * math.sqrt(p * (1 - p) / 500) + 1e-12
    assert pve.multinomial(pve.tensor([1.0, 0.0, 0.0]), 2).tolist()[0] == 0


@pytest.mark.parametrize("name,call", [
    ("normal_", lambda t: t.normal_(1.0, 2.0)),
    ("uniform_", lambda t: t.uniform_(0.0, 5.0)),
    ("bernoulli_", lambda t: t.bernoulli_(0.4)),
    ("random_", lambda t: t.random_(0, 100)),
    ("exponential_", lambda t: t.exponential_()),
    ("log_normal_", lambda t: t.log_normal_()),
    ("cauchy_", lambda t: t.cauchy_()),
    ("geometric_", lambda t: t.geometric_(0.3)),
    ("normal", lambda t: pve.normal(t, 1.0)),
    ("bernoulli", lambda t: pve.bernoulli(t * 0.5)),
    ("multinomial", lambda t: pve.multinomial(t.abs() + 0.1, 3)),
    ("rand_like", pve.rand_like),
    ("randn_like", pve.randn_like),
])
def test_same_seed_gives_the_same_values(name, call):
    pve.manual_seed(123)
    a = call(pve.ones(4, 5)).numpy().copy()
    pve.manual_seed(123)
    b = call(pve.ones(4, 5)).numpy().copy()
    np.testing.assert_array_equal(a, b)
    c = call(pve.ones(4, 5)).numpy()
    assert not np.array_equal(a, c)


def test_inplace_random_on_a_graph_node_passes_zero_gradient_and_leaf_is_refused():
    x = pve.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        x.normal_()
    y = x * 2
    v = y._version
    assert y.uniform_() is y and y._version == v + 1
    (y * 3).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]
    with pve.no_grad():
        x.normal_()  # allowed without recording


def test_random_argument_errors():
    t = pve.zeros(3)
    cases = [
        (lambda: t.normal_(0, -1), RuntimeError, "std >= 0.0"),
        (lambda: t.uniform_(2, 1), RuntimeError, "from=2 > to=1"),
        (lambda: t.bernoulli_(1.5), RuntimeError, r"\[0, 1\]"),
        (lambda: t.bernoulli_(pve.tensor([0.5, 2.0, 0.0])), RuntimeError, "probabilit"),
        (lambda: t.random_(5, 2), RuntimeError, "from=5 >= to=2"),
        (lambda: t.exponential_(0), RuntimeError, "lambda > 0.0"),
        (lambda: t.log_normal_(1, 0), RuntimeError, "std > 0.0"),
        (lambda: t.cauchy_(0, -1), RuntimeError, "sigma > 0.0"),
        (lambda: t.geometric_(1), RuntimeError, r"\(0, 1\)"),
        (lambda: pve.zeros(2, dtype=pve.int64).normal_(), NotImplementedError, "Long"),
        (lambda: pve.zeros(2, dtype=pve.bool_).uniform_(), NotImplementedError, "Bool"),
        (lambda: pve.zeros(2, dtype=pve.int64).exponential_(), RuntimeError, "continuous"),
        (lambda: pve.zeros(2, dtype=pve.bool_).random_(0, 3), RuntimeError, "bool"),
        (lambda: pve.bernoulli(pve.tensor([2.0])), RuntimeError, "probabilit"),
        (lambda: pve.normal(0.0, 1.0), TypeError, "size"),
        (lambda: pve.normal(pve.zeros(2), -pve.ones(2)), RuntimeError, "std >= 0.0"),
        (lambda: pve.multinomial(pve.tensor([0.5, 0.5]), 3), RuntimeError, "without replacement"),
        (lambda: pve.multinomial(pve.tensor([0.0, 0.0]), 1), RuntimeError, "sum of probabilities"),
        (lambda: pve.multinomial(pve.tensor([-1.0, 2.0]), 1), RuntimeError, "element < 0"),
        (lambda: pve.multinomial(pve.ones(2, 2, 2), 1), RuntimeError, "1 or 2 dim"),
        (lambda: pve.multinomial(pve.tensor([1, 2]), 1), RuntimeError, "floating"),
        (lambda: pve.multinomial(pve.ones(3), 0), RuntimeError, "n_sample <= 0"),
    ]
    for fn, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            fn()
    assert t.tolist() == [0.0, 0.0, 0.0]  # a refused fill writes nothing
