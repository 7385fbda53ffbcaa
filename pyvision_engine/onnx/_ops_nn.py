"""ONNX network layers beyond the core CNN set (numpy), registered in ``_ops.OPS``.

ConvTranspose (1-D to 3-D), LpPool and GlobalLpPool, MaxUnpool, Col2Im,
LpNormalization, MeanVarianceNormalization and GroupNormalization, as
onnx/docs/Operators.md defines them.
"""

from __future__ import annotations

import itertools

import numpy as np

from pyvision_engine.nn import functional as F
from pyvision_engine.onnx._ops import (OnnxOpError, _as_2d_pool, _axis, _fast_pool, _ints,
                                       _pool_args, _pool_reference, arr, contiguous, f32, op,
                                       spatial_pads, text_attr)


# ----------------------------------------------------------------- transposed convolution
def _transpose_geometry(attrs, x_shape, w_shape):
    """(strides, dilations, kernel, pads begin, output size) per spatial axis."""
    dims = len(x_shape) - 2
    kernel = list(attrs.get("kernel_shape", w_shape[2:]))
    strides = list(attrs.get("strides", [1] * dims))
    dilations = list(attrs.get("dilations", [1] * dims))
    extra = list(attrs.get("output_padding", [0] * dims))
    if not len(kernel) == len(strides) == len(dilations) == len(extra) == dims:
        raise OnnxOpError(f"ConvTranspose: attributes for {dims} spatial axes expected")
    # the output of a pad-free transposed convolution, output_padding included
    span = [strides[i] * (x_shape[2 + i] - 1) + extra[i] + (kernel[i] - 1) * dilations[i] + 1
            for i in range(dims)]
    auto = text_attr(attrs, "auto_pad", "NOTSET")
    out_shape = list(attrs.get("output_shape", []))
    if len(out_shape) == dims + 2:  # (some exporters write N and C too)
        out_shape = out_shape[2:]
    if out_shape or auto in ("SAME_UPPER", "SAME_LOWER"):
        if not out_shape:
            out_shape = [x_shape[2 + i] * strides[i] for i in range(dims)]
        if len(out_shape) != dims:
            raise OnnxOpError(f"ConvTranspose: output_shape {out_shape} for {dims} spatial axes")
        total = [span[i] - out_shape[i] for i in range(dims)]
        begin = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        return strides, dilations, kernel, begin, out_shape
    if auto not in ("NOTSET", "VALID", ""):
        raise OnnxOpError(f"ConvTranspose: unknown auto_pad {auto!r}")
    pads = list(attrs.get("pads", [0] * 2 * dims)) if auto != "VALID" else [0] * 2 * dims
    if len(pads) != 2 * dims:
        raise OnnxOpError(f"ConvTranspose: pads must have {2 * dims} values, got {pads}")
    size = [span[i] - pads[i] - pads[dims + i] for i in range(dims)]
    if min(size) < 1:
        raise OnnxOpError(f"ConvTranspose: pads {pads} leave an empty output")
    return strides, dilations, kernel, pads[:dims], size


@op("ConvTranspose")
def _conv_transpose(attrs, opset, inputs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    group = int(attrs.get("group", 1))
    if x.ndim < 3 or w.ndim != x.ndim or x.shape[1] != w.shape[0] or x.shape[1] % group:
        raise OnnxOpError(f"ConvTranspose: input {x.shape} and weight {w.shape} do not match "
                          f"(weight (C_in, C_out / group, k...), group {group})")
    strides, dilations, kernel, begin, size = _transpose_geometry(attrs, x.shape, w.shape)
    if list(w.shape[2:]) != kernel:
        raise OnnxOpError(f"ConvTranspose: kernel_shape {kernel} differs from the weight's "
                          f"{list(w.shape[2:])}")
    spatial = x.shape[2:]
    full = [strides[i] * (spatial[i] - 1) + (kernel[i] - 1) * dilations[i] + 1
            for i in range(len(spatial))]
    if x.ndim in (3, 4) and x.dtype == np.float32 and w.dtype == np.float32 and x.size and w.size:
        # the pad-free result on the engine's convolution kernels, cut to size below; 1-D as
        # 2-D over planes of one row
        row = [1] if x.ndim == 3 else []
        x2, w2 = (x[:, :, None], w[:, :, None]) if row else (x, w)
        acc = arr(F.conv_transpose2d(f32(x2), f32(w2), None, row + strides, 0, 0, group,
                                     row + dilations))
        acc = acc[:, :, 0] if row else acc
    else:
        acc = _conv_transpose_reference(x, w, group, strides, dilations, kernel, full)
    # output position o reads full position o + begin (zero outside the full result)
    index, width = [slice(None), slice(None)], [(0, 0), (0, 0)]
    for i in range(len(spatial)):
        lo, hi = begin[i], begin[i] + size[i]
        width.append((max(0, -lo), max(0, hi - full[i])))
        index.append(slice(lo + width[-1][0], hi + width[-1][0]))
    y = np.pad(acc, width)[tuple(index)]
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * len(spatial))
    return [contiguous(y, dtype=x.dtype)]


def _conv_transpose_reference(x, w, group, strides, dilations, kernel, full):
    """The pad-free transposed convolution of any rank in numpy: each tap's product
    scattered into the output."""
    n, c_in, spatial = x.shape[0], x.shape[1], x.shape[2:]
    c_out_g = w.shape[1]
    acc = np.zeros((n, c_out_g * group, *full), dtype=np.float64 if x.dtype == np.float64 else np.float32)
    per = c_in // group
    for g in range(group):
        xg = x[:, g * per:(g + 1) * per]
        wg = w[g * per:(g + 1) * per]
        # every tap's contribution at once: (n, c_out_g, k..., spatial...)
        taps = np.moveaxis(np.tensordot(wg, xg, axes=([0], [1])), 1 + len(kernel), 0)
        out = acc[:, g * c_out_g:(g + 1) * c_out_g]
        for tap in itertools.product(*(range(k) for k in kernel)):
            where = tuple(slice(t * d, t * d + (s_in - 1) * s + 1, s)
                          for t, d, s_in, s in zip(tap, dilations, spatial, strides))
            out[(slice(None), slice(None)) + where] += taps[(slice(None), slice(None)) + tap]
    return acc


# ----------------------------------------------------------------- Lp pooling and unpooling
@op("LpPool")
def _lp_pool(attrs, opset, inputs):
    attrs, x = _as_2d_pool(attrs, inputs[0])
    kernel, strides, dilations, pads, ceil = _pool_args(attrs, x, "LpPool")
    p = float(attrs.get("p", 2))
    if x.dtype == np.float32 and dilations == [1, 1] and not ceil and _fast_pool(kernel, pads,
                                                                                 dilations):
        # the window sums as means over whole (zero-padded) windows, on the engine's kernel
        powered = f32(np.abs(x) ** np.float32(p))
        means = arr(F.avg_pool2d(powered, tuple(kernel), tuple(strides), tuple(pads[:2]), False,
                                 True))
        sums = means * np.float32(kernel[0] * kernel[1])
    else:
        sums = _pool_reference(np.abs(x.astype(np.float64)) ** p, kernel, strides, dilations,
                               pads, ceil, "sum")
    y = (sums ** (1.0 / p)).astype(inputs[0].dtype)
    return [y[:, :, 0] if inputs[0].ndim == 3 else y]


@op("GlobalLpPool")
def _global_lp_pool(attrs, opset, inputs):
    x = inputs[0]
    p = float(attrs.get("p", 2))
    total = (np.abs(x.astype(np.float64)) ** p).sum(axis=tuple(range(2, x.ndim)), keepdims=True)
    return [(total ** (1.0 / p)).astype(x.dtype)]


@op("MaxUnpool")
def _max_unpool(attrs, opset, inputs):
    x, indices = inputs[0], inputs[1]
    if indices.shape != x.shape:
        raise OnnxOpError(f"MaxUnpool: indices {indices.shape} and input {x.shape} differ")
    dims = x.ndim - 2
    kernel = list(attrs["kernel_shape"])
    strides = list(attrs.get("strides", [1] * dims))
    pads = spatial_pads(attrs, x.shape[2:], kernel, strides, [1] * dims, "MaxUnpool")
    shape = list(x.shape[:2]) + [(x.shape[2 + i] - 1) * strides[i] + kernel[i] - pads[i]
                                 - pads[dims + i] for i in range(dims)]
    unpooled = np.zeros(int(np.prod(shape, dtype=np.int64)), dtype=x.dtype)
    flat = indices.reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= unpooled.size):
        raise OnnxOpError(f"MaxUnpool: an index is out of range for the output {shape}")
    unpooled[flat] = x.reshape(-1)
    unpooled = unpooled.reshape(shape)
    if len(inputs) < 3 or inputs[2] is None:
        return [unpooled]
    # an explicit output_shape: the indices still address the inferred shape, placed
    # at the start of each axis (as the specification's reference does)
    wanted = [int(v) for v in np.asarray(inputs[2]).reshape(-1)]
    if len(wanted) != x.ndim or any(w < s for w, s in zip(wanted, shape)):
        raise OnnxOpError(f"MaxUnpool: output_shape {wanted} is smaller than the unpooled {shape}")
    out = np.zeros(wanted, dtype=x.dtype)
    out[tuple(slice(0, s) for s in shape)] = unpooled
    return [out]


@op("Col2Im")
def _col2im(attrs, opset, inputs):
    """2-D blocks on the engine's fold: into the padded image, then cropped to image_shape
    (so uneven pads work too)."""
    x, image, block = inputs[0], _ints(inputs[1]), _ints(inputs[2])
    if x.ndim != 3 or len(image) != 2 or len(block) != 2:
        raise OnnxOpError(f"Col2Im: pve.onnx folds 2-D images only (input (N, C * kh * kw, L)), "
                          f"got input {x.shape}, image_shape {image}, block_shape {block}")
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    padded = (image[0] + pads[0] + pads[2], image[1] + pads[1] + pads[3])
    y = arr(F.fold(f32(x), padded, tuple(block), tuple(dilations), 0, tuple(strides)))
    y = y[:, :, pads[0]:pads[0] + image[0], pads[1]:pads[1] + image[1]]
    return [contiguous(y, dtype=x.dtype)]


# ----------------------------------------------------------------- normalizations
@op("LpNormalization")
def _lp_normalization(attrs, opset, inputs):
    x = inputs[0]
    axis = _axis(int(attrs.get("axis", -1)), x.ndim, "LpNormalization")
    p = int(attrs.get("p", 2))
    if p not in (1, 2):
        raise OnnxOpError(f"LpNormalization: p must be 1 or 2, got {p}")
    x64 = x.astype(np.float64)
    norm = np.abs(x64).sum(axis=axis, keepdims=True) if p == 1 else \
        np.sqrt((x64 * x64).sum(axis=axis, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(norm == 0, 0.0, x64 / norm)
    return [y.astype(x.dtype)]


@op("MeanVarianceNormalization")
def _mean_variance_normalization(attrs, opset, inputs):
    x = inputs[0]
    axes = tuple(_axis(a, x.ndim, "MeanVarianceNormalization")
                 for a in attrs.get("axes", [0, 2, 3]))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    std = np.sqrt(((x64 - mean) ** 2).mean(axis=axes, keepdims=True))
    # (the specification's function body adds 1e-9 to the standard deviation)
    return [((x64 - mean) / (std + 1e-9)).astype(x.dtype)]


@op("GroupNormalization")
def _group_normalization(attrs, opset, inputs):
    x, scale, bias = inputs
    groups = int(attrs["num_groups"])
    eps = float(attrs.get("epsilon", 1e-5))
    n, c = x.shape[0], x.shape[1]
    if groups < 1 or c % groups:
        raise OnnxOpError(f"GroupNormalization: {c} channels are not divisible into {groups} groups")
    per_channel = opset >= 21  # (opset 18 scales each group, 21 each channel)
    expected = c if per_channel else groups
    if scale.size != expected or bias.size != expected:
        raise OnnxOpError(f"GroupNormalization: scale and bias need {expected} values at opset "
                          f"{opset}, got {scale.size} and {bias.size}")
    grouped = x.astype(np.float64).reshape(n, groups, -1)
    mean = grouped.mean(axis=2, keepdims=True)
    var = grouped.var(axis=2, keepdims=True)
    normed = ((grouped - mean) / np.sqrt(var + eps)).reshape(x.shape)
    if not per_channel:
        scale, bias = np.repeat(scale, c // groups), np.repeat(bias, c // groups)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return [(normed * scale.reshape(shape) + bias.reshape(shape)).astype(x.dtype)]
