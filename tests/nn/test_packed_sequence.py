"""nn.utils.rnn (PackedSequence, pack/pad/unpad) and RNN / LSTM / GRU on packed input:
plain-numpy references of the layouts and their gradients, a float64 numpy reference of
the recurrence run sequence by sequence at each one's own length, float64 finite
differences of the packed time-loop Function, torch parity (outputs, final states and
every gradient; skipped without torch), and errors."""

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine.nn import GRU, LSTM, RNN
from pyvision_engine.nn.rnn import _RecurrentLoop
from pyvision_engine.nn.utils.rnn import (
    PackedSequence, invert_permutation, pack_padded_sequence, pack_sequence,
    pad_packed_sequence, pad_sequence, unpack_sequence, unpad_sequence,
)
from reference.gradcheck import assert_grad_close, numerical_grads

rng = np.random.default_rng(21)
MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]


def _torch():
    return pytest.importorskip("torch", reason="torch parity tests need torch")


def f32(*shape, scale=0.7):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


# ------------------------------------------------------------------ numpy layout references
def np_pack(padded, lengths, batch_first):
    """data and batch_sizes of a padded batch, sequence by sequence, longest first (ties
    in batch order)."""
    x = np.swapaxes(padded, 0, 1) if batch_first else padded
    order = sorted(range(len(lengths)), key=lambda b: -lengths[b])
    sizes = [sum(1 for b in order if lengths[b] > t) for t in range(max(lengths))]
    rows = [x[t, b] for t in range(len(sizes)) for b in order[:sizes[t]]]
    return np.stack(rows), np.array(sizes), np.array(order)


def np_pad(sequences, batch_first, value, side="right", steps=None):
    steps = steps or max(len(s) for s in sequences)
    out = np.full((steps, len(sequences)) + sequences[0].shape[1:], value,
                  dtype=sequences[0].dtype)
    for b, s in enumerate(sequences):
        start = 0 if side == "right" else steps - len(s)
        out[start:start + len(s), b] = s
    return np.swapaxes(out, 0, 1) if batch_first else out


PACK_CASES = [([4, 3, 3, 1], True, False), ([4, 3, 3, 1], True, True),
              ([2, 4, 1, 3], False, False), ([2, 4, 1, 3], False, True),
              ([3, 3, 3], True, False), ([1, 1], False, True), ([1, 2, 2], False, False)]


@pytest.mark.parametrize("lengths,enforce_sorted,batch_first", PACK_CASES)
@pytest.mark.parametrize("trailing", [(), (2,), (2, 3)])
def test_pack_and_pad_against_numpy(lengths, enforce_sorted, batch_first, trailing):
    steps, batch = max(lengths) + 1, len(lengths)  # (one step of padding past the longest)
    shape = (batch, steps) if batch_first else (steps, batch)
    x = f32(*shape, *trailing)
    packed = pack_padded_sequence(pve.tensor(x, requires_grad=True), lengths,
                                  batch_first=batch_first, enforce_sorted=enforce_sorted)
    data, sizes, order = np_pack(x, lengths, batch_first)
    np.testing.assert_array_equal(packed.data.detach().numpy(), data)
    assert packed.batch_sizes.dtype == np.int64
    np.testing.assert_array_equal(packed.batch_sizes.numpy(), sizes)
    if enforce_sorted:
        assert packed.sorted_indices is None and packed.unsorted_indices is None
    else:
        np.testing.assert_array_equal(packed.sorted_indices.numpy(), order)
        np.testing.assert_array_equal(packed.unsorted_indices.numpy(), np.argsort(order))
    sequences = [(x[b] if batch_first else x[:, b])[:n] for b, n in enumerate(lengths)]
    padded, got_lengths = pad_packed_sequence(packed, batch_first, padding_value=-3.0,
                                              total_length=steps + 2)
    want = np_pad(sequences, batch_first, -3.0, steps=steps + 2)
    np.testing.assert_array_equal(padded.detach().numpy(), want)
    np.testing.assert_array_equal(got_lengths.numpy(), lengths)
    assert got_lengths.dtype == np.int64


@pytest.mark.parametrize("lengths,enforce_sorted,batch_first", PACK_CASES)
def test_pack_and_pad_gradients_against_numpy(lengths, enforce_sorted, batch_first):
    """pack's gradient puts each data row's gradient at its input position (zero in the
    padding); pad's takes each data row's from its padded position."""
    steps, batch = max(lengths), len(lengths)
    x = f32(*((batch, steps) if batch_first else (steps, batch)), 3)
    tx = pve.tensor(x, requires_grad=True)
    packed = pack_padded_sequence(tx, lengths, batch_first, enforce_sorted)
    up = f32(*packed.data.shape)
    (packed.data * pve.tensor(up)).sum().backward()
    data_of = np.zeros(x.shape[:2], dtype=np.int64) - 1  # data row of each input position
    _, _, order = np_pack(np.zeros(x.shape[:2]), lengths, batch_first)
    row = 0
    for t in range(steps):
        for b in order:
            if lengths[b] > t:
                data_of[(b, t) if batch_first else (t, b)] = row
                row += 1
    want = np.where((data_of >= 0)[..., None], up[data_of], 0.0)
    np.testing.assert_array_equal(tx.grad.numpy(), want)

    data = pve.tensor(packed.data.detach().numpy(), requires_grad=True)
    repacked = PackedSequence(data, packed.batch_sizes, packed.sorted_indices)
    padded, _ = pad_packed_sequence(repacked, batch_first, padding_value=5.0)
    up_padded = f32(*padded.shape)
    (padded * pve.tensor(up_padded)).sum().backward()
    want_data = np.zeros_like(up)
    want_data[data_of[data_of >= 0]] = up_padded[data_of >= 0]
    np.testing.assert_array_equal(data.grad.numpy(), want_data)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_pad_sequence_values_and_gradients(side, batch_first):
    lengths = [2, 5, 1, 3]
    arrays = [f32(n, 2, 3) for n in lengths]
    tensors = [pve.tensor(a, requires_grad=True) for a in arrays]
    out = pad_sequence(tensors, batch_first=batch_first, padding_value=7.0, padding_side=side)
    want = np_pad(arrays, batch_first, 7.0, side)
    np.testing.assert_array_equal(out.detach().numpy(), want)
    up = f32(*out.shape)
    (out * pve.tensor(up)).sum().backward()
    up_seq = np.swapaxes(up, 0, 1) if batch_first else up
    for b, (n, t) in enumerate(zip(lengths, tensors)):
        start = 0 if side == "right" else max(lengths) - n
        np.testing.assert_array_equal(t.grad.numpy(), up_seq[start:start + n, b])


def test_pad_sequence_dtypes_and_iterables():
    # the first sequence's dtype; an integer padding value is cast as torch's fill
    out = pad_sequence([pve.tensor([1, 2]), pve.tensor([3])], padding_value=2.7)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out.numpy(), [[1, 3], [2, 2]])
    mixed = pad_sequence([np.ones(2, np.float32), pve.tensor([4, 5, 6])])
    assert mixed.dtype == np.float32
    np.testing.assert_array_equal(mixed.numpy(), [[1, 4], [1, 5], [0, 6]])
    # a Tensor is an iterable of its rows, each one sequence
    rows = pad_sequence(pve.tensor(np.arange(6.0, dtype=np.float32).reshape(3, 2)))
    np.testing.assert_array_equal(rows.numpy(), np.arange(6.0).reshape(3, 2).T)
    assert pad_sequence(iter([pve.ones(2)])).shape == (2, 1)


def test_pack_sequence_round_trips_and_unpad():
    arrays = [f32(n, 3) for n in (3, 5, 1, 5)]
    tensors = [pve.tensor(a, requires_grad=True) for a in arrays]
    packed = pack_sequence(tensors, enforce_sorted=False)
    np.testing.assert_array_equal(packed.batch_sizes.numpy(), [4, 3, 3, 2, 2])
    for got, want in zip(unpack_sequence(packed), arrays):
        np.testing.assert_array_equal(got.detach().numpy(), want)
    sum(s.sum() for s in unpack_sequence(packed)).backward()
    for t in tensors:
        np.testing.assert_array_equal(t.grad.numpy(), np.ones_like(t.grad.numpy()))
    padded = pad_sequence(tensors)
    lengths = pve.tensor([3, 5, 1, 5])
    for got, want in zip(unpad_sequence(padded, lengths), arrays):
        np.testing.assert_array_equal(got.detach().numpy(), want)
    # lengths past the padded length keep every step, as torch's mask does
    cut = unpad_sequence(pad_sequence(tensors, batch_first=True), [9, 0, 1, 2], batch_first=True)
    assert [c.shape[0] for c in cut] == [5, 0, 1, 2]
    assert padded.shape == (5, 4, 3)  # (not transposed in place)


def test_packed_sequence_tuple_and_methods():
    data = pve.tensor(f32(6, 2))
    sizes = pve.tensor([3, 2, 1])
    p = PackedSequence(data, sizes, pve.tensor([2, 0, 1]))
    np.testing.assert_array_equal(p.unsorted_indices.numpy(), [1, 2, 0])
    d, b, s, u = p
    assert d is data and b is sizes and p._fields == ("data", "batch_sizes", "sorted_indices",
                                                      "unsorted_indices")
    q = PackedSequence((data, sizes))
    assert q.sorted_indices is None and q.unsorted_indices is None and q.data is data
    assert repr(q).startswith("PackedSequence(data=tensor(")
    assert p.to("cpu") is p and p.cpu() is p and p.float() is p and not p.is_cuda
    assert not p.is_pinned()
    as_long = p.long()
    assert as_long.data.dtype == np.int64 and as_long.batch_sizes is sizes
    assert as_long.sorted_indices is p.sorted_indices
    assert invert_permutation(None) is None
    perm = np.array([3, 0, 4, 1, 2])
    np.testing.assert_array_equal(invert_permutation(pve.tensor(perm)).numpy(), np.argsort(perm))


# ------------------------------------------------------------------ utilities' errors
def test_utility_errors():
    x = pve.zeros(4, 3, 2)
    with pytest.raises(RuntimeError, match="`lengths` array must be sorted in decreasing order "
                                           "when `enforce_sorted` is True"):
        pack_padded_sequence(x, [2, 3, 1])
    for lengths, sort in (([3, 2, 0], True), ([0, 2, 3], False), ([3, 2, -1], True)):
        with pytest.raises(ValueError, match="Length of all samples has to be greater than 0"):
            pack_padded_sequence(x, lengths, enforce_sorted=sort)
    with pytest.raises(ValueError, match="a length of 5 is longer than the input's 4 time"):
        pack_padded_sequence(x, [5, 2, 1])  # (torch builds a broken PackedSequence here)
    with pytest.raises(ValueError, match=r"Expected `len\(lengths\)` to be equal to "
                                         r"batch_size, but got 2 \(batch_size=3\)"):
        pack_padded_sequence(x, [3, 2], enforce_sorted=False)
    with pytest.raises(RuntimeError, match="Cannot pack empty tensors"):
        pack_padded_sequence(pve.zeros(0, 3, 2), [1, 1, 1])
    with pytest.raises(IndexError, match="at least 2 dimensions"):
        pack_padded_sequence(pve.zeros(4), [1])
    with pytest.raises(ValueError, match="'lengths' argument should be a 1D"):
        pack_padded_sequence(x, pve.tensor([[3, 2, 1]]))
    with pytest.raises(ValueError, match="'lengths' argument should be a 1D"):
        pack_padded_sequence(x, 3)
    with pytest.raises(TypeError, match="lengths must be a list of ints"):
        pack_padded_sequence(x, ["3", "2", "1"])
    packed = pack_padded_sequence(x, [3, 2, 1])
    with pytest.raises(ValueError, match="Expected total_length to be at least the length of "
                                         "the longest sequence in input, but got "
                                         "total_length=2 and max sequence length being 3"):
        pad_packed_sequence(packed, total_length=2)
    with pytest.raises(ValueError, match="batch_sizes must be a non-empty, non-increasing"):
        pad_packed_sequence(PackedSequence(pve.zeros(5, 2), pve.tensor([2, 3])))
    with pytest.raises(TypeError, match="expected a PackedSequence"):
        pad_packed_sequence((pve.zeros(5, 2), pve.tensor([3, 2])))
    with pytest.raises(RuntimeError, match="received an empty list of sequences"):
        pad_sequence([])
    with pytest.raises(RuntimeError, match="Expected padding_side to be one of left or right, "
                                           "but got top."):
        pad_sequence([pve.ones(2)], padding_side="top")
    with pytest.raises(TypeError, match="Expected iterable for input sequences, but got arg "
                                        "of type: <class 'int'>"):
        pad_sequence(3)
    with pytest.raises(ValueError, match="sequence 1 has trailing shape"):
        pad_sequence([pve.ones(2, 3), pve.ones(3, 2)])
    with pytest.raises(ValueError, match="sequence 0 is a 0-D tensor"):
        pad_sequence([pve.tensor(1.0), pve.tensor(2.0)])
    with pytest.raises(ValueError, match="Length of all samples"):
        pack_sequence([pve.ones(2), pve.ones(0)])
    with pytest.raises(ValueError, match="expected one length per sequence"):
        unpad_sequence(pve.ones(3, 2, 1), pve.tensor([3, 1]), batch_first=True)
    with pytest.raises(AssertionError, match="Expected data to be a list or tuple of length 2"):
        PackedSequence(pve.ones(3))


def test_utility_errors_are_torch_errors():
    """The cases torch rejects are rejected with its exception types."""
    torch = _torch()
    from torch.nn.utils import rnn as trnn
    cases = [
        lambda m, t: m.pack_padded_sequence(t(4, 3, 2), [2, 3, 1]),
        lambda m, t: m.pack_padded_sequence(t(4, 3, 2), [3, 2, 0]),
        lambda m, t: m.pack_padded_sequence(t(4, 3, 2), [4, 2, 1, 1]),
        lambda m, t: m.pack_padded_sequence(t(0, 3, 2), [1, 1, 1]),
        lambda m, t: m.pack_padded_sequence(t(4), [1]),
        lambda m, t: m.pad_packed_sequence(m.pack_padded_sequence(t(4, 2), [3, 1]),
                                           total_length=2),
        lambda m, t: m.pad_sequence([]),
        lambda m, t: m.pad_sequence([t(2)], padding_side="top"),
        lambda m, t: m.pad_sequence(3),
        lambda m, t: m.PackedSequence(t(3)),
    ]
    for case in cases:
        with pytest.raises(Exception) as theirs:
            case(trnn, lambda *s: torch.zeros(*s))
        with pytest.raises(type(theirs.value)):
            case(pve.nn.utils.rnn, lambda *s: pve.zeros(*s))


# ------------------------------------------------------------------ utilities vs torch
@pytest.mark.parametrize("lengths,enforce_sorted,batch_first", PACK_CASES)
def test_utilities_torch_parity(lengths, enforce_sorted, batch_first):
    torch = _torch()
    from torch.nn.utils import rnn as trnn
    steps, batch = max(lengths), len(lengths)
    x = f32(*((batch, steps) if batch_first else (steps, batch)), 2)
    px, tx = pve.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    p = pack_padded_sequence(px, pve.tensor(lengths), batch_first, enforce_sorted)
    t = trnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first, enforce_sorted)
    np.testing.assert_array_equal(p.data.detach().numpy(), t.data.detach().numpy())
    np.testing.assert_array_equal(p.batch_sizes.numpy(), t.batch_sizes.numpy())
    for mine, theirs in ((p.sorted_indices, t.sorted_indices),
                         (p.unsorted_indices, t.unsorted_indices)):
        if theirs is None:
            assert mine is None
        elif len(set(lengths)) == len(lengths):  # (torch orders equal lengths as it likes)
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    po, pl = pad_packed_sequence(p, not batch_first, 0.5, steps + 1)
    to, tl = trnn.pad_packed_sequence(t, not batch_first, 0.5, steps + 1)
    np.testing.assert_array_equal(po.detach().numpy(), to.detach().numpy())
    np.testing.assert_array_equal(pl.numpy(), tl.numpy())
    up = f32(*po.shape)
    (po * pve.tensor(up)).sum().backward()
    (to * torch.tensor(up)).sum().backward()
    np.testing.assert_array_equal(px.grad.numpy(), tx.grad.numpy())
    arrays = [f32(n, 3) for n in lengths]
    for side in ("left", "right"):
        np.testing.assert_array_equal(
            pad_sequence([pve.tensor(a) for a in arrays], batch_first, -1.0, side).numpy(),
            trnn.pad_sequence([torch.tensor(a) for a in arrays], batch_first, -1.0,
                              side).numpy())
    mine = unpack_sequence(pack_sequence([pve.tensor(a) for a in arrays], enforce_sorted))
    theirs = trnn.unpack_sequence(trnn.pack_sequence([torch.tensor(a) for a in arrays],
                                                     enforce_sorted))
    for a, b in zip(mine, theirs):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ------------------------------------------------------------------ float64 recurrence reference
def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def np_step(mode, gi, h, c, w_hh, b_hh, w_hr):
    """One step from the input projection gi (the cell equations in float64)."""
    gh = h @ w_hh.T + (0.0 if b_hh is None else b_hh)
    if mode == "LSTM":
        i, f, g, o = np.split(gi + gh, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        return (h if w_hr is None else h @ w_hr.T), c
    if mode == "GRU":
        i_r, i_z, i_n = np.split(gi, 3, axis=-1)
        h_r, h_z, h_n = np.split(gh, 3, axis=-1)
        r, z = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
        n = np.tanh(i_n + r * h_n)
        return (1.0 - z) * n + z * h, None
    pre = gi + gh
    return (np.maximum(pre, 0.0) if mode == "RNN_RELU" else np.tanh(pre)), None


def np_sequence(mode, gi, h, c, w_hh, b_hh, w_hr, reverse):
    """One sequence's steps (its own length), forward or from its last step back."""
    outs = [None] * len(gi)
    for t in (reversed(range(len(gi))) if reverse else range(len(gi))):
        h, c = np_step(mode, gi[t], h, c, w_hh, b_hh, w_hr)
        outs[t] = h
    return np.stack(outs), h, c


def np_packed_loop(mode, gi, h0, c0, w_hh, b_hh, w_hr, reverse, batch_sizes):
    """_RecurrentLoop's packed result from each sequence run alone: outputs at the packed
    rows, then h_n, then c_n (LSTM)."""
    offsets = np.concatenate(([0], np.cumsum(batch_sizes)[:-1]))
    outs = np.zeros((gi.shape[0], w_hh.shape[1]))
    h_n, c_n = np.zeros_like(h0), None if c0 is None else np.zeros_like(c0)
    for b in range(batch_sizes[0]):
        rows = [offsets[t] + b for t in range(len(batch_sizes)) if batch_sizes[t] > b]
        out, h, c = np_sequence(mode, gi[rows], h0[b], None if c0 is None else c0[b], w_hh,
                                b_hh, w_hr, reverse)
        outs[rows], h_n[b] = out, h
        if c_n is not None:
            c_n[b] = c
    return np.concatenate([outs.ravel(), h_n.ravel()] + ([] if c_n is None else [c_n.ravel()]))


def _loop_inputs(mode, bias, proj, rows, batch, hidden=3):
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1) * hidden
    out_size = 2 if proj else hidden
    gi, h0 = f32(rows, gates), f32(batch, out_size)
    if mode == "RNN_RELU":  # most pre-activations positive, none near relu's kink
        gi, h0 = np.abs(gi) + 0.1, np.abs(h0)
    return [gi, h0, f32(batch, hidden) if mode == "LSTM" else None, f32(gates, out_size),
            f32(gates) if bias else None, f32(out_size, hidden) if proj else None]


LOOP_CASES = [(mode, reverse, bias, False, sizes) for mode in MODES
              for reverse in (False, True) for bias, sizes in ((True, (3, 2, 2, 1)),
                                                               (False, (3, 1, 1)))]
LOOP_CASES += [("LSTM", False, True, True, (3, 3, 1)), ("LSTM", True, False, True, (2, 1, 1)),
               ("GRU", True, True, False, (1, 1, 1)), ("RNN_TANH", False, True, False, (4,))]


@pytest.mark.parametrize("mode,reverse,bias,proj,sizes", LOOP_CASES)
def test_packed_loop_against_finite_differences(mode, reverse, bias, proj, sizes):
    arrays = _loop_inputs(mode, bias, proj, sum(sizes), sizes[0])
    present = [i for i, a in enumerate(arrays) if a is not None]
    tensors = [None if a is None else pve.tensor(a, requires_grad=True) for a in arrays]
    packed = _RecurrentLoop.apply(*tensors, mode=mode, reverse=reverse, batch_sizes=sizes)

    def f(*values):
        args = [None] * len(arrays)
        for i, v in zip(present, values):
            args[i] = v
        return np_packed_loop(mode, *args, reverse, sizes)

    want = f(*[arrays[i].astype(np.float64) for i in present])
    np.testing.assert_allclose(packed.detach().numpy(), want, rtol=1e-5, atol=1e-5)
    with pve.no_grad():  # (inference runs the cell state in one row per sequence)
        plain = _RecurrentLoop.apply(*tensors, mode=mode, reverse=reverse, batch_sizes=sizes)
    np.testing.assert_array_equal(plain.numpy(), packed.detach().numpy())
    up = rng.standard_normal(packed.shape[0])
    packed.backward(pve.tensor(up))
    names = ["gi", "h0", "c0", "w_hh", "b_hh", "w_hr"]
    for i, grad in zip(present, numerical_grads(f, [arrays[i] for i in present], up)):
        assert_grad_close(tensors[i].grad.numpy(), grad, name=f"{mode} {names[i]}")


# ------------------------------------------------------------------ modules vs the reference
def _make(mode, *args, **kwargs):
    if mode in ("RNN_TANH", "RNN_RELU"):
        return RNN(*args, nonlinearity="relu" if mode == "RNN_RELU" else "tanh", **kwargs)
    return {"LSTM": LSTM, "GRU": GRU}[mode](*args, **kwargs)


def np_module_sequence(m, x, h0, c0):
    """One sequence x (L, I) through module m's layers and directions in float64; h0 / c0
    (layers * directions, H). Returns output (L, D * H_out), h_n, c_n."""
    p = {n: v.detach().numpy().astype(np.float64) for n, v in m.named_parameters()}
    dirs = 2 if m.bidirectional else 1
    inp, h_n, c_n = x, [], []
    for layer in range(m.num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            gi = inp @ p["weight_ih" + sfx].T + (p["bias_ih" + sfx] if m.bias else 0.0)
            k = layer * dirs + d
            out, h, c = np_sequence(m.mode, gi, h0[k], None if c0 is None else c0[k],
                                    p["weight_hh" + sfx], p.get("bias_hh" + sfx),
                                    p.get("weight_hr" + sfx), reverse=d == 1)
            outs.append(out)
            h_n.append(h)
            c_n.append(c)
        inp = np.concatenate(outs, axis=1)
    return inp, np.stack(h_n), (np.stack(c_n) if c0 is not None else None)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_packed_module_against_numpy(mode, bidirectional, batch_first):
    """Each sequence's outputs and final states equal its own run, at its own length."""
    lengths = [3, 5, 1, 5, 2]
    m = _make(mode, 3, 4, num_layers=2, bidirectional=bidirectional, batch_first=batch_first,
              bias=mode != "GRU")
    states = 2 * (2 if bidirectional else 1)
    x = f32(*((5, 6, 3) if batch_first else (6, 5, 3)))  # (a step of padding past them all)
    h0, c0 = f32(states, 5, 4), f32(states, 5, 4)
    hx = (pve.tensor(h0), pve.tensor(c0)) if mode == "LSTM" else pve.tensor(h0)
    out, state = m(pack_padded_sequence(x, lengths, batch_first, enforce_sorted=False), hx)
    assert isinstance(out, PackedSequence)
    padded, got_lengths = pad_packed_sequence(out, batch_first)
    np.testing.assert_array_equal(got_lengths.numpy(), lengths)
    h_n, c_n = state if mode == "LSTM" else (state, None)
    for b, n in enumerate(lengths):
        seq = (x[b] if batch_first else x[:, b])[:n].astype(np.float64)
        want, want_h, want_c = np_module_sequence(
            m, seq, h0[:, b].astype(np.float64), c0[:, b].astype(np.float64)
            if mode == "LSTM" else None)
        got = (padded[b] if batch_first else padded[:, b]).detach().numpy()
        np.testing.assert_allclose(got[:n], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got[n:], 0.0)
        np.testing.assert_allclose(h_n.detach().numpy()[:, b], want_h, rtol=1e-5, atol=1e-5)
        if mode == "LSTM":
            np.testing.assert_allclose(c_n.detach().numpy()[:, b], want_c, rtol=1e-5,
                                       atol=1e-5)


def test_packed_output_keeps_the_input_layout():
    packed = pack_padded_sequence(f32(4, 3, 2), [2, 4, 1], enforce_sorted=False)
    out, (h_n, c_n) = LSTM(2, 5, proj_size=3, bidirectional=True)(packed)
    assert out.data.shape == (7, 6) and h_n.shape == (2, 3, 3) and c_n.shape == (2, 3, 5)
    assert out.batch_sizes is packed.batch_sizes
    assert out.sorted_indices is packed.sorted_indices
    assert out.unsorted_indices is packed.unsorted_indices


def test_packed_equals_padded_when_lengths_are_equal():
    """With every length equal, packing changes nothing (same values as the padded run)."""
    m = _make("GRU", 3, 4, num_layers=2, bidirectional=True)
    x = f32(4, 3, 3)
    with pve.no_grad():
        dense, h_dense = m(pve.tensor(x))
        out, h_packed = m(pack_padded_sequence(x, [4, 4, 4]))
    np.testing.assert_array_equal(out.data.numpy(), dense.numpy().reshape(12, 8))
    np.testing.assert_array_equal(h_packed.numpy(), h_dense.numpy())


def test_packed_module_errors():
    packed = pack_padded_sequence(pve.zeros(4, 3, 3), [4, 2, 1])
    with pytest.raises(RuntimeError, match=r"GRU: Expected hidden size \(1, 3, 4\), got "
                                           r"\[1, 2, 4\]"):
        GRU(3, 4)(packed, pve.zeros(1, 2, 4))
    with pytest.raises(RuntimeError, match=r"LSTM: Expected hidden\[1\] size \(1, 3, 4\), got "
                                           r"\[1, 2, 4\]"):
        LSTM(3, 4)(packed, (pve.zeros(1, 3, 4), pve.zeros(1, 2, 4)))
    with pytest.raises(TypeError, match=r"LSTM: hx must be a tuple \(h_0, c_0\)"):
        LSTM(3, 4)(packed, pve.zeros(1, 3, 4))
    with pytest.raises(RuntimeError, match=r"RNN: input.size\(-1\) must be equal to "
                                           r"input_size. Expected 5, got 3"):
        RNN(5, 4)(packed)
    with pytest.raises(RuntimeError, match="GRU: input must have 2 dimensions, got 3"):
        GRU(3, 4)(PackedSequence(pve.zeros(7, 1, 3), packed.batch_sizes))
    with pytest.raises(ValueError, match="input dtype"):
        GRU(3, 4)(PackedSequence(pve.zeros(7, 3, dtype=pve.int64), packed.batch_sizes))
    with pytest.raises(ValueError, match="LSTM: batch_sizes must be a non-empty, "
                                         "non-increasing"):
        LSTM(3, 4)(PackedSequence(pve.zeros(6, 3), pve.tensor([2, 4])))
    foreign = type("PackedSequence", (tuple,), {})  # (torch's, say)
    with pytest.raises(TypeError, match="expected a Tensor or a pyvision_engine PackedSequence"):
        GRU(3, 4)(foreign((pve.zeros(7, 3), pve.tensor([3, 2, 2]))))


# ------------------------------------------------------------------ modules vs torch
def _torch_module(torch, mode, *args, **kwargs):
    if mode in ("RNN_TANH", "RNN_RELU"):
        return torch.nn.RNN(*args, nonlinearity="relu" if mode == "RNN_RELU" else "tanh",
                            **kwargs)
    return {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[mode](*args, **kwargs)


PARITY_CASES = [  # lengths, enforce_sorted, batch_first, initial states given
    ([5, 3, 3, 1], True, False, True),
    ([2, 5, 1, 3], False, True, True),
    ([4, 4, 4, 4], True, True, False),  # equal lengths
    ([1, 1, 1], False, False, True),  # every length 1
    ([1, 5, 2], False, False, False),
    ([3], True, True, True),  # one sequence
]


def _packed_run_both(torch, mode, lengths, enforce_sorted, batch_first, with_hx,
                     bidirectional, **kwargs):
    """The same packed forward in pve and torch (torch's weights loaded into pve): returns
    pve's and torch's outputs (padded), final states, and the leaf tensors of each."""
    from torch.nn.utils import rnn as trnn
    tm = _torch_module(torch, mode, 3, 5, num_layers=2, bidirectional=bidirectional,
                       batch_first=batch_first, **kwargs)
    m = _make(mode, 3, 5, num_layers=2, bidirectional=bidirectional, batch_first=batch_first,
              **kwargs)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    steps, batch = max(lengths), len(lengths)
    x = f32(*((batch, steps, 3) if batch_first else (steps, batch, 3)))
    states = 2 * (2 if bidirectional else 1)
    h_size = kwargs.get("proj_size", 0) or 5
    hs = [f32(states, batch, h_size), f32(states, batch, 5)]
    mine = [pve.tensor(a, requires_grad=True) for a in [x] + hs]
    theirs = [torch.tensor(a, requires_grad=True) for a in [x] + hs]

    def run(module, utils, leaves):
        packed = utils.pack_padded_sequence(leaves[0], lengths, batch_first, enforce_sorted)
        hx = None
        if with_hx:
            hx = (leaves[1], leaves[2]) if mode == "LSTM" else leaves[1]
        out, state = module(packed, hx)
        padded, _ = utils.pad_packed_sequence(out, batch_first)
        return [padded] + (list(state) if mode == "LSTM" else [state])

    used = 1 if not with_hx else 3 if mode == "LSTM" else 2  # x, then h0 and c0 if given
    return (run(m, pve.nn.utils.rnn, mine), run(tm, trnn, theirs), m, tm, mine[:used],
            theirs[:used])


def _assert_parity(torch, outs, touts, m, tm, leaves, tleaves, ups):
    """Outputs equal, then the gradients of sum(output * ups) (ups None: of sum(output)) for
    the inputs and every parameter."""
    for a, b in zip(outs, touts):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
    ones = [1.0] * len(outs)
    sum((o * (pve.tensor(u) if ups else u)).sum() for o, u in zip(outs, ups or ones)).backward()
    sum((o * (torch.tensor(u) if ups else u)).sum() for o, u in zip(touts, ups or ones)).backward()
    for a, b in zip(leaves, tleaves):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(getattr(m, name).grad.numpy(), p.grad.numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths,enforce_sorted,batch_first,with_hx", PARITY_CASES)
def test_packed_module_torch_parity(mode, bidirectional, lengths, enforce_sorted, batch_first,
                                    with_hx):
    torch = _torch()
    outs, touts, m, tm, leaves, tleaves = _packed_run_both(
        torch, mode, lengths, enforce_sorted, batch_first, with_hx, bidirectional)
    _assert_parity(torch, outs, touts, m, tm, leaves, tleaves, [f32(*o.shape) for o in outs])


@pytest.mark.parametrize("lengths,enforce_sorted,batch_first,with_hx", PARITY_CASES[:3])
def test_packed_lstm_proj_torch_parity(lengths, enforce_sorted, batch_first, with_hx):
    torch = _torch()
    outs, touts, m, tm, leaves, tleaves = _packed_run_both(
        torch, "LSTM", lengths, enforce_sorted, batch_first, with_hx, True, proj_size=2)
    _assert_parity(torch, outs, touts, m, tm, leaves, tleaves, None)


@pytest.mark.parametrize("mode", MODES)
def test_packed_inference_torch_parity(mode):
    """Without autograd the loop keeps one state row per sequence (no history)."""
    torch = _torch()
    with pve.no_grad(), torch.no_grad():
        outs, touts, *_ = _packed_run_both(torch, mode, [2, 6, 1, 4, 6], False, False, True,
                                           True)
    for a, b in zip(outs, touts):
        assert not a.requires_grad
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_long_packed_sequences_torch_parity(mode):
    """60 steps, lengths all over the range: gradients through long shrinking batches."""
    torch = _torch()
    lengths = [60, 3, 41, 1, 60, 17, 29]
    outs, touts, m, tm, leaves, tleaves = _packed_run_both(
        torch, mode, lengths, False, True, True, True)
    _assert_parity(torch, outs, touts, m, tm, leaves, tleaves, [f32(*o.shape) for o in outs])
