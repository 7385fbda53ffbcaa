"""Live parity with torch (skipped without it): the golden cases re-run against the
installed torch, random shapes for pooling and softmax, BatchNorm running statistics,
and modules' state_dict layouts."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyvision_engine as pve  # noqa: E402
import layer_cases  # noqa: E402

TF = torch.nn.functional
F = pve.nn.functional


def _pt(a, requires_grad):
    t = torch.from_numpy(np.array(a))
    return t.requires_grad_(True) if requires_grad and t.dtype.is_floating_point else t


def _pv(a, requires_grad):
    arr = np.array(a)
    return pve.tensor(arr, requires_grad=requires_grad and arr.dtype.kind == "f")


@pytest.mark.parametrize("name,build", layer_cases.cases(), ids=[n for n, _ in layer_cases.cases()])
def test_case_matches_live_torch(name, build):
    mine, theirs = build(pve, F, _pv), build(torch, TF, _pt)
    for key in theirs:
        scale = max(1.0, float(np.abs(theirs[key]).max()))
        np.testing.assert_allclose(mine[key], theirs[key], rtol=1e-4, atol=2e-5 * scale,
                                   err_msg=f"{name}/{key}")


@pytest.mark.parametrize("seed", range(12))
def test_pooling_random_configurations(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 5))
    s = int(rng.integers(1, 4))
    p = int(rng.integers(0, k // 2 + 1))
    d = int(rng.integers(1, 3))
    ceil = bool(rng.integers(0, 2))
    h, w = int(rng.integers(k * d, 30)), int(rng.integers(k * d, 70))
    x = rng.integers(-3, 4, (2, 3, h, w)).astype(np.float32)  # many ties
    y, i = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
    ty, ti = TF.max_pool2d(torch.from_numpy(x), k, s, p, d, ceil, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), ty.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    for include in (True, False):
        np.testing.assert_allclose(F.avg_pool2d(x, k, s, p, ceil, include).numpy(),
                                   TF.avg_pool2d(torch.from_numpy(x), k, s, p, ceil, include).numpy(),
                                   rtol=1e-5, atol=1e-6)
    out = (int(rng.integers(1, h + 3)), int(rng.integers(1, w + 3)))
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, out).numpy(),
                               TF.adaptive_avg_pool2d(torch.from_numpy(x), out).numpy(), rtol=1e-5, atol=1e-6)
    a, ai = F.adaptive_max_pool2d(x, out, return_indices=True)
    ta, tai = TF.adaptive_max_pool2d(torch.from_numpy(x), out, return_indices=True)
    np.testing.assert_array_equal(a.numpy(), ta.numpy())
    np.testing.assert_array_equal(ai.numpy(), tai.numpy())


def test_max_pool_nan_matches_torch():
    x = np.random.default_rng(0).standard_normal((1, 2, 9, 40)).astype(np.float32)
    x[0, 0, 2, 5] = x[0, 0, 3, 6] = x[0, 1, 8, 39] = np.nan
    y, i = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    ty, ti = TF.max_pool2d(torch.from_numpy(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), ty.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batchnorm_running_stats_after_several_steps(momentum):
    mine = layer_cases.batchnorm_running_stats(pve, lambda m: pve.nn.BatchNorm2d(3, momentum=m), _pv,
                                               steps=6, momentum=momentum)
    theirs = layer_cases.batchnorm_running_stats(torch, lambda m: torch.nn.BatchNorm2d(3, momentum=m), _pt,
                                                 steps=6, momentum=momentum)
    np.testing.assert_allclose(mine[0], theirs[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mine[1], theirs[1], rtol=1e-5, atol=1e-6)
    assert mine[2] == theirs[2]


def test_state_dict_layouts_match_torch():
    pairs = [(pve.nn.BatchNorm2d(8), torch.nn.BatchNorm2d(8)),
             (pve.nn.BatchNorm1d(4, affine=False), torch.nn.BatchNorm1d(4, affine=False)),
             (pve.nn.GroupNorm(2, 8), torch.nn.GroupNorm(2, 8)),
             (pve.nn.LayerNorm((3, 4)), torch.nn.LayerNorm((3, 4))),
             (pve.nn.PReLU(5), torch.nn.PReLU(5))]
    for mine, theirs in pairs:
        a, b = mine.state_dict(), theirs.state_dict()
        assert list(a) == list(b)
        for k in a:
            np.testing.assert_array_equal(np.asarray(a[k].detach().numpy()), b[k].numpy())


def test_bn_eval_and_loaded_weights_match_torch():
    tbn = torch.nn.BatchNorm2d(4)
    tbn.train()
    x = torch.randn(3, 4, 5, 5) * 2 + 1
    tbn(x)
    with torch.no_grad():
        tbn.weight.uniform_(0.5, 1.5)
        tbn.bias.uniform_(-1, 1)
    tbn.eval()
    bn = pve.nn.BatchNorm2d(4)
    bn.load_state_dict({k: v.numpy() for k, v in tbn.state_dict().items()})
    bn.eval()
    xe = np.random.default_rng(1).standard_normal((2, 4, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(bn(xe).detach().numpy(), tbn(torch.from_numpy(xe)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_batch_norm_without_bias_and_weighted_losses_match_torch():
    rng = np.random.default_rng(21)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    mine, theirs = pve.nn.BatchNorm2d(3, bias=False), torch.nn.BatchNorm2d(3, bias=False)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    w = rng.standard_normal(3).astype(np.float32)
    mine.weight.data, theirs.weight.data = w.copy(), torch.from_numpy(w.copy())
    for _ in range(3):
        np.testing.assert_allclose(mine(x).detach().numpy(),
                                   theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-4,
                                   atol=1e-5)
    np.testing.assert_allclose(mine.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-5)
    a, b = rng.standard_normal((2, 6)).astype(np.float32), rng.standard_normal((2, 6))
    wt = rng.uniform(0.1, 1.0, (2, 6)).astype(np.float32)
    for name in ("mse_loss", "l1_loss"):
        for reduction in ("mean", "sum", "none"):
            got = getattr(F, name)(a, b.astype(np.float32), reduction=reduction, weight=wt)
            want = getattr(TF, name)(torch.from_numpy(a), torch.from_numpy(b.astype(np.float32)),
                                     reduction=reduction, weight=torch.from_numpy(wt))
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
