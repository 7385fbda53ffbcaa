"""ONNX operators that index, scatter, sort and rearrange (numpy), registered in ``_ops.OPS``.

Gather/scatter families, TopK, NonZero, OneHot, CumSum, Trilu, EyeLike,
Compress, ReverseSequence, Unique, DepthToSpace/SpaceToDepth, Einsum and Hardmax,
as onnx/docs/Operators.md defines them (CastLike is in _ops, with Cast). Indices
may be negative (counted from the end) where the specification allows it; an
index out of range raises ``OnnxOpError`` instead of reading or writing outside
the array.
"""

from __future__ import annotations

import numpy as np

from pyvision_engine.onnx._ops import (OnnxOpError, _axis, contiguous, op, text_attr,
                                       wrap_indices)
from pyvision_engine.onnx._proto import DTYPES


# ----------------------------------------------------------------- gather and scatter
@op("GatherElements")
def _gather_elements(attrs, opset, inputs):
    x, idx = inputs
    axis = _axis(int(attrs.get("axis", 0)), x.ndim, "GatherElements")
    if idx.ndim != x.ndim:
        raise OnnxOpError(f"GatherElements: indices of rank {idx.ndim} for data of rank {x.ndim}")
    return [np.take_along_axis(x, wrap_indices(idx, x.shape[axis], "GatherElements"), axis=axis)]


def _nd_positions(data_shape, idx: np.ndarray, batch_dims: int, what: str):
    """GatherND/ScatterND: one index array per indexed data axis (the tuples' columns)."""
    depth = idx.shape[-1]
    if batch_dims + depth > len(data_shape):
        raise OnnxOpError(f"{what}: index tuples of length {depth} after {batch_dims} batch "
                          f"dimensions exceed data of rank {len(data_shape)}")
    return [wrap_indices(idx[..., i], data_shape[batch_dims + i], what) for i in range(depth)]


@op("GatherND")
def _gather_nd(attrs, opset, inputs):
    x, idx = inputs
    b = int(attrs.get("batch_dims", 0))
    if x.shape[:b] != idx.shape[:b]:
        raise OnnxOpError(f"GatherND: batch dimensions differ: data {x.shape}, indices {idx.shape}")
    columns = _nd_positions(x.shape, idx, b, "GatherND")
    batch = int(np.prod(x.shape[:b], dtype=np.int64))
    flat = x.reshape((batch,) + x.shape[b:])
    inner = tuple(c.reshape(batch, -1) for c in columns)
    rows = np.arange(batch).reshape(batch, 1)
    picked = flat[(rows,) + inner]  # (batch, tuples, rest of the data's dimensions)
    return [contiguous(picked.reshape(idx.shape[:-1] + x.shape[b + len(columns):]))]


_SCATTER_REDUCE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_into(out: np.ndarray, where: tuple, updates: np.ndarray, reduction: str,
                  what: str) -> np.ndarray:
    if reduction == "none":
        out[where] = updates
    elif reduction in _SCATTER_REDUCE:
        _SCATTER_REDUCE[reduction].at(out, where, updates)
    else:
        raise OnnxOpError(f"{what}: unknown reduction {reduction!r}")
    return out


@op("ScatterElements", "Scatter")
def _scatter_elements(attrs, opset, inputs):
    x, idx, updates = inputs
    axis = _axis(int(attrs.get("axis", 0)), x.ndim, "ScatterElements")
    if idx.shape != updates.shape or idx.ndim != x.ndim:
        raise OnnxOpError(f"ScatterElements: indices {idx.shape} and updates {updates.shape} "
                          f"must have one shape, of the data's rank {x.ndim}")
    where = list(np.indices(idx.shape, sparse=True))
    where[axis] = wrap_indices(idx, x.shape[axis], "ScatterElements")
    return [_scatter_into(x.copy(), tuple(where), updates,
                          text_attr(attrs, "reduction", "none"), "ScatterElements")]


@op("ScatterND")
def _scatter_nd(attrs, opset, inputs):
    x, idx, updates = inputs
    columns = _nd_positions(x.shape, idx, 0, "ScatterND")
    expected = idx.shape[:-1] + x.shape[len(columns):]
    if updates.shape != expected:
        raise OnnxOpError(f"ScatterND: updates of shape {updates.shape}, expected {expected}")
    return [_scatter_into(x.copy(), tuple(columns), updates,
                          text_attr(attrs, "reduction", "none"), "ScatterND")]


# ----------------------------------------------------------------- sorting and selection
def _descending_order(x: np.ndarray, axis: int) -> np.ndarray:
    """Indices sorting x descending along axis, equal values by ascending index."""
    n = x.shape[axis]
    ascending_of_flipped = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return (n - 1) - np.flip(ascending_of_flipped, axis)


@op("TopK")
def _top_k(attrs, opset, inputs):
    x = inputs[0]
    k = int(attrs["k"]) if opset < 10 else int(np.asarray(inputs[1]).reshape(-1)[0])
    axis = _axis(int(attrs.get("axis", -1)), x.ndim, "TopK")
    if not 0 <= k <= x.shape[axis]:
        raise OnnxOpError(f"TopK: k={k} for a dimension of size {x.shape[axis]}")
    if attrs.get("largest", 1):
        order = _descending_order(x, axis)
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    order = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, order, axis=axis), order.astype(np.int64)]


@op("NonZero")
def _non_zero(attrs, opset, inputs):
    return [np.asarray(np.nonzero(np.atleast_1d(inputs[0])), dtype=np.int64)]


@op("Unique")
def _unique(attrs, opset, inputs):
    x = inputs[0]
    axis = attrs.get("axis")
    if axis is not None:
        axis = _axis(int(axis), x.ndim, "Unique")
    values, first, inverse, counts = np.unique(
        x if axis is not None else x.reshape(-1), return_index=True, return_inverse=True,
        return_counts=True, axis=axis)
    inverse = inverse.reshape(-1)
    if not attrs.get("sorted", 1):  # in order of first occurrence
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        values = np.take(values, order, axis=0 if axis is None else axis)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    return [values, first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64)]


@op("Hardmax")
def _hardmax(attrs, opset, inputs):
    x = inputs[0]
    if opset < 13:  # coerced to 2-D at axis (default 1)
        axis = _axis(int(attrs.get("axis", 1)), x.ndim, "Hardmax")
        flat = x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
        out = np.zeros_like(flat)
        out[np.arange(flat.shape[0]), np.argmax(flat, axis=1)] = 1
        return [out.reshape(x.shape)]
    axis = _axis(int(attrs.get("axis", -1)), x.ndim, "Hardmax")
    out = np.zeros_like(x)
    np.put_along_axis(out, np.expand_dims(np.argmax(x, axis=axis), axis), 1, axis=axis)
    return [out]


@op("OneHot")
def _one_hot(attrs, opset, inputs):
    idx, depth, values = inputs
    depth = int(np.asarray(depth).reshape(-1)[0])
    if depth < 1:
        raise OnnxOpError(f"OneHot: depth must be positive, got {depth}")
    values = np.asarray(values).reshape(-1)
    if values.size != 2:
        raise OnnxOpError(f"OneHot: values must be [off, on], got {values.size} values")
    rank = idx.ndim + 1
    axis = _axis(int(attrs.get("axis", -1)), rank, "OneHot")
    idx = np.asarray(idx).astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)  # out of range afterwards: all "off"
    classes = np.arange(depth).reshape((1,) * axis + (depth,) + (1,) * (rank - axis - 1))
    hot = np.expand_dims(idx, axis) == classes
    return [np.where(hot, values[1], values[0]).astype(values.dtype)]


# ----------------------------------------------------------------- along an axis
@op("CumSum")
def _cum_sum(attrs, opset, inputs):
    x = inputs[0]
    axis = _axis(int(np.asarray(inputs[1]).reshape(-1)[0]), x.ndim, "CumSum")
    y = np.flip(x, axis) if attrs.get("reverse", 0) else x
    total = np.cumsum(y, axis=axis, dtype=x.dtype)
    if attrs.get("exclusive", 0):
        total = total - y
    return [contiguous(np.flip(total, axis) if attrs.get("reverse", 0) else total)]


@op("Compress")
def _compress(attrs, opset, inputs):
    x, condition = inputs
    condition = np.asarray(condition).reshape(-1).astype(bool)
    if "axis" not in attrs:
        return [np.compress(condition, x.reshape(-1))]
    axis = _axis(int(attrs["axis"]), x.ndim, "Compress")
    if condition.size > x.shape[axis]:
        raise OnnxOpError(f"Compress: {condition.size} conditions for a dimension of "
                          f"size {x.shape[axis]}")
    return [np.compress(condition, x, axis=axis)]


@op("ReverseSequence")
def _reverse_sequence(attrs, opset, inputs):
    x, lengths = inputs
    batch_axis = _axis(int(attrs.get("batch_axis", 1)), x.ndim, "ReverseSequence")
    time_axis = _axis(int(attrs.get("time_axis", 0)), x.ndim, "ReverseSequence")
    lengths = np.asarray(lengths).reshape(-1)
    if lengths.size != x.shape[batch_axis]:
        raise OnnxOpError(f"ReverseSequence: {lengths.size} lengths for a batch of "
                          f"{x.shape[batch_axis]}")
    out = x.copy()
    for b, length in enumerate(lengths):
        length = int(length)
        if not 0 <= length <= x.shape[time_axis]:
            raise OnnxOpError(f"ReverseSequence: length {length} for {x.shape[time_axis]} steps")
        index = [slice(None)] * x.ndim
        index[batch_axis], index[time_axis] = b, slice(0, length)
        source = [slice(None)] * x.ndim
        source[batch_axis] = b
        source[time_axis] = slice(length - 1, None, -1) if length else slice(0, 0)
        out[tuple(index)] = x[tuple(source)]
    return [out]


@op("Trilu")
def _trilu(attrs, opset, inputs):
    x = inputs[0]
    k = int(np.asarray(inputs[1]).reshape(-1)[0]) if len(inputs) > 1 and inputs[1] is not None else 0
    if x.ndim < 2:
        raise OnnxOpError(f"Trilu: the input needs rank 2 or more, got {x.shape}")
    return [np.triu(x, k) if attrs.get("upper", 1) else np.tril(x, k)]


@op("EyeLike")
def _eye_like(attrs, opset, inputs):
    x = inputs[0]
    if x.ndim != 2:
        raise OnnxOpError(f"EyeLike: the input must be 2-D, got {x.shape}")
    dtype = DTYPES[int(attrs["dtype"])] if "dtype" in attrs else x.dtype
    return [np.eye(x.shape[0], x.shape[1], int(attrs.get("k", 0)), dtype=dtype)]


# ----------------------------------------------------------------- layout
@op("DepthToSpace")
def _depth_to_space(attrs, opset, inputs):
    x = inputs[0]
    bs = int(attrs["blocksize"])
    if x.ndim != 4 or x.shape[1] % (bs * bs):
        raise OnnxOpError(f"DepthToSpace: channels of {x.shape} are not divisible by "
                          f"blocksize^2 = {bs * bs}")
    n, c, h, w = x.shape
    if text_attr(attrs, "mode", "DCR") == "DCR":
        y = x.reshape(n, bs, bs, c // (bs * bs), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:  # CRD
        y = x.reshape(n, c // (bs * bs), bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
    return [contiguous(y.reshape(n, c // (bs * bs), h * bs, w * bs))]


@op("SpaceToDepth")
def _space_to_depth(attrs, opset, inputs):
    x = inputs[0]
    bs = int(attrs["blocksize"])
    if x.ndim != 4 or x.shape[2] % bs or x.shape[3] % bs:
        raise OnnxOpError(f"SpaceToDepth: height and width of {x.shape} are not divisible by "
                          f"blocksize {bs}")
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // bs, bs, w // bs, bs)
    if text_attr(attrs, "mode", "DCR") == "DCR":
        y = y.transpose(0, 3, 5, 1, 2, 4)
    else:  # CRD
        y = y.transpose(0, 1, 3, 5, 2, 4)
    return [contiguous(y.reshape(n, c * bs * bs, h // bs, w // bs))]


@op("Einsum")
def _einsum(attrs, opset, inputs):
    equation = text_attr(attrs, "equation", "").replace(" ", "")
    return [np.asarray(np.einsum(equation, *inputs), dtype=inputs[0].dtype)]
