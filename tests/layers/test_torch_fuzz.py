"""Randomized differential tests against torch at every ISA level: pooling, cross-entropy,
activations, softmax, BatchNorm (train/eval, running statistics, input gradient) and
interpolate, on configurations drawn from a seeded generator (skipped without torch)."""

import numpy as np
import pytest

import pyvision_engine as pve
import pyvision_engine.nn.functional as F
from pyvision_engine import _C, nn

torch = pytest.importorskip("torch", reason="torch not installed: randomized torch comparison skipped")
TF = torch.nn.functional


def _run_pool_loss_activation(bad):
    rng = np.random.default_rng(0)
    def cmp(name, a, b, tol=1e-4):
        a = np.asarray(a); b = b.detach().numpy()
        if a.shape != b.shape or not np.allclose(a, b, rtol=tol, atol=tol, equal_nan=True):
            bad.append((name, a.shape, b.shape, np.nanmax(np.abs(a-b)) if a.shape==b.shape else None))
    isa = _C.active_isa()  # set by the isa fixture
    for trial in range(40):
        n, c, h, w = rng.integers(1,3), rng.integers(1,5), rng.integers(3,12), rng.integers(3,12)
        x = rng.standard_normal((n,c,h,w)).astype(np.float32)
        k = int(rng.integers(1, min(h,w)+1)); s = int(rng.integers(1,4)); p = int(rng.integers(0, k//2+1)); cm = bool(rng.integers(0,2))
        try:
            cmp(f'{isa} maxpool k{k} s{s} p{p} cm{cm}', F.max_pool2d(pve.tensor(x), k, s, p, ceil_mode=cm).numpy(), TF.max_pool2d(torch.tensor(x), k, s, p, ceil_mode=cm))
            cip = bool(rng.integers(0,2))
            cmp(f'{isa} avgpool k{k} s{s} p{p} cm{cm} cip{cip}', F.avg_pool2d(pve.tensor(x), k, s, p, ceil_mode=cm, count_include_pad=cip).numpy(), TF.avg_pool2d(torch.tensor(x), k, s, p, ceil_mode=cm, count_include_pad=cip))
        except Exception as e:
            bad.append((f'{isa} pool k{k} s{s} p{p} cm{cm}', repr(e)[:100]))
        o = (int(rng.integers(1,6)), int(rng.integers(1,6)))
        cmp(f'{isa} adaptive avg {o}', F.adaptive_avg_pool2d(pve.tensor(x), o).numpy(), TF.adaptive_avg_pool2d(torch.tensor(x), o))
        cmp(f'{isa} adaptive max {o}', F.adaptive_max_pool2d(pve.tensor(x), o).numpy(), TF.adaptive_max_pool2d(torch.tensor(x), o))
        # cross entropy
        nc = int(rng.integers(2,7)); b = int(rng.integers(1,6))
        logits = rng.standard_normal((b,nc)).astype(np.float32)*3; tgt = rng.integers(0,nc,b)
        wgt = rng.uniform(0.1,2,nc).astype(np.float32); ls = float(rng.choice([0.0,0.1,0.3])); red = str(rng.choice(['mean','sum','none']))
        ii = int(tgt[0]) if rng.integers(0,2) else -100
        cmp(f'{isa} ce ls{ls} {red} ii{ii}', F.cross_entropy(pve.tensor(logits), pve.tensor(tgt), weight=pve.tensor(wgt), label_smoothing=ls, reduction=red, ignore_index=ii).numpy(),
            TF.cross_entropy(torch.tensor(logits), torch.tensor(tgt), weight=torch.tensor(wgt), label_smoothing=ls, reduction=red, ignore_index=ii))
        for act, targs in [('gelu', {}), ('silu', {}), ('hardswish', {}), ('hardsigmoid', {}), ('sigmoid', {}), ('tanh', {}), ('relu6', {})]:
            xx = rng.standard_normal(37).astype(np.float32)*4
            cmp(f'{isa} {act}', getattr(F, act)(pve.tensor(xx)).numpy(), getattr(TF, act)(torch.tensor(xx)), 2e-6 if act!='gelu' else 1e-5)
        xx = rng.standard_normal((3,5,4)).astype(np.float32)*10; d = int(rng.integers(-3,3))
        cmp(f'{isa} softmax d{d}', F.softmax(pve.tensor(xx), dim=d).numpy(), TF.softmax(torch.tensor(xx), dim=d), 1e-5)
        cmp(f'{isa} log_softmax d{d}', F.log_softmax(pve.tensor(xx), dim=d).numpy(), TF.log_softmax(torch.tensor(xx), dim=d), 1e-5)


def _run_norm_interpolate(bad):
    rng = np.random.default_rng(1)
    def cmp(name, a, b, tol=1e-4):
        a = np.asarray(a); b = b.detach().numpy()
        if a.shape != b.shape or not np.allclose(a, b, rtol=tol, atol=tol, equal_nan=True):
            bad.append((name, a.shape, b.shape, np.nanmax(np.abs(a-b)) if a.shape==b.shape else None))
    isa = _C.active_isa()  # set by the isa fixture
    for trial in range(10):
        c = int(rng.integers(1,6)); mom = [0.1, 0.5, None][trial % 3]; affine = bool(rng.integers(0,2))
        pb = nn.BatchNorm2d(c, momentum=mom, affine=affine); tb = torch.nn.BatchNorm2d(c, momentum=mom, affine=affine)
        if affine:
            wv = rng.standard_normal(c).astype(np.float32); bv = rng.standard_normal(c).astype(np.float32)
            pb.weight.data.numpy()[:] = wv; pb.bias.data.numpy()[:] = bv
            with torch.no_grad(): tb.weight.copy_(torch.tensor(wv)); tb.bias.copy_(torch.tensor(bv))
        for step in range(3):
            x = (rng.standard_normal((int(rng.integers(2,4)), c, 5, 4))*3+1).astype(np.float32)
            px = pve.tensor(x, requires_grad=True); tx = torch.tensor(x, requires_grad=True)
            py, ty = pb(px), tb(tx)
            cmp(f'{isa} bn fwd mom{mom}', py.detach().numpy(), ty)
            g = rng.standard_normal(x.shape).astype(np.float32)
            py.backward(pve.tensor(g)); ty.backward(torch.tensor(g))
            cmp(f'{isa} bn dx mom{mom}', px.grad.numpy(), tx.grad, 1e-3)
        cmp(f'{isa} bn running_mean mom{mom}', pb.running_mean.numpy(), tb.running_mean)
        cmp(f'{isa} bn running_var mom{mom}', pb.running_var.numpy(), tb.running_var)
        assert int(pb.num_batches_tracked.item()) == int(tb.num_batches_tracked.item())
        pb.eval(); tb.eval()
        x = rng.standard_normal((2, c, 3, 3)).astype(np.float32)
        cmp(f'{isa} bn eval', pb(pve.tensor(x)).detach().numpy(), tb(torch.tensor(x)))
        # interpolate
        x = rng.standard_normal((1,2,5,7)).astype(np.float32)
        for mode, ac in [('nearest', None), ('bilinear', False), ('bilinear', True)]:
            size = (int(rng.integers(2,12)), int(rng.integers(2,12)))
            kw = {} if ac is None else {'align_corners': ac}
            cmp(f'{isa} interp {mode} {ac} {size}', F.interpolate(pve.tensor(x), size=size, mode=mode, **kw).numpy(), TF.interpolate(torch.tensor(x), size=size, mode=mode, **kw), 1e-5)
            sf = float(rng.choice([0.5, 1.5, 2.0, 3.0]))
            cmp(f'{isa} interp {mode} {ac} sf{sf}', F.interpolate(pve.tensor(x), scale_factor=sf, mode=mode, **kw).numpy(), TF.interpolate(torch.tensor(x), scale_factor=sf, mode=mode, **kw), 1e-5)


def test_pooling_losses_activations_match_torch(isa):
    bad = []
    _run_pool_loss_activation(bad)
    assert not bad, bad[:10]


def test_batchnorm_and_interpolate_match_torch(isa):
    bad = []
    _run_norm_interpolate(bad)
    assert not bad, bad[:10]
