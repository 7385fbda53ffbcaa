"""Live parity with torch (skipped without it) for Hardshrink, Softshrink, RReLU, GLU,
normalize, one_hot, cosine_similarity, pairwise_distance, Unfold / Fold, MaxUnpool2d
and LPPool2d: values and gradients on edge cases (special values, zero vectors, ties,
non-divisible fold sizes, negative lp windows), error types, reprs."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch parity tests need torch")

import pyvision_engine as pve  # noqa: E402

TF = torch.nn.functional
F = pve.nn.functional
rng = np.random.default_rng(23)

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, -0.5, 0.25, -0.25, 1e30, -1e30],
                   np.float32)


def _both(pve_fn, torch_fn, *arrays, grad=None):
    """(pve output, pve grads), (torch output, torch grads) for the same inputs and
    upstream gradient; a None grad where that side has none."""
    ps = [pve.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    yp, yt = pve_fn(*ps), torch_fn(*ts)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32) if grad is None else grad
    yp.backward(pve.tensor(g))
    yt.backward(torch.tensor(g))
    pg = [None if p.grad is None else p.grad.numpy() for p in ps]
    tg = [None if t.grad is None else t.grad.numpy() for t in ts]
    return (yp.detach().numpy(), pg), (yt.detach().numpy(), tg)


def _close(mine, theirs, rtol=2e-6, atol=1e-6):
    (y, gs), (ty, tgs) = mine, theirs
    assert y.shape == ty.shape
    np.testing.assert_allclose(y, ty, rtol=rtol, atol=atol, equal_nan=True, err_msg="forward")
    for i, (g, tg) in enumerate(zip(gs, tgs)):
        if tg is None:
            assert g is None, f"input {i}: torch has no gradient"
            continue
        scale = max(1.0, float(np.nanmax(np.abs(np.where(np.isinf(tg), 0, tg)), initial=0)))
        np.testing.assert_allclose(g, tg, rtol=rtol * 5, atol=atol * scale, equal_nan=True,
                                   err_msg=f"gradient of input {i}")


def _values(n=64):
    # a multiple of every vector width: torch runs its vectorised kernels on all of it
    # (its scalar tail loop differs at NaN for the shrink gradients)
    return np.concatenate([SPECIAL, rng.uniform(-3, 3, n - len(SPECIAL)).astype(np.float32)])


@pytest.mark.parametrize("name,kw", [("hardshrink", {}), ("hardshrink", {"lambd": 0.25}),
                                     ("hardshrink", {"lambd": -1.0}), ("softshrink", {}),
                                     ("softshrink", {"lambd": 0.25}), ("softshrink", {"lambd": 0})])
def test_shrink_matches_torch_with_special_values(name, kw):
    x = _values()
    mine, theirs = _both(lambda t: getattr(F, name)(t, **kw), lambda t: getattr(TF, name)(t, **kw),
                         x)
    _close(mine, theirs, rtol=0, atol=0)
    np.testing.assert_array_equal(np.signbit(mine[0]), np.signbit(theirs[0]))  # zero signs


@pytest.mark.parametrize("inplace", [False, True])
def test_rrelu_eval_matches_torch(isa, inplace):
    x = _values(96).reshape(3, 32)
    mine, theirs = _both(lambda t: F.rrelu(t * 1.0, 0.1, 0.4, False, inplace),
                         lambda t: TF.rrelu(t * 1.0, 0.1, 0.4, False, inplace), x)
    _close(mine, theirs, rtol=0, atol=0)
    mine, theirs = _both(pve.nn.RReLU().eval(), torch.nn.RReLU().eval(), x)
    _close(mine, theirs, rtol=0, atol=0)


def test_rrelu_training_has_torchs_form():
    # Random draws differ between generators; the form does not: positives pass, the
    # rest is x * r with r in [lower, upper] and the gradient r.
    x = _values(4096)
    x = x[np.isfinite(x)]
    (y, (g,)), _ = _both(lambda t: F.rrelu(t, 0.1, 0.3, True), lambda t: TF.rrelu(t, 0.1, 0.3, True),
                         x, grad=np.ones_like(x))
    t = torch.tensor(x, requires_grad=True)
    ty = TF.rrelu(t, 0.1, 0.3, True)
    ty.sum().backward()
    for out, grad in [(y, g), (ty.detach().numpy(), t.grad.numpy())]:
        pos, neg = x > 0, x < 0
        np.testing.assert_array_equal(out[pos], x[pos])
        np.testing.assert_array_equal(grad[pos], 1)
        np.testing.assert_allclose(out[neg] / x[neg], grad[neg], rtol=1e-5)
        assert grad[neg].min() >= 0.1 - 1e-6 and grad[neg].max() <= 0.3 + 1e-6
        assert abs(grad[neg].mean() - 0.2) < 0.01


@pytest.mark.parametrize("shape,dim", [((4, 6), -1), ((3, 4, 5), 1), ((2, 8), 0), ((0, 4), 1)])
def test_glu_matches_torch(isa, shape, dim):
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    if x.size:
        x.reshape(-1)[:4] = [np.nan, 100.0, -100.0, 0.0]
    _close(*_both(lambda t: F.glu(t, dim), lambda t: TF.glu(t, dim), x), rtol=2e-6, atol=1e-6)


NORM_X = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 2.0], [0.0, 3.0, -3.0], [1e-3, -1e-3, 0.0],
                   [np.nan, 1.0, 2.0], [1e-20, 0.0, 0.0]], np.float32)
NORM_Y = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 2.0], [0.0, 1.0, -3.0], [1.0, 2.0, 3.0],
                   [1.0, 1.0, 1.0], [1e-20, 0.0, 0.0]], np.float32)


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 0.5, 1.5, 0.0, np.inf, -np.inf, -1.0, "fro"])
@pytest.mark.parametrize("dim", [1, 0, (0, 1)])
def test_normalize_matches_torch_with_zero_vectors(p, dim):
    _close(*_both(lambda t: F.normalize(t, p, dim), lambda t: TF.normalize(t, p, dim), NORM_X),
           rtol=2e-6, atol=1e-5)
    _close(*_both(lambda t: F.normalize(t, p, dim, eps=1e-3),
                  lambda t: TF.normalize(t, p, dim, eps=1e-3), NORM_X), rtol=2e-6, atol=1e-5)


@pytest.mark.parametrize("a,b,dim,eps", [(NORM_X, NORM_Y, 1, 1e-8), (NORM_X, NORM_Y, 0, 1e-8),
                                         (NORM_X, NORM_Y, -1, 0.5), (NORM_X, NORM_Y[1], 1, 1e-8),
                                         (NORM_X[1], NORM_Y[2], 0, 1e-8),
                                         (np.float32(2.0), np.float32(-3.0), 0, 1e-8)])
def test_cosine_similarity_matches_torch_with_zero_vectors(a, b, dim, eps):
    _close(*_both(lambda x, y: F.cosine_similarity(x, y, dim, eps),
                  lambda x, y: TF.cosine_similarity(x, y, dim, eps), a, b), rtol=2e-6, atol=1e-5)
    _close(*_both(pve.nn.CosineSimilarity(dim, eps), torch.nn.CosineSimilarity(dim, eps), a, b),
           rtol=2e-6, atol=1e-5)


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 0.5, 1.5, 0.0, np.inf, -np.inf, -1.0])
@pytest.mark.parametrize("keepdim", [False, True])
def test_pairwise_distance_matches_torch(p, keepdim):
    _close(*_both(lambda x, y: F.pairwise_distance(x, y, p, keepdim=keepdim),
                  lambda x, y: TF.pairwise_distance(x, y, p, keepdim=keepdim), NORM_X, NORM_Y),
           rtol=2e-6, atol=1e-5)
    _close(*_both(pve.nn.PairwiseDistance(p, 1e-3, keepdim),
                  torch.nn.PairwiseDistance(p, 1e-3, keepdim), NORM_X, NORM_Y[2]),
           rtol=2e-6, atol=1e-5)


@pytest.mark.parametrize("a,b", [((4,), (4,)), ((), ()), ((4,), (2, 4)), ((2, 3, 4), (3, 4))])
def test_pairwise_distance_shapes_match_torch(a, b):
    x, y = rng.standard_normal(a).astype(np.float32), rng.standard_normal(b).astype(np.float32)
    _close(*_both(F.pairwise_distance, TF.pairwise_distance, x, y))


@pytest.mark.parametrize("index,num_classes", [([0, 2, 1], -1), ([[0, 1], [3, 0]], 5), (2, -1),
                                               (np.zeros((0, 3), np.int64), 4)])
def test_one_hot_matches_torch(index, num_classes):
    mine = F.one_hot(pve.tensor(np.asarray(index, np.int64)), num_classes)
    theirs = TF.one_hot(torch.tensor(np.asarray(index, np.int64)), num_classes)
    assert mine.dtype == np.int64
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


FOLD_CASES = [
    ((2, 3, 7, 6), dict(kernel_size=3)),
    ((2, 3, 7, 6), dict(kernel_size=(2, 3), dilation=(2, 1), padding=(1, 2), stride=(2, 3))),
    ((3, 5, 5), dict(kernel_size=2, stride=2)),  # unbatched, 5 not divisible by 2
    ((0, 2, 4, 4), dict(kernel_size=2)),
    ((1, 1, 3, 3), dict(kernel_size=3, padding=1, dilation=2)),
]


@pytest.mark.parametrize("shape,kw", FOLD_CASES)
def test_unfold_and_fold_match_torch_bit_for_bit(shape, kw):
    x = rng.standard_normal(shape).astype(np.float32)
    _close(*_both(lambda t: F.unfold(t, **kw), lambda t: TF.unfold(t, **kw), x), rtol=0, atol=0)
    cols = rng.standard_normal(tuple(TF.unfold(torch.tensor(x), **kw).shape)).astype(np.float32)
    _close(*_both(lambda t: F.fold(t, shape[-2:], **kw), lambda t: TF.fold(t, shape[-2:], **kw),
                  cols), rtol=0, atol=0)
    _close(*_both(pve.nn.Fold(shape[-2:], **kw), torch.nn.Fold(shape[-2:], **kw), cols),
           rtol=0, atol=0)


@pytest.mark.parametrize("output_size,kw", [(5, dict(kernel_size=2, stride=2)),
                                            ((5, 7), dict(kernel_size=(2, 3), stride=2,
                                                          padding=(0, 1))),
                                            ((6, 5), dict(kernel_size=3, stride=(2, 3),
                                                          dilation=(1, 2)))])
def test_fold_non_divisible_sizes_match_torch(output_size, kw):
    blocks = TF.unfold(torch.zeros((1, 1) + ((output_size,) * 2 if isinstance(output_size, int)
                                             else output_size)), **kw).shape[-1]
    k = kw["kernel_size"]
    planes = 2 * (k * k if isinstance(k, int) else k[0] * k[1])
    cols = rng.standard_normal((2, planes, blocks)).astype(np.float32)
    _close(*_both(lambda t: F.fold(t, output_size, **kw),
                  lambda t: TF.fold(t, output_size, **kw), cols), rtol=0, atol=0)


@pytest.mark.parametrize("kw,output_size", [
    (dict(kernel_size=2), None), (dict(kernel_size=2, stride=2), (7, 6)),
    (dict(kernel_size=3, stride=1, padding=1), None),  # overlapping windows: ties
    (dict(kernel_size=(3, 2), stride=(2, 1)), None),
])
def test_max_unpool2d_matches_torch(isa, kw, output_size):
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    x[0, 0, :3, :3] = 1.0  # equal values: ties within and across windows
    y, ind = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    if output_size is None:
        output_size = (7, 6)
    index = ind.numpy()
    unpool_kw = {k: v for k, v in kw.items() if k != "dilation"}
    mine, theirs = _both(lambda t: F.max_unpool2d(t, pve.tensor(index), output_size=output_size,
                                                  **unpool_kw),
                         lambda t: TF.max_unpool2d(t, ind, output_size=output_size, **unpool_kw),
                         y.numpy())
    _close(mine, theirs, rtol=0, atol=0)
    # the engine's own max_pool2d indices say the same
    py, pind = F.max_pool2d(x, return_indices=True, **kw)
    np.testing.assert_array_equal(pind.numpy(), index)
    layer = pve.nn.MaxUnpool2d(**unpool_kw)
    np.testing.assert_array_equal(layer(py[0], pind[0], output_size).numpy(), theirs[0][0])


def test_max_unpool2d_duplicates_with_one_torch_thread():
    # unequal values at one index: torch's loop order decides (unspecified across its
    # threads); on one thread it is the last, as here
    v = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)
    idx = np.array([[[[5, 5], [0, 5]]]], np.int64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mine, theirs = _both(lambda t: F.max_unpool2d(t, pve.tensor(idx), 2),
                             lambda t: TF.max_unpool2d(t, torch.tensor(idx), 2), v)
    finally:
        torch.set_num_threads(threads)
    _close(mine, theirs, rtol=0, atol=0)


@pytest.mark.parametrize("p", [2, 1, 3, 1.5, 0.5, -1.0, np.inf, -np.inf])
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=(3, 2), stride=(2, 1)),
                                dict(kernel_size=3, stride=2, ceil_mode=True)])
def test_lp_pool2d_matches_torch_with_negative_and_zero_windows(isa, p, kw):
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    x[0, 0, :3, :3] = 0.0  # all-zero windows: zero gradient
    x[1, 1] = -np.abs(x[1, 1])  # negative windows: NaN for odd and fractional p
    # (window sums that nearly cancel, and p < 1, amplify float32 rounding in the root)
    rtol = 2e-6 if p in (1, 2) else 2e-5
    _close(*_both(lambda t: F.lp_pool2d(t, p, **kw), lambda t: TF.lp_pool2d(t, p, **kw), x),
           rtol=rtol, atol=1e-5)
    _close(*_both(pve.nn.LPPool2d(p, **kw), torch.nn.LPPool2d(p, **kw), x[0]),
           rtol=rtol, atol=1e-5)


def _error_type(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 (any exception type is the point)
        return type(e)
    return None


ERROR_CASES = {
    "softshrink_negative": lambda m, x: m.softshrink(x(4), -1.0),
    "rrelu_bounds": lambda m, x: m.rrelu(x(4), 0.5, 0.1),
    "glu_odd": lambda m, x: m.glu(x(2, 5)),
    "glu_scalar": lambda m, x: m.glu(x()),
    "glu_dim": lambda m, x: m.glu(x(2, 4), 2),
    "normalize_dim": lambda m, x: m.normalize(x(4)),
    "cosine_shapes": lambda m, x: m.cosine_similarity(x(3, 4), x(3, 5)),
    "cosine_eps": lambda m, x: m.cosine_similarity(x(3, 4), x(3, 4), eps=-1.0),
    "cosine_dim": lambda m, x: m.cosine_similarity(x(4), x(4)),
    "pairwise_shapes": lambda m, x: m.pairwise_distance(x(3, 4), x(3, 5)),
    "pairwise_inf_empty": lambda m, x: m.pairwise_distance(x(3, 0), x(3, 0), p=float("inf")),
    "unfold_2d": lambda m, x: m.unfold(x(4, 4), 2),
    "unfold_5d": lambda m, x: m.unfold(x(1, 2, 1, 4, 4), 2),
    "unfold_kernel": lambda m, x: m.unfold(x(1, 2, 4, 4), 0),
    "unfold_big": lambda m, x: m.unfold(x(1, 2, 4, 4), 5),
    "unfold_3tuple": lambda m, x: m.unfold(x(1, 2, 4, 4), (2, 2, 2)),
    "fold_1d": lambda m, x: m.fold(x(8), 4, 2),
    "fold_planes": lambda m, x: m.fold(x(1, 7, 9), 4, 2),
    "fold_blocks": lambda m, x: m.fold(x(1, 8, 10), 4, 2),
    "fold_small": lambda m, x: m.fold(x(1, 8, 9), 1, 2),
    "lp_2d": lambda m, x: m.lp_pool2d(x(4, 4), 2, 2),
    "lp_5d": lambda m, x: m.lp_pool2d(x(1, 1, 1, 4, 4), 2, 2),
    "lp_big": lambda m, x: m.lp_pool2d(x(1, 4, 4), 2, 5),
    "lp_zero_norm": lambda m, x: m.lp_pool2d(x(1, 4, 4), 0, 2),
    "unpool_size_len": lambda m, x: m.max_unpool2d(x(1, 1, 2, 2), m_idx(m), 2, output_size=(6,)),
    "unpool_size_range": lambda m, x: m.max_unpool2d(x(1, 1, 2, 2), m_idx(m), 2,
                                                     output_size=(6, 6)),
    "unpool_2d": lambda m, x: m.max_unpool2d(x(2, 2), m_idx(m)[0, 0], 2),
    "unpool_shape": lambda m, x: m.max_unpool2d(x(1, 1, 2, 2), m_idx(m)[:, :, :1], 2),
    "unpool_range": lambda m, x: m.max_unpool2d(x(1, 1, 2, 2), m_idx(m) + 100, 2),
}


def m_idx(m):
    idx = np.array([[[[0, 3], [8, 15]]]], np.int64)
    return torch.tensor(idx) if m is TF else pve.tensor(idx)


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_are_torchs_types(case):
    call = ERROR_CASES[case]
    theirs = _error_type(lambda: call(TF, lambda *s: torch.ones(s)))
    mine = _error_type(lambda: call(F, lambda *s: pve.ones(*s) if s else pve.tensor(1.0)))
    assert theirs is not None and mine is not None, (theirs, mine)
    assert issubclass(mine, theirs), f"torch raises {theirs.__name__}, pve {mine.__mro__}"


def test_one_hot_errors_are_torchs_types():
    for args in [([0, -1],), ([0, 3], 3), (np.zeros(0, np.int64),), ([0, 1], 0)]:
        theirs = _error_type(lambda: TF.one_hot(torch.tensor(np.asarray(args[0], np.int64)),
                                                *args[1:]))
        mine = _error_type(lambda: F.one_hot(pve.tensor(np.asarray(args[0], np.int64)), *args[1:]))
        assert theirs is RuntimeError and issubclass(mine, RuntimeError)
    assert issubclass(_error_type(lambda: F.one_hot(pve.tensor([0.0, 1.0]))), RuntimeError)


@pytest.mark.parametrize("make", [
    lambda nn: nn.Hardshrink(), lambda nn: nn.Softshrink(0.3), lambda nn: nn.RReLU(),
    lambda nn: nn.RReLU(0.1, 0.2, True), lambda nn: nn.GLU(), lambda nn: nn.GLU(1),
    lambda nn: nn.CosineSimilarity(), lambda nn: nn.PairwiseDistance(1.0, keepdim=True),
    lambda nn: nn.Unfold(3), lambda nn: nn.Unfold((2, 3), 2, 1, (1, 2)),
    lambda nn: nn.Fold(4, 2), lambda nn: nn.Fold((4, 5), (2, 2), stride=2),
    lambda nn: nn.MaxUnpool2d(2), lambda nn: nn.MaxUnpool2d((3, 2), 1, 1),
    lambda nn: nn.LPPool2d(2, 3), lambda nn: nn.LPPool2d(1.5, (3, 2), 1, True),
])
def test_reprs_and_state_dicts_match_torch(make):
    mine, theirs = make(pve.nn), make(torch.nn)
    assert repr(mine) == repr(theirs)
    assert list(mine.state_dict()) == list(theirs.state_dict())
