"""pve.optim.swa_utils against plain-numpy (float64) references: SWA / EMA averages
of parameters and buffers, the SWALR lr sequence (torch's formula written out
independently as the closed-form annealing it amounts to), update_bn's running
statistics against the batch statistics of the whole loader."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import nn
from pyvision_engine.optim import swa_utils


def _model(seed=0):
    m = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                      nn.Linear(12, 2))
    rng = np.random.default_rng(seed)
    for p in m.parameters():
        p._data[...] = rng.standard_normal(p.shape).astype(np.float32)
    return m


def _perturb(m, rng):
    for p in m.parameters():
        p._data[...] = rng.standard_normal(p.shape).astype(np.float32)
        p._bump_version()
    for b in m.buffers():
        if b.dtype == np.float32:
            b._data[...] = rng.random(b.shape).astype(np.float32) + 0.5
        else:
            b._data[...] = rng.integers(0, 50)
        b._bump_version()


def test_module_deepcopy_is_independent():
    m = _model()
    c = copy.deepcopy(m)
    for (n1, p1), (n2, p2) in zip(m.named_parameters(), c.named_parameters()):
        assert n1 == n2 and type(p2) is type(p1) and p2 is not p1
        assert not np.shares_memory(p1._data, p2._data)
        np.testing.assert_array_equal(p1._data, p2._data)
    c[0].weight._data[...] = 0
    assert np.abs(m[0].weight._data).sum() > 0


def test_averaged_model_state_dict_keys_and_forward():
    m = _model()
    swa = swa_utils.AveragedModel(m)
    keys = list(swa.state_dict().keys())
    assert keys == ["n_averaged"] + ["module." + k for k in m.state_dict().keys()]
    assert swa.n_averaged.dtype == np.int64 and int(swa.n_averaged._data) == 0
    x = pve.Tensor(np.random.default_rng(1).standard_normal((2, 2, 4, 4)).astype(np.float32))
    m.eval()
    swa.eval()
    np.testing.assert_array_equal(swa(x)._data, m(x)._data)


def test_swa_average_equals_mean_of_snapshots():
    rng = np.random.default_rng(2)
    m = _model()
    swa = swa_utils.AveragedModel(m)
    snaps, bufs = [], []
    for _ in range(5):
        _perturb(m, rng)
        snaps.append([p._data.astype(np.float64) for p in m.parameters()])
        bufs.append([b._data.copy() for b in m.buffers()])
        swa.update_parameters(m)
    assert int(swa.n_averaged._data) == 5
    for i, p in enumerate(swa.module.parameters()):
        ref = np.mean([s[i] for s in snaps], axis=0)
        np.testing.assert_allclose(p._data, ref, rtol=1e-5, atol=1e-6)
    # without use_buffers the buffers are the model's latest
    for i, b in enumerate(swa.module.buffers()):
        np.testing.assert_array_equal(b._data, bufs[-1][i])


def test_ema_with_buffers_matches_numpy_recursion():
    rng = np.random.default_rng(3)
    m = _model()
    decay = 0.9
    ema = swa_utils.AveragedModel(m, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(decay),
                                  use_buffers=True)
    ref = None
    for _ in range(4):
        _perturb(m, rng)
        cur = [t._data.astype(np.float64) for t in
               list(m.parameters()) + list(m.buffers())]
        if ref is None:
            ref = cur
        else:
            ref = [decay * r + (1 - decay) * c for r, c in zip(ref, cur)]
            # integer buffers are truncated at each step, as torch's copy_ into int64
            ref = [np.trunc(r) if t.dtype == np.int64 else r
                   for r, t in zip(ref, list(m.parameters()) + list(m.buffers()))]
        ema.update_parameters(m)
    got = list(ema.module.parameters()) + list(ema.module.buffers())
    for t, r in zip(got, ref):
        if t.dtype == np.int64:
            np.testing.assert_array_equal(t._data, r.astype(np.int64))
        else:
            np.testing.assert_allclose(t._data, r, rtol=1e-5, atol=1e-6)


def test_avg_fn_single_tensor_forms():
    rng = np.random.default_rng(4)
    a = rng.standard_normal(5).astype(np.float32)
    c = rng.standard_normal(5).astype(np.float32)
    out = swa_utils.get_swa_avg_fn()(pve.Tensor(a), pve.Tensor(c), 3)
    np.testing.assert_allclose(out._data, a + (c.astype(np.float64) - a) / 4, rtol=1e-6)
    out = swa_utils.get_ema_avg_fn(0.75)(pve.Tensor(a), pve.Tensor(c), 3)
    np.testing.assert_allclose(out._data, 0.75 * a.astype(np.float64) + 0.25 * c, rtol=1e-6)
    m = _model()
    ema = swa_utils.AveragedModel(m, avg_fn=swa_utils.get_ema_avg_fn(0.5))
    first = [p._data.astype(np.float64) for p in m.parameters()]
    ema.update_parameters(m)
    _perturb(m, rng)
    ema.update_parameters(m)
    for p, f, q in zip(ema.module.parameters(), first, m.parameters()):
        np.testing.assert_allclose(p._data, 0.5 * f + 0.5 * q._data, rtol=1e-6, atol=1e-7)


def test_argument_errors():
    with pytest.raises(ValueError, match=r"decay value 1.5"):
        swa_utils.get_ema_multi_avg_fn(1.5)
    with pytest.raises(ValueError, match=r"decay value -0.1"):
        swa_utils.get_ema_avg_fn(-0.1)
    with pytest.raises(AssertionError, match="Only one of avg_fn"):
        swa_utils.AveragedModel(_model(), avg_fn=swa_utils.get_swa_avg_fn(),
                                multi_avg_fn=swa_utils.get_swa_multi_avg_fn())
    opt = pve.optim.SGD([nn.Parameter(np.zeros(2, np.float32))], lr=0.1)
    with pytest.raises(ValueError, match="anneal_strategy must be one of"):
        swa_utils.SWALR(opt, 0.01, anneal_strategy="exp")
    with pytest.raises(ValueError, match="anneal_epochs must be equal or greater than 0"):
        swa_utils.SWALR(opt, 0.01, anneal_epochs=-1)
    with pytest.raises(ValueError, match="anneal_epochs must be equal or greater than 0"):
        swa_utils.SWALR(opt, 0.01, anneal_epochs=2.0)


def _swalr_reference(lr0, swa_lr, anneal_epochs, strategy, steps):
    """The lr after the constructor and after each step: torch's recurrence amounts to
    annealing from the lr at construction, lr_k = swa*a(k/E) + lr0*(1 - a(k/E)),
    with k clamped to E (E = 0: swa_lr at once)."""
    f = (lambda t: (1 - math.cos(math.pi * t)) / 2) if strategy == "cos" else (lambda t: t)
    out = []
    for k in range(steps + 1):
        t = 1.0 if anneal_epochs == 0 else min(1.0, k / anneal_epochs)
        out.append(swa_lr * f(t) + lr0 * (1 - f(t)))
    return out


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("anneal_epochs", [0, 1, 4, 10])
def test_swalr_sequence(strategy, anneal_epochs):
    groups = [{"params": [nn.Parameter(np.zeros(2, np.float32))], "lr": 0.5},
              {"params": [nn.Parameter(np.zeros(2, np.float32))], "lr": 0.2}]
    opt = pve.optim.SGD(groups, lr=0.1)
    sched = swa_utils.SWALR(opt, swa_lr=[0.05, 0.01], anneal_epochs=anneal_epochs,
                            anneal_strategy=strategy)
    got = [list(sched.get_last_lr())]
    for _ in range(14):
        opt.step()
        sched.step()
        got.append(list(sched.get_last_lr()))
    got = np.array(got)
    for g, (lr0, swa) in enumerate([(0.5, 0.05), (0.2, 0.01)]):
        np.testing.assert_allclose(got[:, g], _swalr_reference(lr0, swa, anneal_epochs,
                                                               strategy, 14),
                                   rtol=1e-12, atol=1e-15)
    assert [g["swa_lr"] for g in opt.param_groups] == [0.05, 0.01]


def test_swalr_state_dict_round_trip():
    opt = pve.optim.SGD([nn.Parameter(np.zeros(2, np.float32))], lr=0.3)
    sched = swa_utils.SWALR(opt, 0.02, anneal_epochs=5, anneal_strategy="linear")
    for _ in range(2):
        opt.step()
        sched.step()
    state = sched.state_dict()
    assert "anneal_func" not in state and "optimizer" not in state
    assert state["_anneal_strategy"] == "linear"
    opt2 = pve.optim.SGD([nn.Parameter(np.zeros(2, np.float32))], lr=0.3)
    other = swa_utils.SWALR(opt2, 0.02, anneal_epochs=5, anneal_strategy="cos")
    other.load_state_dict(state)
    assert other.anneal_func(0.5) == 0.5  # the linear function again
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    for _ in range(4):
        opt.step()
        sched.step()
        opt2.step()
        other.step()
        assert other.get_last_lr() == sched.get_last_lr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sched.get_lr()
    assert any("get_last_lr" in str(w.message) for w in caught)


def _bn_model():
    m = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3, momentum=0.3), nn.ReLU(),
                      nn.Flatten(), nn.Linear(12, 4), nn.BatchNorm1d(4))
    rng = np.random.default_rng(5)
    for p in m.parameters():
        p._data[...] = rng.standard_normal(p.shape).astype(np.float32)
    return m


@pytest.mark.parametrize("as_tuple", [False, True])
def test_update_bn_is_the_loader_average(as_tuple):
    rng = np.random.default_rng(6)
    m = _bn_model()
    m.eval()
    # stale statistics that update_bn must reset
    m[1].running_mean._data[...] = 7
    m[1].num_batches_tracked._data[...] = 99
    batches = [rng.standard_normal((n, 2, 2, 2)).astype(np.float32) for n in (4, 6, 5)]
    loader = [(pve.Tensor(b), pve.Tensor(np.zeros(len(b), np.int64))) if as_tuple
              else pve.Tensor(b) for b in batches]
    swa_utils.update_bn(loader, m)
    assert not m.training and not m[1].training
    assert m[1].momentum == 0.3 and m[5].momentum == 0.1
    # reference: numpy forward in float64, per batch statistics, averaged over batches
    w, b = m[0].weight._data.astype(np.float64), m[0].bias._data.astype(np.float64)
    means1, vars1, means2, vars2 = [], [], [], []
    for x in batches:
        y = np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x) + b[None, :, None, None]
        mu = y.mean(axis=(0, 2, 3))
        var = y.var(axis=(0, 2, 3))
        cnt = y.size / y.shape[1]
        means1.append(mu)
        vars1.append(var * cnt / (cnt - 1))
        z = (y - mu[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
        z = z * m[1].weight._data[None, :, None, None] + m[1].bias._data[None, :, None, None]
        z = np.maximum(z, 0).reshape(len(x), -1)
        h = z @ m[4].weight._data.astype(np.float64).T + m[4].bias._data
        means2.append(h.mean(0))
        vars2.append(h.var(0) * len(h) / (len(h) - 1))
    np.testing.assert_allclose(m[1].running_mean._data, np.mean(means1, 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m[1].running_var._data, np.mean(vars1, 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m[5].running_mean._data, np.mean(means2, 0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m[5].running_var._data, np.mean(vars2, 0), rtol=1e-4, atol=1e-4)
    assert int(m[1].num_batches_tracked._data) == 3


def test_update_bn_restores_training_and_skips_models_without_bn():
    m = _bn_model()
    m.train()
    swa_utils.update_bn([pve.Tensor(np.ones((2, 2, 2, 2), np.float32))], m)
    assert m.training
    lin = nn.Linear(3, 2)
    lin.eval()
    swa_utils.update_bn([pve.Tensor(np.ones((2, 3), np.float32))], lin)
    assert not lin.training


def test_update_bn_on_averaged_model():
    rng = np.random.default_rng(7)
    m = _bn_model()
    swa = swa_utils.AveragedModel(m)
    swa.update_parameters(m)
    x = pve.Tensor(rng.standard_normal((8, 2, 2, 2)).astype(np.float32))
    swa_utils.update_bn([x], swa)
    ref = _bn_model()
    swa_utils.update_bn([x], ref)
    for b1, b2 in zip(swa.module.buffers(), ref.buffers()):
        np.testing.assert_array_equal(b1._data, b2._data)


def test_exposed_as_submodule():
    import pyvision_engine.optim as optim
    assert optim.swa_utils is swa_utils
    assert "swa_utils" in optim.__all__
