"""nn.AdaptiveLogSoftmaxWithLoss against a float64 numpy reference of the adaptive
softmax, float64 finite differences, and torch (outputs, loss, gradients, log_prob,
predict, state_dict keys, errors)."""

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine.nn import AdaptiveLogSoftmaxWithLoss
from reference.gradcheck import assert_grad_close, numerical_grads

rng = np.random.default_rng(17)
# (a cluster projection of width in_features // div_value**i may be empty, as in torch)
pytestmark = pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="torch parity tests need torch")


# ---------------------------------------------------------------- float64 reference
def log_softmax64(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def params64(module):
    return {n: p.detach().numpy().astype(np.float64) for n, p in module.named_parameters()}


def ref_full_log_prob(x, p, cutoffs):
    """(N, n_classes): head log-probs for the shortlist, cluster + within-cluster for the
    tail, from the parameters by name."""
    head = x @ p["head.weight"].T + p.get("head.bias", 0.0)
    head_lp = log_softmax64(head)
    short = cutoffs[0]
    parts = [head_lp[:, :short]]
    for i in range(len(cutoffs) - 1):
        hidden = x @ p[f"tail.{i}.0.weight"].T
        cluster_lp = log_softmax64(hidden @ p[f"tail.{i}.1.weight"].T)
        parts.append(cluster_lp + head_lp[:, short + i:short + i + 1])
    return np.concatenate(parts, axis=1)


def ref_forward(x, target, p, cutoffs):
    """(targets' log-probabilities, mean negative log-likelihood)."""
    out = ref_full_log_prob(x, p, cutoffs)[np.arange(len(target)), target]
    return out, -out.mean()


CONFIGS = [  # in_features, n_classes, cutoffs, div_value, head_bias
    (16, 30, [5, 12, 20], 2.0, False),
    (8, 20, [4], 4.0, True),
    (12, 40, [3, 6, 10, 25], 1.5, True),
    (10, 11, [10], 4.0, False),
]


def _module(in_features, n_classes, cutoffs, div_value, head_bias):
    pve.manual_seed(3)
    return AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs, div_value=div_value,
                                      head_bias=head_bias)


@pytest.mark.parametrize("config", CONFIGS)
def test_parameters_and_state_dict_keys(config):
    in_features, n_classes, cutoffs, div_value, head_bias = config
    m = _module(*config)
    full = cutoffs + [n_classes]
    shapes = {"head.weight": (full[0] + len(cutoffs), in_features)}
    if head_bias:
        shapes["head.bias"] = (full[0] + len(cutoffs),)
    for i in range(len(cutoffs)):
        hsz = int(in_features // (div_value ** (i + 1)))
        shapes[f"tail.{i}.0.weight"] = (hsz, in_features)
        shapes[f"tail.{i}.1.weight"] = (full[i + 1] - full[i], hsz)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == shapes
    assert list(m.state_dict()) == list(shapes)
    assert (m.shortlist_size, m.n_clusters, m.head_size, m.cutoffs) == \
        (full[0], len(cutoffs), full[0] + len(cutoffs), full)


@pytest.mark.parametrize("config", CONFIGS)
def test_forward_log_prob_predict_match_reference(config):
    m = _module(*config)
    in_features, n_classes, cutoffs = config[:3]
    x = rng.standard_normal((9, in_features)).astype(np.float32)
    target = rng.integers(0, n_classes, size=9)
    out, loss = m(pve.tensor(x), pve.tensor(target))
    want_out, want_loss = ref_forward(x.astype(np.float64), target, params64(m), m.cutoffs)
    np.testing.assert_allclose(out.detach().numpy(), want_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss.item(), want_loss, rtol=1e-5)
    full = ref_full_log_prob(x.astype(np.float64), params64(m), m.cutoffs)
    lp = m.log_prob(pve.tensor(x)).detach().numpy()
    np.testing.assert_allclose(lp, full, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.exp(full).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(m.predict(pve.tensor(x)).numpy(), full.argmax(axis=1))


def test_unbatched_input_and_named_tuple():
    m = _module(*CONFIGS[0])
    x = rng.standard_normal(16).astype(np.float32)
    result = m(pve.tensor(x), pve.tensor(np.array(23)))
    assert type(result).__name__ == "_ASMoutput" and result._fields == ("output", "loss")
    assert result.output.shape == () and result.loss.shape == ()
    want, _ = ref_forward(x[None].astype(np.float64), np.array([23]), params64(m), m.cutoffs)
    np.testing.assert_allclose(result.output.item(), want[0], rtol=1e-5)
    np.testing.assert_allclose(result.loss.item(), -want[0], rtol=1e-5)


def test_predict_mixes_shortlist_and_tail_rows():
    m = _module(8, 20, [4], 4.0, True)
    with pve.no_grad():  # make class 1 win for even rows, the tail cluster for odd rows
        m.head.weight.zero_()
        m.head.bias.copy_(pve.tensor(np.array([0, 0, 0, 0, 0], np.float32)))
    x = rng.standard_normal((6, 8)).astype(np.float32)
    bias = np.zeros(5, np.float32)
    for shortlist_wins in (True, False):
        bias[:] = [0, 9, 0, 0, 0] if shortlist_wins else [0, 0, 0, 0, 9]
        with pve.no_grad():
            m.head.bias.copy_(pve.tensor(bias))
        full = ref_full_log_prob(x.astype(np.float64), params64(m), m.cutoffs)
        np.testing.assert_array_equal(m.predict(x).numpy(), full.argmax(axis=1))
        assert (m.predict(x).numpy() < 4).all() == shortlist_wins


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("config", CONFIGS[:3])
def test_gradients_against_finite_differences(config):
    m = _module(*config)
    in_features, n_classes = config[:2]
    x = rng.standard_normal((6, in_features))
    target = rng.integers(0, n_classes, size=6)
    names = [n for n, _ in m.named_parameters()]

    def f(x64, *ps):
        out, loss = ref_forward(x64, target, dict(zip(names, ps)), m.cutoffs)
        return np.r_[out, loss]

    tx = pve.tensor(x.astype(np.float32), requires_grad=True)
    out, loss = m(tx, pve.tensor(target))
    up = rng.standard_normal(7)
    total = pve.cat([out, loss.reshape(1)], 0)
    total.backward(pve.tensor(up.astype(np.float32)))
    p64 = params64(m)
    want = numerical_grads(f, [x] + [p64[n] for n in names], up)
    params = dict(m.named_parameters())
    assert_grad_close(tx.grad.numpy(), want[0], name="input")
    for n, w in zip(names, want[1:]):
        grad = params[n].grad  # None for a cluster no target reached: its FD is zero
        assert_grad_close(np.zeros_like(w) if grad is None else grad.numpy(), w, name=n)


def test_log_prob_gradient_against_finite_differences():
    m = _module(*CONFIGS[2])
    names = [n for n, _ in m.named_parameters()]
    x = rng.standard_normal((3, 12))
    tx = pve.tensor(x.astype(np.float32), requires_grad=True)
    lp = m.log_prob(tx)
    up = rng.standard_normal(lp.shape)
    lp.backward(pve.tensor(up.astype(np.float32)))
    p64 = params64(m)
    want = numerical_grads(lambda x64, *ps: ref_full_log_prob(x64, dict(zip(names, ps)),
                                                              m.cutoffs),
                           [x] + [p64[n] for n in names], up)
    assert_grad_close(tx.grad.numpy(), want[0], name="input")
    for n, w in zip(names, want[1:]):
        assert_grad_close(dict(m.named_parameters())[n].grad.numpy(), w, name=n)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("cutoffs", [[], [5, 3], [0, 5], [5, 30], [5, 5, 7], [5.5], [-1]])
def test_bad_cutoffs(cutoffs, torch):
    with pytest.raises(ValueError, match="cutoffs should be"):
        AdaptiveLogSoftmaxWithLoss(8, 30, cutoffs)
    with pytest.raises(ValueError, match="cutoffs should be"):
        torch.nn.AdaptiveLogSoftmaxWithLoss(8, 30, cutoffs)


FORWARD_ERRORS = [  # input shape, target, message
    ((4, 8), np.array([1, 2, 3]), "same size in the batch dimension"),
    ((4,), np.array([1, 2, 3, 4]), "1D target tensor expects 2D input"),
    ((2, 8), np.array(3), "0D target tensor expects 1D input"),
    ((2, 8), np.array([[1], [2]]), "multi-target not supported"),
    ((3, 8), np.array([1, 20, 2]), r"Target values should be in \[0, 19\]"),
    ((3, 8), np.array([1, -1, 2]), r"Target values should be in \[0, 19\]"),
]


@pytest.mark.parametrize("case", range(len(FORWARD_ERRORS)))
def test_forward_errors_as_torch(case, torch):
    shape, target, message = FORWARD_ERRORS[case]
    x = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=message):
        AdaptiveLogSoftmaxWithLoss(8, 20, [4, 10])(x, pve.tensor(target))
    with pytest.raises(RuntimeError, match=message):
        torch.nn.AdaptiveLogSoftmaxWithLoss(8, 20, [4, 10])(torch.tensor(x), torch.tensor(target))


def test_other_bad_input():
    m = AdaptiveLogSoftmaxWithLoss(8, 20, [4, 10])
    with pytest.raises(TypeError, match="int64"):
        m(np.zeros((2, 8), np.float32), pve.tensor(np.array([1.0, 2.0], np.float32)))
    with pytest.raises(ValueError, match=r"log_prob: expected input \(N, in_features\)"):
        m.log_prob(np.zeros(8, np.float32))
    with pytest.raises(ValueError, match=r"predict: expected input \(N, in_features\)"):
        m.predict(np.zeros((1, 2, 8), np.float32))


# ---------------------------------------------------------------- torch parity
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("batch", [1, 5, 33])
def test_torch_parity(config, batch, torch):
    in_features, n_classes, cutoffs, div_value, head_bias = config
    tm = torch.nn.AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs,
                                             div_value=div_value, head_bias=head_bias)
    pm = AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs, div_value=div_value,
                                    head_bias=head_bias)
    assert list(pm.state_dict()) == list(tm.state_dict())
    pm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((batch, in_features)).astype(np.float32)
    target = rng.integers(0, n_classes, size=batch)
    tx, px = torch.tensor(x, requires_grad=True), pve.tensor(x, requires_grad=True)
    (to, tl), (po, pl) = tm(tx, torch.tensor(target)), pm(px, pve.tensor(target))
    np.testing.assert_allclose(po.detach().numpy(), to.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pl.item(), tl.item(), rtol=1e-5, atol=1e-6)
    up = rng.standard_normal(batch).astype(np.float32)
    (to * torch.tensor(up)).sum().add(tl).backward()
    ((po * pve.tensor(up)).sum() + pl).backward()
    np.testing.assert_allclose(px.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    for (name, tp), (_, pp) in zip(tm.named_parameters(), pm.named_parameters()):
        assert (pp.grad is None) == (tp.grad is None), name  # clusters no target reached
        if tp.grad is not None:
            np.testing.assert_allclose(pp.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=name)
    np.testing.assert_allclose(pm.log_prob(x).detach().numpy(),
                               tm.log_prob(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(pm.predict(x).numpy(), tm.predict(torch.tensor(x)).numpy())


def test_torch_parity_unbatched(torch):
    tm = torch.nn.AdaptiveLogSoftmaxWithLoss(8, 20, [4, 10], head_bias=True)
    pm = AdaptiveLogSoftmaxWithLoss(8, 20, [4, 10], head_bias=True)
    pm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal(8).astype(np.float32)
    for t in (2, 7, 15):
        to, tl = tm(torch.tensor(x), torch.tensor(t))
        po, pl = pm(x, pve.tensor(np.array(t)))
        assert po.shape == tuple(to.shape) and pl.shape == tuple(tl.shape)
        np.testing.assert_allclose(po.item(), to.item(), rtol=1e-5)
        np.testing.assert_allclose(pl.item(), tl.item(), rtol=1e-5)


def _signature(fn):
    import inspect
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_api_as_torchs_and_loaded_lazily(torch):
    for name in ("__init__", "forward", "log_prob", "predict"):
        assert _signature(getattr(AdaptiveLogSoftmaxWithLoss, name)) == \
            _signature(getattr(torch.nn.AdaptiveLogSoftmaxWithLoss, name)), name
    assert "AdaptiveLogSoftmaxWithLoss" in pve.nn.__all__
    from subprocess_env import run_python
    done = run_python(["-c", "import sys, pyvision_engine; "
                       "assert 'pyvision_engine.nn.adaptive' not in sys.modules"])
    assert done.returncode == 0, done.stderr
