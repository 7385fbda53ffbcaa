"""pve.onnx.export: run a pve model once on an example input and write what it did as ONNX.

    pve.onnx.export(model.eval(), images, "model.onnx",
                    dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})

The model runs once, in its current train/eval mode, with autograd *recording* (the example
input requires grad): the package's own switch for its inference fast paths (fused
Conv+BN+ReLU, blocked sequences, in-place residual adds run only under ``no_grad``), so
every layer runs as written and each op is visible. These seams are wrapped, for the
exporting thread only, and restored in a ``finally``:

* ``autograd.Function.apply``, which every differentiable op passes through (conv, linear,
  batch norm, tensor arithmetic, reshape, mean, cat, ...): each call becomes ONNX nodes by
  the converter registered for its Function class;
* the functionals whose Function-level form loses what ONNX needs (activations, which may
  run in place; softmax's dim; pooling, which reshapes to planes; 1-D convolutions, which
  run as 2-D ones over rows; interpolate; pad; dropout; embedding; attention, whose
  masks and head reshapes numpy handles) are converted from their torch-style arguments,
  the ops inside them unrecorded;
* ``Module.__call__`` keeps the module path, which names the nodes (``/layer1/0/conv1/Conv``);
* the ``forward`` of the recurrent layers and cells converts each as one unit: ONNX's
  RNN / GRU / LSTM operators are whole recurrences, one node per layer;
* nn/attention.py's ``_canonical_mask``, which turns a bool mask into -inf / 0 with numpy,
  becomes a Where node, so that a mask fed to the graph counts.

Values are keyed by the identity of the Tensors holding them (kept alive meanwhile) and
their ``_version``, so a tensor changed in place by an untraced op is an error, not a stale
graph. Example inputs are float32, or int64 (Embedding's indices) and bool (masks).
A tensor the trace did not produce must be a parameter or buffer (an initializer
named by its state_dict key), a scalar operand or a free Parameter; anything else, and any
op without a converter, raises NotImplementedError naming it. As in torch's tracer, Python
values computed from data (``.item()``) are baked in. Afterwards a BatchNormalization right
after a Conv is folded into it (``do_constant_folding``), unused nodes are dropped, and
``_proto`` serializes the graph (no ``onnx`` package needed). Reshape targets, Expand
shapes and Resize sizes keep the batch dim free; other sizes are the example's.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import threading
from collections import Counter
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from pyvision_engine import _ops
from pyvision_engine._version import __version__
from pyvision_engine.autograd import Function, enable_grad
from pyvision_engine.io import atomic_write_bytes
from pyvision_engine.nn import (_f_activation, _f_distance, _f_embedding, _f_fold, _f_grid,
                                _f_norm, _f_pooling, _f_shape)
from pyvision_engine.nn import conv_transpose as _conv_transpose_module
from pyvision_engine.nn import functional as F
from pyvision_engine.nn import fusion as _fusion
from pyvision_engine.nn import sparse as _sparse_module
from pyvision_engine.nn._f_common import pair
from pyvision_engine.nn.activation import RReLU
from pyvision_engine.nn.dropout import Dropout, _DropoutNd
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.normalization import _BatchNorm as _BatchNormLayer
from pyvision_engine.onnx._ops import fold_batch_norm
from pyvision_engine.onnx._proto import DTYPE_CODES, Graph, Model, Node, ValueInfo, write_model
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["export", "SUPPORTED"]

# ONNX IR version per opset (one that carries the opset and that onnxruntime reads).
_IR_VERSIONS = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 9, 19: 9, 20: 10, 21: 10}

SUPPORTED = (
    "Conv2d (any stride/padding/dilation/groups/padding_mode but circular below opset 19), "
    "Linear, BatchNorm1d/2d (eval), GroupNorm, LayerNorm, ReLU, ReLU6, LeakyReLU, "
    "PReLU, Sigmoid, Tanh, GELU, SiLU, Hardswish, Hardsigmoid, Softmax, LogSoftmax, MaxPool2d, "
    "AvgPool2d, AdaptiveAvgPool2d/AdaptiveMaxPool2d (1x1 or even windows), Flatten, Identity, "
    "Dropout (eval), ZeroPad2d and F.pad, Upsample/interpolate (nearest, bilinear, "
    "bicubic, area as adaptive pooling; antialias from opset 18), cat, "
    "+ - * / ** with tensors and scalars, neg, abs, exp, log, sqrt, clamp, max/min of two "
    "tensors, matmul, reshape/view/flatten/squeeze/unsqueeze, permute/transpose, expand, sum, "
    "mean, max()/min() of all elements, ConvTranspose2d, ELU, SELU, CELU, Hardtanh, Threshold, "
    "Softplus, Mish, Softsign, Tanhshrink, LogSigmoid, PixelShuffle/PixelUnshuffle, "
    "ChannelShuffle, InstanceNorm1d/2d (eval), LocalResponseNorm (odd sizes), Conv1d, "
    "ConvTranspose1d, MaxPool1d, AvgPool1d, AdaptiveAvgPool1d/AdaptiveMaxPool1d (1 or even "
    "windows), Dropout1d/Dropout2d (eval), ZeroPad1d/ConstantPad1d/ReflectionPad1d/"
    "ReplicationPad1d/CircularPad1d (circular from opset 19), Hardshrink, Softshrink, RReLU "
    "(eval), GLU, LPPool2d, MaxPool2d(return_indices=True) with MaxUnpool2d, CosineSimilarity, "
    "PairwiseDistance, normalize, Unfold, Fold (opset >= 18), grid_sample (opset >= 16), "
    "affine_grid (opset >= 20), RNN (tanh), GRU and LSTM (no proj_size; padded, not packed "
    "sequences) and RNNCell/GRUCell/LSTMCell as ONNX RNN/GRU/LSTM, Embedding, "
    "scaled_dot_product_attention, MultiheadAttention, TransformerEncoderLayer, "
    "TransformerEncoder")

_state = threading.local()  # .tracer: the _Tracer of an export running in this thread
_install_lock = threading.Lock()  # one export at a time installs the seams


def _active() -> Optional["_Tracer"]:
    return getattr(_state, "tracer", None)


def _unsupported(what: str, hint: str = "") -> NotImplementedError:
    return NotImplementedError(f"pve.onnx.export: {what} cannot be exported{hint}. "
                               f"Supported: {SUPPORTED}.")


# --------------------------------------------------------------------------- graph state
class _Tracer:
    """The graph being built and the ONNX name of every traced value."""

    def __init__(self, model: Module, opset: int, reserved: Sequence[str]) -> None:
        self.opset = opset
        self.nodes: List[Node] = []
        self.initializers: Dict[str, np.ndarray] = {}
        self.scope: List[str] = []
        self.depth = 0  # > 0 inside a converted functional: its inner ops are not recorded
        self._values: Dict[int, Tuple[Tensor, str, int]] = {}  # id -> (tensor, name, _version)
        self._by_array: Dict[int, Tensor] = {}  # id(array) -> the latest tensor bound with it
        self._taken: Dict[str, int] = {name: 1 for name in reserved}
        self._consts: Dict[Tuple[str, Tuple[int, ...], bytes], str] = {}  # small ones, shared
        # torch's per-plane max_pool2d indices -> (MaxPool's flat Indices output, plane size)
        self.pool_indices: Dict[str, Tuple[str, Tuple[int, ...]]] = {}
        named = list(model.named_parameters()) + list(model.named_buffers())
        self.state_names = {id(t): n for n, t in named}
        self.state_arrays = {id(t._data): t for _, t in named}  # (batch norm passes arrays)
        self.module_paths = {id(m): n for n, m in model.named_modules()}
        self.module_names = {i: n.rsplit(".", 1)[-1] for i, n in self.module_paths.items()}

    def _unique(self, name: str) -> str:
        n = self._taken.get(name, 0)
        self._taken[name] = n + 1
        return name if n == 0 else f"{name}_{n}"

    def node(self, op: str, inputs: Sequence[str], **attrs: Any) -> str:
        return self.node_outputs(op, inputs, 1, **attrs)[0]

    def node_outputs(self, op: str, inputs: Sequence[str], count: int, **attrs: Any) -> List[str]:
        """A node with ``count`` outputs (Split, MaxPool with Indices)."""
        name = self._unique("/" + "/".join([s for s in self.scope if s] + [op]))
        outputs = [f"{name}_output_{i}" for i in range(count)]
        self.nodes.append(Node(op, list(inputs), outputs, attrs, name=name))
        return outputs

    def initializer(self, name: str, value: np.ndarray) -> str:
        name = self._unique(name)
        self.initializers[name] = value
        return name

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        array = np.array(value, dtype=dtype)
        if array.size > 16:
            return self.initializer("/Constant", array)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            self._consts[key] = self.initializer("/Constant", array)
        return self._consts[key]

    def bind(self, t: Tensor, name: str) -> None:
        self._values[id(t)] = (t, name, t._version)
        self._by_array[id(t._data)] = t

    def name_of(self, t: Tensor) -> str:
        entry = self._values.get(id(t))
        if entry is not None:
            if t._version != entry[2]:
                raise _unsupported(f"a tensor of shape {tuple(t.shape)} changed in place by an "
                                   "operation the exporter does not trace")
            return entry[1]
        state_name = self.state_names.get(id(t))
        if state_name is not None:
            name = self.initializer(state_name, np.array(t._data))
        elif t.ndim == 0:  # a scalar operand
            name = self.const(t._data, t.dtype)
        elif t._node is None and t.requires_grad:  # a Parameter the model does not register
            name = self.initializer("/Constant", np.array(t._data))
        else:
            raise _unsupported(
                f"a tensor of shape {tuple(t.shape)} that is neither a traced value nor a "
                "parameter or buffer of the model", " (an op the exporter does not trace made "
                "it: a comparison, detach(), a numpy round trip, a no_grad() block in forward; "
                "register constants with register_buffer)")
        self.bind(t, name)
        return name

    def state_array(self, array: np.ndarray) -> str:
        """A tensor passed as its numpy array (batch norm's running statistics)."""
        owner = self.state_arrays.get(id(array), self._by_array.get(id(array)))
        return self.name_of(owner) if owner is not None else self.const(array)


class _Op(NamedTuple):
    """One traced call as its converter sees it."""

    args: Sequence[Any]            # positional arguments (a functional: just its input)
    names: List[Optional[str]]     # the ONNX name of each Tensor argument, None for others
    kw: Dict[str, Any]             # keyword arguments (a functional: all of them, by name)
    out: Tensor
    fname: str = ""                # the functional's name


Converter = Callable[[_Tracer, _Op], str]  # returns the ONNX name of op.out


# --------------------------------------------------------------------------- node recipes
def _clip(tr: _Tracer, x: str, lo: Optional[float], hi: Optional[float]) -> str:
    return tr.node("Clip", [x] + ["" if v is None else tr.const(v) for v in (lo, hi)])


def _activation(tr: _Tracer, kind: str, x: str, alpha: float = 0.0) -> str:
    if kind in ("relu", "sigmoid", "tanh"):
        return tr.node(kind.capitalize(), [x])
    if kind == "relu6":
        return _clip(tr, x, 0.0, 6.0)
    if kind == "leaky_relu":
        return tr.node("LeakyRelu", [x], alpha=float(alpha))
    if kind == "silu":
        return tr.node("Mul", [x, tr.node("Sigmoid", [x])])
    if kind == "hardsigmoid" or (kind == "hardswish" and tr.opset < 14):
        gate = tr.node("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
        return gate if kind == "hardsigmoid" else tr.node("Mul", [x, gate])
    if kind == "hardswish":
        return tr.node("HardSwish", [x])
    if kind == "gelu":  # x/2 * (1 + erf(x / sqrt 2))
        core = tr.node("Erf", [tr.node("Div", [x, tr.const(math.sqrt(2.0))])])
    else:  # gelu_tanh: x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
        cube = tr.node("Mul", [x, tr.node("Mul", [x, x])])
        inner = tr.node("Add", [x, tr.node("Mul", [cube, tr.const(0.044715)])])
        core = tr.node("Tanh", [tr.node("Mul", [inner, tr.const(math.sqrt(2.0 / math.pi))])])
    half_x = tr.node("Mul", [x, tr.const(0.5)])
    return tr.node("Mul", [half_x, tr.node("Add", [core, tr.const(1.0)])])


def _affine(tr: _Tracer, name: Optional[str], shape: Tuple[int, ...], fill: float) -> str:
    """A normalization's scale or bias, or the neutral constant standing in for a missing one."""
    return name if name is not None else tr.const(np.full(shape, fill, np.float32))


def _per_channel(tr: _Tracer, name: str, ndim: int) -> str:
    """A (C,) tensor as (C, 1, ...), broadcasting over dim 1 of an ndim-D input."""
    return tr.node("Reshape", [name, tr.const([-1] + [1] * (ndim - 2), np.int64)])


# --------------------------------------------------------------------------- Function converters
def _elementwise(onnx_op: str) -> Converter:
    return lambda tr, op: tr.node(onnx_op, [n for n in op.names if n is not None])


def _reduce_node(tr: _Tracer, onnx_op: str, x: str, axes: Sequence[int], keepdims: int) -> str:
    if onnx_op != "ReduceSum" and tr.opset < 18:  # (axes: an input from 13 / 18)
        return tr.node(onnx_op, [x], axes=list(axes), keepdims=keepdims)
    return tr.node(onnx_op, [x, tr.const(list(axes), np.int64)], keepdims=keepdims)


def _reduce(onnx_op: str) -> Converter:
    def convert(tr: _Tracer, op: _Op) -> str:
        dims, keepdims = op.args[1], int(op.args[2])
        axes = list(range(op.args[0].ndim)) if dims is None else [int(d) for d in dims]
        return _reduce_node(tr, onnx_op, op.names[0], axes, keepdims)
    return convert


def _reshape(tr: _Tracer, op: _Op) -> str:
    """Unchanged leading dims become 0 (copy from the input) and a single remaining dim -1,
    so the batch size stays free; (N, ...) -> (N, rest) is ONNX's Flatten(axis=1)."""
    src, dst = tuple(op.args[0].shape), tuple(op.out.shape)
    if len(src) > 2 and len(dst) == 2 and src[0] == dst[0]:
        return tr.node("Flatten", [op.names[0]], axis=1)
    keep = 0
    while keep < min(len(src), len(dst)) and src[keep] == dst[keep]:
        keep += 1
    rest = list(dst[keep:])
    target = [0] * keep + ([-1] if len(rest) == 1 else rest)
    return tr.node("Reshape", [op.names[0], tr.const(target, np.int64)])


def _expand(tr: _Tracer, op: _Op) -> str:
    """Expand to the output shape with 1 wherever the input keeps its size (ONNX Expand
    broadcasts both ways), so a batch dim that is not expanded stays free."""
    src, dst = tuple(op.args[0].shape), tuple(op.out.shape)
    lead = len(dst) - len(src)
    target = [n if i < lead or src[i - lead] != n else 1 for i, n in enumerate(dst)]
    return tr.node("Expand", [op.names[0], tr.const(target, np.int64)])


def _conv(tr: _Tracer, op: _Op) -> str:
    geo = op.kw["geometry"]
    top, bottom, left, right = geo.pads
    y = tr.node("Conv", [n for n in op.names[:3] if n is not None],
                kernel_shape=list(op.args[1].shape[2:]), strides=list(geo.stride),
                pads=[top, left, bottom, right], dilations=list(geo.dilation), group=geo.groups)
    if not op.kw.get("relu"):  # (a Conv2d from fuse_conv_bn_eval(..., relu=True) has one)
        return y
    cap = op.kw.get("relu_max", math.inf)
    return tr.node("Relu", [y]) if cap == math.inf else _clip(tr, y, 0.0, cap)


def _linear(tr: _Tracer, op: _Op) -> str:
    x, weight, bias = op.names[:3]
    if op.args[0].ndim == 2:
        return tr.node("Gemm", [x, weight] + ([bias] if bias else []), transB=1)
    return _matmul_linear(tr, x, weight, bias)


def _matmul_linear(tr: _Tracer, x: str, weight: str, bias: Optional[str]) -> str:
    """x W^T + b for an input of any rank (Gemm takes only 2-D ones)."""
    y = tr.node("MatMul", [x, tr.node("Transpose", [weight], perm=[1, 0])])
    return tr.node("Add", [y, bias]) if bias else y


def _batch_norm(tr: _Tracer, op: _Op) -> str:
    # (batch statistics were refused before running); cap: a fused ReLU's clamp or None
    mean, var, _, _, eps, cap = op.args[3]
    c = (op.args[0].shape[1],)
    y = tr.node("BatchNormalization", [op.names[0], _affine(tr, op.names[1], c, 1.0),
                                       _affine(tr, op.names[2], c, 0.0), tr.state_array(mean),
                                       tr.state_array(var)], epsilon=float(eps))
    if cap is None:
        return y
    return tr.node("Relu", [y]) if cap == math.inf else _clip(tr, y, 0.0, cap)


def _group_norm(tr: _Tracer, op: _Op) -> str:
    """Group statistics as InstanceNormalization over (N, groups, -1), as torch exports it."""
    ndim, groups, eps = op.args[0].ndim, int(op.args[3]), float(op.args[4])
    if ndim > 2 and groups == op.args[0].shape[1]:  # (instance norm: no regrouping)
        c = (groups,)
        return tr.node("InstanceNormalization", [op.names[0], _affine(tr, op.names[1], c, 1.0),
                                                 _affine(tr, op.names[2], c, 0.0)], epsilon=eps)
    grouped = tr.node("Reshape", [op.names[0], tr.const([0, groups, -1], np.int64)])
    normed = tr.node("InstanceNormalization", [grouped, tr.const(np.ones(groups)),
                                               tr.const(np.zeros(groups))], epsilon=eps)
    y = tr.node("Reshape", [normed, tr.node("Shape", [op.names[0]])])
    if op.names[1] is not None:
        y = tr.node("Mul", [y, _per_channel(tr, op.names[1], ndim)])
    return tr.node("Add", [y, _per_channel(tr, op.names[2], ndim)]) if op.names[2] else y


def _layer_norm(tr: _Tracer, op: _Op) -> str:
    x, weight, length, eps = op.args[0], op.args[1], int(op.args[3]), float(op.args[4])
    if weight is not None:
        axis = x.ndim - weight.ndim
    else:  # the innermost dims holding `length` values (never the batch dim)
        axis = max(k for k in range(x.ndim + 1) if math.prod(x.shape[k:]) == length)
    if tr.opset < 17:  # (LayerNormalization came in opset 17)
        return _layer_norm_nodes(tr, op.names[0], list(range(axis, x.ndim)), eps,
                                 *op.names[1:3])
    shape = tuple(x.shape[axis:])
    return tr.node("LayerNormalization", [op.names[0], _affine(tr, op.names[1], shape, 1.0),
                                          _affine(tr, op.names[2], shape, 0.0)],
                   axis=axis, epsilon=eps)


def _layer_norm_nodes(tr: _Tracer, x: str, axes: List[int], eps: float,
                      weight: Optional[str], bias: Optional[str]) -> str:
    """(x - mean) / sqrt(var + eps) * weight + bias, the variance biased, as torch's."""
    centered = tr.node("Sub", [x, _reduce_node(tr, "ReduceMean", x, axes, 1)])
    var = _reduce_node(tr, "ReduceMean", tr.node("Mul", [centered, centered]), axes, 1)
    y = tr.node("Div", [centered, tr.node("Sqrt", [tr.node("Add", [var, tr.const(eps)])])])
    if weight is not None:
        y = tr.node("Mul", [y, weight])
    return tr.node("Add", [y, bias]) if bias is not None else y


def _clamp(tr: _Tracer, op: _Op) -> str:
    """Clip for number bounds; Max / Min for tensor bounds (Clip takes only scalars)."""
    (x, lo_name, hi_name), (lo, hi) = op.names[:3], op.args[1:3]
    if lo_name is None and hi_name is None:
        return _clip(tr, x, lo, hi)
    for name, value, onnx_op in ((lo_name, lo, "Max"), (hi_name, hi, "Min")):
        if value is not None:
            x = tr.node(onnx_op, [x, name if name is not None else tr.const(value)])
    return x


def _prelu(tr: _Tracer, op: _Op) -> str:
    slope = op.names[1]
    if op.args[1].numel() > 1:
        slope = _per_channel(tr, slope, op.args[0].ndim)
    return tr.node("PRelu", [op.names[0], slope])


def _conv_transpose(tr: _Tracer, op: _Op) -> str:
    geo = op.kw["geometry"]
    return _conv_transpose_nodes(tr, op.names[:3], op.args[0].shape[2:], op.out.shape[2:],
                                 op.args[1].shape[2:], geo.stride, geo.top_left, geo.dilation,
                                 geo.groups)


def _conv_transpose_nodes(tr: _Tracer, names: Sequence[Optional[str]], in_size: Sequence[int],
                          out_size: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                          pads: Sequence[int], dilation: Sequence[int], groups: int) -> str:
    """A 1-D or 2-D transposed convolution: torch's symmetric padding; output_padding is what
    the output has beyond the smallest size the input gives."""
    x, w, bias = names
    smallest = [(size - 1) * s - 2 * p + d * (k - 1) + 1 for size, s, p, d, k in zip(
        in_size, stride, pads, dilation, kernel)]
    extra = [int(o - m) for o, m in zip(out_size, smallest)]
    attrs = dict(kernel_shape=list(kernel), strides=list(stride), dilations=list(dilation),
                 group=int(groups))
    if all(e < s for e, s in zip(extra, stride)):
        return tr.node("ConvTranspose", [n for n in names if n is not None],
                       pads=list(pads) * 2, output_padding=extra, **attrs)
    # torch allows output padding below the dilation too, onnxruntime only below the stride.
    # Output padding gives back rows and columns the padding would crop at the end: crop
    # less there instead, and past the uncropped extent (no tap reaches) pad with zeros.
    ends = [max(p - e, 0) for p, e in zip(pads, extra)]
    beyond = [max(e - p, 0) for p, e in zip(pads, extra)]
    y = tr.node("ConvTranspose", [x, w], pads=list(pads) + ends, **attrs)
    if any(beyond):  # (no padding at the starts, nor on the batch and channel dims)
        y = tr.node("Pad", [y, tr.const([0] * (len(kernel) + 4) + beyond, np.int64)])
    return y if bias is None else tr.node("Add", [y, _per_channel(tr, bias, len(kernel) + 2)])


def _softplus_node(tr: _Tracer, x: str, beta: float, threshold: float) -> str:
    """torch's softplus: x where x * beta > threshold, else log(1 + exp(x * beta)) / beta."""
    xb = x if beta == 1.0 else tr.node("Mul", [x, tr.const(beta)])
    soft = tr.node("Softplus", [xb])
    if beta != 1.0:
        soft = tr.node("Div", [soft, tr.const(beta)])
    linear = tr.node("Greater", [xb, tr.const(threshold)])
    return tr.node("Where", [linear, x, soft])


def _pointwise(tr: _Tracer, op: _Op) -> str:
    """The element-wise activations of nn/_f_activation.py's _Pointwise, by their spec."""
    spec, params, x = op.args[1], op.args[2], op.names[0]
    kind = spec.__name__
    if kind == "_ThresholdSpec":  # x <= threshold ? value : x (NaN stays NaN)
        below = tr.node("LessOrEqual", [x, tr.const(params[0])])
        return tr.node("Where", [below, tr.const(params[1]), x])
    if kind == "_HardtanhSpec":
        return _clip(tr, x, params[0], params[1])
    if kind == "_EluSpec":  # x <= 0 ? neg * expm1(x * scale) : x * pos
        neg, pos, scale = params
        if scale == 1.0 and pos == 1.0:
            return tr.node("Elu", [x], alpha=float(neg))
        if scale == 1.0:
            return tr.node("Selu", [x], alpha=float(neg / pos), gamma=float(pos))
        if pos == 1.0 and neg * scale == 1.0:
            return tr.node("Celu", [x], alpha=float(neg))
        raise _unsupported(f"an ELU-family activation with parameters {params}")
    if kind == "_SoftplusSpec":
        return _softplus_node(tr, x, float(params[0]), float(params[1]))
    if kind == "_MishSpec":  # x * tanh(softplus(x)), torch's softplus threshold 20
        return tr.node("Mul", [x, tr.node("Tanh", [_softplus_node(tr, x, 1.0, 20.0)])])
    if kind == "_SoftsignSpec":
        return tr.node("Softsign", [x])
    if kind == "_TanhshrinkSpec":
        return tr.node("Sub", [x, tr.node("Tanh", [x])])
    if kind == "_LogSigmoidSpec":  # -softplus(-x)
        return tr.node("Neg", [tr.node("Softplus", [tr.node("Neg", [x])])])
    if kind in ("_HardshrinkSpec", "_SoftshrinkSpec"):  # (Shrink maps NaN to 0, torch keeps it)
        lambd = float(params[0])
        return tr.node("Shrink", [x], lambd=lambd,
                       bias=lambd if kind == "_SoftshrinkSpec" else 0.0)
    raise _unsupported(f"the activation {kind.strip('_')}")


def _permute(tr: _Tracer, op: _Op) -> str:
    """pixel_shuffle / pixel_unshuffle / channel_shuffle: reshape -> transpose -> reshape.
    Leading dims a reshape keeps become 0 (copied), so the batch size stays free."""
    split, axes, out_shape = op.args[1], [int(a) for a in op.args[2]], op.args[3]

    def target(shape: Sequence[int], source: Sequence[int]) -> str:
        dims = [int(v) for v in shape]
        i = 0
        while i < min(len(dims), len(source)) and dims[i] == source[i]:
            dims[i] = 0
            i += 1
        return tr.const(dims, np.int64)

    y = tr.node("Reshape", [op.names[0], target(split, op.args[0].shape)])
    y = tr.node("Transpose", [y], perm=axes)
    return tr.node("Reshape", [y, target(out_shape, [split[a] for a in axes])])


def _local_response_norm(tr: _Tracer, op: _Op) -> str:
    size, alpha, beta, k = op.args[1:5]
    if size % 2 == 0:  # torch's window is [c - size/2, c + size/2 - 1], ONNX's the mirror
        raise _unsupported(f"local_response_norm with an even size ({size})",
                           " (its channel window differs from ONNX LRN's)")
    return tr.node("LRN", [op.names[0]], size=int(size), alpha=float(alpha), beta=float(beta),
                   bias=float(k))


def _vector_norm(tr: _Tracer, op: _Op) -> str:
    """linalg.vector_norm (normalize, cosine_similarity, pairwise_distance) by its order."""
    p, axes, keepdims = float(op.args[1]), [int(a) for a in op.args[2]], int(op.args[3])
    return _norm_nodes(tr, op.names[0], p, axes, keepdims)


def _norm_nodes(tr: _Tracer, x: str, p: float, axes: List[int], keepdims: int) -> str:
    if p in (1.0, 2.0):
        return _reduce_node(tr, f"ReduceL{int(p)}", x, axes, keepdims)
    if p == 0:
        raise _unsupported("a vector norm of order 0 (a count of non-zero elements)")
    magnitude = tr.node("Abs", [x])
    if math.isinf(p):
        return _reduce_node(tr, "ReduceMax" if p > 0 else "ReduceMin", magnitude, axes, keepdims)
    total = _reduce_node(tr, "ReduceSum", tr.node("Pow", [magnitude, tr.const(p)]), axes, keepdims)
    return tr.node("Pow", [total, tr.const(1.0 / p)])


def _unfold(tr: _Tracer, op: _Op) -> str:
    """im2col as data movement only (no arithmetic to round or to spread a NaN): the padded
    image's strided slice at each kernel offset, stacked as (N, C, kh * kw, L), which is
    torch's (channel, offset) order of the output's rows."""
    x, geo = op.args
    if x.ndim != 4:
        raise _unsupported(f"unfold on a {x.ndim}-D input", " (only (N, C, H, W))")
    (kh, kw), (dh, dw), (ph, pw), (sh, sw), (bh, bw) = (geo.kernel, geo.dilation, geo.padding,
                                                        geo.stride, geo.blocks)
    image = op.names[0]
    if ph or pw:
        image = tr.node("Pad", [image, tr.const([0, 0, ph, pw, 0, 0, ph, pw], np.int64)])
    axes, steps = tr.const([2, 3], np.int64), tr.const([sh, sw], np.int64)
    columns = []
    for i in range(kh):
        for j in range(kw):
            starts = [i * dh, j * dw]
            ends = [starts[0] + (bh - 1) * sh + 1, starts[1] + (bw - 1) * sw + 1]
            block = tr.node("Slice", [image, tr.const(starts, np.int64), tr.const(ends, np.int64),
                                      axes, steps])
            columns.append(tr.node("Reshape", [block, tr.const([0, 0, 1, bh * bw], np.int64)]))
    stacked = tr.node("Concat", columns, axis=2) if len(columns) > 1 else columns[0]
    return tr.node("Reshape", [stacked, tr.const([0, -1, bh * bw], np.int64)])


def _fold(tr: _Tracer, op: _Op) -> str:
    cols, geo = op.args
    if cols.ndim != 3:
        raise _unsupported(f"fold on a {cols.ndim}-D input", " (only (N, C * kh * kw, L))")
    if tr.opset < 18:
        raise _unsupported("fold below opset 18", " (Col2Im came in opset 18)")
    return tr.node("Col2Im", [op.names[0], tr.const(list(geo.image), np.int64),
                              tr.const(list(geo.kernel), np.int64)],
                   dilations=list(geo.dilation), pads=list(geo.padding) * 2,
                   strides=list(geo.stride))


def _grid_sample(tr: _Tracer, op: _Op) -> str:
    """GridSample: opset 16 names its modes bilinear / bicubic, opset 20 linear / cubic."""
    mode, padding, align_corners = op.args[2:5]
    if tr.opset < 16:
        raise _unsupported("grid_sample below opset 16", " (GridSample came in opset 16)")
    if tr.opset >= 20:
        mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    return tr.node("GridSample", op.names[:2], mode=mode, padding_mode=padding,
                   align_corners=int(align_corners))


def _affine_grid(tr: _Tracer, op: _Op) -> str:
    """AffineGrid with size (N, 1, H, W) (its C is not read), N taken from theta at run time."""
    theta, spatial, align_corners = op.args
    if tr.opset < 20:
        raise _unsupported("affine_grid below opset 20", " (AffineGrid came in opset 20)")
    batch = tr.node("Slice", [tr.node("Shape", [op.names[0]]), tr.const([0], np.int64),
                              tr.const([1], np.int64), tr.const([0], np.int64)])
    size = tr.node("Concat", [batch, tr.const([1] + list(spatial), np.int64)], axis=0)
    return tr.node("AffineGrid", [op.names[0], size], align_corners=int(align_corners))


_ACT_KINDS = {code: name for name, code in _f_activation.ACT_CODES.items()}

_FUNCTION_CONVERTERS: Dict[type, Converter] = {
    **{cls: _elementwise(onnx_op) for cls, onnx_op in (
        (_ops.Clone, "Identity"), (_ops.Add, "Add"), (_ops.Sub, "Sub"), (_ops.Mul, "Mul"),
        (_ops.Div, "Div"), (_ops.Neg, "Neg"), (_ops.Abs, "Abs"), (_ops.Exp, "Exp"),
        (_ops.Log, "Log"), (_ops.Sqrt, "Sqrt"), (_ops.PowTensor, "Pow"), (_ops.Maximum, "Max"),
        (_ops.Minimum, "Min"), (_ops.MatMul, "MatMul"))},
    _ops.Pow: lambda tr, op: tr.node("Pow", [op.names[0], tr.const(op.args[1])]),
    # (a residual block's relu(out + identity), one op in training: nn/fusion.py)
    _fusion._AddReLU: lambda tr, op: tr.node("Relu", [tr.node("Add", list(op.names[:2]))]),
    _ops.Sum: _reduce("ReduceSum"), _ops.Mean: _reduce("ReduceMean"), _ops.Reshape: _reshape,
    _ops.Permute: lambda tr, op: tr.node("Transpose", [op.names[0]], perm=list(op.args[1])),
    _ops.BroadcastTo: _expand,
    _ops._FullExtreme: lambda tr, op: tr.node("ReduceMax" if op.args[1] else "ReduceMin",
                                              [op.names[0]], keepdims=0),
    _f_shape._Cat: lambda tr, op: tr.node("Concat", op.names, axis=int(op.kw["dim"])),
    _f_activation._Activation: lambda tr, op: _activation(tr, _ACT_KINDS[op.args[1]],
                                                          op.names[0], op.args[2]),
    F._Conv2d: _conv, F._Linear: _linear, _f_norm._BatchNorm: _batch_norm,
    _f_norm._GroupNorm: _group_norm, _f_norm._LayerNorm: _layer_norm,
    _f_activation._PReLU: _prelu, _ops.Clamp: _clamp,
    _conv_transpose_module._ConvTranspose2d: _conv_transpose,
    _f_activation._Pointwise: _pointwise, _f_shape._Permute: _permute,
    _f_norm._LocalResponseNorm: _local_response_norm,
    _ops.VectorNorm: _vector_norm,
    # (cosine_similarity's clamp: Clip, as clamp(min=eps))
    _f_distance._UngradedClampMin: lambda tr, op: _clip(tr, op.names[0], float(op.args[1]), None),
    _f_fold._Unfold: _unfold, _f_fold._Fold: _fold,
    _f_grid._GridSample: _grid_sample, _f_grid._AffineGrid: _affine_grid,
}


# --------------------------------------------------------------------------- functional converters
_LAYOUTS = {3: "(N, C, L)", 4: "(N, C, H, W)"}


def _need_rank(op: _Op, ndim: int) -> Tensor:
    if op.args[0].ndim != ndim:
        raise _unsupported(f"{op.fname.lstrip('_')} on a {op.args[0].ndim}-D input",
                           f" (only {_LAYOUTS[ndim]})")
    return op.args[0]


def _spatial_input(op: _Op) -> Tensor:
    """The input of a 1-D (N, C, L) or 2-D (N, C, H, W) layer, by the functional's name."""
    return _need_rank(op, 3 if "1d" in op.fname else 4)


def _tensor_names(tr: _Tracer, *values: Any) -> List[Optional[str]]:
    """The ONNX names of a functional's tensor arguments (weights), None for a None."""
    return [None if v is None else tr.name_of(as_tensor(v)) for v in values]


def _batch_and_channels(tr: _Tracer, x: str) -> str:
    """The runtime (N, C) of x, so that a size built from it keeps the batch dim free."""
    return tr.node("Slice", [tr.node("Shape", [x]), tr.const([0], np.int64),
                             tr.const([2], np.int64), tr.const([0], np.int64)])


def _act_functional(tr: _Tracer, op: _Op) -> str:
    kind = op.fname.rstrip("_")
    if kind == "gelu" and op.kw["approximate"] == "tanh":
        kind = "gelu_tanh"
    return _activation(tr, kind, op.names[0], op.kw.get("negative_slope", 0.0))


def _softmax(tr: _Tracer, op: _Op) -> str:
    ndim, dim = op.args[0].ndim, op.kw["dim"]
    if ndim == 0:
        raise _unsupported(f"{op.fname} of a 0-D tensor")
    dim = dim if dim is not None else _f_activation._softmax_dim(ndim)
    return tr.node("Softmax" if op.fname == "softmax" else "LogSoftmax", [op.names[0]],
                   axis=dim % ndim)


def _pool(tr: _Tracer, op: _Op) -> Union[str, List[str]]:
    """Torch's windows (1-D or 2-D) as floor-mode pooling whose end padding reaches exactly
    the last window torch takes (ceil_mode included), so shapes follow the ONNX spec and
    values are exact: max and count_include_pad=False averages never read the padding. An
    average that counts padding and has windows past it pads with real zeros first (torch
    counts the padding, but not what lies beyond it). max_pool2d's return_indices adds
    MaxPool's Indices, as torch's (see _plane_indices)."""
    t, a, is_max = _spatial_input(op), op.kw, op.fname.startswith("max_pool")
    dims = t.ndim - 2  # (_window_args gives 1-D windows as 1 x k: keep the last dims)
    k, s, p, d, out = (list(v[-dims:]) for v in _f_pooling._window_args(
        op.fname, a["kernel_size"], a["stride"], a["padding"], a["dilation"] if is_max else 1,
        tuple(t.shape[2:]), a["ceil_mode"]))
    ends = [max(p[i], (out[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 - t.shape[2 + i] - p[i])
            for i in range(dims)]
    x, pads = op.names[0], p + ends
    attrs = {"kernel_shape": k, "strides": s}
    if is_max:
        indices = bool(a.get("return_indices"))
        if any(pads[i] >= k[i % dims] for i in range(2 * dims)):
            if indices:  # (MaxPool's indices would address the padded input)
                raise _unsupported(f"{op.fname} with return_indices=True and a dilated window "
                                   "that ceil_mode keeps past the input")
            # onnxruntime refuses pads >= kernel_shape, which a dilated window that ceil_mode
            # keeps can need at the end: pad with -inf first (every torch window holds an
            # input pixel, so the padding never wins)
            x = tr.node("Pad", [x, tr.const([0, 0] + p + [0, 0] + ends, np.int64),
                                tr.const(-np.inf)])
            pads = [0] * (2 * dims)
        if indices:
            y, flat = tr.node_outputs("MaxPool", [x], 2, dilations=d, pads=pads, **attrs)
            return [y, _plane_indices(tr, flat, tuple(t.shape[2:]))]
        return tr.node("MaxPool", [x], dilations=d, pads=pads, **attrs)
    include_pad = bool(a["count_include_pad"])
    if include_pad and ends != p:
        x = tr.node("Pad", [x, tr.const([0, 0] + p + [0, 0] + p, np.int64)])
        pads, include_pad = [0] * dims + [e - q for e, q in zip(ends, p)], False
    return tr.node("AveragePool", [x], count_include_pad=int(include_pad), pads=pads, **attrs)


def _plane_indices(tr: _Tracer, flat: str, plane: Tuple[int, ...]) -> str:
    """torch's max-pool indices count within each (n, c) plane, ONNX's over the whole input:
    the remainder by the plane's size. max_unpool2d can use MaxPool's own (_max_unpool)."""
    per_plane = tr.node("Mod", [flat, tr.const(math.prod(plane), np.int64)])
    tr.pool_indices[per_plane] = (flat, plane)
    return per_plane


def _adaptive_pool(tr: _Tracer, op: _Op) -> str:
    size, out = tuple(_spatial_input(op).shape[2:]), tuple(op.out.shape[2:])
    kind = "Max" if "max" in op.fname else "Average"
    shown_in, shown_out = ("x".join(str(n) for n in v) for v in (size, out))
    if all(o == 1 for o in out):
        return tr.node(f"Global{kind}Pool", [op.names[0]])
    if 0 in out:
        raise _unsupported(f"{op.fname} to an empty {shown_out} output")
    if any(n % o for n, o in zip(size, out)):  # uneven windows have no ONNX pooling op
        raise _unsupported(f"{op.fname} from {shown_in} to {shown_out}",
                           " (only output sizes that divide the input size, or 1)")
    kernel = [n // o for n, o in zip(size, out)]
    return tr.node(f"{kind}Pool", [op.names[0]], kernel_shape=kernel, strides=kernel)


def _lp_pool(tr: _Tracer, op: _Op) -> str:
    """torch's lp_pool2d: (the window mean of x ** p, times the window's area) ** (1 / p),
    with no padding. That is LpPool's (sum of |x| ** p) ** (1 / p) for an even p over whole
    windows; otherwise (odd or fractional p: a negative sum's root is NaN; ceil_mode's
    partial windows: their mean is scaled by the full area) it is composed as torch does."""
    t, a = _spatial_input(op), op.kw
    p = float(a["norm_type"])
    pool = dict(kernel_size=a["kernel_size"], stride=a["stride"], padding=0, dilation=1,
                ceil_mode=a["ceil_mode"], count_include_pad=True)
    if math.isinf(p):  # the max of |x| (of -|x|, negated, for -inf)
        magnitude = tr.node("Abs", [op.names[0]])
        if p < 0:
            magnitude = tr.node("Neg", [magnitude])
        y = _pool(tr, _Op(op.args, [magnitude], pool, op.out, "max_pool2d"))
        return y if p > 0 else tr.node("Neg", [y])
    k, s, _, _, out = _f_pooling._window_args(op.fname, a["kernel_size"], a["stride"], 0, 1,
                                              tuple(t.shape[2:]), a["ceil_mode"])
    whole = all((o - 1) * si + ki <= n for o, si, ki, n in zip(out, s, k, t.shape[2:]))
    if whole and p > 0 and p % 2 == 0:
        return tr.node("LpPool", [op.names[0]], kernel_shape=list(k), strides=list(s), p=int(p))
    powered = tr.node("Pow", [op.names[0], tr.const(p)])
    mean = _pool(tr, _Op(op.args, [powered], pool, op.out, "avg_pool2d"))
    return tr.node("Pow", [tr.node("Mul", [mean, tr.const(float(k[0] * k[1]))]),
                           tr.const(1.0 / p)])


def _max_unpool(tr: _Tracer, op: _Op) -> str:
    """MaxUnpool when the indices are a MaxPool's and the output is that pool's input size,
    the one MaxUnpool infers. Otherwise torch's per-plane indices scatter into zero planes:
    runtimes read MaxUnpool's output_shape differently (onnxruntime indexes the given shape,
    the spec's reference the inferred one, placed at the start)."""
    t, a = _need_rank(op, 4), op.kw
    k = pair(a["kernel_size"], op.fname, "kernel_size")
    s = k if a["stride"] is None else pair(a["stride"], op.fname, "stride")
    p = pair(a["padding"], op.fname, "padding")
    (indices,) = _tensor_names(tr, a["indices"])
    out = tuple(op.out.shape[2:])
    inferred = tuple((n - 1) * si + ki - 2 * pi for n, si, ki, pi in zip(t.shape[2:], s, k, p))
    flat, plane = tr.pool_indices.get(indices, (None, None))
    if flat is not None and plane == out == inferred:
        return tr.node("MaxUnpool", [op.names[0], flat], kernel_shape=list(k), strides=list(s),
                       pads=list(p) * 2)
    rows = [tr.node("Reshape", [n, tr.const([0, 0, -1], np.int64)])
            for n in (indices, op.names[0])]
    size = tr.node("Concat", [_batch_and_channels(tr, op.names[0]),
                              tr.const([math.prod(out)], np.int64)], axis=0)
    zeros = tr.node("Expand", [tr.const(0.0), size])
    y = tr.node("ScatterElements", [zeros] + rows, axis=2)
    return tr.node("Reshape", [y, tr.const([0, 0] + list(out), np.int64)])


def _conv1d(tr: _Tracer, op: _Op) -> str:
    """A 1-D Conv (the engine runs Conv1d as a 2-D convolution over (N, C, 1, L))."""
    _need_rank(op, 3)
    a = op.kw
    w = as_tensor(a["weight"])
    (s,), (d,) = (F._int_tuple(a[name], 1, name, a["layer"]) for name in ("stride", "dilation"))
    pads = F._conv_padding(a["padding"], tuple(w.shape[2:]), (s,), (d,), a["layer"])
    names = [op.names[0]] + _tensor_names(tr, w, a["bias"])
    return tr.node("Conv", [n for n in names if n is not None], kernel_shape=list(w.shape[2:]),
                   strides=[s], pads=list(pads), dilations=[d], group=int(a["groups"]))


def _conv_transpose1d(tr: _Tracer, op: _Op) -> str:
    x, a = _need_rank(op, 3), op.kw
    w = as_tensor(a["weight"])
    s, p, d = (F._int_tuple(a[name], 1, name, a["layer"])
               for name in ("stride", "padding", "dilation"))
    return _conv_transpose_nodes(tr, [op.names[0]] + _tensor_names(tr, w, a["bias"]),
                                 x.shape[2:], op.out.shape[2:], w.shape[2:], s, p, d, a["groups"])


def _glu(tr: _Tracer, op: _Op) -> str:
    dim = op.kw["dim"] % op.args[0].ndim
    half = op.args[0].shape[dim] // 2
    a, b = tr.node_outputs("Split", [op.names[0], tr.const([half, half], np.int64)], 2, axis=dim)
    return tr.node("Mul", [a, tr.node("Sigmoid", [b])])


def _unambiguous(in_hw: Tuple[int, ...], scales: Tuple[float, ...],
                 out_hw: Tuple[int, ...]) -> bool:
    """Every runtime gets the output size floor(in * scale) from a float32 scale, whether it
    multiplies exactly or in float32 (10 * 2.3 is 22 one way, 23 the other)."""
    return all(math.floor(n * float(np.float32(v))) == o == math.floor(np.float32(n) * np.float32(v))
               for n, v, o in zip(in_hw, scales, out_hw))


def _resize_agrees(a: Dict[str, Any], in_hw: Tuple[int, ...], out_hw: Tuple[int, ...],
                   pve_scales: Optional[Tuple[float, ...]],
                   onnx_scales: Optional[Tuple[float, ...]]) -> bool:
    """ONNX Resize by ``onnx_scales`` (None: by sizes, scale = out / in) reads the pixels
    with the weights pve (torch) uses; pve's nearest has its own special cases."""
    mode, align = a["mode"], a["align_corners"]
    for i in range(2):
        want = _f_shape._interp_matrix(in_hw[i], out_hw[i], mode, align,
                                       None if pve_scales is None else pve_scales[i])
        scale = None if onnx_scales is None else onnx_scales[i]
        if mode == "nearest":  # asymmetric, floor: src = floor(dst / scale) in float32
            dst = np.arange(out_hw[i], dtype=np.float32)
            onnx_src = np.floor(dst / np.float32(scale or out_hw[i] / in_hw[i]))
            if not np.array_equal(want.argmax(1), np.minimum(onnx_src, in_hw[i] - 1)):
                return False
        elif not np.allclose(_f_shape._interp_matrix(in_hw[i], out_hw[i], mode, align, scale),
                             want, atol=1e-6):
            return False
    return True


def _interpolate(tr: _Tracer, op: _Op) -> str:
    """Resize by scales (spatial dims then stay free) when every runtime reads them as pve
    does, else by sizes; either only if ONNX maps pixels as pve (torch) does. nearest:
    asymmetric + floor; bilinear: half_pixel, or align_corners (always by sizes); bicubic:
    mode 'cubic' with torch's cubic_coeff_a -0.75 (as torch.onnx). antialias (opset >= 18):
    Resize's antialias with exclude_outside (torch drops the taps outside the input and
    renormalises; bicubic's filter has a = -0.5). 'area' is adaptive average pooling, as
    torch computes (and exports) it."""
    a, x = op.kw, op.names[0]
    if a["mode"] == "area":
        return _adaptive_pool(tr, _Op(op.args, op.names, {}, op.out,
                                      f"adaptive_avg_pool{op.args[0].ndim - 2}d"))
    _need_rank(op, 4)
    antialias = bool(a.get("antialias"))
    if antialias and tr.opset < 18:
        raise _unsupported("interpolate(antialias=True) below opset 18",
                           " (Resize's antialias came in opset 18)")
    if antialias and a["align_corners"]:
        raise _unsupported("interpolate(antialias=True, align_corners=True)",
                           " (torch's antialias window has no ONNX coordinate mode)")
    in_hw, out_hw = tuple(op.args[0].shape[2:]), tuple(op.out.shape[2:])
    factor, scales = a["scale_factor"], None
    if factor is not None and not a["recompute_scale_factor"]:
        scales = tuple(float(v) for v in (factor if isinstance(factor, (tuple, list))
                                          else (factor, factor)))
    by_scales = scales is not None and not a["align_corners"] and _unambiguous(in_hw, scales, out_hw)
    # (antialias: half_pixel windows as torch's by construction, checked against
    # onnxruntime in the tests; the weight matrices compared here are the plain modes')
    chosen = [c for c in ([scales] if by_scales else []) + [None]
              if antialias or _resize_agrees(a, in_hw, out_hw, scales, c)]
    if not chosen:
        raise _unsupported(f"{a['mode']} interpolation from {in_hw} to {out_hw} with "
                           f"scale_factor={factor}", " (ONNX Resize would read other pixels or "
                           "runtimes would disagree on the size; pass size= instead)")
    attrs = ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
              "nearest_mode": "floor"} if a["mode"] == "nearest" else
             {"mode": "cubic" if a["mode"] == "bicubic" else "linear",
              "coordinate_transformation_mode":
              "align_corners" if a["align_corners"] else "half_pixel"})
    if a["mode"] == "bicubic":
        attrs["cubic_coeff_a"] = -0.5 if antialias else -0.75
    if antialias:
        attrs.update(antialias=1, exclude_outside=1)
    if chosen[0] is not None:
        return tr.node("Resize", [x, "", tr.const([1.0, 1.0] + list(chosen[0]))], **attrs)
    sizes = tr.node("Concat", [_batch_and_channels(tr, x), tr.const(list(out_hw), np.int64)],
                    axis=0)
    return tr.node("Resize", [x, "", "", sizes], **attrs)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad(tr: _Tracer, op: _Op) -> str:
    mode, amounts, ndim = op.kw["mode"], [int(v) for v in op.kw["pad"]], op.args[0].ndim
    if mode == "circular" and tr.opset < 19:
        raise _unsupported("circular padding below opset 19", " (Pad's 'wrap' mode)")
    if mode != "constant" and min(amounts) < 0:
        raise _unsupported(f"{mode} padding with negative amounts {amounts}")
    begins, ends = [0] * ndim, [0] * ndim
    for i in range(len(amounts) // 2):  # torch lists (before, after) from the last dim back
        begins[ndim - 1 - i], ends[ndim - 1 - i] = amounts[2 * i], amounts[2 * i + 1]
    inputs = [op.names[0], tr.const(begins + ends, np.int64)]
    if mode == "constant":
        inputs.append(tr.const(0.0 if op.kw["value"] is None else op.kw["value"]))
    return tr.node("Pad", inputs, mode=_PAD_MODES[mode])


# --------------------------------------------------------------------------- sequence layers
# Embedding, attention and the recurrent layers. Masks are additive scores; a bool mask
# becomes 0 / -inf with Where (multi-head attention and padding masks: True = masked out;
# scaled_dot_product_attention: True = takes part).

def _axes_node(tr: _Tracer, op_type: str, x: str, axes: Sequence[int]) -> str:
    """Squeeze / Unsqueeze (their axes are an input from opset 13)."""
    return tr.node(op_type, [x, tr.const(list(axes), np.int64)])


def _embedding(tr: _Tracer, op: _Op) -> str:
    """Gather of the looked-up rows (padding_idx only stops gradients). max_norm: rows whose
    norm exceeds it are scaled by max_norm / (norm + 1e-7), as torch's embedding_renorm_
    (which changed the example's rows of the weight in place already: their norm is now
    below max_norm, so the graph leaves them be)."""
    a = op.kw
    (weight,) = _tensor_names(tr, a["weight"])
    rows = tr.node("Gather", [weight, op.names[0]], axis=0)
    if a["max_norm"] is None:
        return rows
    norm = _norm_nodes(tr, rows, float(a["norm_type"]), [-1], 1)
    max_norm = tr.const(float(a["max_norm"]))
    shrink = tr.node("Div", [max_norm, tr.node("Add", [norm, tr.const(1e-7)])])
    scale = tr.node("Where", [tr.node("Greater", [norm, max_norm]), shrink, tr.const(1.0)])
    return tr.node("Mul", [rows, scale])


def _additive_mask(tr: _Tracer, mask: Any, true_attends: bool) -> str:
    """A float mask as it is; a bool one as 0 where it attends and -inf where it does not."""
    m = as_tensor(mask)
    name = tr.name_of(m)
    if m.dtype != np.bool_:
        return name
    zero, minus_inf = tr.const(0.0), tr.const(-np.inf)
    return tr.node("Where", [name, zero, minus_inf] if true_attends else [name, minus_inf, zero])


def _causal_mask(tr: _Tracer, rows: int, cols: int) -> str:
    """torch's is_causal: query i sees keys 0..i (top-left aligned)."""
    attends = np.tril(np.ones((rows, cols), dtype=bool))
    return tr.const(np.where(attends, 0.0, -np.inf), np.float32)


def _swap_last_dims(tr: _Tracer, x: str, ndim: int) -> str:
    return tr.node("Transpose", [x], perm=list(range(ndim - 2)) + [ndim - 1, ndim - 2])


def _attention_weights(tr: _Tracer, scores: str, masked: bool) -> str:
    """softmax over the keys; with a mask, a row whose every key is masked gives zeros
    (torch's _safe_softmax), not Softmax's NaN."""
    weights = tr.node("Softmax", [scores], axis=-1)
    if not masked:
        return weights
    row_max = _reduce_node(tr, "ReduceMax", scores, [-1], 1)
    dead = tr.node("Equal", [row_max, tr.const(-np.inf)])
    return tr.node("Where", [dead, tr.const(0.0), weights])


def _repeat_heads(tr: _Tracer, x: str, t: Tensor, repeats: int) -> str:
    """repeat_interleave(repeats, dim=-3) of (..., heads, S, E): each head repeats times."""
    nd = t.ndim
    grown = tr.node("Expand", [_axes_node(tr, "Unsqueeze", x, [nd - 2]),
                               tr.const([1] * (nd - 2) + [repeats, 1, 1], np.int64)])
    target = [0] * (nd - 3) + [t.shape[-3] * repeats, t.shape[-2], t.shape[-1]]
    return tr.node("Reshape", [grown, tr.const(target, np.int64)])


def _scaled_dot_product_attention(tr: _Tracer, op: _Op) -> str:
    """softmax(q k^T * scale + mask) v as MatMul / Mul / Add / Softmax (dropout_p > 0 was
    refused before it ran: it draws at random in every call)."""
    a = op.kw
    q, k, v = (as_tensor(a[n]) for n in ("query", "key", "value"))
    k_name, v_name = _tensor_names(tr, k, v)
    if a["enable_gqa"] and q.ndim >= 3 and k.ndim >= 3 and q.shape[-3] != k.shape[-3]:
        repeats = q.shape[-3] // k.shape[-3]
        k_name, v_name = (_repeat_heads(tr, n, t, repeats) for n, t in ((k_name, k), (v_name, v)))
    scale = 1.0 / math.sqrt(q.shape[-1]) if a["scale"] is None else float(a["scale"])
    scores = tr.node("MatMul", [op.names[0], _swap_last_dims(tr, k_name, k.ndim)])
    scores = tr.node("Mul", [scores, tr.const(scale)])
    mask = None
    if a["is_causal"]:
        mask = _causal_mask(tr, q.shape[-2], k.shape[-2])
    elif a["attn_mask"] is not None:
        mask = _additive_mask(tr, a["attn_mask"], true_attends=True)
    if mask is not None:
        scores = tr.node("Add", [scores, mask])
    return tr.node("MatMul", [_attention_weights(tr, scores, mask is not None), v_name])


class _Heads(NamedTuple):
    """Multi-head attention's sizes: L queries, S keys (after bias_k / add_zero_attn)."""

    count: int
    dim: int
    queries: int
    keys: int


def _mha_projections(tr: _Tracer, a: Dict[str, Any], inputs: List[str]) -> List[str]:
    """q, k, v = query W_q^T + b_q, ... (in_proj_weight split in three, or the separate
    weights), each (L or S, N, E)."""
    embed = int(a["embed_dim_to_check"])
    thirds = tr.const([embed] * 3, np.int64)
    if a["use_separate_proj_weight"]:
        weights = _tensor_names(tr, a["q_proj_weight"], a["k_proj_weight"], a["v_proj_weight"])
    else:
        (packed,) = _tensor_names(tr, a["in_proj_weight"])
        weights = tr.node_outputs("Split", [packed, thirds], 3, axis=0)
    biases: List[Optional[str]] = [None] * 3
    if a["in_proj_bias"] is not None:
        biases = tr.node_outputs("Split", [_tensor_names(tr, a["in_proj_bias"])[0], thirds], 3,
                                 axis=0)
    return [_matmul_linear(tr, x, w, b) for x, w, b in zip(inputs, weights, biases)]


def _split_heads(tr: _Tracer, x: str, heads: _Heads) -> str:
    """(S, N, E) -> (N, heads, S, head_dim); the sequence and batch sizes stay free."""
    split = tr.node("Reshape", [x, tr.const([0, 0, heads.count, heads.dim], np.int64)])
    return tr.node("Transpose", [split], perm=[1, 2, 0, 3])


def _static_heads(tr: _Tracer, static: Any, count: int) -> str:
    """static_k / static_v, given as (N * heads, S, head_dim), as (N, heads, S, head_dim)."""
    t = as_tensor(static)
    target = tr.const([-1, count] + list(t.shape[1:]), np.int64)
    return tr.node("Reshape", [tr.name_of(t), target])


def _pad_last(tr: _Tracer, x: str, ndim: int) -> str:
    """One more zero at the end of the last dim (a key added by bias_k or add_zero_attn)."""
    return tr.node("Pad", [x, tr.const([0] * (2 * ndim - 1) + [1], np.int64)])


def _mha_masks(tr: _Tracer, a: Dict[str, Any], heads: _Heads, batched: bool,
               added_keys: int) -> Optional[str]:
    """attn_mask ((L, S), or (N * heads, L, S) as (N, heads, L, S)) plus key_padding_mask
    (N, S) as (N, 1, 1, S), as additive scores that broadcast to (N, heads, L, S)."""
    masks: List[Tuple[str, int]] = []  # (name, rank)
    if a["attn_mask"] is not None:
        mask = as_tensor(a["attn_mask"])
        name = _additive_mask(tr, mask, true_attends=False)
        if mask.ndim == 3:
            shape = [-1, heads.count] + list(mask.shape[1:])
            name = tr.node("Reshape", [name, tr.const(shape, np.int64)])
        masks.append((name, 2 if mask.ndim == 2 else 4))
    if a["key_padding_mask"] is not None:
        name = _additive_mask(tr, a["key_padding_mask"], true_attends=False)
        masks.append((_axes_node(tr, "Unsqueeze", name, [1, 2] if batched else [0, 1, 2]), 4))
    for _ in range(added_keys):  # (the added keys are attended)
        masks = [(_pad_last(tr, name, rank), rank) for name, rank in masks]
    names = [name for name, _ in masks]
    return tr.node("Add", names) if len(names) == 2 else (names[0] if names else None)


def _mha_hint_drops_mask(a: Dict[str, Any], heads: _Heads) -> bool:
    """Whether pve (as torch) attends causally instead of reading attn_mask: the is_causal
    hint without padding mask nor weights. When the example's mask is the causal one the
    graph keeps reading the mask (a TransformerEncoder detects the hint from it, so a mask
    fed at run time is what counts); otherwise it is the causal mask, as computed."""
    if not (a["is_causal"] and a["key_padding_mask"] is None and not a["need_weights"]):
        return False
    mask = as_tensor(a["attn_mask"])
    values = np.where(mask._data, -np.inf, 0.0) if mask.dtype == np.bool_ else mask._data
    causal = np.triu(np.full((heads.queries, heads.keys), -np.inf), 1)
    return not (values.shape == causal.shape and np.array_equal(values, causal))


def _multi_head_attention(tr: _Tracer, op: _Op) -> List[Optional[str]]:
    """multi_head_attention_forward as MatMul / Softmax / Transpose / Reshape: returns the
    output's name and the attention weights' (None unless need_weights)."""
    a = op.kw
    query, key = as_tensor(a["query"]), as_tensor(a["key"])
    batched = query.ndim == 3
    embed, count = int(a["embed_dim_to_check"]), int(a["num_heads"])
    static_k, static_v = a["static_k"], a["static_v"]
    keys = (as_tensor(static_k).shape[1] if static_k is not None
            else key.shape[0] + (a["bias_k"] is not None)) + bool(a["add_zero_attn"])
    heads = _Heads(count, embed // count, query.shape[0], keys)
    inputs = [op.names[0]] + _tensor_names(tr, key, a["value"])
    if not batched:
        inputs = [_axes_node(tr, "Unsqueeze", n, [1]) for n in inputs]
    q, k, v = _mha_projections(tr, a, inputs)
    if a["bias_k"] is not None:  # one more key and value, the same for every batch row
        shape = tr.node("Concat", [tr.const([1], np.int64), _dim(tr, k, 1),
                                   tr.const([embed], np.int64)], axis=0)
        k, v = (tr.node("Concat", [x, tr.node("Expand", [bias, shape])], axis=0)
                for x, bias in zip((k, v), _tensor_names(tr, a["bias_k"], a["bias_v"])))
    q = _split_heads(tr, q, heads)
    k = _split_heads(tr, k, heads) if static_k is None else _static_heads(tr, static_k, count)
    v = _split_heads(tr, v, heads) if static_v is None else _static_heads(tr, static_v, count)
    if a["add_zero_attn"]:  # a zero key and value
        k, v = (tr.node("Pad", [x, tr.const([0, 0, 0, 0, 0, 0, 1, 0], np.int64)]) for x in (k, v))
    added = (a["bias_k"] is not None) + bool(a["add_zero_attn"])
    if _mha_hint_drops_mask(a, heads):
        mask: Optional[str] = _causal_mask(tr, heads.queries, heads.keys)
    else:
        mask = _mha_masks(tr, a, heads, batched, added)
    weights = _mha_weights(tr, q, k, mask, heads, bool(a["need_weights"]))
    out = tr.node("Transpose", [tr.node("MatMul", [weights, v])], perm=[2, 0, 1, 3])
    out = tr.node("Reshape", [out, tr.const([0, 0, embed], np.int64)])
    out = _matmul_linear(tr, out, *_tensor_names(tr, a["out_proj_weight"], a["out_proj_bias"]))
    if not batched:
        out = _axes_node(tr, "Squeeze", out, [1])
    if not a["need_weights"]:
        return [out, None]
    if a["average_attn_weights"]:
        weights = _reduce_node(tr, "ReduceMean", weights, [1], 0)
    return [out, weights if batched else _axes_node(tr, "Squeeze", weights, [0])]


def _dim(tr: _Tracer, x: str, axis: int) -> str:
    """The run-time size of one dim of x, as a 1-element int64 tensor."""
    return tr.node("Slice", [tr.node("Shape", [x]), tr.const([axis], np.int64),
                             tr.const([axis + 1], np.int64), tr.const([0], np.int64)])


def _mha_weights(tr: _Tracer, q: str, k: str, mask: Optional[str], heads: _Heads,
                 need_weights: bool) -> str:
    """(N, heads, L, S) attention weights, in the order of operations pve (torch) uses on
    each path: with need_weights the queries are scaled and a plain softmax makes a fully
    masked row NaN; without, the scores are scaled and such a row is zeros."""
    keys_t = tr.node("Transpose", [k], perm=[0, 1, 3, 2])
    if need_weights:
        q = tr.node("Mul", [q, tr.const(math.sqrt(1.0 / heads.dim))])
        scores = tr.node("MatMul", [q, keys_t])
    else:
        scores = tr.node("Mul", [tr.node("MatMul", [q, keys_t]),
                                 tr.const(1.0 / math.sqrt(heads.dim))])
    if mask is not None:
        scores = tr.node("Add", [scores, mask])
    if need_weights:
        return tr.node("Softmax", [scores], axis=-1)
    return _attention_weights(tr, scores, mask is not None)


def _canonical_mask_seam(original: Callable[..., Any]) -> Callable[..., Any]:
    """nn/attention.py's _canonical_mask turns a bool mask into -inf / 0 with numpy: the
    same as Where nodes, so that a mask fed to the graph still counts."""

    @functools.wraps(original)
    def traced(mask: Any, *args: Any, **kwargs: Any) -> Any:
        out = original(mask, *args, **kwargs)
        tr = _active()
        if tr is None or tr.depth or out is None or as_tensor(mask).dtype != np.bool_:
            return out  # (a float mask comes back as it is)
        tr.bind(out, _additive_mask(tr, mask, true_attends=False))
        return out

    return traced


# torch's gate blocks (rows of W_ih, W_hh, b_ih, b_hh) in ONNX's order: LSTM i, f, g, o ->
# i, o, f, c; GRU r, z, n -> z, r, h (torch keeps b_hn inside the reset gate's product:
# ONNX's linear_before_reset=1).
_ONNX_GATE_ORDER = {"RNN_TANH": (0,), "RNN_RELU": (0,), "GRU": (1, 0, 2), "LSTM": (0, 3, 1, 2)}
_ONNX_RECURRENT_OP = {"RNN_TANH": "RNN", "RNN_RELU": "RNN", "GRU": "GRU", "LSTM": "LSTM"}


class _Direction(NamedTuple):
    """One direction's weights: (G * H, in), (G * H, H), (G * H,) or None twice."""

    w_ih: Tensor
    w_hh: Tensor
    b_ih: Optional[Tensor]
    b_hh: Optional[Tensor]


def _onnx_gates(t: Tensor, mode: str) -> np.ndarray:
    order = _ONNX_GATE_ORDER[mode]
    blocks = np.split(np.asarray(t._data, dtype=np.float32), len(order), axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def _recurrent_node(tr: _Tracer, mode: str, directions: Sequence[_Direction], x: str,
                    states: Sequence[str], prefix: str) -> List[str]:
    """One ONNX RNN / GRU / LSTM node over x (T, N, in), initial states (D, N, H) given or
    zeros: outputs Y (T, D, N, H), Y_h (D, N, H) and for LSTM Y_c."""
    hidden = directions[0].w_hh.shape[1]
    attrs: Dict[str, Any] = {"hidden_size": int(hidden),
                             "direction": "bidirectional" if len(directions) == 2 else "forward"}
    if mode == "RNN_RELU":
        attrs["activations"] = ["Relu"] * len(directions)
    if mode == "GRU":
        attrs["linear_before_reset"] = 1
    inputs = [x] + [tr.initializer(prefix + name, np.stack([_onnx_gates(w, mode) for w in ws]))
                    for name, ws in (("W", [d.w_ih for d in directions]),
                                     ("R", [d.w_hh for d in directions]))]
    if directions[0].b_ih is not None:
        biases = [np.concatenate([_onnx_gates(d.b_ih, mode), _onnx_gates(d.b_hh, mode)])
                  for d in directions]
        inputs.append(tr.initializer(prefix + "B", np.stack(biases)))
    if states:  # after B (if absent: "") and sequence_lens ("": the sequences are padded)
        inputs += [""] * (5 - len(inputs)) + list(states)
    return tr.node_outputs(_ONNX_RECURRENT_OP[mode], inputs, 3 if mode == "LSTM" else 2, **attrs)


def _direction_weights(module: Module, layer: int, reverse: bool) -> _Direction:
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih, w_hh = getattr(module, "weight_ih" + suffix), getattr(module, "weight_hh" + suffix)
    if not module.bias:
        return _Direction(w_ih, w_hh, None, None)
    return _Direction(w_ih, w_hh, getattr(module, "bias_ih" + suffix),
                      getattr(module, "bias_hh" + suffix))


def _recurrent_layers(tr: _Tracer, module: Module, x: str, batched: bool,
                      states: List[str]) -> List[str]:
    """RNN / GRU / LSTM: one ONNX node per layer (both directions in it), the next layer
    reading the directions' outputs concatenated. Returns output, h_n (and c_n)."""
    directions = 2 if module.bidirectional else 1
    if not batched:  # (L, in) as a batch of one
        x, *states = (_axes_node(tr, "Unsqueeze", n, [1]) for n in [x] + states)
    elif module.batch_first:
        x = tr.node("Transpose", [x], perm=[1, 0, 2])
    finals: List[List[str]] = [[], []] if module.mode == "LSTM" else [[]]
    for layer in range(module.num_layers):
        weights = [_direction_weights(module, layer, d == 1) for d in range(directions)]
        layer_states = states
        if module.num_layers > 1:  # (this layer's directions' rows of h_0 / c_0)
            bounds = [tr.const([layer * directions], np.int64),
                      tr.const([(layer + 1) * directions], np.int64), tr.const([0], np.int64)]
            layer_states = [tr.node("Slice", [s] + bounds) for s in states]
        y, *last = _recurrent_node(tr, module.mode, weights, x, layer_states,
                                   f"{_weights_prefix(tr, module)}onnx_l{layer}_")
        if directions == 1:
            x = _axes_node(tr, "Squeeze", y, [1])
        else:  # (T, D, N, H) -> (T, N, D * H)
            x = tr.node("Reshape", [tr.node("Transpose", [y], perm=[0, 2, 1, 3]),
                                    tr.const([0, 0, -1], np.int64)])
        for kept, value in zip(finals, last):
            kept.append(value)
    if batched and module.batch_first:
        x = tr.node("Transpose", [x], perm=[1, 0, 2])
    outs = [x] + [v[0] if len(v) == 1 else tr.node("Concat", v, axis=0) for v in finals]
    return outs if batched else [_axes_node(tr, "Squeeze", n, [1]) for n in outs]


def _recurrent_cell(tr: _Tracer, module: Module, x: str, batched: bool,
                    states: List[str]) -> List[str]:
    """RNNCell / GRUCell / LSTMCell: one time step of the ONNX node. Returns h' (and c')."""
    rnn = _rnn_module()
    if isinstance(module, (rnn.LSTMCell, rnn.GRUCell)):
        mode = "LSTM" if isinstance(module, rnn.LSTMCell) else "GRU"
    else:
        mode = "RNN_RELU" if module.nonlinearity == "relu" else "RNN_TANH"
    lead = [0] if batched else [0, 1]  # (N, in) -> (1, N, in); (in,) -> (1, 1, in)
    x, *states = (_axes_node(tr, "Unsqueeze", n, lead) for n in [x] + states)
    weights = _Direction(module.weight_ih, module.weight_hh, module.bias_ih, module.bias_hh)
    _, *last = _recurrent_node(tr, mode, [weights], x, states,
                               f"{_weights_prefix(tr, module)}onnx_")
    return [_axes_node(tr, "Squeeze", n, lead) for n in last]


def _weights_prefix(tr: _Tracer, module: Module) -> str:
    """The module's state_dict prefix, naming the initializers of its reordered weights."""
    path = tr.module_paths.get(id(module), "")
    return f"{path}." if path else ""


def _tensors_of(result: Any) -> List[Tensor]:
    """A module's result flattened: (out, (h_n, c_n)) -> [out, h_n, c_n]."""
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in _tensors_of(item)]
    return [result]


def _recurrent_forward(original: Callable[..., Any]) -> Callable[..., Any]:
    """The forward of a recurrent layer or cell class, traced as one unit: its time loops
    are Functions of their own, and ONNX has the whole recurrence as one operator. (Hooks
    run around it, traced; a subclass's own forward is traced op by op.)"""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def forward(self: Module, *args: Any, **kwargs: Any) -> Any:
        tr = _active()
        if tr is None or tr.depth:
            return original(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        return _recurrent_module(tr, self, original, bound.arguments)

    return forward


def _recurrent_module(tr: _Tracer, module: Module, forward: Callable[..., Any],
                      arguments: Dict[str, Any]) -> Any:
    """Runs ``forward`` untraced, then writes its ONNX nodes (packed sequences and LSTM
    projections refused first)."""
    kind = type(module).__name__
    x, hx = arguments["input"], arguments["hx"]
    if type(x).__name__ == "PackedSequence" or hasattr(x, "batch_sizes"):
        raise _unsupported(f"{kind} on a PackedSequence",
                           " (pad the sequences to one length and pass a Tensor)")
    if getattr(module, "proj_size", 0) > 0:
        raise _unsupported(f"{kind} with proj_size={module.proj_size}",
                           " (ONNX's LSTM has no projection of the hidden state)")
    tr.depth += 1
    try:
        result = forward(module, x, hx)
    finally:
        tr.depth -= 1
    x = as_tensor(x)
    states = [] if hx is None else [tr.name_of(as_tensor(s)) for s in
                                    (hx if isinstance(hx, (tuple, list)) else [hx])]
    is_cell = isinstance(module, _rnn_module().RNNCellBase)
    batched = x.ndim == (2 if is_cell else 3)
    build = _recurrent_cell if is_cell else _recurrent_layers
    for t, name in zip(_tensors_of(result), build(tr, module, tr.name_of(x), batched, states)):
        tr.bind(t, name)
    return result


def _rnn_module() -> Any:
    """nn/rnn.py, imported on first export (pve.onnx does not load it)."""
    from pyvision_engine.nn import rnn
    return rnn


def _recurrent_classes() -> Tuple[type, ...]:
    rnn = _rnn_module()
    return (rnn.RNN, rnn.GRU, rnn.LSTM, rnn.RNNCell, rnn.GRUCell, rnn.LSTMCell)


_FUNCTIONAL_CONVERTERS: Dict[str, Converter] = {
    **{name: _act_functional for name in (
        "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "sigmoid", "tanh", "gelu", "silu",
        "hardswish", "hardsigmoid")},
    "softmax": _softmax, "log_softmax": _softmax,
    **{f"{kind}_pool{dims}d": _pool for kind in ("max", "avg") for dims in (1, 2)},
    **{f"adaptive_{kind}_pool{dims}d": _adaptive_pool for kind in ("max", "avg")
       for dims in (1, 2)},
    "lp_pool2d": _lp_pool, "max_unpool2d": _max_unpool, "interpolate": _interpolate, "pad": _pad,
    # (training mode is refused before they run)
    **{name: lambda tr, op: op.names[0] for name in ("dropout", "dropout1d", "dropout2d")},
    "rrelu": lambda tr, op: _activation(tr, "leaky_relu", op.names[0],
                                        (op.kw["lower"] + op.kw["upper"]) / 2),
    "_conv1d": _conv1d, "_conv_transpose1d": _conv_transpose1d, "glu": _glu,
    "embedding": _embedding, "scaled_dot_product_attention": _scaled_dot_product_attention,
    "multi_head_attention_forward": _multi_head_attention,
}


def _functional_owners() -> Tuple[Any, ...]:
    """Where the functionals are looked up when called (the first holds the original).
    nn/attention.py loads on first use, so it is imported here, not by pve.onnx."""
    from pyvision_engine.nn import attention
    return (F, _f_activation, _f_pooling, _f_shape, _conv_transpose_module, _f_embedding,
            _sparse_module, attention)


def _refuse_before_running(fname: str, a: Dict[str, Any]) -> None:
    """Options with no faithful ONNX form, refused before the op runs (and changes anything)."""
    if a.get("training") and (fname == "rrelu" or a.get("p", 0) > 0):
        noise = "slopes" if fname == "rrelu" else "masks"
        raise ValueError(f"pve.onnx.export: {fname} in training mode (random {noise}) has no "
                         "place in an inference graph: call model.eval() before export")
    if fname == "scaled_dot_product_attention" and a["dropout_p"] > 0:
        raise ValueError(f"pve.onnx.export: scaled_dot_product_attention with dropout_p="
                         f"{a['dropout_p']} drops attention weights at random in every call, "
                         "which has no place in an inference graph: pass dropout_p=0.0 when "
                         "not training")
    if fname == "multi_head_attention_forward" and a["training"] and a["dropout_p"] > 0:
        raise ValueError(f"pve.onnx.export: multi_head_attention_forward in training mode with "
                         f"dropout_p={a['dropout_p']} (random masks) has no place in an "
                         "inference graph: call model.eval() before export")
    if a.get("return_indices") and fname != "max_pool2d":
        raise _unsupported(f"{fname} with return_indices=True")
    if a.get("divisor_override") is not None:
        raise _unsupported(f"{fname} with divisor_override={a['divisor_override']}")


# --------------------------------------------------------------------------- the seams
_ORIGINAL_APPLY = Function.__dict__["apply"].__func__
_ORIGINAL_CALL = Module.__call__


def _refusal_hint(cls: type) -> str:
    if cls.__module__ == "pyvision_engine.nn.utils.rnn":  # (packing moves rows)
        return (" (a PackedSequence: ONNX's RNN / GRU / LSTM take padded batches; pad the "
                "sequences to one length and pass a Tensor)")
    return ""


def _traced_apply(cls: type, *args: Any, **kwargs: Any) -> Tensor:
    tr = _active()
    if tr is None or tr.depth:
        return _ORIGINAL_APPLY(cls, *args, **kwargs)
    convert = _FUNCTION_CONVERTERS.get(cls)
    if convert is None:
        raise _unsupported(f"the operation {cls.__name__.lstrip('_')}", _refusal_hint(cls))
    names = [tr.name_of(a) if isinstance(a, Tensor) else None for a in args]
    if cls is _f_norm._BatchNorm and args[3][2]:  # (before it updates running statistics)
        raise ValueError("pve.onnx.export: batch norm would normalize with batch statistics "
                         "(a BatchNorm in training mode, or one without running statistics), "
                         "but an ONNX inference graph uses running statistics: call "
                         "model.eval() before export and keep track_running_stats=True")
    tr.depth += 1
    try:
        out = _ORIGINAL_APPLY(cls, *args, **kwargs)
    finally:
        tr.depth -= 1
    if out.dtype != np.float32:
        raise _unsupported(f"{cls.__name__.lstrip('_')} on {out.dtype} tensors")
    tr.bind(out, convert(tr, _Op(args, names, kwargs, out)))
    return out


def _traced_functional(fname: str, original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)
    first = "input" if "input" in signature.parameters else next(iter(signature.parameters))

    @functools.wraps(original)
    def traced(*args: Any, **kwargs: Any) -> Any:
        tr = _active()
        if tr is None or tr.depth:
            return original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        _refuse_before_running(fname, bound.arguments)
        t = as_tensor(bound.arguments[first])
        x = tr.name_of(t)
        tr.depth += 1
        try:
            out = original(*args, **kwargs)
        finally:
            tr.depth -= 1
        op = _Op((t,), [x], dict(bound.arguments), out, fname)
        names = _FUNCTIONAL_CONVERTERS[fname](tr, op)
        if isinstance(out, tuple):  # (max_pool2d's values and indices; attention's weights)
            for item, name in zip(out, names):
                if item is not None:
                    tr.bind(item, name)
        else:
            tr.bind(out, names)  # (in place: out is the input)
        return out

    return traced


def _traced_call(self: Module, *args: Any, **kwargs: Any) -> Any:
    tr = _active()
    if tr is None:
        return _ORIGINAL_CALL(self, *args, **kwargs)
    tr.scope.append(tr.module_names.get(id(self), type(self).__name__))
    try:
        return _ORIGINAL_CALL(self, *args, **kwargs)
    finally:
        tr.scope.pop()


def _seams() -> Iterator[Tuple[Any, str, Any]]:
    """(owner, attribute, replacement) for each seam; functionals under each of their names."""
    yield Function, "apply", classmethod(_traced_apply)
    yield Module, "__call__", _traced_call
    owners = _functional_owners()
    for fname in _FUNCTIONAL_CONVERTERS:
        original = next(getattr(o, fname) for o in owners if hasattr(o, fname))
        traced = _traced_functional(fname, original)
        for owner in owners:
            if getattr(owner, fname, None) is original:
                yield owner, fname, traced
    attention = owners[-1]
    yield attention, "_canonical_mask", _canonical_mask_seam(attention._canonical_mask)
    for cls in _recurrent_classes():
        yield cls, "forward", _recurrent_forward(cls.__dict__["forward"])


@contextlib.contextmanager
def _tracing(tr: _Tracer) -> Iterator[None]:
    with _install_lock:
        saved: List[Tuple[Any, str, Any]] = []
        try:
            for owner, attr, replacement in _seams():
                saved.append((owner, attr, owner.__dict__[attr]))
                setattr(owner, attr, replacement)
            _state.tracer = tr
            with enable_grad():
                yield
        finally:
            _state.tracer = None
            for owner, attr, original in reversed(saved):
                setattr(owner, attr, original)


# --------------------------------------------------------------------------- after the trace
def _fold_batch_norms(tr: _Tracer, outputs: List[str]) -> List[str]:
    """Conv -> BatchNormalization (the conv's output used nowhere else) as one Conv:
    W' = W * s, b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps) (_ops.fold_batch_norm).
    Returns ``outputs`` with the removed BatchNormalization outputs renamed."""
    producer = {o: n for n in tr.nodes for o in n.outputs}
    uses = Counter(i for n in tr.nodes for i in n.inputs)
    inits, renames = tr.initializers, {}
    for bn in [n for n in tr.nodes if n.op_type == "BatchNormalization"]:
        conv = producer.get(bn.inputs[0])
        if (conv is None or conv.op_type != "Conv" or uses[bn.inputs[0]] != 1
                or bn.inputs[0] in outputs
                or not all(i in inits for i in conv.inputs[1:] + bn.inputs[1:])):
            continue
        bias = inits[conv.inputs[2]] if len(conv.inputs) > 2 else None
        weight, bias = fold_batch_norm(inits[conv.inputs[1]], bias,
                                       *(inits[i] for i in bn.inputs[1:]), bn.attrs["epsilon"])
        base = conv.inputs[1][:-len(".weight")] if conv.inputs[1].endswith(".weight") else conv.name
        conv.inputs = [conv.inputs[0], tr.initializer(base + ".weight.bn_folded", weight),
                       tr.initializer(base + ".bias.bn_folded", bias)]
        renames[bn.outputs[0]] = conv.outputs[0]
        tr.nodes.remove(bn)
    for n in tr.nodes:
        n.inputs = [renames.get(i, i) for i in n.inputs]
    return [renames.get(o, o) for o in outputs]


def _prune(tr: _Tracer, outputs: Sequence[str]) -> None:
    """Drop nodes and initializers that no graph output depends on."""
    needed = set(outputs)
    kept: List[Node] = []
    for node in reversed(tr.nodes):
        if any(o in needed for o in node.outputs):
            kept.append(node)
            needed.update(i for i in node.inputs if i)
    tr.nodes = kept[::-1]
    tr.initializers = {k: v for k, v in tr.initializers.items() if k in needed}


def _name_outputs(tr: _Tracer, internal: List[str], wanted: List[str],
                  graph_inputs: List[str]) -> None:
    """Give each output its wanted name: its producing node's output is renamed, or an
    Identity node is added (an output that is an input, an initializer or repeated)."""
    renames: Dict[str, str] = {}
    for value, name in zip(internal, wanted):
        if value in graph_inputs or value in tr.initializers or value in renames:
            tr.nodes.append(Node("Identity", [value], [name], name=f"/Identity_{name}"))
        else:
            renames[value] = name
    for node in tr.nodes:
        node.inputs = [renames.get(i, i) for i in node.inputs]
        node.outputs = [renames.get(o, o) for o in node.outputs]


# --------------------------------------------------------------------------- argument checks
_INPUT_DTYPES = (np.float32, np.int64, np.bool_)


def _example_inputs(args: Any) -> List[np.ndarray]:
    items = list(args) if isinstance(args, tuple) else [args]
    if not items:
        raise ValueError("pve.onnx.export: args is an empty tuple; give at least one example input")
    for i, item in enumerate(items):
        if not isinstance(item, (Tensor, np.ndarray)):
            raise TypeError(f"pve.onnx.export: example input {i} must be a numpy array or a "
                            f"pve.Tensor (or a tuple of them), got {type(item).__name__}")
        if item.dtype not in _INPUT_DTYPES:
            raise TypeError(f"pve.onnx.export: example input {i} must be float32 (int64 for "
                            f"indices, bool for masks), got {item.dtype} (convert it with "
                            ".astype(np.float32))")
    return [np.array(item) for item in items]  # copies: the model may work in place


def _names(given: Optional[Sequence[str]], count: int, kind: str) -> List[str]:
    if given is None:
        return [kind] if count == 1 else [f"{kind}_{i}" for i in range(count)]
    names = list(given)
    if len(names) != count or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"pve.onnx.export: {kind}_names must be {count} non-empty strings "
                         f"(one per {kind}), got {given!r}")
    return names


def _dynamic_dims(dynamic_axes: Mapping[str, Any], known: Sequence[str]) -> Dict[str, Dict[int, str]]:
    """torch's forms: {name: {axis: dim_name}} or {name: [axis, ...]} (named like torch)."""
    if not isinstance(dynamic_axes, Mapping):
        raise TypeError(f"pve.onnx.export: dynamic_axes must be a dict, got {type(dynamic_axes).__name__}")
    dims: Dict[str, Dict[int, str]] = {}
    for name, axes in dynamic_axes.items():
        if name not in known:
            raise ValueError(f"pve.onnx.export: dynamic_axes names {name!r}, which is not an "
                             f"input or output name ({', '.join(known)})")
        if not isinstance(axes, (Mapping, list, tuple)):
            raise TypeError(f"pve.onnx.export: dynamic_axes[{name!r}] must be a dict or a list "
                            f"of axes, got {type(axes).__name__}")
        dims[name] = ({int(k): str(v) for k, v in axes.items()} if isinstance(axes, Mapping) else
                      {int(k): f"{name}_dynamic_axes_{i + 1}" for i, k in enumerate(axes)})
    return dims


def _value_info(name: str, t: Tensor, dynamic: Dict[int, str]) -> ValueInfo:
    shape: List[Union[int, str, None]] = list(t.shape)
    for axis, dim_name in dynamic.items():
        if not -t.ndim <= axis < t.ndim:
            raise ValueError(f"pve.onnx.export: dynamic axis {axis} of {name!r}, which has "
                             f"shape {tuple(t.shape)}")
        shape[axis % t.ndim] = dim_name
    return ValueInfo(name, DTYPE_CODES[t.dtype], shape)


def _outputs_of(result: Any) -> List[Tensor]:
    """The model's outputs, nested tuples flattened in order (an LSTM's (out, (h_n, c_n)))
    as torch.onnx.export does."""
    items = _tensors_of(result)
    for item in items:
        if not isinstance(item, Tensor):
            raise TypeError(f"pve.onnx.export: the model must return a Tensor or a tuple/list of "
                            f"Tensors (nested tuples are flattened), got {type(result).__name__} "
                            f"holding {type(item).__name__}")
    return items


def _check_inference_mode(model: Module) -> None:
    for name, m in model.named_modules():
        if m.training and (isinstance(m, (_BatchNormLayer, Dropout, _DropoutNd, RReLU))
                           or _drops_in_training(m)):
            raise ValueError(
                f"pve.onnx.export: {name or 'the model'} ({type(m).__name__}) is in training mode, "
                "but an ONNX inference graph uses BatchNorm's running statistics and no random "
                "dropout or RReLU slopes: "
                "call model.eval() before export (torch users do the same)")


def _drops_in_training(m: Module) -> bool:
    """A recurrent layer with dropout between its layers, or attention with dropout."""
    from pyvision_engine.nn import attention
    if isinstance(m, _rnn_module().RNNBase):
        return m.dropout > 0 and m.num_layers > 1
    return isinstance(m, attention.MultiheadAttention) and m.dropout > 0


# --------------------------------------------------------------------------- public
def export(model: Module, args: Any, f: Union[str, "os.PathLike[str]", Any], *,
           input_names: Optional[Sequence[str]] = None,
           output_names: Optional[Sequence[str]] = None, opset_version: int = 17,
           dynamic_axes: Optional[Mapping[str, Any]] = None, do_constant_folding: bool = True,
           verbose: bool = False) -> None:
    """Write ``model`` as an ONNX file that onnxruntime runs (torch.onnx.export's arguments).

    model: a ``pve.nn.Module``, traced in its current mode: call ``model.eval()`` first
        (a BatchNorm or Dropout in training mode is a ValueError), as torch users do.
    args: the example input (float32 numpy array or pve.Tensor; int64 indices, bool masks),
        or a tuple of them.
    f: a path (written atomically: temporary file, fsync, os.replace) or a binary file object.
    input_names / output_names: default ``input`` / ``output`` when there is one, else
        ``input_0, input_1, ...`` / ``output_0, ...``.
    opset_version: 13 to 21. do_constant_folding: fold BatchNorm into the Conv before it.
    dynamic_axes: ``{"input": {0: "batch"}, "output": {0: "batch"}}`` or ``{"input": [0]}``
        makes those dims symbolic in the graph's inputs and outputs.
    verbose: print the graph's nodes.
    Raises TypeError (not a Module, not float32), ValueError (training mode, bad names) and
    NotImplementedError naming any op or option ONNX cannot express faithfully."""
    if not isinstance(model, Module):
        raise TypeError(f"pve.onnx.export: model must be a pve.nn.Module, got {type(model).__name__}")
    if not isinstance(f, (str, os.PathLike)) and not hasattr(f, "write"):
        raise TypeError(f"pve.onnx.export: f must be a path or a writable binary file, got "
                        f"{type(f).__name__}")
    if opset_version not in _IR_VERSIONS:
        raise ValueError(f"pve.onnx.export: opset_version must be {min(_IR_VERSIONS)} to "
                         f"{max(_IR_VERSIONS)}, got {opset_version!r}")
    arrays = _example_inputs(args)
    names_in = _names(input_names, len(arrays), "input")
    _check_inference_mode(model)

    tr = _Tracer(model, opset_version, reserved=names_in)
    # Non-leaf inputs that require grad: every op records, and in-place ops are allowed.
    # (int64 indices and bool masks enter as they are: nothing differentiates them)
    inputs = [_ops.Clone.apply(Tensor(a, requires_grad=True)) if a.dtype == np.float32
              else Tensor(a) for a in arrays]
    for t, name in zip(inputs, names_in):
        tr.bind(t, name)
    with _tracing(tr):
        outputs = _outputs_of(model(*inputs))
    internal = [tr.name_of(t) for t in outputs]

    names_out = _names(output_names, len(outputs), "output")
    clash = (set(names_in) & set(names_out)) | (set(names_out) & set(tr.initializers))
    if clash or len(set(names_out)) != len(names_out):
        raise ValueError(f"pve.onnx.export: input and output names must be distinct from each "
                         f"other and from parameter names, got {names_in} and {names_out}")
    dims = _dynamic_dims(dynamic_axes or {}, names_in + names_out)
    if do_constant_folding:
        internal = _fold_batch_norms(tr, internal)
    _prune(tr, internal)
    _name_outputs(tr, internal, names_out, names_in)

    graph = Graph(nodes=tr.nodes, name=type(model).__name__, initializers=tr.initializers,
                  inputs=[_value_info(n, t, dims.get(n, {})) for n, t in zip(names_in, inputs)],
                  outputs=[_value_info(n, t, dims.get(n, {})) for n, t in zip(names_out, outputs)])
    data = write_model(Model(graph=graph, ir_version=_IR_VERSIONS[opset_version],
                             opsets={"": opset_version}, producer_name="pyvision_engine",
                             producer_version=__version__))
    if verbose:
        for node in tr.nodes:
            print(f"{node.name}: {node.op_type}({', '.join(node.inputs)}) -> {', '.join(node.outputs)}")
    if isinstance(f, (str, os.PathLike)):
        atomic_write_bytes(f, data)
    else:
        f.write(data)
