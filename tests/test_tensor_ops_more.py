"""More of torch's tensor API (element-wise math, reductions, gather/scatter, rearrangements,
factories, in-place forms) against independent references: plain numpy in float64 for
values, float64 finite differences for every gradient, and torch's documented conventions
(ties, zeros, NaN) spelled out as expected values. torch itself: the _torch_parity file."""

import math

import numpy as np
import pytest

import pyvision_engine as pve
from tensor_helpers import check_values_and_grads

rng = np.random.default_rng(2024)


def check(pve_fn, np_fn, *arrays, rtol=1e-4, atol=1e-5):
    check_values_and_grads(pve_fn, np_fn, *arrays, rng=rng, rtol=rtol, atol=atol)


def randn(*shape):
    return rng.standard_normal(shape)


def positive(*shape):
    return np.abs(rng.standard_normal(shape)) + 0.5


# ------------------------------------------------------------- element-wise
erf64 = np.vectorize(math.erf)


@pytest.mark.parametrize("name,pve_fn,np_fn,make", [
    ("sign", lambda a: a.sign() * a, lambda a: np.sign(a) * a, randn),
    ("floor", lambda a: pve.floor(a) + a, lambda a: np.floor(a) + a, randn),
    ("ceil", lambda a: a.ceil() * a, lambda a: np.ceil(a) * a, randn),
    ("round", lambda a: a.round() + a * 2, lambda a: np.round(a) + a * 2, randn),
    ("round_decimals", lambda a: pve.round(a, decimals=1) - a, lambda a: np.round(a, 1) - a, randn),
    ("reciprocal", pve.reciprocal, lambda a: 1 / a, positive),
    ("rsqrt", lambda a: a.rsqrt(), lambda a: 1 / np.sqrt(a), positive),
    ("square", pve.square, np.square, randn),
    ("erf", lambda a: a.erf(), erf64, randn),
    ("sin", pve.sin, np.sin, randn),
    ("cos", lambda a: a.cos(), np.cos, randn),
    ("pow_scalar", lambda a: pve.pow(a, 2.5), lambda a: a ** 2.5, positive),
    ("rpow_scalar", lambda a: pve.pow(1.7, a), lambda a: 1.7 ** a, randn),
])
def test_unary_values_and_gradients(name, pve_fn, np_fn, make):
    check(pve_fn, np_fn, make(3, 4))


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 1, 4), (3, 1)), ((4,), (2, 4))])
def test_binary_values_and_gradients_broadcast(shapes):
    a, b = randn(*shapes[0]), randn(*shapes[1])
    check(pve.maximum, np.maximum, a, b)
    check(lambda x, y: x.minimum(y), np.minimum, a, b)
    check(pve.pow, np.power, np.abs(a) + 0.5, b)
    check(lambda x, y: pve.clamp_min(x, y), np.maximum, a, b)
    check(lambda x, y: x.clamp_max(y), np.minimum, a, b)
    check(lambda x, y: pve.where(x > y, x, y * 2), lambda x, y: np.where(x > y, x, y * 2), a, b)
    check(lambda x, y: x.where(y > 0, 0.5), lambda x, y: np.where(y > 0, x, 0.5), a, b)


def test_clamp_with_tensor_bounds_gives_the_bounds_their_gradient():
    lo, hi = randn(4) - 1, randn(3, 1) + 1
    check(lambda x, a, b: pve.clamp(x, a, b), lambda x, a, b: np.minimum(np.maximum(x, a), b),
          randn(3, 4), lo, hi)


def test_lerp_tensor_and_scalar_weights():
    ref = lambda a, b, w: a + w * (b - a)  # noqa: E731
    check(pve.lerp, ref, randn(2, 3), randn(3), rng.uniform(-0.5, 1.5, (2, 1)))
    check(lambda a, b: a.lerp(b, 0.75), lambda a, b: ref(a, b, 0.75), randn(4), randn(4))
    # |w| >= 0.5 uses end - (end - start) * (1 - w): lerp(a, b, 1) is b exactly
    a, b = pve.tensor([1e8, -3.3]), pve.tensor([0.1, 7.7])
    assert np.array_equal(pve.lerp(a, b, 1.0).numpy(), b.numpy())


# --------------------------------------------------------------- reductions
@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, True), (-1, False)])
def test_prod_cumsum(dim, keepdim):
    x = randn(3, 4)
    check(lambda a: a.prod(dim, keepdim), lambda a: np.prod(a, axis=dim, keepdims=keepdim), x)
    with_zeros = x.copy()
    with_zeros[1, 2] = 0.0
    with_zeros[2, 1:3] = 0.0  # one zero in some slices, two in others
    check(lambda a: pve.prod(a, dim, keepdim), lambda a: np.prod(a, axis=dim, keepdims=keepdim),
          with_zeros)
    if dim is not None:
        check(lambda a: pve.cumsum(a, dim), lambda a: np.cumsum(a, axis=dim), x)


@pytest.mark.parametrize("dim,keepdim", [((), False), (0, True), ((0, 2), False), (-1, True)])
def test_amax_amin_logsumexp(dim, keepdim):
    axis = None if dim == () else dim
    x = randn(2, 3, 4)
    check(lambda a: a.amax(dim, keepdim), lambda a: np.amax(a, axis=axis, keepdims=keepdim), x)
    check(lambda a: pve.amin(a, dim, keepdim), lambda a: np.amin(a, axis=axis, keepdims=keepdim), x)

    def lse(a):
        m = np.amax(a, axis=axis, keepdims=True)
        out = np.log(np.exp(a - m).sum(axis=axis, keepdims=True)) + m
        return out if keepdim else (out.reshape(()) if axis is None else np.squeeze(out, axis))
    check(lambda a: pve.logsumexp(a, dim, keepdim), lse, x * 30)  # (large values: shifted)


@pytest.mark.parametrize("kwargs,ddof", [({}, 1), ({"unbiased": False}, 0), ({"correction": 2}, 2),
                                         ({"dim": 1, "keepdim": True}, 1), ({"dim": (0, 1)}, 1)])
def test_var_std_top_level(kwargs, ddof):
    axis = kwargs.get("dim")
    keep = kwargs.get("keepdim", False)
    x = randn(3, 5)
    check(lambda a: pve.var(a, **kwargs), lambda a: a.var(axis=axis, ddof=ddof, keepdims=keep), x)
    check(lambda a: pve.std(a, **kwargs), lambda a: a.std(axis=axis, ddof=ddof, keepdims=keep), x)


@pytest.mark.parametrize("p", [2, "fro", 1, 3, 0.5, float("inf"), -float("inf")])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (1, True), ((0, 1), False)])
def test_norm_values_and_gradients(p, dim, keepdim):
    axis = tuple(dim) if isinstance(dim, tuple) else dim
    q = 2 if p == "fro" else p

    def ref(a):
        m = np.abs(a)
        if math.isinf(q):
            return (np.amax if q > 0 else np.amin)(m, axis=axis, keepdims=keepdim)
        return (m ** q).sum(axis=axis, keepdims=keepdim) ** (1 / q)
    check(lambda a: pve.norm(a, p, dim, keepdim), ref, randn(3, 4))


# ------------------------------------------- gather, scatter, rearrangements
def test_gather_index_select_scatter():
    x = randn(3, 4)
    index = np.array([[0, 0, 3], [2, 1, 1]])  # repeats: their gradients add up
    check(lambda a: pve.gather(a, 1, pve.tensor(index)),
          lambda a: np.take_along_axis(a[:2], index, axis=1), x)
    check(lambda a: a.gather(0, pve.tensor(index[:, :2] % 3)),
          lambda a: np.take_along_axis(a[:, :2], index[:, :2] % 3, axis=0), x)
    check(lambda a: pve.index_select(a, 1, pve.tensor([3, 0, 3])), lambda a: a[:, [3, 0, 3]], x)
    check(lambda a: a.index_select(0, pve.tensor(2)), lambda a: a[[2]], x)

    rows = np.array([[1, 0, 2, 2], [0, 2, 1, 0]])  # distinct per column

    def scatter_ref(a, s):
        out = a.copy()
        for i in range(rows.shape[0]):
            for j in range(rows.shape[1]):
                out[rows[i, j], j] = s[i, j]
        return out
    check(lambda a, s: a.scatter(0, pve.tensor(rows), s), scatter_ref, x, randn(2, 4))
    check(lambda a: pve.scatter(a, 0, pve.tensor(rows), value=2.5),
          lambda a: scatter_ref(a, np.full((2, 4), 2.5)), x)


def test_scatter_with_a_src_larger_than_index_gives_its_extra_part_zero_gradient():
    src = pve.tensor(randn(2, 5).astype(np.float32), requires_grad=True)
    out = pve.zeros(3, 4).scatter(1, pve.tensor([[1, 3]]), src)
    out.sum().backward()
    expected = np.zeros((2, 5), np.float32)
    expected[0, :2] = 1
    np.testing.assert_array_equal(src.grad.numpy(), expected)


def test_rearrangements():
    x = randn(3, 4)
    check(lambda a: a.flip(0, 1), lambda a: a[::-1, ::-1], x)
    check(lambda a: pve.flip(a, (1,)), lambda a: a[:, ::-1], x)
    check(lambda a: pve.roll(a, (1, -2), (0, 1)), lambda a: np.roll(a, (1, -2), (0, 1)), x)
    check(lambda a: a.roll(5), lambda a: np.roll(a, 5), x)
    check(lambda a: pve.tril(a, -1), lambda a: np.tril(a, -1), x)
    check(lambda a: a.triu(1), lambda a: np.triu(a, 1), randn(2, 3, 4))
    check(lambda a: pve.diag(a, 1), lambda a: np.diag(a, 1), x)
    check(lambda a: a.diag(-1), lambda a: np.diag(a, -1), randn(3))
    check(lambda a: pve.stack(pve.unbind(a, 1)[::-1]), lambda a: np.stack(list(a.T)[::-1]), x)
    check(lambda a: a.mT, lambda a: np.swapaxes(a, -1, -2), randn(2, 3, 4))
    check(pve.outer, np.outer, randn(3), randn(4))
    check(lambda a, b: pve.dot(a, b), np.dot, randn(5), randn(5))
    check(lambda a: a.masked_fill(a > 0.3, 1.5), lambda a: np.where(a > 0.3, 1.5, a), x)
    check(lambda a, v: pve.masked_fill(a, a < 0, v), lambda a, v: np.where(a < 0, v, a), x,
          np.float64(0.25))


# ------------------------------------------ torch's conventions at ties etc.
def grad_of(fn, values, **kw):
    t = pve.tensor(np.asarray(values, np.float32), requires_grad=True)
    fn(t, **kw).sum().backward()
    return t.grad.numpy()


nan, inf = float("nan"), float("inf")


def test_gradient_conventions_at_ties_zeros_and_nan():
    # amax spreads over ties; a NaN result makes its slice's gradient NaN
    np.testing.assert_array_equal(grad_of(lambda t: t.amax(1), [[1, 3, 3], [2, 1, 1]]),
                                  [[0, 0.5, 0.5], [1, 0, 0]])
    np.testing.assert_array_equal(grad_of(lambda t: t.amin(0), [[1, nan], [1, 2]]),
                                  [[0.5, nan], [0.5, nan]])
    # max(dim) sends the gradient to the returned index
    np.testing.assert_array_equal(grad_of(lambda t: t.max(0).values, [1, 3, 3]), [0, 1, 0])
    # maximum / minimum: ties split, NaN pairs give both the whole gradient
    a = pve.tensor([1.0, nan, 2.0, nan, 3.0], requires_grad=True)
    b = pve.tensor([1.0, 2.0, nan, nan, 0.0], requires_grad=True)
    pve.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 1, 1, 1, 1])
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, 1, 1, 1, 0])
    # clamp passes the gradient at the boundary; a tensor bound gets it where it wins
    x = pve.tensor([0.0, 1, 2, 3, 5], requires_grad=True)
    lo = pve.tensor([1.0, 1, 1, 4, 6], requires_grad=True)
    hi = pve.tensor([2.0, 2, 2, 2, 4], requires_grad=True)
    pve.clamp(x, lo, hi).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 0, 0])
    np.testing.assert_array_equal(lo.grad.numpy(), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(hi.grad.numpy(), [0, 0, 0, 1, 1])
    # piecewise-constant ops: zero gradient; sign(NaN) is 0
    for fn in (pve.sign, pve.floor, pve.ceil, pve.round):
        np.testing.assert_array_equal(grad_of(fn, [0.5, -1.5, 2.0]), [0, 0, 0])
    np.testing.assert_array_equal(pve.sign(pve.tensor([nan, -0.0, 2.0, -3.0])).numpy(),
                                  [0, 0, 1, -1])
    # norms: zero gradient at a zero norm, inf-norm ties share it, p=0 has none
    np.testing.assert_array_equal(grad_of(pve.norm, [0.0, 0.0]), [0, 0])
    np.testing.assert_array_equal(grad_of(lambda t: t.norm(3), [0.0, 0.0]), [0, 0])
    np.testing.assert_array_equal(grad_of(lambda t: t.norm(inf), [1.0, -3.0, 3.0]), [0, -0.5, 0.5])
    t = pve.tensor([1.0, 0.0, 2.0], requires_grad=True)
    t.norm(0).backward()
    assert t.grad is None
    # std of constant values: zero gradient (torch's mask), var's is plain
    np.testing.assert_array_equal(grad_of(pve.std, [1.0, 1.0, 1.0]), [0, 0, 0])
    # prod: a single zero gets the product of the others; two zeros: all zero
    np.testing.assert_array_equal(grad_of(pve.prod, [2.0, 0.0, 3.0]), [0, 6, 0])
    np.testing.assert_array_equal(grad_of(pve.prod, [2.0, 0.0, 0.0]), [0, 0, 0])
    # logsumexp with an infinite element: exp(inf - inf) is NaN, as torch's
    np.testing.assert_array_equal(grad_of(lambda t: t.logsumexp(0), [inf, 1.0]), [nan, 0])
    # reciprocal / rsqrt at 0
    np.testing.assert_array_equal(grad_of(pve.rsqrt, [0.0, 4.0]), [-inf, -0.0625])


def test_sort_and_argsort_are_stable_and_put_nan_last_ascending():
    x = pve.tensor([3.0, nan, 1.0, 3.0, 1.0, nan])
    assert pve.argsort(x).tolist() == [2, 4, 0, 3, 1, 5]
    assert x.argsort(descending=True).tolist() == [1, 5, 0, 3, 2, 4]
    ints = pve.tensor([np.iinfo(np.int64).min, 5, 5, -1])  # no negation overflow
    assert pve.argsort(ints, descending=True).tolist() == [1, 2, 3, 0]
    flags = pve.tensor([True, False, True])
    values, indices = pve.sort(flags, descending=True)
    assert values.tolist() == [True, True, False] and indices.tolist() == [0, 2, 1]
    assert pve.topk(pve.tensor([1.0, nan, 2.0]), 2).indices.tolist() == [1, 2]
    # the gradient of sorted values follows the returned indices
    np.testing.assert_array_equal(
        grad_of(lambda t: t.sort().values * pve.tensor([1.0, 2, 3]), [1.0, 1.0, 0.0]), [2, 3, 1])


# ------------------------------------------------------------ dtypes
def test_result_dtypes_for_integer_and_bool_inputs():
    i, b = pve.tensor([3, -2, 0]), pve.tensor([True, False, True])
    assert i.sign().dtype == i.floor().dtype == i.round().dtype == pve.int64
    assert i.square().dtype == b.square().dtype == pve.int64
    for op in (pve.reciprocal, pve.rsqrt, pve.erf, pve.sin, pve.cos):
        assert op(i).dtype == pve.float32
    assert pve.prod(b).dtype == pve.cumsum(b, 0).dtype == pve.int64 and pve.prod(i).item() == 0
    assert pve.amax(b).dtype == pve.bool_ and pve.amax(i).item() == 3
    assert pve.logsumexp(i, 0).dtype == pve.float32
    assert pve.maximum(i, b).dtype == pve.int64 and pve.maximum(i, pve.ones(3)).dtype == pve.float32
    assert pve.where(b, i, 0).dtype == pve.int64 and pve.where(b, i, 0.5).dtype == pve.float32
    assert pve.where(b, 1, 0).dtype == pve.int64 and pve.where(b, 1.0, 0).dtype == pve.float32
    assert pve.nonzero(i).dtype == pve.int64 and pve.isinf(i).dtype == pve.bool_
    assert [t.tolist() for t in pve.where(b)] == [[0, 2]]


# ------------------------------------------------------------ in place
INPLACE_UNARY = ["exp_", "sqrt_", "abs_", "relu_", "sigmoid_", "tanh_"]


@pytest.mark.parametrize("name", INPLACE_UNARY)
def test_inplace_unary_matches_out_of_place(name):
    v = positive(2, 3) * np.sign(randn(2, 3)) if name not in ("sqrt_",) else positive(2, 3)
    a = pve.tensor(v.astype(np.float32), requires_grad=True)
    b = pve.tensor(v.astype(np.float32), requires_grad=True)
    y = a * 2
    same = getattr(y, name)()
    assert same is y and y.grad_fn is not None
    z = getattr(b * 2, name[:-1])()
    np.testing.assert_array_equal(y.detach().numpy(), z.detach().numpy())
    w = pve.tensor(randn(2, 3).astype(np.float32))
    (y * w).sum().backward()
    (z * w).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        getattr(pve.tensor(v.astype(np.float32), requires_grad=True), name)()


def test_inplace_rules():
    # without grad: written into the memory (a numpy view sees it)
    t = pve.tensor([1.0, 4.0])
    view = t.numpy()
    t.sqrt_()
    np.testing.assert_array_equal(view, [1.0, 2.0])
    # float ops refuse integer tensors; abs_ / relu_ keep them
    with pytest.raises(RuntimeError, match="can't be cast"):
        pve.tensor([1, 4]).sqrt_()
    assert pve.tensor([-1, 2]).abs_().tolist() == [1, 2]
    assert pve.tensor([-1, 2]).relu_().tolist() == [0, 2]
    # exp_ saved its result: changing it afterwards is an error in backward, as torch's
    a = pve.tensor([0.5, 1.0], requires_grad=True)
    y = a * 2
    y.exp_()
    y.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    # masked_fill_ / scatter_: values and gradients, mask must fit self's shape
    a = pve.tensor([1.0, -2.0, 3.0], requires_grad=True)
    v = pve.tensor(5.0, requires_grad=True)
    y = (a * 1).masked_fill_(pve.tensor([True, False, True]), v)
    assert y.tolist() == [5.0, -2.0, 5.0]
    (y * pve.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert a.grad.tolist() == [0, 2, 0] and v.grad.item() == 4
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        pve.ones(2).masked_fill_(pve.tensor([[True], [False]]), 0.5)
    s = pve.tensor([[7.0, 8.0]], requires_grad=True)
    base = pve.zeros(2, 3, requires_grad=True)
    y = (base * 1).scatter_(1, pve.tensor([[2, 0]]), s)
    assert y.tolist() == [[8.0, 0.0, 7.0], [0.0, 0.0, 0.0]]
    y.sum().backward()
    assert s.grad.tolist() == [[1, 1]] and base.grad.tolist() == [[0, 1, 0], [1, 1, 1]]


def test_squeeze_unsqueeze_in_place():
    a = pve.tensor(randn(3, 1).astype(np.float32), requires_grad=True)
    y = a * 2
    v0 = y._version
    assert y.squeeze_() is y and y.shape == (3,) and y._version == v0 + 1
    y.unsqueeze_(0)
    assert y.shape == (1, 3)
    (y * pve.tensor([[1.0, 2.0, 3.0]])).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [[2], [4], [6]])
    # a tensor saved by an op, then squeezed in place: torch's version error
    b = a * 1
    z = b * b
    b.squeeze_()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()
    with pytest.raises(RuntimeError, match="leaf Variable"):
        a.squeeze_()
    with pve.no_grad():
        a.squeeze_()
    assert a.shape == (3,)
    with pytest.raises(IndexError):
        pve.ones(3, 1, 2).unsqueeze_(5)


# ------------------------------------------------------ factories, metadata
def test_factories():
    i = pve.tensor([[1, 2]])
    assert pve.full_like(i, 3.5).tolist() == [[3, 3]] and pve.full_like(i, 2, dtype=pve.float32).dtype == pve.float32
    e = pve.empty_like(pve.ones(2, 3))
    assert e.shape == (2, 3) and e.dtype == pve.float32
    pve.manual_seed(7)
    p1 = pve.randperm(10)
    pve.manual_seed(7)
    assert pve.randperm(10).tolist() == p1.tolist() and sorted(p1.tolist()) == list(range(10))
    assert p1.dtype == pve.int64
    np.testing.assert_allclose(pve.linspace(-3, 7.3, 11).numpy(), np.linspace(-3, 7.3, 11), rtol=1e-6)
    assert pve.linspace(0, 1, 1).tolist() == [0.0] and pve.linspace(0, 1, 0).shape == (0,)
    assert pve.linspace(0, 1, 5, dtype=pve.int64).tolist() == [0, 0, 0, 0, 1]
    np.testing.assert_array_equal(pve.eye(2, 3).numpy(), np.eye(2, 3))
    assert pve.eye(2, dtype=pve.int64).dtype == pve.int64
    t = pve.tensor([1.0, 2.0])
    assert t.new_zeros(2, 3).shape == (2, 3) and t.new_ones((2,)).tolist() == [1.0, 1.0]
    assert i.new_full((2,), 1.5).tolist() == [1, 1] and i.new_empty(3).dtype == pve.int64
    assert i.new_tensor([1.5]).tolist() == [1] and t.new_tensor([1, 2]).dtype == pve.float32
    assert t.new_zeros(2, requires_grad=True).requires_grad
    with pytest.warns(UserWarning, match="detach"):
        t.new_tensor(t)


def test_dtype_methods_and_metadata():
    t = pve.tensor([[1.7, -1.7, 0.2]])
    assert t.int().tolist() == [[1, -1, 0]] and t.int().dtype == pve.int64
    with pytest.raises(TypeError, match="float64"):
        t.double()
    x = pve.zeros(2, 3, 4)
    assert x.nbytes == 96 and x.itemsize == 4 and x.element_size() == 4
    assert pve.zeros(2, dtype=pve.int64).element_size() == 8
    assert x.stride() == (12, 4, 1) and x.stride(1) == 4 and x.stride(-1) == 1
    assert pve.zeros(2, 0, 3).stride() == (3, 3, 1) and pve.tensor(1.0).stride() == ()
    assert x.mT.shape == (2, 4, 3)
    with pytest.raises(RuntimeError, match="mT"):
        pve.ones(3).mT


def test_predicates():
    a = pve.tensor([1.0, nan, inf, -inf])
    assert a.isnan().tolist() == [False, True, False, False]
    assert pve.isinf(a).tolist() == [False, False, True, True]
    assert pve.isclose(a, pve.tensor([1.0 + 1e-6, nan, inf, inf])).tolist() == [True, False, True, False]
    assert a.isclose(a, equal_nan=True).tolist() == [True] * 4
    assert pve.equal(pve.ones(2), pve.ones(2)) and not pve.equal(pve.ones(2), pve.ones(3))
    assert not pve.equal(a, a)  # NaN != NaN
    assert pve.argwhere(pve.tensor([[0, 1], [1, 0]])).tolist() == [[0, 1], [1, 0]]
    rows, cols = pve.nonzero(pve.tensor([[0, 1], [1, 0]]), as_tuple=True)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]
    assert pve.nonzero(pve.tensor(5)).shape == (1, 0)


def test_argument_errors():
    x = pve.ones(2, 3)
    with pytest.raises(RuntimeError, match="out of bounds"):
        x.gather(1, pve.tensor([[3]]))
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        x.gather(1, pve.tensor([0]))
    with pytest.raises(RuntimeError, match="int32/int64"):
        x.gather(1, pve.tensor([[0.0]]))
    with pytest.raises(RuntimeError, match="no larger than self"):
        x.gather(1, pve.tensor([[0], [1], [0]]))
    with pytest.raises(RuntimeError, match="no larger size than src"):
        x.scatter(1, pve.tensor([[0, 1]]), pve.zeros(1, 1))
    with pytest.raises(RuntimeError, match="self.dtype to be equal"):
        x.scatter(1, pve.tensor([[0]]), pve.zeros(1, 1, dtype=pve.int64))
    with pytest.raises(IndexError, match="out of range"):
        x.index_select(0, pve.tensor([2]))
    with pytest.raises(IndexError, match="vector"):
        x.index_select(0, pve.tensor([[0]]))
    with pytest.raises(TypeError):
        pve.maximum(x, 1.0)
    with pytest.raises(RuntimeError, match="appears multiple times"):
        x.flip(0, 0)
    with pytest.raises(TypeError):
        pve.flip(x, 0)
    with pytest.raises(RuntimeError, match="must align"):
        x.roll((1, 2), (0,))
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        pve.ones(3).tril()
    with pytest.raises(RuntimeError, match="1D or 2D"):
        pve.ones(2, 2, 2).diag()
    with pytest.raises(RuntimeError, match="inconsistent tensor size"):
        pve.dot(pve.ones(2), pve.ones(3))
    with pytest.raises(RuntimeError, match="1D tensors expected"):
        pve.dot(x, pve.ones(3))
    with pytest.raises(RuntimeError, match="1-D"):
        pve.outer(x, pve.ones(3))
    with pytest.raises(NotImplementedError):
        pve.lerp(pve.tensor([1, 2]), pve.tensor([1, 2]), 0.5)
    with pytest.raises(RuntimeError, match="expected dtype float"):
        pve.lerp(pve.ones(2), pve.tensor([1, 2]), 0.5)
    with pytest.raises(RuntimeError, match="0-dimensional value"):
        x.masked_fill(x > 0, pve.ones(3))
    with pytest.raises(RuntimeError, match="floating point"):
        pve.var(pve.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="floating point"):
        pve.norm(pve.tensor([1, 2]))
    with pytest.raises(NotImplementedError, match="nuc"):
        pve.norm(x, "nuc")
    with pytest.raises(RuntimeError, match="2-tuple"):
        pve.norm(pve.ones(2, 2, 2), "fro", (0, 1, 2))
    with pytest.raises(IndexError, match="non-zero size"):
        pve.amax(pve.ones(0, 3), 0)
    with pytest.raises(TypeError):
        pve.prod(x, (0, 1))
    with pytest.raises(NotImplementedError):
        pve.round(pve.tensor([1, 2]), decimals=1)
    with pytest.raises(RuntimeError, match="greater or equal to 0"):
        pve.eye(-1)
    with pytest.raises(RuntimeError, match="non-negative"):
        pve.linspace(0, 1, -1)
    with pytest.raises(RuntimeError, match="negative dimension"):
        pve.randperm(-1)
    with pytest.raises(RuntimeError, match="did not match"):
        pve.isclose(pve.ones(2), pve.tensor([1, 1]))
