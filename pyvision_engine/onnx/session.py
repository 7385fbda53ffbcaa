"""pve.onnx.InferenceSession: runs an ONNX model, with onnxruntime's API.

Loading turns the graph into a list of steps, once:

1. Initializers and ``Constant`` nodes are constants; every node whose inputs
   are all constants is evaluated at load (shape arithmetic, reshaped weights).
2. Each 2-D ``Conv`` with constant weights becomes a ``pve.nn.Conv2d`` in eval
   mode. A ``BatchNormalization`` that alone reads its output is folded into its
   weights; a ``Relu`` or ``Clip(0, 6)`` after that becomes the kernel's epilogue.
3. ``x + convs(x)`` with 1x1 and depthwise convolutions (an inverted residual)
   becomes one channel-blocked Block (nn/blocked.py, as the model zoo's
   InvertedResidual); otherwise a convolution whose output only feeds an
   ``Add`` adds the other operand in its epilogue, with a following ``Relu``
   too (``nn.fusion.conv_bn_add_act``).
4. Runs of convolutions that only feed each other become one ``nn.Sequential``
   (expand -> depthwise -> project inside them a Block), and such steps that
   only feed each other one Sequential, so the engine's eval fast paths apply
   as to a model built in Python: a MobileNetV2's features are one
   ``conv2d_blocked_sequence`` call.
5. Gemm / MatMul with constant weights lay them out once; every other node runs
   its operator from ``_ops`` (numpy, or the engine's kernels for float32 work).
6. A node with subgraphs (If, Loop, Scan, SequenceMap, FlexAttention: ``_ops_control``)
   gets a plan for each subgraph, built once by the same steps (so a convolution in
   a branch or a loop body takes the same fast paths). A subgraph may read values of
   the graphs around it (implicit inputs): the node counts them among its inputs, for
   the order of the steps, for freeing values and for the fusions above. Control flow
   is never folded as a constant, nor are the random generators (``_ops_random``):
   they draw anew at every run.

Values are numpy arrays, sequences (lists of arrays) or optionals (None when empty,
else the element itself), as onnxruntime's Python API feeds and returns them.

``run`` checks the feed against the graph's inputs (names, element types,
fixed dimensions) and raises ``ValueError`` / ``TypeError`` naming the input,
as onnxruntime does, then walks the steps under ``no_grad``. Initializers the
graph also lists as inputs (IR version 4 on) are onnxruntime's overridable
initializers: a run that feeds one walks a second plan, built on first use, in
which those initializers are run-time values rather than folded constants.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

import pyvision_engine as pve
from pyvision_engine import _C
from pyvision_engine.nn import blocked, fusion
from pyvision_engine.nn import functional as F
from pyvision_engine.nn._f_norm import batch_norm_scale_shift
from pyvision_engine.onnx import _ops, _ops_control, _ops_random
from pyvision_engine.onnx._proto import (DTYPES, TYPE_NAMES, Graph, Model, Node, ValueInfo,
                                         read_model)

__all__ = ["InferenceSession", "NodeArg", "SessionOptions", "ModelMetadata", "supported_ops"]

# Opsets of the ai.onnx domain whose operators _ops implements as specified
# (up to the newest the onnx 1.23 specification defines).
MIN_OPSET, MAX_OPSET = 1, 28


def supported_ops() -> List[str]:
    """The ai.onnx operator types InferenceSession runs."""
    return _ops.supported()


class NodeArg:
    """An input or output of the graph, as onnxruntime's ``NodeArg``."""

    def __init__(self, name: str, type: str, shape: Optional[List[Union[int, str, None]]]) -> None:
        self.name = name
        self.type = type
        self.shape = shape

    def __repr__(self) -> str:
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


class SessionOptions:
    """onnxruntime's SessionOptions, the fields that mean something here.

    ``intra_op_num_threads`` > 0 sets the engine's thread count
    (``pve.set_num_threads``, process-wide) when the session is created; the
    other fields are accepted for compatibility and have no effect."""

    def __init__(self) -> None:
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.graph_optimization_level = None
        self.enable_profiling = False
        self.log_severity_level = 2
        self.execution_mode = None


class ModelMetadata:
    def __init__(self, model: Model) -> None:
        self.producer_name = model.producer_name
        self.graph_name = model.graph.name
        self.graph_description = model.graph.doc_string
        self.domain = model.domain
        self.description = model.doc_string
        # (onnxruntime reports an unset model_version as the largest int64)
        self.version = model.model_version if model.model_version else 2**63 - 1
        self.custom_metadata_map = dict(model.metadata)


# ----------------------------------------------------------------- steps
@dataclass
class _Step:
    """Outputs = fn(inputs), by value name."""
    fn: Callable[..., List[Any]]
    inputs: List[str]
    outputs: List[str]
    what: str  # for error messages: the node's op_type and name
    module: Optional[pve.nn.Module] = None  # set when fn runs this one-input module
    pre_pad: Optional[List[int]] = None      # asymmetric ONNX pads applied before it
    plans: Optional[Dict[str, "_Plan"]] = None  # a control-flow node's subgraph plans


class _ConvBlock(pve.nn.Module):
    """``body(x)``, or ``x + body(x)`` with ``residual``: in the channel-blocked layout
    one nn/blocked.py Block, so an expand -> depthwise -> project body runs as one fused
    inverted-residual op (as the model zoo's InvertedResidual does) and the residual is
    added in the last convolution's epilogue."""

    def __init__(self, body: pve.nn.Sequential, residual: bool) -> None:
        super().__init__()
        self.body = body
        self.residual = residual

    def forward(self, x: Any) -> Any:
        return fusion.residual_add(self.body(x), x) if self.residual else self.body(x)

    def _blocked_plan(self) -> Optional[blocked.Block]:
        units = blocked.blocked_units(list(self.body._modules.values()))
        return None if units is None else blocked.Block(units, residual=self.residual)


def _inverted_residuals(children: List[pve.nn.Module]) -> List[pve.nn.Module]:
    """Runs of [1x1 + act,] depthwise + act, 1x1 (no act) among ``children`` (Conv2d
    and activation modules) grouped as non-residual _ConvBlocks."""
    units: List[List[pve.nn.Module]] = []  # [conv, act?] or [other module]
    for m in children:
        if isinstance(m, (pve.nn.ReLU, pve.nn.ReLU6)) and units and len(units[-1]) == 1 \
                and isinstance(units[-1][0], pve.nn.Conv2d):
            units[-1].append(m)
        else:
            units.append([m])

    def kind(u: List[pve.nn.Module]) -> Optional[str]:
        return blocked._kind(u[0], False) if isinstance(u[0], pve.nn.Conv2d) else None

    out: List[pve.nn.Module] = []
    i = 0
    while i < len(units):
        for pattern in (("pointwise", "depthwise", "pointwise"), ("depthwise", "pointwise")):
            run = units[i:i + len(pattern)]
            if (tuple(kind(u) for u in run) == pattern and len(run[-1]) == 1
                    and all(len(u) == 2 for u in run[:-1])):
                body = pve.nn.Sequential(*[m for u in run for m in u]).eval()
                out.append(_ConvBlock(body, residual=False))
                i += len(pattern)
                break
        else:
            out.extend(units[i])
            i += 1
    return out


def _children(module: pve.nn.Module) -> List[pve.nn.Module]:
    if type(module) is pve.nn.Sequential:
        return list(module._modules.values())
    return [module]


@dataclass
class _ConvUnit:
    conv: pve.nn.Conv2d
    act: Optional[pve.nn.Module]
    source: str             # the input value
    output: str
    pre_pad: Optional[List[int]]  # ONNX pads when they are asymmetric (applied before)
    position: int           # index of the Conv node
    what: str


def _call(step: _Step, args: List[Optional[np.ndarray]]) -> List[Any]:
    """``step.fn(*args)``, its errors naming the node (at load and at run time)."""
    try:
        outs = step.fn(*args)
    except (KeyError, IndexError, TypeError, AttributeError) as e:  # a missing attribute or
        # input, or a value of the wrong kind (a sequence where a tensor belongs)
        raise ValueError(f"{step.what}: invalid attributes or inputs ({e!r})") from None
    except ValueError as e:
        raise ValueError(f"{step.what}: {e}") from None
    if len(outs) < len(step.outputs) and any(step.outputs[len(outs):]):
        raise NotImplementedError(f"{step.what}: pve.onnx does not compute its optional output(s) "
                                  f"{[n for n in step.outputs[len(outs):] if n]}")
    return outs


def _silu(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.float32:
        return _ops.arr(F.silu(_ops.f32(x)))
    return _ops.OPS["Swish"]({}, 24, [x])[0]  # (x / (1 + exp(-x)) in float64)


def _gelu(x: np.ndarray) -> np.ndarray:
    return _ops.OPS["Gelu"]({}, 20, [x])[0]


def _conv_output_shape(conv: pve.nn.Conv2d, x_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    """The convolution's output shape (its own cached, checked inference geometry)."""
    if len(x_shape) != 4:
        return ()
    geometry = conv._inference_plan(x_shape, conv.weight, conv.padding)[0]
    return (x_shape[0], conv.out_channels) + tuple(geometry.out_size)


def _label(node: Node) -> str:
    return f"{node.op_type} node {node.name!r}" if node.name else f"{node.op_type} node"


def _subgraphs(node: Node) -> Dict[str, Graph]:
    """The node's graph attributes (If's branches, Loop's body, ...)."""
    return {k: v for k, v in node.attrs.items() if isinstance(v, Graph)}


def _outer_reads(graph: Graph) -> List[str]:
    """The names ``graph`` reads (in its nodes, their subgraphs, its outputs) that it does
    not define: values of the enclosing graphs, in the order first read."""
    defined = {"", *(vi.name for vi in graph.inputs), *graph.initializers}
    for node in graph.nodes:
        defined.update(node.outputs)
    reads = [name for node in graph.nodes for name in node.inputs + _implicit_inputs(node)]
    reads += [vi.name for vi in graph.outputs]
    return [name for name in dict.fromkeys(reads) if name not in defined]


def _implicit_inputs(node: Node) -> List[str]:
    """The values of the node's graph (or graphs around it) that its subgraphs read."""
    names = [name for g in _subgraphs(node).values() for name in _outer_reads(g)]
    return list(dict.fromkeys(names))


def _is_control(node: Node) -> bool:
    """Whether the node runs subgraphs (its operator is one of _ops_control's)."""
    return (_domain(node), node.op_type) in _ops_control.SUBGRAPH_OPS


def _domain(node: Node) -> str:
    return "" if node.domain == "ai.onnx" else node.domain


def _is_tensor(value: Any) -> bool:
    """A tensor value, not a sequence (list) or an empty optional (None)."""
    return value is not None and not isinstance(value, list)


def _as_value(value: Any) -> Any:
    """A step's output as the run keeps it: an array, a sequence (a list of arrays) or
    None (an empty optional); a pve Tensor becomes its array."""
    if type(value) is np.ndarray or value is None or type(value) is list:
        return value
    return _ops.arr(value)


class _Builder:
    """Turns a parsed model (or one of its subgraphs: ``graph``, which may read the
    enclosing graphs' constants ``outer_consts`` and other values) into steps (see the
    module docstring)."""

    def __init__(self, model: Model, variable: Iterable[str] = (), graph: Optional[Graph] = None,
                 outer_consts: Optional[Dict[str, np.ndarray]] = None) -> None:
        self.model = model
        self.graph = model.graph if graph is None else graph
        opset = model.opsets.get("")  # (None: a model of other domains' operators only)
        if opset is not None and not MIN_OPSET <= opset <= MAX_OPSET:
            raise ValueError(f"ai.onnx opset {opset} is outside what pve.onnx supports "
                             f"({MIN_OPSET}-{MAX_OPSET})")
        self.opset = opset
        # (own, aligned copies); ``variable`` initializers (overridden in a run) are not constant
        variable = set(variable)
        self.consts: Dict[str, np.ndarray] = dict(outer_consts or {})
        self.consts.update((k, np.array(v)) for k, v in self.graph.initializers.items()
                           if k not in variable)
        # a subgraph reads the enclosing graphs' values; a node reads its subgraphs' reads too
        self.outer = set(_outer_reads(self.graph)) if graph is not None else set()
        self.reads = {id(n): n.inputs + _implicit_inputs(n) for n in self.graph.nodes}
        self.nodes = self._sorted(self.graph.nodes)
        self.consumers: Dict[str, List[int]] = {}
        for i, node in enumerate(self.nodes):
            for name in self.reads[id(node)]:
                if name:
                    self.consumers.setdefault(name, []).append(i)
        self.graph_outputs = {vi.name for vi in self.graph.outputs}
        self.producers = {name: i for i, node in enumerate(self.nodes)
                          for name in node.outputs if name}

    def _sorted(self, nodes: List[Node]) -> List[Node]:
        """The nodes in an order where each input is made before it is read."""
        known = set(self.consts) | {vi.name for vi in self.graph.inputs} | {""} | self.outer
        pending, order = list(nodes), []
        while pending:  # (one pass when the file is in order, as the specification asks)
            waiting = []
            for n in pending:
                if all(i in known for i in self.reads[id(n)]):
                    order.append(n)
                    known.update(n.outputs)
                else:
                    waiting.append(n)
            if len(waiting) == len(pending):
                missing = sorted({i for n in waiting for i in self.reads[id(n)] if i not in known})
                raise ValueError(f"the graph reads values nothing produces: {missing[:5]}")
            pending = waiting
        for n in order:
            if n.domain not in ("", "ai.onnx"):
                if n.op_type not in _ops.DOMAIN_OPS.get(n.domain, {}):
                    raise NotImplementedError(f"{_label(n)}: operator {n.op_type!r} of domain "
                                              f"{n.domain!r} is not supported by pve.onnx")
            elif n.op_type not in _ops.OPS and n.op_type not in _ops.MULTI_OUTPUT:
                raise NotImplementedError(
                    f"{_label(n)}: operator {n.op_type!r} is not supported by pve.onnx "
                    f"(see pve.onnx.supported_ops())")
            elif self.opset is None:
                raise ValueError(f"{_label(n)}: an ai.onnx operator, and the model imports no "
                                 "ai.onnx opset")
        return order

    def _only_reader(self, value: str) -> Optional[int]:
        """The index of the one node reading ``value``, if nothing else (no graph output) does."""
        readers = self.consumers.get(value, [])
        if len(readers) == 1 and value not in self.graph_outputs:
            return readers[0]
        return None

    # -------------------------------------------------------------- nodes
    def _op_step(self, node: Node) -> _Step:
        attrs, opset = node.attrs, self.opset
        if _is_control(node):
            return self._control_step(node)
        if node.domain not in ("", "ai.onnx"):  # (checked in _sorted: the domain has it)
            other, version = _ops.DOMAIN_OPS[node.domain][node.op_type], self.model.opsets.get(
                node.domain, 1)

            def run(*inputs: Optional[np.ndarray]) -> List[np.ndarray]:
                return other(attrs, version, list(inputs))
        elif node.op_type in _ops.MULTI_OUTPUT:
            multi, count = _ops.MULTI_OUTPUT[node.op_type], len(node.outputs)

            def run(*inputs: Optional[np.ndarray]) -> List[np.ndarray]:
                return multi(attrs, opset, list(inputs), count)
        else:
            single = _ops.OPS[node.op_type]

            def run(*inputs: Optional[np.ndarray]) -> List[np.ndarray]:
                return single(attrs, opset, list(inputs))
        return _Step(run, list(node.inputs), list(node.outputs), _label(node))

    def _control_step(self, node: Node) -> _Step:
        """A node with subgraphs: their plans are built once, here; each run binds the
        values of enclosing graphs they read (the step's inputs after the node's own)
        and hands the operator callables that run them (``_Subgraph``)."""
        label, domain = _label(node), _domain(node)
        if domain:
            fn, opset = _ops.DOMAIN_OPS[domain][node.op_type], self.model.opsets.get(domain, 1)
        else:
            fn, opset = _ops.OPS[node.op_type], self.opset
        try:
            _ops_control.check_node(domain, node.op_type, node.attrs, opset, len(node.inputs),
                                    len(node.outputs))
        except ValueError as e:
            raise ValueError(f"{label}: {e}") from None
        plans = {}
        for key, graph in _subgraphs(node).items():
            try:
                plans[key] = _Plan(self.model, graph=graph, outer_consts=self.consts)
            except (ValueError, NotImplementedError) as e:
                raise type(e)(f"{label}, subgraph {key!r}: {e}") from None
        # (the enclosing graphs' constants are the subgraph plans' own constants)
        implicit = [n for n in _implicit_inputs(node) if n not in self.consts]
        attrs, explicit = node.attrs, len(node.inputs)

        def run(*args: Any) -> List[Any]:
            outer = dict(zip(implicit, args[explicit:]))
            graphs = {key: _Subgraph(plan, outer) for key, plan in plans.items()}
            return fn(attrs, opset, list(args[:explicit]), graphs)
        step = _Step(run, list(node.inputs) + implicit, list(node.outputs), label)
        step.plans = plans
        return step

    def _const_input(self, node: Node, i: int) -> Optional[np.ndarray]:
        if i >= len(node.inputs) or not node.inputs[i]:
            return None
        return self.consts.get(node.inputs[i])

    def _conv_unit(self, i: int, node: Node, absorbed: set) -> Optional[_ConvUnit]:
        """A Conv node with constant float32 weights (and what it absorbs), or None."""
        w = self._const_input(node, 1)
        bias = self._const_input(node, 2)
        if w is None or w.dtype != np.float32 or w.ndim != 4:
            return None
        if len(node.inputs) > 2 and node.inputs[2] and bias is None:
            return None
        if _ops.text_attr(node.attrs, "auto_pad", "NOTSET") not in ("NOTSET", "VALID", ""):
            return None  # SAME pads depend on the input's size: the plain op computes them
        group = int(node.attrs.get("group", 1))
        strides, dilations, pads, group = _ops.conv_geometry(
            node.attrs, [1, w.shape[1] * group, 1, 1], w.shape, _label(node))
        symmetric = pads[:2] == pads[2:]
        conv = pve.nn.Conv2d(w.shape[1] * group, w.shape[0], tuple(w.shape[2:]), tuple(strides),
                             tuple(pads[:2]) if symmetric else 0, tuple(dilations), group,
                             bias=True)
        weight = w.astype(np.float32)
        b = np.zeros(w.shape[0], np.float32) if bias is None else bias.astype(np.float32)
        out = node.outputs[0]
        # a BatchNormalization that alone reads the convolution: folded into it
        j = self._only_reader(out)
        if j is not None and self.nodes[j].op_type == "BatchNormalization":
            bn = self.nodes[j]
            stats = [self._const_input(bn, k) for k in range(1, 5)]
            training = bn.attrs.get("training_mode", 0) or len(bn.outputs) > 1
            per_channel = all(s is not None and s.shape == (w.shape[0],) for s in stats) and (
                self.opset >= 9 or bn.attrs.get("spatial", 1))  # (not spatial=0 statistics)
            if per_channel and not training:
                weight, b = _ops.fold_batch_norm(weight, b, *stats,
                                                 float(bn.attrs.get("epsilon", 1e-5)))
                absorbed.add(j)
                out = bn.outputs[0]
        conv.load_state_dict({"weight": weight, "bias": b})
        conv.eval()
        act = None
        j = self._only_reader(out)
        if j is not None:
            act = self._activation(self.nodes[j])
            if act is not None:
                absorbed.add(j)
                out = self.nodes[j].outputs[0]
        return _ConvUnit(conv, act, node.inputs[0], out, None if symmetric else pads, i,
                         _label(node))

    def _activation(self, node: Node) -> Optional[pve.nn.Module]:
        """ReLU / ReLU6 for a Relu or Clip(0, 6) node, else None."""
        if node.op_type == "Relu":
            return pve.nn.ReLU()
        if node.op_type == "Clip":
            if self.opset < 11:
                lo, hi = node.attrs.get("min", -np.inf), node.attrs.get("max", np.inf)
            else:
                bounds = [self._const_input(node, k) for k in (1, 2)]
                if any(node.inputs[k] and bounds[k - 1] is None
                       for k in (1, 2) if k < len(node.inputs)):
                    return None  # bounds computed at run time
                lo = -np.inf if bounds[0] is None else float(bounds[0])
                hi = np.inf if bounds[1] is None else float(bounds[1])
            if lo == 0 and hi == np.inf:
                return pve.nn.ReLU()
            if lo == 0 and hi == 6:
                return pve.nn.ReLU6()
        return None

    # -------------------------------------------------------------- the plan
    def build(self) -> List[_Step]:
        items: List[Tuple[int, Any]] = []  # (position, _Step or _ConvUnit)
        absorbed: set = set()
        folded = set()
        for i, node in enumerate(self.nodes):  # first every value known without the feed
            if _is_control(node) or (node.op_type in _ops_random.RANDOM_OPS
                                     and _domain(node) == ""):
                continue  # (never folded: run each time; a random node draws anew per run)
            if all(name == "" or name in self.consts for name in node.inputs):
                inputs = [self.consts.get(name) if name else None for name in node.inputs]
                outs = _call(self._op_step(node), inputs)
                named = [(name, value) for name, value in zip(node.outputs, outs) if name]
                if not all(_is_tensor(value) for _, value in named):
                    continue  # a sequence or an optional: made at run time
                for name, value in named:
                    self.consts[name] = np.asarray(value)
                folded.add(i)
        patterns = self._activation_patterns(folded, absorbed)
        for i, node in enumerate(self.nodes):
            if i in patterns:
                items.append((i, patterns[i]))
                continue
            if i in absorbed or i in folded:
                continue
            unit: Any = None
            if node.op_type == "Conv":
                unit = self._conv_unit(i, node, absorbed)
            elif node.op_type in ("Gemm", "MatMul"):
                unit = self._linear_step(node)
            items.append((i, unit if unit is not None else self._op_step(node)))
        return self._residuals_and_chains(items)

    # ------------------------------------------------- activation patterns
    def _scalar_input(self, node: Node, value: str) -> Optional[float]:
        """The constant one-element float input of ``node`` other than ``value``, if any."""
        others = [n for n in node.inputs if n != value]
        if len(node.inputs) != 2 or len(others) != 1:
            return None
        c = self.consts.get(others[0])
        if c is None or c.size != 1 or c.dtype.kind != "f":
            return None
        return float(c.reshape(()))

    def _single_reader(self, value: str, op_type: str, skip: set) -> Optional[int]:
        j = self._only_reader(value)
        if j is None or j in skip or self.nodes[j].op_type != op_type:
            return None
        return j

    def _activation_patterns(self, folded: set, absorbed: set) -> Dict[int, _Step]:
        """Exported activation subgraphs as one kernel step, keyed by their last node
        (the others go into ``absorbed``):
          x * Sigmoid(x)                                  -> SiLU (EfficientNet, YOLO);
          Div(x, sqrt 2) or Mul(x, 1/sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5 (either
          Mul order)                                      -> GELU (torch's erf GELU:
                                                             ConvNeXt, ViT, BERT);
          BatchNormalization no Conv folds (-> Relu)      -> one per-channel pass.
        Every intermediate value must have its one reader and be no graph output; values
        other than float32 take the plain operators' paths (float64 exact)."""
        found: Dict[int, _Step] = {}
        skip = folded | absorbed
        for i, node in enumerate(self.nodes):
            if i in skip or node.domain not in ("", "ai.onnx"):
                continue
            if node.op_type == "Sigmoid":
                x = node.inputs[0]
                j = self._single_reader(node.outputs[0], "Mul", skip)
                if j is None or sorted(self.nodes[j].inputs) != sorted([x, node.outputs[0]]):
                    continue
                found[j] = self._unary_step(x, self.nodes[j].outputs[0], "SiLU", _silu,
                                            [node, self.nodes[j]])
                absorbed.update((i, j))
            elif node.op_type == "BatchNormalization":
                made = self._batch_norm_step(i, node, skip)
                if made is not None:
                    last, step = made
                    found[last] = step
                    absorbed.update((i, last))
            elif node.op_type == "Erf":
                chain = self._gelu_chain(i, node, skip)
                if chain is None:
                    continue
                x, nodes = chain
                last = nodes[-1]
                found[last] = self._unary_step(x, self.nodes[last].outputs[0], "GELU", _gelu,
                                               [self.nodes[k] for k in nodes])
                absorbed.update(nodes)
            skip = folded | absorbed
        return found

    def _batch_norm_step(self, i: int, bn: Node, skip: set) -> Optional[Tuple[int, _Step]]:
        """(index of its last node, step) for an inference BatchNormalization with constant
        per-channel statistics that no Conv folds (DenseNet's BN -> ReLU -> Conv, pre-
        activation ResNets): one per-channel scale-and-shift pass, a Relu that alone reads
        it fused in."""
        stats = [self._const_input(bn, k) for k in range(1, 5)]
        if (len(bn.outputs) != 1 or bn.attrs.get("training_mode", 0) or any(
                v is None or v.ndim != 1 or v.shape != stats[0].shape or v.dtype.kind != "f"
                for v in stats) or (self.opset < 9 and not bn.attrs.get("spatial", 1))):
            return None
        k = self.producers.get(bn.inputs[0])
        if (k is not None and self.nodes[k].op_type == "Conv"
                and self._only_reader(bn.inputs[0]) == i):
            return None  # (the Conv folds it: _conv_unit)
        gamma, beta, mean, var = stats
        scale, shift = batch_norm_scale_shift(mean, var, gamma, beta,
                                              float(bn.attrs.get("epsilon", 1e-5)))
        j = self._single_reader(bn.outputs[0], "Relu", skip)
        relu = j is not None
        plain = _ops.OPS["BatchNormalization"]
        attrs, opset = bn.attrs, self.opset

        def run(x: np.ndarray) -> List[Any]:
            if x.dtype != np.float32 or x.ndim < 2 or x.shape[1] != scale.size:
                y = plain(attrs, opset, [x] + stats)[0]  # (its own checks and float64 path)
                return [np.maximum(y, 0).astype(y.dtype) if relu else y]
            n, c = x.shape[:2]
            return [_C.channel_affine(np.ascontiguousarray(x), n=n, c=c,
                                      l=x.size // max(n * c, 1), a=scale, d=shift, relu=relu)]
        last = j if relu else i
        nodes = [bn] + ([self.nodes[j]] if relu else [])
        what = (f"BatchNormalization{' + Relu' if relu else ''} "
                f"({' -> '.join(_label(n) for n in nodes)})")
        return last, _Step(run, [bn.inputs[0]], [self.nodes[last].outputs[0]], what)

    def _gelu_chain(self, i: int, erf: Node, skip: set) -> Optional[Tuple[str, List[int]]]:
        """(x, node indices in order) of a GELU subgraph around the Erf node ``i``."""
        producers = self.producers
        k = producers.get(erf.inputs[0])
        if k is None or k in skip or self._only_reader(erf.inputs[0]) != i:
            return None
        scaled = self.nodes[k]
        x = next((n for n in scaled.inputs if n not in self.consts), None)
        c = self._scalar_input(scaled, x) if x else None
        if c is None or not ((scaled.op_type == "Div" and scaled.inputs[0] == x
                              and abs(c - math.sqrt(2)) < 1e-6)
                             or (scaled.op_type == "Mul" and abs(c - math.sqrt(0.5)) < 1e-6)):
            return None
        add = self._single_reader(erf.outputs[0], "Add", skip)
        if add is None or self._scalar_input(self.nodes[add], erf.outputs[0]) != 1.0:
            return None
        m1 = self._single_reader(self.nodes[add].outputs[0], "Mul", skip)
        if m1 is None:
            return None
        other = [n for n in self.nodes[m1].inputs if n != self.nodes[add].outputs[0]]
        if other == [x]:  # x * (1 + erf) first, then * 0.5
            m2 = self._single_reader(self.nodes[m1].outputs[0], "Mul", skip)
            if m2 is None or self._scalar_input(self.nodes[m2], self.nodes[m1].outputs[0]) != 0.5:
                return None
            return x, [k, i, add, m1, m2]
        # (x * 0.5) * (1 + erf): the half is made from x by a node of its own
        h = producers.get(other[0]) if len(other) == 1 else None
        if (h is None or h in skip or self.nodes[h].op_type != "Mul"
                or self._only_reader(other[0]) != m1 or x not in self.nodes[h].inputs
                or self._scalar_input(self.nodes[h], x) != 0.5):
            return None
        return x, [k, h, i, add, m1]

    @staticmethod
    def _unary_step(x: str, out: str, kind: str, fn: Callable[[np.ndarray], np.ndarray],
                    nodes: List[Node]) -> _Step:
        what = f"{kind} ({' -> '.join(_label(n) for n in nodes)})"
        return _Step(lambda v: [fn(v)], [x], [out], what)

    def _residuals_and_chains(self, items: List[Tuple[int, Any]]) -> List[_Step]:
        units = {u.output: u for _, u in items if isinstance(u, _ConvUnit)}
        by_position = dict(items)
        replaced: Dict[int, _Step] = {}  # Add position -> the step that computes it
        dropped: set = set()
        for pos, item in items:
            if not isinstance(item, _Step) or not item.what.startswith("Add"):
                continue
            node = self.nodes[pos]
            if len(node.inputs) != 2 or node.attrs.get("broadcast", 0):
                continue  # (opset < 7's broadcast=1 aligns B at ``axis``: the plain Add op)
            for k in (0, 1):
                unit, other = units.get(node.inputs[k]), node.inputs[1 - k]
                if (unit is None or unit.act is not None or unit.pre_pad is not None
                        or self._only_reader(unit.output) != pos or unit.position in dropped):
                    continue
                block = self._blocked_residual(unit, other, units)
                if block is not None:  # x + convs(x), convs 1x1 / depthwise: channel-blocked
                    replaced[pos] = self._module_step(block, other, node.outputs[0], None,
                                                      unit.what + " ... + Add")
                    dropped.update(self._chain_back(unit, other, units)[1])
                    break
                out, act = node.outputs[0], None
                j = self._only_reader(out)
                if j is not None and self.nodes[j].op_type == "Relu":
                    act, out = pve.nn.ReLU(), self.nodes[j].outputs[0]
                    dropped.add(j)
                replaced[pos] = self._residual_step(unit, other, act, out)
                dropped.add(unit.position)
                break
        steps: List[_Step] = []
        chained: set = set()
        for pos, item in items:
            if pos in dropped or pos in chained:
                continue
            if pos in replaced:
                steps.append(replaced[pos])
            elif isinstance(item, _ConvUnit):
                chain = [item]
                while True:  # follow convolutions that alone read the previous one
                    j = self._only_reader(chain[-1].output)
                    nxt = by_position.get(j) if j is not None else None
                    if not isinstance(nxt, _ConvUnit) or j in dropped or nxt.pre_pad is not None:
                        break
                    chain.append(nxt)
                    chained.add(j)
                steps.append(self._module_step(self._sequential(chain), chain[0].source,
                                               chain[-1].output, chain[0].pre_pad, chain[0].what))
            else:
                steps.append(item)
        merged = self._merge_module_steps(steps)
        for k, step in enumerate(merged):  # expand -> depthwise -> project: one fused op
            if type(step.module) is pve.nn.Sequential:
                children = _inverted_residuals(_children(step.module))
                if len(children) != len(step.module._modules):
                    merged[k] = self._module_step(pve.nn.Sequential(*children).eval(),
                                                  step.inputs[0], step.outputs[0], step.pre_pad,
                                                  step.what)
        return merged

    def _chain_back(self, last: _ConvUnit, source: str,
                    units: Dict[str, _ConvUnit]) -> Tuple[Optional[List[_ConvUnit]], List[int]]:
        """The convolutions from ``source`` to ``last``, each alone reading the one
        before (None when there is no such chain of at most 4)."""
        chain = [last]
        while chain[0].source != source and len(chain) < 4:
            prev = units.get(chain[0].source)
            if prev is None or self._only_reader(prev.output) != chain[0].position \
                    or prev.pre_pad is not None:
                return None, []
            chain.insert(0, prev)
        if chain[0].source != source:
            return None, []
        return chain, [u.position for u in chain]

    def _blocked_residual(self, last: _ConvUnit, source: str,
                          units: Dict[str, _ConvUnit]) -> Optional[pve.nn.Module]:
        chain, _ = self._chain_back(last, source, units)
        if chain is None:
            return None
        body = self._sequential(chain)
        block = _ConvBlock(body, residual=True)
        plan = block._blocked_plan()
        return block if plan is not None and blocked.worth_blocking(plan.units) else None

    @staticmethod
    def _sequential(chain: List[_ConvUnit]) -> pve.nn.Sequential:
        modules: List[pve.nn.Module] = []
        for u in chain:
            modules.append(u.conv)
            if u.act is not None:
                modules.append(u.act)
        return pve.nn.Sequential(*modules).eval()

    @staticmethod
    def _module_step(module: pve.nn.Module, source: str, output: str,
                     pre_pad: Optional[List[int]], what: str) -> _Step:
        def run(x: np.ndarray) -> List[Any]:
            if pre_pad is not None:
                x = _ops.pad_spatial(x, pre_pad, 0.0)
            return [module(pve.from_numpy(_ops.f32(x)))]  # (a Tensor: the fast paths want one)
        step = _Step(run, [source], [output], what)
        step.module, step.pre_pad = module, pre_pad
        return step

    def _merge_module_steps(self, steps: List[_Step]) -> List[_Step]:
        """Module steps that alone read each other's output run as one Sequential, so
        the channel-blocked layout spans them (MobileNetV2's whole feature stack)."""
        readers: Dict[str, int] = {}
        for step in steps:
            for name in step.inputs:
                readers[name] = readers.get(name, 0) + 1
        merged: List[_Step] = []
        made_by: Dict[str, int] = {}  # value -> index in merged of the module step making it
        for step in steps:
            src = step.inputs[0] if step.module is not None else None
            k = made_by.get(src) if src is not None else None
            if (k is not None and step.pre_pad is None and readers.get(src) == 1
                    and src not in self.graph_outputs):
                prev = merged[k]
                children = _children(prev.module) + _children(step.module)
                merged[k] = self._module_step(pve.nn.Sequential(*children).eval(), prev.inputs[0],
                                              step.outputs[0], prev.pre_pad, prev.what)
                del made_by[src]
                made_by[step.outputs[0]] = k
                continue
            merged.append(step)
            if step.module is not None:
                made_by[step.outputs[0]] = len(merged) - 1
        return merged

    @staticmethod
    def _residual_step(unit: _ConvUnit, identity: str, act: Optional[pve.nn.Module],
                       out: str) -> _Step:
        conv = unit.conv

        def run(x: np.ndarray, skip: np.ndarray) -> List[Any]:
            x = _ops.f32(x)
            if skip.dtype == np.float32 and skip.shape == _conv_output_shape(conv, x.shape):
                return [fusion.conv_bn_add_act(conv, None, x, _ops.f32(skip), act)]
            y = _ops.arr(fusion.conv_bn_act(conv, None, None, x)) + skip  # (broadcasting)
            return [np.maximum(y, 0).astype(y.dtype) if act is not None else y]
        return _Step(run, [unit.source, identity], [out], unit.what + " + Add")

    def _linear_step(self, node: Node) -> Optional[_Step]:
        """Gemm (alpha = beta = 1, no transA) or 2-D MatMul with a constant float32 B as
        ``F.linear`` with the weight laid out (out, in) once, at load."""
        b = self._const_input(node, 1)
        c = self._const_input(node, 2) if node.op_type == "Gemm" else None
        if b is None or b.dtype != np.float32 or b.ndim != 2:
            return None
        if node.op_type == "Gemm":
            a = node.attrs
            if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                return None
            if len(node.inputs) > 2 and node.inputs[2] and (
                    c is None or c.dtype != np.float32 or c.shape != (b.shape[0 if a.get("transB", 0) else 1],)):
                return None
            weight = b if a.get("transB", 0) else b.T
        else:
            weight = b.T
        weight = np.ascontiguousarray(weight, dtype=np.float32)
        bias = None if c is None else np.ascontiguousarray(c)
        gemm = node.op_type == "Gemm"

        def run(x: np.ndarray) -> List[Any]:
            if gemm and x.ndim != 2:
                raise _ops.OnnxOpError(f"Gemm: A must be 2-D, got shape {x.shape}")
            if x.dtype != np.float32:
                return [np.matmul(x, weight.T)]
            return [F.linear(x, weight, bias)]  # (any leading dims: one GEMM over all rows)
        return _Step(run, [node.inputs[0]], [node.outputs[0]], _label(node))


# ----------------------------------------------------------------- the session
class InferenceSession:
    """Runs an ONNX model: ``InferenceSession(path_or_bytes).run(output_names, input_feed)``.

    ``path_or_bytes``: a file path or the serialized model. ``providers``: only
    ``"CPUExecutionProvider"`` exists here; others are ignored with a warning,
    as onnxruntime does when a provider is not available."""

    def __init__(self, path_or_bytes: Union[str, bytes, bytearray, memoryview, "os.PathLike[str]"],
                 sess_options: Optional[SessionOptions] = None, providers: Optional[Sequence[Any]] = None,
                 provider_options: Optional[Sequence[Dict[str, Any]]] = None, **kwargs: Any) -> None:
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            data, where, base_dir = bytes(path_or_bytes), "the model bytes", None
        elif isinstance(path_or_bytes, (str, os.PathLike)):
            where = os.fspath(path_or_bytes)
            if not os.path.isfile(where):
                raise FileNotFoundError(f"pve.onnx.InferenceSession: no model file at {where!r}")
            with open(where, "rb") as fh:
                data = fh.read()
            base_dir = os.path.dirname(os.path.abspath(where))  # (where external data lies)
        else:
            raise TypeError("pve.onnx.InferenceSession: expected a path or the model's bytes, got "
                            f"{type(path_or_bytes).__name__}")
        for p in providers or []:
            name = p[0] if isinstance(p, (tuple, list)) else p
            if name != "CPUExecutionProvider":
                warnings.warn(f"pve.onnx: provider {name!r} is not available; running on "
                              "CPUExecutionProvider", UserWarning, stacklevel=2)
        self._options = sess_options or SessionOptions()
        if self._options.intra_op_num_threads and self._options.intra_op_num_threads > 0:
            pve.set_num_threads(int(self._options.intra_op_num_threads))
        try:
            self._model = read_model(data, base_dir)
        except ValueError as e:
            raise ValueError(f"pve.onnx.InferenceSession: {where} is not a valid ONNX model: {e}") \
                from None
        graph = self._model.graph
        self._plan = _Plan(self._model)
        self._steps = self._plan.steps
        # inputs with an initializer are not model inputs; from IR version 4 on they are
        # overridable initializers: a feed may replace them (onnxruntime's rule)
        required = [vi for vi in graph.inputs if vi.name not in graph.initializers]
        overridable = ([vi for vi in graph.inputs if vi.name in graph.initializers]
                       if self._model.ir_version >= 4 else [])
        self._inputs = [_node_arg(vi) for vi in required]
        self._overridable = [_node_arg(vi) for vi in overridable]
        self._override_plan: Optional[_Plan] = None  # built on the first run overriding one
        self._input_info = {vi.name: vi for vi in required + overridable}
        self._outputs = [_node_arg(vi) for vi in graph.outputs]
        self._output_names = {o.name for o in self._outputs}

    # -------------------------------------------------------------- onnxruntime's API
    def get_inputs(self) -> List[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> List[NodeArg]:
        return list(self._outputs)

    def get_overridable_initializers(self) -> List[NodeArg]:
        return list(self._overridable)

    def get_providers(self) -> List[str]:
        return ["CPUExecutionProvider"]

    def get_provider_options(self) -> Dict[str, Dict[str, str]]:
        return {"CPUExecutionProvider": {}}

    def get_session_options(self) -> SessionOptions:
        return self._options

    def get_modelmeta(self) -> ModelMetadata:
        return ModelMetadata(self._model)

    def run(self, output_names: Optional[Iterable[str]], input_feed: Dict[str, Any],
            run_options: Any = None) -> List[Any]:
        """The requested outputs (all when ``output_names`` is None or empty): numpy arrays,
        lists of arrays for sequences, None for an empty optional (as onnxruntime)."""
        if isinstance(output_names, (str, bytes)):
            raise TypeError("pve.onnx.InferenceSession.run: output_names must be a list of names "
                            f"or None, got {type(output_names).__name__}")
        known = self._output_names
        names = [o.name for o in self._outputs] if not output_names else list(output_names)
        for name in names:
            if name not in known:
                raise ValueError(f"pve.onnx.InferenceSession.run: invalid output name {name!r} "
                                 f"(outputs: {sorted(known)})")
        fed = self._check_feed(input_feed)
        plan = self._plan
        if any(a.name in fed for a in self._overridable):
            if self._override_plan is None:
                self._override_plan = _Plan(self._model, [a.name for a in self._overridable])
            plan = self._override_plan
        values: Dict[str, Any] = {n: plan.consts[n] for n in plan.consts_read}
        values.update((n, v) for n, v in plan.defaults.items() if n not in fed)
        values.update(fed)
        # (NaN and inf propagate without warnings, as in onnxruntime)
        with pve.no_grad(), np.errstate(all="ignore"):
            plan.execute(values, known)
        # never hand out the caller's input, a weight or another output's memory
        # (Identity, Reshape, Flatten, ... are views; sequences hold their inputs)
        shared = _arrays(list(fed.values()) + list(plan.defaults.values())
                         + [plan.consts[n] for n in plan.consts_read])
        result: List[Any] = []
        for name in names:
            value = values[name] if name in values else plan.consts[name]
            if name in plan.consts or name in plan.defaults:
                value = np.array(value)
            value = _owned(value, shared)
            shared += _arrays([value])
            result.append(value)
        return result

    def _check_feed(self, feed: Dict[str, Any]) -> Dict[str, Any]:
        """The fed values (model inputs and overridden initializers), checked and converted;
        an optional input left out is fed as empty (None), as onnxruntime does."""
        if not isinstance(feed, dict):
            raise TypeError("pve.onnx.InferenceSession.run: input_feed must be a dict of name -> array, "
                            f"got {type(feed).__name__}")
        for name in feed:
            if name not in self._input_info:
                raise ValueError(f"pve.onnx.InferenceSession.run: invalid input name {name!r} "
                                 f"(inputs: {sorted(a.name for a in self._inputs)})")
        missing = [a.name for a in self._inputs if a.name not in feed
                   and self._input_info[a.name].kind != "optional"]
        if missing:
            raise ValueError(f"pve.onnx.InferenceSession.run: required inputs {missing} are missing "
                             "from the input feed")
        values: Dict[str, Any] = {a.name: None for a in self._inputs if a.name not in feed}
        for name, value in feed.items():
            values[name] = _fed_value(self._input_info[name], value, f"input {name!r}")
        return values


_RUN = "pve.onnx.InferenceSession.run"


def _fed_value(info: ValueInfo, value: Any, what: str) -> Any:
    """A fed value checked against the input's type: an optional takes None (empty) or
    its element, a sequence a list (or tuple) of arrays of its element type."""
    if info.kind == "optional":
        return None if value is None else _fed_value(info.element or ValueInfo(""), value, what)
    if info.kind == "sequence":
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{_RUN}: {what} must be a list of arrays ({_type_name(info)}), "
                            f"got {type(value).__name__}")
        element = info.element or ValueInfo("")
        if element.kind != "tensor":
            raise NotImplementedError(f"{_RUN}: {what} is a {_type_name(info)}: pve.onnx runs "
                                      "sequences of tensors only")
        return [_fed_tensor(element, v, f"element {k} of {what}", check_shape=False)
                for k, v in enumerate(value)]
    if info.kind != "tensor":
        raise NotImplementedError(f"{_RUN}: {what} is a {_type_name(info)}, a type pve.onnx "
                                  "does not run")
    if value is None:
        raise TypeError(f"{_RUN}: {what} must be {_type_name(info)}, got None")
    return _fed_tensor(info, value, what)


def _fed_tensor(info: ValueInfo, value: Any, what: str, check_shape: bool = True) -> np.ndarray:
    dtype = DTYPES.get(info.elem_type)
    # an array keeps its type (a wrong one is an error, as in onnxruntime); a list
    # or a Python number takes the input's type, as onnxruntime converts it
    value = np.asarray(value, dtype=dtype if not isinstance(value, np.ndarray) else None)
    if dtype is not None and value.dtype != dtype:
        raise TypeError(f"{_RUN}: {what} must be {_type_name(info)}, got {value.dtype} "
                        "(convert it with .astype)")
    # (onnxruntime checks the dimensions of tensors, not of a sequence's elements)
    if check_shape and info.shape is not None:
        bad = len(info.shape) != value.ndim or any(
            isinstance(d, int) and d != g for d, g in zip(info.shape, value.shape))
        if bad:
            raise ValueError(f"{_RUN}: {what} must have shape {info.shape}, got "
                             f"{list(value.shape)}")
    return _ops.contiguous(value)


def _arrays(values: List[Any]) -> List[np.ndarray]:
    """The arrays among ``values`` and in the sequences among them."""
    out: List[np.ndarray] = []
    for v in values:
        if isinstance(v, list):
            out += _arrays(v)
        elif isinstance(v, np.ndarray):
            out.append(v)
    return out


def _owned(value: Any, shared: List[np.ndarray]) -> Any:
    """``value`` (an array, a sequence or None) with every array that shares memory with
    one of ``shared`` (or an earlier element of the same sequence) copied."""
    if isinstance(value, list):
        out: List[Any] = []
        for v in value:
            out.append(_owned(v, shared + out))
        return out
    if isinstance(value, np.ndarray) and any(np.may_share_memory(value, s) for s in shared):
        return np.array(value)
    return value


def _type_name(vi: Optional[ValueInfo]) -> str:
    """onnxruntime's name of a type: tensor(float), seq(tensor(int64)),
    optional(seq(tensor(float))), map(int64,tensor(float)), ..."""
    if vi is None:
        return "tensor(float)"
    if vi.kind == "sequence":
        return f"seq({_type_name(vi.element)})"
    if vi.kind == "optional":
        return f"optional({_type_name(vi.element)})"
    if vi.kind == "map":
        key = TYPE_NAMES.get(vi.elem_type, "tensor(int64)")[len("tensor("):-1]
        return f"map({key},{_type_name(vi.element)})"
    if vi.kind == "sparse_tensor":
        return "sparse_" + TYPE_NAMES.get(vi.elem_type, "tensor(float)")
    if vi.kind == "opaque":
        return "opaque"
    return TYPE_NAMES.get(vi.elem_type, "tensor(float)")


def _shape(vi: Optional[ValueInfo]) -> List[Union[int, str, None]]:
    """onnxruntime's NodeArg.shape: a tensor's (an optional tensor's) dimensions; a tensor
    type without a shape and a sequence read as []."""
    if vi is None:
        return []
    if vi.kind == "optional":
        return _shape(vi.element)
    if vi.kind in ("tensor", "sparse_tensor") and vi.shape is not None:
        return list(vi.shape)
    return []


def _node_arg(vi: ValueInfo) -> NodeArg:
    """onnxruntime's NodeArg of a graph input or output."""
    return NodeArg(vi.name, _type_name(vi), _shape(vi))


class _Plan:
    """The steps of a model (or of one of its subgraphs: ``graph``, with the enclosing
    graphs' constants ``outer_consts``) and what they read besides the feed.
    ``variable``: initializers that a run overrides, kept out of constant folding (their
    file values are ``defaults``)."""

    def __init__(self, model: Model, variable: Sequence[str] = (), graph: Optional[Graph] = None,
                 outer_consts: Optional[Dict[str, np.ndarray]] = None) -> None:
        with pve.no_grad(), np.errstate(all="ignore"):  # (constant folding, as run)
            builder = _Builder(model, variable, graph, outer_consts)
            self.steps = builder.build()
        self.graph = builder.graph
        self.consts = builder.consts
        self.defaults = {n: np.array(model.graph.initializers[n]) for n in variable}
        # values no later step reads are dropped as the run goes (memory of large batches)
        self.last_use: Dict[str, int] = {}
        for k, step in enumerate(self.steps):
            for name in step.inputs:
                self.last_use[name] = k
        self.consts_read = [n for n in self.consts if n in self.last_use]
        self.input_names = [vi.name for vi in self.graph.inputs]
        self.output_names = [vi.name for vi in self.graph.outputs]

    def execute(self, values: Dict[str, Any], keep: Iterable[str]) -> None:
        """Runs the steps on ``values`` (name -> value: the inputs, the constants read),
        adding what they make and dropping what no later step reads unless in ``keep``."""
        last_use = self.last_use
        for k, step in enumerate(self.steps):
            outs = _call(step, [values[n] if n else None for n in step.inputs])
            for name, value in zip(step.outputs, outs):
                if name:
                    values[name] = _as_value(value)
            for n in step.inputs:  # free what nothing reads any more
                if last_use.get(n) == k and n not in keep:
                    values.pop(n, None)


class _Subgraph:
    """A subgraph's plan bound to the values of enclosing graphs that it reads: called with
    its formal inputs (in order) it returns its outputs (arrays, sequences or None).
    ``inputs`` / ``outputs``: the subgraph's declared inputs and outputs (ValueInfo)."""

    def __init__(self, plan: _Plan, outer: Dict[str, Any]) -> None:
        self.plan = plan
        self.outer = outer
        self.inputs: List[ValueInfo] = plan.graph.inputs
        self.outputs: List[ValueInfo] = plan.graph.outputs

    def __call__(self, *args: Any) -> List[Any]:
        plan = self.plan
        if len(args) != len(plan.input_names):
            raise ValueError(f"subgraph {plan.graph.name!r} has {len(plan.input_names)} inputs, "
                             f"given {len(args)}")
        values = dict(self.outer)
        values.update((n, plan.consts[n]) for n in plan.consts_read)
        values.update(zip(plan.input_names, args))
        plan.execute(values, plan.output_names)
        # (a constant output is copied: the caller may hand it out or carry it on)
        return [np.array(plan.consts[n]) if n in plan.consts else values[n]
                for n in plan.output_names]
