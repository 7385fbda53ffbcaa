"""The margin, embedding and likelihood losses against live torch (skipped without it):
values and gradients for every reduction (torch in float64, the engine in float32),
weights, margins, swap, ties at the hinge, zero vectors for the cosine, var shapes
for gaussian_nll_loss, the legacy size_average/reduce flags, modules, and error types."""

import itertools
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyvision_engine as pve  # noqa: E402
from layers_helpers import compare_with_torch, torch_arg  # noqa: E402

TF = torch.nn.functional
F = pve.nn.functional
REDUCTIONS = ["none", "mean", "sum"]
rng = np.random.default_rng(11)


def _f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _signs(*shape):
    return rng.choice([-1.0, 1.0], shape).astype(np.float32)


def _torch_arg(v, grad=False):
    return torch_arg(torch, v, grad)


def _compare(name, inputs, kwargs=None, grad_of=(0,), rtol=2e-5, atol=2e-6):
    compare_with_torch(torch, name, inputs, kwargs, grad_of, rtol, atol, rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(5,), (4, 5), (2, 3, 5)])
@pytest.mark.parametrize("weighted", [False, True])
def test_multilabel_soft_margin(reduction, shape, weighted):
    kw = dict(reduction=reduction)
    if weighted:
        kw["weight"] = rng.uniform(0.5, 2, shape[-1:]).astype(np.float32)
    target = rng.integers(0, 2, shape).astype(np.float32)
    _compare("multilabel_soft_margin_loss", [_f32(*shape) * 3, target], kw)


def _multilabel_targets(n, c):
    t = np.full((n, c), -1, dtype=np.int64)
    for row in t:
        k = rng.integers(0, c + 1)
        row[:k] = rng.choice(c, k, replace=False)
        if k < c - 1:
            row[k + 1:] = rng.integers(0, c, c - k - 1)  # after the -1: ignored
    return t


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_margin(reduction):
    x, t = _f32(6, 5), _multilabel_targets(6, 5)
    t[0] = [1, 1, 3, -1, 0]  # a repeated target counts twice
    _compare("multilabel_margin_loss", [x, t], dict(reduction=reduction))
    _compare("multilabel_margin_loss", [x[1], t[1]], dict(reduction=reduction))
    _compare("multilabel_margin_loss", [x[0, :1].reshape(()), np.array([0])], dict(reduction=reduction))


def test_multilabel_margin_ties_and_empty_batch():
    # z = 1 - x[y] + x[i] exactly 0: no loss and no gradient there, as torch's kernel
    x = np.array([[1.0, 0.0, 0.5, -2.0]], dtype=np.float32)
    _compare("multilabel_margin_loss", [x, np.array([[0, -1, 0, 0]])], dict(reduction="sum"))
    for reduction in REDUCTIONS:
        _compare("multilabel_margin_loss", [np.zeros((0, 4), np.float32),
                                            np.zeros((0, 4), np.int64)],
                 dict(reduction=reduction), grad_of=())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,margin,weighted", [(1, 1.0, False), (2, 1.0, False),
                                               (1, 0.3, True), (2, 2.5, True)])
def test_multi_margin(reduction, p, margin, weighted):
    kw = dict(p=p, margin=margin, reduction=reduction)
    if weighted:
        kw["weight"] = rng.uniform(0.5, 2, 5).astype(np.float32)
    x, t = _f32(7, 5), rng.integers(0, 5, 7)
    x[0, 1] = x[0, t[0]] - margin if t[0] != 1 else x[0, 1]  # a tie at the hinge
    _compare("multi_margin_loss", [x, t], kw)
    _compare("multi_margin_loss", [x[2], t[2:3]], kw)
    _compare("multi_margin_loss", [x[2], np.array(t[2])], kw)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_soft_margin(reduction):
    _compare("soft_margin_loss", [_f32(4, 6) * 4, _signs(4, 6)], dict(reduction=reduction))
    _compare("soft_margin_loss", [_f32(4, 6), _signs(6)], dict(reduction=reduction))


def test_soft_margin_overflows_in_float32_as_torch():
    # exp(100) is inf in float32: torch's float32 loss is inf and its gradient NaN
    x = torch.tensor([100.0, 1.0], requires_grad=True)
    t = torch.tensor([-1.0, 1.0])
    out_t = TF.soft_margin_loss(x, t, reduction="none")
    out_t.sum().backward()
    xp = pve.tensor(np.array([100.0, 1.0], np.float32), requires_grad=True)
    out_p = F.soft_margin_loss(xp, np.array([-1.0, 1.0], np.float32), reduction="none")
    out_p.sum().backward()
    np.testing.assert_allclose(out_p.detach().numpy(), out_t.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(xp.grad.numpy(), x.grad.numpy(), rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_margin_ranking(reduction, margin):
    x1, x2 = _f32(8), _f32(8)
    t = _signs(8)
    x2[0] = x1[0] + t[0] * margin  # exactly at the hinge: the gradient passes, as torch's
    _compare("margin_ranking_loss", [x1, x2, t], dict(margin=margin, reduction=reduction),
             grad_of=(0, 1))
    _compare("margin_ranking_loss", [x1, x2, t.astype(np.int64)], dict(margin=margin,
                                                                       reduction=reduction),
             grad_of=(0, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [1.0, 0.25])  # (exact in float32: a tie in both)
def test_hinge_embedding(reduction, margin):
    x = _f32(3, 7)
    t = _signs(3, 7)
    x[0, 0], t[0, 0] = margin, -1  # at the hinge
    t[1, 1] = 0.0  # neither label: both terms, as torch's kernel
    _compare("hinge_embedding_loss", [x, t], dict(margin=margin, reduction=reduction))
    _compare("hinge_embedding_loss", [x, t.astype(np.int64)], dict(margin=margin,
                                                                   reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.4, -0.3])
def test_cosine_embedding(reduction, margin):
    x1, x2 = _f32(6, 5), _f32(6, 5)
    x1[0] = 0.0  # a zero vector: cosine 0 (torch's eps under the square root)
    x2[1] = 0.0
    x2[2] = -3 * x1[2]
    t = _signs(6)
    _compare("cosine_embedding_loss", [x1, x2, t], dict(margin=margin, reduction=reduction),
             grad_of=(0, 1))
    _compare("cosine_embedding_loss", [x1[3], x2[3], np.array(-1.0, np.float32)],
             dict(margin=margin, reduction=reduction), grad_of=(0, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,swap", itertools.product([2.0, 1.0, 3.0], [False, True]))
def test_triplet_margin(reduction, p, swap):
    a, pos, neg = _f32(6, 4), _f32(6, 4), _f32(6, 4)
    neg[0] = pos[0]  # d(p, n) = eps-distance: swap picks it
    _compare("triplet_margin_loss", [a, pos, neg],
             dict(margin=0.7, p=p, swap=swap, reduction=reduction), grad_of=(0, 1, 2))
    _compare("triplet_margin_loss", [a[1], pos[1], neg[1]], dict(p=p, swap=swap,
                                                                 reduction=reduction),
             grad_of=(0, 1, 2))


def test_triplet_swap_tie_splits_gradient():
    # d(a, n) == d(p, n): minimum's tie rule (half each), as torch's
    a = np.array([[0.0, 0.0]], np.float32)
    pos = np.array([[2.0, 0.0]], np.float32)
    neg = np.array([[1.0, 0.5]], np.float32)
    _compare("triplet_margin_loss", [a, pos, neg], dict(margin=5.0, swap=True, eps=0.0),
             grad_of=(0, 1, 2))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_with_distance(reduction, swap):
    a, pos, neg = _f32(5, 3), _f32(5, 3), _f32(5, 3)
    _compare("triplet_margin_with_distance_loss", [a, pos, neg],
             dict(swap=swap, reduction=reduction, margin=1.5), grad_of=(0, 1, 2))
    ours = [pve.tensor(v, requires_grad=True) for v in (a, pos, neg)]
    theirs = [torch.tensor(v.astype(np.float64), requires_grad=True) for v in (a, pos, neg)]
    out_p = F.triplet_margin_with_distance_loss(
        *ours, distance_function=lambda x, y: 1.0 - F.cosine_similarity(x, y), swap=swap,
        reduction=reduction)
    out_t = TF.triplet_margin_with_distance_loss(
        *theirs, distance_function=lambda x, y: 1.0 - TF.cosine_similarity(x, y), swap=swap,
        reduction=reduction)
    np.testing.assert_allclose(out_p.detach().numpy(), out_t.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    out_p.sum().backward()
    out_t.sum().backward()
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input,full", itertools.product([True, False], [False, True]))
def test_poisson_nll(reduction, log_input, full):
    x = _f32(4, 5) if log_input else rng.uniform(0.05, 3, (4, 5)).astype(np.float32)
    t = rng.poisson(2.0, (4, 5)).astype(np.float32) + rng.uniform(0, 1, (4, 5)).astype(
        np.float32)
    t[0, :3] = [0.5, 1.0, 1.5]  # Stirling's term only where t > 1
    _compare("poisson_nll_loss", [x, t], dict(log_input=log_input, full=full,
                                              reduction=reduction), grad_of=(0, 1))
    _compare("poisson_nll_loss", [x, t], dict(log_input=log_input, full=full, eps=0.5,
                                              reduction=reduction))


VAR_SHAPES = [((4, 3), (4, 3)), ((4, 3), (4,)), ((4, 3), (4, 1)), ((2, 3, 5), (2, 1, 5)),
              ((2, 3, 5), (2, 3)), ((5,), ())]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shapes", VAR_SHAPES)
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll(reduction, shapes, full):
    xs, vs = shapes
    var = rng.uniform(0.1, 2, vs).astype(np.float32)
    if var.size > 1:
        var.flat[0] = 1e-9  # clamped to eps, the gradient passing unclamped (torch's no_grad clamp)
    _compare("gaussian_nll_loss", [_f32(*xs), _f32(*xs), var],
             dict(full=full, reduction=reduction), grad_of=(0, 1, 2), rtol=1e-4)


def test_gaussian_nll_float_var_and_eps():
    x, t = _f32(3, 4), _f32(3, 4)
    for var in (0.7, 0.0):
        _compare("gaussian_nll_loss", [x, t, var], dict(eps=1e-3), grad_of=(0, 1))


def _torch_error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - any error torch raises is the reference
        return type(e)
    return None


ERROR_CASES = [
    ("multilabel_margin_loss", lambda m: ((m.zeros((3, 4)), m.zeros((3, 3)).long()), {})),
    ("multilabel_margin_loss", lambda m: ((m.zeros((3, 4)), m.full((3, 4), 4).long()), {})),
    ("multilabel_margin_loss", lambda m: ((m.zeros((3, 4)), m.zeros((3, 4))), {})),
    ("multilabel_margin_loss", lambda m: ((m.zeros((2, 3, 4)), m.zeros((2, 3, 4)).long()), {})),
    ("multi_margin_loss", lambda m: ((m.zeros((3, 4)), m.zeros(2).long()), {})),
    ("multi_margin_loss", lambda m: ((m.zeros((3, 4)), m.full((3,), 4).long()), {})),
    ("multi_margin_loss", lambda m: ((m.zeros((3, 4)), m.zeros(3).long()), dict(p=3))),
    ("multi_margin_loss", lambda m: ((m.zeros((3, 4)), m.zeros(3).long()),
                                     dict(weight=m.ones((1, 4))))),
    ("multi_margin_loss", lambda m: ((m.zeros((3, 4)), m.zeros(3).long()),
                                     dict(weight=m.ones(3)))),
    ("multi_margin_loss", lambda m: ((m.zeros((3, 4)), m.zeros(3)), {})),
    ("soft_margin_loss", lambda m: ((m.zeros(4), m.zeros((3, 4))), {})),
    ("soft_margin_loss", lambda m: ((m.zeros(4), m.zeros(4)), dict(reduction="avg"))),
    ("margin_ranking_loss", lambda m: ((m.zeros(2), m.zeros((1, 2)), m.zeros(2)), {})),
    ("cosine_embedding_loss", lambda m: ((m.zeros((3, 4)), m.zeros((3, 4)), m.zeros((3, 1))),
                                         {})),
    ("cosine_embedding_loss", lambda m: ((m.zeros(4), m.zeros((3, 4)), m.zeros(3)), {})),
    ("cosine_embedding_loss", lambda m: ((m.zeros((3, 4)), m.zeros((3, 4)), m.zeros(2)), {})),
    ("triplet_margin_loss", lambda m: ((m.zeros((3, 4)), m.zeros(4), m.zeros((3, 4))), {})),
    ("triplet_margin_loss", lambda m: ((m.zeros((3, 4)),) * 3, dict(margin=0.0))),
    ("triplet_margin_with_distance_loss", lambda m: ((m.zeros((3, 4)),) * 3,
                                                     dict(margin=-1.0))),
    ("triplet_margin_with_distance_loss", lambda m: ((m.zeros((3, 4)),) * 3,
                                                     dict(reduction="avg"))),
    ("poisson_nll_loss", lambda m: ((m.zeros(4), m.zeros(4)), dict(reduction="avg"))),
    ("gaussian_nll_loss", lambda m: ((m.zeros((3, 4)), m.zeros((3, 4)), m.ones((3, 2))), {})),
    ("gaussian_nll_loss", lambda m: ((m.zeros((3, 4)), m.zeros((3, 4)), -1.0), {})),
    ("gaussian_nll_loss", lambda m: ((m.zeros((3, 4)), m.zeros((3, 4)), -m.ones((3, 4))), {})),
    ("gaussian_nll_loss", lambda m: ((m.zeros((3, 4)), m.zeros((3, 4)), m.ones((3, 4))),
                                     dict(reduction="avg"))),
    ("multilabel_soft_margin_loss", lambda m: ((m.zeros((3, 4)), m.zeros((3, 3))), {})),
    ("multilabel_soft_margin_loss", lambda m: ((m.zeros(()), m.zeros(())), {})),
    ("multilabel_soft_margin_loss", lambda m: ((m.zeros(4), m.zeros(4)),
                                               dict(reduction="avg"))),
]


class _PveMaker:
    @staticmethod
    def zeros(shape):
        return pve.tensor(np.zeros(shape, np.float32))

    @staticmethod
    def ones(shape):
        return pve.tensor(np.ones(shape, np.float32))

    @staticmethod
    def full(shape, v):
        return pve.tensor(np.full(shape, v, np.float32))


class _TorchMaker:
    @staticmethod
    def zeros(shape):
        return torch.zeros(shape)

    @staticmethod
    def ones(shape):
        return torch.ones(shape)

    @staticmethod
    def full(shape, v):
        return torch.full(shape, float(v))


@pytest.mark.parametrize("case", range(len(ERROR_CASES)))
def test_errors_have_torch_types(case):
    name, make = ERROR_CASES[case]
    t_args, t_kw = make(_TorchMaker)
    expected = _torch_error(lambda: getattr(TF, name)(*t_args, **t_kw))
    assert expected is not None, f"torch accepts case {case}"
    p_args, p_kw = make(_PveMaker)
    with pytest.raises(expected) as info:
        getattr(F, name)(*p_args, **p_kw)
    assert name in str(info.value) or "MultiMarginLoss" in str(info.value)


def test_refused_gradients_match_torch():
    w = torch.ones(4, requires_grad=True)
    with pytest.raises(RuntimeError):
        TF.multi_margin_loss(torch.zeros(3, 4), torch.zeros(3).long(), weight=w)
    with pytest.raises(RuntimeError, match="multi_margin_loss"):
        F.multi_margin_loss(np.zeros((3, 4), np.float32), np.zeros(3, np.int64),
                            weight=pve.tensor(np.ones(4, np.float32), requires_grad=True))
    with pytest.raises(RuntimeError, match="soft_margin_loss"):
        F.soft_margin_loss(np.zeros(3, np.float32),
                           pve.tensor(np.ones(3, np.float32), requires_grad=True))


MODULES = [
    ("MultiLabelSoftMarginLoss", dict(weight=np.array([1.0, 2.0, 0.5, 1.0], np.float32)),
     lambda: (_f32(3, 4), rng.integers(0, 2, (3, 4)).astype(np.float32))),
    ("MultiLabelMarginLoss", {}, lambda: (_f32(3, 4), _multilabel_targets(3, 4))),
    ("MultiMarginLoss", dict(p=2, margin=0.5, weight=np.array([1.0, 2.0, 0.5, 1.0], np.float32)),
     lambda: (_f32(3, 4), rng.integers(0, 4, 3))),
    ("SoftMarginLoss", {}, lambda: (_f32(3, 4), _signs(3, 4))),
    ("MarginRankingLoss", dict(margin=0.3), lambda: (_f32(5), _f32(5), _signs(5))),
    ("HingeEmbeddingLoss", dict(margin=0.5), lambda: (_f32(5), _signs(5))),
    ("CosineEmbeddingLoss", dict(margin=0.2), lambda: (_f32(3, 4), _f32(3, 4), _signs(3))),
    ("TripletMarginLoss", dict(margin=0.5, p=1.0, eps=1e-3, swap=True),
     lambda: (_f32(3, 4), _f32(3, 4), _f32(3, 4))),
    ("PoissonNLLLoss", dict(log_input=False, full=True, eps=1e-4),
     lambda: (rng.uniform(0.1, 3, 6).astype(np.float32), rng.uniform(0, 4, 6).astype(np.float32))),
]


@pytest.mark.parametrize("legacy", [None, (False, True), (True, False), (None, False)])
@pytest.mark.parametrize("case", range(len(MODULES)))
def test_modules_and_legacy_flags(case, legacy):
    name, kw, make = MODULES[case]
    inputs = make()
    kw = dict(kw)
    if legacy is not None:
        kw["size_average"], kw["reduce"] = legacy
    tkw = {k: _torch_arg(v) for k, v in kw.items()}
    with warnings.catch_warnings(record=True) as theirs_w:
        warnings.simplefilter("always")
        tm = getattr(torch.nn, name)(**tkw)
    with warnings.catch_warnings(record=True) as ours_w:
        warnings.simplefilter("always")
        pm = getattr(pve.nn, name)(**kw)
    assert [str(w.message) for w in ours_w] == [str(w.message) for w in theirs_w]
    assert pm.reduction == tm.reduction
    out_t = tm(*[_torch_arg(a) for a in inputs])
    out_p = pm(*inputs)
    np.testing.assert_allclose(out_p.numpy(), out_t.numpy(), rtol=2e-5, atol=2e-6)
    assert sorted(pm.state_dict()) == sorted(tm.state_dict())


def test_keyword_only_modules():
    m = pve.nn.GaussianNLLLoss(full=True, eps=1e-3, reduction="sum")
    tm = torch.nn.GaussianNLLLoss(full=True, eps=1e-3, reduction="sum")
    x, t, v = _f32(4, 3), _f32(4, 3), rng.uniform(0.1, 1, (4, 1)).astype(np.float32)
    np.testing.assert_allclose(m(x, t, v).numpy(), tm(*map(_torch_arg, (x, t, v))).numpy(),
                               rtol=1e-5)
    with pytest.raises(TypeError):
        pve.nn.GaussianNLLLoss(True)
    d = pve.nn.TripletMarginWithDistanceLoss(margin=2.0, swap=True)
    td = torch.nn.TripletMarginWithDistanceLoss(margin=2.0, swap=True)
    assert [n for n, _ in d.named_modules()] == [n for n, _ in td.named_modules()]
    a, p, n = _f32(3, 4), _f32(3, 4), _f32(3, 4)
    np.testing.assert_allclose(d(a, p, n).numpy(), td(*map(_torch_arg, (a, p, n))).numpy(),
                               rtol=1e-5)
    for cls in ("TripletMarginLoss", "TripletMarginWithDistanceLoss"):
        with pytest.raises(ValueError, match=cls):
            getattr(pve.nn, cls)(margin=0.0)
    with pytest.raises(ValueError, match="MultiMarginLoss"):
        pve.nn.MultiMarginLoss(weight=np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="MultiMarginLoss"):
        pve.nn.MultiMarginLoss(p=3)


def test_constants_and_defaults_match_torch():
    import inspect
    for name in ("multilabel_soft_margin_loss", "multilabel_margin_loss", "multi_margin_loss",
                 "soft_margin_loss", "margin_ranking_loss", "hinge_embedding_loss",
                 "cosine_embedding_loss", "triplet_margin_loss",
                 "triplet_margin_with_distance_loss", "poisson_nll_loss", "gaussian_nll_loss"):
        ours = inspect.signature(getattr(F, name)).parameters
        theirs = inspect.signature(getattr(TF, name)).parameters
        assert list(ours) == list(theirs), name
        for k in ours:
            assert ours[k].default == theirs[k].default and ours[k].kind == theirs[k].kind, (name, k)
    for name, _, _ in MODULES + [("GaussianNLLLoss", 0, 0), ("TripletMarginWithDistanceLoss", 0, 0)]:
        ours = inspect.signature(getattr(pve.nn, name)).parameters
        theirs = inspect.signature(getattr(torch.nn, name)).parameters
        assert list(ours) == list(theirs), name
        for k in ours:
            assert ours[k].default == theirs[k].default and ours[k].kind == theirs[k].kind, (name, k)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (numpy's, from inf - inf in core ops)
def test_nan_and_inf_propagate_like_torch():
    x = np.array([[np.nan, 1.0, 2.0], [np.inf, -1.0, 0.0]], np.float32)
    t = np.array([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]], np.float32)
    _compare("hinge_embedding_loss", [x, t], dict(reduction="none"))
    _compare("soft_margin_loss", [x, t], dict(reduction="none"))
    _compare("poisson_nll_loss", [np.abs(x), np.abs(t)], dict(reduction="none"))
    assert math.isnan(F.margin_ranking_loss(x[0], x[1], t[0]).item())
