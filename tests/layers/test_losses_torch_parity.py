"""Loss functionals and modules against live torch (skipped without it): forward
values and input/target gradients (torch in float64, the engine in float32),
weighted means, label smoothing with weights and ignore_index, probability and
K-dim targets, the losses' warnings and error types."""

import itertools
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyvision_engine as pve  # noqa: E402
from layers_helpers import compare_with_torch  # noqa: E402

TF = torch.nn.functional
F = pve.nn.functional
rng = np.random.default_rng(7)


def _f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _compare(name, inputs, kwargs, grad_of=(0,), rtol=2e-5, atol=2e-6):
    compare_with_torch(torch, name, inputs, kwargs, grad_of, rtol, atol, rng)


C = 5
SHAPES = [(C,), (4, C), (3, C, 2, 3)]


def _class_targets(shape, count_ignored=True):
    tshape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    t = rng.integers(0, C, tshape).astype(np.int64)
    if count_ignored and t.ndim:
        t.flat[0] = 1  # ignore_index=1 below then ignores at least one entry
    return t


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction,smoothing,weighted,ignore_index",
                         list(itertools.product(["none", "sum", "mean"], [0.0, 0.3], [False, True],
                                                [-100, 1])))
def test_cross_entropy_class_targets(shape, reduction, smoothing, weighted, ignore_index):
    kw = dict(reduction=reduction, label_smoothing=smoothing, ignore_index=ignore_index)
    if weighted:
        kw["weight"] = rng.uniform(0.5, 2.0, C).astype(np.float32)
    _compare("cross_entropy", [_f32(*shape), _class_targets(shape)], kw)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction,smoothing,weighted",
                         list(itertools.product(["none", "sum", "mean"], [0.0, 0.3],
                                                [False, True])))
def test_cross_entropy_probability_targets(shape, reduction, smoothing, weighted):
    probs = np.moveaxis(rng.dirichlet(np.ones(C), size=shape[:1] + shape[2:] if len(shape) > 1
                                      else ()), -1, min(1, len(shape) - 1)).astype(np.float32)
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    if weighted:
        kw["weight"] = rng.uniform(0.5, 2.0, C).astype(np.float32)
    _compare("cross_entropy", [_f32(*shape), np.ascontiguousarray(probs)], kw)
    # targets that require grad (a teacher trained along with its student)
    _compare("cross_entropy", [_f32(*shape), np.ascontiguousarray(probs)], kw, grad_of=(0, 1))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction,weighted,ignore_index",
                         list(itertools.product(["none", "sum", "mean"], [False, True], [-100, 1])))
def test_nll_loss(shape, reduction, weighted, ignore_index):
    kw = dict(reduction=reduction, ignore_index=ignore_index)
    if weighted:
        kw["weight"] = rng.uniform(0.5, 2.0, C).astype(np.float32)
    _compare("nll_loss", [_f32(*shape), _class_targets(shape)], kw)


@pytest.mark.parametrize("name,extra", [
    ("mse_loss", {}), ("l1_loss", {}),
    ("smooth_l1_loss", {"beta": 0.0}), ("smooth_l1_loss", {"beta": 0.5}),
    ("smooth_l1_loss", {"beta": 2.0}), ("huber_loss", {"delta": 0.5}), ("huber_loss", {}),
    ("huber_loss", {"delta": 2.0}),
])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_pointwise_losses(name, extra, reduction):
    x, y = _f32(3, 4) * 2, _f32(3, 4)
    y[0, :2] = x[0, :2]  # ties: the gradient at d = 0
    _compare(name, [x, y], dict(reduction=reduction, **extra), grad_of=(0, 1))


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_weighted_pointwise_losses(name, reduction):
    # huber_loss's weighted 'mean' is mean(w * loss); the others' sum(w * loss) / sum(w)
    _compare(name, [_f32(3, 4), _f32(3, 4)],
             dict(reduction=reduction, weight=rng.uniform(0, 2, (3, 4)).astype(np.float32)),
             grad_of=(0, 1))


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
def test_pointwise_losses_broadcast_with_torchs_warning(name):
    x, y = _f32(3, 1), _f32(4)
    with pytest.warns(UserWarning, match="different to the input size"):
        getattr(F, name)(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _compare(name, [x, y], {}, grad_of=(0, 1))
    with pytest.raises(RuntimeError), pytest.warns(UserWarning):
        getattr(TF, name)(torch.zeros(3, 4), torch.zeros(3))
    with pytest.raises(RuntimeError):  # and a ValueError: the engine's contract
        getattr(F, name)(np.zeros((3, 4), np.float32), np.zeros(3, np.float32))


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weight_shape", [None, (4,), (3, 4)])
def test_binary_cross_entropy(reduction, weight_shape):
    p = rng.uniform(0, 1, (3, 4)).astype(np.float32)
    t = rng.uniform(0, 1, (3, 4)).astype(np.float32)
    p[0, 0], t[0, 0] = 0.0, 1.0  # log(0) clamped to -100
    p[0, 1], t[0, 1] = 1.0, 0.0
    kw = dict(reduction=reduction)
    if weight_shape:
        kw["weight"] = rng.uniform(0, 2, weight_shape).astype(np.float32)
    _compare("binary_cross_entropy", [p, t], kw, grad_of=(0,))
    p[0, :2] = 0.3  # away from the clamp the target gradient is smooth too
    _compare("binary_cross_entropy", [p, t], kw, grad_of=(0, 1))


def test_binary_cross_entropy_errors():
    p, t = np.full((3, 4), 0.5, np.float32), np.full((3, 4), 0.5, np.float32)
    with pytest.raises(ValueError, match="different to the input size"):
        F.binary_cross_entropy(p, t[:, :1])
    with pytest.raises(ValueError):
        TF.binary_cross_entropy(torch.tensor(p), torch.tensor(t[:, :1]))
    with pytest.raises(RuntimeError):
        TF.binary_cross_entropy(torch.tensor(p + 1), torch.tensor(t))
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(p + 1, t)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted,pos_weighted", [(False, False), (True, False), (False, True),
                                                   (True, True)])
def test_binary_cross_entropy_with_logits(reduction, weighted, pos_weighted):
    kw = dict(reduction=reduction)
    if weighted:
        kw["weight"] = rng.uniform(0, 2, (3, 4)).astype(np.float32)
    if pos_weighted:
        kw["pos_weight"] = rng.uniform(0, 2, 4).astype(np.float32)
    _compare("binary_cross_entropy_with_logits",
             [_f32(3, 4) * 5, rng.uniform(0, 1, (3, 4)).astype(np.float32)], kw, grad_of=(0, 1))


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    log_p = np.log(rng.dirichlet(np.ones(4), 3)).astype(np.float32)
    target = rng.dirichlet(np.ones(4), 3).astype(np.float32)
    target[0, 0] = 0.0  # contributes 0 (xlogy); its target gradient is NaN, as torch's
    if log_target:
        target = np.log(target + 1e-3).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'mean' warns (tested below)
        _compare("kl_div", [log_p, target], dict(reduction=reduction, log_target=log_target),
                 grad_of=(0, 1))


def test_kl_div_mean_warns_as_torch():
    x = np.zeros((2, 3), np.float32)
    with pytest.warns(UserWarning, match="batchmean"):
        F.kl_div(x, x + 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.kl_div(x, x + 0.5, reduction="batchmean")


class _TorchArgs:
    """torch.nn.functional with numpy arguments turned into tensors."""

    def __getattr__(self, name):
        def call(*args, **kwargs):
            conv = (lambda v: torch.from_numpy(v) if isinstance(v, np.ndarray) else v)
            return getattr(TF, name)(*map(conv, args), **{k: conv(v) for k, v in kwargs.items()})
        return call


_TORCH = _TorchArgs()


def test_error_types_match_torch():
    x, t = np.zeros((4, C), np.float32), np.zeros(4, np.int64)
    cases = [
        # torch raises RuntimeError for each; the engine's errors are also ValueError/TypeError
        (lambda m: m.cross_entropy(x, np.zeros((4, C + 1), np.float32)), RuntimeError),
        (lambda m: m.cross_entropy(x, t, weight=np.ones(3, np.float32)), RuntimeError),
        (lambda m: m.cross_entropy(x, t, label_smoothing=1.5), RuntimeError),
        (lambda m: m.cross_entropy(x, np.full((4, C), 0.2, np.float32), ignore_index=1),
         RuntimeError),
        (lambda m: m.nll_loss(x, np.zeros(4, np.float32)), RuntimeError),
        (lambda m: m.smooth_l1_loss(x, x, beta=-1.0), RuntimeError),
        (lambda m: m.huber_loss(x, x, delta=0.0), RuntimeError),
        (lambda m: m.cross_entropy(x, np.zeros(3, np.int64)), ValueError),
        (lambda m: m.binary_cross_entropy_with_logits(x, x[:2]), ValueError),
        (lambda m: m.mse_loss(x, x, reduction="avg"), ValueError),
        (lambda m: m.mse_loss(x, x, weight=np.ones(C, np.float32)), ValueError),
    ]
    for call, error in cases:
        with pytest.raises(error):
            call(_TORCH)
        with pytest.raises(error):
            call(F)


def test_legacy_size_average_and_reduce_warn_and_map_as_torch():
    x, y = _f32(3, 4), _f32(3, 4)
    for size_average, reduce in [(False, None), (None, False), (True, True)]:
        with pytest.warns(UserWarning, match="size_average and reduce"):
            ours = F.mse_loss(x, y, size_average=size_average, reduce=reduce)
        with pytest.warns(UserWarning, match="size_average and reduce"):
            theirs = TF.mse_loss(torch.tensor(x), torch.tensor(y), size_average=size_average,
                                 reduce=reduce)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5)


@pytest.mark.parametrize("name,kwargs", [
    ("CrossEntropyLoss", dict(label_smoothing=0.1, ignore_index=2)),
    ("NLLLoss", dict(reduction="sum")), ("MSELoss", {}), ("L1Loss", dict(reduction="none")),
    ("SmoothL1Loss", dict(beta=0.5)), ("HuberLoss", dict(delta=0.5)), ("BCELoss", {}),
    ("BCEWithLogitsLoss", {}), ("KLDivLoss", dict(reduction="batchmean", log_target=True)),
])
def test_loss_modules_match_torch(name, kwargs):
    if name in ("CrossEntropyLoss", "NLLLoss"):
        x, t = _f32(4, C), _class_targets((4, C))
    elif name == "BCELoss":
        x, t = rng.uniform(0, 1, (3, 4)).astype(np.float32), rng.uniform(0, 1, (3, 4)).astype(
            np.float32)
    else:
        x, t = _f32(3, 4), _f32(3, 4)
    ours = getattr(pve.nn, name)(**kwargs)(x, t)
    theirs = getattr(torch.nn, name)(**kwargs)(torch.tensor(x), torch.tensor(t))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_loss_modules_defer_reduction_errors_to_forward_as_torch():
    module = pve.nn.MSELoss(reduction="avg")  # torch constructs it too
    torch.nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError):
        module(np.zeros(2, np.float32), np.zeros(2, np.float32))
    with pytest.raises(TypeError):
        pve.nn.HuberLoss(delta="1")
    with pytest.raises(TypeError):
        torch.nn.HuberLoss(delta="1")
