"""torch.nn.utils.rnn: PackedSequence and the functions that pack, pad and unpad batches of
variable-length sequences.

A PackedSequence holds the time steps of a batch sorted by length (longest first) one after
the other: ``data`` (sum of lengths, *) has step t's rows for the ``batch_sizes[t]``
sequences still running at t. Packing and padding move rows between the two layouts in one
differentiable gather (_MoveRows), so gradients flow through them as in torch."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine.autograd import Function
from pyvision_engine.nn import functional as F
from pyvision_engine.nn._f_common import (AssertionValueError, RankError, RuntimeTypeError,
                                          RuntimeValueError)
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence",
           "pad_packed_sequence", "pad_sequence", "unpad_sequence", "pack_sequence",
           "unpack_sequence"]

_PAD = -1  # a _MoveRows source row that means "the padding value"


def _index_tensor(values: Any) -> Tensor:
    """An int64 Tensor of ``values`` (a Tensor, array or list)."""
    if isinstance(values, Tensor):
        return values if values.dtype == np.int64 else values.long()
    return Tensor(np.asarray(values).astype(np.int64))


def _int_array(values: Tensor) -> np.ndarray:
    return np.asarray(values.numpy(), dtype=np.int64)


_PackedSequenceFields = namedtuple("PackedSequence_",
                                   ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])


class PackedSequence(_PackedSequenceFields):
    """torch.nn.utils.rnn.PackedSequence: a named tuple (data, batch_sizes, sorted_indices,
    unsorted_indices). ``batch_sizes[t]`` is how many sequences run at step t;
    ``sorted_indices[i]`` is the batch position of the i-th longest sequence (None when
    the batch came sorted) and ``unsorted_indices`` its inverse. Made by
    pack_padded_sequence / pack_sequence; RNN, LSTM and GRU take and return it.

    PackedSequence(data, batch_sizes, sorted_indices=None, unsorted_indices=None), or
    PackedSequence((data, batch_sizes), sorted_indices=...) as torch; a missing
    unsorted_indices is computed from sorted_indices."""

    def __new__(cls, data: Any, batch_sizes: Any = None, sorted_indices: Any = None,
                unsorted_indices: Any = None) -> "PackedSequence":
        if batch_sizes is None:
            if not (isinstance(data, (list, tuple)) and len(data) == 2):
                raise AssertionValueError("PackedSequence: Expected data to be a list or "
                                          "tuple of length 2, (data, batch_sizes)")
            data, batch_sizes = data
        if sorted_indices is not None:
            sorted_indices = _index_tensor(sorted_indices)
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        else:
            unsorted_indices = _index_tensor(unsorted_indices)
        return super().__new__(cls, as_tensor(data), _index_tensor(batch_sizes),
                               sorted_indices, unsorted_indices)

    def to(self, *args: Any, **kwargs: Any) -> "PackedSequence":
        """``data.to(...)`` (this engine is CPU-only, so only a dtype changes anything):
        self when the data is unchanged, else a new PackedSequence with the same
        batch sizes and indices."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        return type(self)(data, self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    def cpu(self) -> "PackedSequence":
        return self

    def float(self) -> "PackedSequence":
        return self.to(dtype=np.float32)

    def long(self) -> "PackedSequence":
        return self.to(dtype=np.int64)

    @property
    def is_cuda(self) -> bool:
        return False

    def is_pinned(self) -> bool:
        return False


def invert_permutation(permutation: Optional[Any]) -> Optional[Tensor]:
    """The inverse of a permutation of 0..n-1 (None stays None)."""
    if permutation is None:
        return None
    order = _int_array(_index_tensor(permutation))
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size, dtype=np.int64)
    return Tensor(inverse)


# ------------------------------------------------------------------ moving rows, differentiably
class _MoveRows(Function):
    """out[i] = x[source[i]] over x's first dim, or ``fill`` where source[i] is _PAD. Every
    row of x goes to at most one place, so backward moves the gradient back (zero for rows
    nothing took)."""

    owns_grads = True
    saved_inputs = ()  # backward reads only the row map
    saves_output = False

    @staticmethod
    def forward(ctx, x, source, fill):
        taken = source != _PAD
        out = np.empty((source.size,) + x.shape[1:], x.dtype)
        out[taken] = x[source[taken]]
        out[~taken] = fill  # (cast to x's dtype, as torch fills an integer tensor)
        ctx.source, ctx.taken, ctx.rows = source, taken, x.shape[0]
        return out

    @staticmethod
    def backward(ctx, grad):
        g = np.zeros((ctx.rows,) + grad.shape[1:], np.float32)
        g[ctx.source[ctx.taken]] = grad[ctx.taken]
        return (g,)


def _move_rows(x: Tensor, source: np.ndarray, fill: Any = 0) -> Tensor:
    return _MoveRows.apply(x, source=source.ravel(), fill=fill)


def _lengths_of(batch_sizes: np.ndarray) -> np.ndarray:
    """Each sorted sequence's length: the number of steps it runs in."""
    return (batch_sizes[None, :] > np.arange(batch_sizes[0])[:, None]).sum(axis=1)


def _step_offsets(batch_sizes: np.ndarray) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(batch_sizes)[:-1])).astype(np.int64)


# ------------------------------------------------------------------ pack / pad
def _lengths_arg(lengths: Any) -> np.ndarray:
    """``lengths`` (a list or a Tensor / array) as int64 (floats truncated, as torch)."""
    if isinstance(lengths, Tensor):
        values = lengths.detach().numpy()
    else:
        values = np.asarray(lengths)
    if values.dtype == object or values.dtype.kind not in "biuf":
        raise TypeError(f"pack_padded_sequence: lengths must be a list of ints or an integer "
                        f"tensor, got {type(lengths).__name__}")
    values = values.astype(np.int64)
    if values.ndim != 1:
        raise RuntimeValueError("pack_padded_sequence: 'lengths' argument should be a 1D "
                                f"CPU int64 tensor, but got {values.ndim}D tensor")
    return values


def _steps_and_batch(input: Tensor, batch_first: bool) -> Tuple[int, int]:
    if input.ndim < 2:
        raise RankError(f"pack_padded_sequence: input must have at least 2 dimensions (time "
                        f"and batch), got {input.ndim}")
    steps, batch = input.shape[:2]
    return (batch, steps) if batch_first else (steps, batch)


def _check_packable(input: Tensor, lengths: np.ndarray, batch_first: bool) -> Tuple[int, int]:
    """torch's checks of the input and the number of lengths (its C++
    _pack_padded_sequence's, in its order); returns (steps, batch)."""
    steps, batch = _steps_and_batch(input, batch_first)
    if input.numel() == 0:
        raise RuntimeValueError("pack_padded_sequence: Cannot pack empty tensors.")
    if lengths.size != batch:
        raise RuntimeValueError("pack_padded_sequence: Expected `len(lengths)` to be equal to "
                                f"batch_size, but got {lengths.size} (batch_size={batch})")
    return steps, batch


def _check_sorted_lengths(lengths: np.ndarray, steps: int) -> None:
    """torch's checks of the (sorted) lengths, then one for a length longer than the input,
    which torch lets through into a broken PackedSequence."""
    if lengths[-1] <= 0:
        raise RuntimeValueError("pack_padded_sequence: Length of all samples has to be greater "
                                "than 0, but found an element in 'lengths' that is <= 0")
    if np.any(lengths[1:] > lengths[:-1]):
        raise RuntimeValueError(
            "pack_padded_sequence: `lengths` array must be sorted in decreasing order when "
            "`enforce_sorted` is True. You can pass `enforce_sorted=False` to "
            "pack_padded_sequence and/or pack_sequence to sidestep this requirement if you do "
            "not need ONNX exportability.")
    if lengths[0] > steps:
        raise RuntimeValueError(f"pack_padded_sequence: a length of {lengths[0]} is longer "
                                f"than the input's {steps} time steps")


def pack_padded_sequence(input: Any, lengths: Any, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch: input (T, B, *) or (B, T, *) if batch_first, lengths (B,) a
    list or int64 tensor. With enforce_sorted the lengths must be non-increasing; else the
    batch is sorted by length (longest first; equal lengths keep their order) and the
    PackedSequence records the permutation. Differentiable w.r.t. input."""
    input = as_tensor(input)
    lengths = _lengths_arg(lengths)
    steps, batch = _check_packable(input, lengths, batch_first)
    sorted_indices = None
    if not enforce_sorted:
        sorted_indices = np.argsort(-lengths, kind="stable")
        lengths = lengths[sorted_indices]
    _check_sorted_lengths(lengths, steps)
    batch_sizes = (lengths[None, :] > np.arange(lengths[0])[:, None]).sum(axis=1)
    # the input row of each step's sequences (the longest first), step after step
    order = np.arange(batch) if sorted_indices is None else sorted_indices
    if batch_first:
        source = [order[:size] * steps + t for t, size in enumerate(batch_sizes)]
    else:
        source = [t * batch + order[:size] for t, size in enumerate(batch_sizes)]
    rows = input.reshape((steps * batch,) + tuple(input.shape[2:]))
    data = _move_rows(rows, np.concatenate(source))
    return PackedSequence(data, Tensor(batch_sizes.astype(np.int64)),
                          None if sorted_indices is None else Tensor(sorted_indices))


def _checked_batch_sizes(sequence: Any, op: str) -> np.ndarray:
    """A PackedSequence's batch sizes as int64, checked against its data."""
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{op}: expected a PackedSequence, got {type(sequence).__name__}")
    sizes = _int_array(sequence.batch_sizes)
    data = sequence.data
    if (sizes.ndim != 1 or sizes.size == 0 or sizes[-1] <= 0 or np.any(sizes[1:] > sizes[:-1])
            or data.ndim == 0 or sizes.sum() != data.shape[0]):
        raise ValueError(f"{op}: batch_sizes must be a non-empty, non-increasing 1-D tensor of "
                         f"positive sizes summing to data's {data.shape[0] if data.ndim else 0}"
                         f" rows, got {sizes.tolist()}")
    return sizes


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False,
                        padding_value: float = 0.0, total_length: Optional[int] = None
                        ) -> Tuple[Tensor, Tensor]:
    """The inverse of pack_padded_sequence: (padded (T, B, *) or (B, T, *), lengths (B,)
    int64), in the batch order the sequences were packed from. T is the longest length,
    or ``total_length`` (not less than it). Differentiable w.r.t. the packed data."""
    batch_sizes = _checked_batch_sizes(sequence, "pad_packed_sequence")
    steps = batch_sizes.size
    if total_length is not None:
        if total_length < steps:
            raise ValueError("Expected total_length to be at least the length of the longest "
                             f"sequence in input, but got total_length={total_length} and max "
                             f"sequence length being {steps}")
        steps = int(total_length)
    batch = int(batch_sizes[0])
    lengths = _lengths_of(batch_sizes)
    # rows[t, i]: the data row of step t of the i-th longest sequence, or padding
    rows = np.full((steps, batch), _PAD, dtype=np.int64)
    offsets = _step_offsets(batch_sizes)
    for t, size in enumerate(batch_sizes):
        rows[t, :size] = offsets[t] + np.arange(size)
    if sequence.unsorted_indices is not None:
        unsorted = _int_array(sequence.unsorted_indices)
        rows, lengths = rows[:, unsorted], lengths[unsorted]
    if batch_first:
        rows = rows.T
    data = sequence.data
    padded = _move_rows(data, rows, padding_value).reshape(rows.shape + tuple(data.shape[1:]))
    return padded, Tensor(lengths.astype(np.int64))


def _sequence_list(sequences: Any, padding_side: str) -> List[Tensor]:
    """pad_sequence's arguments checked (torch's checks in its order, then the shapes)."""
    if not isinstance(sequences, Iterable):
        raise RuntimeTypeError("pad_sequence: Expected iterable for input sequences, but got "
                               f"arg of type: {type(sequences)}")
    sequences = [as_tensor(s) for s in sequences]
    if not sequences:
        raise RuntimeValueError("pad_sequence: received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise RuntimeValueError("pad_sequence: Expected padding_side to be one of left or "
                                f"right, but got {padding_side}.")
    trailing = tuple(sequences[0].shape[1:])
    for i, s in enumerate(sequences):
        if s.ndim == 0:
            raise RuntimeValueError(f"pad_sequence: sequence {i} is a 0-D tensor; each sequence "
                                    "needs a first (length) dimension")
        if tuple(s.shape[1:]) != trailing:
            raise RuntimeValueError(f"pad_sequence: sequence {i} has trailing shape "
                                    f"{tuple(s.shape[1:])}, but sequence 0 has {trailing}")
    return sequences


def pad_sequence(sequences: Any, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack variable-length sequences (each (L_i, *)) into (T, B, *), or (B, T, *) if
    batch_first, T the longest length, padding with ``padding_value`` after each sequence
    (padding_side 'right') or before it ('left'). The result has the first sequence's
    dtype. Differentiable w.r.t. every sequence."""
    sequences = _sequence_list(sequences, padding_side)
    dtype = sequences[0].dtype
    lengths = np.array([s.shape[0] for s in sequences], dtype=np.int64)
    steps, batch = int(lengths.max()), lengths.size
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))  # each sequence's first row
    rows = np.full((steps, batch), _PAD, dtype=np.int64)
    for b, (start, length) in enumerate(zip(starts, lengths)):
        first = 0 if padding_side == "right" else steps - length
        rows[first:first + length, b] = start + np.arange(length)
    if batch_first:
        rows = rows.T
    stacked = F.cat([s if s.dtype == dtype else s.to(dtype) for s in sequences], dim=0)
    return _move_rows(stacked, rows, padding_value).reshape(
        rows.shape + tuple(sequences[0].shape[1:]))


def unpad_sequence(padded_sequences: Any, lengths: Any, batch_first: bool = False
                   ) -> List[Tensor]:
    """The sequences of a padded batch, each cut to its length: a list of (L_i, *).
    (torch transposes a sequence-first ``padded_sequences`` in place; this engine's
    tensors stay as they are.)"""
    padded = as_tensor(padded_sequences)
    if padded.ndim < 2:
        raise RankError("unpad_sequence: padded_sequences must have at least 2 dimensions "
                        f"(time and batch), got {padded.ndim}")
    if not batch_first:
        padded = padded.transpose(0, 1)
    counts = np.asarray(lengths.numpy() if isinstance(lengths, Tensor) else lengths)
    if counts.ndim != 1 or counts.size != padded.shape[0]:
        raise ValueError(f"unpad_sequence: expected one length per sequence ({padded.shape[0]}"
                         f"), got lengths of shape {tuple(counts.shape)}")
    steps = padded.shape[1]
    # (torch keeps the steps whose index is below the length: all of them for a longer one)
    return [padded[b][:int(min(max(length, 0), steps))] for b, length in enumerate(counts)]


def pack_sequence(sequences: Sequence[Any], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences (each (L_i, *)): pad_sequence then pack_padded_sequence."""
    padded = pad_sequence(sequences)
    lengths = [as_tensor(s).shape[0] for s in sequences]
    return pack_padded_sequence(padded, lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> List[Tensor]:
    """The sequences of a PackedSequence, in their original batch order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
