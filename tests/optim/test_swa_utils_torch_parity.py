"""pve.optim.swa_utils against torch.optim.swa_utils on the same weights: averaged
parameters and buffers (SWA, EMA, custom avg_fn, use_buffers), state_dict keys,
SWALR lrs over epochs, update_bn running statistics."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch parity tests need torch")
import torch.optim.swa_utils as TS  # noqa: E402

import pyvision_engine as pve  # noqa: E402
from pyvision_engine import nn  # noqa: E402
from pyvision_engine.optim import swa_utils as S  # noqa: E402


def _pair(seed=0):
    pm = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                       nn.Linear(12, 2), nn.BatchNorm1d(2))
    tm = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3),
                             torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(12, 2),
                             torch.nn.BatchNorm1d(2))
    _randomize(pm, tm, np.random.default_rng(seed))
    return pm, tm


def _randomize(pm, tm, rng):
    for (_, p), (_, t) in zip(pm.state_dict(keep_vars=True).items(),
                              tm.state_dict(keep_vars=True).items()):
        if p.dtype == np.float32:
            v = rng.standard_normal(p.shape).astype(np.float32)
            if v.ndim == 1:
                v = np.abs(v) + 0.5
        else:
            v = np.array(rng.integers(0, 40), dtype=np.int64)
        p._data[...] = v
        p._bump_version()
        with torch.no_grad():
            t.copy_(torch.from_numpy(v))


def _compare(ps, ts, exact=True):
    pk, tk = list(ps.state_dict().keys()), list(ts.state_dict().keys())
    assert pk == tk
    for k in pk:
        a = ps.state_dict()[k]._data
        b = ts.state_dict()[k].numpy()
        assert a.dtype == b.dtype, k
        if exact:
            np.testing.assert_array_equal(a, b, err_msg=k)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("kind", ["swa", "ema_multi", "ema_avg", "swa_multi", "swa_multi_buffers",
                                  "ema_multi_buffers", "swa_buffers"])
def test_averaged_model_matches_torch(kind):
    pm, tm = _pair()
    kw_p, kw_t = {}, {}
    if kind.startswith("ema_multi"):
        kw_p["multi_avg_fn"], kw_t["multi_avg_fn"] = S.get_ema_multi_avg_fn(0.7), \
            TS.get_ema_multi_avg_fn(0.7)
    elif kind == "ema_avg":
        kw_p["avg_fn"], kw_t["avg_fn"] = S.get_ema_avg_fn(0.7), TS.get_ema_avg_fn(0.7)
    elif kind.startswith("swa_multi"):
        kw_p["multi_avg_fn"], kw_t["multi_avg_fn"] = S.get_swa_multi_avg_fn(), \
            TS.get_swa_multi_avg_fn()
    if kind.endswith("buffers"):
        kw_p["use_buffers"] = kw_t["use_buffers"] = True
    ps, ts = S.AveragedModel(pm, **kw_p), TS.AveragedModel(tm, **kw_t)
    rng = np.random.default_rng(1)
    if kind == "swa_multi_buffers":  # torch's integer addcdiv_ refuses num_batches_tracked
        for sw, m in ((ts, tm), (ps, pm)):
            sw.update_parameters(m)
            with pytest.raises(RuntimeError, match="Integer division with addcdiv"):
                sw.update_parameters(m)
        return
    for _ in range(6):
        _randomize(pm, tm, rng)
        ps.update_parameters(pm)
        ts.update_parameters(tm)
        _compare(ps, ts)


def test_forward_matches_torch():
    pm, tm = _pair()
    ps, ts = S.AveragedModel(pm), TS.AveragedModel(tm)
    ps.update_parameters(pm)
    ts.update_parameters(tm)
    ps.eval()
    ts.eval()
    x = np.random.default_rng(2).standard_normal((3, 2, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(ps(pve.Tensor(x))._data, ts(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("anneal_epochs", [0, 1, 3, 10])
def test_swalr_lrs_match_torch(strategy, anneal_epochs):
    pp = [nn.Parameter(np.zeros(2, np.float32)), nn.Parameter(np.zeros(2, np.float32))]
    tp = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    popt = pve.optim.SGD([{"params": [pp[0]], "lr": 0.4}, {"params": [pp[1]]}], lr=0.1)
    topt = torch.optim.SGD([{"params": [tp[0]], "lr": 0.4}, {"params": [tp[1]]}], lr=0.1)
    ps = S.SWALR(popt, [0.05, 0.2], anneal_epochs=anneal_epochs, anneal_strategy=strategy)
    ts = TS.SWALR(topt, [0.05, 0.2], anneal_epochs=anneal_epochs, anneal_strategy=strategy)
    assert ps.get_last_lr() == ts.get_last_lr()
    for epoch in range(15):
        popt.step()
        topt.step()
        if epoch == 7:  # a change of lr mid-way is picked up by both recurrences
            popt.param_groups[1]["lr"] = topt.param_groups[1]["lr"] = 0.3
        ps.step()
        ts.step()
        assert ps.get_last_lr() == ts.get_last_lr()
    assert sorted(ps.state_dict()) == sorted(ts.state_dict())
    for k, v in ts.state_dict().items():
        assert ps.state_dict()[k] == v, k


def test_swalr_errors_match_torch():
    popt = pve.optim.SGD([nn.Parameter(np.zeros(2, np.float32))], lr=0.1)
    topt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    for kwargs in ({"anneal_strategy": "exp"}, {"anneal_epochs": -2}, {"swa_lr": [0.1, 0.2]}):
        args = {"swa_lr": 0.01, **kwargs}
        with pytest.raises(Exception) as te:
            TS.SWALR(topt, **args)
        with pytest.raises(type(te.value)):
            S.SWALR(popt, **args)


@pytest.mark.parametrize("tuples", [False, True])
def test_update_bn_matches_torch(tuples):
    pm, tm = _pair(3)
    pm.eval()
    tm.eval()
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((n, 2, 4, 4)).astype(np.float32) for n in (3, 5, 4)]
    ploader = [[pve.Tensor(x), 0] if tuples else pve.Tensor(x) for x in xs]
    tloader = [[torch.from_numpy(x), 0] if tuples else torch.from_numpy(x) for x in xs]
    S.update_bn(ploader, pm)
    TS.update_bn(tloader, tm)
    assert pm.training == tm.training is False
    for (k, a), (_, b) in zip(pm.state_dict().items(), tm.state_dict().items()):
        np.testing.assert_allclose(a._data, b.numpy(), rtol=2e-5, atol=2e-5, err_msg=k)
    assert [m.momentum for m in (pm[1], pm[5])] == [m.momentum for m in (tm[1], tm[5])]
