"""nn.utils.parametrize / parametrizations against torch on the same weights: state_dict
keys and values, class names, parametrized values, gradients w.r.t. the originals,
weight_norm and spectral_norm outputs (after copying state, incl. spectral_norm's u and
v) in training and eval, removal, and error types."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch parity tests need torch")
import torch.nn.utils.parametrizations as TZ  # noqa: E402
import torch.nn.utils.parametrize as TP  # noqa: E402

import pyvision_engine as pve  # noqa: E402
from pyvision_engine import nn  # noqa: E402
from pyvision_engine.nn.utils import parametrizations as PZ  # noqa: E402
from pyvision_engine.nn.utils import parametrize as P  # noqa: E402


class PSym(nn.Module):
    def forward(self, X):
        return X.triu() + X.triu(1).transpose(-1, -2)

    def right_inverse(self, A):
        return A.triu()


class TSym(torch.nn.Module):
    def forward(self, X):
        return X.triu() + X.triu(1).transpose(-1, -2)

    def right_inverse(self, A):
        return A.triu()


class PScale(nn.Module):
    def forward(self, X):
        return X * 3.0


class TScale(torch.nn.Module):
    def forward(self, X):
        return X * 3.0


def _make(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "linear":
        pm, tm = nn.Linear(4, 4), torch.nn.Linear(4, 4)
    elif kind == "conv":
        pm, tm = nn.Conv2d(3, 4, 3), torch.nn.Conv2d(3, 4, 3)
    else:
        pm, tm = nn.ConvTranspose2d(3, 4, 3), torch.nn.ConvTranspose2d(3, 4, 3)
    state = {k: rng.standard_normal(v.shape).astype(np.float32)
             for k, v in tm.state_dict().items()}
    pm.load_state_dict(state)
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return pm, tm


def _copy_state(pm, tm):
    """torch's state into pve (both parametrized: the same keys)."""
    pm.load_state_dict({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()})


def _input(kind, rng):
    shape = (2, 4) if kind == "linear" else (2, 3, 5, 5)
    return rng.standard_normal(shape).astype(np.float32)


def _check_same(pm, tm, x, rng, rtol=1e-5, atol=1e-5):
    assert list(pm.state_dict()) == list(tm.state_dict())
    assert type(pm).__name__ == type(tm).__name__
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(pm.state_dict()[k]._data, v.numpy(), rtol=rtol, atol=atol,
                                   err_msg=k)
    y, ty = pm(pve.Tensor(x)), tm(torch.from_numpy(x))
    np.testing.assert_allclose(y._data, ty.detach().numpy(), rtol=rtol, atol=atol)
    up = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(pve.Tensor(up))
    ty.backward(torch.from_numpy(up))
    pp = dict(pm.named_parameters())
    assert list(pp) == [n for n, _ in tm.named_parameters()]
    for n, p in tm.named_parameters():
        np.testing.assert_allclose(pp[n].grad._data, p.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=n)


def test_register_chain_matches_torch():
    pm, tm = _make("linear")
    P.register_parametrization(pm, "weight", PSym())
    TP.register_parametrization(tm, "weight", TSym())
    P.register_parametrization(pm, "weight", PScale())
    TP.register_parametrization(tm, "weight", TScale())
    P.register_parametrization(pm, "bias", PScale())
    TP.register_parametrization(tm, "bias", TScale())
    rng = np.random.default_rng(1)
    _check_same(pm, tm, _input("linear", rng), rng)
    a = rng.standard_normal((4, 4)).astype(np.float32)
    # TScale has no right_inverse: assignment is a RuntimeError in both
    with pytest.raises(RuntimeError, match="does not implement right_inverse"):
        pm.weight = pve.Tensor(a)
    with pytest.raises(RuntimeError, match="does not implement right_inverse"):
        tm.weight = torch.from_numpy(a)
    P.remove_parametrizations(pm, "weight")
    TP.remove_parametrizations(tm, "weight")
    P.remove_parametrizations(pm, "bias", leave_parametrized=False)
    TP.remove_parametrizations(tm, "bias", leave_parametrized=False)
    assert type(pm).__name__ == type(tm).__name__ == "Linear"
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(pm.state_dict()[k]._data, v.numpy(), rtol=1e-6, err_msg=k)


def test_assignment_matches_torch():
    pm, tm = _make("linear")
    P.register_parametrization(pm, "weight", PSym())
    TP.register_parametrization(tm, "weight", TSym())
    a = np.random.default_rng(2).standard_normal((4, 4)).astype(np.float32)
    pm.weight = pve.Tensor(a)
    tm.weight = torch.from_numpy(a)
    np.testing.assert_array_equal(pm.parametrizations.weight.original._data,
                                  tm.parametrizations.weight.original.detach().numpy())
    np.testing.assert_array_equal(pm.weight._data, tm.weight.detach().numpy())


@pytest.mark.parametrize("kind", ["linear", "conv", "convT"])
@pytest.mark.parametrize("dim", [0, 1, -1, None])
def test_weight_norm_matches_torch(kind, dim):
    pm, tm = _make(kind)
    PZ.weight_norm(pm, dim=dim)
    TZ.weight_norm(tm, dim=dim)
    rng = np.random.default_rng(3)
    _check_same(pm, tm, _input(kind, rng), rng, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "conv", "convT"])
@pytest.mark.parametrize("iters", [1, 3])
def test_spectral_norm_matches_torch(kind, iters):
    pm, tm = _make(kind)
    PZ.spectral_norm(pm, n_power_iterations=iters)
    TZ.spectral_norm(tm, n_power_iterations=iters)
    assert pm.parametrizations.weight[0].dim == tm.parametrizations.weight[0].dim
    _copy_state(pm, tm)  # the same u and v (their random starts differ)
    rng = np.random.default_rng(4)
    for _ in range(3):  # training: a power iteration per call
        _check_same(pm, tm, _input(kind, rng), rng, rtol=1e-4, atol=1e-5)
        pm.zero_grad()
        tm.zero_grad()
    pm.eval()
    tm.eval()
    _check_same(pm, tm, _input(kind, rng), rng, rtol=1e-4, atol=1e-5)


def test_errors_match_torch():
    cases = [
        (lambda: P.register_parametrization(nn.Linear(2, 2), "nope", PScale()),
         lambda: TP.register_parametrization(torch.nn.Linear(2, 2), "nope", TScale())),
        (lambda: P.remove_parametrizations(nn.Linear(2, 2), "weight"),
         lambda: TP.remove_parametrizations(torch.nn.Linear(2, 2), "weight")),
        (lambda: PZ.spectral_norm(nn.Linear(2, 2), dim=3),
         lambda: TZ.spectral_norm(torch.nn.Linear(2, 2), dim=3)),
        (lambda: PZ.spectral_norm(nn.Linear(2, 2), n_power_iterations=0),
         lambda: TZ.spectral_norm(torch.nn.Linear(2, 2), n_power_iterations=0)),
        (lambda: PZ.spectral_norm(nn.Linear(2, 2), "nope"),
         lambda: TZ.spectral_norm(torch.nn.Linear(2, 2), "nope")),
        (lambda: P.remove_parametrizations(PZ.weight_norm(nn.Linear(2, 2)), "weight", False),
         lambda: TP.remove_parametrizations(TZ.weight_norm(torch.nn.Linear(2, 2)), "weight",
                                            False)),
    ]
    for ours, theirs in cases:
        with pytest.raises(Exception) as te:
            theirs()
        with pytest.raises(type(te.value)):
            ours()


def test_parametrized_conv_eval_matches_torch():
    pm, tm = _make("conv")
    P.register_parametrization(pm, "weight", PScale())
    TP.register_parametrization(tm, "weight", TScale())
    pm.eval()
    tm.eval()
    x = np.random.default_rng(5).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with pve.no_grad(), torch.no_grad():
        for step in range(3):
            np.testing.assert_allclose(pm(pve.Tensor(x))._data,
                                       tm(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-5)
            pm.parametrizations.weight.original.mul_(0.7)
            tm.parametrizations.weight.original.mul_(0.7)
