"""F.ctc_loss / nn.CTCLoss against a float64 brute force over all alignments, a float64
loop implementation of the alpha recursion, float64 finite differences and torch."""

import itertools

import numpy as np
import pytest

import pyvision_engine as pve
import pyvision_engine.nn.functional as F
from reference.gradcheck import assert_grad_close, numerical_grads

rng = np.random.default_rng(11)


# ---------------------------------------------------------------- float64 references

def log_softmax64(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def brute_force_nll(lp, target, blank):
    """-log of the summed probability of every path over (T, C) that collapses (merge
    repeats, then drop blanks) to ``target``: C**T paths, so tiny T and C only."""
    t_len, c = lp.shape
    total = 0.0
    for path in itertools.product(range(c), repeat=t_len):
        collapsed = [k for i, k in enumerate(path) if k != blank and (i == 0 or k != path[i - 1])]
        if collapsed == list(target):
            total += np.exp(sum(lp[t, k] for t, k in enumerate(path)))
    return -np.log(total) if total > 0 else np.inf


def loop_nll(lp, target, blank):
    """The alpha recursion (Graves et al. 2006, eq. 6-8) as plain loops in log space."""
    t_len = lp.shape[0]
    ext = [blank]
    for k in target:
        ext += [k, blank]
    if t_len == 0:
        return 0.0 if len(target) == 0 else np.inf
    alpha = np.full((t_len, len(ext)), -np.inf)
    alpha[0, 0] = lp[0, blank]
    if len(ext) > 1:
        alpha[0, 1] = lp[0, ext[1]]
    for t in range(1, t_len):
        for s in range(len(ext)):
            terms = [alpha[t - 1, s]]
            if s >= 1:
                terms.append(alpha[t - 1, s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                terms.append(alpha[t - 1, s - 2])
            alpha[t, s] = np.logaddexp.reduce(terms) + lp[t, ext[s]]
    last = [alpha[-1, -1]] + ([alpha[-1, -2]] if len(ext) > 1 else [])
    return -np.logaddexp.reduce(last)


def ref_ctc(lp, targets, input_lengths, blank=0, reduction="mean", zero_infinity=False,
            nll=loop_nll):
    """torch's ctc_loss on (T, N, C) float64 log-probs and a list of target lists."""
    losses = np.array([nll(lp[:il, b], tg, blank)
                       for b, (tg, il) in enumerate(zip(targets, input_lengths))])
    if zero_infinity:
        losses = np.where(np.isinf(losses), 0.0, losses)
    if reduction == "mean":
        return np.mean(losses / np.maximum([len(tg) for tg in targets], 1))
    if reduction == "sum":
        return losses.sum()
    return losses


def padded(targets, width=None, fill=0):
    width = max([len(t) for t in targets] + [0]) if width is None else width
    out = np.full((len(targets), width), fill, dtype=np.int64)
    for i, t in enumerate(targets):
        out[i, :len(t)] = t
    return out


def concatenated(targets):
    return np.array([k for t in targets for k in t], dtype=np.int64)


def random_log_probs(t_len, n, c):
    return log_softmax64(rng.standard_normal((t_len, n, c)) * 1.5)


# A batch with repeated labels (which need a blank between them), an empty target, a
# target that fills the input exactly, and an impossible one (needs 6 frames, has 4).
BATCH_TARGETS = [[1, 1, 2], [3], [], [2, 3, 2, 1], [1, 1, 1]]
BATCH_LENGTHS = [7, 5, 6, 4, 4]
POSSIBLE = [0, 1, 2, 3]


# ---------------------------------------------------------------- the references agree

@pytest.mark.parametrize("target,blank", [([1], 0), ([1, 1], 0), ([1, 2], 0), ([0, 0], 2),
                                          ([], 0), ([2, 1, 2], 0), ([1, 1, 1], 0)])
def test_loop_reference_matches_brute_force(target, blank):
    lp = log_softmax64(rng.standard_normal((5, 3)))
    np.testing.assert_allclose(loop_nll(lp, target, blank), brute_force_nll(lp, target, blank),
                               rtol=1e-12)


# ---------------------------------------------------------------- values

@pytest.mark.parametrize("target,t_len,blank", [([1], 1, 0), ([1, 2], 3, 0), ([1, 1], 3, 0),
                                                ([1, 1], 4, 0), ([2, 2, 1], 5, 0), ([0, 1], 4, 2),
                                                ([], 4, 0), ([3, 1], 4, 2), ([1, 2], 5, 3)])
def test_forward_matches_brute_force(target, t_len, blank):
    c = 4 if blank == 3 or max(target, default=0) == 3 else 3
    lp = log_softmax64(rng.standard_normal((t_len, c)) * 2)
    out = F.ctc_loss(pve.tensor(lp[:, None]), pve.tensor(padded([target])),
                     (t_len,), (len(target),), blank=blank, reduction="none")
    assert out.shape == (1,) and out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), [brute_force_nll(lp, target, blank)], rtol=1e-5)


def test_impossible_alignment_is_inf():
    lp = log_softmax64(rng.standard_normal((3, 1, 3)))
    # [1, 1] needs 3 frames (1, blank, 1): possible in 3, impossible in 2; [1, 2, 1] in 2.
    out = F.ctc_loss(pve.tensor(lp), pve.tensor([[1, 1]]), (2,), (2,), reduction="none")
    assert out.numpy()[0] == np.inf and np.isinf(brute_force_nll(lp[:2, 0], [1, 1], 0))
    out = F.ctc_loss(pve.tensor(lp), pve.tensor([[1, 1]]), (3,), (2,), reduction="none")
    assert np.isfinite(out.numpy()[0])
    assert F.ctc_loss(pve.tensor(lp), pve.tensor([[1, 2, 1]]), (2,), (3,)).item() == np.inf


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_forward_matches_loop_reference(reduction, zero_infinity, layout):
    lp = random_log_probs(7, 5, 4)
    tg = padded(BATCH_TARGETS, width=6) if layout == "padded" else concatenated(BATCH_TARGETS)
    out = F.ctc_loss(pve.tensor(lp), pve.tensor(tg), BATCH_LENGTHS,
                     [len(t) for t in BATCH_TARGETS], reduction=reduction,
                     zero_infinity=zero_infinity)
    expected = ref_ctc(lp, BATCH_TARGETS, BATCH_LENGTHS, reduction=reduction,
                       zero_infinity=zero_infinity)
    assert out.dtype == np.float32 and out.shape == np.shape(expected)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)


def test_long_sequences_match_loop_reference():
    # OCR-like lengths with values far from 0 (log space must not underflow)
    t_len, c = 60, 12
    targets = [list(rng.integers(1, c, 25)), list(rng.integers(1, 3, 18)), [5] * 10]
    lengths = [60, 45, 60]
    lp = log_softmax64(rng.standard_normal((t_len, 3, c)) * 4)
    out = F.ctc_loss(pve.tensor(lp), pve.tensor(padded(targets)), pve.tensor(lengths),
                     pve.tensor([len(t) for t in targets]), reduction="none")
    np.testing.assert_allclose(out.numpy(), ref_ctc(lp, targets, lengths, reduction="none"),
                               rtol=1e-5)


def test_zero_input_length():
    lp = random_log_probs(3, 2, 3)
    out = F.ctc_loss(pve.tensor(lp), pve.tensor([[1], [1]]), (0, 0), (0, 1), reduction="none")
    assert out.numpy()[0] == 0 and out.numpy()[1] == np.inf


def test_unbatched_and_length_kinds():
    lp = random_log_probs(6, 1, 4)
    target = [2, 3, 3]
    expected = loop_nll(lp[:5, 0], target, 0)
    x = pve.tensor(lp[:, 0])
    for tg in (pve.tensor(target), pve.tensor([target])):
        for lengths in (((5,), (3,)), ([5], [3]), (pve.tensor([5]), pve.tensor([3])),
                        (pve.tensor(5), pve.tensor(3))):
            out = F.ctc_loss(x, tg, *lengths, reduction="none")
            assert out.shape == ()
            np.testing.assert_allclose(out.item(), expected, rtol=1e-5)
    np.testing.assert_allclose(F.ctc_loss(x, pve.tensor(target), (5,), (3,)).item(),
                               expected / 3, rtol=1e-5)
    np.testing.assert_allclose(F.ctc_loss(x, pve.tensor(target), (5,), (3,), reduction="sum")
                               .item(), expected, rtol=1e-5)


def test_module_forwards_to_functional():
    lp = pve.tensor(random_log_probs(7, 5, 4))
    tg, tl = pve.tensor(padded(BATCH_TARGETS)), [len(t) for t in BATCH_TARGETS]
    loss = pve.nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
    assert (loss.blank, loss.reduction, loss.zero_infinity) == (0, "sum", True)
    np.testing.assert_array_equal(
        loss(lp, tg, BATCH_LENGTHS, tl).numpy(),
        F.ctc_loss(lp, tg, BATCH_LENGTHS, tl, 0, "sum", True).numpy())
    default = pve.nn.CTCLoss()
    assert (default.blank, default.reduction, default.zero_infinity) == (0, "mean", False)
    assert repr(default) == "CTCLoss()" and len(default.state_dict()) == 0


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("blank", [0, 2])
def test_gradient_through_log_softmax_matches_finite_differences(reduction, blank):
    # The loss of log_softmax(x) is a function of x alone; torch's CTC gradient is
    # defined for exactly this use (see the next test), so it is checked here as is.
    targets = [[1, 1, 3], [3], [], [1, 3, 1]] if blank == 0 else [[1, 1, 3], [3], [], [0, 3, 0]]
    lengths = [6, 4, 5, 3]
    x = rng.standard_normal((6, 4, 4))
    up = rng.standard_normal(4) if reduction == "none" else np.array(0.7)

    def f(x64):
        return ref_ctc(log_softmax64(x64, 2), targets, lengths, blank, reduction)

    tx = pve.tensor(x, requires_grad=True)
    out = F.ctc_loss(F.log_softmax(tx, 2), pve.tensor(padded(targets)), lengths,
                     [len(t) for t in targets], blank=blank, reduction=reduction)
    out.backward(pve.tensor(up))
    assert_grad_close(tx.grad.numpy(), numerical_grads(f, [x], up)[0], name="dx")


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_gradient_wrt_log_probs_is_torchs(reduction):
    # torch's gradient w.r.t. log_probs is d(loss)/d(log_probs) plus exp(log_probs) times
    # the sample's upstream gradient on frames t < input_length (the log_softmax
    # Jacobian then maps it to the logits' gradient): the finite differences plus that.
    targets, lengths = [[1, 2, 2], [2], []], [6, 3, 4]
    lp = random_log_probs(6, 3, 3)
    up = rng.standard_normal(3) if reduction == "none" else np.array(1.3)
    tl = np.array([len(t) for t in targets])
    per_sample = {"none": up, "sum": np.full(3, up), "mean": up / np.maximum(tl, 1) / 3}[reduction]
    numeric = numerical_grads(lambda a: ref_ctc(a, targets, lengths, reduction=reduction),
                              [lp], up)[0]
    frames = np.arange(6)[:, None] < np.array(lengths)[None, :]
    expected = numeric + np.exp(lp) * per_sample[None, :, None] * frames[:, :, None]
    t = pve.tensor(lp, requires_grad=True)
    F.ctc_loss(t, pve.tensor(padded(targets, fill=1)), lengths, tl.tolist(),
               reduction=reduction).backward(pve.tensor(up))
    assert_grad_close(t.grad.numpy(), expected, name="dlog_probs")


def test_zero_infinity_gradient_and_impossible_gradient():
    lp = random_log_probs(4, 2, 3)
    targets = [[1, 1, 1], [2]]  # the first needs 5 frames
    for zero_infinity in (False, True):
        t = pve.tensor(lp, requires_grad=True)
        out = F.ctc_loss(t, pve.tensor(padded(targets)), (4, 3), (3, 1), reduction="none",
                         zero_infinity=zero_infinity)
        assert out.detach().numpy()[0] == (0.0 if zero_infinity else np.inf)
        out.backward(pve.tensor([1.0, 1.0]))
        g = t.grad.numpy()
        if zero_infinity:
            np.testing.assert_array_equal(g[:, 0], 0.0)
        else:  # torch's formula gives NaN on the sample's frames
            assert np.isnan(g[:, 0]).all()
        assert np.isfinite(g[:, 1]).all() and (g[3, 1] == 0).all()  # frame 3 is past length 3


# ---------------------------------------------------------------- errors

def _args(**over):
    args = dict(log_probs=pve.tensor(random_log_probs(5, 2, 4)),
                targets=pve.tensor([[1, 2], [3, 3]]), input_lengths=[5, 4], target_lengths=[2, 1])
    args.update(over)
    return args


@pytest.mark.parametrize("over,kw,exc,match", [
    ({}, {"reduction": "avg"}, ValueError, "reduction"),
    ({}, {"blank": 4}, RuntimeError, "blank must be in label range"),
    ({}, {"blank": -1}, RuntimeError, "blank must be in label range"),
    ({}, {"blank": 1.0}, TypeError, "blank"),
    ({}, {"zero_infinity": 1}, TypeError, "zero_infinity"),
    ({"input_lengths": [5]}, {}, RuntimeError, "input_lengths must be of size batch_size 2"),
    ({"target_lengths": [2, 1, 1]}, {}, RuntimeError, "target_lengths must be of size batch"),
    ({"input_lengths": [6, 4]}, {}, RuntimeError, r"input_lengths to have values in \[0, 5\]"),
    ({"input_lengths": [-1, 4]}, {}, RuntimeError, "input_lengths"),
    ({"target_lengths": [3, 1]}, {}, RuntimeError, r"shape \(2, >= 3\).*got shape \(2, 2\)"),
    ({"target_lengths": [-1, 1]}, {}, RuntimeError, "at least 0"),
    ({"targets": pve.tensor([[[1, 2]]])}, {}, RuntimeError, "3-dimensional"),
    ({"targets": pve.tensor([[1, 2]])}, {}, RuntimeError, r"shape \(2, >= 2\)"),
    ({"input_lengths": pve.tensor([5.0, 4.0]), "target_lengths": pve.tensor([2, 1])}, {},
     RuntimeError, "input_lengths must be integral"),
    ({"input_lengths": pve.tensor([5, 4]), "target_lengths": pve.tensor([True, True])}, {},
     RuntimeError, "target_lengths must be integral"),
    ({"input_lengths": pve.tensor([5, 4])}, {}, TypeError, "both"),
    ({"input_lengths": 5}, {}, TypeError, "input_lengths"),
    ({"target_lengths": [2.0, 1]}, {}, TypeError, "target_lengths"),
    ({"log_probs": pve.tensor(np.zeros((5, 0, 4)))}, {}, RuntimeError, "must not be empty"),
    ({"log_probs": pve.tensor(np.zeros((5, 2, 4, 1)))}, {}, RuntimeError, r"\(T, N, C\)"),
    ({"log_probs": pve.tensor(np.zeros(5))}, {}, RuntimeError, r"got shape \(5,\)"),
])
def test_errors(over, kw, exc, match):
    with pytest.raises(exc, match=match):
        F.ctc_loss(**_args(**over), **kw)


def test_errors_concatenated_size_and_target_values():
    with pytest.raises(RuntimeError, match=r"sum\(target_lengths\) = 3, got shape \(4,\)"):
        F.ctc_loss(**_args(targets=pve.tensor([1, 2, 3, 1])))
    # torch does not check target values on the CPU (it reads out of range, or takes a
    # blank as a label); here they are errors
    with pytest.raises(ValueError, match="target 4 is out of range for 4 classes"):
        F.ctc_loss(**_args(targets=pve.tensor([[1, 4], [3, 3]])))
    with pytest.raises(ValueError, match="blank index 0"):
        F.ctc_loss(**_args(targets=pve.tensor([[1, 0], [3, 3]])))
    # padding past a target's length is not read
    F.ctc_loss(**_args(targets=pve.tensor([[1, 2], [3, -7]])))
    with pytest.raises(TypeError, match="float32"):
        F.ctc_loss(**_args(log_probs=pve.tensor(np.zeros((5, 2, 4), dtype=np.int64))))


# ---------------------------------------------------------------- torch parity

torch = pytest.importorskip("torch", reason="torch parity tests need torch")
TF = torch.nn.functional


def _both(lp, tg, il, tl, requires_grad=True, **kw):
    """(pve loss, log_probs), (torch loss, log_probs) for the same float32 inputs. torch
    runs in float64 on them: its float32 recursion loses ~1e-6 absolute in the gradient
    over 40 frames (exp of nll ~ 50 rounded to float32), which this engine does in float64."""
    lp32 = np.asarray(lp, dtype=np.float32)
    p = pve.tensor(lp32, requires_grad=requires_grad)
    t = torch.tensor(lp32.astype(np.float64), requires_grad=requires_grad)
    as_t = (lambda v: torch.tensor(np.asarray(v._data))) if isinstance(il, pve.Tensor) else None
    out_p = F.ctc_loss(p, pve.tensor(tg), il, tl, **kw)
    out_t = TF.ctc_loss(t, torch.tensor(tg), *((as_t(il), as_t(tl)) if as_t else (il, tl)), **kw)
    return (out_p, p), (out_t, t)


def _check_parity(lp, tg, il, tl, **kw):
    (out_p, p), (out_t, t) = _both(lp, tg, il, tl, **kw)
    assert out_p.shape == tuple(out_t.shape) and out_p.dtype == np.float32
    np.testing.assert_allclose(out_p.detach().numpy(), out_t.detach().numpy(), rtol=2e-5,
                               atol=1e-5)
    up = rng.standard_normal(out_p.shape).astype(np.float32)
    out_p.backward(pve.tensor(up))
    out_t.backward(torch.tensor(up, dtype=torch.float64))
    gt = t.grad.numpy()
    np.testing.assert_array_equal(np.isnan(p.grad.numpy()), np.isnan(gt))
    np.testing.assert_allclose(p.grad.numpy(), gt, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_torch_parity_batch(reduction, zero_infinity, layout):
    lp = random_log_probs(7, 5, 4)
    tg = padded(BATCH_TARGETS, width=5) if layout == "padded" else concatenated(BATCH_TARGETS)
    _check_parity(lp, tg, BATCH_LENGTHS, [len(t) for t in BATCH_TARGETS], reduction=reduction,
                  zero_infinity=zero_infinity)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_torch_parity_possible_only_and_tensor_lengths(reduction):
    lp = random_log_probs(7, 4, 4)
    targets = [BATCH_TARGETS[i] for i in POSSIBLE]
    _check_parity(lp, padded(targets), pve.tensor([BATCH_LENGTHS[i] for i in POSSIBLE]),
                  pve.tensor([len(t) for t in targets]), reduction=reduction)


@pytest.mark.parametrize("blank", [0, 3, 5])
def test_torch_parity_ocr_sized(blank):
    t_len, n, c = 40, 6, 6
    labels = [k for k in range(c) if k != blank]
    targets = [list(rng.choice(labels, rng.integers(0, 15))) for _ in range(n)]
    targets[0] = [labels[0]] * 12  # repeats: needs 23 frames
    lengths = list(rng.integers(25, t_len + 1, n))
    lp = log_softmax64(rng.standard_normal((t_len, n, c)) * 3)
    for reduction in ("none", "mean"):
        _check_parity(lp, padded(targets, fill=labels[0]), lengths, [len(t) for t in targets],
                      blank=blank, reduction=reduction)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_torch_parity_unbatched(reduction):
    lp = random_log_probs(6, 1, 4)[:, 0]
    _check_parity(lp, np.array([1, 3, 3]), (6,), (3,), reduction=reduction)
    _check_parity(lp, np.array([[1, 3, 3, 2]]), (5,), (3,), reduction=reduction)


def test_torch_parity_zero_lengths_and_impossible():
    lp = random_log_probs(4, 4, 3)
    targets = [[], [1], [1, 1, 1], []]
    for zero_infinity in (False, True):
        for reduction in ("none", "mean"):
            _check_parity(lp, padded(targets, fill=2), (0, 0, 4, 2), (0, 1, 3, 0),
                          reduction=reduction, zero_infinity=zero_infinity)


def test_torch_parity_module():
    lp = random_log_probs(7, 5, 4).astype(np.float32)
    tg, tl = padded(BATCH_TARGETS), [len(t) for t in BATCH_TARGETS]
    ours = pve.nn.CTCLoss(reduction="sum", zero_infinity=True)
    theirs = torch.nn.CTCLoss(reduction="sum", zero_infinity=True)
    np.testing.assert_allclose(ours(pve.tensor(lp), pve.tensor(tg), BATCH_LENGTHS, tl).item(),
                               theirs(torch.tensor(lp), torch.tensor(tg), BATCH_LENGTHS, tl).item(),
                               rtol=2e-5)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == []


@pytest.mark.parametrize("over,kw", [
    ({}, {"reduction": "avg"}), ({}, {"blank": 4}), ({}, {"blank": -1}), ({}, {"blank": 1.0}),
    ({}, {"zero_infinity": 1}), ({"input_lengths": [5]}, {}), ({"target_lengths": [2, 1, 1]}, {}),
    ({"input_lengths": [6, 4]}, {}), ({"input_lengths": [-1, 4]}, {}),
    ({"target_lengths": [3, 1]}, {}), ({"target_lengths": [-1, 1]}, {}),
    ({"targets": pve.tensor([1, 2, 3, 1])}, {}), ({"targets": pve.tensor([[[1, 2]]])}, {}),
    ({"targets": pve.tensor([[1, 2]])}, {}),
    ({"input_lengths": pve.tensor([5.0, 4.0]), "target_lengths": pve.tensor([2, 1])}, {}),
    ({"input_lengths": pve.tensor([5, 4])}, {}), ({"input_lengths": 5}, {}),
    ({"target_lengths": [2.0, 1]}, {}), ({"log_probs": pve.tensor(np.zeros((5, 0, 4)))}, {}),
])
def test_torch_parity_errors(over, kw):
    args = _args(**over)

    def to_torch(v):
        return torch.tensor(np.asarray(v._data)) if isinstance(v, pve.Tensor) else v

    with pytest.raises(Exception) as theirs:
        TF.ctc_loss(**{k: to_torch(v) for k, v in args.items()}, **kw)
    with pytest.raises(Exception) as ours:
        F.ctc_loss(**args, **kw)
    assert isinstance(ours.value, type(theirs.value)), (ours.value, theirs.value)
