"""ONNX detection operators (numpy), registered in ``_ops.OPS``: NonMaxSuppression
(opset 10, 11), RoiAlign (opset 10, 16, 22) and DeformConv (opset 19, 22).

NonMaxSuppression follows onnxruntime where the specification leaves room: boxes are
ordered by descending score, equal scores by ascending box index; a box is suppressed
when its IoU with a kept box is strictly above iou_threshold (float32 arithmetic, boxes
with no area never suppress); rows come by batch, then class, then selection order.
RoiAlign is onnxruntime's (and the specification reference's) Caffe2 algorithm,
including its max mode: the max over sample points of the largest of the four
weighted corner terms, not of the interpolated value. DeformConv samples bilinearly
with zeros outside the input, as torchvision.ops.deform_conv2d; 2-D only.
"""

from __future__ import annotations

import numpy as np

from pyvision_engine.onnx._ops import OnnxOpError, contiguous, op, text_attr

# elements per gathered chunk in RoiAlign, to bound the temporary memory
_CHUNK_ELEMENTS = 1 << 22


def _optional(inputs, i):
    """The i-th input, or None when it is omitted or empty."""
    x = inputs[i] if len(inputs) > i else None
    return None if x is None or np.asarray(x).size == 0 else np.asarray(x)


# ----------------------------------------------------------------- NonMaxSuppression
def _box_extents(boxes: np.ndarray, center_point_box: int):
    """(y_min, x_min, y_max, x_max, area) per box, float32 like onnxruntime."""
    b = boxes.astype(np.float32, copy=False)
    if center_point_box:  # [x_center, y_center, width, height]
        half_w, half_h = b[..., 2] / np.float32(2), b[..., 3] / np.float32(2)
        x0, x1 = b[..., 0] - half_w, b[..., 0] + half_w
        y0, y1 = b[..., 1] - half_h, b[..., 1] + half_h
    else:  # [y1, x1, y2, x2], either corner first (the spec allows flipped boxes)
        y0, y1 = np.minimum(b[..., 0], b[..., 2]), np.maximum(b[..., 0], b[..., 2])
        x0, x1 = np.minimum(b[..., 1], b[..., 3]), np.maximum(b[..., 1], b[..., 3])
    return y0, x0, y1, x1, (x1 - x0) * (y1 - y0)


def _suppressed(ext, i: int, others: np.ndarray, iou_threshold: np.float32) -> np.ndarray:
    """Whether box i suppresses each box of others (onnxruntime's SuppressByIOU)."""
    y0, x0, y1, x1, area = ext
    ix0, ix1 = np.maximum(x0[i], x0[others]), np.minimum(x1[i], x1[others])
    iy0, iy1 = np.maximum(y0[i], y0[others]), np.minimum(y1[i], y1[others])
    overlap = (ix1 > ix0) & (iy1 > iy0)
    inter = (ix1 - ix0) * (iy1 - iy0)
    union = area[others] + area[i] - inter
    valid = overlap & (inter > 0) & (area[i] > 0) & (area[others] > 0) & (union > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return valid & (inter / np.where(valid, union, np.float32(1)) > iou_threshold)


def _nms_class(ext, scores: np.ndarray, max_boxes: int, iou: np.float32,
               score_threshold) -> list:
    """Greedy NMS of one batch item and class: kept box indices in selection order."""
    candidates = np.arange(scores.shape[0])
    if score_threshold is not None:  # (strictly greater, as onnxruntime)
        candidates = candidates[scores > score_threshold]
    # descending score, ties by ascending index (onnxruntime's priority queue order)
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    alive = np.ones(order.shape[0], dtype=bool)
    kept, start = [], 0
    while len(kept) < max_boxes:
        rest = np.flatnonzero(alive[start:])
        if rest.size == 0:
            break
        pos = start + int(rest[0])
        kept.append(int(order[pos]))
        start = pos + 1
        if start < order.shape[0] and len(kept) < max_boxes:
            alive[start:] &= ~_suppressed(ext, order[pos], order[start:], iou)
    return kept


@op("NonMaxSuppression")
def _non_max_suppression(attrs, opset, inputs):
    boxes, scores = inputs[0], inputs[1]
    center = int(attrs.get("center_point_box", 0))
    if center not in (0, 1):
        raise OnnxOpError(f"NonMaxSuppression: center_point_box must be 0 or 1, got {center}")
    if boxes.ndim != 3 or boxes.shape[2] != 4:
        raise OnnxOpError(f"NonMaxSuppression: boxes (num_batches, spatial_dimension, 4) "
                          f"expected, got {boxes.shape}")
    if scores.ndim != 3 or scores.shape[0] != boxes.shape[0] or scores.shape[2] != boxes.shape[1]:
        raise OnnxOpError(f"NonMaxSuppression: scores (num_batches, num_classes, spatial_dimension)"
                          f" = ({boxes.shape[0]}, C, {boxes.shape[1]}) expected, got {scores.shape}")
    given = [_optional(inputs, i) for i in (2, 3, 4)]
    for value, name in zip(given, ("max_output_boxes_per_class", "iou_threshold",
                                   "score_threshold")):
        if value is not None and value.size != 1:
            raise OnnxOpError(f"NonMaxSuppression: {name} must hold one value, got shape "
                              f"{value.shape}")
    # absent max_output_boxes_per_class means 0: no boxes (the spec's default)
    max_boxes = 0 if given[0] is None else max(int(given[0].reshape(-1)[0]), 0)
    iou = np.float32(0 if given[1] is None else given[1].reshape(-1)[0])
    if not 0 <= iou <= 1:
        raise OnnxOpError(f"NonMaxSuppression: iou_threshold must be in [0, 1], got {iou}")
    score_threshold = None if given[2] is None else np.float32(given[2].reshape(-1)[0])
    rows = []
    if max_boxes > 0:
        scores32 = scores.astype(np.float32, copy=False)
        for b in range(boxes.shape[0]):
            ext = _box_extents(boxes[b], center)
            for c in range(scores.shape[1]):
                for i in _nms_class(ext, scores32[b, c], max_boxes, iou, score_threshold):
                    rows.append((b, c, i))
    return [np.array(rows, dtype=np.int64).reshape(len(rows), 3)]


# ----------------------------------------------------------------- RoiAlign
def _roi_axis(start, length, bins: int, grid_count, size: int, dtype):
    """Sample points along one axis, for every roi, bin and sample of the largest grid:
    (low index, high index, low weight, high weight, inside), each (R, bins, G); the
    sample coordinates computed in the input's float type, as onnxruntime does."""
    grid = max(int(grid_count.max(initial=0)), 1)
    bin_size = length / dtype.type(bins)
    steps = (np.arange(grid, dtype=dtype) + dtype.type(0.5))
    pos = (start[:, None, None] + np.arange(bins, dtype=dtype)[None, :, None] * bin_size[:, None, None]
           + steps[None, None, :] * bin_size[:, None, None]
           / np.maximum(grid_count, 1).astype(dtype)[:, None, None])
    inside = (pos >= -1) & (pos <= size)  # (outside: a sample of zero, not skipped)
    pos = np.maximum(pos, 0)
    low = np.floor(pos).astype(np.int64)
    at_edge = low >= size - 1  # (the last row or column: both corners on it)
    low = np.where(at_edge, size - 1, low)
    high = np.where(at_edge, size - 1, low + 1)
    frac = np.where(at_edge, 0, pos - low).astype(dtype)
    sampled = np.arange(grid)[None, None, :] < grid_count[:, None, None]
    return low, high, dtype.type(1) - frac, frac, inside, sampled


@op("RoiAlign")
def _roi_align(attrs, opset, inputs):
    x, rois, batch_indices = inputs[0], inputs[1], inputs[2]
    mode = text_attr(attrs, "mode", "avg")
    # opset 10 has no attribute and behaves as output_half_pixel; 16 on default half_pixel
    transform = text_attr(attrs, "coordinate_transformation_mode",
                          "half_pixel" if opset >= 16 else "output_half_pixel")
    out_h, out_w = int(attrs.get("output_height", 1)), int(attrs.get("output_width", 1))
    ratio = int(attrs.get("sampling_ratio", 0))
    scale = float(attrs.get("spatial_scale", 1.0))
    if mode not in ("avg", "max"):
        raise OnnxOpError(f"RoiAlign: mode must be 'avg' or 'max', got {mode!r}")
    if transform not in ("half_pixel", "output_half_pixel"):
        raise OnnxOpError(f"RoiAlign: coordinate_transformation_mode must be 'half_pixel' or "
                          f"'output_half_pixel', got {transform!r}")
    if out_h < 1 or out_w < 1 or ratio < 0:
        raise OnnxOpError(f"RoiAlign: output_height and output_width must be positive and "
                          f"sampling_ratio non-negative, got {out_h}, {out_w} and {ratio}")
    if x.ndim != 4 or x.dtype.kind != "f":
        raise OnnxOpError(f"RoiAlign: float input (N, C, H, W) expected, got {x.dtype} {x.shape}")
    if rois.ndim != 2 or rois.shape[1] != 4:
        raise OnnxOpError(f"RoiAlign: rois (num_rois, 4) expected, got {rois.shape}")
    if batch_indices.shape != (rois.shape[0],):
        raise OnnxOpError(f"RoiAlign: batch_indices ({rois.shape[0]},) expected (one per roi), "
                          f"got {batch_indices.shape}")
    batch = batch_indices.astype(np.int64)
    if batch.size and (batch.min() < 0 or batch.max() >= x.shape[0]):
        raise OnnxOpError(f"RoiAlign: batch_indices must be in [0, {x.shape[0]}), got values "
                          f"from {batch.min()} to {batch.max()}")
    n_rois, channels, height, width = rois.shape[0], x.shape[1], x.shape[2], x.shape[3]
    dtype = np.dtype(np.float64 if x.dtype == np.float64 else np.float32)
    r = rois.astype(dtype)
    shift = dtype.type(0.5 if transform == "half_pixel" else 0.0)
    begin = r * dtype.type(scale) - shift  # (x1, y1, x2, y2) in input pixels
    roi_w, roi_h = begin[:, 2] - begin[:, 0], begin[:, 3] - begin[:, 1]
    if transform == "output_half_pixel":  # (malformed rois forced to 1 x 1)
        roi_w, roi_h = np.maximum(roi_w, 1), np.maximum(roi_h, 1)
    if ratio > 0:
        grid_h = grid_w = np.full(n_rois, ratio, dtype=np.int64)
    else:
        grid_h = np.ceil(roi_h / dtype.type(out_h)).astype(np.int64)
        grid_w = np.ceil(roi_w / dtype.type(out_w)).astype(np.int64)
    if mode == "avg":
        y = _roi_average(x, batch, begin, roi_w, roi_h, grid_h, grid_w, out_h, out_w, dtype)
        return [contiguous(y, dtype=x.dtype)]
    # max: rois grouped by their sample grid, so that no roi computes padding samples
    y = np.zeros((n_rois, channels, out_h, out_w), dtype=dtype)
    pixels = _channels_last(x, dtype)
    live = (grid_h > 0) & (grid_w > 0)  # (no samples: the output stays 0, as onnxruntime)
    for gh, gw in set(zip(grid_h[live].tolist(), grid_w[live].tolist())):
        rows = np.flatnonzero(live & (grid_h == gh) & (grid_w == gw))
        ys = _roi_axis(begin[rows, 1], roi_h[rows], out_h, grid_h[rows], height, dtype)
        xs = _roi_axis(begin[rows, 0], roi_w[rows], out_w, grid_w[rows], width, dtype)
        step = max(1, _CHUNK_ELEMENTS // (channels * out_h * out_w * gh * gw * 4))
        for lo in range(0, rows.shape[0], step):
            sl = slice(lo, lo + step)
            y[rows[sl]] = _roi_max_chunk(pixels, width, batch[rows[sl]], [a[sl] for a in ys],
                                         [a[sl] for a in xs])
    return [contiguous(y, dtype=x.dtype)]


def _roi_weights(axis, size: int) -> np.ndarray:
    """(R, bins, size): the summed interpolation weight of every input row (or column)
    in each bin, over the bin's samples along this axis (avg mode is separable)."""
    low, high, w_low, w_high, inside, sampled = axis
    n_rois, bins, grid = low.shape
    keep = (inside & sampled).astype(np.float64)
    weights = np.zeros((n_rois, bins, size))
    r = np.arange(n_rois)[:, None, None]
    b = np.arange(bins)[None, :, None]
    np.add.at(weights, (np.broadcast_to(r, low.shape), np.broadcast_to(b, low.shape), low),
              w_low * keep)
    np.add.at(weights, (np.broadcast_to(r, low.shape), np.broadcast_to(b, low.shape), high),
              w_high * keep)
    return weights


def _channels_last(x: np.ndarray, dtype) -> np.ndarray:
    """x (N, C, H, W) as (N, H*W, C): gathering a pixel copies one contiguous row."""
    n, c = x.shape[:2]
    return np.ascontiguousarray(x.reshape(n, c, -1).transpose(0, 2, 1), dtype=dtype)


def _support(weights: np.ndarray):
    """First index and length of each roi's nonzero weights along the last axis."""
    used = (weights != 0).any(axis=1)  # (R, size)
    first = np.argmax(used, axis=1)
    last = used.shape[1] - 1 - np.argmax(used[:, ::-1], axis=1)
    return first, np.where(used.any(axis=1), last - first + 1, 0)


def _roi_average(x, batch, begin, roi_w, roi_h, grid_h, grid_w, out_h, out_w, dtype):
    """RoiAlign avg as out[r, c] = Wy[r] @ x[batch[r], c] @ Wx[r]^T / count[r], the per-bin
    weights of the rows and columns summed over the samples (avg is separable), on the
    window of the input each roi's samples touch: rois sorted by window size and taken a
    chunk at a time, each chunk's windows padded to its largest."""
    n_rois, channels, height, width = batch.shape[0], x.shape[1], x.shape[2], x.shape[3]
    count = np.maximum(grid_h * grid_w, 1).astype(np.float64)
    wy = _roi_weights(_roi_axis(begin[:, 1], roi_h, out_h, grid_h, height, dtype), height)
    wx = _roi_weights(_roi_axis(begin[:, 0], roi_w, out_w, grid_w, width, dtype), width)
    wy /= count[:, None, None]
    wy, wx = wy.astype(dtype), wx.astype(dtype)
    (y0, ly), (x0, lx) = _support(wy), _support(wx)
    pixels = _channels_last(x, dtype)
    y = np.zeros((n_rois, channels, out_h, out_w), dtype=dtype)
    order = np.argsort(ly * lx, kind="stable")
    order = order[(ly * lx)[order] > 0]  # (no weight anywhere: the output stays 0)
    lo = 0
    while lo < order.shape[0]:
        biggest = int(ly[order[-1]] * lx[order[-1]])  # (an upper bound for the chunk's)
        part = order[lo:lo + max(1, _CHUNK_ELEMENTS // (channels * biggest))]
        lo += part.shape[0]
        win_h, win_w = int(ly[part].max()), int(lx[part].max())
        rows = np.minimum(y0[part], height - win_h)[:, None] + np.arange(win_h)  # (k, win_h)
        cols = np.minimum(x0[part], width - win_w)[:, None] + np.arange(win_w)
        k = part.shape[0]
        # (k, win_h, win_w, C): contiguous channel rows of the channels-last pixels
        window = pixels[batch[part][:, None, None], rows[:, :, None] * width + cols[:, None, :]]
        a = np.take_along_axis(wy[part], rows[:, None, :], axis=2)  # (k, out_h, win_h)
        b = np.take_along_axis(wx[part], cols[:, None, :], axis=2)  # (k, out_w, win_w)
        t = np.matmul(a, window.reshape(k, win_h, win_w * channels))  # rows of each bin
        t = np.matmul(b[:, None], t.reshape(k, out_h, win_w, channels))  # (k, oh, ow, C)
        y[part] = t.transpose(0, 3, 1, 2)
    return y


def _roi_max_chunk(pixels, width: int, batch, ys, xs):
    """RoiAlign max of a few rois with one sample grid: every sample's four weighted corner
    terms gathered at once from the channels-last pixels (N, H*W, C), axes (roi, out_y,
    out_x, sample_y, sample_x, corner_y, corner_x, channel); the max over the corners,
    then over the samples (onnxruntime's max mode). Returns (rois, C, out_h, out_w)."""
    y_low, y_high, wy_low, wy_high, y_in, _ = ys
    x_low, x_high, wx_low, wx_high, x_in, _ = xs
    ry = np.stack([y_low, y_high], -1)[:, :, None, :, None, :, None]
    rx = np.stack([x_low, x_high], -1)[:, None, :, None, :, None, :]
    wy = np.stack([wy_low, wy_high], -1) * y_in[..., None]  # (outside: weight 0, a term 0)
    wx = np.stack([wx_low, wx_high], -1) * x_in[..., None]
    weight = wy[:, :, None, :, None, :, None] * wx[:, None, :, None, :, None, :]
    where = batch.reshape(-1, 1, 1, 1, 1, 1, 1), ry * width + rx
    terms = pixels[where] * weight[..., None]  # (contiguous channel rows gathered)
    return terms.max(axis=(3, 4, 5, 6)).transpose(0, 3, 1, 2)


# ----------------------------------------------------------------- DeformConv
@op("DeformConv")
def _deform_conv(attrs, opset, inputs):
    x, w, offset = inputs[0], inputs[1], inputs[2]
    bias, mask = _optional(inputs, 3), _optional(inputs, 4)
    if x.ndim != 4 or w.ndim != 4:
        raise NotImplementedError(f"DeformConv: 2-D only (input (N, C, H, W), weight (oC, C/group,"
                                  f" kH, kW)), got input {x.shape} and weight {w.shape}")
    n, c, h, wd = x.shape
    oc, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    kernel = list(attrs.get("kernel_shape", [kh, kw]))
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    group, offset_group = int(attrs.get("group", 1)), int(attrs.get("offset_group", 1))
    if kernel != [kh, kw]:
        raise OnnxOpError(f"DeformConv: kernel_shape {kernel} differs from the weight's {[kh, kw]}")
    if len(strides) != 2 or len(dilations) != 2 or len(pads) != 4:
        raise OnnxOpError(f"DeformConv: 2 strides, 2 dilations and 4 pads expected, got "
                          f"{strides}, {dilations} and {pads}")
    if group < 1 or c != w.shape[1] * group or oc % group:
        raise OnnxOpError(f"DeformConv: input channels {c} must equal weight.shape[1] "
                          f"{w.shape[1]} x group {group}, and output channels {oc} divide by it")
    if offset_group < 1 or c % offset_group:
        raise OnnxOpError(f"DeformConv: input channels {c} must divide by offset_group "
                          f"{offset_group}")
    taps = kh * kw
    oh = (h + pads[0] + pads[2] - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    if oh < 1 or ow < 1:
        raise OnnxOpError(f"DeformConv: empty output ({oh}, {ow}) for input {x.shape}, kernel "
                          f"{[kh, kw]}, pads {pads}, strides {strides}, dilations {dilations}")
    if offset.shape != (n, offset_group * 2 * taps, oh, ow):
        raise OnnxOpError(f"DeformConv: offset (N, offset_group*2*kH*kW, oH, oW) = "
                          f"{(n, offset_group * 2 * taps, oh, ow)} expected, got {offset.shape}")
    if mask is not None and mask.shape != (n, offset_group * taps, oh, ow):
        raise OnnxOpError(f"DeformConv: mask (N, offset_group*kH*kW, oH, oW) = "
                          f"{(n, offset_group * taps, oh, ow)} expected, got {mask.shape}")
    if bias is not None and bias.shape != (oc,):
        raise OnnxOpError(f"DeformConv: bias ({oc},) expected, got {bias.shape}")
    dtype = np.dtype(np.float64 if x.dtype == np.float64 else np.float32)
    # sampling positions (N, offset_group, kH*kW, oH*oW): the tap's place plus its offset
    off = offset.astype(dtype, copy=False).reshape(n, offset_group, taps, 2, oh * ow)
    tap_y = np.repeat(np.arange(kh) * dilations[0], kw)
    tap_x = np.tile(np.arange(kw) * dilations[1], kh)
    out_y = np.repeat(np.arange(oh) * strides[0] - pads[0], ow)
    out_x = np.tile(np.arange(ow) * strides[1] - pads[1], oh)
    py = (tap_y[:, None] + out_y[None, :]).astype(dtype) + off[:, :, :, 0]
    px = (tap_x[:, None] + out_x[None, :]).astype(dtype) + off[:, :, :, 1]
    cols = _bilinear_zeros(x.astype(dtype, copy=False).reshape(n, offset_group, c // offset_group,
                                                               h * wd), py, px, h, wd)
    if mask is not None:
        cols *= mask.astype(dtype, copy=False).reshape(n, offset_group, 1, taps, oh * ow)
    # one matmul per group: (oC/group, C/group*kH*kW) @ (C/group*kH*kW, oH*oW)
    cols = cols.reshape(n, group, (c // group) * taps, oh * ow)
    weight = w.astype(dtype, copy=False).reshape(1, group, oc // group, (c // group) * taps)
    y = np.matmul(weight, cols).reshape(n, oc, oh, ow)
    if bias is not None:
        y += bias.astype(dtype, copy=False).reshape(1, oc, 1, 1)
    return [contiguous(y, dtype=x.dtype)]


def _bilinear_zeros(planes, py, px, h: int, w: int):
    """planes (N, G, Cg, H*W) sampled at (py, px) (N, G, K, L), corners outside the input
    read as zero (torchvision's deform_conv2d): (N, G, Cg, K, L)."""
    y0, x0 = np.floor(py), np.floor(px)
    ly, lx = py - y0, px - x0
    y0, x0 = y0.astype(np.int64), x0.astype(np.int64)
    nb, g, cg = planes.shape[:3]
    ni = np.arange(nb).reshape(nb, 1, 1, 1)
    gi = np.arange(g).reshape(1, g, 1, 1)
    ci = np.arange(cg).reshape(1, 1, cg, 1)
    out = np.zeros((nb, g, cg) + py.shape[2:], dtype=planes.dtype)
    one = planes.dtype.type(1)
    for yy, wy in ((y0, one - ly), (y0 + 1, ly)):
        for xx, wx in ((x0, one - lx), (x0 + 1, lx)):
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            flat = np.where(inside, yy * w + xx, 0).reshape(nb, g, 1, -1)
            values = planes[ni, gi, ci, flat].reshape(out.shape)
            out += values * (wy * wx * inside)[:, :, None]
    return out
