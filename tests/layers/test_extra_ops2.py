"""Hardshrink, Softshrink, RReLU, GLU, normalize, one_hot, cosine_similarity,
pairwise_distance, Unfold / Fold, MaxUnpool2d and LPPool2d against plain-numpy
float64 references (tests/reference/extra_ops2_reference.py) and float64 finite
differences; torch's edge semantics written out where they are the point (zero
vectors, ties, out-of-range indices, negative windows). Kernel-backed paths run
at every ISA level (the ``isa`` fixture)."""

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op, run_pve
from reference import extra_ops2_reference as ref

F = pve.nn.functional
nn = pve.nn
rng = np.random.default_rng(11)


def _away_from(values, points, gap=0.05):
    """values nudged so that none lies within ``gap`` of a kink in ``points``."""
    values = values.copy()
    for p in points:
        near = np.abs(values - p) < gap
        values[near] += 2 * gap
    return values


# ------------------------------------------------------------------ shrink, RReLU, GLU
@pytest.mark.parametrize("lambd", [0.5, 1.25])
@pytest.mark.parametrize("name", ["hardshrink", "softshrink"])
def test_shrink_matches_reference_and_finite_differences(name, lambd):
    x = _away_from(rng.uniform(-3, 3, (3, 7)), [-lambd, lambd])
    check_op(lambda t: getattr(F, name)(t, lambd), lambda a: getattr(ref, name)(a, lambd), [x])


def test_shrink_special_values_and_zero_signs():
    x = np.array([np.nan, np.inf, -np.inf, 0.5, -0.5, -0.3, -0.0, 0.7], np.float32)
    t = pve.tensor(x, requires_grad=True)
    y = F.softshrink(t)
    y.backward(pve.ones(8))
    out = y.detach().numpy()
    np.testing.assert_array_equal(out[1:], [np.inf, -np.inf, 0, 0, 0, 0, np.float32(0.7) - 0.5])
    assert np.isnan(out[0])
    # torch's vectorised x - clamp(x, -lambd, lambd): the dead zone is +0
    assert not np.signbit(out[3:7]).any()
    # torch's vectorised mask (x < -lambd) | (x > lambd): NaN gets no gradient
    np.testing.assert_array_equal(t.grad.numpy(), [0, 1, 1, 0, 0, 0, 0, 1])
    h = F.hardshrink(pve.tensor(x)).numpy()
    assert not np.signbit(h[3:7]).any() and np.isnan(h[0])
    # hardshrink takes any lambd (negative: identity), softshrink needs lambd >= 0
    np.testing.assert_array_equal(F.hardshrink(pve.tensor(x[1:]), -1.0).numpy(), x[1:])
    with pytest.raises(ValueError, match="softshrink") as info:
        F.softshrink(pve.tensor(x), -0.1)
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize("inplace", [False, True])
def test_rrelu_eval_is_leaky_relu_with_the_mean_slope(isa, inplace):
    x = _away_from(rng.standard_normal((4, 33)), [0.0])
    lower, upper = 0.1, 0.3
    expected = ref.leaky(x, (lower + upper) / 2)
    if inplace:
        t = pve.tensor(x.astype(np.float32))
        assert F.rrelu_(t, lower, upper) is t
        np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6, atol=1e-7)
    else:
        check_op(lambda a: F.rrelu(a, lower, upper), lambda a: ref.leaky(a, (lower + upper) / 2),
                 [x])
    m = nn.RReLU(lower, upper).eval()
    np.testing.assert_allclose(m(x.astype(np.float32)).numpy(), expected, rtol=1e-6, atol=1e-7)


def test_rrelu_training_draws_seeded_slopes_in_range_and_differentiates_through_them():
    x = rng.standard_normal((64, 64)).astype(np.float32)
    x[0, :3] = [0.0, np.nan, -np.inf]
    pve.manual_seed(3)
    t = pve.tensor(x, requires_grad=True)
    y = F.rrelu(t, 0.2, 0.4, training=True)
    y.backward(pve.ones(x.shape))
    pve.manual_seed(3)
    again = F.rrelu(pve.tensor(x), 0.2, 0.4, training=True).numpy()
    out, grad = y.detach().numpy(), t.grad.numpy()
    np.testing.assert_array_equal(out, again)  # the same seed, the same slopes
    negative, positive = x < 0, x > 0
    slopes = out[negative & np.isfinite(x)] / x[negative & np.isfinite(x)]
    assert slopes.min() >= 0.2 - 1e-6 and slopes.max() <= 0.4 + 1e-6
    assert abs(slopes.mean() - 0.3) < 0.01 and slopes.std() > 0.05  # U(0.2, 0.4)
    np.testing.assert_allclose(grad[negative & np.isfinite(x)], slopes, rtol=1e-5)
    np.testing.assert_array_equal(out[positive], x[positive])
    np.testing.assert_array_equal(grad[positive], 1.0)
    assert out[0, 0] == 0 and 0.2 <= grad[0, 0] <= 0.4  # x == 0 draws a slope too
    assert np.isnan(out[0, 1]) and grad[0, 1] == 1 and out[0, 2] == -np.inf
    # the module draws in training and is fixed in eval; rrelu_ writes in place
    m = nn.RReLU()
    assert not np.array_equal(m(x).numpy(), m(x).numpy())
    m.eval()
    np.testing.assert_array_equal(m(x).numpy(), m(x).numpy())
    s = pve.tensor(x.copy())
    assert F.rrelu_(s, training=True) is s and not np.array_equal(s.numpy(), x)


def test_rrelu_checks_its_bounds_and_leaves():
    with pytest.raises(ValueError, match="rrelu: Lower bound") as info:
        F.rrelu(pve.ones(3), 0.5, 0.1)
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(RuntimeError, match="in-place"):
        F.rrelu_(pve.ones(3, requires_grad=True), training=True)


@pytest.mark.parametrize("shape,dim", [((3, 8), -1), ((4, 6, 5), 1), ((2, 4), 0), ((6,), 0)])
def test_glu_matches_reference_and_finite_differences(isa, shape, dim):
    x = rng.standard_normal(shape) * 2
    check_op(lambda t: F.glu(t, dim), lambda a: ref.glu(a, dim), [x], rtol=1e-6, atol=1e-6)
    check_op(nn.GLU(dim), lambda a: ref.glu(a, dim), [x], rtol=1e-6, atol=1e-6, grad=False)


def test_glu_errors_and_empty_halves():
    with pytest.raises(ValueError, match="glu: Halving dimension must be even, but dimension 1 "
                                         "is size 5"):
        F.glu(pve.ones(2, 5))
    with pytest.raises(RuntimeError, match="glu does not support scalars"):
        F.glu(pve.tensor(1.0))
    with pytest.raises(IndexError, match="glu"):
        F.glu(pve.ones(2, 4), 2)
    assert F.glu(pve.zeros(3, 0), 1).shape == (3, 0)


# ------------------------------------------------------------------ norms and distances
@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 1.5, np.inf])
@pytest.mark.parametrize("dim", [1, 0, -1, (0, 2)])
def test_normalize_matches_reference_and_finite_differences(p, dim):
    # distinct magnitudes: a unique maximum per vector keeps the inf-norm differentiable
    x = rng.permutation(np.linspace(0.3, 2.0, 24)).reshape(3, 4, 2) * rng.choice([-1, 1], (3, 4, 2))
    check_op(lambda t: F.normalize(t, p, dim), lambda a: ref.normalize(a, p, dim), [x],
             rtol=2e-6, atol=1e-6)


def test_normalize_zero_vector_and_its_gradient():
    # A zero vector stays zero; the clamp to eps is active there, so the gradient is
    # the upstream over eps (the norm's own zero subgradient adds nothing)
    x = pve.tensor(np.array([[0.0, 0.0, 0.0], [3.0, 0.0, -4.0]], np.float32), requires_grad=True)
    g = np.array([[1.0, -2.0, 0.5], [1.0, 1.0, 1.0]], np.float32)
    y = F.normalize(x, eps=1e-6)
    y.backward(pve.tensor(g))
    np.testing.assert_allclose(y.detach().numpy(), [[0, 0, 0], [0.6, 0, -0.8]], rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy()[0], g[0] / 1e-6, rtol=1e-6)
    out = pve.zeros(2, 3)
    assert F.normalize(x.detach(), out=out) is out
    np.testing.assert_allclose(out.numpy(), [[0, 0, 0], [0.6, 0, -0.8]], rtol=1e-6)


@pytest.mark.parametrize("shapes,dim", [(((4, 5), (4, 5)), 1), (((3, 4), (4,)), 1),
                                        (((2, 3, 4), (2, 3, 4)), 0), (((5,), (5,)), 0),
                                        (((2, 1, 3), (4, 3)), -1)])
def test_cosine_similarity_matches_reference_and_finite_differences(shapes, dim):
    a, b = (rng.standard_normal(s) for s in shapes)
    check_op(lambda x, y: F.cosine_similarity(x, y, dim),
             lambda x, y: ref.cosine_similarity(x, y, dim), [a, b], rtol=2e-6, atol=1e-6)
    check_op(nn.CosineSimilarity(dim), lambda x, y: ref.cosine_similarity(x, y, dim), [a, b],
             rtol=2e-6, atol=1e-6, grad=False)


def test_cosine_similarity_clamps_each_norm_without_differentiating_the_clamp():
    # torch 2.x: x1 / max(||x1||, eps) . x2 / max(||x2||, eps), the clamp applied in
    # place under no_grad: a zero x1 gives 0, and its gradient is g * x2_hat / eps
    eps = 1e-4
    x1 = pve.tensor(np.zeros((1, 3), np.float32), requires_grad=True)
    x2 = pve.tensor(np.array([[1.0, 2.0, 2.0]], np.float32), requires_grad=True)
    y = F.cosine_similarity(x1, x2, eps=eps)
    y.backward(pve.tensor(np.array([2.0], np.float32)))
    assert y.detach().numpy()[0] == 0
    np.testing.assert_allclose(x1.grad.numpy(), 2.0 * np.array([[1, 2, 2]]) / 3 / eps, rtol=1e-5)
    np.testing.assert_array_equal(x2.grad.numpy(), 0)
    # each side scaled first: no overflow where <x1, x2> / sqrt(|x1|^2 |x2|^2) would have one
    big = np.full((1, 8), 1e18, np.float32)
    np.testing.assert_allclose(F.cosine_similarity(big, big).numpy(), [1.0], rtol=1e-6)


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 0.5, np.inf, -np.inf])
@pytest.mark.parametrize("keepdim", [False, True])
def test_pairwise_distance_matches_reference_and_finite_differences(p, keepdim):
    a, b = (rng.standard_normal((4, 5)).astype(np.float32).astype(np.float64) for _ in "ab")
    check_op(lambda x, y: F.pairwise_distance(x, y, p, keepdim=keepdim),
             lambda x, y: ref.pairwise_distance(x, y, p, keepdim=keepdim), [a, b],
             rtol=2e-6, atol=1e-6, grad_rtol=2e-3)
    m = nn.PairwiseDistance(p, keepdim=keepdim)
    np.testing.assert_allclose(m(a.astype(np.float32), b[1].astype(np.float32)).numpy(),
                               ref.pairwise_distance(a, b[1], p, keepdim=keepdim), rtol=2e-6)


def test_pairwise_distance_zero_norm_and_count_norm():
    x = pve.tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    d = F.pairwise_distance(x, pve.tensor(np.zeros((2, 3), np.float32)))
    np.testing.assert_allclose(d.detach().numpy(), np.sqrt(3) * 1e-6, rtol=1e-5)
    d = F.pairwise_distance(x, pve.tensor(np.array([[0, 1, 2], [0, 0, 0]], np.float32)), p=0)
    np.testing.assert_array_equal(d.detach().numpy(), [3, 3])  # eps makes every entry nonzero
    d.sum().backward()
    assert x.grad is None  # the count has no gradient (torch: none)
    assert F.pairwise_distance(pve.tensor(1.0), pve.tensor(3.0)).shape == ()


def test_distance_errors_name_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"cosine_similarity: .*\(4\).*\(5\)") as info:
        F.cosine_similarity(pve.ones(3, 4), pve.ones(3, 5))
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(ValueError, match="eps must be non-negative"):
        F.cosine_similarity(pve.ones(3, 4), pve.ones(3, 4), eps=-1.0)
    with pytest.raises(IndexError):
        F.cosine_similarity(pve.ones(4), pve.ones(4))  # dim=1 of a vector
    with pytest.raises(TypeError, match="floating point"):
        F.cosine_similarity(pve.tensor([[1, 2]]), pve.tensor([[1, 2]]))
    np.testing.assert_allclose(F.cosine_similarity(pve.tensor([[1, 2]]), [[1.0, 2.0]]).numpy(),
                               [1.0], rtol=1e-6)  # an int operand is promoted
    with pytest.raises(ValueError, match="pairwise_distance"):
        F.pairwise_distance(pve.ones(3, 4), pve.ones(3, 5))
    with pytest.raises(TypeError, match="pairwise_distance: p"):
        F.pairwise_distance(pve.ones(3, 4), pve.ones(3, 4), p="fro")
    with pytest.raises(ValueError, match="inf norm"):
        F.pairwise_distance(pve.zeros(3, 0), pve.zeros(3, 0), p=np.inf)
    with pytest.raises(TypeError, match="normalize"):
        F.normalize(pve.tensor([[1, 2]]))
    with pytest.raises(IndexError):
        F.normalize(pve.ones(4))


# ------------------------------------------------------------------ one_hot
def test_one_hot_matches_reference_and_checks_classes():
    idx = rng.integers(0, 5, (3, 4))
    np.testing.assert_array_equal(F.one_hot(pve.tensor(idx)).numpy(), ref.one_hot(idx, idx.max() + 1))
    out = F.one_hot(idx, 7)
    assert out.dtype == np.int64 and out.shape == (3, 4, 7)
    np.testing.assert_array_equal(out.numpy(), ref.one_hot(idx, 7))
    np.testing.assert_array_equal(F.one_hot(pve.tensor(2)).numpy(), [0, 0, 1])
    assert F.one_hot(np.zeros((0, 2), np.int64), 3).shape == (0, 2, 3)
    for bad, match in [(([0, -1],), "non-negative"), (([0, 3], 3), "smaller than num_classes"),
                       ((np.zeros(0, np.int64),), "empty"), (([0, 1], 0), "smaller")]:
        with pytest.raises(ValueError, match=match) as info:
            F.one_hot(*bad)
        assert isinstance(info.value, RuntimeError)
    with pytest.raises(TypeError, match="LongTensor"):
        F.one_hot(pve.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="num_classes"):
        F.one_hot(pve.tensor([0, 1]), 3.0)


# ------------------------------------------------------------------ unfold / fold
UNFOLD_CASES = [
    ((1, 2, 5, 6), dict(kernel_size=3)),
    ((1, 2, 7, 6), dict(kernel_size=(2, 3), dilation=(2, 1), padding=(1, 2), stride=(2, 3))),
    ((2, 1, 4, 4), dict(kernel_size=2, stride=2)),
    ((1, 2, 3, 3), dict(kernel_size=3, padding=1, dilation=2)),
]


def _pairs(kw):
    def two(v):
        return tuple(v) if isinstance(v, tuple) else (v, v)
    return (two(kw["kernel_size"]), two(kw.get("dilation", 1)), two(kw.get("padding", 0)),
            two(kw.get("stride", 1)))


@pytest.mark.parametrize("shape,kw", UNFOLD_CASES)
def test_unfold_and_fold_match_loop_references_and_finite_differences(shape, kw):
    x = rng.standard_normal(shape).astype(np.float32).astype(np.float64)
    geo = _pairs(kw)
    check_op(lambda t: F.unfold(t, **kw), lambda a: ref.unfold(a, *geo), [x], rtol=0, atol=0)
    cols = ref.unfold(x, *geo)
    cols = cols + rng.standard_normal(cols.shape).astype(np.float32)  # not an unfold result
    check_op(lambda t: F.fold(t, shape[-2:], **kw), lambda c: ref.fold(c, shape[-2:], *geo),
             [cols], rtol=1e-6, atol=1e-6)
    # the unbatched forms and the modules
    one = x[0].astype(np.float32)
    np.testing.assert_array_equal(nn.Unfold(**kw)(one).numpy(), ref.unfold(x[:1], *geo)[0])
    np.testing.assert_allclose(nn.Fold(shape[-2:], **kw)(cols[0].astype(np.float32)).numpy(),
                               ref.fold(cols[:1], shape[-2:], *geo)[0], rtol=1e-6, atol=1e-6)


def test_fold_with_sizes_the_blocks_do_not_cover():
    # 5x7 from 2x3 blocks, stride 2: the last row and column get nothing
    cols = rng.standard_normal((2, 12, 8))
    kw = dict(kernel_size=(2, 3), stride=2, padding=(0, 1))
    geo = _pairs(kw)
    check_op(lambda t: F.fold(t, (5, 7), **kw), lambda c: ref.fold(c, (5, 7), *geo), [cols],
             rtol=1e-6, atol=1e-6)
    out = F.fold(cols.astype(np.float32), (5, 7), **kw).numpy()
    np.testing.assert_array_equal(out[:, :, 4], 0)
    assert F.unfold(np.zeros((0, 2, 4, 4), np.float32), 2).shape == (0, 8, 9)


def test_fold_is_the_adjoint_of_unfold():
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    kw = dict(kernel_size=(3, 2), dilation=(1, 2), padding=1, stride=(2, 1))
    cols = F.unfold(x, **kw).numpy()
    c = rng.standard_normal(cols.shape).astype(np.float32)
    lhs = np.sum(cols.astype(np.float64) * c)
    rhs = np.sum(x.astype(np.float64) * F.fold(c, (6, 5), **kw).numpy())
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


@pytest.mark.parametrize("call,error,match", [
    (lambda: F.unfold(pve.ones(4, 4), 2), IndexError, "unfold: Expected 3D or 4D"),
    (lambda: F.unfold(pve.ones(1, 2, 1, 4, 4), 2), RuntimeError, r"got: \[1, 2, 1, 4, 4\]"),
    (lambda: F.unfold(pve.ones(1, 0, 4, 4), 2), ValueError, "non-zero"),
    (lambda: F.unfold(pve.ones(1, 2, 4, 4), 0), ValueError, "kernel size should be greater"),
    (lambda: F.unfold(pve.ones(1, 2, 4, 4), 2, padding=-1), ValueError, "non-negative"),
    (lambda: F.unfold(pve.ones(1, 2, 4, 4), 5), RuntimeError, r"\(4, 4\).*\(0, 0\)"),
    (lambda: F.unfold(pve.ones(1, 2, 4, 4), (2, 2, 2)), ValueError, "equals to 2, but got size 3"),
    (lambda: F.fold(pve.ones(8), 4, 2), ValueError, r"fold: Expected 2D or 3D.*\[8\]"),
    (lambda: F.fold(pve.ones(1, 7, 9), 4, 2), ValueError, r"input.size\(1\)=7"),
    (lambda: F.fold(pve.ones(1, 8, 10), 4, 2), ValueError, r"3 \* 3 = 9, but got input.size\(2\)=10"),
    (lambda: F.fold(pve.ones(1, 8, 9), 4, 2, stride=0), RuntimeError, "stride should be"),
])
def test_unfold_and_fold_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------ max_unpool2d
def test_max_unpool2d_inverts_max_pool2d_where_it_can(isa):
    x = rng.standard_normal((2, 3, 6, 8)).astype(np.float32)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    unpooled = F.max_unpool2d(y, idx, 2)
    np.testing.assert_array_equal(unpooled.numpy(), ref.max_unpool2d(y.numpy(), idx.numpy(), (6, 8)))
    # each kept value is back in place, everything else is zero
    kept = unpooled.numpy() != 0
    np.testing.assert_array_equal(unpooled.numpy()[kept], x[kept])
    assert kept.sum() == y.numpy().size
    layer = nn.MaxUnpool2d(2)
    np.testing.assert_array_equal(layer(y, idx).numpy(), unpooled.numpy())
    np.testing.assert_array_equal(layer(y[0], idx[0]).numpy(), unpooled.numpy()[0])


def test_max_unpool2d_output_size_and_gradient_gathers():
    x = rng.standard_normal((1, 2, 7, 5)).astype(np.float32)
    y, idx = F.max_pool2d(x, 2, return_indices=True)  # 3x2: the default size is 6x4
    for size in [(7, 5), [1, 2, 7, 5]]:  # (the indices address 7x5 planes)
        out = F.max_unpool2d(y, idx, 2, output_size=size)
        assert out.shape == (1, 2, 7, 5)
    t = pve.tensor(y.numpy(), requires_grad=True)
    out = F.max_unpool2d(t, idx, 2, output_size=(7, 5))
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(pve.tensor(g))
    expected = np.take_along_axis(g.reshape(1, 2, -1), idx.numpy().reshape(1, 2, -1), axis=2)
    np.testing.assert_array_equal(t.grad.numpy(), expected.reshape(y.shape))
    for bad, match in [((8, 5), r"dim 0 must be between 4 and 8"),
                       ((7,), "2 or 4 elements, but it has a length of '1'")]:
        with pytest.raises(ValueError, match=match):
            F.max_unpool2d(y, idx, 2, output_size=bad)


def test_max_unpool2d_ties_and_duplicate_indices():
    # overlapping windows (stride 1) pick the same maximum twice: equal values at one index
    x = np.array([[[[1, 9, 2], [3, 4, 5], [0, 1, 2]]]], np.float32)
    y, idx = F.max_pool2d(x, 2, stride=1, return_indices=True)
    assert (idx.numpy() == 1).sum() == 2
    t = pve.tensor(y.numpy(), requires_grad=True)
    out = F.max_unpool2d(t, idx, 2, stride=1)
    np.testing.assert_array_equal(out.detach().numpy(), [[[[0, 9, 0], [0, 4, 5], [0, 0, 0]]]])
    out.backward(pve.tensor(np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)))
    np.testing.assert_array_equal(t.grad.numpy(), [[[[1, 1], [4, 5]]]])  # each duplicate gets it
    # unequal values at one index: the last in input order is written
    v = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)
    same = np.full((1, 1, 2, 2), 5, np.int64)
    assert F.max_unpool2d(v, same, 2).numpy().reshape(-1)[5] == 4.0


@pytest.mark.parametrize("call,error,match", [
    (lambda y, i: F.max_unpool2d(y, i + 100, 2), ValueError,
     r"max_unpool2d: Found an invalid max index: 10[0-9] \(output volumes are of size 4x4\)"),
    (lambda y, i: F.max_unpool2d(y, i - 100, 2), RuntimeError, "invalid max index: -"),
    (lambda y, i: F.max_unpool2d(y, i, 2, padding=1), RuntimeError, "size 2x2"),
    (lambda y, i: F.max_unpool2d(y, i[:, :, :1], 2), ValueError,
     r"indices to be same as that of the input tensor \(\[1, 1, 2, 2\]\) but got indices tensor "
     r"with shape: \[1, 1, 1, 2\]"),
    (lambda y, i: F.max_unpool2d(y, i.float(), 2), TypeError, "int64"),
    (lambda y, i: F.max_unpool2d(y[0, 0], i[0, 0], 2), RuntimeError, "3d or 4d"),
    (lambda y, i: F.max_unpool2d(y[None], i[None], 2), ValueError, "3d or 4d"),
    (lambda y, i: F.max_unpool2d(y, i, 2, padding=3), ValueError, "non-negative spatial"),
])
def test_max_unpool2d_errors(call, error, match):
    y, idx = F.max_pool2d(rng.standard_normal((1, 1, 4, 4)).astype(np.float32), 2,
                          return_indices=True)
    with pytest.raises(error, match=match):
        call(y, idx)


# ------------------------------------------------------------------ lp_pool2d
@pytest.mark.parametrize("p", [2, 1, 3.0, 1.5])
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=(3, 2), stride=(2, 1)),
                                dict(kernel_size=3, stride=2, ceil_mode=True)])
def test_lp_pool2d_matches_loops_and_finite_differences(isa, p, kw):
    x = rng.uniform(0.2, 2.0, (2, 2, 7, 6))  # positive: every root differentiable
    k = kw["kernel_size"]
    k = k if isinstance(k, tuple) else (k, k)
    s = kw.get("stride")
    s = s if isinstance(s, tuple) or s is None else (s, s)
    check_op(lambda t: F.lp_pool2d(t, p, **kw),
             lambda a: ref.lp_pool2d(a, p, k, s, kw.get("ceil_mode", False)), [x],
             rtol=1e-5, atol=1e-5)


def test_lp_pool2d_signs_zero_windows_and_inf(isa):
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, :2, :2] = -1.0  # a negative window
    x[0, 0, 2:, 2:] = [[1.0, -2.0], [2.0, 0.5]]
    t = pve.tensor(x, requires_grad=True)
    y = F.lp_pool2d(t, 3, 2)
    y.backward(pve.ones(y.shape))
    out, grad = y.detach().numpy()[0, 0], t.grad.numpy()[0, 0]
    assert np.isnan(out[0, 0])  # the cube root of a negative sum, as torch's pow
    assert out[0, 1] == 0 and out[1, 0] == 0  # all-zero windows
    np.testing.assert_allclose(out[1, 1], np.cbrt(1 - 8 + 8 + 0.125), rtol=1e-6)
    np.testing.assert_array_equal(grad[:2, 2:], 0)  # zero windows: zero gradient, not NaN
    np.testing.assert_array_equal(grad[2:, :2], 0)
    assert np.isnan(grad[:2, :2]).all()
    # p = 2 squares the negatives away; p = inf is the max of |x|
    np.testing.assert_allclose(F.lp_pool2d(x, 2, 2).numpy()[0, 0], [[2, 0], [0, 3.0413813]],
                               rtol=1e-6)
    np.testing.assert_array_equal(F.lp_pool2d(x, np.inf, 2).numpy()[0, 0], [[1, 0], [0, 2]])
    np.testing.assert_array_equal(nn.LPPool2d(np.inf, 2)(x).numpy(),
                                  ref.lp_pool2d(x.astype(np.float64), np.inf, (2, 2)))


@pytest.mark.parametrize("call,error,match", [
    (lambda: F.lp_pool2d(pve.ones(4, 4), 2, 2), IndexError, "lp_pool2d"),
    (lambda: F.lp_pool2d(pve.ones(1, 1, 1, 4, 4), 2, 2), RuntimeError, "lp_pool2d: Expected 3D"),
    (lambda: F.lp_pool2d(pve.ones(1, 4, 4), 2, 5), ValueError,
     r"lp_pool2d: Given input size: \(1x4x4\). Calculated output size: \(1x0x0\)"),
    (lambda: F.lp_pool2d(pve.ones(1, 4, 4), 2, 2, 0), RuntimeError, "greater than zero"),
    (lambda: F.lp_pool2d(pve.ones(1, 4, 4), 0, 2), ZeroDivisionError, "lp_pool2d"),
])
def test_lp_pool2d_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------ modules
def test_module_reprs_and_attributes_as_torch():
    assert repr(nn.Hardshrink()) == "Hardshrink(0.5)"
    assert repr(nn.Softshrink(0.3)) == "Softshrink(0.3)"
    assert repr(nn.RReLU()) == "RReLU(lower=0.125, upper=0.3333333333333333)"
    assert repr(nn.RReLU(0.1, 0.2, True)) == "RReLU(lower=0.1, upper=0.2, inplace=True)"
    assert repr(nn.GLU()) == "GLU(dim=-1)"
    assert repr(nn.CosineSimilarity()) == "CosineSimilarity()"
    assert repr(nn.PairwiseDistance()) == "PairwiseDistance()"
    assert repr(nn.Unfold(3)) == "Unfold(kernel_size=3, dilation=1, padding=0, stride=1)"
    assert repr(nn.Fold(4, 2)) == "Fold(output_size=4, kernel_size=2, dilation=1, padding=0, stride=1)"
    assert repr(nn.MaxUnpool2d(2)) == "MaxUnpool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"
    assert repr(nn.MaxUnpool2d(3, 1, (1, 0))) == ("MaxUnpool2d(kernel_size=(3, 3), stride=(1, 1), "
                                                  "padding=(1, 0))")
    assert repr(nn.LPPool2d(2, 3)) == "LPPool2d(norm_type=2, kernel_size=3, stride=None, ceil_mode=False)"
    d = nn.PairwiseDistance()
    assert (d.norm, d.eps, d.keepdim) == (2.0, 1e-6, False)
    c = nn.CosineSimilarity()
    assert (c.dim, c.eps) == (1, 1e-8)
    for m in [nn.GLU(), nn.Fold(4, 2), nn.LPPool2d(2, 2), nn.MaxUnpool2d(2), nn.RReLU()]:
        assert m.state_dict() == {} and list(m.parameters()) == []


def test_functionals_accept_numpy_and_return_tensors():
    x = rng.standard_normal((2, 4)).astype(np.float32)
    for y in [F.hardshrink(x), F.softshrink(x), F.rrelu(x), F.glu(x), F.normalize(x),
              F.cosine_similarity(x, x), F.pairwise_distance(x, x)]:
        assert isinstance(y, pve.Tensor)
    out, _ = run_pve(lambda t: F.unfold(t, 2), [rng.standard_normal((1, 1, 3, 3))], grad=False)
    assert out.shape == (1, 4, 4)
