"""ONNX control flow, registered in ``_ops.OPS``: If, Loop, Scan and SequenceMap.

These operators run subgraphs. They take a fourth argument, ``graphs``: the node's
graph attributes (``"then_branch"``, ``"body"``, ...) as callables that run the
subgraph on its formal inputs, given in order, and return its outputs (arrays, lists of
arrays for sequences, None for empty optionals); ``.inputs`` / ``.outputs`` are the
subgraph's declared ValueInfos. The session (``session._Subgraph``) builds each
subgraph's plan once, at load, and binds the values of enclosing graphs it reads.
``check_node`` checks a node's subgraphs against its inputs and outputs at load.

- If (opsets 1, 11, 13, 16, 19, 21, 23, 24, 25): the condition is one bool value; the
  branch's outputs (tensors, sequences or optionals) are the node's.
- Loop (1, 11, 13, 16, 19, 21, 23, 24, 25): trip count M and condition both optional;
  the body gets (iteration number int64, condition, loop-carried values...) and gives
  (condition, loop-carried values..., scan outputs...). As the specification says, the
  body's condition ends the loop only when the node has a condition input (onnxruntime
  also stops a loop with only M on it). Scan outputs are stacked on a new first axis;
  after zero iterations they are empty with the shape onnxruntime gives them: (0, *the
  body output's declared shape, unknown dimensions 0), or (0,) when it has none.
- Scan 8 (batch axis 0, sequence axis 1, sequence_lens, directions; scan outputs of
  shorter sequences padded with zeros, as onnxruntime) and Scan 9+ (scan_input_axes,
  scan_input_directions, scan_output_axes, scan_output_directions; negative axes).
- SequenceMap (17): the body on each element of the sequence inputs (tensor inputs
  passed whole), one output sequence per body output.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from pyvision_engine.onnx._ops import OnnxOpError, contiguous, op
from pyvision_engine.onnx._proto import DTYPES, Graph, ValueInfo

Attrs = Dict[str, Any]
Graphs = Dict[str, Any]  # attribute name -> a callable running that subgraph
# node's attributes, opset, number of inputs, number of outputs -> None, or OnnxOpError
NodeCheck = Callable[[Attrs, int, int, int], None]
# (domain, op type) of every operator that runs subgraphs -> its load-time check
SUBGRAPH_OPS: Dict[Tuple[str, str], NodeCheck] = {}


def subgraph_op(name: str, check: NodeCheck, domain: str = "") -> Callable:
    """Registers an operator that runs subgraphs: ``fn(attrs, opset, inputs, graphs)``."""
    def register(fn: Callable) -> Callable:
        op(name, domain=domain)(fn)
        SUBGRAPH_OPS[(domain, name)] = check
        return fn
    return register


def check_node(domain: str, op_type: str, attrs: Attrs, opset: int, inputs: int,
               outputs: int) -> None:
    """The node's subgraphs against its number of inputs and outputs (OnnxOpError)."""
    SUBGRAPH_OPS[(domain, op_type)](attrs, opset, inputs, outputs)


def graph_attr(attrs: Attrs, key: str, what: str, required: bool = True) -> Optional[Graph]:
    """The graph attribute ``key`` (None when absent and not ``required``)."""
    graph = attrs.get(key)
    if graph is None and not required:
        return None
    if not isinstance(graph, Graph):
        raise OnnxOpError(f"{what}: attribute {key!r} must be a graph"
                          + ("" if key in attrs else ", and it is missing"))
    return graph


def describe(value: Any) -> str:
    """A value's kind, dtype and shape, for error messages."""
    if value is None:
        return "an empty optional (None)"
    if isinstance(value, list):
        return f"a sequence of {len(value)} tensors"
    value = np.asarray(value)
    return f"a {value.dtype} tensor of shape {list(value.shape)}"


def one_value(value: Any, kinds: str, what: str) -> Any:
    """The single element of a tensor of one element whose dtype kind is in ``kinds``."""
    if not isinstance(value, np.ndarray) or value.size != 1 or value.dtype.kind not in kinds:
        wanted = "bool" if kinds == "b" else "integer"
        raise OnnxOpError(f"{what} must be a single {wanted} (a tensor of one element), got "
                          f"{describe(value)}")
    return value.reshape(-1)[0]


def _declared_dims(info: ValueInfo) -> Tuple[int, ...]:
    """A subgraph output's declared dimensions, unknown ones 0 (as onnxruntime sizes the
    scan outputs of zero iterations); () when the output has no shape."""
    shape = info.shape if info.kind == "tensor" else None
    return () if shape is None else tuple(d if isinstance(d, int) and d >= 0 else 0
                                          for d in shape)


def _declared_dtype(info: ValueInfo) -> np.dtype:
    return DTYPES[info.elem_type] if info.kind == "tensor" and info.elem_type in DTYPES \
        else np.dtype(np.float32)


def _stacked(values: List[Any], info: ValueInfo, what: str) -> np.ndarray:
    """A scan output: the iterations' values stacked on a new first axis. With no
    iteration, empty: (0, *declared dimensions) (onnxruntime's shape)."""
    if not values:
        return np.zeros((0,) + _declared_dims(info), _declared_dtype(info))
    first = values[0]
    for i, v in enumerate(values):
        if not isinstance(v, np.ndarray):
            raise OnnxOpError(f"{what} must be a tensor, got {describe(v)} at iteration {i}")
        if v.shape != first.shape or v.dtype != first.dtype:
            raise OnnxOpError(f"{what} must keep its shape and type in every iteration: "
                              f"{describe(first)} at iteration 0, {describe(v)} at {i}")
    return np.stack(values)


def _counts(what: str, graph: Graph, inputs: int, outputs: int, key: str) -> None:
    """The subgraph ``key`` has that many inputs and outputs (OnnxOpError)."""
    if len(graph.inputs) != inputs:
        raise OnnxOpError(f"{what}: {key} must have {inputs} inputs, it has "
                          f"{len(graph.inputs)}")
    if len(graph.outputs) != outputs:
        raise OnnxOpError(f"{what}: {key} must have {outputs} outputs, it has "
                          f"{len(graph.outputs)}")


# ----------------------------------------------------------------- If
def _check_if(attrs: Attrs, opset: int, inputs: int, outputs: int) -> None:
    then, other = graph_attr(attrs, "then_branch", "If"), graph_attr(attrs, "else_branch", "If")
    if inputs != 1:
        raise OnnxOpError(f"If: takes one input, the condition; the node has {inputs}")
    if len(then.outputs) != len(other.outputs):
        raise OnnxOpError(f"If: then_branch has {len(then.outputs)} outputs and else_branch "
                          f"{len(other.outputs)}: both must have as many as the node "
                          f"({outputs})")
    _counts("If", then, 0, outputs, "then_branch")
    _counts("If", other, 0, outputs, "else_branch")


@subgraph_op("If", _check_if)
def _if(attrs: Attrs, opset: int, inputs: List[Any], graphs: Graphs) -> List[Any]:
    cond = one_value(inputs[0], "b", "If: the condition")
    return graphs["then_branch" if cond else "else_branch"]()


# ----------------------------------------------------------------- Loop
def _check_loop(attrs: Attrs, opset: int, inputs: int, outputs: int) -> None:
    body = graph_attr(attrs, "body", "Loop")
    if inputs < 2:
        raise OnnxOpError(f"Loop: inputs M and cond (empty names when absent) come first, "
                          f"the node has {inputs} inputs")
    carried = inputs - 2
    if outputs < carried:
        raise OnnxOpError(f"Loop: {carried} loop-carried values need as many outputs, the node "
                          f"has {outputs}")
    # body: (iteration, cond, carried...) -> (cond, carried..., scan outputs...)
    _counts("Loop", body, 2 + carried, 1 + outputs, "body")


@subgraph_op("Loop", _check_loop)
def _loop(attrs: Attrs, opset: int, inputs: List[Any], graphs: Graphs) -> List[Any]:
    body = graphs["body"]
    trip_count, cond_in, carried = inputs[0], inputs[1], list(inputs[2:])
    max_trips = None if trip_count is None else int(one_value(trip_count, "iu", "Loop: M"))
    keep_going = True if cond_in is None else bool(one_value(cond_in, "b", "Loop: cond"))
    count = len(carried)
    scans: List[List[Any]] = [[] for _ in body.outputs[1 + count:]]
    cond = np.array(keep_going)
    i = 0
    while keep_going and (max_trips is None or i < max_trips):
        outs = body(np.array(i, np.int64), cond, *carried)
        cond, carried = outs[0], outs[1:1 + count]
        if cond_in is not None:  # (without a cond input the body's is ignored: the spec)
            keep_going = bool(one_value(cond, "b", "Loop: the body's condition output"))
        for values, value in zip(scans, outs[1 + count:]):
            values.append(value)
        i += 1
    return carried + [_stacked(values, info, f"Loop: scan output {k}") for k, (values, info)
                      in enumerate(zip(scans, body.outputs[1 + count:]))]


# ----------------------------------------------------------------- Scan
def _int_list(attrs: Attrs, key: str, count: int, what: str) -> List[int]:
    values = [int(v) for v in attrs.get(key, [0] * count)]
    if len(values) != count:
        raise OnnxOpError(f"{what}: {key} must have {count} values, got {values}")
    return values


def _axis(axis: int, rank: int, what: str) -> int:
    if not -rank <= axis < rank:
        raise OnnxOpError(f"{what}: axis {axis} is out of range for rank {rank}")
    return axis % rank


def _scan_counts(attrs: Attrs, opset: int, inputs: int) -> Tuple[int, int]:
    """(state variables N, scan inputs M) of a Scan node with ``inputs`` inputs."""
    m = int(attrs.get("num_scan_inputs", 0))
    n = inputs - m - (1 if opset < 9 else 0)  # (Scan 8: sequence_lens first)
    if m < 1 or n < 0:
        raise OnnxOpError(f"Scan: num_scan_inputs must be between 1 and the number of "
                          f"(state and scan) inputs, got {m} for {inputs} inputs")
    return n, m


def _check_scan(attrs: Attrs, opset: int, inputs: int, outputs: int) -> None:
    body = graph_attr(attrs, "body", "Scan")
    n, m = _scan_counts(attrs, opset, inputs)
    if outputs < n:
        raise OnnxOpError(f"Scan: {n} state variables need as many outputs, the node has "
                          f"{outputs}")
    # body: (states..., scan input elements...) -> (states..., scan output elements...)
    _counts("Scan", body, n + m, outputs, "body")
    if opset < 9:
        _int_list(attrs, "directions", m, "Scan")
    else:
        for key, count in (("scan_input_axes", m), ("scan_input_directions", m),
                           ("scan_output_axes", outputs - n),
                           ("scan_output_directions", outputs - n)):
            _int_list(attrs, key, count, "Scan")


def tensor_value(value: Any, what: str) -> np.ndarray:
    """``value``, which must be a tensor (not a sequence or an empty optional)."""
    if not isinstance(value, np.ndarray):
        raise OnnxOpError(f"{what} must be a tensor, got {describe(value)}")
    return value


@subgraph_op("Scan", _check_scan)
def _scan(attrs: Attrs, opset: int, inputs: List[Any], graphs: Graphs) -> List[Any]:
    if opset < 9:
        return _scan8(attrs, inputs, graphs["body"])
    body = graphs["body"]
    n, m = _scan_counts(attrs, opset, len(inputs))
    states, scanned = list(inputs[:n]), inputs[n:]
    k = len(body.outputs) - n
    in_axes = _int_list(attrs, "scan_input_axes", m, "Scan")
    in_reverse = _int_list(attrs, "scan_input_directions", m, "Scan")
    out_axes = _int_list(attrs, "scan_output_axes", k, "Scan")
    out_reverse = _int_list(attrs, "scan_output_directions", k, "Scan")
    # each scan input with its scanned axis first (a view), in the order it is read
    sequences = []
    for j, x in enumerate(scanned):
        x = tensor_value(x, f"Scan: scan input {j}")
        if x.ndim < 1:
            raise OnnxOpError(f"Scan: scan input {j} must have a sequence axis, got a scalar")
        x = np.moveaxis(x, _axis(in_axes[j], x.ndim, f"Scan: scan input {j}"), 0)
        sequences.append(x[::-1] if in_reverse[j] else x)
    lengths = {len(x) for x in sequences}
    if len(lengths) != 1:
        raise OnnxOpError(f"Scan: the scan inputs must have the same sequence length, got "
                          f"{[len(x) for x in sequences]}")
    collected: List[List[Any]] = [[] for _ in range(k)]
    for t in range(lengths.pop()):
        outs = body(*states, *[contiguous(x[t]) for x in sequences])
        states = outs[:n]
        for values, value in zip(collected, outs[n:]):
            values.append(value)
    results = []
    for j, values in enumerate(collected):
        y = _stacked(values, body.outputs[n + j], f"Scan: scan output {j}")
        if out_reverse[j]:  # (prepended in each iteration)
            y = y[::-1]
        y = np.moveaxis(y, 0, _axis(out_axes[j], y.ndim, f"Scan: scan output {j}"))
        results.append(contiguous(y))
    return states + results


def _scan8(attrs: Attrs, inputs: List[Any], body: Any) -> List[Any]:
    """Scan 8: every input has a batch axis 0, scan inputs a sequence axis 1; each batch
    entry scans its first sequence_lens[b] steps (reverse: from step lens[b] - 1 down)."""
    n, m = _scan_counts(attrs, 8, len(inputs))
    reverse = _int_list(attrs, "directions", m, "Scan")
    states = [tensor_value(s, f"Scan: initial state {i}") for i, s in enumerate(inputs[1:1 + n])]
    scanned = [tensor_value(x, f"Scan: scan input {j}") for j, x in enumerate(inputs[1 + n:])]
    lens = _batch_lengths(inputs[0], states, scanned)
    finals, collected = [], []  # per batch entry: final states, [scan output] -> values
    for b, length in enumerate(lens):
        st = [s[b] for s in states]
        values: List[List[Any]] = [[] for _ in body.outputs[n:]]
        for t in range(length):
            steps = [x[b, length - 1 - t if rev else t] for x, rev in zip(scanned, reverse)]
            outs = body(*st, *[contiguous(x) for x in steps])
            st = outs[:n]
            for acc, value in zip(values, outs[n:]):
                acc.append(value)
        finals.append(st)
        collected.append(values)
    results = [np.stack([f[i] for f in finals]) if lens else states[i] for i in range(n)]
    max_len = scanned[0].shape[1]
    for j, info in enumerate(body.outputs[n:]):
        parts = [_stacked(c[j], info, f"Scan: scan output {j}") for c in collected]
        results.append(_padded(parts, info, max_len, f"Scan: scan output {j}"))
    return results


def _batch_lengths(lens: Any, states: List[np.ndarray], scanned: List[np.ndarray]) -> List[int]:
    """Scan 8's sequence length of each batch entry (all of the sequence axis by default),
    the inputs' batch and sequence dimensions checked."""
    if any(x.ndim < 2 for x in scanned) or len({x.shape[:2] for x in scanned}) != 1:
        raise OnnxOpError(f"Scan: the scan inputs must share their (batch, sequence) first "
                          f"dimensions, got shapes {[list(x.shape) for x in scanned]}")
    batch, max_len = scanned[0].shape[:2]
    if any(s.ndim < 1 or s.shape[0] != batch for s in states):
        raise OnnxOpError(f"Scan: the initial states must have the batch size {batch} first, "
                          f"got shapes {[list(s.shape) for s in states]}")
    if lens is None:
        return [max_len] * batch
    if (not isinstance(lens, np.ndarray) or lens.dtype.kind not in "iu"
            or lens.shape != (batch,) or (lens < 0).any() or (lens > max_len).any()):
        raise OnnxOpError(f"Scan: sequence_lens must be {batch} integers in [0, {max_len}], "
                          f"got {describe(lens)}")
    return [int(v) for v in lens]


def _padded(parts: List[np.ndarray], info: ValueInfo, max_len: int, what: str) -> np.ndarray:
    """Scan 8's scan output (batch, max_len, ...): each batch entry's stacked values,
    padded with zeros after its sequence length (as onnxruntime)."""
    done = [p for p in parts if len(p)]
    element = done[0][0] if done else np.zeros(_declared_dims(info), _declared_dtype(info))
    y = np.zeros((len(parts), max_len) + element.shape, element.dtype)
    for b, p in enumerate(parts):
        if not len(p):
            continue  # (an empty sequence: zeros)
        if p.shape[1:] != element.shape or p.dtype != element.dtype:
            raise OnnxOpError(f"{what} must keep its shape and type across the batch: "
                              f"{describe(element)}, then {describe(p[0])}")
        y[b, :len(p)] = p
    return y


# ----------------------------------------------------------------- SequenceMap
def _check_sequence_map(attrs: Attrs, opset: int, inputs: int, outputs: int) -> None:
    body = graph_attr(attrs, "body", "SequenceMap")
    if inputs < 1 or outputs < 1:
        raise OnnxOpError(f"SequenceMap: needs an input sequence and an output, the node has "
                          f"{inputs} inputs and {outputs} outputs")
    _counts("SequenceMap", body, inputs, outputs, "body")


@subgraph_op("SequenceMap", _check_sequence_map)
def _sequence_map(attrs: Attrs, opset: int, inputs: List[Any], graphs: Graphs) -> List[Any]:
    body = graphs["body"]
    if not isinstance(inputs[0], list):
        raise OnnxOpError(f"SequenceMap: input 0 must be a sequence, got {describe(inputs[0])}")
    count = len(inputs[0])
    for j, x in enumerate(inputs):
        if isinstance(x, list) and len(x) != count:
            raise OnnxOpError(f"SequenceMap: the input sequences must have the same length: "
                              f"input 0 has {count} tensors, input {j} {len(x)}")
    results: List[List[np.ndarray]] = [[] for _ in body.outputs]
    for i in range(count):
        outs = body(*[x[i] if isinstance(x, list) else x for x in inputs])
        for j, (values, value) in enumerate(zip(results, outs)):
            values.append(tensor_value(value, f"SequenceMap: body output {j}"))
    return results
