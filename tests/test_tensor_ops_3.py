"""More of torch's tensor API, third part: random fills and sampling, element-wise math,
against independent references: the distributions' own moments and supports (tolerances
from the sample size: 6 standard errors), plain numpy in float64 for values, float64
finite differences for gradients. torch itself: test_tensor_ops_3_torch_parity.py."""

import math

import numpy as np
import pytest

import pyvision_engine as pve
from tensor_helpers import check_values_and_grads

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


# ------------------------------------------------------------ element-wise math
def check(pve_fn, np_fn, *arrays, rtol=1e-4, atol=1e-5):
    check_values_and_grads(pve_fn, np_fn, *arrays, rng=rng, rtol=rtol, atol=atol)


def randn(*shape):
    return rng.standard_normal(shape)


def unit(*shape):  # inside (-1, 1), away from the ends
    return rng.uniform(-0.9, 0.9, shape)


def above_one(*shape):
    return rng.uniform(1.2, 3.0, shape)


def positive(*shape):
    return np.abs(rng.standard_normal(shape)) + 0.5


def probability(*shape):
    return rng.uniform(0.05, 0.95, shape)


def away_from_integers(*shape):  # trunc / frac / fmod: finite differences need no jumps
    return np.round(rng.uniform(-4, 4, shape)) + rng.uniform(0.1, 0.9, shape)


@pytest.mark.parametrize("name,np_fn,make", [
    ("log1p", np.log1p, positive), ("log2", np.log2, positive), ("log10", np.log10, positive),
    ("expm1", np.expm1, randn), ("exp2", np.exp2, randn), ("tan", np.tan, unit),
    ("asin", np.arcsin, unit), ("acos", np.arccos, unit), ("atan", np.arctan, randn),
    ("arcsin", np.arcsin, unit), ("arctan", np.arctan, randn),
    ("sinh", np.sinh, randn), ("cosh", np.cosh, randn), ("asinh", np.arcsinh, randn),
    ("acosh", np.arccosh, above_one), ("atanh", np.arctanh, unit),
    ("trunc", lambda a: np.trunc(a) * a, away_from_integers),
    ("frac", lambda a: a - np.trunc(a), away_from_integers),
    ("negative", np.negative, randn),
])
def test_unary_math_values_and_gradients(name, np_fn, make):
    x = make(3, 4)
    if name == "trunc":
        check(lambda t: pve.trunc(t) * t, np_fn, x)
        check(lambda t: t.fix() * t, np_fn, x)
        return
    check(getattr(pve, name), np_fn, x)
    check(lambda t: getattr(t, name)(), np_fn, x)


def test_logit_with_and_without_eps():
    p = probability(3, 5)
    check(pve.logit, lambda a: np.log(a / (1 - a)), p)
    check(lambda t: t.logit(eps=0.2), lambda a: np.log(np.clip(a, 0.2, 0.8) / (1 - np.clip(a, 0.2, 0.8))),
          np.array([0.1, 0.3, 0.5, 0.7, 0.9]))
    out = pve.tensor([0.0, 1.0, 2.0]).logit().numpy()
    assert out[0] == -np.inf and out[1] == np.inf and np.isnan(out[2])


def test_nan_to_num_defaults_arguments_and_gradient():
    x = pve.tensor([np.nan, np.inf, -np.inf, 1.5], requires_grad=True)
    out = x.nan_to_num()
    big = np.finfo(np.float32).max
    np.testing.assert_array_equal(out.detach().numpy(), np.array([0, big, -big, 1.5], np.float32))
    out.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0, 1.0]  # finite inputs only
    assert pve.nan_to_num(x.detach(), nan=1.0, posinf=2.0, neginf=-3.0).tolist() == [1.0, 2.0, -3.0, 1.5]
    i = pve.tensor([1, 2])
    assert pve.nan_to_num(i).dtype == pve.int64 and pve.nan_to_num(i).tolist() == [1, 2]


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 1, 4), (3, 1)), ((4,), (2, 4))])
def test_binary_math_values_and_gradients_broadcast(shapes):
    a, b = randn(*shapes[0]), randn(*shapes[1])
    check(pve.atan2, np.arctan2, a, b)
    check(lambda x, y: x.arctan2(y), np.arctan2, a, b)
    check(pve.hypot, np.hypot, a, b)
    check(lambda x, y: x.logaddexp(y), np.logaddexp, a, b)
    check(pve.xlogy, lambda x, y: x * np.log(y), a, np.abs(b) + 0.5)
    check(lambda x, y: x.copysign(y), lambda x, y: np.copysign(x, y), a, b)
    check(pve.fmod, np.fmod, away_from_integers(*shapes[0]) * 3, np.abs(b) + 0.5)


def test_binary_math_conventions():
    z = np.array([0.0, 0.0, 1.0])
    y = np.array([np.nan, 0.0, 2.0])
    out = pve.xlogy(pve.tensor(z), pve.tensor(y)).numpy()
    assert np.isnan(out[0]) and out[1] == 0.0 and out[2] == np.float32(math.log(2.0))
    np.testing.assert_allclose(pve.logaddexp(pve.tensor([1000.0]), pve.tensor([1000.0])).numpy(),
                               [1000.0 + math.log(2)])
    assert pve.copysign(pve.tensor([1.0, 2.0]), pve.tensor([-0.0, 0.0])).tolist() == [-1.0, 2.0]
    assert pve.fmod(pve.tensor([-7, 7]), 3).tolist() == [-1, 1]  # the dividend's sign
    assert pve.fmod(pve.tensor([-7, 7]), 3).dtype == pve.int64
    h = pve.heaviside(pve.tensor([-1.5, 0.0, 2.0]), pve.tensor([0.5]))
    assert h.tolist() == [0.0, 0.5, 1.0]
    # atan2's gradient at the origin is 0 (torch), not 0/0
    a, b = pve.zeros(1, requires_grad=True), pve.zeros(1, requires_grad=True)
    pve.atan2(a, b).sum().backward()
    assert a.grad.tolist() == [0.0] and b.grad.tolist() == [0.0]


def test_aliases_and_rounding_modes():
    a = pve.tensor([-7.0, 7.0, 5.5])
    assert pve.subtract(a, 1.0, alpha=2).tolist() == [-9.0, 5.0, 3.5]
    assert pve.multiply(a, 2).tolist() == [-14.0, 14.0, 11.0]
    assert pve.true_divide(a, 2).tolist() == [-3.5, 3.5, 2.75]
    assert pve.divide(a, 2).tolist() == [-3.5, 3.5, 2.75]
    assert pve.divide(a, 2, rounding_mode="trunc").tolist() == [-3.0, 3.0, 2.0]
    assert pve.divide(a, 2, rounding_mode="floor").tolist() == [-4.0, 3.0, 2.0]
    i = pve.tensor([-7, 7, -6])
    assert pve.divide(i, 2, rounding_mode="trunc").tolist() == [-3, 3, -3]
    assert pve.divide(i, 2, rounding_mode="trunc").dtype == pve.int64
    assert pve.negative(i).tolist() == [7, -7, 6]
    g = pve.tensor([1.5, -2.5], requires_grad=True)
    g.divide(2.0, rounding_mode="trunc").sum().backward()
    assert g.grad.tolist() == [0.0, 0.0]  # piecewise constant: zero gradient, as torch


def test_integer_inputs_promote_to_float32():
    i = pve.tensor([1, 2, 3])
    refs = {"log1p": np.log1p, "log2": np.log2, "log10": np.log10, "expm1": np.expm1,
            "exp2": np.exp2, "tan": np.tan, "asin": np.arcsin, "atan": np.arctan, "sinh": np.sinh,
            "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
            "logit": lambda a: np.log(a / (1 - a))}
    for name, ref in refs.items():
        out = getattr(pve, name)(i)
        assert out.dtype == pve.float32, name
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(out.numpy(), ref(np.array([1.0, 2.0, 3.0])), rtol=1e-6,
                                       err_msg=name)
    assert pve.trunc(i).dtype == pve.int64
    assert pve.xlogy(i, i).dtype == pve.float32 and pve.copysign(i, -1).dtype == pve.float32
    assert pve.atan2(i, i).dtype == pve.float32


INPLACE = ["log1p", "log2", "log10", "expm1", "exp2", "tan", "asin", "acos", "atan", "sinh",
           "cosh", "trunc", "frac", "sign", "sin", "cos", "erf", "reciprocal",
           "log", "floor", "ceil", "round", "square", "neg", "negative", "fix", "logit",
           "nan_to_num", "rsqrt"]


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_unary_matches_out_of_place_with_gradient(name):
    x = unit(2, 3) * 0.9 + (1.0 if name in ("log", "log2", "log10", "rsqrt") else 0.0)
    if name == "logit":
        x = probability(2, 3)
    if name in ("trunc", "frac", "fix", "floor", "ceil", "round"):
        x = away_from_integers(2, 3)
    expected_t = pve.tensor(x.astype(np.float32), requires_grad=True)
    expected = getattr(expected_t * 1.0, name)()
    leaf = pve.tensor(x.astype(np.float32), requires_grad=True)
    y = leaf * 1.0
    v = y._version
    assert getattr(y, name + "_")() is y and y._version == v + 1
    np.testing.assert_array_equal(y.detach().numpy(), expected.detach().numpy())
    w = pve.tensor(rng.standard_normal((2, 3)).astype(np.float32))
    (y * w).sum().backward()
    (expected * w).sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), expected_t.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["asinh", "acosh", "atanh", "arcsinh"])
def test_inplace_inverse_hyperbolic_values_but_no_derivative_as_torch(name):
    x = np.array([1.2, 1.5, 2.0]) if "cosh" in name else np.array([0.2, -0.5, 0.7])
    ref = {"asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh, "arcsinh": np.arcsinh}[name]
    leaf = pve.tensor(x.astype(np.float32), requires_grad=True)
    y = leaf * 1.0
    assert getattr(y, name + "_")() is y
    np.testing.assert_allclose(y.detach().numpy(), ref(x), rtol=1e-6)
    with pytest.raises(NotImplementedError, match="inplace version of"):
        y.sum().backward()
    z = pve.tensor(x.astype(np.float32))
    np.testing.assert_allclose(getattr(z, name + "_")().numpy(), ref(x), rtol=1e-6)


def test_inplace_binary_and_integer_refusals():
    x = pve.tensor([0.5, -1.5])
    assert x.atan2_(pve.tensor([1.0, 1.0])) is x
    np.testing.assert_allclose(x.numpy(), np.arctan2([0.5, -1.5], 1.0), rtol=1e-6)
    y = pve.tensor([-7, 7])
    assert y.fmod_(3).tolist() == [-1, 1] and y.dtype == pve.int64
    for call in (lambda t: t.log_(), lambda t: t.log1p_(), lambda t: t.xlogy_(2),
                 lambda t: t.atan2_(pve.tensor([1.0, 1.0])), lambda t: t.reciprocal_()):
        with pytest.raises(RuntimeError, match="can't be cast"):
            call(pve.tensor([1, 2]))


def test_math_argument_errors():
    cases = [
        (lambda: pve.tensor([1, 2]).frac(), NotImplementedError, "frac_cpu"),
        (lambda: pve.tensor([True]).trunc(), NotImplementedError, "trunc_vml_cpu"),
        (lambda: pve.hypot(pve.tensor([1]), pve.tensor([2])), NotImplementedError, "hypot_cpu"),
        (lambda: pve.logaddexp(pve.tensor([1]), pve.tensor([2])), NotImplementedError, "logaddexp"),
        (lambda: pve.atan2(pve.ones(2), 2), TypeError, "must be Tensor"),
        (lambda: pve.fmod(pve.tensor([5]), 0), RuntimeError, "ZeroDivisionError"),
        (lambda: pve.fmod(pve.tensor([True]), pve.tensor([True])), NotImplementedError, "fmod_cpu"),
        (lambda: pve.heaviside(pve.ones(2), pve.tensor([1])), RuntimeError, "different dtypes"),
        (lambda: pve.divide(pve.ones(2), 2, rounding_mode="bad"), RuntimeError, "rounding_mode"),
        (lambda: pve.atan2(pve.ones(2, 3), pve.ones(4)), RuntimeError, "size of tensor"),
    ]
    for fn, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            fn()


# ------------------------------------------------------------ selection
def test_selection_values_and_gradients():
    x = randn(3, 4, 5)
    check(lambda t: t.narrow(1, 1, 2), lambda a: a[:, 1:3], x)
    check(lambda t: pve.narrow(t, -1, -3, 2), lambda a: a[:, :, 2:4], x)
    check(lambda t: t.select(2, -1), lambda a: a[:, :, -1], x)
    check(lambda t: pve.movedim(t, 0, -1), lambda a: np.moveaxis(a, 0, -1), x)
    check(lambda t: t.moveaxis((0, 1), (2, 0)), lambda a: np.moveaxis(a, (0, 1), (2, 0)), x)
    check(lambda t: t.swapaxes(0, 2), lambda a: np.swapaxes(a, 0, 2), x)
    check(lambda t: pve.swapdims(t, 1, 2), lambda a: np.swapaxes(a, 1, 2), x)
    check(lambda t: t.unflatten(2, (5, -1)), lambda a: a.reshape(3, 4, 5, 1), x)
    check(lambda t: t.tile((2, 1)), lambda a: np.tile(a, (2, 1)), x)
    check(lambda t: pve.tile(t, (2, 1, 1, 2)), lambda a: np.tile(a, (2, 1, 1, 2)), x)
    check(lambda t: t[0].broadcast_to((2, 4, 5)), lambda a: np.broadcast_to(a[0], (2, 4, 5)), x)
    check(lambda t: t.ravel(), np.ravel, x)
    idx = np.array([[0, 59], [-1, 3], [3, 3]])
    check(lambda t: t.take(pve.tensor(idx)), lambda a: np.take(a, idx), x)  # repeats add up
    ind = rng.integers(0, 5, (3, 4, 7))
    check(lambda t: t.take_along_dim(pve.tensor(ind), -1), lambda a: np.take_along_axis(a, ind, -1), x)
    check(lambda t: pve.take_along_dim(t, pve.tensor(ind[:1, :, :2]), 2),
          lambda a: np.take_along_axis(a, np.broadcast_to(ind[:1, :, :2], (3, 4, 2)), 2), x)
    check(lambda t: t.take_along_dim(pve.tensor(np.array([7, 0, 7]))),
          lambda a: a.ravel()[[7, 0, 7]], x)
    mask = rng.standard_normal((4, 5)) > 0
    check(lambda t: t.masked_select(pve.tensor(mask)),
          lambda a: a[np.broadcast_to(mask, a.shape)], x)
    check(lambda t: pve.repeat_interleave(t, 2, dim=1), lambda a: np.repeat(a, 2, axis=1), x)
    check(lambda t: t.repeat_interleave(pve.tensor([1, 0, 3]), dim=0),
          lambda a: np.repeat(a, [1, 0, 3], axis=0), x)
    check(lambda t: t.repeat_interleave(3), lambda a: np.repeat(a.ravel(), 3), x)
    windows = np.lib.stride_tricks.sliding_window_view
    check(lambda t: t.unfold(2, 2, 2), lambda a: windows(a, 2, axis=2)[:, :, ::2], x)
    check(lambda t: t.unfold(0, 3, 1), lambda a: windows(a, 3, axis=0), x)


def test_tensor_split_and_split_with_sizes():
    x = randn(3, 7)
    t = pve.tensor(x.astype(np.float32))
    parts = t.tensor_split(3, dim=1)
    assert [p.shape for p in parts] == [(3, 3), (3, 2), (3, 2)]
    np.testing.assert_array_equal(np.concatenate([p.numpy() for p in parts], 1), t.numpy())
    parts = pve.tensor_split(t, [1, 5, 9], dim=1)
    assert [p.shape[1] for p in parts] == [1, 4, 2, 0]
    parts = t.tensor_split(pve.tensor([2]), dim=1)
    assert [p.shape[1] for p in parts] == [2, 5]
    parts = t.split_with_sizes([4, 3], 1)
    np.testing.assert_array_equal(parts[1].numpy(), t.numpy()[:, 4:])
    check(lambda a: a.tensor_split(2, 1)[1] * 2, lambda a: a[:, 4:] * 2, x)


def test_metadata_methods():
    x = pve.zeros(2, 3)
    assert x.nelement() == 6 and x.ndimension() == 2
    assert x.is_floating_point() and not pve.tensor([1]).is_floating_point()
    assert not x.is_complex() and not pve.is_complex(x) and pve.is_floating_point(x)
    assert pve.tensor([1.7, -2.2]).type_as(pve.tensor([1])).tolist() == [1, -2]
    assert pve.tensor([1, 0]).type_as(pve.tensor([True])).dtype == pve.bool_
    assert pve.repeat_interleave(pve.tensor([2, 0, 1])).tolist() == [0, 0, 2]


def test_selection_errors():
    x = pve.zeros(3, 4)
    cases = [
        (lambda: x.narrow(1, 3, 2), RuntimeError, "exceeds dimension size"),
        (lambda: x.narrow(1, -5, 1), IndexError, "start out of range"),
        (lambda: x.narrow(1, 0, -1), RuntimeError, "non-negative"),
        (lambda: x.select(1, 4), IndexError, "out of range"),
        (lambda: pve.tensor(1.0).select(0, 0), IndexError, "0-dim"),
        (lambda: x.movedim((0, 1), (1,)), RuntimeError, "same number of dims"),
        (lambda: x.movedim((0, 0), (1, 0)), RuntimeError, "repeated dim"),
        (lambda: x.unflatten(1, (3, -1)), RuntimeError, "don't multiply up"),
        (lambda: x.unflatten(1, ()), RuntimeError, "non-empty"),
        (lambda: x.take(pve.tensor([12])), IndexError, "out of range"),
        (lambda: x.take(pve.tensor([1.0])), RuntimeError, "long tensor"),
        (lambda: x.take_along_dim(pve.tensor([0]), 1), RuntimeError, "number of dimensions"),
        (lambda: x.masked_select(pve.tensor([1, 0, 1, 0])), RuntimeError, "BoolTensor"),
        (lambda: x.masked_select(pve.tensor([True, False])), RuntimeError, "size of tensor"),
        (lambda: x.tensor_split(0), RuntimeError, "larger than 0"),
        (lambda: x.split_with_sizes([1, 2], 1), RuntimeError, "sum exactly"),
        (lambda: x.repeat_interleave(pve.tensor([1, 2]), dim=0), RuntimeError, "same size"),
        (lambda: x.repeat_interleave(-1), RuntimeError, "non-negative"),
        (lambda: x.unfold(1, 5, 1), RuntimeError, "maximum size"),
        (lambda: x.unfold(1, 2, 0), RuntimeError, "step is 0"),
        (lambda: x.broadcast_to((3,)), RuntimeError, "number of sizes"),
    ]
    for fn, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            fn()


# ------------------------------------------------------------ index_* / scatter_*
def scatter_reduce_ref(base, dim, index, src, reduce, include_self=True):
    """A loop over index's elements (float64), torch's documented semantics."""
    out = base.copy()
    groups = {}
    for pos in np.ndindex(*index.shape):
        target = list(pos)
        target[dim] = index[pos]
        groups.setdefault(tuple(target), []).append(src[pos])
    for target, values in groups.items():
        values = ([base[target]] if include_self else []) + values
        out[target] = {"sum": np.sum, "prod": np.prod, "mean": np.mean, "amax": np.max,
                       "amin": np.min}[reduce](values)
    return out


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_values_and_gradients(reduce, include_self):
    base = rng.uniform(0.5, 2.0, (3, 4)) * rng.choice([-1, 1], (3, 4))
    src = rng.uniform(0.5, 2.0, (2, 5)) * rng.choice([-1, 1], (2, 5))
    index = np.array([[0, 1, 2, 0], [0, 0, 2, 1]])  # index smaller than src: src's rest unused
    check(lambda b, s: b.scatter_reduce(0, pve.tensor(index), s, reduce, include_self=include_self),
          lambda b, s: scatter_reduce_ref(b, 0, index, s, reduce, include_self), base, src)
    check(lambda b, s: pve.scatter_reduce(b, 1, pve.tensor(index[:, :3]), s, reduce=reduce,
                                          include_self=include_self),
          lambda b, s: scatter_reduce_ref(b, 1, index[:, :3], s, reduce, include_self), base, src)


def test_scatter_reduce_integer_mean_rounds_down_and_amax_ties_split():
    out = pve.tensor([5, -5]).scatter_reduce(0, pve.tensor([0, 0, 1, 1]), pve.tensor([2, 2, 2, 2]), "mean")
    assert out.tolist() == [3, -1]  # (5 + 4) / 3 = 3, floor((-5 + 4) / 3) = -1
    base = pve.tensor([1.0, 0.0], requires_grad=True)
    src = pve.tensor([1.0, 1.0, 0.5], requires_grad=True)
    base.scatter_reduce(0, pve.tensor([0, 0, 1]), src, "amax").sum().backward()
    assert base.grad.tolist() == pytest.approx([1 / 3, 0.0])  # three-way tie at 1.0
    assert src.grad.tolist() == pytest.approx([1 / 3, 1 / 3, 1.0])
    base = pve.tensor([2.0, 3.0], requires_grad=True)
    src = pve.tensor([0.0, 4.0, 0.0, 0.0], requires_grad=True)
    base.scatter_reduce(0, pve.tensor([0, 0, 1, 1]), src, "prod").sum().backward()
    # one zero: the others' product; two zeros: 0
    assert base.grad.tolist() == [0.0, 0.0] and src.grad.tolist() == [8.0, 0.0, 0.0, 0.0]


def test_index_add_copy_fill_scatter_add_values_and_gradients():
    base, src = randn(4, 3), randn(4, 2)
    idx = np.array([2, 0])
    rep = np.array([1, 1])

    def add_ref(b, s, index, alpha=1.0):
        out = b.copy()
        np.add.at(out, (slice(None), index), alpha * s)
        return out
    check(lambda b, s: b.index_add(1, pve.tensor(idx), s), lambda b, s: add_ref(b, s, idx), base, src)
    check(lambda b, s: pve.index_add(b, -1, pve.tensor(rep), s, alpha=2.5),
          lambda b, s: add_ref(b, s, rep, 2.5), base, src)

    def copy_ref(b, s):
        out = b.copy()
        out[:, idx] = s
        return out
    check(lambda b, s: b.index_copy(1, pve.tensor(idx), s), copy_ref, base, src)

    def fill_ref(b, v):
        out = b.copy()
        out[[3, 1]] = v
        return out
    check(lambda b, v: b.index_fill(0, pve.tensor([3, 1]), v), fill_ref, base, np.array(0.7))
    assert pve.zeros(2, 2).index_fill(1, pve.tensor([1]), -1.0).tolist() == [[0, -1], [0, -1]]
    sidx = rng.integers(0, 4, (3, 3))

    def sadd_ref(b, s):
        out = b.copy()
        for pos in np.ndindex(*sidx.shape):
            out[sidx[pos], pos[1]] += s[pos]
        return out
    check(lambda b, s: b.scatter_add(0, pve.tensor(sidx), s), sadd_ref, base, randn(3, 3))


INDEX_INPLACE = [
    ("index_add_", lambda t: t.index_add_(0, pve.tensor([1, 1]), pve.ones(2, 3), alpha=2)),
    ("index_copy_", lambda t: t.index_copy_(0, pve.tensor([2, 0]), pve.ones(2, 3))),
    ("index_fill_", lambda t: t.index_fill_(1, pve.tensor([0]), 5.0)),
    ("scatter_add_", lambda t: t.scatter_add_(0, pve.tensor([[0, 1, 2]]), pve.ones(1, 3))),
    ("scatter_reduce_", lambda t: t.scatter_reduce_(0, pve.tensor([[0, 0, 0]]), pve.ones(1, 3) * 9,
                                                    "amax")),
]


@pytest.mark.parametrize("name,call", INDEX_INPLACE)
def test_index_inplace_forms(name, call):
    expected = call(pve.zeros(3, 3).clone())  # (self returned: compare with the method's own form)
    out_of_place = getattr(pve.zeros(3, 3), name[:-1])
    assert out_of_place is not None
    t = pve.zeros(3, 3)
    v = t._version
    assert call(t) is t and t._version == v + 1
    np.testing.assert_array_equal(t.numpy(), expected.numpy())


def test_scatter_reduce_add_multiply_form():
    out = pve.ones(3).scatter(0, pve.tensor([0, 0]), 2.0, reduce="multiply")
    assert out.tolist() == [4.0, 1.0, 1.0]
    with pytest.warns(UserWarning, match="deprecated"):
        out = pve.ones(2, 2).scatter(1, pve.tensor([[1], [1]]), pve.ones(2, 1), reduce="add")
    assert out.tolist() == [[1.0, 2.0], [1.0, 2.0]]
    x = pve.ones(3, requires_grad=True)
    y = x.scatter(0, pve.tensor([1]), 3.0, reduce="add")
    with pytest.raises(RuntimeError, match="derivative for aten::scatter"):
        y.sum().backward()


def test_index_and_scatter_errors():
    x = pve.ones(3)
    cases = [
        (lambda: x.index_add(0, pve.tensor([0, 3]), pve.ones(2)), IndexError, "out of bounds"),
        (lambda: x.index_add(0, pve.tensor([0, 1]), pve.ones(3)), RuntimeError, "Number of indices"),
        (lambda: x.index_add(0, pve.tensor([0.0]), pve.ones(1)), RuntimeError, "int32/int64"),
        (lambda: x.index_add(0, pve.tensor([0]), pve.ones(1, dtype=pve.int64)), RuntimeError,
         "same scalar type"),
        (lambda: x.index_fill(0, pve.tensor([5]), 1.0), IndexError, "out of bounds"),
        (lambda: x.index_fill(0, pve.tensor([0]), pve.ones(2)), RuntimeError, "0-dimensional"),
        (lambda: x.index_copy(0, pve.tensor([0]), pve.ones(2)), IndexError, "Number of indices"),
        (lambda: x.index_copy(0, pve.tensor([[0]]), pve.ones(1)), IndexError, "dimension 1 or 0"),
        (lambda: x.scatter_reduce(0, pve.tensor([0]), pve.ones(1), "bad"), RuntimeError, "sum, prod"),
        (lambda: x.scatter_reduce(0, pve.tensor([3]), pve.ones(1), "sum"), RuntimeError, "out of bounds"),
        (lambda: x.scatter_reduce(0, pve.tensor([0]), pve.ones(1, dtype=pve.int64), "sum"),
         RuntimeError, "dtype"),
        (lambda: x.scatter(0, pve.tensor([0]), 1.0, reduce="sum"), RuntimeError, "add or multiply"),
    ]
    for fn, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            fn()


# ------------------------------------------------------------ reductions and scans
def cumprod_ref(a, axis):
    return np.cumprod(a, axis=axis)


@pytest.mark.parametrize("zeros", [0, 1, 2])
def test_cumprod_values_and_gradients_with_zeros(zeros):
    x = rng.uniform(0.5, 1.5, (3, 6)) * rng.choice([-1, 1], (3, 6))
    for z in range(zeros):
        x[:, 1 + 3 * z] = 0.0  # finite differences are exact through a zero (polynomial)
    check(lambda t: t.cumprod(1), lambda a: cumprod_ref(a, 1), x)
    check(lambda t: pve.cumprod(t, dim=0), lambda a: cumprod_ref(a, 0), x)
    assert pve.tensor([2, 3]).cumprod(0).dtype == pve.int64


def test_cummax_cummin_values_indices_and_gradients():
    x = np.array([[1.0, 3.0, 3.0, 2.0, 5.0], [4.0, 1.0, 0.0, 5.0, 5.0]])
    out = pve.tensor(x).cummax(1)
    np.testing.assert_array_equal(out.values.numpy(), np.maximum.accumulate(x, 1))
    assert out.indices.tolist() == [[0, 1, 2, 2, 4], [0, 0, 0, 3, 4]]  # the last of equals
    out = pve.cummin(pve.tensor(x), 1)
    np.testing.assert_array_equal(out.values.numpy(), np.minimum.accumulate(x, 1))
    assert out.indices.tolist() == [[0, 0, 0, 0, 0], [0, 1, 2, 2, 2]]
    nan_out = pve.tensor([1.0, np.nan, 3.0]).cummax(0)
    assert np.isnan(nan_out.values.numpy()[1:]).all() and nan_out.indices.tolist() == [0, 1, 1]
    y = randn(3, 5)  # distinct values: the gradient of the running max is a sum of selections
    check(lambda t: t.cummax(1).values, lambda a: np.maximum.accumulate(a, 1), y)
    check(lambda t: t.cummin(0).values, lambda a: np.minimum.accumulate(a, 0), y)


def test_logcumsumexp_values_and_gradients():
    x = randn(3, 6) * 3
    check(lambda t: t.logcumsumexp(1), lambda a: np.logaddexp.accumulate(a, 1), x)
    check(lambda t: pve.logcumsumexp(t, 0), lambda a: np.logaddexp.accumulate(a, 0), x)
    big = pve.tensor([1000.0, 1000.0])
    np.testing.assert_allclose(big.logcumsumexp(0).numpy(), [1000.0, 1000.0 + math.log(2)])


def test_count_nonzero_aminmax_nansum_nanmean_var_mean():
    x = np.array([[1.0, 0.0, np.nan], [0.0, 2.0, 3.0]])
    t = pve.tensor(x)
    assert pve.count_nonzero(t).item() == 4 and t.count_nonzero(0).tolist() == [1, 1, 2]
    assert t.count_nonzero((0, 1)).dtype == pve.int64
    lo, hi = pve.aminmax(pve.tensor([[1.0, 5.0], [-2.0, 3.0]]), dim=1)
    assert lo.tolist() == [1.0, -2.0] and hi.tolist() == [5.0, 3.0]
    assert pve.nansum(t).item() == 6.0 and t.nansum(1).tolist() == [1.0, 5.0]
    np.testing.assert_allclose(t.nanmean(1).numpy(), np.nanmean(x, 1))
    clean = randn(3, 4)
    check(lambda a: pve.nansum(a, 1), lambda a: np.nansum(a, 1), clean)
    check(lambda a: pve.nanmean(a, 0), lambda a: np.nanmean(a, 0), clean)
    grad_in = pve.tensor(x, requires_grad=True)
    grad_in.nanmean().backward()
    np.testing.assert_allclose(grad_in.grad.numpy(), np.where(np.isnan(x), 0, 1 / 5))  # 5 non-NaN
    v, m = pve.var_mean(pve.tensor(clean), 1)
    np.testing.assert_allclose(v.numpy(), clean.var(1, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(m.numpy(), clean.mean(1), rtol=1e-5)
    s, m = pve.std_mean(pve.tensor(clean), dim=0, correction=0, keepdim=True)
    np.testing.assert_allclose(s.numpy(), clean.std(0, keepdims=True), rtol=1e-5)
    assert m.shape == (1, 4)
    assert pve.all(pve.tensor([[1, 0], [1, 1]]), dim=1).tolist() == [False, True]
    assert pve.any(pve.tensor([[1.0, 0.0], [0.0, 0.0]]), 1, keepdim=True).tolist() == [[True], [False]]


def test_diff_and_trace():
    x = randn(3, 5)
    check(lambda t: t.diff(), lambda a: np.diff(a), x)
    check(lambda t: pve.diff(t, n=2, dim=0), lambda a: np.diff(a, 2, 0), x)
    pre, app = randn(3, 1), randn(3, 2)
    check(lambda t, p, q: t.diff(dim=1, prepend=p, append=q),
          lambda a, p, q: np.diff(a, 1, 1, prepend=p, append=q), x, pre, app)
    assert pve.diff(pve.tensor([1, 4, 9]), n=2).tolist() == [2]
    assert pve.diff(pve.tensor([True, False, False])).tolist() == [True, False]
    check(pve.trace, np.trace, randn(3, 4))
    assert pve.trace(pve.arange(6).reshape(2, 3)).item() == 4


def test_median_nanmedian_kthvalue():
    x = randn(4, 6)
    lower = lambda a, axis=None: np.sort(a, axis=axis).take((a.shape[axis] - 1) // 2, axis=axis) \
        if axis is not None else np.sort(a.ravel())[(a.size - 1) // 2]  # noqa: E731
    check(lambda t: t.median(), lambda a: lower(a), x)
    check(lambda t: pve.median(t, 1).values, lambda a: lower(a, 1), x)
    check(lambda t: t.median(0, keepdim=True).values, lambda a: np.expand_dims(lower(a, 0), 0), x)
    check(lambda t: t.kthvalue(2, 1).values, lambda a: np.sort(a, 1)[:, 1], x)
    med = pve.tensor(x).median(1)
    np.testing.assert_array_equal(np.take_along_axis(x.astype(np.float32), med.indices.numpy()[:, None], 1)[:, 0],
                                  med.values.numpy())
    assert pve.tensor([1.0, 4.0, 2.0, 3.0]).median().item() == 2.0  # the lower of 2 and 3
    assert math.isnan(pve.tensor([1.0, np.nan, 2.0]).median().item())
    assert pve.tensor([1.0, np.nan, 2.0, 5.0]).nanmedian().item() == 2.0
    rows = pve.tensor([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]])
    nm = rows.nanmedian(1)
    assert nm.values.tolist()[0] == 1.0 and math.isnan(nm.values.tolist()[1])
    m = rows.median(1)
    assert math.isnan(m.values.tolist()[0]) and m.indices.tolist()[0] == 1
    tie = pve.tensor([2.0, 1.0, 2.0, 3.0, 2.0], requires_grad=True)
    tie.median().backward()
    assert tie.grad.tolist() == pytest.approx([1 / 3, 0, 1 / 3, 0, 1 / 3])  # split among equals


def test_reduction_errors():
    cases = [
        (lambda: pve.diff(pve.tensor(1.0)), RuntimeError, "one-dimensional"),
        (lambda: pve.trace(pve.ones(3)), RuntimeError, "matrix"),
        (lambda: pve.trace(pve.tensor([[True]])), NotImplementedError, "Bool"),
        (lambda: pve.ones(3).kthvalue(4), RuntimeError, "out of range"),
        (lambda: pve.ones(3).cumprod(1), IndexError, "out of range"),
        (lambda: pve.tensor([1, 2]).logcumsumexp(0), NotImplementedError, "Long"),
        (lambda: pve.tensor([1, 2]).nanmean(), RuntimeError, "floating point"),
        (lambda: pve.ones(0, 2).median(0), IndexError, "non-zero size"),
        (lambda: pve.aminmax(pve.ones(0)), RuntimeError, "empty"),
    ]
    for fn, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            fn()


# ------------------------------------------------------------ unique, counting, searching
def test_unique_and_unique_consecutive():
    a = np.array([3, 1, 2, 3, 1, 1])
    values, inverse, counts = pve.unique(pve.tensor(a), return_inverse=True, return_counts=True)
    ref_v, ref_i, ref_c = np.unique(a, return_inverse=True, return_counts=True)
    assert values.tolist() == ref_v.tolist() and inverse.tolist() == ref_i.tolist()
    assert counts.tolist() == ref_c.tolist() and values.dtype == pve.int64
    assert pve.tensor(a).unique().tolist() == [1, 2, 3]
    m = np.array([[1, 2], [1, 2], [0, 5]])
    v, i = pve.unique(pve.tensor(m), dim=0, return_inverse=True)
    assert v.tolist() == [[0, 5], [1, 2]] and i.tolist() == [1, 1, 0]
    with_nan = pve.unique(pve.tensor([1.0, np.nan, np.nan, 2.0])).numpy()
    assert with_nan[:2].tolist() == [1.0, 2.0] and np.isnan(with_nan[2:]).all()  # NaNs distinct
    runs = pve.tensor([1, 1, 2, 2, 3, 1, 1])
    v, i, c = runs.unique_consecutive(return_inverse=True, return_counts=True)
    assert v.tolist() == [1, 2, 3, 1] and i.tolist() == [0, 0, 1, 1, 2, 3, 3] and c.tolist() == [2, 2, 1, 2]
    assert pve.unique_consecutive(pve.tensor([[1, 1], [1, 1], [2, 3]]), dim=0).tolist() == [[1, 1], [2, 3]]


def test_bincount_and_histc():
    a = rng.integers(0, 6, 50)
    assert pve.bincount(pve.tensor(a)).tolist() == np.bincount(a).tolist()
    w = rng.standard_normal(50)
    np.testing.assert_allclose(pve.tensor(a).bincount(pve.tensor(w.astype(np.float32))).numpy(),
                               np.bincount(a, w), rtol=1e-5, atol=1e-6)
    assert pve.bincount(pve.tensor([1]), minlength=4).tolist() == [0, 1, 0, 0]
    x = rng.uniform(-1, 4, 200)
    ref, _ = np.histogram(x, bins=5, range=(0, 3))
    assert pve.histc(pve.tensor(x.astype(np.float32)), bins=5, min=0, max=3).tolist() == ref.tolist()
    ref, _ = np.histogram(x, bins=7)
    assert pve.tensor(x.astype(np.float32)).histc(7).tolist() == ref.tolist()  # the data's range
    assert pve.histc(pve.tensor([1.0, 1.0]), bins=3).tolist() == [0.0, 2.0, 0.0]


def test_searchsorted_and_bucketize():
    b = np.array([1.0, 2.0, 2.0, 3.0])
    v = np.array([2.0, 0.0, 5.0, 2.5])
    assert pve.searchsorted(pve.tensor(b), pve.tensor(v)).tolist() == np.searchsorted(b, v).tolist()
    assert pve.searchsorted(pve.tensor(b), pve.tensor(v), right=True).tolist() == \
        np.searchsorted(b, v, "right").tolist()
    assert pve.searchsorted(pve.tensor(b), pve.tensor(v), side="right").tolist() == \
        np.searchsorted(b, v, "right").tolist()
    rows = pve.searchsorted(pve.tensor([[1.0, 2.0], [3.0, 4.0]]), pve.tensor([[2.0], [2.0]]), side="right")
    assert rows.tolist() == [[2], [0]]
    assert pve.searchsorted(pve.tensor([3.0, 1.0, 2.0]), pve.tensor([2.0]),
                            sorter=pve.tensor([1, 2, 0])).tolist() == [1]
    assert pve.searchsorted(pve.tensor([1, 2, 3]), 2).item() == 1
    assert pve.bucketize(pve.tensor([[2.0, 0.0], [5.0, 1.0]]), pve.tensor([1.0, 2.0, 3.0])).tolist() == [[1, 0], [3, 0]]
    assert pve.bucketize(pve.tensor([2.0]), pve.tensor([1.0, 2.0, 3.0]), right=True).tolist() == [2]


@pytest.mark.parametrize("interpolation", ["linear", "lower", "higher", "midpoint", "nearest"])
def test_quantile_values_and_gradients(interpolation):
    x = randn(3, 7)
    q = [0.0, 0.3, 0.5, 0.9, 1.0]
    check(lambda t: pve.quantile(t, pve.tensor(q), dim=1, interpolation=interpolation),
          lambda a: np.quantile(a, q, axis=1, method=interpolation), x)
    check(lambda t: t.quantile(0.4, interpolation=interpolation),
          lambda a: np.quantile(a, 0.4, method=interpolation), x)
    check(lambda t: t.nanquantile(0.65, dim=0, keepdim=True, interpolation=interpolation),
          lambda a: np.quantile(a, 0.65, axis=0, keepdims=True, method=interpolation), x)
    y = x.copy()
    y[0, 2] = np.nan
    np.testing.assert_allclose(pve.nanquantile(pve.tensor(y.astype(np.float32)), 0.3, dim=1,
                                               interpolation=interpolation).numpy(),
                               np.nanquantile(y.astype(np.float32).astype(np.float64), 0.3, axis=1,
                                              method=interpolation), rtol=1e-5)
    out = pve.quantile(pve.tensor(y.astype(np.float32)), 0.3, dim=1).numpy()
    assert np.isnan(out[0]) and not np.isnan(out[1:]).any()


def test_counting_and_quantile_errors():
    cases = [
        (lambda: pve.bincount(pve.tensor([-1])), RuntimeError, "non-negative"),
        (lambda: pve.bincount(pve.tensor([1.0])), NotImplementedError, "Float"),
        (lambda: pve.bincount(pve.tensor([1]), minlength=-1), RuntimeError, "minlength"),
        (lambda: pve.bincount(pve.tensor([1, 2]), weights=pve.ones(3)), RuntimeError, "same length"),
        (lambda: pve.histc(pve.tensor([1, 2])), NotImplementedError, "Long"),
        (lambda: pve.histc(pve.tensor([1.0]), bins=0), RuntimeError, "bins must be > 0"),
        (lambda: pve.histc(pve.tensor([1.0]), min=2, max=1), RuntimeError, "larger than min"),
        (lambda: pve.searchsorted(pve.tensor([1.0]), pve.tensor([1.0]), side="left", right=True),
         RuntimeError, "opposites"),
        (lambda: pve.searchsorted(pve.tensor([[1.0, 2.0]]), pve.tensor([1.0, 2.0])), RuntimeError,
         "boundaries tensor"),
        (lambda: pve.quantile(pve.tensor([1.0, 2.0]), 1.5), RuntimeError, r"range \[0, 1\]"),
        (lambda: pve.quantile(pve.tensor([1, 2]), 0.5), RuntimeError, "float or double"),
        (lambda: pve.quantile(pve.tensor([1.0]), 0.5, interpolation="bad"), RuntimeError, "interpolation"),
        (lambda: pve.quantile(pve.tensor([]), 0.5), RuntimeError, "non-empty"),
    ]
    for fn, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            fn()


def test_empty_and_zero_dim_inputs():
    empty = pve.zeros(0, 3)
    out = empty.cummax(0)
    assert out.values.shape == (0, 3) and out.indices.dtype == pve.int64
    assert pve.zeros(0).diff().shape == (0,)
    assert pve.tensor(1.5).masked_select(pve.tensor(True)).tolist() == [1.5]
    assert pve.zeros(0).cumprod(0).shape == (0,)
    with pytest.raises(RuntimeError, match="not finite"):
        pve.tensor([np.nan, 1.0]).histc(3)
    with pytest.raises(RuntimeError, match="1-dimensional"):
        pve.tensor(1.0).tensor_split(2)
    with pytest.raises(IndexError, match="non-zero size"):
        pve.zeros(0).kthvalue(1)
