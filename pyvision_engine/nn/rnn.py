"""Recurrent layers (torch.nn.modules.rnn): RNN, LSTM, GRU and RNNCell, LSTMCell, GRUCell.

Each layer and direction projects the inputs of all time steps in one matmul (F.linear,
with its own autograd); its time loop then runs as one autograd Function (_RecurrentLoop:
numpy float32 steps, backpropagation through time in its backward). The cells are composed
of differentiable Tensor ops (linear, sigmoid, tanh, relu, slicing). Parameter names,
shapes, gate order and initialisation are torch's, so a torch state_dict loads as it is.
The layers also take a PackedSequence (pve.nn.utils.rnn): the same loop then runs a batch
that shrinks as its sequences end (reversed: grows as they start)."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine._functions import stack
from pyvision_engine.autograd import Function
from pyvision_engine.nn import functional as F
from pyvision_engine.nn import init
from pyvision_engine.nn._f_activation import ACT_CODES
from pyvision_engine.nn._f_common import RuntimeTypeError, RuntimeValueError, check_factory_kwargs
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.nn.utils.rnn import PackedSequence, _checked_batch_sizes
from pyvision_engine.tensor import Tensor, as_tensor, zeros

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_NUM_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# ------------------------------------------------------------------ one time step
# The cells' step, in Tensor ops (the layers run _RecurrentLoop below). ``gi`` is the input
# projection W_ih x + b_ih of this step (B, gates * H); each step returns (output h, new
# state).

def _rnn_step(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Optional[Tensor],
              relu: bool) -> Tensor:
    pre = gi + F.linear(h, w_hh, b_hh)
    return F.relu(pre) if relu else F.tanh(pre)


def _lstm_step(gi: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Optional[Tensor],
               w_hr: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    hidden = c.shape[-1]
    gates = gi + F.linear(h, w_hh, b_hh)
    s = F.sigmoid(gates)  # (the g slice of it is unused: one op instead of three)
    i, f, o = s[:, :hidden], s[:, hidden:2 * hidden], s[:, 3 * hidden:]
    g = F.tanh(gates[:, 2 * hidden:3 * hidden])
    c = f * c + i * g
    h = o * F.tanh(c)
    if w_hr is not None:
        h = F.linear(h, w_hr)
    return h, c


def _gru_step(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Optional[Tensor]) -> Tensor:
    hidden = h.shape[-1]
    gh = F.linear(h, w_hh, b_hh)
    rz = F.sigmoid(gi[:, :2 * hidden] + gh[:, :2 * hidden])
    r, z = rz[:, :hidden], rz[:, hidden:]
    # b_hn stays inside the reset gate's product, as torch (and cuDNN) compute it
    n = F.tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
    return (h - n) * z + n  # = (1 - z) * n + z * h, in torch's order of operations


# ------------------------------------------------------------------ the whole time loop
# One layer-direction's recurrence as one Function: built from per-step Tensor ops, every
# step's slice gi_all[t] would get a full-size zero gradient in backward (O(T^2) memory
# traffic). Here forward runs the steps in float32 numpy with the engine's GEMM (it honours
# pve.set_num_threads, and takes the step's input projection as its beta * out term and
# the bias in its epilogue) and backward is backpropagation through time. Gate order and
# equations are torch's. (torch can differentiate this twice; pve has no double backward.)
# A packed batch runs in the same loop: its batch shrinks over time (see _Steps).

_F32 = np.float32
_SIGMOID, _TANH, _RELU = ACT_CODES["sigmoid"], ACT_CODES["tanh"], ACT_CODES["relu"]


def _as_slice(rows: np.ndarray) -> Any:
    """Consecutive row numbers as a slice (a view, not a copy, when indexing)."""
    if rows.size == 0:
        return slice(0, 0)
    if (np.diff(rows) == 1).all():
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


class _Steps:
    """One layer-direction's time steps over flat (rows, features) arrays. Step t holds
    the first sizes[t] sequences of the batch at rows offsets[t] : offsets[t] + sizes[t]:
    a packed batch is sorted longest first, so sizes never grow with t (a padded batch
    has the whole batch at every step). ``order`` is the order the loop runs the steps
    in; run in reverse, each sequence starts at its own last step."""

    def __init__(self, sizes: Sequence[int], reverse: bool) -> None:
        self.sizes = [int(s) for s in sizes]
        self.batch = self.sizes[0]
        offsets = np.concatenate(([0], np.cumsum(self.sizes))).astype(np.int64)
        self.offsets, self.total = offsets[:-1].tolist(), int(offsets[-1])
        steps = len(self.sizes)
        self.order = range(steps - 1, -1, -1) if reverse else range(steps)
        self.rows = [slice(o, o + s) for o, s in zip(self.offsets, self.sizes)]
        # the step before each one in the loop's order (-1: none, the state is the initial)
        self.before = [t - self.order.step if t != self.order[0] else -1 for t in range(steps)]
        sequences = np.arange(self.batch)
        runs = np.array(self.sizes)[:, None] > sequences  # runs[t, b]: b runs at step t
        # each sequence's row at its last time step, and every step's rows of the
        # sequences that go on to the next step
        ends = _as_slice(offsets[runs.sum(axis=0) - 1] + sequences)
        step, sequence = np.nonzero(runs[1:])
        going_on = _as_slice(offsets[step] + sequence)
        later = slice(self.batch, self.total)  # the rows of the steps after the first
        # firsts / finals: each sequence's row at the first / last step the loop runs it;
        # the state a row of ``fed`` enters with is the output at the same place of ``feeding``
        if reverse:
            self.firsts, self.finals, self.fed, self.feeding = ends, slice(0, self.batch), \
                going_on, later
        else:
            self.firsts, self.finals, self.fed, self.feeding = slice(0, self.batch), ends, \
                later, going_on

    def previous(self, t: int, values: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """The state each sequence of step t enters it with: its row of ``values`` at the
        step before t in the loop's order, or its row of ``initial`` where it starts at t."""
        size, before = self.sizes[t], self.before[t]
        if before < 0:
            return initial[:size]
        known = values[self.rows[before]]
        if known.shape[0] >= size:
            return known if known.shape[0] == size else known[:size]
        return np.concatenate((known, initial[known.shape[0]:size]))  # (reverse: new ones)


def _steps_buffer(record: bool, steps: _Steps, *shape: int) -> np.ndarray:
    """A buffer of one row per step and sequence when backward will read them, else one
    row per sequence that every step reuses (inference keeps no history): index it with
    _slot."""
    return np.empty((steps.total if record else steps.batch,) + shape, dtype=_F32)


def _slot(record: bool, steps: _Steps, t: int) -> slice:
    return steps.rows[t] if record else slice(0, steps.sizes[t])


def _gates(gi_t: np.ndarray, h: np.ndarray, w_hh: np.ndarray, b_hh: Optional[np.ndarray],
           out: np.ndarray) -> np.ndarray:
    """out = gi_t + h W_hh^T + b_hh: one GEMM (gi_t enters as its beta * out term)."""
    np.copyto(out, gi_t)
    return _C.gemm(h, w_hh, out=out, trans_b=True, beta=1.0, bias=b_hh)


class _RecurrentLoop(Function):
    """forward(gi_all, h0 (B, H_out), c0 (B, H) or None, w_hh, b_hh or None, w_hr or None,
    mode=, reverse=, batch_sizes=None) -> one flat float32 array packing the step outputs
    (gi_all's rows, H_out), then h_n (B, H_out), then c_n (B, H) for LSTM (a Function has
    one output; the caller slices it). gi_all is a padded batch's input projection
    (T, B, gates * H) when batch_sizes is None, else a packed one's (rows, gates * H) with
    batch_sizes[t] sequences at step t (see _Steps). ``reverse`` runs the steps from the
    last down; h_n / c_n hold each sequence's state after its last step in that order.
    Backward gives the gradients of gi_all, h0, c0, w_hh, b_hh and w_hr."""

    owns_grads = True  # every gradient is allocated in backward
    saved_inputs = (1, 2, 3, 5)  # backward reads h0, c0, w_hh and w_hr
    saves_output = True  # the step outputs are the hidden states backward reads

    @staticmethod
    def forward(ctx, gi_all, h0, c0, w_hh, b_hh, w_hr, mode, reverse, batch_sizes=None):
        if batch_sizes is None:  # a padded batch: every sequence runs at every step
            batch_sizes = (gi_all.shape[1],) * gi_all.shape[0]
        steps = _Steps(batch_sizes, reverse)
        gi = gi_all.reshape(steps.total, gi_all.shape[-1])
        out_size = w_hh.shape[1]
        cell_size = 0 if c0 is None else c0.shape[1]
        h_at = steps.total * out_size  # where h_n starts in the packed result, then c_n
        c_at = h_at + steps.batch * out_size
        packed = np.empty(c_at + steps.batch * cell_size, _F32)
        outs = packed[:h_at].reshape(steps.total, out_size)
        h0, w_hh = np.ascontiguousarray(h0, _F32), np.ascontiguousarray(w_hh, _F32)
        record = any(ctx.needs_input_grad)
        ctx.mode, ctx.steps, ctx.outs, ctx.h0, ctx.w_hh = mode, steps, outs, h0, w_hh
        ctx.gi_shape = gi_all.shape
        if mode == "LSTM":
            w_hr = None if w_hr is None else np.ascontiguousarray(w_hr, _F32)
            c_n = _lstm_forward(ctx, steps, gi, h0, np.ascontiguousarray(c0, _F32), w_hh,
                                b_hh, w_hr, outs, record)
            packed[c_at:] = c_n.ravel()
        elif mode == "GRU":
            _gru_forward(ctx, steps, gi, h0, w_hh, b_hh, outs, record)
        else:
            _simple_forward(steps, gi, h0, w_hh, b_hh, mode == "RNN_RELU", outs)
        packed[h_at:c_at] = outs[steps.finals].ravel()
        return packed

    @staticmethod
    def backward(ctx, grad):
        outs, steps = ctx.outs, ctx.steps
        h_at, c_at = outs.size, outs.size + steps.batch * outs.shape[1]
        g_out = grad[:h_at].reshape(outs.shape)
        g_h = grad[h_at:c_at].reshape(steps.batch, outs.shape[1])
        if ctx.mode == "LSTM":
            g_c = grad[c_at:].reshape(steps.batch, ctx.cells.shape[1])
            d_gi, d_gh, d_h0, d_c0, d_w_hr = _lstm_backward(ctx, g_out, g_h, g_c)
        elif ctx.mode == "GRU":
            d_gi, d_gh, d_h0 = _gru_backward(ctx, g_out, g_h)
            d_c0 = d_w_hr = None
        else:
            d_gi, d_h0 = _simple_backward(ctx, g_out, g_h)
            d_gh, d_c0, d_w_hr = d_gi, None, None
        needs = ctx.needs_input_grad
        d_w_hh = _weight_grad(d_gh, outs, ctx.h0, steps) if needs[3] else None
        d_b_hh = d_gh.sum(axis=0, dtype=_F32) if needs[4] else None
        return (d_gi.reshape(ctx.gi_shape) if needs[0] else None, d_h0 if needs[1] else None,
                d_c0 if needs[2] else None, d_w_hh, d_b_hh, d_w_hr if needs[5] else None)


def _weight_grad(d_gates: np.ndarray, outs: np.ndarray, h0: np.ndarray,
                 steps: _Steps) -> np.ndarray:
    """sum over steps of d_gates(t)^T @ h_prev(t), as two GEMMs: the rows whose previous
    state is h0's (each sequence's first step in the loop), then the rows whose previous
    state is an output of the step before (views when the batch is padded)."""
    d_w = _C.gemm(np.ascontiguousarray(d_gates[steps.firsts]), h0, trans_a=True)
    if steps.total > steps.batch:
        _C.gemm(np.ascontiguousarray(d_gates[steps.fed]),
                np.ascontiguousarray(outs[steps.feeding]), out=d_w, trans_a=True, beta=1.0)
    return d_w


# Backward carries each sequence's state gradient (B, H) back through the steps: step t
# updates the rows of its sequences, so a row keeps its gradient from h_n until the loop
# reaches that sequence's last step, and ends holding its gradient w.r.t. h0 / c0.

# ------------------------------------------------------------------ RNN (tanh / relu)
def _simple_forward(steps, gi, h0, w_hh, b_hh, relu, outs) -> None:
    """h_t = act(gi_t + h_{t-1} W_hh^T + b_hh); backward needs only the outputs."""
    pre = np.empty((steps.batch, gi.shape[1]), _F32)
    act = _RELU if relu else _TANH
    for t in steps.order:
        rows, step_pre = steps.rows[t], pre[:steps.sizes[t]]
        _gates(gi[rows], steps.previous(t, outs, h0), w_hh, b_hh, step_pre)
        _C.activation_forward(act, step_pre, outs[rows])


def _simple_backward(ctx, g_out, g_h):
    steps, outs, w_hh = ctx.steps, ctx.outs, ctx.w_hh
    act = _RELU if ctx.mode == "RNN_RELU" else _TANH
    d_pre = np.empty((steps.total, w_hh.shape[0]), _F32)  # = the gradient of gi_all
    d_h = g_h.copy()
    for t in reversed(steps.order):
        rows, d_h_t = steps.rows[t], d_h[:steps.sizes[t]]
        d_h_t += g_out[rows]
        _C.activation_backward(act, outs[rows], d_h_t, d_pre[rows])  # (from the output)
        _C.gemm(d_pre[rows], w_hh, out=d_h_t)
    return d_pre, d_h


# ------------------------------------------------------------------ LSTM
def _lstm_forward(ctx, steps, gi, h0, c0, w_hh, b_hh, w_hr, outs, record):
    """gates i, f, g, o; c_t = f c_{t-1} + i g; h_t = o tanh(c_t) (then W_hr when
    projecting). Saves the activated gates, c_t, tanh(c_t) and the unprojected h_t.
    Returns c_n."""
    gate_size = gi.shape[1]
    hidden = gate_size // 4
    acts = _steps_buffer(record, steps, gate_size)
    cells = _steps_buffer(record, steps, hidden)
    if not record:
        np.copyto(cells, c0)  # (then one row per sequence: its running cell state)
    tanh_cells = _steps_buffer(record, steps, hidden)
    unprojected = None if w_hr is None else _steps_buffer(record, steps, hidden)
    pre = np.empty((steps.batch, gate_size), _F32)
    for t in steps.order:
        rows, k, step_pre = steps.rows[t], _slot(record, steps, t), pre[:steps.sizes[t]]
        a = acts[k]
        c = steps.previous(t, cells, c0) if record else cells[k]
        _gates(gi[rows], steps.previous(t, outs, h0), w_hh, b_hh, step_pre)
        _C.activation_forward(_SIGMOID, step_pre, a)  # (its g columns are overwritten next)
        np.tanh(step_pre[:, 2 * hidden:3 * hidden], out=a[:, 2 * hidden:3 * hidden])
        i, f, g, o = a[:, :hidden], a[:, hidden:2 * hidden], a[:, 2 * hidden:3 * hidden], \
            a[:, 3 * hidden:]
        np.multiply(f, c, out=cells[k])
        cells[k] += i * g
        _C.activation_forward(_TANH, cells[k], tanh_cells[k])
        if w_hr is None:
            np.multiply(o, tanh_cells[k], out=outs[rows])
        else:
            np.multiply(o, tanh_cells[k], out=unprojected[k])
            _C.gemm(unprojected[k], w_hr, out=outs[rows], trans_b=True)
    ctx.acts, ctx.cells, ctx.tanh_cells, ctx.unprojected = acts, cells, tanh_cells, unprojected
    ctx.c0, ctx.w_hr = c0, w_hr
    return cells[steps.finals] if record else cells


def _lstm_backward(ctx, g_out, g_h, g_c):
    steps, acts, cells, tanh_cells, w_hr, w_hh = ctx.steps, ctx.acts, ctx.cells, \
        ctx.tanh_cells, ctx.w_hr, ctx.w_hh
    hidden = cells.shape[1]
    d_pre = np.empty_like(acts)  # the pre-activation gates' gradient = gi_all's
    d_outs = None if w_hr is None else np.empty_like(ctx.outs)  # for W_hr's gradient
    d_acts_all = np.empty((steps.batch, acts.shape[1]), _F32)
    d_h, d_c = g_h.copy(), g_c.copy()
    for t in reversed(steps.order):
        rows, size = steps.rows[t], steps.sizes[t]
        d_h_t, d_c_t, d_acts, d_pre_t = d_h[:size], d_c[:size], d_acts_all[:size], d_pre[rows]
        d_h_t += g_out[rows]
        if w_hr is None:
            d_hu = d_h_t  # the gradient of o tanh(c)
        else:
            d_outs[rows] = d_h_t
            d_hu = _C.gemm(d_h_t, w_hr)
        a, tc = acts[rows], tanh_cells[rows]
        i, f, g, o = a[:, :hidden], a[:, hidden:2 * hidden], a[:, 2 * hidden:3 * hidden], \
            a[:, 3 * hidden:]
        d_c_t += d_hu * o * (1 - tc * tc)
        c_prev = steps.previous(t, cells, ctx.c0)
        # the activations' gradients, then through sigmoid (tanh for g) to the pre-activations
        np.multiply(d_c_t, g, out=d_acts[:, :hidden])
        np.multiply(d_c_t, c_prev, out=d_acts[:, hidden:2 * hidden])
        np.multiply(d_c_t, i, out=d_acts[:, 2 * hidden:3 * hidden])
        np.multiply(d_hu, tc, out=d_acts[:, 3 * hidden:])
        _C.activation_backward(_SIGMOID, a, d_acts, d_pre_t)
        np.multiply(d_acts[:, 2 * hidden:3 * hidden], 1 - g * g,
                    out=d_pre_t[:, 2 * hidden:3 * hidden])
        d_c_t *= f
        _C.gemm(d_pre_t, w_hh, out=d_h_t)
    d_w_hr = None
    if w_hr is not None:
        d_w_hr = _C.gemm(d_outs, ctx.unprojected, trans_a=True)
    return d_pre, d_pre, d_h, d_c, d_w_hr


# ------------------------------------------------------------------ GRU
def _gru_forward(ctx, steps, gi, h0, w_hh, b_hh, outs, record):
    """r, z = sigmoid(gi_rz + gh_rz), n = tanh(gi_n + r * gh_n) with gh = h W_hh^T + b_hh
    (b_hn inside the reset product, as torch), h_t = (h_{t-1} - n) z + n. Saves gh, r, z
    and n."""
    gate_size = gi.shape[1]
    hidden = gate_size // 3
    gh_all = _steps_buffer(record, steps, gate_size)
    rz_all = _steps_buffer(record, steps, 2 * hidden)
    n_all = _steps_buffer(record, steps, hidden)
    for t in steps.order:
        rows, k = steps.rows[t], _slot(record, steps, t)
        h = steps.previous(t, outs, h0)
        gh, rz, n, gi_t, out = gh_all[k], rz_all[k], n_all[k], gi[rows], outs[rows]
        _C.gemm(h, w_hh, out=gh, trans_b=True, bias=b_hh)
        np.add(gi_t[:, :2 * hidden], gh[:, :2 * hidden], out=rz)
        _C.activation_forward(_SIGMOID, rz, rz)
        np.multiply(rz[:, :hidden], gh[:, 2 * hidden:], out=n)
        n += gi_t[:, 2 * hidden:]
        _C.activation_forward(_TANH, n, n)
        np.subtract(h, n, out=out)
        out *= rz[:, hidden:]
        out += n
    ctx.gh_all, ctx.rz_all, ctx.n_all = gh_all, rz_all, n_all


def _gru_backward(ctx, g_out, g_h):
    steps, gh_all, rz_all, n_all, outs, w_hh = ctx.steps, ctx.gh_all, ctx.rz_all, \
        ctx.n_all, ctx.outs, ctx.w_hh
    hidden = n_all.shape[1]
    d_gi = np.empty_like(gh_all)  # input projection's gradient
    d_gh = np.empty_like(gh_all)  # hidden projection's (differs in the n columns)
    d_rz_all = np.empty((steps.batch, 2 * hidden), _F32)
    d_h = g_h.copy()
    for t in reversed(steps.order):
        rows, size = steps.rows[t], steps.sizes[t]
        d_h_t, d_rz, d_gi_t, d_gh_t = d_h[:size], d_rz_all[:size], d_gi[rows], d_gh[rows]
        d_h_t += g_out[rows]
        rz, n = rz_all[rows], n_all[rows]
        r, z = rz[:, :hidden], rz[:, hidden:]
        h_prev = steps.previous(t, outs, ctx.h0)
        d_n_pre = d_gi_t[:, 2 * hidden:]
        np.multiply(d_h_t, (1 - z) * (1 - n * n), out=d_n_pre)
        np.multiply(d_n_pre, gh_all[rows][:, 2 * hidden:], out=d_rz[:, :hidden])
        np.multiply(d_h_t, h_prev - n, out=d_rz[:, hidden:])
        _C.activation_backward(_SIGMOID, rz, d_rz, d_rz)  # (in place: contiguous)
        d_gi_t[:, :2 * hidden] = d_rz
        d_gh_t[:, :2 * hidden] = d_rz
        np.multiply(d_n_pre, r, out=d_gh_t[:, 2 * hidden:])
        d_h_t *= z
        _C.gemm(d_gh_t, w_hh, out=d_h_t, beta=1.0)
    return d_gi, d_gh, d_h


def _looks_packed(input: Any) -> bool:
    """A packed sequence of another library (torch's): not this engine's PackedSequence."""
    return type(input).__name__ == "PackedSequence" or hasattr(input, "batch_sizes")


def _permute(state: Tensor, order: Optional[Tensor]) -> Tensor:
    """A (layers * directions, B, H) state with its batch reordered (torch's
    permute_hidden: sorted_indices in, unsorted_indices out)."""
    return state if order is None else state.index_select(1, order)


def _check_size(name: str, value: Any, *, positive: bool) -> int:
    if not isinstance(value, int):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be greater than zero")
    return value


# ------------------------------------------------------------------ RNN, LSTM, GRU
class RNNBase(Module):
    """Base of RNN, LSTM and GRU (torch.nn.RNNBase): ``mode`` is one of 'RNN_TANH',
    'RNN_RELU', 'LSTM', 'GRU'. Per layer k and direction (suffix '' or '_reverse') it
    holds weight_ih_l{k} (gates * hidden_size, layer input), weight_hh_l{k}
    (gates * hidden_size, hidden_size or proj_size), bias_ih_l{k} and bias_hh_l{k}
    (gates * hidden_size,) when bias, and weight_hr_l{k} (proj_size, hidden_size) for
    an LSTM with proj_size > 0; all drawn from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
    Layer inputs after the first are the previous layer's outputs of both directions
    concatenated; ``dropout`` is applied to them in training only."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, type(self).__name__)
        # (checked in torch's order, with its messages and types)
        if (not isinstance(dropout, numbers.Number) or isinstance(dropout, bool)
                or not 0 <= dropout <= 1):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", stacklevel=3)
        if not isinstance(bias, bool):
            raise TypeError(f"bias should be of type bool, got: {type(bias).__name__}")
        if not isinstance(batch_first, bool):
            raise TypeError(f"batch_first should be of type bool, got: "
                            f"{type(batch_first).__name__}")
        _check_size("input_size", input_size, positive=True)
        _check_size("hidden_size", hidden_size, positive=True)
        _check_size("num_layers", num_layers, positive=False)
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        _check_size("proj_size", proj_size, positive=False)
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable "
                             "projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if mode not in _NUM_GATES:
            raise ValueError("Unrecognized RNN mode: " + str(mode))
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        gate_size = _NUM_GATES[mode] * hidden_size
        real_hidden_size = proj_size if proj_size > 0 else hidden_size
        num_directions = 2 if bidirectional else 1
        self._flat_weights_names: List[str] = []
        self._all_weights: List[List[str]] = []
        for layer in range(num_layers):
            layer_input_size = input_size if layer == 0 else real_hidden_size * num_directions
            for direction in range(num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = [("weight_ih", (gate_size, layer_input_size)),
                          ("weight_hh", (gate_size, real_hidden_size))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size > 0:
                    shapes += [("weight_hr", (proj_size, hidden_size))]
                names = []
                for base, shape in shapes:  # (registration order = torch's state_dict order)
                    setattr(self, base + suffix, Parameter(np.empty(shape, dtype=np.float32)))
                    names.append(base + suffix)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """A no-op, as torch's on the CPU (it packs weights for cuDNN)."""

    @property
    def _flat_weights(self) -> List[Optional[Tensor]]:
        return [getattr(self, n, None) for n in self._flat_weights_names]

    @property
    def all_weights(self) -> List[List[Parameter]]:
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # -------------------------------------------------------------- checks
    def _name(self) -> str:
        return type(self).__name__

    def _prepare_input(self, input: Any) -> Tuple[Tensor, bool]:
        """The input as a float32 Tensor of 3 dims (a batch dim of 1 added to 2-D
        input), and whether it was batched."""
        if _looks_packed(input):
            raise TypeError(f"{self._name()}: expected a Tensor or a pyvision_engine "
                            "PackedSequence (pve.nn.utils.rnn.pack_padded_sequence), got "
                            f"{type(input).__module__}.{type(input).__qualname__}")
        x = as_tensor(input)
        if x.ndim not in (2, 3):
            tensor = " tensor" if self.mode in ("RNN_TANH", "RNN_RELU") else ""
            raise ValueError(f"{self._name()}: Expected input to be 2D or 3D, got "
                             f"{x.ndim}D{tensor} instead")
        is_batched = x.ndim == 3
        if not is_batched:
            x = x.unsqueeze(0 if self.batch_first else 1)
        return x, is_batched

    def _check_input(self, x: Tensor) -> None:
        if x.dtype != np.float32:
            raise ValueError(f"{self._name()}: input dtype ({x.dtype}) does not match weight "
                             "dtype (float32); convert the input to float32")
        if x.shape[-1] != self.input_size:
            raise RuntimeValueError(
                f"{self._name()}: input.size(-1) must be equal to input_size. Expected "
                f"{self.input_size}, got {x.shape[-1]} (input shape {tuple(x.shape)})")

    def _expected_hidden_size(self, x: Tensor, cell: bool = False) -> Tuple[int, int, int]:
        return self._state_shape(x.shape[0] if self.batch_first else x.shape[1], cell)

    def _state_shape(self, batch: int, cell: bool = False) -> Tuple[int, int, int]:
        size = self.proj_size if self.proj_size > 0 and not cell else self.hidden_size
        return (self.num_layers * (2 if self.bidirectional else 1), batch, size)

    def _check_hidden(self, h: Tensor, expected: Tuple[int, int, int],
                      what: str = "hidden") -> None:
        if tuple(h.shape) != expected:
            raise RuntimeValueError(f"{self._name()}: Expected {what} size {expected}, got "
                                    f"{list(h.shape)}")
        if h.dtype != np.float32:
            raise RuntimeTypeError(f"{self._name()}: {what} must be float32 like the input, "
                                   f"got {h.dtype}")

    def _hidden_arg(self, hx: Any, is_batched: bool) -> Tensor:
        """A single hidden-state tensor (RNN, GRU) checked for rank, as 3-D."""
        h = as_tensor(hx)
        if is_batched and h.ndim != 3:
            raise RuntimeValueError(f"{self._name()}: For batched 3-D input, hx should also "
                                    f"be 3-D but got {h.ndim}-D tensor")
        if not is_batched:
            if h.ndim != 2:
                raise RuntimeValueError(f"{self._name()}: For unbatched 2-D input, hx should "
                                        f"also be 2-D but got {h.ndim}-D tensor")
            h = h.unsqueeze(1)
        return h

    # -------------------------------------------------------------- the recurrence
    def _run(self, x: Tensor, h0: Tensor, c0: Optional[Tensor],
             batch_sizes: Optional[List[int]] = None) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """x (T, B, input_size), or a packed batch's data (rows, input_size) with its
        batch_sizes; h0 / c0 (layers * directions, B, *) -> output (T, B, directions * out
        size) or (rows, directions * out size), h_n, c_n (None unless LSTM)."""
        if batch_sizes is None and x.shape[0] == 0:
            raise RuntimeValueError(f"{self._name()}: Expected sequence length to be larger "
                                    "than 0 in RNN")
        num_directions = 2 if self.bidirectional else 1
        h_n: List[Tensor] = []
        c_n: List[Tensor] = []
        layer_input = x
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                layer_input = F.dropout(layer_input, self.dropout, True)
            outputs = []
            for direction in range(num_directions):
                k = layer * num_directions + direction
                out, h, c = self._run_direction(layer_input, layer, direction, h0[k],
                                                None if c0 is None else c0[k], batch_sizes)
                outputs.append(out)
                h_n.append(h)
                if c is not None:
                    c_n.append(c)
            layer_input = outputs[0] if num_directions == 1 else \
                F.cat(outputs, dim=x.ndim - 1)
        return layer_input, stack(h_n, 0), stack(c_n, 0) if c_n else None

    def _run_direction(self, x: Tensor, layer: int, direction: int, h: Tensor,
                       c: Optional[Tensor], batch_sizes: Optional[List[int]]
                       ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        w_ih, w_hh = getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix)
        b_ih = getattr(self, "bias_ih" + suffix) if self.bias else None
        b_hh = getattr(self, "bias_hh" + suffix) if self.bias else None
        w_hr = getattr(self, "weight_hr" + suffix) if self.proj_size > 0 else None
        gi_all = F.linear(x, w_ih, b_ih)  # every step's input projection in one matmul
        packed = _RecurrentLoop.apply(gi_all, h, c, w_hh, b_hh, w_hr, mode=self.mode,
                                      reverse=direction == 1, batch_sizes=batch_sizes)
        # (three slices of the one output: their backward costs O(T), not O(T^2))
        rows = x.shape[:-1]  # (T, B), or a packed batch's (rows,)
        batch, out_size = h.shape[0], w_hh.shape[1]
        n_out, n_h = math.prod(rows) * out_size, batch * out_size
        outs = packed[:n_out].reshape(rows + (out_size,))
        h_n = packed[n_out:n_out + n_h].reshape(batch, out_size)
        c_n = packed[n_out + n_h:].reshape(batch, self.hidden_size) if c is not None else None
        return outs, h_n, c_n

    def _sequence_first(self, x: Tensor) -> Tensor:
        return x.transpose(0, 1) if self.batch_first else x

    def _batch_layout(self, out: Tensor, is_batched: bool) -> Tensor:
        out = out.transpose(0, 1) if self.batch_first else out
        return out if is_batched else out.squeeze(0 if self.batch_first else 1)

    def _forward_hidden_state_only(self, input: Any, hx: Any) -> Tuple[Tensor, Tensor]:
        """RNN's and GRU's forward (one hidden state; LSTM has a cell state too)."""
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        x, is_batched = self._prepare_input(input)
        h0 = None if hx is None else self._hidden_arg(hx, is_batched)
        self._check_input(x)
        expected = self._expected_hidden_size(x)
        h0 = zeros(*expected) if h0 is None else h0
        self._check_hidden(h0, expected)
        out, h_n, _ = self._run(self._sequence_first(x), h0, None)
        return self._batch_layout(out, is_batched), h_n if is_batched else h_n.squeeze(1)

    # -------------------------------------------------------------- packed input
    def _packed_data(self, input: PackedSequence) -> Tuple[Tensor, List[int]]:
        """A PackedSequence's data and batch sizes, checked as torch checks them."""
        data = input.data
        if data.ndim != 2:
            raise RuntimeValueError(f"{self._name()}: input must have 2 dimensions, got "
                                    f"{data.ndim} (a PackedSequence's data is (rows, "
                                    "input_size))")
        self._check_input(data)
        return data, _checked_batch_sizes(input, self._name()).tolist()

    def _packed_state(self, hx: Any, batch: int, input: PackedSequence, cell: bool = False,
                      what: str = "hidden") -> Tensor:
        """An initial state for a packed batch, its batch in the caller's order (zeros
        when hx is None), reordered as the packed sequences (longest first)."""
        expected = self._state_shape(batch, cell)
        if hx is None:
            return zeros(*expected)
        h = as_tensor(hx)
        self._check_hidden(h, expected, what)
        return _permute(h, input.sorted_indices)

    def _forward_packed(self, input: PackedSequence, hx: Any) -> Tuple[PackedSequence, Any]:
        """forward of a PackedSequence: the output packed as the input, and the final
        states of each sequence (after its own last step) in the caller's batch order."""
        data, batch_sizes = self._packed_data(input)
        batch = batch_sizes[0]
        if self.mode == "LSTM":
            h_arg, c_arg = (None, None) if hx is None else self._lstm_pair(hx)
            h0 = self._packed_state(h_arg, batch, input, what="hidden[0]")
            c0 = self._packed_state(c_arg, batch, input, cell=True, what="hidden[1]")
        else:
            h0, c0 = self._packed_state(hx, batch, input), None
        out, h_n, c_n = self._run(data, h0, c0, batch_sizes)
        output = PackedSequence(out, input.batch_sizes, input.sorted_indices,
                                input.unsorted_indices)
        h_n = _permute(h_n, input.unsorted_indices)
        if c_n is None:
            return output, h_n
        return output, (h_n, _permute(c_n, input.unsorted_indices))

    def _lstm_pair(self, hx: Any) -> Tuple[Any, Any]:
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"{self._name()}: hx must be a tuple (h_0, c_0) of two tensors, "
                            f"got {type(hx).__name__}")
        return hx[0], hx[1]


class RNN(RNNBase):
    """torch.nn.RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or
    relu (``nonlinearity``), over ``num_layers`` layers, optionally bidirectional.

    forward(input, hx=None): input (L, N, input_size), (N, L, input_size) if batch_first,
    or unbatched (L, input_size); hx (num_layers * directions, N, hidden_size) or
    unbatched (num_layers * directions, hidden_size), zeros when None. Returns
    (output (L, N, directions * hidden_size) in the input's layout, h_n like hx).
    A PackedSequence input gives a PackedSequence output and h_n holding each sequence's
    state after its own last step, in the input's batch order (hx in that order too)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device: Any = None,
                 dtype: Any = None, **kwargs: Any) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if kwargs:
            raise TypeError(f"RNN.__init__() got an unexpected keyword argument "
                            f"'{next(iter(kwargs))}'")
        self.nonlinearity = nonlinearity
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, device, dtype)

    def forward(self, input: Any, hx: Any = None) -> Tuple[Tensor, Tensor]:
        return self._forward_hidden_state_only(input, hx)


class GRU(RNNBase):
    """torch.nn.GRU, gates in torch's order (r, z, n):
    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z = sigmoid(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.
    Inputs and outputs (PackedSequence too) as RNN's."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device: Any = None, dtype: Any = None,
                 **kwargs: Any) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if kwargs:
            raise TypeError(f"GRU.__init__() got an unexpected keyword argument "
                            f"'{next(iter(kwargs))}'")
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, device, dtype)

    def forward(self, input: Any, hx: Any = None) -> Tuple[Tensor, Tensor]:
        return self._forward_hidden_state_only(input, hx)


class LSTM(RNNBase):
    """torch.nn.LSTM, gates in torch's order (i, f, g, o):
    i, f, o = sigmoid(W_i* x + b_i* + W_h* h + b_h*), g = tanh(...),
    c' = f * c + i * g, h' = o * tanh(c') (then h' W_hr^T when proj_size > 0).

    forward(input, hx=None): input as RNN's; hx a tuple (h_0, c_0) of
    (num_layers * directions, N, proj_size or hidden_size) and
    (num_layers * directions, N, hidden_size) (2-D for unbatched input), zeros when None.
    Returns (output, (h_n, c_n)); PackedSequence input and output as RNN's."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device, dtype)

    def forward(self, input: Any, hx: Any = None) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        x, is_batched = self._prepare_input(input)
        if hx is None:
            self._check_input(x)
            h0 = zeros(*self._expected_hidden_size(x))
            c0 = zeros(*self._expected_hidden_size(x, cell=True))
        else:
            h0, c0 = (as_tensor(h) for h in self._lstm_pair(hx))
            rank = 3 if is_batched else 2
            if h0.ndim != rank or c0.ndim != rank:
                kind = "batched 3-D" if is_batched else "unbatched 2-D"
                raise RuntimeValueError(f"LSTM: For {kind} input, hx and cx should also be "
                                        f"{rank}-D but got ({h0.ndim}-D, {c0.ndim}-D) tensors")
            if not is_batched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
            self._check_input(x)
        self._check_hidden(h0, self._expected_hidden_size(x), "hidden[0]")
        self._check_hidden(c0, self._expected_hidden_size(x, cell=True), "hidden[1]")
        out, h_n, c_n = self._run(self._sequence_first(x), h0, c0)
        assert c_n is not None
        if not is_batched:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return self._batch_layout(out, is_batched), (h_n, c_n)


# ------------------------------------------------------------------ cells
class RNNCellBase(Module):
    """Base of the cells: weight_ih (chunks * hidden_size, input_size), weight_hh
    (chunks * hidden_size, hidden_size), bias_ih / bias_hh (chunks * hidden_size,) or
    None, all drawn from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        check_factory_kwargs(device, dtype, name)
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"{name}: {arg} must be an int, got {value!r}")
            if value < 0:
                raise RuntimeValueError(f"{name}: {arg} must be non-negative, got {value}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.bias = bias
        gates = num_chunks * self.hidden_size
        self.weight_ih = Parameter(np.empty((gates, self.input_size), dtype=np.float32))
        self.weight_hh = Parameter(np.empty((gates, self.hidden_size), dtype=np.float32))
        if bias:
            self.bias_ih = Parameter(np.empty((gates,), dtype=np.float32))
            self.bias_hh = Parameter(np.empty((gates,), dtype=np.float32))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _input(self, input: Any) -> Tuple[Tensor, bool]:
        name = type(self).__name__
        x = as_tensor(input)
        if x.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {x.ndim}D instead")
        if x.dtype != np.float32:
            raise RuntimeTypeError(f"{name}: expected a float32 input, got {x.dtype}")
        return (x if x.ndim == 2 else x.unsqueeze(0)), x.ndim == 2

    def _ranked(self, hx: Any, what: str = "hidden") -> Tensor:
        """``hx`` as a tensor, 1-D or 2-D (checked before anything else, as torch's)."""
        h = as_tensor(hx)
        if h.ndim not in (1, 2):
            raise ValueError(f"{type(self).__name__}: Expected {what} to be 1D or 2D, got "
                             f"{h.ndim}D instead")
        return h

    def _hidden(self, hx: Any, x: Tensor, is_batched: bool, index: int,
                what: str = "hidden") -> Tensor:
        """A given hidden state, ranked as the input, checked as torch's
        check_rnn_cell_forward_hidden (batch first, then hidden_size)."""
        name = type(self).__name__
        h = self._ranked(hx, what)
        h = h if is_batched else h.unsqueeze(0)
        if h.shape[0] != x.shape[0]:
            raise RuntimeValueError(f"{name}: Input batch size {x.shape[0]} doesn't match "
                                    f"hidden{index} batch size {h.shape[0]}")
        if h.ndim < 2 or h.shape[1] != self.hidden_size or h.ndim != 2:
            got = h.shape[1] if h.ndim >= 2 else None
            raise RuntimeValueError(f"{name}: hidden{index} has inconsistent hidden_size: got "
                                    f"{got}, expected {self.hidden_size} (hidden shape "
                                    f"{tuple(as_tensor(hx).shape)})")
        if h.dtype != np.float32:
            raise RuntimeTypeError(f"{name}: expected a float32 hidden state, got {h.dtype}")
        return h

    def _projection(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.input_size:
            raise RuntimeValueError(f"{type(self).__name__}: input has inconsistent "
                                    f"input_size: got {x.shape[1]} expected {self.input_size}")
        return F.linear(x, self.weight_ih, self.bias_ih)


class RNNCell(RNNCellBase):
    """torch.nn.RNNCell: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or relu.
    forward(input (N, input_size) or (input_size,), hx like the result or None for zeros)
    -> h' (N, hidden_size) or (hidden_size,)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None, dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> Tensor:
        x, is_batched = self._input(input)
        if hx is not None:
            self._ranked(hx)
        if self.nonlinearity not in ("tanh", "relu"):  # (torch checks this at forward)
            raise RuntimeValueError(f"RNNCell: Unknown nonlinearity: {self.nonlinearity}")
        gi = self._projection(x)
        h = zeros(x.shape[0], self.hidden_size) if hx is None else \
            self._hidden(hx, x, is_batched, 0)
        h = _rnn_step(gi, h, self.weight_hh, self.bias_hh, self.nonlinearity == "relu")
        return h if is_batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """torch.nn.LSTMCell (gates i, f, g, o). forward(input, hx=None) with hx a tuple
    (h, c) or None for zeros -> (h', c'), each (N, hidden_size) or (hidden_size,)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input: Any, hx: Any = None) -> Tuple[Tensor, Tensor]:
        x, is_batched = self._input(input)
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError("LSTMCell: hx must be a tuple (h, c) of two tensors, got "
                                f"{type(hx).__name__}")
            for idx, value in enumerate(hx):
                self._ranked(value, f"hx[{idx}]")
        gi = self._projection(x)
        if hx is None:
            h = c = zeros(x.shape[0], self.hidden_size)
        else:
            h = self._hidden(hx[0], x, is_batched, 0, "hx[0]")
            c = self._hidden(hx[1], x, is_batched, 1, "hx[1]")
        h, c = _lstm_step(gi, h, c, self.weight_hh, self.bias_hh, None)
        return (h, c) if is_batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """torch.nn.GRUCell (gates r, z, n, with n = tanh(W_in x + b_in + r * (W_hn h + b_hn))).
    forward(input, hx=None) -> h' (N, hidden_size) or (hidden_size,)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Any, hx: Any = None) -> Tensor:
        x, is_batched = self._input(input)
        if hx is not None:
            self._ranked(hx)
        gi = self._projection(x)
        h = zeros(x.shape[0], self.hidden_size) if hx is None else \
            self._hidden(hx, x, is_batched, 0)
        h = _gru_step(gi, h, self.weight_hh, self.bias_hh)
        return h if is_batched else h.squeeze(0)
