"""ONNX loss, signal and miscellaneous operators, registered in ``_ops.OPS``, in numpy.

- NegativeLogLikelihoodLoss (opsets 12, 13, 22) and SoftmaxCrossEntropyLoss (12, 13):
  reduction none | sum | mean, optional class weights, ignore_index (negative too),
  inputs (N, C, d1, ..., dk) of any rank >= 2, SoftmaxCrossEntropyLoss's optional
  log_prob output. "mean" divides by the summed weights of the targets that are not
  ignored (by their count without weights), as the specification and torch do.
- CumProd (26): exclusive, reverse, the axis as a 0-d or 1-element tensor.
- CenterCropPad (18) with axes; Det (11, 22), batched.
- BlackmanWindow, HammingWindow, HannWindow (17): periodic, output_datatype.
- DFT (17: axis attribute; 20: axis input): forward, inverse, onesided (RFFT / IRFFT),
  dft_length, real ([..., 1]) or complex ([..., 2]) input. STFT (17), MelWeightMatrix (17).
- BitCast (26): the same bits read as another type of the same bit width, between the
  types pve.onnx holds (not string or complex).

Float work is done in float64 (the Fourier transforms: see _complex_signal) and the
result given in the input's float type (or the requested output_datatype), so float16
and float64 inputs keep their type.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from pyvision_engine.onnx._ops import OnnxOpError, _ints, contiguous, op, text_attr
from pyvision_engine.onnx._proto import DTYPES, TYPE_NAMES

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _opt(inputs: List[Optional[np.ndarray]], i: int) -> Optional[np.ndarray]:
    """Input i, or None when the node omits it (empty name or fewer inputs)."""
    return inputs[i] if i < len(inputs) else None


def _scalar_int(value: np.ndarray, what: str, name: str) -> int:
    values = np.asarray(value)
    if values.size != 1 or values.dtype.kind not in "iu":
        raise OnnxOpError(f"{what}: {name} must be one integer (a 0-d or 1-element tensor), "
                          f"got shape {values.shape} of {values.dtype}")
    return int(values.reshape(-1)[0])


def _float_input(x: np.ndarray, what: str, name: str = "input") -> None:
    if x.dtype not in _FLOATS:
        raise OnnxOpError(f"{what}: {name} must be float16, float or double, got {x.dtype}")


def _output_dtype(attrs: Dict[str, Any], what: str, floats_only: bool = False) -> np.dtype:
    code = int(attrs.get("output_datatype", 1))
    dtype = DTYPES.get(code)
    if dtype is None or dtype == np.bool_ or (floats_only and dtype not in _FLOATS):
        raise OnnxOpError(f"{what}: output_datatype {code} is not a type it can produce here "
                          f"(float16, float, double{'' if floats_only else ' or an integer type'})")
    return dtype


# ----------------------------------------------------------------- losses
def _nll(attrs: Dict[str, Any], log_prob: np.ndarray, target: np.ndarray,
         weight: Optional[np.ndarray], what: str) -> np.ndarray:
    """The negative log likelihood of ``log_prob`` (N, C, d1..dk, float64) at ``target``
    (N, d1..dk), weighted and reduced as the node says (float64)."""
    reduction = text_attr(attrs, "reduction", "mean")
    if reduction not in ("none", "sum", "mean"):
        raise OnnxOpError(f"{what}: reduction must be 'none', 'sum' or 'mean', got {reduction!r}")
    if log_prob.ndim < 2:
        raise OnnxOpError(f"{what}: input (N, C, d1, ..., dk) of rank >= 2 expected, got "
                          f"shape {log_prob.shape}")
    expected = (log_prob.shape[0],) + log_prob.shape[2:]
    if target.shape != expected:
        raise OnnxOpError(f"{what}: target of shape {expected} expected for input "
                          f"{log_prob.shape}, got {target.shape}")
    if target.dtype.kind not in "iu":
        raise OnnxOpError(f"{what}: target must be int32 or int64, got {target.dtype}")
    classes = log_prob.shape[1]
    if weight is not None and weight.shape != (classes,):
        raise OnnxOpError(f"{what}: weight of shape ({classes},) expected, got {weight.shape}")
    target = target.astype(np.int64)
    if "ignore_index" in attrs:
        ignored = target == int(attrs["ignore_index"])
    else:
        ignored = np.zeros(target.shape, bool)
    bad = ~ignored & ((target < 0) | (target >= classes))
    if bad.any():
        raise OnnxOpError(f"{what}: target {int(target[bad][0])} is out of range for {classes} "
                          "classes (and is not ignore_index)")
    safe = np.where(ignored, 0, target)  # (ignored positions read class 0, then weigh 0)
    picked = np.take_along_axis(log_prob, safe[:, None], axis=1)[:, 0]
    w = np.ones(target.shape) if weight is None else weight.astype(np.float64)[safe]
    w = np.where(ignored, 0.0, w)
    loss = np.where(ignored, 0.0, -picked * w)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.asarray(loss.sum())
    with np.errstate(invalid="ignore", divide="ignore"):  # all ignored: nan, as torch
        return np.asarray(loss.sum() / w.sum())


@op("NegativeLogLikelihoodLoss")
def _nll_loss(attrs, opset, inputs):
    x, target, weight = inputs[0], inputs[1], _opt(inputs, 2)
    what = "NegativeLogLikelihoodLoss"
    _float_input(x, what)
    loss = _nll(attrs, x.astype(np.float64), np.asarray(target), weight, what)
    return [contiguous(loss, dtype=x.dtype)]


@op("SoftmaxCrossEntropyLoss")
def _softmax_cross_entropy_loss(attrs, opset, inputs):
    x, target, weight = inputs[0], inputs[1], _opt(inputs, 2)
    what = "SoftmaxCrossEntropyLoss"
    _float_input(x, what, "scores")
    if x.ndim < 2:
        raise OnnxOpError(f"{what}: scores (N, C, d1, ..., dk) of rank >= 2 expected, got "
                          f"shape {x.shape}")
    z = x.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)  # (log-sum-exp without overflow)
    log_prob = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = _nll(attrs, log_prob, np.asarray(target), weight, what)
    return [contiguous(loss, dtype=x.dtype), contiguous(log_prob, dtype=x.dtype)]


# ----------------------------------------------------------------- along an axis, shapes
@op("CumProd")
def _cum_prod(attrs, opset, inputs):
    x = inputs[0]
    axis = _scalar_int(inputs[1], "CumProd", "axis")
    if not -x.ndim <= axis < x.ndim:
        raise OnnxOpError(f"CumProd: axis {axis} is out of range for rank {x.ndim}")
    axis %= x.ndim
    reverse = bool(attrs.get("reverse", 0))
    y = np.flip(x, axis) if reverse else x
    if attrs.get("exclusive", 0) and x.shape[axis]:
        # each product leaves its own element out: shift one place along the axis, 1 first
        ones = np.ones_like(np.take(y, [0], axis=axis))
        y = np.concatenate([ones, np.take(y, np.arange(x.shape[axis] - 1), axis=axis)], axis)
    total = np.cumprod(y, axis=axis, dtype=x.dtype)
    return [contiguous(np.flip(total, axis) if reverse else total)]


@op("CenterCropPad")
def _center_crop_pad(attrs, opset, inputs):
    x, shape = inputs[0], _ints(inputs[1])
    rank = x.ndim
    axes = list(range(rank)) if attrs.get("axes") is None else [int(a) for a in attrs["axes"]]
    if any(not -rank <= a < rank for a in axes):
        raise OnnxOpError(f"CenterCropPad: axes {axes} out of range for rank {rank}")
    axes = [a % rank for a in axes]
    if len(set(axes)) != len(axes):
        raise OnnxOpError(f"CenterCropPad: axes {axes} repeat an axis")
    if len(shape) != len(axes) or any(s < 0 for s in shape):
        raise OnnxOpError(f"CenterCropPad: shape must give {len(axes)} sizes >= 0 (one per "
                          f"axis of {axes}), got {shape}")
    out_shape, src, dst = list(x.shape), [slice(None)] * rank, [slice(None)] * rank
    for a, size in zip(axes, shape):
        have = x.shape[a]
        out_shape[a] = size
        # the start rounds down: an odd crop drops the extra element on the right and
        # an odd pad puts the extra zero on the right
        if size < have:
            start = (have - size) // 2
            src[a] = slice(start, start + size)
        elif size > have:
            start = (size - have) // 2
            dst[a] = slice(start, start + have)
    out = np.zeros(out_shape, dtype=x.dtype)
    out[tuple(dst)] = x[tuple(src)]
    return [out]


@op("Det")
def _det(attrs, opset, inputs):
    x = inputs[0]
    _float_input(x, "Det")
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise OnnxOpError(f"Det: input (*, M, M) of square matrices expected, got {x.shape}")
    return [contiguous(np.linalg.det(x.astype(np.float64)), dtype=x.dtype)]


# ----------------------------------------------------------------- windows
def _window(coefficients, attrs, inputs, what: str) -> List[np.ndarray]:
    """sum_k (-1)^k a_k cos(2 pi k n / N), n in [0, size), N = size (periodic) or
    size - 1 (symmetric), in float64, then in output_datatype."""
    size = _scalar_int(inputs[0], what, "size")
    if size < 0:
        raise OnnxOpError(f"{what}: size must be >= 0, got {size}")
    dtype = _output_dtype(attrs, what)
    periodic = bool(attrs.get("periodic", 1))
    denominator = size if periodic else size - 1
    if denominator <= 0:
        # a symmetric window of one point: [1], as torch (onnxruntime and the
        # specification's reference divide 0 by 0 there and give nan)
        return [np.ones(size, dtype=dtype)]
    n = np.arange(size, dtype=np.float64)
    w = np.zeros(size)
    for k, a in enumerate(coefficients):
        w = w + (-1) ** k * a * np.cos(2.0 * np.pi * k * n / denominator)
    if dtype.kind in "iu":
        # integer types truncate the float32 values, as onnxruntime: a peak of 1 that
        # float64 leaves a hair below 1 still gives 1
        w = w.astype(np.float32)
    return [w.astype(dtype)]


@op("HannWindow")
def _hann_window(attrs, opset, inputs):
    return _window((0.5, 0.5), attrs, inputs, "HannWindow")


@op("HammingWindow")
def _hamming_window(attrs, opset, inputs):
    # alpha = 25/46 (the "optimal" Hamming coefficient), as the specification and
    # onnxruntime use, not torch's default 0.54
    return _window((25.0 / 46.0, 21.0 / 46.0), attrs, inputs, "HammingWindow")


@op("BlackmanWindow")
def _blackman_window(attrs, opset, inputs):
    return _window((0.42, 0.5, 0.08), attrs, inputs, "BlackmanWindow")


# ----------------------------------------------------------------- Fourier transforms
def _complex_signal(x: np.ndarray, what: str) -> np.ndarray:
    """x's real ([..., 1]) or complex ([..., 2]) values without the last dimension, as
    float64 / complex128 for a double input and float32 / complex64 otherwise: the
    transforms run in single precision for float16 and float input, as onnxruntime's
    and the specification's reference do (numpy's FFT keeps complex64)."""
    _float_input(x, what)
    if x.ndim < 2 or x.shape[-1] not in (1, 2):
        raise OnnxOpError(f"{what}: input [..., 1] (real) or [..., 2] (complex) of rank >= 2 "
                          f"expected, got shape {x.shape}")
    double = x.dtype == np.float64
    if x.shape[-1] == 1:
        return x[..., 0].astype(np.float64 if double else np.float32)
    signal = np.empty(x.shape[:-1], np.complex128 if double else np.complex64)
    signal.real, signal.imag = x[..., 0], x[..., 1]
    return signal


def _as_pairs(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return contiguous(np.stack([y.real, y.imag], axis=-1), dtype=dtype)


@op("DFT")
def _dft(attrs, opset, inputs):
    x = inputs[0]
    what = f"DFT (opset {opset})"
    signal = _complex_signal(x, what)
    rank = x.ndim
    if opset >= 20:
        axis_in = _opt(inputs, 2)
        axis = -2 if axis_in is None else _scalar_int(axis_in, what, "axis")
    else:
        axis = int(attrs.get("axis", 1))
    # the last dimension holds (real, imaginary): not a signal axis
    if not (-rank <= axis <= -2 or 0 <= axis <= rank - 2):
        raise OnnxOpError(f"{what}: axis {axis} is out of range for an input of rank {rank} "
                          f"(accepted: [{-rank}, -2] and [0, {rank - 2}])")
    axis %= rank
    inverse, onesided = bool(attrs.get("inverse", 0)), bool(attrs.get("onesided", 0))
    length_in = _opt(inputs, 1)
    if length_in is not None:
        length = _scalar_int(length_in, what, "dft_length")
    elif inverse and onesided:
        length = 2 * (x.shape[axis] - 1)  # (IRFFT: an even signal by default)
    else:
        length = x.shape[axis]
    if length < 1:
        raise OnnxOpError(f"{what}: dft_length must be >= 1, got {length}")
    if onesided and inverse:
        if x.shape[-1] != 2:
            raise OnnxOpError(f"{what}: onesided inverse (IRFFT) takes a complex input "
                              f"[..., 2], got shape {x.shape}")
        return [contiguous(np.fft.irfft(signal, length, axis=axis)[..., None], dtype=x.dtype)]
    if onesided:
        if x.shape[-1] != 1:
            raise OnnxOpError(f"{what}: onesided forward (RFFT) takes a real input [..., 1], "
                              f"got shape {x.shape}")
        return [_as_pairs(np.fft.rfft(signal, length, axis=axis), x.dtype)]
    transform = np.fft.ifft if inverse else np.fft.fft
    return [_as_pairs(transform(signal, length, axis=axis), x.dtype)]


@op("STFT")
def _stft(attrs, opset, inputs):
    x, window, length_in = inputs[0], _opt(inputs, 2), _opt(inputs, 3)
    what = "STFT"
    signal = _complex_signal(x, what)
    if x.ndim != 3:
        raise OnnxOpError(f"{what}: signal [batch, length, 1 or 2] expected, got {x.shape}")
    step = _scalar_int(inputs[1], what, "frame_step")
    if window is not None and window.ndim != 1:
        raise OnnxOpError(f"{what}: window must be 1-D, got shape {window.shape}")
    if length_in is not None:
        frame = _scalar_int(length_in, what, "frame_length")
        if window is not None and window.shape[0] != frame:
            raise OnnxOpError(f"{what}: window of length {window.shape[0]} for frame_length "
                              f"{frame}: they must be equal")
    else:
        frame = x.shape[1] if window is None else window.shape[0]
    if step < 1 or not 1 <= frame <= x.shape[1]:
        raise OnnxOpError(f"{what}: frame_step >= 1 and 1 <= frame_length <= signal length "
                          f"{x.shape[1]} expected, got frame_step {step}, frame_length {frame}")
    # onesided with a complex signal (the default onesided = 1 allows it): the first
    # frame_length // 2 + 1 bins of the full transform, as onnxruntime and the
    # specification's reference give them
    onesided = bool(attrs.get("onesided", 1))
    frames = (x.shape[1] - frame) // step + 1
    index = np.arange(frames)[:, None] * step + np.arange(frame)[None, :]
    chunks = signal[:, index]  # (batch, frames, frame_length)
    if window is not None:
        chunks = chunks * window.astype(signal.real.dtype)
    spectrum = np.fft.fft(chunks, frame, axis=-1)
    if onesided:
        spectrum = spectrum[..., :frame // 2 + 1]
    return [_as_pairs(spectrum, x.dtype)]


@op("MelWeightMatrix")
def _mel_weight_matrix(attrs, opset, inputs):
    what = "MelWeightMatrix"
    mels = _scalar_int(inputs[0], what, "num_mel_bins")
    dft_length = _scalar_int(inputs[1], what, "dft_length")
    sample_rate = _scalar_int(inputs[2], what, "sample_rate")
    lower, upper = (float(np.asarray(v).reshape(-1)[0]) for v in inputs[3:5])
    dtype = _output_dtype(attrs, what)
    if mels < 1 or dft_length < 1 or sample_rate < 1:
        raise OnnxOpError(f"{what}: num_mel_bins, dft_length and sample_rate must be >= 1, got "
                          f"{mels}, {dft_length}, {sample_rate}")
    if not 0 <= lower < upper <= sample_rate / 2:
        raise OnnxOpError(f"{what}: 0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate / 2 "
                          f"expected, got {lower}, {upper} for sample_rate {sample_rate}")
    bins = dft_length // 2 + 1
    # num_mel_bins + 2 edges evenly spaced in mel (mel(f) = 2595 log10(1 + f / 700)),
    # each at the spectrogram bin floor((dft_length + 1) f / sample_rate), as
    # onnxruntime and the specification's reference place them
    low_mel = 2595.0 * np.log10(1.0 + lower / 700.0)
    high_mel = 2595.0 * np.log10(1.0 + upper / 700.0)
    edges_mel = low_mel + np.arange(mels + 2) * ((high_mel - low_mel) / (mels + 2))
    hertz = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    edges = np.floor((dft_length + 1) * hertz / sample_rate).astype(np.int64)
    left, center, right = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    j = np.arange(bins)[:, None]
    rising = (j - left) / np.maximum(center - left, 1)
    falling = (right - j) / np.maximum(right - center, 1)
    out = np.where((j >= center) & (j < right), falling,
                   np.where((j >= left) & (j <= center),
                            np.where(center == left, 1.0, rising), 0.0))
    return [contiguous(out, dtype=dtype)]


# ----------------------------------------------------------------- bits
# Bits per element of the sub-byte types (ml_dtypes' names), which hold one per byte
_SUB_BYTE_BITS = {"uint4": 4, "int4": 4, "float4_e2m1fn": 4, "uint2": 2, "int2": 2}


def _bit_width(dtype: np.dtype) -> int:
    return _SUB_BYTE_BITS.get(dtype.name, 8 * dtype.itemsize)


@op("BitCast")
def _bit_cast(attrs, opset, inputs):
    x, what = inputs[0], "BitCast"
    if "to" not in attrs:
        raise OnnxOpError(f"{what}: the to attribute is required")
    code = int(attrs["to"])
    target = DTYPES.get(code)
    if target is None:
        raise OnnxOpError(f"{what}: to = {TYPE_NAMES.get(code, f'data type {code}')} is not a "
                          "type pve.onnx holds")
    if _bit_width(target) != _bit_width(x.dtype):
        raise OnnxOpError(f"{what}: {x.dtype} ({_bit_width(x.dtype)} bits) cannot be read as "
                          f"{target} ({_bit_width(target)} bits): the widths must be equal")
    if target == np.bool_ and x.view(np.uint8).max(initial=0) > 1:
        raise OnnxOpError(f"{what}: a byte other than 0 or 1 is not a bool value")
    # one element's bits map to one element's bits (the widths are equal), so the values
    # are those of the specification's little-endian reading on any host
    return [x.view(target)]
