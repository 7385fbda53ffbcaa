"""pve.onnx control flow, sequences and optionals against independent references.

- The onnx backend node cases of If, Loop, Scan, SequenceMap, the Sequence* and
  Optional* operators and FlexAttention (expected outputs from onnx's own reference;
  sequences compared element by element), and the recorded test_sequence_model* cases.
- onnxruntime on graphs built here with onnx.helper, over opsets: a Loop with
  loop-carried values and scan outputs whose body has an If reading values one and two
  scopes up; while-style loops; nested loops; a Scan running a recurrent cell over a
  sequence in both directions (Scan 9+ axes and directions, Scan 8 with sequence_lens);
  a Loop building a sequence with SequenceInsert then ConcatFromSequence; an If whose
  branches hold convolutions (the fast paths run inside the subgraph); zero-iteration
  loops; sequence and optional inputs and outputs through InferenceSession.run, and
  their NodeArg types; SplitToSequence / ConcatFromSequence / positions sweeps.
  Each also against a plain numpy loop where one is short to write.
- torch: a torch.cond model exported by torch.onnx.export (dynamo) and a scripted loop
  (the TorchScript exporter), against torch and onnxruntime.
- FlexAttention (onnxruntime lacks it): torch's flex_attention with the same score and
  probability modifiers, and a float64 numpy reference.
- Errors: ValueError / TypeError naming the node (or the input) and what was expected.

onnx and onnxruntime are test extras: without them these tests skip and say so.
"""

from __future__ import annotations

import glob
import os
import warnings

import numpy as np
import pytest

from pyvision_engine.onnx import InferenceSession, _proto

onnx = pytest.importorskip("onnx", reason="onnx (a test extra) builds the models")
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as oh  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from reference.onnx_cases import all_nodes, runnable_node_cases  # noqa: E402

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
CONTROL_OPS = {"If", "Loop", "Scan", "SequenceMap", "SequenceEmpty", "SequenceConstruct",
               "SequenceInsert", "SequenceAt", "SequenceErase", "SequenceLength",
               "SplitToSequence", "ConcatFromSequence", "Optional", "OptionalHasElement",
               "OptionalGetElement", "FlexAttention"}
PREVIEW = "ai.onnx.preview"


# --------------------------------------------------------------------------- helpers
def _vi(name, elem=TP.FLOAT, shape=None):
    return oh.make_tensor_value_info(name, elem, shape)


def _seq_type(elem=TP.FLOAT, shape=None):
    return oh.make_sequence_type_proto(oh.make_tensor_type_proto(elem, shape))


def _seq_vi(name, elem=TP.FLOAT, shape=None):
    return oh.make_value_info(name, _seq_type(elem, shape))


def _opt_vi(name, inner):
    return oh.make_value_info(name, oh.make_optional_type_proto(inner))


def _init(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def _model(nodes, inputs, outputs, inits=(), opset=18, preview=False, check=False):
    graph = oh.make_graph(nodes, "g", inputs, outputs, list(inits))
    opsets = [oh.make_opsetid("", opset)] + ([oh.make_opsetid(PREVIEW, 1)] if preview else [])
    model = oh.make_model(graph, opset_imports=opsets)
    model.ir_version = 10 if opset >= 21 else 8  # (versions onnxruntime reads)
    if check:
        onnx.checker.check_model(model)
    return model.SerializeToString()


def _ort(model):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) is the reference")
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def _compare(got, want, rtol=1e-5, atol=1e-6):
    """A run's values against expected ones: arrays (same shape and dtype), sequences
    (lists, element by element) and empty optionals (None)."""
    if isinstance(want, (list, tuple)):
        assert isinstance(got, list) and len(got) == len(want), (type(got), want)
        for g, w in zip(got, want):
            _compare(g, w, rtol, atol)
        return
    if want is None:
        assert got is None
        return
    want = np.asarray(want)
    assert isinstance(got, np.ndarray), type(got)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape,
                                                                  got.dtype, want.dtype)
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(got, want)


def _against_ort(model, feed, rtol=1e-5, atol=1e-6):
    """Runs the model in pve.onnx and onnxruntime; both results must agree. Returns ours."""
    ours = InferenceSession(model).run(None, feed)
    theirs = _ort(model).run(None, feed)
    _compare(ours, theirs, rtol, atol)
    return ours


def _control_step(sess):
    (step,) = [s for s in sess._steps if s.plans]
    return step


# --------------------------------------------------------------------------- onnx's cases
# Every node case of these operators runs in test_session.py (test_onnx_backend_node_case,
# with the cases' own tolerances); here: that they are among those it runs, and cover
# every operator.
CASES = [c for c in runnable_node_cases()
         if any(n.op_type in CONTROL_OPS for n in all_nodes(c.model.graph))]


RECORDED = sorted(glob.glob(os.path.join(DATA, "simple", "test_sequence_model*")))


@pytest.mark.parametrize("case_dir", RECORDED, ids=[os.path.basename(d) for d in RECORDED])
def test_recorded_sequence_model(case_dir):
    data = os.path.join(case_dir, "test_data_set_0")
    inputs = [numpy_helper.to_array(onnx.load_tensor(f))
              for f in sorted(glob.glob(os.path.join(data, "input_*.pb")))]
    outputs = [numpy_helper.to_array(onnx.load_tensor(f))
               for f in sorted(glob.glob(os.path.join(data, "output_*.pb")))]
    sess = InferenceSession(os.path.join(case_dir, "model.onnx"))
    got = sess.run(None, dict(zip([i.name for i in sess.get_inputs()], inputs)))
    _compare(got, outputs, rtol=1e-3, atol=1e-5)  # (as onnx's backend runner)


def test_cases_cover_every_operator():
    covered = {n.op_type for c in CASES for n in all_nodes(c.model.graph)}
    for d in RECORDED:
        covered |= {n.op_type for n in onnx.load(os.path.join(d, "model.onnx")).graph.node}
    assert CONTROL_OPS <= covered
    assert len(RECORDED) == 8


# --------------------------------------------------------------------------- Loop and If
def _loop_with_if(opset):
    """Loop(M) over (x, acc): x <- x/2 + shift if sum(x) > thr else -(x + shift); scan
    outputs x * i and sum(x). The If in the body reads the body's x (one scope up) and
    the main graph's shift (two scopes up); the body reads thr from the main graph."""
    then = oh.make_graph([oh.make_node("Mul", ["x_in", "half"], ["t"]),
                          oh.make_node("Add", ["t", "shift"], ["t_out"])], "then", [],
                         [_vi("t_out", TP.FLOAT, [3])])
    other = oh.make_graph([oh.make_node("Add", ["x_in", "shift"], ["e"]),
                           oh.make_node("Neg", ["e"], ["e_out"])], "else", [],
                          [_vi("e_out", TP.FLOAT, [3])])
    body = oh.make_graph(
        [oh.make_node("ReduceSum", ["x_in"], ["s"], keepdims=0),
         oh.make_node("Greater", ["s", "thr"], ["big"]),
         oh.make_node("If", ["big"], ["x_out"], then_branch=then, else_branch=other),
         oh.make_node("Add", ["acc_in", "x_out"], ["acc_out"]),
         oh.make_node("Cast", ["i"], ["i_f"], to=TP.FLOAT),
         oh.make_node("Mul", ["x_out", "i_f"], ["y"]),
         oh.make_node("Identity", ["cond"], ["cond_out"])],
        "body", [_vi("i", TP.INT64, []), _vi("cond", TP.BOOL, []), _vi("x_in", TP.FLOAT, [3]),
                 _vi("acc_in", TP.FLOAT, [3])],
        [_vi("cond_out", TP.BOOL, []), _vi("x_out", TP.FLOAT, [3]), _vi("acc_out", TP.FLOAT, [3]),
         _vi("y", TP.FLOAT, [3]), _vi("s", TP.FLOAT, [])],
        [_init("half", np.float32(0.5))])
    nodes = [oh.make_node("Loop", ["M", "", "x", "acc0"], ["x_f", "acc_f", "ys", "ss"],
                          body=body, name="the_loop")]
    return _model(nodes, [_vi("M", TP.INT64, []), _vi("x", TP.FLOAT, [3]),
                          _vi("acc0", TP.FLOAT, [3]), _vi("thr", TP.FLOAT, []),
                          _vi("shift", TP.FLOAT, [])],
                  [_vi("x_f", TP.FLOAT, [3]), _vi("acc_f", TP.FLOAT, [3]),
                   _vi("ys", TP.FLOAT, None), _vi("ss", TP.FLOAT, None)], opset=opset)


def _loop_with_if_reference(m, x, acc, thr, shift):
    ys, ss = [], []
    for i in range(m):
        s = x.sum(dtype=np.float32)
        x = x * np.float32(0.5) + shift if s > thr else -(x + shift)
        acc = acc + x
        ys.append(x * np.float32(i))
        ss.append(s)
    return [x, acc, np.array(ys, np.float32).reshape(-1, 3), np.array(ss, np.float32)]


@pytest.mark.parametrize("opset", [11, 13, 16, 19, 21])
@pytest.mark.parametrize("m", [0, 1, 6])
def test_loop_with_if_reading_outer_scopes(opset, m):
    model = _loop_with_if(opset)
    rng = np.random.default_rng(m)
    for thr in (-1.0, 0.0, 2.5):
        feed = {"M": np.array(m, np.int64), "x": rng.standard_normal(3).astype(np.float32),
                "acc0": np.zeros(3, np.float32), "thr": np.array(thr, np.float32),
                "shift": np.array(0.25, np.float32)}
        ours = _against_ort(model, feed)
        _compare(ours, _loop_with_if_reference(m, feed["x"], feed["acc0"], np.float32(thr),
                                               np.float32(0.25)))


def test_loop_outputs_do_not_alias_the_feed():
    model = _loop_with_if(17)
    x = np.ones(3, np.float32)
    feed = {"M": np.array(0, np.int64), "x": x, "acc0": np.zeros(3, np.float32),
            "thr": np.array(0, np.float32), "shift": np.array(0, np.float32)}
    x_f, _, ys, ss = InferenceSession(model).run(None, feed)
    assert ys.shape == (0, 3) and ss.shape == (0,)  # (the body outputs' declared shapes)
    x_f[:] = 7
    np.testing.assert_array_equal(x, 1)


def _while_loop(with_trip_count, opset=17):
    """Loop(M or "", cond): x <- 2x, cond <- sum(x) < limit (computed in the body)."""
    body = oh.make_graph(
        [oh.make_node("Mul", ["x_in", "two"], ["x_out"]),
         oh.make_node("ReduceSum", ["x_out"], ["s"], keepdims=0),
         oh.make_node("Less", ["s", "limit"], ["cond_out"])],
        "body", [_vi("i", TP.INT64, []), _vi("cond", TP.BOOL, []), _vi("x_in", TP.FLOAT, None)],
        [_vi("cond_out", TP.BOOL, []), _vi("x_out", TP.FLOAT, None), _vi("s", TP.FLOAT, [])],
        [_init("two", np.float32(2))])
    ins = ["M" if with_trip_count else "", "c0", "x"]
    inputs = [_vi("c0", TP.BOOL, []), _vi("x", TP.FLOAT, [2]), _vi("limit", TP.FLOAT, [])]
    if with_trip_count:
        inputs.append(_vi("M", TP.INT64, []))
    return _model([oh.make_node("Loop", ins, ["x_f", "ss"], body=body)], inputs,
                  [_vi("x_f", TP.FLOAT, None), _vi("ss", TP.FLOAT, None)], opset=opset)


@pytest.mark.parametrize("limit", [0.5, 3.0, 100.0])
@pytest.mark.parametrize("start", [True, False])
def test_while_loop_condition_from_the_body(limit, start):
    x = np.array([0.25, 0.5], np.float32)
    feed = {"c0": np.array(start), "x": x, "limit": np.array(limit, np.float32)}
    ours = _against_ort(_while_loop(False), feed)
    ss, keep_going, y = [], start, x
    while keep_going:
        y = y * 2
        ss.append(y.sum())
        keep_going = ss[-1] < limit
    _compare(ours, [y, np.array(ss, np.float32)])
    for m in (0, 2, 10):  # whichever of M and the condition ends it first
        _against_ort(_while_loop(True), dict(feed, M=np.array(m, np.int64)))


def test_loop_with_trip_count_only_ignores_the_body_condition():
    """The specification's "input (trip_count, ''): cond = ...; // ignored": M alone
    decides (onnxruntime 1.32 stops at the body's first false condition instead)."""
    body = oh.make_graph(
        [oh.make_node("Add", ["x_in", "one"], ["x_out"]),
         oh.make_node("Less", ["i", "two"], ["cond_out"])],
        "body", [_vi("i", TP.INT64, []), _vi("cond", TP.BOOL, []), _vi("x_in", TP.FLOAT, [1])],
        [_vi("cond_out", TP.BOOL, []), _vi("x_out", TP.FLOAT, [1])],
        [_init("one", np.float32(1)), _init("two", np.int64(2))])
    model = _model([oh.make_node("Loop", ["M", "", "x"], ["x_f"], body=body)],
                   [_vi("M", TP.INT64, []), _vi("x", TP.FLOAT, [1])], [_vi("x_f", TP.FLOAT, [1])])
    (x_f,) = InferenceSession(model).run(None, {"M": np.array(5, np.int64),
                                                 "x": np.zeros(1, np.float32)})
    np.testing.assert_array_equal(x_f, [5.0])


def test_nested_loops_read_the_outer_iteration_and_the_main_graph():
    """Loop(M1) { Loop(M2) { acc += 10 * i + j + base } }: the inner body reads the outer
    body's iteration number (one scope up) and the main graph's base (two up)."""
    inner = oh.make_graph(
        [oh.make_node("Mul", ["i", "ten"], ["i10"]),
         oh.make_node("Add", ["i10", "j"], ["ij"]),
         oh.make_node("Add", ["ij", "base"], ["step"]),
         oh.make_node("Add", ["acc_j", "step"], ["acc_j_out"]),
         oh.make_node("Identity", ["c_j"], ["c_j_out"])],
        "inner", [_vi("j", TP.INT64, []), _vi("c_j", TP.BOOL, []), _vi("acc_j", TP.INT64, [])],
        [_vi("c_j_out", TP.BOOL, []), _vi("acc_j_out", TP.INT64, []), _vi("step", TP.INT64, [])],
        [_init("ten", np.int64(10))])
    outer = oh.make_graph(
        [oh.make_node("Loop", ["M2", "", "acc_i"], ["acc_i_out", "steps"], body=inner),
         oh.make_node("Identity", ["c_i"], ["c_i_out"])],
        "outer", [_vi("i", TP.INT64, []), _vi("c_i", TP.BOOL, []), _vi("acc_i", TP.INT64, [])],
        [_vi("c_i_out", TP.BOOL, []), _vi("acc_i_out", TP.INT64, []),
         _vi("steps", TP.INT64, None)])
    model = _model([oh.make_node("Loop", ["M1", "", "acc"], ["acc_f", "all_steps"], body=outer)],
                   [_vi("M1", TP.INT64, []), _vi("M2", TP.INT64, []), _vi("acc", TP.INT64, []),
                    _vi("base", TP.INT64, [])],
                   [_vi("acc_f", TP.INT64, []), _vi("all_steps", TP.INT64, None)])
    for m1, m2 in ((3, 4), (2, 1), (1, 3)):
        feed = {"M1": np.array(m1, np.int64), "M2": np.array(m2, np.int64),
                "acc": np.array(0, np.int64), "base": np.array(100, np.int64)}
        acc_f, steps = _against_ort(model, feed)
        want = np.array([[10 * i + j + 100 for j in range(m2)] for i in range(m1)])
        np.testing.assert_array_equal(steps, want)
        assert acc_f == want.sum()


def test_if_without_outer_reads_and_with_sequence_branches():
    """Branches that return a sequence built in the branch, and an outer value itself."""
    then = oh.make_graph([oh.make_node("SequenceConstruct", ["a", "b"], ["s1"])], "then", [],
                         [_seq_vi("s1")])
    other = oh.make_graph([oh.make_node("SequenceConstruct", ["b"], ["s2"])], "else", [],
                          [_seq_vi("s2")])
    model = _model([oh.make_node("If", ["c"], ["s"], then_branch=then, else_branch=other)],
                   [_vi("c", TP.BOOL, []), _vi("a", TP.FLOAT, [2]), _vi("b", TP.FLOAT, [2])],
                   [_seq_vi("s")])
    a, b = np.ones(2, np.float32), np.full(2, 3, np.float32)
    for c in (True, False):
        (s,) = _against_ort(model, {"c": np.array(c), "a": a, "b": b})
        assert len(s) == (2 if c else 1)
        for t in s:
            t[:] = -1  # (returned sequences own their memory)
        np.testing.assert_array_equal(a, 1)
        np.testing.assert_array_equal(b, 3)


# --------------------------------------------------------------------------- If + Conv
def _conv_if_model(rng, opset=17):
    """If(c) { Conv 3x3 + bias -> Relu } else { Conv 1x1 -> BatchNormalization -> Clip(0, 6) }
    with every weight an initializer of the main graph."""
    w1 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    b1 = rng.standard_normal(4).astype(np.float32)
    w2 = rng.standard_normal((4, 3, 1, 1)).astype(np.float32)
    stats = [rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.1, 4), rng.normal(0, 0.1, 4),
             rng.uniform(0.5, 1.5, 4)]
    inits = [_init("w1", w1), _init("b1", b1), _init("w2", w2), _init("zero", np.float32(0)),
             _init("six", np.float32(6))]
    inits += [_init(n, s.astype(np.float32)) for n, s in zip(("g", "bt", "mu", "var"), stats)]
    then = oh.make_graph([oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
                          oh.make_node("Relu", ["c1"], ["r1"])], "then", [], [_vi("r1")])
    other = oh.make_graph([oh.make_node("Conv", ["x", "w2"], ["c2"]),
                           oh.make_node("BatchNormalization", ["c2", "g", "bt", "mu", "var"],
                                        ["n2"]),
                           oh.make_node("Clip", ["n2", "zero", "six"], ["r2"])],
                          "else", [], [_vi("r2")])
    return _model([oh.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
                  [_vi("c", TP.BOOL, []), _vi("x", TP.FLOAT, [None, 3, 8, 8])],
                  [_vi("y", TP.FLOAT, None)], inits, opset=opset)


@pytest.mark.parametrize("batch", [1, 3])
def test_if_with_convolutions_runs_the_fast_paths(batch):
    rng = np.random.default_rng(batch)
    model = _conv_if_model(rng)
    x = rng.standard_normal((batch, 3, 8, 8)).astype(np.float32)
    for c in (True, False):
        _against_ort(model, {"c": np.array(c), "x": x}, rtol=1e-4, atol=1e-4)
    plans = _control_step(InferenceSession(model)).plans
    for key in ("then_branch", "else_branch"):
        (step,) = plans[key].steps  # one convolution module, its activation absorbed
        assert step.module is not None  # (and BatchNormalization folded into it)


def test_a_value_read_by_a_branch_is_not_fused_away():
    """Conv -> BatchNormalization would fold (the BN alone reads the convolution) but a
    branch also reads the convolution's output: both values must exist."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    inits = [_init("w", w)] + [_init(n, rng.uniform(0.5, 1.5, 2).astype(np.float32))
                               for n in ("g", "bt", "mu", "var")]
    then = oh.make_graph([oh.make_node("Relu", ["c"], ["t"])], "then", [], [_vi("t")])
    other = oh.make_graph([oh.make_node("Neg", ["c"], ["e"])], "else", [], [_vi("e")])
    model = _model([oh.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                    oh.make_node("BatchNormalization", ["c", "g", "bt", "mu", "var"], ["n"]),
                    oh.make_node("If", ["k"], ["y"], then_branch=then, else_branch=other)],
                   [_vi("k", TP.BOOL, []), _vi("x", TP.FLOAT, [1, 3, 6, 6])],
                   [_vi("n", TP.FLOAT, None), _vi("y", TP.FLOAT, None)], inits)
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    for k in (True, False):
        _against_ort(model, {"k": np.array(k), "x": x}, rtol=1e-4, atol=1e-4)


def test_a_value_read_only_by_a_subgraph_lives_until_that_node():
    then = oh.make_graph([oh.make_node("Identity", ["a"], ["t"])], "then", [], [_vi("t")])
    other = oh.make_graph([oh.make_node("Identity", ["b"], ["e"])], "else", [], [_vi("e")])
    model = _model([oh.make_node("Neg", ["x"], ["a"]), oh.make_node("Abs", ["x"], ["b"]),
                    oh.make_node("Relu", ["b"], ["r"]),
                    oh.make_node("If", ["k"], ["y"], then_branch=then, else_branch=other),
                    oh.make_node("Add", ["y", "r"], ["z"])],
                   [_vi("k", TP.BOOL, []), _vi("x", TP.FLOAT, [4])], [_vi("z", TP.FLOAT, None)])
    x = np.array([-2, -1, 1, 2], np.float32)
    for k in (True, False):
        (z,) = _against_ort(model, {"k": np.array(k), "x": x})
        np.testing.assert_array_equal(z, (-x if k else np.abs(x)) + np.abs(x))


def test_a_branch_reads_an_overridable_initializer():
    then = oh.make_graph([oh.make_node("Mul", ["x", "w"], ["t"])], "then", [], [_vi("t")])
    other = oh.make_graph([oh.make_node("Sub", ["x", "w"], ["e"])], "else", [], [_vi("e")])
    model = _model([oh.make_node("If", ["k"], ["y"], then_branch=then, else_branch=other)],
                   [_vi("k", TP.BOOL, []), _vi("x", TP.FLOAT, [2]), _vi("w", TP.FLOAT, [2])],
                   [_vi("y", TP.FLOAT, None)], [_init("w", np.array([2, 3], np.float32))])
    x = np.array([1, -1], np.float32)
    for k in (True, False):
        _against_ort(model, {"k": np.array(k), "x": x})
        _against_ort(model, {"k": np.array(k), "x": x, "w": np.array([5, 7], np.float32)})


# --------------------------------------------------------------------------- Scan
def _rnn_scan(opset, in_axis, out_axes):
    """Scan over X (batch, time, feature) twice, forward and reverse (scan_input_axes
    ``in_axis``): two tanh RNN cells sharing W, R, b (main-graph initializers); the
    reverse outputs are prepended (scan_output_directions 1), so they line up in time."""
    body = oh.make_graph(
        [node for d in ("f", "b") for node in (
            oh.make_node("MatMul", [f"x{d}", "W"], [f"a{d}"]),
            oh.make_node("MatMul", [f"h{d}", "R"], [f"r{d}"]),
            oh.make_node("Add", [f"a{d}", f"r{d}"], [f"s{d}"]),
            oh.make_node("Add", [f"s{d}", "b"], [f"t{d}"]),
            oh.make_node("Tanh", [f"t{d}"], [f"h{d}2"]),
            oh.make_node("Identity", [f"h{d}2"], [f"y{d}"]))],
        "cell", [_vi("hf", TP.FLOAT, [2, 4]), _vi("hb", TP.FLOAT, [2, 4]),
                 _vi("xf", TP.FLOAT, [2, 3]), _vi("xb", TP.FLOAT, [2, 3])],
        [_vi("hf2", TP.FLOAT, [2, 4]), _vi("hb2", TP.FLOAT, [2, 4]),
         _vi("yf", TP.FLOAT, [2, 4]), _vi("yb", TP.FLOAT, [2, 4])])
    rng = np.random.default_rng(3)
    inits = [_init("W", rng.standard_normal((3, 4)).astype(np.float32) * 0.5),
             _init("R", rng.standard_normal((4, 4)).astype(np.float32) * 0.5),
             _init("b", rng.standard_normal(4).astype(np.float32) * 0.1)]
    node = oh.make_node("Scan", ["h0", "h0", "X", "X"], ["hf_T", "hb_T", "Yf", "Yb"], body=body,
                        num_scan_inputs=2, scan_input_axes=[in_axis, in_axis],
                        scan_input_directions=[0, 1], scan_output_axes=out_axes,
                        scan_output_directions=[0, 1])
    model = _model([node], [_vi("h0", TP.FLOAT, [2, 4]), _vi("X", TP.FLOAT, [2, None, 3])],
                   [_vi(n, TP.FLOAT, None) for n in ("hf_T", "hb_T", "Yf", "Yb")], inits,
                   opset=opset)
    return model, [numpy_helper.to_array(t) for t in inits]


def _rnn_reference(h0, x, w, r, b, reverse):
    steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    h, ys = h0, {}
    for t in steps:
        h = np.tanh(x[:, t] @ w + h @ r + b)
        ys[t] = h
    return h, np.stack([ys[t] for t in range(x.shape[1])], axis=1)  # (batch, time, hidden)


@pytest.mark.parametrize("opset, in_axis, out_axes", [
    (9, 1, [0, 0]), (11, -2, [1, -3]), (16, 1, [1, 0]), (21, 1, [2, 1])])
@pytest.mark.parametrize("steps", [1, 5])
def test_scan_recurrent_cell_in_both_directions(opset, in_axis, out_axes, steps):
    model, (w, r, b) = _rnn_scan(opset, in_axis, out_axes)
    rng = np.random.default_rng(steps)
    h0 = rng.standard_normal((2, 4)).astype(np.float32)
    x = rng.standard_normal((2, steps, 3)).astype(np.float32)
    hf, hb, yf, yb = _against_ort(model, {"h0": h0, "X": x})
    for h, y, reverse in ((hf, yf, False), (hb, yb, True)):
        want_h, want_y = _rnn_reference(h0, x, w, r, b, reverse)  # y: (batch, time, hidden)
        np.testing.assert_allclose(h, want_h, rtol=1e-5, atol=1e-6)
        stacked = np.moveaxis(want_y, 1, 0)  # (time, batch, hidden) placed at the out axis
        np.testing.assert_allclose(y, np.moveaxis(stacked, 0, out_axes[reverse]),
                                   rtol=1e-5, atol=1e-6)


def test_scan_of_an_empty_sequence():
    """No step: the states stay, the scan outputs are empty along their scan axis, with
    the body outputs' declared shape (onnxruntime 1.32 dies of SIGFPE on this model)."""
    model, _ = _rnn_scan(16, 1, [1, 0])
    h0 = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    hf, hb, yf, yb = InferenceSession(model).run(None, {"h0": h0,
                                                        "X": np.zeros((2, 0, 3), np.float32)})
    _compare([hf, hb, yf, yb], [h0, h0, np.zeros((2, 0, 4), np.float32),
                                np.zeros((0, 2, 4), np.float32)])


def _scan8_model(directions, declared):
    body = oh.make_graph([oh.make_node("Add", ["s", "x"], ["s2"]),
                          oh.make_node("Mul", ["s2", "x"], ["o"])], "body",
                         [_vi("s", TP.FLOAT, [2]), _vi("x", TP.FLOAT, [2])],
                         [_vi("s2", TP.FLOAT, [2]), _vi("o", TP.FLOAT, declared)])
    return _model([oh.make_node("Scan", ["L", "s0", "X"], ["sf", "Y"], body=body,
                                num_scan_inputs=1, directions=directions)],
                  [_vi("L", TP.INT64, [None]), _vi("s0", TP.FLOAT, [None, 2]),
                   _vi("X", TP.FLOAT, [None, None, 2])],
                  [_vi("sf", TP.FLOAT, None), _vi("Y", TP.FLOAT, None)], opset=8)


@pytest.mark.parametrize("declared", [[2], None])
@pytest.mark.parametrize("directions", [[0], [1]])
def test_scan8_batches_with_sequence_lengths(directions, declared):
    model = _scan8_model(directions, declared)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4, 2)).astype(np.float32)
    s0 = rng.standard_normal((3, 2)).astype(np.float32)
    sess = InferenceSession(model)
    for lens in ([4, 4, 4], [2, 4, 1], [1, 3, 4], [0, 2, 0]):
        feed = {"L": np.array(lens, np.int64), "s0": s0, "X": x}
        if min(lens) > 0:  # (onnxruntime refuses a zero length, which the specification allows)
            _against_ort(model, feed)
        sf, y = sess.run(None, feed)
        for batch, length in enumerate(lens):  # numpy: scan each entry's first steps
            s, steps = s0[batch], range(length)
            for k, t in enumerate(reversed(steps) if directions[0] else steps):
                s = s + x[batch, t]
                np.testing.assert_allclose(y[batch, k], s * x[batch, t], rtol=1e-6)
            np.testing.assert_allclose(sf[batch], s, rtol=1e-6)
            np.testing.assert_array_equal(y[batch, length:], 0)  # (padding, as onnxruntime)


# --------------------------------------------------------------------------- sequences
def _sequence_loop(opset, front):
    """Loop(M) inserting x + i into a sequence (at the back, or at the front), then the
    sequence concatenated, stacked and counted."""
    insert = (oh.make_node("SequenceInsert", ["seq_in", "t", "zero"], ["seq_out"]) if front
              else oh.make_node("SequenceInsert", ["seq_in", "t"], ["seq_out"]))
    body = oh.make_graph(
        [oh.make_node("Cast", ["i"], ["i_f"], to=TP.FLOAT),
         oh.make_node("Add", ["x", "i_f"], ["t"]), insert,
         oh.make_node("Identity", ["cond"], ["cond_out"])],
        "body", [_vi("i", TP.INT64, []), _vi("cond", TP.BOOL, []), _seq_vi("seq_in")],
        [_vi("cond_out", TP.BOOL, []), _seq_vi("seq_out")], [_init("zero", np.int64(0))])
    nodes = [oh.make_node("SequenceEmpty", [], ["empty"], dtype=TP.FLOAT),
             oh.make_node("Loop", ["M", "", "empty"], ["seq"], body=body),
             oh.make_node("ConcatFromSequence", ["seq"], ["cat"], axis=0),
             oh.make_node("ConcatFromSequence", ["seq"], ["stacked"], axis=-1, new_axis=1),
             oh.make_node("SequenceLength", ["seq"], ["n"])]
    return _model(nodes, [_vi("M", TP.INT64, []), _vi("x", TP.FLOAT, [2, 3])],
                  [_seq_vi("seq"), _vi("cat", TP.FLOAT, None), _vi("stacked", TP.FLOAT, None),
                   _vi("n", TP.INT64, [])], opset=opset)


@pytest.mark.parametrize("opset", [13, 16, 21])
@pytest.mark.parametrize("front", [False, True])
@pytest.mark.parametrize("m", [1, 4])
def test_loop_builds_a_sequence_then_concatenates_it(opset, front, m):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    seq, cat, stacked, n = _against_ort(_sequence_loop(opset, front), {"M": np.array(m), "x": x})
    want = [x + i for i in range(m)]
    want = want[::-1] if front else want
    _compare(seq, want)
    _compare([cat, stacked, n], [np.concatenate(want), np.stack(want, -1), np.array(m)])


def test_zero_iteration_loop_returns_the_empty_sequence():
    model = _model([oh.make_node("SequenceEmpty", [], ["empty"], dtype=TP.INT64),
                    oh.make_node("Loop", ["M", "", "empty"], ["seq"], body=oh.make_graph(
                        [oh.make_node("SequenceInsert", ["s", "i"], ["s2"]),
                         oh.make_node("Identity", ["c"], ["c2"])], "body",
                        [_vi("i", TP.INT64, []), _vi("c", TP.BOOL, []), _seq_vi("s", TP.INT64)],
                        [_vi("c2", TP.BOOL, []), _seq_vi("s2", TP.INT64)])),
                    oh.make_node("SequenceLength", ["seq"], ["n"])],
                   [_vi("M", TP.INT64, [])], [_seq_vi("seq", TP.INT64), _vi("n", TP.INT64, [])])
    for m in (0, 3):
        seq, n = _against_ort(model, {"M": np.array(m)})
        _compare(seq, [np.array(i) for i in range(m)])
        assert n == m


@pytest.mark.parametrize("declared", [[2, 3], ["n", 3], None])
def test_zero_iteration_scan_outputs_take_the_declared_shape(declared):
    body = oh.make_graph([oh.make_node("Identity", ["c"], ["c2"]),
                          oh.make_node("Add", ["v", "v"], ["y"])], "body",
                         [_vi("i", TP.INT64, []), _vi("c", TP.BOOL, []), _vi("v", TP.FLOAT, None)],
                         [_vi("c2", TP.BOOL, []), _vi("v", TP.FLOAT, None),
                          _vi("y", TP.FLOAT, declared)])
    model = _model([oh.make_node("Loop", ["M", "c0", "v0"], ["vf", "ys"], body=body)],
                   [_vi("M", TP.INT64, []), _vi("c0", TP.BOOL, []), _vi("v0", TP.FLOAT, [2, 3])],
                   [_vi("vf", TP.FLOAT, None), _vi("ys", TP.FLOAT, None)])
    v0 = np.ones((2, 3), np.float32)
    for m, c in ((0, True), (5, False), (2, True)):  # (no iteration by M, then by cond)
        _against_ort(model, {"M": np.array(m), "c0": np.array(c), "v0": v0})


def _io_model():
    """Sequence and optional graph inputs and outputs."""
    opt_seq = oh.make_optional_type_proto(_seq_type(TP.INT64, [None]))
    nodes = [oh.make_node("SequenceInsert", ["s", "x", "pos"], ["s2"]),
             oh.make_node("SequenceAt", ["s2", "minus_one"], ["last"]),
             oh.make_node("SequenceErase", ["s2", "zero"], ["s3"]),
             oh.make_node("SequenceLength", ["s"], ["n"]),
             oh.make_node("OptionalHasElement", ["o"], ["has_o"]),
             oh.make_node("Identity", ["o"], ["o_out"]),
             oh.make_node("OptionalHasElement", ["os"], ["has_os"]),
             oh.make_node("Identity", ["os"], ["os_out"])]
    inits = [_init("minus_one", np.int32(-1)), _init("zero", np.int64(0))]
    return _model(nodes, [_seq_vi("s", TP.FLOAT, [None, 2]), _vi("x", TP.FLOAT, [2]),
                          _vi("pos", TP.INT64, []),
                          _opt_vi("o", oh.make_tensor_type_proto(TP.FLOAT, [2])),
                          oh.make_value_info("os", opt_seq)],
                  [_seq_vi("s2", TP.FLOAT, [None, 2]), _vi("last", TP.FLOAT, [None, 2]),
                   _seq_vi("s3", TP.FLOAT, None), _vi("n", TP.INT64, []),
                   _vi("has_o", TP.BOOL, []),
                   _opt_vi("o_out", oh.make_tensor_type_proto(TP.FLOAT, [2])),
                   _vi("has_os", TP.BOOL, []), oh.make_value_info("os_out", opt_seq)], inits)


def test_sequence_and_optional_inputs_and_outputs():
    model = _io_model()
    ours, theirs = InferenceSession(model), _ort(model)
    for mine, ref in ((ours.get_inputs(), theirs.get_inputs()),
                      (ours.get_outputs(), theirs.get_outputs())):
        assert [(a.name, a.type, a.shape) for a in mine] == \
               [(a.name, a.type, a.shape) for a in ref]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(2).astype(np.float32)
    for count, pos in ((0, 0), (3, 1), (3, -3), (2, 2)):
        s = [rng.standard_normal(2).astype(np.float32) for _ in range(count)]
        for o, os_ in ((None, None), (x + 1, [np.arange(3), np.arange(2)])):
            feed = {"s": s, "x": x, "pos": np.array(pos), "o": o, "os": os_}
            got = ours.run(None, feed)
            _compare(got, theirs.run(None, feed))
            for value in got[0] + ([got[5]] if o is not None else []):
                value[...] = 99  # (outputs own their memory: the feed is untouched)
            assert all((t != 99).all() for t in s) and (x != 99).all()
    # an optional input may be left out of the feed: it is empty, as in onnxruntime
    got = ours.run(["has_o", "o_out"], {"s": [], "x": x, "pos": np.array(0)})
    _compare(got, [np.array(False), None])


def test_sequence_feed_errors_name_the_input():
    sess = InferenceSession(_io_model())
    x = np.zeros(2, np.float32)
    feed = {"x": x, "pos": np.array(0)}
    with pytest.raises(TypeError, match="'s' must be a list of arrays"):
        sess.run(None, dict(feed, s=np.zeros((2, 2), np.float32)))
    with pytest.raises(TypeError, match=r"element 1 of input 's' must be tensor\(float\), "
                                        "got float64"):
        sess.run(None, dict(feed, s=[x, x.astype(np.float64)]))
    with pytest.raises(TypeError, match=r"input 'o' must be tensor\(float\), got int64"):
        sess.run(None, dict(feed, s=[], o=np.zeros(2, np.int64)))
    with pytest.raises(ValueError, match=r"input 'o' must have shape \[2\]"):
        sess.run(None, dict(feed, s=[], o=np.zeros(3, np.float32)))
    with pytest.raises(TypeError, match="input 'x' must be tensor\\(float\\), got None"):
        sess.run(None, {"s": [], "x": None, "pos": np.array(0)})
    with pytest.raises(ValueError, match="required inputs \\['s'\\] are missing"):
        sess.run(None, feed)


def _read(value_info):
    return _proto.read_value_info(memoryview(value_info.SerializeToString()))


def test_value_info_reads_nested_types():
    tensor = oh.make_tensor_type_proto(TP.INT64, [None, "n", 3])
    seq = _read(oh.make_value_info("s", oh.make_sequence_type_proto(tensor)))
    assert (seq.name, seq.kind, seq.element.kind, seq.element.elem_type, seq.element.shape) \
        == ("s", "sequence", "tensor", TP.INT64, [None, "n", 3])
    opt = _read(oh.make_value_info("o", oh.make_optional_type_proto(
        oh.make_sequence_type_proto(oh.make_tensor_type_proto(TP.FLOAT16, None)))))
    assert (opt.kind, opt.element.kind, opt.element.element.elem_type,
            opt.element.element.shape) == ("optional", "sequence", TP.FLOAT16, None)
    pairs = _read(oh.make_value_info("m", oh.make_map_type_proto(TP.STRING, tensor)))
    assert (pairs.kind, pairs.elem_type, pairs.element.shape) == ("map", TP.STRING,
                                                                 [None, "n", 3])
    plain = _read(_vi("x", TP.BOOL, [2]))
    assert (plain.kind, plain.elem_type, plain.shape, plain.element) == ("tensor", TP.BOOL, [2],
                                                                         None)


def _single(op, inputs, outputs, opset=18, **attrs):
    """A one-node model: inputs and outputs as value infos."""
    return _model([oh.make_node(op, [i.name for i in inputs], [o.name for o in outputs],
                                **attrs)], inputs, outputs, opset=opset)


@pytest.mark.parametrize("split, attrs", [
    (None, {}), (None, {"keepdims": 0}), (None, {"axis": -1, "keepdims": 0}),
    (np.array(2, np.int64), {"axis": 1}), (np.array(4, np.int32), {"axis": 1}),
    (np.array([1, 0, 2], np.int64), {"axis": -2}), (np.array([3], np.int64), {}),
    (np.array([], np.int64), {"keepdims": 1}),  # (empty: as absent, as onnxruntime)
])
@pytest.mark.parametrize("opset", [11, 24])
def test_split_to_sequence_matches_onnxruntime(split, attrs, opset):
    inputs = [_vi("x", TP.FLOAT, [None, 5])]
    if split is not None:
        inputs.append(_vi("split", oh.np_dtype_to_tensor_dtype(split.dtype), list(split.shape)))
    model = _single("SplitToSequence", inputs, [_seq_vi("y")], opset=opset, **attrs)
    for rows in (3, 0):  # (an empty axis: no piece unless the sizes say so)
        if rows == 0 and split is not None and split.ndim == 1 and split.size:
            continue  # (sizes summing to 3)
        feed = {"x": np.arange(rows * 5, dtype=np.float32).reshape(rows, 5)}
        if split is not None:
            feed["split"] = split
        (parts,) = _against_ort(model, feed)
        assert all(p.flags.c_contiguous for p in parts)


@pytest.mark.parametrize("axis, new_axis", [(0, 0), (1, 0), (-1, 0), (0, 1), (2, 1),
                                            (-3, 1), (-1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_concat_from_sequence_matches_onnxruntime(axis, new_axis, dtype):
    code = oh.np_dtype_to_tensor_dtype(np.dtype(dtype))
    model = _single("ConcatFromSequence", [_seq_vi("s", code, [2, 3])], [_vi("y", code, None)],
                    axis=axis, new_axis=new_axis)
    rng = np.random.default_rng(0)
    for count in (1, 3):
        s = [(rng.standard_normal((2, 3)) * 3).astype(dtype) for _ in range(count)]
        _against_ort(model, {"s": s})


@pytest.mark.parametrize("op, positions", [("SequenceInsert", range(-3, 4)),
                                           ("SequenceAt", range(-3, 3)),
                                           ("SequenceErase", range(-3, 3))])
@pytest.mark.parametrize("pos_type", [TP.INT32, TP.INT64])
def test_sequence_positions_match_onnxruntime(op, positions, pos_type):
    ins = [_seq_vi("s", TP.FLOAT, [2])] + ([_vi("t", TP.FLOAT, [2])] if op == "SequenceInsert"
                                           else []) + [_vi("p", pos_type, [])]
    out = _vi("y", TP.FLOAT, [2]) if op == "SequenceAt" else _seq_vi("y", TP.FLOAT, [2])
    model = _single(op, ins, [out])
    s = [np.full(2, k, np.float32) for k in range(3)]
    for p in positions:
        feed = {"s": s, "p": np.array(p, oh.tensor_dtype_to_np_dtype(pos_type))}
        if op == "SequenceInsert":
            feed["t"] = np.full(2, 9, np.float32)
        _against_ort(model, feed)


def test_optional_operators_match_onnxruntime():
    opt_t = oh.make_optional_type_proto(oh.make_tensor_type_proto(TP.FLOAT, [2]))
    empty = oh.make_node("Optional", [], ["none"], type=oh.make_tensor_type_proto(TP.FLOAT, [2]))
    nodes = [empty, oh.make_node("Optional", ["x"], ["some"]),
             oh.make_node("OptionalHasElement", ["none"], ["h0"]),
             oh.make_node("OptionalHasElement", ["some"], ["h1"]),
             oh.make_node("OptionalGetElement", ["some"], ["g"]),
             oh.make_node("OptionalHasElement", ["x"], ["h2"]),  # (a tensor: opset 18)
             oh.make_node("OptionalGetElement", ["x"], ["g2"])]
    model = _model(nodes, [_vi("x", TP.FLOAT, [2])],
                   [oh.make_value_info("none", opt_t), oh.make_value_info("some", opt_t)]
                   + [_vi(n, TP.BOOL, []) for n in ("h0", "h1")] + [_vi("g", TP.FLOAT, [2])]
                   + [_vi("h2", TP.BOOL, []), _vi("g2", TP.FLOAT, [2])])
    x = np.array([1, 2], np.float32)
    got = _against_ort(model, {"x": x})
    _compare(got, [None, x, np.array(False), np.array(True), x, np.array(True), x])


def test_sequence_map_over_sequences_and_a_tensor():
    body = oh.make_graph([oh.make_node("Mul", ["a", "b"], ["ab"]),
                          oh.make_node("Add", ["ab", "t"], ["y"]),
                          oh.make_node("Shape", ["a"], ["shape"])], "body",
                         [_vi("a"), _vi("b"), _vi("t")], [_vi("y"), _vi("shape", TP.INT64, [1])])
    model = _model([oh.make_node("SequenceMap", ["s1", "s2", "t"], ["ys", "shapes"], body=body)],
                   [_seq_vi("s1", TP.FLOAT, [None]), _seq_vi("s2", TP.FLOAT, [None]),
                    _vi("t", TP.FLOAT, [1])],
                   [_seq_vi("ys", TP.FLOAT, None), _seq_vi("shapes", TP.INT64, [1])], opset=17)
    rng = np.random.default_rng(1)
    for sizes in ([], [3], [1, 4, 2]):
        s1 = [rng.standard_normal(n).astype(np.float32) for n in sizes]
        s2 = [rng.standard_normal(n).astype(np.float32) for n in sizes]
        t = np.array([0.5], np.float32)
        ys, shapes = _against_ort(model, {"s1": s1, "s2": s2, "t": t})
        _compare(ys, [a * b + t for a, b in zip(s1, s2)])
        _compare(shapes, [np.array([n]) for n in sizes])


# --------------------------------------------------------------------------- torch
def _torch():
    return pytest.importorskip("torch", reason="torch exports the models compared here")


def _export(torch, module, args, path, **kwargs):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, path, **kwargs)
    except Exception as e:  # (an exporter this torch build lacks: onnxscript, TorchScript)
        pytest.skip(f"torch.onnx.export cannot export this model here: {e!r}"[:300])
    return path


def test_torch_cond_export_matches_torch_and_onnxruntime(tmp_path):
    torch = _torch()

    class Gate(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            def bright(x):
                return torch.relu(self.conv(x)) * 2

            def dark(x):
                return torch.sigmoid(self.conv(x)) - x.mean()

            return torch.cond(x.sum() > 0, bright, dark, (x,))

    torch.manual_seed(0)
    module = Gate().eval()
    path = _export(torch, module, (torch.randn(2, 3, 8, 8),), str(tmp_path / "cond.onnx"),
                   dynamo=True, opset_version=18)
    assert "If" in {n.op_type for n in onnx.load(path).graph.node}
    sess, ref = InferenceSession(path), _ort(path)  # (weights in an external data file)
    name = sess.get_inputs()[0].name
    for sign in (1.0, -1.0):
        x = (np.abs(np.random.default_rng(0).standard_normal((2, 3, 8, 8))) * sign).astype(
            np.float32)
        (got,) = sess.run(None, {name: x})
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got, ref.run(None, {name: x})[0], rtol=1e-5, atol=1e-5)


def test_scripted_loops_export_matches_torch_and_onnxruntime(tmp_path):
    torch = _torch()

    class Loops(torch.nn.Module):
        def forward(self, x, n: int):
            y = x
            for i in range(n):
                y = torch.tanh(y * 0.9 + i)
            k = 0
            while bool(y.sum() < 10.0) and k < 20:  # (an If inside the Loop's body)
                y = y + 1.0
                k += 1
            return y

    scripted = torch.jit.script(Loops())
    path = _export(torch, scripted, (torch.randn(3, 4), 3), str(tmp_path / "loops.onnx"),
                   dynamo=False, opset_version=17, input_names=["x", "n"])
    model = onnx.load(path)
    assert [n.op_type for n in model.graph.node].count("Loop") == 2
    sess, ref = InferenceSession(path), _ort(model.SerializeToString())
    rng = np.random.default_rng(2)
    for n in (0, 1, 4):
        x = rng.standard_normal((3, 4)).astype(np.float32)
        (got,) = sess.run(None, {"x": x, "n": np.array(n, np.int64)})
        want = scripted(torch.from_numpy(x), n).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        _compare([got], ref.run(None, {"x": x, "n": np.array(n, np.int64)}))


# --------------------------------------------------------------------------- FlexAttention
def _score_graph(name, nodes, inputs_dtype, inits=()):
    return oh.make_graph(nodes, name, [_vi("s_in", inputs_dtype, None)],
                         [_vi("s_out", inputs_dtype, None)], list(inits))


def _flex_model(dtype, scale=None, score_mod=None, prob_mod=None, precision=None,
                extra_inputs=()):
    code = oh.np_dtype_to_tensor_dtype(np.dtype(dtype))
    attrs = {} if scale is None else {"scale": scale}
    if precision is not None:
        attrs["softmax_precision"] = precision
    node = oh.make_node("FlexAttention", ["Q", "K", "V"], ["Y"], domain=PREVIEW, name="flex",
                        **attrs)
    for key, graph in (("score_mod", score_mod), ("prob_mod", prob_mod)):
        if graph is not None:
            node.attribute.append(oh.make_attribute(key, graph))
    inputs = [_vi(n, code, None) for n in "QKV"] + list(extra_inputs)
    return _model([node], inputs, [_vi("Y", code, None)], opset=26, preview=True, check=False)


def _softmax(s):
    top = s.max(-1, keepdims=True)
    top[np.isneginf(top)] = 0
    e = np.exp(s - top)
    total = e.sum(-1, keepdims=True)
    return e / np.where(total == 0, 1, total)


def _flex_reference(q, k, v, scale=None, score_mod=None, prob_mod=None):
    """float64 numpy: (softmax((Q K^T) * scale, modified) modified) V, K and V heads
    repeated for grouped queries; a fully masked row gives zeros."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    s = q @ k.swapaxes(-1, -2) * (1 / np.sqrt(q.shape[-1]) if scale is None else scale)
    p = _softmax(score_mod(s) if score_mod else s)
    return (prob_mod(p) if prob_mod else p) @ v


def _qkv(rng, b, hq, hkv, length, kv_len, e, ev, dtype=np.float32):
    return (rng.standard_normal((b, hq, length, e)).astype(dtype),
            rng.standard_normal((b, hkv, kv_len, e)).astype(dtype),
            rng.standard_normal((b, hkv, kv_len, ev)).astype(dtype))


@pytest.mark.parametrize("shape", [(1, 2, 2, 4, 4, 8, 8), (2, 4, 2, 3, 5, 8, 6),
                                   (1, 6, 1, 1, 7, 16, 4), (2, 3, 3, 0, 4, 4, 4)])
@pytest.mark.parametrize("scale", [None, 0.3, -0.2])
def test_flex_attention_plain(shape, scale):
    rng = np.random.default_rng(len(shape))
    q, k, v = _qkv(rng, *shape)
    (y,) = InferenceSession(_flex_model(np.float32, scale)).run(None, {"Q": q, "K": k, "V": v})
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, _flex_reference(q, k, v, scale), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float16, 2e-3)])
def test_flex_attention_other_float_types(dtype, rtol):
    rng = np.random.default_rng(5)
    q, k, v = _qkv(rng, 2, 4, 2, 3, 5, 8, 8, dtype)
    (y,) = InferenceSession(_flex_model(dtype)).run(None, {"Q": q, "K": k, "V": v})
    assert y.dtype == dtype
    np.testing.assert_allclose(y, _flex_reference(q, k, v), rtol=rtol, atol=rtol)


def test_flex_attention_modifiers_against_torch_flex_attention():
    """score_mod: soft cap, causal mask (a mask computed in the main graph: an implicit
    input), and a fully masked first row; prob_mod: scaling. torch's flex_attention runs
    the same modifiers."""
    torch = _torch()
    try:
        from torch.nn.attention.flex_attention import flex_attention
    except ImportError:
        pytest.skip("this torch has no flex_attention")
    rng = np.random.default_rng(7)
    q, k, v = _qkv(rng, 2, 4, 2, 5, 5, 8, 8)
    soft_cap = _score_graph("cap", [oh.make_node("Div", ["s_in", "cap"], ["d"]),
                                    oh.make_node("Tanh", ["d"], ["th"]),
                                    oh.make_node("Mul", ["th", "cap"], ["s_out"])],
                            TP.FLOAT, [_init("cap", np.float32(2.0))])
    masked = _score_graph("mask", [oh.make_node("Where", ["allowed", "s_in", "ninf"],
                                                ["s_out"])], TP.FLOAT,
                          [_init("ninf", np.float32(-np.inf))])
    halve = _score_graph("halve", [oh.make_node("Mul", ["s_in", "half"], ["s_out"])], TP.FLOAT,
                         [_init("half", np.float32(0.5))])
    allowed = np.tril(np.ones((5, 5), bool))
    allowed[0] = False  # (no key for the first query: a zero row, as torch gives)
    qi, ki = np.arange(5)[:, None], np.arange(5)[None]
    runs = [
        (dict(score_mod=soft_cap), lambda s, b, h, i, j: torch.tanh(s / 2.0) * 2.0, None),
        (dict(score_mod=masked, extra_inputs=[_vi("allowed", TP.BOOL, [5, 5])]),
         lambda s, b, h, i, j: torch.where((i >= j) & (i > 0), s, -float("inf")), None),
        (dict(prob_mod=halve), None, 0.5)]
    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
    for attrs, torch_mod, prob_scale in runs:
        feed = {"Q": q, "K": k, "V": v}
        if "extra_inputs" in attrs:
            feed["allowed"] = allowed
        (y,) = InferenceSession(_flex_model(np.float32, **attrs)).run(None, feed)
        want = flex_attention(tq, tk, tv, score_mod=torch_mod, enable_gqa=True).numpy()
        np.testing.assert_allclose(y, want * (prob_scale or 1.0), rtol=1e-5, atol=1e-5)
        score_mod = (lambda s: np.where(allowed & (qi >= ki), s, -np.inf)) \
            if "extra_inputs" in attrs else None
        if score_mod is not None:
            np.testing.assert_allclose(y, _flex_reference(q, k, v, score_mod=score_mod),
                                       rtol=1e-5, atol=1e-6)
            assert not y[:, :, 0].any()


def test_a_model_of_preview_operators_only_needs_no_ai_onnx_import():
    node = oh.make_node("FlexAttention", ["Q", "K", "V"], ["Y"], domain=PREVIEW)
    graph = oh.make_graph([node], "g", [_vi(n, TP.FLOAT, None) for n in "QKV"], [_vi("Y")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid(PREVIEW, 1)])
    q, k, v = _qkv(np.random.default_rng(0), 1, 2, 1, 3, 4, 8, 8)
    (y,) = InferenceSession(model.SerializeToString()).run(None, {"Q": q, "K": k, "V": v})
    np.testing.assert_allclose(y, _flex_reference(q, k, v), rtol=1e-5, atol=1e-6)
    graph = oh.make_graph([node, oh.make_node("Relu", ["Y"], ["Z"])], "g", graph.input,
                          [_vi("Z")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid(PREVIEW, 1)])
    with pytest.raises(ValueError, match="Relu node: an ai.onnx operator, and the model "
                                         "imports no ai.onnx opset"):
        InferenceSession(model.SerializeToString())


@pytest.mark.parametrize("precision", [10, 11])
def test_flex_attention_softmax_precision(precision):
    """The modifiers see scores of the softmax_precision type (rounded to it)."""
    code = {10: TP.FLOAT16, 11: TP.DOUBLE}[precision]
    np_type = {10: np.float16, 11: np.float64}[precision]
    plus = _score_graph("plus", [oh.make_node("Add", ["s_in", "one"], ["s_out"])], code,
                        [_init("one", np.array(1, np_type))])
    rng = np.random.default_rng(precision)
    q, k, v = _qkv(rng, 1, 2, 2, 3, 4, 8, 8)
    model = _flex_model(np.float32, score_mod=plus, precision=precision)
    (y,) = InferenceSession(model).run(None, {"Q": q, "K": k, "V": v})
    want = _flex_reference(q, k, v, score_mod=lambda s: s.astype(np_type) + np_type(1))
    tol = 2e-3 if precision == 10 else 1e-6
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)


def test_flex_attention_errors_name_the_node():
    rng = np.random.default_rng(0)
    q, k, v = _qkv(rng, 1, 3, 2, 2, 2, 4, 4)
    with pytest.raises(ValueError, match="FlexAttention node 'flex'.*multiple"):
        InferenceSession(_flex_model(np.float32)).run(None, {"Q": q, "K": k, "V": v})
    q, k, v = _qkv(rng, 1, 2, 2, 2, 2, 4, 4)
    with pytest.raises(ValueError, match="FlexAttention node 'flex'.*rank-4"):
        InferenceSession(_flex_model(np.float32)).run(None, {"Q": q[0], "K": k, "V": v})
    two_out = oh.make_graph([oh.make_node("Identity", ["s_in"], ["s_out"]),
                             oh.make_node("Identity", ["s_in"], ["s2"])], "two",
                            [_vi("s_in")], [_vi("s_out"), _vi("s2")])
    with pytest.raises(ValueError, match="FlexAttention node 'flex': FlexAttention: score_mod "
                                         "must have 1 input and 1 output, it has 1 and 2"):
        InferenceSession(_flex_model(np.float32, score_mod=two_out))
    shrink = _score_graph("shrink", [oh.make_node("ReduceMax", ["s_in"], ["s_out"])], TP.FLOAT)
    with pytest.raises(ValueError, match="score_mod must return a tensor of its input's shape"):
        InferenceSession(_flex_model(np.float32, score_mod=shrink)).run(
            None, {"Q": q, "K": k, "V": v})
    with pytest.raises(ValueError, match="softmax_precision must be one of"):
        InferenceSession(_flex_model(np.float32, precision=7))


# --------------------------------------------------------------------------- errors
def _if_model(then_outputs=1, else_outputs=1, node_outputs=1, cond_type=TP.BOOL,
              cond_shape=()):
    def branch(name, count):
        return oh.make_graph([oh.make_node("Identity", ["x"], [f"{name}{k}"])
                              for k in range(count)], name, [],
                             [_vi(f"{name}{k}") for k in range(count)])
    node = oh.make_node("If", ["c"], [f"y{k}" for k in range(node_outputs)], name="choose",
                        then_branch=branch("t", then_outputs),
                        else_branch=branch("e", else_outputs))
    return _model([node], [_vi("c", cond_type, list(cond_shape)), _vi("x", TP.FLOAT, [2])],
                  [_vi(f"y{k}") for k in range(node_outputs)], check=False)


def test_if_condition_must_be_one_bool():
    x = np.zeros(2, np.float32)
    sess = InferenceSession(_if_model(cond_shape=[None]))
    for bad in (np.array([True, False]), np.zeros(0, bool)):
        with pytest.raises(ValueError, match=r"If node 'choose': If: the condition must be "
                                             r"a single bool"):
            sess.run(None, {"c": bad, "x": x})
    (y,) = sess.run(None, {"c": np.array([True]), "x": x})  # (one element of any rank)
    np.testing.assert_array_equal(y, x)
    sess = InferenceSession(_if_model(cond_type=TP.FLOAT))
    with pytest.raises(ValueError, match="If node 'choose'.*single bool.*float32"):
        sess.run(None, {"c": np.array(1, np.float32), "x": x})


def test_if_branch_output_counts_are_checked_at_load():
    with pytest.raises(ValueError, match="If node 'choose'.*then_branch has 2 outputs and "
                                         "else_branch 1"):
        InferenceSession(_if_model(then_outputs=2))
    with pytest.raises(ValueError, match="If node 'choose'.*then_branch must have 1 outputs, "
                                         "it has 2"):
        InferenceSession(_if_model(then_outputs=2, else_outputs=2))


def _bad_loop(body_inputs, body_outputs):
    body = oh.make_graph([oh.make_node("Identity", ["c"], [f"o{k}"]) for k in range(body_outputs)],
                         "body", [_vi(f"i{k}", TP.BOOL, []) for k in range(body_inputs - 1)]
                         + [_vi("c", TP.BOOL, [])],
                         [_vi(f"o{k}", TP.BOOL, []) for k in range(body_outputs)])
    return _model([oh.make_node("Loop", ["M", "", "v"], ["v_out"], body=body, name="spin")],
                  [_vi("M", TP.INT64, []), _vi("v", TP.BOOL, [])], [_vi("v_out", TP.BOOL, None)],
                  check=False)


def test_loop_body_signature_is_checked_at_load():
    with pytest.raises(ValueError, match="Loop node 'spin': Loop: body must have 3 inputs, "
                                         "it has 2"):
        InferenceSession(_bad_loop(2, 2))
    with pytest.raises(ValueError, match="Loop node 'spin': Loop: body must have 2 outputs, "
                                         "it has 3"):
        InferenceSession(_bad_loop(3, 3))


def test_loop_scan_output_must_keep_its_shape():
    body = oh.make_graph([oh.make_node("Identity", ["c"], ["c2"]),
                          oh.make_node("Range", ["zero", "i", "one"], ["r"])], "body",
                         [_vi("i", TP.INT64, []), _vi("c", TP.BOOL, [])],
                         [_vi("c2", TP.BOOL, []), _vi("r", TP.INT64, None)],
                         [_init("zero", np.int64(0)), _init("one", np.int64(1))])
    model = _model([oh.make_node("Loop", ["M", ""], ["rs"], body=body, name="ragged")],
                   [_vi("M", TP.INT64, [])], [_vi("rs", TP.INT64, None)])
    sess = InferenceSession(model)
    np.testing.assert_array_equal(sess.run(None, {"M": np.array(1)})[0], np.zeros((1, 0)))
    with pytest.raises(ValueError, match="Loop node 'ragged'.*scan output 0 must keep its shape"):
        sess.run(None, {"M": np.array(3)})


def test_sequence_errors_name_the_node():
    seq = [_seq_vi("s", TP.FLOAT, [2])]
    model = _model([oh.make_node("SequenceAt", ["s", "p"], ["y"], name="pick")],
                   seq + [_vi("p", TP.INT64, [])], [_vi("y", TP.FLOAT, [2])])
    sess = InferenceSession(model)
    s = [np.zeros(2, np.float32)] * 2
    for p in (2, -3):
        with pytest.raises(ValueError, match=rf"SequenceAt node 'pick': SequenceAt: position "
                                             rf"{p} is out of range for a sequence of 2 "
                                             rf"tensors \(accepted: \[-2, 1\]\)"):
            sess.run(None, {"s": s, "p": np.array(p)})
    model = _model([oh.make_node("SequenceInsert", ["s", "t"], ["y"], name="put")],
                   seq + [_vi("t", TP.DOUBLE, [2])], [_seq_vi("y", TP.DOUBLE, [2])], check=False)
    with pytest.raises(ValueError, match="SequenceInsert node 'put'.*element type float32, "
                                         "got float64"):
        InferenceSession(model).run(None, {"s": s, "t": np.zeros(2)})
    model = _model([oh.make_node("SequenceErase", ["s"], ["y"], name="drop")], seq,
                   [_seq_vi("y", TP.FLOAT, [2])])
    with pytest.raises(ValueError, match="SequenceErase node 'drop'.*position -1 is out of "
                                         "range for a sequence of 0 tensors"):
        InferenceSession(model).run(None, {"s": []})
    model = _model([oh.make_node("ConcatFromSequence", ["s"], ["y"], axis=0, name="join")], seq,
                   [_vi("y", TP.FLOAT, None)])
    with pytest.raises(ValueError, match="ConcatFromSequence node 'join'.*empty"):
        InferenceSession(model).run(None, {"s": []})
    model = _model([oh.make_node("OptionalGetElement", ["o"], ["y"], name="get")],
                   [_opt_vi("o", oh.make_tensor_type_proto(TP.FLOAT, [2]))],
                   [_vi("y", TP.FLOAT, [2])])
    with pytest.raises(ValueError, match="OptionalGetElement node 'get'.*empty"):
        InferenceSession(model).run(None, {"o": None})
    model = _model([oh.make_node("Relu", ["s"], ["y"], name="relu")], seq,
                   [_vi("y", TP.FLOAT, [2])], check=False)
    with pytest.raises(ValueError, match="Relu node 'relu': invalid attributes or inputs"):
        InferenceSession(model).run(None, {"s": s})


def test_scan_errors_name_the_node():
    body = oh.make_graph([oh.make_node("Add", ["a", "b"], ["o"])], "body",
                         [_vi("a", TP.FLOAT, [2]), _vi("b", TP.FLOAT, [2])],
                         [_vi("o", TP.FLOAT, [2])])
    model = _model([oh.make_node("Scan", ["x", "y"], ["o"], body=body, num_scan_inputs=2,
                                 name="zip")],
                   [_vi("x", TP.FLOAT, [None, 2]), _vi("y", TP.FLOAT, [None, 2])],
                   [_vi("o", TP.FLOAT, None)])
    with pytest.raises(ValueError, match="Scan node 'zip'.*same sequence length, got \\[3, 4\\]"):
        InferenceSession(model).run(None, {"x": np.zeros((3, 2), np.float32),
                                           "y": np.zeros((4, 2), np.float32)})
    bad = _model([oh.make_node("Scan", ["x", "y"], ["o"], body=body, num_scan_inputs=2,
                               scan_input_axes=[0], name="zip")],
                 [_vi("x", TP.FLOAT, [None, 2]), _vi("y", TP.FLOAT, [None, 2])],
                 [_vi("o", TP.FLOAT, None)], check=False)
    with pytest.raises(ValueError, match="Scan node 'zip'.*scan_input_axes must have 2 values"):
        InferenceSession(bad)


def test_subgraph_errors_name_the_enclosing_node():
    then = oh.make_graph([oh.make_node("Neg", ["nowhere"], ["t"])], "then", [], [_vi("t")])
    other = oh.make_graph([oh.make_node("Neg", ["x"], ["e"])], "else", [], [_vi("e")])
    node = oh.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="choose")
    model = _model([node], [_vi("c", TP.BOOL, []), _vi("x", TP.FLOAT, [2])], [_vi("y")],
                   check=False)
    with pytest.raises(ValueError, match="nothing produces: \\['nowhere'\\]"):
        InferenceSession(model)
    then = oh.make_graph([oh.make_node("ImageDecoder", ["x"], ["t"])], "then", [], [_vi("t")])
    node = oh.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="choose")
    model = _model([node], [_vi("c", TP.BOOL, []), _vi("x", TP.FLOAT, [2])], [_vi("y")],
                   opset=20, check=False)
    with pytest.raises(NotImplementedError, match="If node 'choose', subgraph 'then_branch': "
                                                  "ImageDecoder node.*not supported"):
        InferenceSession(model)
    then = oh.make_graph([oh.make_node("Div", ["x", "x"], ["t"]),
                          oh.make_node("Reshape", ["t", "x"], ["t2"], name="bad_reshape")],
                         "then", [], [_vi("t2")])
    node = oh.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="choose")
    model = _model([node], [_vi("c", TP.BOOL, []), _vi("x", TP.FLOAT, [2])], [_vi("y")],
                   check=False)
    with pytest.raises(ValueError, match="If node 'choose': Reshape node 'bad_reshape'"):
        InferenceSession(model).run(None, {"c": np.array(True), "x": np.ones(2, np.float32)})
