"""F.linear_cross_entropy / nn.LinearCrossEntropyLoss against a float64 numpy reference
(linear projection, log-softmax, weighted / smoothed / soft-target cross entropy),
float64 finite differences, and torch 2.13 (values, gradients, errors, state_dict)."""

import numpy as np
import pytest

import pyvision_engine as pve
import pyvision_engine.nn.functional as F
from pyvision_engine.nn import LinearCrossEntropyLoss
from reference.gradcheck import assert_grad_close, numerical_grads

rng = np.random.default_rng(29)


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="torch parity tests need torch")


# ---------------------------------------------------------------- float64 reference
def ref_lce(x, w, target, bias=None, weight=None, reduction="mean", ignore_index=-100,
            label_smoothing=0.0):
    """Cross entropy of logits x @ W^T (+ b), computed per position in float64.

    x (F,) or (N, F); w (C, *K, F); class-index target (), (N,), (N, *K) or
    probability target with the logits' shape (N, C, *K) / (C,)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    c = w.shape[0]
    logits = np.tensordot(x, w, axes=([-1], [-1]))  # (*batch, C, *K)
    if bias is not None:
        logits = logits + bias
    unbatched = x.ndim == 1
    if unbatched:
        logits = logits[None]
        target = np.asarray(target)[None]
    z = np.moveaxis(logits, 1, -1)  # (N, *K, C)
    lp = z - z.max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    cw = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    target = np.asarray(target)
    if target.dtype.kind == "f":  # probabilities along dim 1
        p = np.moveaxis(target.astype(np.float64), 1, -1)
        p = p * (1 - label_smoothing) + label_smoothing / c
        loss = -(p * lp * cw).sum(-1)
        if reduction == "mean":
            return loss.mean()
        return loss.sum() if reduction == "sum" else (loss[0] if unbatched else loss)
    keep = target != ignore_index
    safe = np.where(keep, target, 0)
    nll = -np.take_along_axis(lp, safe[..., None], -1)[..., 0] * cw[safe]
    smooth = -(lp * cw).sum(-1) / c
    loss = np.where(keep, (1 - label_smoothing) * nll + label_smoothing * smooth, 0.0)
    if reduction == "mean":
        return loss.sum() / np.where(keep, cw[safe], 0.0).sum()
    if reduction == "sum":
        return loss.sum()
    return loss[0] if unbatched else loss


CASES = [  # batch, in_features, classes, K dims, bias, weight, reduction, ignore, smoothing
    (6, 5, 4, (), False, False, "mean", None, 0.0),
    (6, 5, 4, (), True, True, "sum", 2, 0.0),
    (7, 3, 5, (), True, False, "none", None, 0.2),
    (4, 6, 3, (2, 3), True, True, "mean", 1, 0.1),
    (5, 4, 6, (3,), False, False, "none", 0, 0.0),
    (None, 5, 4, (), True, True, "none", None, 0.0),
    (None, 5, 4, (), False, False, "mean", None, 0.3),
]


def _inputs(batch, in_features, classes, k_dims, bias, weight, probabilities=False):
    x = rng.standard_normal((in_features,) if batch is None else (batch, in_features))
    w = rng.standard_normal((classes,) + k_dims + (in_features,)) * 0.7
    b = rng.standard_normal((classes,) + k_dims) if bias else None
    cw = rng.uniform(0.5, 2.0, classes) if weight else None
    target_shape = () if batch is None else (batch,) + k_dims
    if probabilities:
        shape = (classes,) if batch is None else (batch, classes) + k_dims
        t = rng.uniform(0.1, 1.0, shape)
        target = (t / t.sum(axis=0 if batch is None else 1, keepdims=True)).astype(np.float32)
    else:
        target = rng.integers(0, classes, size=target_shape)
    return x, w, b, cw, target


def _f32(a):
    return None if a is None else a.astype(np.float32)


@pytest.mark.parametrize("case", CASES)
def test_matches_reference_and_finite_differences(case):
    batch, in_features, classes, k_dims, bias, weight, reduction, ignore, smoothing = case
    x, w, b, cw, target = _inputs(batch, in_features, classes, k_dims, bias, weight)
    if ignore is not None and batch is not None:
        target.reshape(-1)[::3] = ignore  # some positions ignored
    tx, tw = pve.tensor(_f32(x), requires_grad=True), pve.tensor(_f32(w), requires_grad=True)
    tb = None if b is None else pve.tensor(_f32(b), requires_grad=True)
    loss = F.linear_cross_entropy(tx, tw, pve.tensor(target), linear_bias=tb, weight=_f32(cw),
                                  reduction=reduction, ignore_index=ignore,
                                  label_smoothing=smoothing)
    kw = dict(weight=cw, reduction=reduction, label_smoothing=smoothing,
              ignore_index=-100 if ignore is None else ignore)
    want = ref_lce(x, w, target, b, **kw)
    assert loss.shape == np.shape(want)
    np.testing.assert_allclose(loss.detach().numpy(), want, rtol=2e-5, atol=2e-6)

    up = rng.standard_normal(np.shape(want))
    loss.backward(pve.tensor(np.asarray(up, np.float32)))
    inputs = [x, w] + ([b] if b is not None else [])
    grads = numerical_grads(lambda *a: ref_lce(a[0], a[1], target, a[2] if len(a) > 2 else None,
                                               **kw), inputs, up)
    assert_grad_close(tx.grad.numpy(), grads[0], name="input")
    assert_grad_close(tw.grad.numpy(), grads[1], name="linear_weight")
    if b is not None:
        assert_grad_close(tb.grad.numpy(), grads[2], name="linear_bias")


@pytest.mark.parametrize("batch,k_dims", [(5, ()), (None, ()), (3, (2,))])
def test_probability_targets(batch, k_dims):
    x, w, b, cw, target = _inputs(batch, 4, 3, k_dims, True, True, probabilities=True)
    loss = F.linear_cross_entropy(_f32(x), _f32(w), pve.tensor(target), linear_bias=_f32(b),
                                  weight=_f32(cw), label_smoothing=0.1)
    want = ref_lce(x, w, target, b, weight=cw, label_smoothing=0.1)
    np.testing.assert_allclose(loss.item(), want, rtol=2e-5)


def test_options_are_accepted_and_do_not_change_the_result():
    x, w, b, cw, target = _inputs(6, 5, 4, (), True, False)
    plain = F.linear_cross_entropy(_f32(x), _f32(w), pve.tensor(target), linear_bias=_f32(b))
    chunked = F.linear_cross_entropy(_f32(x), _f32(w), pve.tensor(target), linear_bias=_f32(b),
                                     options=object())
    np.testing.assert_array_equal(plain.numpy(), chunked.numpy())


# ---------------------------------------------------------------- module
def test_module_parameters_buffers_and_forward():
    pve.manual_seed(1)
    cw = np.array([1.0, 2.0, 0.5], np.float32)
    m = LinearCrossEntropyLoss(4, 3, out_features=(2,), bias=True, weight=cw, ignore_index=1,
                               reduction="sum")
    assert list(m.state_dict()) == ["weight", "linear.weight", "linear.bias"]
    assert m.linear.weight.shape == (6, 4) and m.linear.bias.shape == (6,)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    target = rng.integers(0, 3, size=(5, 2))
    w64 = m.linear.weight.detach().numpy().astype(np.float64).reshape(3, 2, 4)
    b64 = m.linear.bias.detach().numpy().astype(np.float64).reshape(3, 2)
    want = ref_lce(x, w64, target, b64, weight=cw, reduction="sum", ignore_index=1)
    np.testing.assert_allclose(m(x, pve.tensor(target)).item(), want, rtol=2e-5)
    no_weight = LinearCrossEntropyLoss(4, 3)
    assert list(no_weight.state_dict()) == ["linear.weight"]
    assert repr(no_weight) == (
        "LinearCrossEntropyLoss(\n  in_features=4, num_classes=3, out_features=(), bias=False, "
        "reduction=mean, ignore_index=None, label_smoothing=0.0, options=None\n  (linear): "
        "Linear(in_features=4, out_features=3, bias=False)\n)")


# ---------------------------------------------------------------- errors
X, W = np.zeros((3, 4), np.float32), np.zeros((5, 4), np.float32)
T = np.array([0, 1, 2])
ERRORS = [  # (call on (f, tensor)), messages as torch's
    (lambda f, t: f(t(np.zeros((2, 3, 4), np.float32)), t(W), t(T)), "dimensionality 1 or 2"),
    (lambda f, t: f(t(X), t(np.zeros(4, np.float32)), t(T)), "linear_weight with dimensionality"),
    (lambda f, t: f(t(X), t(np.zeros((5, 3), np.float32)), t(T)), "equal input and linear_weight"),
    (lambda f, t: f(t(X), t(W), t(T), linear_bias=t(np.zeros(4, np.float32))),
     "expected linear_bias shape"),
    (lambda f, t: f(t(X[0]), t(np.zeros((5, 2, 4), np.float32)), t(np.array(1))),
     "requires batched input"),
    (lambda f, t: f(t(X), t(W), t(np.full((3, 5), 0.2, np.float32)), ignore_index=1),
     "ignore_index cannot be specified when target contains probabilities"),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_as_torch(case, torch):
    call, message = ERRORS[case]
    with pytest.raises(ValueError, match=message):
        call(F.linear_cross_entropy, pve.tensor)
    with pytest.raises(RuntimeError, match=message):
        call(torch.nn.functional.linear_cross_entropy, torch.tensor)


@pytest.mark.parametrize("kwargs,message", [
    (dict(weight=np.ones(4, np.float32)), "expected weight shape to be"),
    (dict(label_smoothing=1.5), "expected label_smoothing to be in range"),
    (dict(label_smoothing=-0.1), "expected label_smoothing to be in range"),
])
def test_module_errors_as_torch(kwargs, message, torch):
    with pytest.raises(ValueError, match=message):
        LinearCrossEntropyLoss(4, 3, **kwargs)
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    with pytest.raises(RuntimeError, match=message):
        torch.nn.LinearCrossEntropyLoss(4, 3, **tkw)


def test_bad_reduction_and_target_dtype():
    with pytest.raises(ValueError):
        F.linear_cross_entropy(X, W, pve.tensor(T), reduction="avg")
    with pytest.raises(ValueError, match="probability targets must have the input's shape"):
        F.linear_cross_entropy(X, W, pve.tensor(T.astype(np.float32)))
    with pytest.raises(TypeError):
        F.linear_cross_entropy(X, W, pve.tensor(T.astype(bool)))


# ---------------------------------------------------------------- torch parity
@pytest.mark.parametrize("case", CASES)
def test_torch_parity_functional(case, torch):
    batch, in_features, classes, k_dims, bias, weight, reduction, ignore, smoothing = case
    x, w, b, cw, target = map(_f32_or_int, _inputs(batch, in_features, classes, k_dims, bias,
                                                   weight))
    if ignore is not None and batch is not None:
        target.reshape(-1)[::3] = ignore
    kw = dict(reduction=reduction, ignore_index=ignore, label_smoothing=smoothing)
    tt = [None if a is None else torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    pt = [None if a is None else pve.tensor(a, requires_grad=True) for a in (x, w, b)]
    tl = torch.nn.functional.linear_cross_entropy(
        tt[0], tt[1], torch.tensor(target), linear_bias=tt[2],
        weight=None if cw is None else torch.tensor(cw), **kw)
    pl = F.linear_cross_entropy(pt[0], pt[1], pve.tensor(target), linear_bias=pt[2], weight=cw,
                                **kw)
    np.testing.assert_allclose(pl.detach().numpy(), tl.detach().numpy(), rtol=1e-5, atol=1e-6)
    up = rng.standard_normal(tuple(tl.shape)).astype(np.float32)
    tl.backward(torch.tensor(up))
    pl.backward(pve.tensor(up))
    for a, b_ in zip(pt, tt):
        if a is not None:
            np.testing.assert_allclose(a.grad.numpy(), b_.grad.numpy(), rtol=1e-5, atol=1e-6)


def _f32_or_int(a):
    if a is None or a.dtype.kind == "i":
        return a
    return a.astype(np.float32)


@pytest.mark.parametrize("k_dims,bias", [((), False), ((), True), ((4, 3), True)])
def test_torch_parity_module(k_dims, bias, torch):
    cw = rng.uniform(0.5, 2, 10).astype(np.float32)
    tm = torch.nn.LinearCrossEntropyLoss(5, 10, out_features=k_dims, bias=bias,
                                         weight=torch.tensor(cw), label_smoothing=0.05)
    pm = LinearCrossEntropyLoss(5, 10, out_features=k_dims, bias=bias, weight=cw,
                                label_smoothing=0.05)
    assert list(pm.state_dict()) == list(tm.state_dict())
    assert repr(pm) == repr(tm)
    pm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((6, 5)).astype(np.float32)
    for target in (rng.integers(0, 10, size=(6,) + k_dims),
                   rng.dirichlet(np.ones(10), size=(6,) + k_dims).astype(np.float32)):
        if target.dtype.kind == "f":
            target = np.ascontiguousarray(np.moveaxis(target, -1, 1))
        tx, px = torch.tensor(x, requires_grad=True), pve.tensor(x, requires_grad=True)
        tl, pl = tm(tx, torch.tensor(target)), pm(px, pve.tensor(target))
        np.testing.assert_allclose(pl.item(), tl.item(), rtol=1e-5)
        tl.backward()
        pl.backward()
        np.testing.assert_allclose(px.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(pm.linear.weight.grad.numpy(), tm.linear.weight.grad.numpy(),
                                   rtol=1e-5, atol=1e-6)
        pm.zero_grad()
        tm.zero_grad()


def _signature(fn):
    import inspect
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_api_as_torchs_and_loaded_lazily(torch):
    assert _signature(F.linear_cross_entropy) == \
        _signature(torch.nn.functional.linear_cross_entropy)
    assert _signature(LinearCrossEntropyLoss.__init__) == \
        _signature(torch.nn.LinearCrossEntropyLoss.__init__)
    assert "linear_cross_entropy" in F.__all__ and "LinearCrossEntropyLoss" in pve.nn.__all__
    from subprocess_env import run_python
    done = run_python(["-c", "import sys, pyvision_engine; "
                       "assert 'pyvision_engine.nn.linear_cross_entropy' not in sys.modules"])
    assert done.returncode == 0, done.stderr
