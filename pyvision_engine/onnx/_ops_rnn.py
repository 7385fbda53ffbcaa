"""ONNX recurrent layers RNN, GRU and LSTM (every opset onnx defines: 1, 7, 14, 22; GRU
also 3), registered in ``_ops.OPS``, in numpy.

All three share one runner: direction forward | reverse | bidirectional, hidden_size
(read from R when the attribute is absent), activations with activation_alpha/beta
(consumed in the order of the activations, as the specification says), clip (applied to
the input of every gate activation, not to h(Ct), as onnxruntime), layout 0 | 1 (opset
14 on), the optional inputs B, sequence_lens, initial_h (initial_c, P for LSTM) and the
outputs Y, Y_h (Y_c). LSTM's input_forget couples the gates (f = 1 - i) and GRU's
linear_before_reset applies Rh before the reset gate.

Variable lengths follow onnxruntime: Y is zero past a sequence's length, Y_h / Y_c hold
its last valid step (zero for a sequence of length 0), and a reverse direction runs each
sequence backwards from its own last valid step. The input projection of all time steps
is one matmul, and each time step one matmul for all batch rows and both directions
(GRU without linear_before_reset needs a second one for the reset hidden state).
float16 runs in float32 and float64 in float64; opset 1's output_sequence is ignored
(Y is computed whenever the node names it).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from pyvision_engine.onnx._ops import OnnxOpError, _ints, op, text_attr

Activation = Callable[[np.ndarray], np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))  # (no overflow for large |x|)
    return np.where(x >= 0, 1, e) / (1 + e)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


# lower-case name -> (function of (x, alpha, beta), uses alpha, uses beta, default alpha,
# default beta). Defaults: those of the ONNX operator of the same name (LeakyRelu 0.01,
# ThresholdedRelu 1, HardSigmoid 0.2 / 0.5, Elu 1), as the specification says; Affine and
# ScaledTanh have no such operator in onnx's opsets: 0, as onnxruntime.
_ACTIVATIONS: Dict[str, Tuple[Callable, bool, bool, float, float]] = {
    "relu": (lambda x, a, b: np.maximum(x, 0), False, False, 0.0, 0.0),
    "tanh": (lambda x, a, b: np.tanh(x), False, False, 0.0, 0.0),
    "sigmoid": (lambda x, a, b: _sigmoid(x), False, False, 0.0, 0.0),
    "affine": (lambda x, a, b: a * x + b, True, True, 0.0, 0.0),
    "leakyrelu": (lambda x, a, b: np.where(x >= 0, x, a * x), True, False, 0.01, 0.0),
    "thresholdedrelu": (lambda x, a, b: np.where(x >= a, x, 0), True, False, 1.0, 0.0),
    "scaledtanh": (lambda x, a, b: a * np.tanh(b * x), True, True, 0.0, 0.0),
    "hardsigmoid": (lambda x, a, b: np.clip(a * x + b, 0, 1), True, True, 0.2, 0.5),
    "elu": (lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0))),
            True, False, 1.0, 0.0),
    "softsign": (lambda x, a, b: x / (1 + np.abs(x)), False, False, 0.0, 0.0),
    "softplus": (lambda x, a, b: _softplus(x), False, False, 0.0, 0.0),
}

# per operator: gate blocks in W / R, activations per direction and their defaults
_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"],
                        "LSTM": ["Sigmoid", "Tanh", "Tanh"]}


def _text_list(attrs, key) -> Optional[List[str]]:
    values = attrs.get(key)
    if values is None:
        return None
    return [v.decode() if isinstance(v, bytes) else v for v in values]


class _Gates:
    """The activation functions of every direction, gate slot by gate slot (f, g, h)."""

    def __init__(self, what: str, attrs, directions: int) -> None:
        per_direction = len(_DEFAULT_ACTIVATIONS[what])
        names = _text_list(attrs, "activations")
        if names is None:
            names = _DEFAULT_ACTIVATIONS[what] * directions
        if len(names) != per_direction * directions:
            raise OnnxOpError(f"{what}: activations must list {per_direction * directions} "
                              f"functions ({per_direction} per direction, {directions} "
                              f"direction(s)), got {names}")
        alphas = list(attrs.get("activation_alpha", []))
        betas = list(attrs.get("activation_beta", []))
        funcs, keys = [], []
        for name in names:
            entry = _ACTIVATIONS.get(name.lower())
            if entry is None:
                raise OnnxOpError(f"{what}: unknown activation {name!r}; expected one of "
                                  "Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, "
                                  "ScaledTanh, HardSigmoid, Elu, Softsign, Softplus")
            fn, uses_alpha, uses_beta, alpha, beta = entry
            # alpha and beta are consumed in the order of the functions that take them
            if uses_alpha and alphas:
                alpha = float(alphas.pop(0))
            if uses_beta and betas:
                beta = float(betas.pop(0))
            funcs.append(lambda x, fn=fn, a=alpha, b=beta: fn(x, a, b))
            keys.append((name.lower(), alpha if uses_alpha else None, beta if uses_beta else None))
        # slot k of direction d is funcs[d * per_direction + k]
        self.slots = []
        for k in range(per_direction):
            slot_funcs = [funcs[d * per_direction + k] for d in range(directions)]
            slot_keys = {keys[d * per_direction + k] for d in range(directions)}
            self.slots.append((slot_funcs, len(slot_keys) == 1))

    def apply(self, slot: int, x: np.ndarray, clip: Optional[float]) -> np.ndarray:
        """Activation ``slot`` of each direction on x (directions first), clip applied first."""
        if clip is not None:
            x = np.clip(x, -clip, clip)
        funcs, same = self.slots[slot]
        if same:
            return funcs[0](x).astype(x.dtype, copy=False)
        return np.stack([fn(x[d]) for d, fn in enumerate(funcs)]).astype(x.dtype, copy=False)


def _check_shape(what: str, name: str, value: np.ndarray, expected: Tuple[int, ...]) -> None:
    if value.shape != expected:
        raise OnnxOpError(f"{what}: {name} of shape {list(expected)} expected, got "
                          f"{list(value.shape)}")


def _run(what: str, attrs, opset: int, inputs) -> List[np.ndarray]:
    x, w, r = inputs[0], inputs[1], inputs[2]
    optional = list(inputs[3:]) + [None] * (8 - len(inputs))
    b, lens, h0 = optional[0], optional[1], optional[2]
    c0, peep = (optional[3], optional[4]) if what == "LSTM" else (None, None)
    gates = _GATES[what]

    direction = text_attr(attrs, "direction", "forward")
    if direction == "foward":  # (GRU-1's schema default, a typo for forward)
        direction = "forward"
    if direction not in ("forward", "reverse", "bidirectional"):
        raise OnnxOpError(f"{what}: direction must be 'forward', 'reverse' or 'bidirectional', "
                          f"got {direction!r}")
    dirs = 2 if direction == "bidirectional" else 1
    layout = int(attrs.get("layout", 0)) if opset >= 14 else 0
    if layout not in (0, 1):
        raise OnnxOpError(f"{what}: layout must be 0 or 1, got {layout}")
    if x.dtype.kind != "f" or x.ndim != 3:
        raise OnnxOpError(f"{what}: X must be a 3-D float tensor "
                          f"({'[batch, seq, input]' if layout else '[seq, batch, input]'}), got "
                          f"{x.dtype} of shape {list(x.shape)}")
    steps, batch, size = (x.shape[1], x.shape[0], x.shape[2]) if layout else x.shape
    if r.ndim != 3:
        raise OnnxOpError(f"{what}: R of shape [num_directions, {gates}*hidden_size, "
                          f"hidden_size] expected, got {list(r.shape)}")
    hidden = int(attrs.get("hidden_size", r.shape[2]))
    if hidden < 1:
        raise OnnxOpError(f"{what}: hidden_size must be positive, got {hidden}")
    _check_shape(what, "W", w, (dirs, gates * hidden, size))
    _check_shape(what, "R", r, (dirs, gates * hidden, hidden))
    if b is not None:
        _check_shape(what, "B", b, (dirs, 2 * gates * hidden))
    if peep is not None:
        _check_shape(what, "P", peep, (dirs, 3 * hidden))
    for name, state in (("initial_h", h0), ("initial_c", c0)):
        if state is not None:
            expected = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
            _check_shape(what, name, state, expected)
    if layout:  # everything below runs on [seq, batch, ...] and [dirs, batch, hidden]
        x = x.transpose(1, 0, 2)
        h0 = None if h0 is None else h0.transpose(1, 0, 2)
        c0 = None if c0 is None else c0.transpose(1, 0, 2)
    if lens is not None:
        if lens.shape != (batch,) or lens.dtype.kind not in "iu":
            raise OnnxOpError(f"{what}: sequence_lens must be an int32 tensor of shape "
                              f"[{batch}], got {lens.dtype} of shape {list(lens.shape)}")
        lens = np.asarray(_ints(lens), dtype=np.int64)
        if lens.size and (lens.min() < 0 or lens.max() > steps):
            raise OnnxOpError(f"{what}: sequence_lens must lie in [0, {steps}] (seq_length), "
                              f"got {lens.tolist()}")
        if lens.size and lens.min() == steps:
            lens = None  # (every sequence is full: no masking)

    clip = attrs.get("clip")
    clip = None if clip is None else float(clip)
    acts = _Gates(what, attrs, dirs)
    # float16 and float32 run in float32, float64 in float64
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    x, w, r = x.astype(dtype, copy=False), w.astype(dtype), r.astype(dtype)
    if b is None:
        b = np.zeros((dirs, 2 * gates * hidden), dtype)
    wb, rb = b[:, :gates * hidden].astype(dtype), b[:, gates * hidden:].astype(dtype)
    h = np.zeros((dirs, batch, hidden), dtype) if h0 is None else h0.astype(dtype)
    c = None  # (the cell state: LSTM only)
    if what == "LSTM":
        c = np.zeros((dirs, batch, hidden), dtype) if c0 is None else c0.astype(dtype)

    # Each direction's inputs in the order it reads them: a reverse direction reads each
    # sequence from its last valid step back (onnxruntime's ReverseSequence); the same
    # index (its own inverse) puts the outputs back in place.
    reverse = [direction == "reverse" or d == 1 for d in range(dirs)]
    t_idx = np.arange(steps)[:, None].repeat(batch, 1)
    if lens is not None:
        back = np.where(t_idx < lens, lens - 1 - t_idx, t_idx)
    else:
        back = steps - 1 - t_idx
    cols = np.arange(batch)
    order = [back if rev else None for rev in reverse]
    xs = np.stack([x[o, cols] if o is not None else x for o in order])  # [dirs, seq, batch, in]

    # the input projection of every step and direction, one matmul; R's bias goes in too
    # where it is a plain sum (GRU's Rbh stays apart under linear_before_reset)
    keep_rbh = what == "GRU" and int(attrs.get("linear_before_reset", 0)) != 0
    bias = wb + rb
    if keep_rbh:
        bias[:, 2 * hidden:] = wb[:, 2 * hidden:]
    # (contiguous transposed weights: numpy's batched matmul takes BLAS only for those, a
    # transposed view runs its own loops, ten times slower)
    proj = np.matmul(xs.reshape(dirs, steps * batch, size),
                     np.ascontiguousarray(w.transpose(0, 2, 1)))
    proj = (proj + bias[:, None]).reshape(dirs, steps, batch, gates * hidden)

    run = steps if lens is None else int(lens.max(initial=0))  # (no step past the longest)
    y = np.zeros((steps, dirs, batch, hidden), dtype)
    cell = _CELLS[what]
    ctx = _Context(what, np.ascontiguousarray(r.transpose(0, 2, 1)), rb, peep, hidden, clip,
                   acts, attrs, dtype)
    for t in range(run):
        h_new, c_new = cell(ctx, proj[:, t], h, c)
        if lens is not None:  # rows past their length keep their state and output zeros
            active = (t < lens)[None, :, None]
            h = np.where(active, h_new, h)
            c = None if c is None else np.where(active, c_new, c)
            y[t] = np.where(active, h_new, 0)
        else:
            h, c = h_new, c_new
            y[t] = h_new
    for d, o in enumerate(order):
        if o is not None:
            y[:, d] = y[o, d, cols]
    if lens is not None and (lens == 0).any():  # (onnxruntime: zero states, not initial ones)
        h = np.where((lens == 0)[None, :, None], 0, h)
        c = None if c is None else np.where((lens == 0)[None, :, None], 0, c)
    if layout:
        y, h = y.transpose(2, 0, 1, 3), h.transpose(1, 0, 2)
        c = None if c is None else c.transpose(1, 0, 2)
    out_type = inputs[0].dtype
    outs = [np.ascontiguousarray(y, dtype=out_type), np.ascontiguousarray(h, dtype=out_type)]
    if what == "LSTM":
        outs.append(np.ascontiguousarray(c, dtype=out_type))
    return outs


class _Context:
    """What a cell step reads besides the step's input projection and state."""

    def __init__(self, what, r_t, rb, peep, hidden, clip, acts, attrs, dtype) -> None:
        self.r_t = r_t  # R transposed: [dirs, hidden, gates * hidden]
        self.rb = rb[:, None]
        self.hidden, self.clip, self.acts = hidden, clip, acts
        self.input_forget = int(attrs.get("input_forget", 0)) != 0
        self.lbr = int(attrs.get("linear_before_reset", 0)) != 0
        if what == "GRU" and not self.lbr:  # (its two recurrent products, contiguous weights)
            self.r_zr = np.ascontiguousarray(r_t[..., :2 * hidden])
            self.r_h = np.ascontiguousarray(r_t[..., 2 * hidden:])
        if peep is not None:
            p = peep.astype(dtype)[:, None]
            self.p_i, self.p_o, self.p_f = (p[..., k * hidden:(k + 1) * hidden] for k in range(3))
        else:
            self.p_i = None


def _rnn_cell(ctx: _Context, xw, h, c):
    return ctx.acts.apply(0, xw + np.matmul(h, ctx.r_t), ctx.clip), None


def _gru_cell(ctx: _Context, xw, h, c):
    n, acts, clip = ctx.hidden, ctx.acts, ctx.clip
    if ctx.lbr:
        hr = np.matmul(h, ctx.r_t)
        zr = xw[..., :2 * n] + hr[..., :2 * n]
        z, rg = acts.apply(0, zr[..., :n], clip), acts.apply(0, zr[..., n:], clip)
        cand = acts.apply(1, xw[..., 2 * n:] + rg * (hr[..., 2 * n:] + ctx.rb[..., 2 * n:]), clip)
    else:
        zr = xw[..., :2 * n] + np.matmul(h, ctx.r_zr)
        z, rg = acts.apply(0, zr[..., :n], clip), acts.apply(0, zr[..., n:], clip)
        cand = acts.apply(1, xw[..., 2 * n:] + np.matmul(rg * h, ctx.r_h), clip)
    return (1 - z) * cand + z * h, None


def _lstm_cell(ctx: _Context, xw, h, c):
    n, acts, clip = ctx.hidden, ctx.acts, ctx.clip
    pre = xw + np.matmul(h, ctx.r_t)  # gate blocks i, o, f, c
    pi, po, pf, pc = (pre[..., k * n:(k + 1) * n] for k in range(4))
    peep = ctx.p_i is not None
    i = acts.apply(0, pi + ctx.p_i * c if peep else pi, clip)
    if ctx.input_forget:  # (coupled gates, as onnxruntime: f = 1 - i)
        f = 1 - i
    else:
        f = acts.apply(0, pf + ctx.p_f * c if peep else pf, clip)
    c_new = f * c + i * acts.apply(1, pc, clip)
    o = acts.apply(0, po + ctx.p_o * c_new if peep else po, clip)
    return o * acts.apply(2, c_new, None), c_new


_CELLS = {"RNN": _rnn_cell, "GRU": _gru_cell, "LSTM": _lstm_cell}


@op("RNN")
def _rnn(attrs, opset, inputs):
    return _run("RNN", attrs, opset, inputs)


@op("GRU")
def _gru(attrs, opset, inputs):
    return _run("GRU", attrs, opset, inputs)


@op("LSTM")
def _lstm(attrs, opset, inputs):
    return _run("LSTM", attrs, opset, inputs)
