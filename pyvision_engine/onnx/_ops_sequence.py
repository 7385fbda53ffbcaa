"""ONNX sequence and optional operators, registered in ``_ops.OPS``.

A sequence value is a Python list of numpy arrays (one element type); an optional value
is None when empty, else its element (a tensor or a sequence), as onnxruntime's Python
API holds them. Operators never change a list they are given: they return new ones.

- SequenceEmpty, SequenceConstruct, SequenceInsert, SequenceAt, SequenceErase,
  SequenceLength, ConcatFromSequence (opset 11), SplitToSequence (11, 24).
  Positions count from the back when negative: [-n, n] for SequenceInsert, [-n, n - 1]
  for SequenceAt and SequenceErase; out of range is an error.
- Optional (15, 28), OptionalHasElement (15, 18, 28), OptionalGetElement (15, 18, 28):
  from opset 18 on the last two also take a plain tensor or sequence.
- Identity (every opset) passes sequences and optionals through too.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from pyvision_engine.onnx._ops import OPS, OnnxOpError, contiguous, op
from pyvision_engine.onnx._ops_control import describe, one_value, tensor_value
from pyvision_engine.onnx._proto import DTYPES


def _sequence(value: Any, what: str) -> List[np.ndarray]:
    if not isinstance(value, list):
        raise OnnxOpError(f"{what} must be a sequence, got {describe(value)}")
    return value


def _input(inputs: List[Any], i: int) -> Any:
    """Input i, or None when the node omits it."""
    return inputs[i] if i < len(inputs) else None


def _same_type(seq: List[np.ndarray], tensor: np.ndarray, what: str) -> None:
    """A sequence holds one element type (an empty one accepts any: it keeps none here)."""
    if seq and tensor.dtype != seq[0].dtype:
        raise OnnxOpError(f"{what}: the tensor must have the sequence's element type "
                          f"{seq[0].dtype}, got {tensor.dtype}")


def _position(value: Any, size: int, inclusive_end: bool, what: str) -> int:
    """A position in [-size, size) (or [-size, size] with ``inclusive_end``) as an index."""
    position = int(one_value(value, "iu", f"{what}: position"))
    high = size if inclusive_end else size - 1
    if not -size <= position <= high:
        raise OnnxOpError(f"{what}: position {position} is out of range for a sequence of "
                          f"{size} tensors (accepted: [{-size}, {high}])")
    return position + size if position < 0 else position


# ----------------------------------------------------------------- sequences
@op("SequenceEmpty")
def _sequence_empty(attrs: Dict[str, Any], opset: int, inputs: List[Any]) -> List[Any]:
    code = int(attrs.get("dtype", 1))
    if code not in DTYPES:
        raise OnnxOpError(f"SequenceEmpty: dtype {code} is not a tensor type pve.onnx holds")
    return [[]]


@op("SequenceConstruct")
def _sequence_construct(attrs: Dict[str, Any], opset: int, inputs: List[Any]) -> List[Any]:
    tensors = [tensor_value(x, f"SequenceConstruct: input {i}") for i, x in enumerate(inputs)]
    if len({t.dtype for t in tensors}) > 1:
        raise OnnxOpError(f"SequenceConstruct: the inputs must have one type, got "
                          f"{[str(t.dtype) for t in tensors]}")
    return [tensors]


@op("SequenceInsert")
def _sequence_insert(attrs: Dict[str, Any], opset: int, inputs: List[Any]) -> List[Any]:
    seq = _sequence(inputs[0], "SequenceInsert: input_sequence")
    tensor = tensor_value(inputs[1], "SequenceInsert: tensor")
    _same_type(seq, tensor, "SequenceInsert")
    where = _input(inputs, 2)
    k = len(seq) if where is None else _position(where, len(seq), True, "SequenceInsert")
    return [seq[:k] + [tensor] + seq[k:]]


@op("SequenceAt")
def _sequence_at(attrs: Dict[str, Any], opset: int, inputs: List[Any]) -> List[Any]:
    seq = _sequence(inputs[0], "SequenceAt: input_sequence")
    return [seq[_position(inputs[1], len(seq), False, "SequenceAt")]]


@op("SequenceErase")
def _sequence_erase(attrs: Dict[str, Any], opset: int, inputs: List[Any]) -> List[Any]:
    seq = _sequence(inputs[0], "SequenceErase: input_sequence")
    where = _input(inputs, 1)
    where = np.array(-1) if where is None else where  # (the last tensor by default)
    k = _position(where, len(seq), False, "SequenceErase")
    return [seq[:k] + seq[k + 1:]]


@op("SequenceLength")
def _sequence_length(attrs: Dict[str, Any], opset: int, inputs: List[Any]) -> List[Any]:
    return [np.array(len(_sequence(inputs[0], "SequenceLength: input_sequence")), np.int64)]


def _split_sizes(split: Optional[np.ndarray], size: int) -> Optional[List[int]]:
    """The chunk sizes given by ``split`` along an axis of ``size`` (None: not given)."""
    if split is None or (split.ndim == 1 and split.size == 0):
        return None  # (an empty 1-D split means none, as onnxruntime reads it)
    if split.dtype.kind not in "iu" or split.ndim > 1:
        raise OnnxOpError(f"SplitToSequence: split must be an integer scalar or 1-D tensor, "
                          f"got {describe(split)}")
    if split.ndim == 0:  # chunks of that size, the last one maybe smaller
        chunk = int(split)
        if chunk <= 0:
            raise OnnxOpError(f"SplitToSequence: a scalar split must be positive, got {chunk}")
        return [min(chunk, size - start) for start in range(0, size, chunk)]
    sizes = [int(v) for v in split]
    if any(v < 0 for v in sizes) or sum(sizes) != size:
        raise OnnxOpError(f"SplitToSequence: split {sizes} must be sizes >= 0 summing to the "
                          f"split axis' size {size}")
    return sizes


@op("SplitToSequence")
def _split_to_sequence(attrs: Dict[str, Any], opset: int, inputs: List[Any]) -> List[Any]:
    x = tensor_value(inputs[0], "SplitToSequence: input")
    axis = int(attrs.get("axis", 0))
    if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
        raise OnnxOpError(f"SplitToSequence: axis {axis} is out of range for rank {x.ndim}")
    axis %= x.ndim
    split = _input(inputs, 1)
    sizes = _split_sizes(None if split is None else tensor_value(split, "SplitToSequence: split"),
                         x.shape[axis])
    if sizes is None:  # pieces of 1, without the axis when keepdims is 0
        pieces = np.split(x, x.shape[axis], axis=axis) if x.shape[axis] else []
        if not attrs.get("keepdims", 1):
            pieces = [np.squeeze(p, axis=axis) for p in pieces]
    else:  # (keepdims is ignored when split is given)
        pieces = np.split(x, np.cumsum(sizes)[:-1], axis=axis) if sizes else []
    return [[contiguous(p) for p in pieces]]


@op("ConcatFromSequence")
def _concat_from_sequence(attrs: Dict[str, Any], opset: int, inputs: List[Any]) -> List[Any]:
    seq = _sequence(inputs[0], "ConcatFromSequence: input_sequence")
    if not seq:
        raise OnnxOpError("ConcatFromSequence: the sequence is empty (nothing to concatenate)")
    if "axis" not in attrs:
        raise OnnxOpError("ConcatFromSequence: attribute 'axis' is required")
    axis, new_axis = int(attrs["axis"]), bool(attrs.get("new_axis", 0))
    rank = seq[0].ndim + (1 if new_axis else 0)
    if not -rank <= axis < rank or rank == 0:
        raise OnnxOpError(f"ConcatFromSequence: axis {axis} is out of range for tensors of "
                          f"rank {seq[0].ndim}{' with new_axis' if new_axis else ''}")
    if len({t.dtype for t in seq}) > 1:
        raise OnnxOpError(f"ConcatFromSequence: the tensors must have one type, got "
                          f"{sorted({str(t.dtype) for t in seq})}")
    try:
        y = np.stack(seq, axis=axis) if new_axis else np.concatenate(seq, axis=axis)
    except ValueError:
        raise OnnxOpError(f"ConcatFromSequence: the tensors' shapes "
                          f"{[list(t.shape) for t in seq]} do not "
                          f"{'stack' if new_axis else 'concatenate'} on axis {axis}") from None
    return [y]


# ----------------------------------------------------------------- optionals
@op("Optional")
def _optional(attrs: Dict[str, Any], opset: int, inputs: List[Any]) -> List[Any]:
    value = _input(inputs, 0)
    if value is None and attrs.get("type") is None:
        raise OnnxOpError("Optional: an empty optional needs its attribute 'type'")
    return [value]  # (an optional holding a value is the value itself)


@op("OptionalHasElement")
def _optional_has_element(attrs: Dict[str, Any], opset: int, inputs: List[Any]) -> List[Any]:
    return [np.array(_input(inputs, 0) is not None)]


@op("OptionalGetElement")
def _optional_get_element(attrs: Dict[str, Any], opset: int, inputs: List[Any]) -> List[Any]:
    value = _input(inputs, 0)
    if value is None:
        raise OnnxOpError("OptionalGetElement: the optional input is empty (no element)")
    return [value]


_tensor_identity = OPS["Identity"]


@op("Identity")
def _identity(attrs: Dict[str, Any], opset: int, inputs: List[Any]) -> List[Any]:
    value = _input(inputs, 0)
    if value is None or isinstance(value, list):  # an optional or a sequence (opset 14, 16)
        return [value]
    return _tensor_identity(attrs, opset, inputs)
