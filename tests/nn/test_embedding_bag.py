"""F.embedding_bag / nn.EmbeddingBag against a float64 bag-by-bag reference, float64
finite differences, and torch (bit-equal forward, gradients to float32 rounding)."""

import warnings

import numpy as np
import pytest

import pyvision_engine as pve
import pyvision_engine.nn.functional as F
from reference.gradcheck import assert_grad_close, numerical_grads

rng = np.random.default_rng(8)


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="torch parity tests need torch")


# ---------------------------------------------------------------- float64 reference
def bag_bounds(length, offsets, include_last_offset):
    starts = list(offsets[:-1] if include_last_offset else offsets)
    ends = starts[1:] + [length]
    return list(zip(starts, ends))


def ref_bag(indices, offsets, weight, mode, psw=None, include_last_offset=False,
            padding_idx=None):
    """(B, D) reductions of each bag's non-padding rows in float64; empty bags are 0."""
    weight = np.asarray(weight, np.float64)
    bounds = bag_bounds(len(indices), offsets, include_last_offset)
    out = np.zeros((len(bounds), weight.shape[1]))
    for b, (s, e) in enumerate(bounds):
        pos = [i for i in range(s, e) if indices[i] != padding_idx]
        if not pos:
            continue
        rows = weight[indices[pos]]
        if psw is not None:
            rows = rows * np.asarray(psw, np.float64)[pos][:, None]
        out[b] = {"sum": rows.sum, "mean": rows.mean, "max": rows.max}[mode](axis=0)
    return out


def random_bags(num, length, bags, empty=True):
    indices = rng.integers(0, num, size=length)
    cuts = np.sort(rng.integers(0, length + 1, size=bags - 1)) if empty else \
        np.sort(rng.choice(np.arange(1, length), size=bags - 1, replace=False))
    return indices, np.r_[0, cuts].astype(np.int64)


CASES = [  # mode, per_sample_weights, padding_idx, include_last_offset
    ("sum", False, None, False), ("mean", False, None, False), ("max", False, None, False),
    ("sum", True, None, False), ("sum", False, 2, False), ("mean", False, 2, True),
    ("max", False, 2, False), ("sum", True, 3, True), ("max", False, None, True),
]


def _call(mode, use_psw, pad, ilo, num=7, dim=5, length=17, bags=5, empty=True):
    indices, offsets = random_bags(num, length, bags, empty)
    if ilo:
        offsets = np.r_[offsets, length]
    weight = rng.standard_normal((num, dim)).astype(np.float32)
    psw = rng.standard_normal(length).astype(np.float32) if use_psw else None
    return indices, offsets, weight, psw


@pytest.mark.parametrize("mode,use_psw,pad,ilo", CASES)
def test_forward_matches_reference(mode, use_psw, pad, ilo):
    indices, offsets, weight, psw = _call(mode, use_psw, pad, ilo)
    y = F.embedding_bag(pve.tensor(indices), weight, pve.tensor(offsets), mode=mode,
                        per_sample_weights=psw, include_last_offset=ilo, padding_idx=pad)
    want = ref_bag(indices, offsets, weight, mode, psw, ilo, pad)
    assert y.shape == want.shape and y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-6, atol=1e-6)


def test_two_dimensional_input_is_fixed_length_bags():
    indices = rng.integers(0, 9, size=(4, 3))
    weight = rng.standard_normal((9, 6)).astype(np.float32)
    psw = rng.standard_normal((4, 3)).astype(np.float32)
    for mode, p in (("sum", psw), ("mean", None), ("max", None)):
        y = F.embedding_bag(pve.tensor(indices), weight, mode=mode, per_sample_weights=p)
        want = ref_bag(indices.reshape(-1), np.arange(0, 12, 3), weight, mode,
                       None if p is None else p.reshape(-1))
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-6, atol=1e-6)
    # include_last_offset has no meaning for a 2-D input and is ignored, as torch
    y = F.embedding_bag(pve.tensor(indices), weight, mode="sum", include_last_offset=True)
    assert y.shape == (4, 6)


def test_empty_bags_and_inputs_give_zeros():
    weight = rng.standard_normal((5, 3)).astype(np.float32)
    indices = np.array([1, 2, 4, 4], np.int64)
    for mode in ("sum", "mean", "max"):
        y = F.embedding_bag(pve.tensor(indices), weight, pve.tensor(np.array([0, 0, 2, 4, 4])),
                            mode=mode)
        assert np.all(y.numpy()[[0, 3, 4]] == 0)
        y = F.embedding_bag(pve.tensor(np.zeros(0, np.int64)), weight,
                            pve.tensor(np.array([0, 0])), mode=mode)
        np.testing.assert_array_equal(y.numpy(), np.zeros((2, 3)))
    y = F.embedding_bag(pve.tensor(indices), weight, pve.tensor(np.zeros(0, np.int64)))
    assert y.shape == (0, 3)
    y = F.embedding_bag(pve.tensor(np.zeros((0, 4), np.int64)), weight, mode="max")
    assert y.shape == (0, 3)
    # a bag of padding only is empty, for the mean's count as well
    y = F.embedding_bag(pve.tensor(np.array([4, 4, 1])), weight, pve.tensor(np.array([0, 2])),
                        mode="mean", padding_idx=4)
    np.testing.assert_array_equal(y.numpy(), np.stack([np.zeros(3), weight[1]]))


def test_max_keeps_first_maximum_and_first_nan():
    weight = np.array([[1, 5, np.nan], [3, 5, 2], [3, 0, 7]], np.float32)
    w = pve.tensor(weight, requires_grad=True)
    y = F.embedding_bag(pve.tensor(np.array([0, 1, 2])), w, pve.tensor(np.array([0])),
                        mode="max")
    np.testing.assert_array_equal(y.detach().numpy(), [[3, 5, np.nan]])
    y.backward(pve.tensor(np.ones((1, 3), np.float32)))
    # the gradient goes to the row that gave each column's maximum: ties to the first
    np.testing.assert_array_equal(w.grad.numpy(), [[0, 1, 1], [1, 0, 0], [0, 0, 0]])


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("mode,use_psw,pad,ilo", CASES)
def test_gradients_against_finite_differences(mode, use_psw, pad, ilo):
    indices, offsets, weight, psw = _call(mode, use_psw, pad, ilo, num=5, dim=3, length=11,
                                          bags=4)
    weight = rng.permutation(weight.size).reshape(weight.shape).astype(np.float32) * 0.25
    w = pve.tensor(weight, requires_grad=True)
    p = None if psw is None else pve.tensor(psw, requires_grad=True)
    y = F.embedding_bag(pve.tensor(indices), w, pve.tensor(offsets), mode=mode,
                        per_sample_weights=p, include_last_offset=ilo, padding_idx=pad)
    up = rng.standard_normal(y.shape)
    y.backward(pve.tensor(up.astype(np.float32)))

    def f(w64, *rest):
        return ref_bag(indices, offsets, w64, mode, rest[0] if rest else None, ilo, pad)

    inputs = [weight] + ([psw] if psw is not None else [])
    want = numerical_grads(f, inputs, up)
    assert_grad_close(w.grad.numpy(), want[0], name="weight")
    if psw is not None:
        assert_grad_close(p.grad.numpy(), want[1], name="per_sample_weights")
        if pad is not None:  # padding entries get no gradient
            assert np.all(p.grad.numpy()[indices == pad] == 0)
    if pad is not None:
        assert np.all(w.grad.numpy()[pad] == 0)


def ref_freq_scaled_grad(indices, offsets, g, num, mode, pad=None):
    """Row gradients of sum/mean with each position's share divided by its index's
    count in the whole input (the documented scale_grad_by_freq rule)."""
    counts = np.bincount(indices, minlength=num)
    gw = np.zeros((num, g.shape[1]))
    for b, (s, e) in enumerate(bag_bounds(len(indices), offsets, False)):
        pos = [i for i in range(s, e) if indices[i] != pad]
        for i in pos:
            share = 1.0 / counts[indices[i]]
            if mode == "mean":
                share /= len(pos)
            gw[indices[i]] += share * g[b]
    return gw


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_scale_grad_by_freq(mode):
    indices = np.array([3, 1, 3, 3, 5, 1, 7, 3, 0])
    offsets = np.array([0, 2, 5, 6])
    w = pve.tensor(rng.standard_normal((9, 4)).astype(np.float32), requires_grad=True)
    y = F.embedding_bag(pve.tensor(indices), w, pve.tensor(offsets), mode=mode,
                        scale_grad_by_freq=True, padding_idx=0)
    g = rng.standard_normal(y.shape)
    y.backward(pve.tensor(g.astype(np.float32)))
    want = ref_freq_scaled_grad(indices, offsets, g, 9, mode, pad=0)
    np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- max_norm
def test_max_norm_renormalises_looked_up_rows_in_place():
    weight = rng.standard_normal((6, 4)).astype(np.float32) * 3
    w = pve.tensor(weight.copy())
    indices = np.array([0, 2, 2, 5])
    F.embedding_bag(pve.tensor(indices), w, pve.tensor(np.array([0, 3])), max_norm=1.5,
                    mode="sum")
    norms = np.linalg.norm(weight.astype(np.float64), axis=1)
    for r in range(6):
        if r in indices and norms[r] > 1.5:
            np.testing.assert_allclose(w.numpy()[r], weight[r] * 1.5 / (norms[r] + 1e-7),
                                       rtol=1e-6)
        else:
            np.testing.assert_array_equal(w.numpy()[r], weight[r])


# ---------------------------------------------------------------- module
def test_module_parameters_init_and_repr():
    pve.manual_seed(0)
    m = pve.nn.EmbeddingBag(300, 40, mode="sum", padding_idx=-3, max_norm=2.0)
    assert list(m.state_dict()) == ["weight"] and m.weight.shape == (300, 40)
    assert m.padding_idx == 297 and np.all(m.weight.detach().numpy()[297] == 0)
    values = np.delete(m.weight.detach().numpy(), 297, axis=0)
    assert abs(values.mean()) < 0.02 and abs(values.std() - 1) < 0.02  # N(0, 1)
    assert repr(m) == "EmbeddingBag(300, 40, max_norm=2.0, mode='sum', padding_idx=297)"
    assert repr(pve.nn.EmbeddingBag(3, 2)) == "EmbeddingBag(3, 2, mode='mean')"


def test_module_forward_and_from_pretrained():
    weight = pve.tensor(rng.standard_normal((8, 3)).astype(np.float32))
    m = pve.nn.EmbeddingBag.from_pretrained(weight, mode="max", padding_idx=1)
    assert not m.weight.requires_grad and m.padding_idx == 1
    assert np.shares_memory(m.weight.detach().numpy(), weight.numpy())
    indices, offsets = np.array([1, 4, 0, 2, 7]), np.array([0, 2])
    np.testing.assert_array_equal(
        m(pve.tensor(indices), pve.tensor(offsets)).numpy(),
        ref_bag(indices, offsets, weight.numpy(), "max", padding_idx=1).astype(np.float32))
    assert pve.nn.EmbeddingBag.from_pretrained(weight, freeze=False).weight.requires_grad
    bag = pve.nn.EmbeddingBag(8, 3, mode="sum", include_last_offset=True)
    y = bag(pve.tensor(indices), pve.tensor(np.array([0, 2, 5])),
            per_sample_weights=pve.tensor(np.ones(5, np.float32)))
    want = ref_bag(indices, [0, 2, 5], bag.weight.detach().numpy(), "sum",
                   include_last_offset=True)
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: pve.nn.EmbeddingBag(10, 3, padding_idx=10),
    lambda: pve.nn.EmbeddingBag(10, 3, padding_idx=-11),
    lambda: pve.nn.EmbeddingBag(10, 3, _weight=np.zeros((3, 3), np.float32)),
    lambda: pve.nn.EmbeddingBag.from_pretrained(np.zeros(3, np.float32)),
])
def test_module_assertions(make):
    with pytest.raises(AssertionError):
        make()
    with pytest.raises(ValueError):
        make()


# ---------------------------------------------------------------- errors
W = np.zeros((10, 3), np.float32)
I = np.array([1, 2, 4, 5, 4, 3, 2, 9])
O = np.array([0, 4])

ERRORS = [  # (call, pve exception, torch exception), on (F, tensor, input, weight, offsets)
    (lambda f, t: f(t(I), t(W), t(np.array([1, 4]))), ValueError, RuntimeError),
    (lambda f, t: f(t(I), t(W), t(np.array([0, 9]))), ValueError, RuntimeError),
    (lambda f, t: f(t(I), t(W), t(np.zeros(0, np.int64)), include_last_offset=True),
     ValueError, RuntimeError),
    (lambda f, t: f(t(np.array([1, 10])), t(W), t(np.array([0]))), ValueError, RuntimeError),
    (lambda f, t: f(t(np.array([1, -1])), t(W), t(np.array([0]))), ValueError, RuntimeError),
    (lambda f, t: f(t(I), t(W), t(O), mode="foo"), ValueError, ValueError),
    (lambda f, t: f(t(I), t(W), t(O), mode="max", scale_grad_by_freq=True), ValueError,
     ValueError),
    (lambda f, t: f(t(I), t(W), t(O), mode="max", sparse=True), ValueError, ValueError),
    (lambda f, t: f(t(I), t(W), t(O), mode="mean", per_sample_weights=t(np.ones(8, np.float32))),
     NotImplementedError, NotImplementedError),
    (lambda f, t: f(t(I), t(W), t(O), mode="sum", per_sample_weights=t(np.ones(7, np.float32))),
     ValueError, ValueError),
    (lambda f, t: f(t(I.reshape(2, 4)), t(W), t(O)), ValueError, ValueError),
    (lambda f, t: f(t(I), t(W)), ValueError, ValueError),
    (lambda f, t: f(t(I), t(W), t(O.reshape(1, 2))), ValueError, ValueError),
    (lambda f, t: f(t(I.reshape(2, 2, 2)), t(W)), ValueError, ValueError),
    (lambda f, t: f(t(I), t(W.reshape(30)), t(O)), ValueError, ValueError),
    (lambda f, t: f(t(I), t(W), t(O), padding_idx=10), ValueError, RuntimeError),
    (lambda f, t: f(t(I), t(W), t(O), padding_idx=-11), ValueError, RuntimeError),
    (lambda f, t: f(t(I.astype(np.float32)), t(W), t(O)), TypeError, RuntimeError),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_as_torch(case, torch):
    call, pve_error, torch_error = ERRORS[case]
    with pytest.raises(pve_error):
        call(F.embedding_bag, pve.tensor)
    with pytest.raises(torch_error):
        call(torch.nn.functional.embedding_bag, torch.tensor)


def test_refuses_offsets_torch_mishandles():
    # decreasing offsets, and a last offset short of the input's end with
    # include_last_offset (torch's kernels disagree on that tail's bag)
    with pytest.raises(ValueError, match="non-decreasing"):
        F.embedding_bag(pve.tensor(I), W, pve.tensor(np.array([0, 5, 3])))
    with pytest.raises(ValueError, match="last offset must equal"):
        F.embedding_bag(pve.tensor(I), W, pve.tensor(np.array([0, 3, 7])),
                        include_last_offset=True)
    with pytest.raises(ValueError, match="at least one index per bag"):
        F.embedding_bag(pve.tensor(np.zeros((2, 0), np.int64)), W)
    with pytest.raises(NotImplementedError, match="sparse"):
        F.embedding_bag(pve.tensor(I), W, pve.tensor(O), sparse=True)


def test_old_argument_order_warns_and_works():
    weight = rng.standard_normal((10, 3)).astype(np.float32)
    with pytest.warns(UserWarning, match="Argument order"):
        y = F.embedding_bag(weight, pve.tensor(I), pve.tensor(O))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = F.embedding_bag(pve.tensor(I), weight, pve.tensor(O))
    np.testing.assert_array_equal(y.numpy(), z.numpy())


# ---------------------------------------------------------------- torch parity
PARITY = CASES + [("sum", True, None, True), ("mean", False, 0, False), ("max", False, 4, True)]


@pytest.mark.parametrize("mode,use_psw,pad,ilo", PARITY)
@pytest.mark.parametrize("dim", [1, 7, 33])
def test_torch_parity(mode, use_psw, pad, ilo, dim, torch):
    indices, offsets, weight, psw = _call(mode, use_psw, pad, ilo, num=9, dim=dim, length=40,
                                          bags=7)
    tw = torch.tensor(weight, requires_grad=True)
    tp = None if psw is None else torch.tensor(psw, requires_grad=True)
    ty = torch.nn.functional.embedding_bag(torch.tensor(indices), tw, torch.tensor(offsets),
                                           mode=mode, per_sample_weights=tp,
                                           include_last_offset=ilo, padding_idx=pad)
    pw = pve.tensor(weight, requires_grad=True)
    pp = None if psw is None else pve.tensor(psw, requires_grad=True)
    py = F.embedding_bag(pve.tensor(indices), pw, pve.tensor(offsets), mode=mode,
                         per_sample_weights=pp, include_last_offset=ilo, padding_idx=pad)
    # same float32 operations in the same order: equal values
    np.testing.assert_array_equal(py.detach().numpy(), ty.detach().numpy())
    g = rng.standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.tensor(g))
    py.backward(pve.tensor(g))
    # (torch's unstable sort may add a row's repeats in another order: last-bit differences)
    np.testing.assert_allclose(pw.grad.numpy(), tw.grad.numpy(), rtol=1e-6, atol=1e-6)
    if psw is not None:
        np.testing.assert_allclose(pp.grad.numpy(), tp.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_torch_parity_2d_input_and_max_norm(torch):
    indices = rng.integers(0, 12, size=(5, 4))
    weight = (rng.standard_normal((12, 6)) * 2).astype(np.float32)
    tw, pw = torch.tensor(weight), pve.tensor(weight.copy())
    for mode in ("sum", "mean", "max"):
        ty = torch.nn.functional.embedding_bag(torch.tensor(indices), tw, mode=mode,
                                               max_norm=1.0)
        py = F.embedding_bag(pve.tensor(indices), pw, mode=mode, max_norm=1.0)
        np.testing.assert_allclose(pw.numpy(), tw.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(py.numpy(), ty.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_torch_parity_scale_grad_by_freq(mode, torch):
    # every index appears equally often: torch 2.13's CPU kernel looks a count up at the
    # wrong sorted position (pytorch#190063), which only matters when counts differ
    indices = rng.permutation(np.repeat(np.arange(6), 3))
    offsets = np.array([0, 4, 9, 9, 13])
    weight = rng.standard_normal((8, 5)).astype(np.float32)
    tw, pw = torch.tensor(weight, requires_grad=True), pve.tensor(weight, requires_grad=True)
    ty = torch.nn.functional.embedding_bag(torch.tensor(indices), tw, torch.tensor(offsets),
                                           mode=mode, scale_grad_by_freq=True)
    py = F.embedding_bag(pve.tensor(indices), pw, pve.tensor(offsets), mode=mode,
                         scale_grad_by_freq=True)
    g = rng.standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.tensor(g))
    py.backward(pve.tensor(g))
    np.testing.assert_allclose(pw.grad.numpy(), tw.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_torch_parity_module(torch):
    tm = torch.nn.EmbeddingBag(11, 4, mode="sum", padding_idx=3, include_last_offset=True)
    pm = pve.nn.EmbeddingBag(11, 4, mode="sum", padding_idx=3, include_last_offset=True)
    assert list(pm.state_dict()) == list(tm.state_dict())
    assert repr(pm) == repr(tm)
    pm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    indices, offsets = rng.integers(0, 11, size=20), np.array([0, 3, 3, 12, 20])
    psw = rng.standard_normal(20).astype(np.float32)
    ty = tm(torch.tensor(indices), torch.tensor(offsets), torch.tensor(psw))
    py = pm(pve.tensor(indices), pve.tensor(offsets), pve.tensor(psw))
    np.testing.assert_array_equal(py.detach().numpy(), ty.detach().numpy())
    for name in ("from_pretrained",):
        a = getattr(torch.nn.EmbeddingBag, name)(torch.tensor(W), padding_idx=-1)
        b = getattr(pve.nn.EmbeddingBag, name)(W, padding_idx=-1)
        assert (a.padding_idx, a.mode, a.weight.requires_grad) == \
            (b.padding_idx, b.mode, b.weight.requires_grad)


def _signature(fn):
    import inspect
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_api_as_torchs_and_loaded_lazily(torch):
    assert _signature(F.embedding_bag) == _signature(torch.nn.functional.embedding_bag)
    for name in ("__init__", "forward", "from_pretrained"):
        assert _signature(getattr(pve.nn.EmbeddingBag, name)) == \
            _signature(getattr(torch.nn.EmbeddingBag, name)), name
    assert "embedding_bag" in F.__all__ and "EmbeddingBag" in pve.nn.__all__
    from subprocess_env import run_python
    done = run_python(["-c", "import sys, pyvision_engine; "
                       "assert 'pyvision_engine.nn._f_embedding_bag' not in sys.modules; "
                       "assert 'pyvision_engine.nn.embedding_bag' not in sys.modules"])
    assert done.returncode == 0, done.stderr
