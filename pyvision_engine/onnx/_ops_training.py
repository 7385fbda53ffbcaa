"""ONNX optimizer operators of the ai.onnx.preview.training domain (opset 1), registered
in ``_ops.DOMAIN_OPS``: one update step of Adam, Adagrad and Momentum (standard and
Nesterov) over any number of tensors, as onnx/docs/Operators.md's pseudo code writes it.

Inputs are R (learning rate, a float or double scalar), T (update count, an int64
scalar), then the n optimized tensors X, their gradients G, then the optimizer's state
per tensor (Adam: V then H; Adagrad: H; Momentum: V); the outputs are the new X, then
the new state, in that order. G and the state broadcast to their X's shape (numpy
broadcasting, as the pseudo code says), and every new tensor has X's shape and type.
The arithmetic is float64, each result rounded once to its type.

Gradient (the same domain) is not here: it differentiates a sub-graph named by its
attributes, which needs the graph and an autodiff of every operator, not one node's
inputs.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from pyvision_engine.onnx._ops import OnnxOpError, op, text_attr

DOMAIN = "ai.onnx.preview.training"
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _check_opset(opset: int, what: str) -> None:
    if opset != 1:
        raise OnnxOpError(f"{what}: {DOMAIN} opset {opset} is not defined (only 1 is)")


def _scalars(inputs, what: str) -> Tuple[float, int]:
    """R and T as a Python float and int."""
    if len(inputs) < 2 or inputs[0] is None or inputs[1] is None:
        raise OnnxOpError(f"{what}: inputs R (learning rate) and T (update count) are required")
    r, t = np.asarray(inputs[0]), np.asarray(inputs[1])
    if r.size != 1 or r.dtype not in _FLOATS:
        raise OnnxOpError(f"{what}: R must be one float or double value, got shape {r.shape} "
                          f"of {r.dtype}")
    if t.size != 1 or t.dtype != np.int64:
        raise OnnxOpError(f"{what}: T must be one int64 value, got shape {t.shape} of {t.dtype}")
    return float(r.reshape(-1)[0]), int(t.reshape(-1)[0])


def _groups(inputs, parts: int, names: str, what: str) -> List[List[np.ndarray]]:
    """The inputs after R and T as ``parts`` lists of n tensors (X, G, state...), each
    float or double of one type, and broadcasting to its X's shape."""
    tensors = list(inputs[2:])
    if not tensors or len(tensors) % parts or any(x is None for x in tensors):
        raise OnnxOpError(f"{what}: after R and T the inputs must be {parts} groups of n >= 1 "
                          f"tensors ({names}), got {len(tensors)} inputs")
    n = len(tensors) // parts
    dtype = tensors[0].dtype
    for x in tensors:
        if x.dtype not in _FLOATS or x.dtype != dtype:
            raise OnnxOpError(f"{what}: the optimized tensors, gradients and states must all be "
                              f"float or all double, got {x.dtype} with {dtype}")
    groups = [tensors[i * n:(i + 1) * n] for i in range(parts)]
    for i, x in enumerate(groups[0]):
        for other in (g[i] for g in groups[1:]):
            if not _broadcasts_to(other.shape, x.shape):
                raise OnnxOpError(f"{what}: tensor {i}'s gradient or state of shape "
                                  f"{other.shape} does not broadcast to its shape {x.shape}")
    return groups


def _broadcasts_to(shape: Tuple[int, ...], target: Tuple[int, ...]) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _float_attr(attrs: Dict[str, Any], name: str, default: Any, what: str) -> float:
    if name not in attrs:
        if default is None:
            raise OnnxOpError(f"{what}: the {name} attribute is required")
        return default
    return float(attrs[name])


def _rounded(values: List[np.ndarray], like: List[np.ndarray]) -> List[np.ndarray]:
    """float64 results in the type and shape of the tensors they update."""
    return [np.broadcast_to(v, x.shape).astype(x.dtype) for v, x in zip(values, like)]


@op("Adam", domain=DOMAIN)
def _adam(attrs, opset, inputs):
    what = "Adam"
    _check_opset(opset, what)
    r, t = _scalars(inputs, what)
    xs, gs, vs, hs = _groups(inputs, 4, "X, G, V, H", what)
    alpha = _float_attr(attrs, "alpha", 0.9, what)
    beta = _float_attr(attrs, "beta", 0.999, what)
    epsilon = _float_attr(attrs, "epsilon", 1e-6, what)
    norm = _float_attr(attrs, "norm_coefficient", 0.0, what)
    norm_post = _float_attr(attrs, "norm_coefficient_post", 0.0, what)
    # bias correction of both averages, from the second update on (T > 0)
    rate = r * np.sqrt(1 - beta ** t) / (1 - alpha ** t) if t > 0 else r
    new_x, new_v, new_h = [], [], []
    for x, g, v, h in zip(xs, gs, vs, hs):
        x64 = x.astype(np.float64)
        g_reg = norm * x64 + g
        v_new = alpha * v.astype(np.float64) + (1 - alpha) * g_reg
        h_new = beta * h.astype(np.float64) + (1 - beta) * g_reg * g_reg
        x_new = x64 - rate * v_new / (np.sqrt(h_new) + epsilon)
        new_x.append((1 - norm_post) * x_new)
        new_v.append(v_new)
        new_h.append(h_new)
    return _rounded(new_x, xs) + _rounded(new_v, xs) + _rounded(new_h, xs)


@op("Adagrad", domain=DOMAIN)
def _adagrad(attrs, opset, inputs):
    what = "Adagrad"
    _check_opset(opset, what)
    r, t = _scalars(inputs, what)
    xs, gs, hs = _groups(inputs, 3, "X, G, H", what)
    decay = _float_attr(attrs, "decay_factor", 0.0, what)
    epsilon = _float_attr(attrs, "epsilon", 1e-6, what)
    norm = _float_attr(attrs, "norm_coefficient", 0.0, what)
    rate = r / (1 + t * decay)
    new_x, new_h = [], []
    for x, g, h in zip(xs, gs, hs):
        x64 = x.astype(np.float64)
        g_reg = norm * x64 + g
        h_new = h.astype(np.float64) + g_reg * g_reg
        new_x.append(x64 - rate * g_reg / (np.sqrt(h_new) + epsilon))
        new_h.append(h_new)
    return _rounded(new_x, xs) + _rounded(new_h, xs)


@op("Momentum", domain=DOMAIN)
def _momentum(attrs, opset, inputs):
    what = "Momentum"
    _check_opset(opset, what)
    r, t = _scalars(inputs, what)
    xs, gs, vs = _groups(inputs, 3, "X, G, V", what)
    alpha = _float_attr(attrs, "alpha", None, what)
    beta = _float_attr(attrs, "beta", None, what)
    norm = _float_attr(attrs, "norm_coefficient", None, what)
    if "mode" not in attrs:
        raise OnnxOpError(f"{what}: the mode attribute is required")
    mode = text_attr(attrs, "mode", "")
    if mode not in ("standard", "nesterov"):
        raise OnnxOpError(f"{what}: mode must be 'standard' or 'nesterov', got {mode!r}")
    beta = beta if t > 0 else 1.0  # the first update takes the whole gradient
    new_x, new_v = [], []
    for x, g, v in zip(xs, gs, vs):
        x64 = x.astype(np.float64)
        g_reg = norm * x64 + g
        v_new = alpha * v.astype(np.float64) + beta * g_reg
        step = g_reg + alpha * v_new if mode == "nesterov" else v_new
        new_x.append(x64 - r * step)
        new_v.append(v_new)
    return _rounded(new_x, xs) + _rounded(new_v, xs)
