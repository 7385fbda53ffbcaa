"""Parity with torch: golden .npz made by torch (always runs) and live torch (skips without it)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine.backends import conv as conv_backend
from pyvision_engine.nn import functional as F

from conv.golden_conv_cases import CASES

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "golden", "conv2d.npz")


def _run(x, w, b, stride, padding, dilation, groups, gy):
    xt = pve.tensor(x, requires_grad=True)
    wt = pve.tensor(w, requires_grad=True)
    bt = pve.tensor(b, requires_grad=True) if b is not None else None
    y = F.conv2d(xt, wt, bt, stride, padding, dilation, groups)
    y.backward(gy)
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), None if bt is None else bt.grad.numpy()


@pytest.mark.parametrize("forced", [None] + list(conv_backend.ALGORITHMS))
@pytest.mark.parametrize("index", range(len(CASES)))
def test_golden_from_torch(index, forced):
    data = np.load(GOLDEN)
    _, _, stride, padding, dilation, groups, bias = CASES[index]
    get = lambda k: data[f"{index}_{k}"]  # noqa: E731
    with conv_backend.force_algorithm(forced):
        y, gx, gw, gb = _run(get("x"), get("w"), get("b") if bias else None, stride, padding,
                             dilation, groups, get("gy"))
    for name, got in (("y", y), ("gx", gx), ("gw", gw)) + ((("gb", gb),) if bias else ()):
        want = get(name)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1, np.abs(want).max()),
                                   err_msg=name)


def test_live_torch_modules_and_init_distribution():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for args in [dict(in_channels=8, out_channels=16, kernel_size=3, padding=1),
                 dict(in_channels=6, out_channels=6, kernel_size=(3, 5), stride=(2, 1),
                      padding="valid", groups=3),
                 dict(in_channels=4, out_channels=8, kernel_size=4, padding="same", dilation=2,
                      bias=False)]:
        ours = pve.nn.Conv2d(**args)
        theirs = torch.nn.Conv2d(**args)
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        x = rng.standard_normal((2, args["in_channels"], 13, 12)).astype(np.float32)
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        gy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
        yt.backward(torch.tensor(gy))
        xp = pve.tensor(x, requires_grad=True)
        yp = ours(xp)
        yp.backward(gy)
        np.testing.assert_allclose(yp.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(xp.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(),
                                   rtol=1e-4, atol=1e-3)
        # same init distribution: bounds agree
        w_ours = pve.nn.Conv2d(**args).weight.detach().numpy()
        w_theirs = torch.nn.Conv2d(**args).weight.detach().numpy()
        assert abs(np.abs(w_ours).max() - np.abs(w_theirs).max()) < 0.1 * np.abs(w_theirs).max()


def test_live_torch_same_stride_error_matches():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):
        torch.nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError):
        pve.nn.Conv2d(3, 4, 3, stride=2, padding="same")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_torch(mode):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 4, 9, 7)).astype(np.float32)
    mine = pve.nn.Conv2d(4, 6, 3, stride=2, padding=(1, 2), padding_mode=mode)
    theirs = torch.nn.Conv2d(4, 6, 3, stride=2, padding=(1, 2), padding_mode=mode)
    theirs.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy())
                            for k, v in mine.state_dict().items()})
    xt, xm = torch.tensor(x, requires_grad=True), pve.tensor(x, requires_grad=True)
    yt, ym = theirs(xt), mine(xm)
    np.testing.assert_allclose(ym.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    gy = rng.standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.from_numpy(gy))
    ym.backward(pve.tensor(gy))
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mine.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-4,
                               atol=1e-4)
