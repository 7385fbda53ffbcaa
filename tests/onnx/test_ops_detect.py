"""pve.onnx NonMaxSuppression, RoiAlign and DeformConv against independent references.

- NonMaxSuppression: a plain-Python greedy reference written here (onnxruntime's
  algorithm, one pair of boxes at a time) on random boxes with many equal scores, and
  onnxruntime on the same models.
- RoiAlign: a float64 loop reference written here (avg mode), and onnxruntime (avg and
  max) over its attributes and both coordinate transformation modes.
- DeformConv: with zero offsets and a unit mask it is a plain convolution
  (pve.nn.functional.conv2d); torchvision-style sampling checked against onnxruntime,
  which implements DeformConv (opset 19 and 22), on random offsets, masks and groups.
- Errors: bad shapes, batch indices out of range, wrong offset channel counts.

onnx and onnxruntime are test extras: tests that need them skip and say so.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine.onnx import _ops
from pyvision_engine.onnx._ops import OnnxOpError


def _run(name, attrs, opset, inputs):
    return _ops.OPS[name](attrs, opset, list(inputs))


def _model(name, attrs, opset, inputs, input_names):
    """The single-node model (omitted inputs given as None) and its feeds."""
    pytest.importorskip("onnx", reason="onnx builds the single-node models")
    from onnx import TensorProto, helper
    names = [n if a is not None else "" for n, a in zip(input_names, inputs)]
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node(name, names, ["Y"], **attrs)
    feeds = {n: a for n, a in zip(input_names, inputs) if a is not None}
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype),
                                                  a.shape) for n, a in feeds.items()]
    out_type = (TensorProto.INT64 if name == "NonMaxSuppression"
                else helper.np_dtype_to_tensor_dtype(inputs[0].dtype))
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_tensor_value_info("Y", out_type, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # (one onnxruntime reads)
    return model.SerializeToString(), feeds


def _ort_run(name, attrs, opset, inputs, input_names):
    """The single-node model run by onnxruntime."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the reference here")
    model, feeds = _model(name, attrs, opset, inputs, input_names)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def _session_run(name, attrs, opset, inputs, input_names):
    """The same single-node model through pve.onnx.InferenceSession (the file path)."""
    model, feeds = _model(name, attrs, opset, inputs, input_names)
    return pve.onnx.InferenceSession(model).run(None, feeds)[0]


# ----------------------------------------------------------------- NonMaxSuppression
NMS_INPUTS = ["boxes", "scores", "max_output_boxes_per_class", "iou_threshold",
              "score_threshold"]


def _reference_iou_suppresses(a, b, center, iou_threshold):
    """onnxruntime's SuppressByIOU for one pair of boxes, in float32 scalars."""
    f = np.float32
    if center:
        a0, a1 = a[0] - a[2] / f(2), a[0] + a[2] / f(2)
        b0, b1 = b[0] - b[2] / f(2), b[0] + b[2] / f(2)
        a2, a3 = a[1] - a[3] / f(2), a[1] + a[3] / f(2)
        b2, b3 = b[1] - b[3] / f(2), b[1] + b[3] / f(2)
    else:
        a0, a1 = min(a[1], a[3]), max(a[1], a[3])
        b0, b1 = min(b[1], b[3]), max(b[1], b[3])
        a2, a3 = min(a[0], a[2]), max(a[0], a[2])
        b2, b3 = min(b[0], b[2]), max(b[0], b[2])
    ix0, ix1, iy0, iy1 = max(a0, b0), min(a1, b1), max(a2, b2), min(a3, b3)
    if ix1 <= ix0 or iy1 <= iy0:
        return False
    inter = (ix1 - ix0) * (iy1 - iy0)
    area_a, area_b = (a1 - a0) * (a3 - a2), (b1 - b0) * (b3 - b2)
    union = area_a + area_b - inter
    if inter <= 0 or area_a <= 0 or area_b <= 0 or union <= 0:
        return False
    return inter / union > iou_threshold


def _reference_nms(boxes, scores, max_boxes, iou, score_threshold, center):
    boxes, scores = boxes.astype(np.float32), scores.astype(np.float32)
    rows = []
    for b in range(boxes.shape[0]):
        for c in range(scores.shape[1]):
            cands = [i for i in range(boxes.shape[1])
                     if score_threshold is None or scores[b, c, i] > np.float32(score_threshold)]
            cands.sort(key=lambda i: (-float(scores[b, c, i]), i))
            kept = []
            for i in cands:
                if len(kept) >= max_boxes:
                    break
                if not any(_reference_iou_suppresses(boxes[b, i], boxes[b, k], center,
                                                     np.float32(iou)) for k in kept):
                    kept.append(i)
            rows += [(b, c, i) for i in kept]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _random_boxes(rng, batches, count, center, flip=True):
    if center:
        xy = rng.uniform(0, 10, (batches, count, 2))
        wh = rng.uniform(0.2, 4, (batches, count, 2))
        return np.concatenate([xy, wh], -1).astype(np.float32)
    a = rng.uniform(0, 10, (batches, count, 2))
    b = a + rng.uniform(0.2, 4, (batches, count, 2))
    boxes = np.concatenate([a, b], -1)
    if flip:  # swap the corners of some boxes (the spec allows either order)
        swap = rng.random((batches, count)) < 0.3
        boxes[swap] = boxes[swap][:, [2, 3, 0, 1]]
    return boxes.astype(np.float32)


def _nms_inputs(rng, batches, classes, count, center, max_boxes, iou, score_threshold,
                levels=4):
    boxes = _random_boxes(rng, batches, count, center)
    # few distinct score values: many equal-score ties
    scores = (rng.integers(0, levels, (batches, classes, count)) / levels).astype(np.float32)
    opt = [None if max_boxes is None else np.array([max_boxes], np.int64),
           None if iou is None else np.array([iou], np.float32),
           None if score_threshold is None else np.array([score_threshold], np.float32)]
    return [boxes, scores] + opt


NMS_SETTINGS = [  # center, max boxes, iou, score threshold
    (0, 3, 0.5, None), (0, 100, 0.3, 0.2), (1, 5, 0.0, None), (1, 100, 0.7, 0.5),
    (0, 1, 1.0, None), (0, 10, 0.5, 0.0), (1, 2, 0.45, 0.25)]


@pytest.mark.parametrize("center,max_boxes,iou,score_threshold", NMS_SETTINGS)
@pytest.mark.parametrize("seed", range(4))
def test_nms_matches_python_greedy_reference(center, max_boxes, iou, score_threshold, seed):
    rng = np.random.default_rng(seed)
    inputs = _nms_inputs(rng, 2, 3, 40, center, max_boxes, iou, score_threshold)
    got = _run("NonMaxSuppression", {"center_point_box": center}, 11, inputs)[0]
    want = _reference_nms(inputs[0], inputs[1], max_boxes, iou, score_threshold, center)
    assert got.dtype == np.int64 and got.shape[1] == 3
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("opset", [10, 11])
@pytest.mark.parametrize("center,max_boxes,iou,score_threshold", NMS_SETTINGS)
def test_nms_matches_onnxruntime(opset, center, max_boxes, iou, score_threshold):
    rng = np.random.default_rng(opset * 100 + max_boxes)
    inputs = _nms_inputs(rng, 2, 3, 60, center, max_boxes, iou, score_threshold, levels=3)
    attrs = {"center_point_box": center}
    want = _ort_run("NonMaxSuppression", attrs, opset, inputs, NMS_INPUTS)
    got = _session_run("NonMaxSuppression", attrs, opset, inputs, NMS_INPUTS)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype


def test_nms_identical_boxes_and_scores_keep_lowest_index():
    boxes = np.tile(np.array([[0, 0, 1, 1]], np.float32), (1, 6, 1))
    boxes[0, 3] = [5, 5, 6, 6]
    scores = np.full((1, 1, 6), 0.5, np.float32)
    inputs = [boxes, scores, np.array([10], np.int64), np.array([0.5], np.float32)]
    got = _run("NonMaxSuppression", {}, 11, inputs)[0]
    np.testing.assert_array_equal(got, [[0, 0, 0], [0, 0, 3]])
    np.testing.assert_array_equal(got, _ort_run("NonMaxSuppression", {}, 11, inputs + [None],
                                                NMS_INPUTS))


@pytest.mark.parametrize("optional", [[], [None], [np.array([0], np.int64)],
                                      [np.array([-3], np.int64), np.array([0.5], np.float32)]])
def test_nms_no_max_output_means_no_boxes(optional):
    rng = np.random.default_rng(0)
    inputs = [_random_boxes(rng, 1, 5, 0), rng.random((1, 2, 5)).astype(np.float32)] + optional
    got = _run("NonMaxSuppression", {}, 11, inputs)[0]
    assert got.shape == (0, 3) and got.dtype == np.int64
    full = (inputs + [None] * 3)[:5]
    if full[2] is not None:  # (onnxruntime needs the input to be given to take the model)
        assert _ort_run("NonMaxSuppression", {}, 11, full, NMS_INPUTS).shape == (0, 3)


def test_nms_degenerate_boxes_never_suppress():
    boxes = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 3], [2, 2, 2, 3]]], np.float32)
    scores = np.array([[[0.9, 0.8, 0.7, 0.6]]], np.float32)
    inputs = [boxes, scores, np.array([10], np.int64), np.array([0.0], np.float32)]
    got = _run("NonMaxSuppression", {}, 11, inputs)[0]
    np.testing.assert_array_equal(got[:, 2], [0, 2, 3])
    np.testing.assert_array_equal(got, _ort_run("NonMaxSuppression", {}, 11, inputs + [None],
                                                NMS_INPUTS))


@pytest.mark.parametrize("boxes_shape,scores_shape", [((1, 5, 3), (1, 1, 5)), ((5, 4), (1, 1, 5)),
                                                      ((1, 5, 4), (1, 1, 4)), ((2, 5, 4), (1, 1, 5))])
def test_nms_bad_shapes_raise(boxes_shape, scores_shape):
    inputs = [np.zeros(boxes_shape, np.float32), np.zeros(scores_shape, np.float32),
              np.array([3], np.int64)]
    with pytest.raises(OnnxOpError, match="NonMaxSuppression"):
        _run("NonMaxSuppression", {}, 11, inputs)


def test_nms_bad_attributes_raise():
    inputs = [np.zeros((1, 2, 4), np.float32), np.zeros((1, 1, 2), np.float32),
              np.array([3], np.int64), np.array([1.5], np.float32)]
    with pytest.raises(OnnxOpError, match="iou_threshold"):
        _run("NonMaxSuppression", {}, 11, inputs)
    with pytest.raises(OnnxOpError, match="center_point_box"):
        _run("NonMaxSuppression", {"center_point_box": 2}, 11, inputs[:3])
    with pytest.raises(OnnxOpError, match="max_output_boxes_per_class"):
        _run("NonMaxSuppression", {}, 11, inputs[:2] + [np.array([1, 2], np.int64)])


# ----------------------------------------------------------------- RoiAlign
ROI_INPUTS = ["X", "rois", "batch_indices"]


def _reference_roi_align_avg(x, rois, batch_indices, out_h, out_w, ratio, scale, half_pixel):
    """The specification's RoiAlign (avg) in float64, one sample at a time."""
    n_rois, channels, height, width = rois.shape[0], x.shape[1], x.shape[2], x.shape[3]
    y = np.zeros((n_rois, channels, out_h, out_w))
    shift = 0.5 if half_pixel else 0.0
    for r in range(n_rois):
        x0, y0, x1, y1 = (float(v) * scale - shift for v in rois[r])
        roi_w, roi_h = x1 - x0, y1 - y0
        if not half_pixel:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        grid_h = ratio if ratio > 0 else math.ceil(roi_h / out_h)
        grid_w = ratio if ratio > 0 else math.ceil(roi_w / out_w)
        count = max(grid_h * grid_w, 1)
        plane = x[int(batch_indices[r])].astype(np.float64)
        for ph in range(out_h):
            for pw in range(out_w):
                total = np.zeros(channels)
                for iy in range(grid_h):
                    sy = y0 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        sx = x0 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        if sy < -1 or sy > height or sx < -1 or sx > width:
                            continue
                        sy_, sx_ = max(sy, 0.0), max(sx, 0.0)
                        ylo, xlo = int(sy_), int(sx_)
                        if ylo >= height - 1:
                            ylo = yhi = height - 1
                            sy_ = float(ylo)
                        else:
                            yhi = ylo + 1
                        if xlo >= width - 1:
                            xlo = xhi = width - 1
                            sx_ = float(xlo)
                        else:
                            xhi = xlo + 1
                        ly, lx = sy_ - ylo, sx_ - xlo
                        total += ((1 - ly) * (1 - lx) * plane[:, ylo, xlo]
                                  + (1 - ly) * lx * plane[:, ylo, xhi]
                                  + ly * (1 - lx) * plane[:, yhi, xlo] + ly * lx * plane[:, yhi, xhi])
                y[r, :, ph, pw] = total / count
    return y


def _roi_case(rng, n=2, c=3, h=9, w=11, rois=7):
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    a = rng.uniform(-3, 14, (rois, 2))
    b = a + rng.uniform(-1, 12, (rois, 2))  # (some rois flipped or tiny, some outside)
    boxes = np.concatenate([a, b], -1).astype(np.float32)
    return x, boxes, rng.integers(0, n, rois).astype(np.int64)


ROI_SETTINGS = [  # output (h, w), sampling_ratio, spatial_scale
    ((2, 3), 0, 1.0), ((3, 3), 2, 0.5), ((1, 1), 0, 0.25), ((4, 2), 1, 1.0), ((5, 5), 3, 0.8)]


@pytest.mark.parametrize("half_pixel", [True, False])
@pytest.mark.parametrize("out,ratio,scale", ROI_SETTINGS)
def test_roi_align_avg_matches_float64_reference(out, ratio, scale, half_pixel):
    rng = np.random.default_rng(ratio * 10 + out[0])
    x, rois, idx = _roi_case(rng)
    attrs = {"output_height": out[0], "output_width": out[1], "sampling_ratio": ratio,
             "spatial_scale": scale,
             "coordinate_transformation_mode": "half_pixel" if half_pixel else "output_half_pixel"}
    got = _run("RoiAlign", attrs, 16, [x, rois, idx])[0]
    want = _reference_roi_align_avg(x, rois, idx, out[0], out[1], ratio, scale, half_pixel)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# (opset 10 has no coordinate_transformation_mode: it behaves as output_half_pixel)
@pytest.mark.parametrize("opset,transform", [(10, None), (16, None), (16, "half_pixel"),
                                             (16, "output_half_pixel"), (22, None),
                                             (22, "output_half_pixel")])
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("out,ratio,scale", ROI_SETTINGS)
def test_roi_align_matches_onnxruntime(opset, mode, transform, out, ratio, scale):
    rng = np.random.default_rng(opset + ratio * 7 + out[1])
    x, rois, idx = _roi_case(rng)
    attrs = {"mode": mode, "output_height": out[0], "output_width": out[1],
             "sampling_ratio": ratio, "spatial_scale": scale}
    if transform is not None:
        attrs["coordinate_transformation_mode"] = transform
    # (onnxruntime 1.32 has no CPU RoiAlign-22, which only adds bfloat16: its 16 stands in)
    want = _ort_run("RoiAlign", attrs, min(opset, 16), [x, rois, idx], ROI_INPUTS)
    got = _session_run("RoiAlign", attrs, opset, [x, rois, idx], ROI_INPUTS)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_roi_align_float64_and_float16():
    rng = np.random.default_rng(3)
    x, rois, idx = _roi_case(rng)
    attrs = {"output_height": 3, "output_width": 2, "sampling_ratio": 2}
    want = _reference_roi_align_avg(x, rois, idx, 3, 2, 2, 1.0, True)
    got64 = _run("RoiAlign", attrs, 16, [x.astype(np.float64), rois.astype(np.float64), idx])[0]
    assert got64.dtype == np.float64
    np.testing.assert_allclose(got64, want, rtol=1e-10, atol=1e-12)
    got16 = _run("RoiAlign", attrs, 16, [x.astype(np.float16), rois.astype(np.float16), idx])[0]
    assert got16.dtype == np.float16
    want16 = _reference_roi_align_avg(x.astype(np.float16), rois.astype(np.float16), idx, 3, 2, 2,
                                      1.0, True)
    np.testing.assert_allclose(got16.astype(np.float64), want16, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("mode", ["avg", "max"])
def test_roi_align_many_rois_in_chunks(monkeypatch, mode):
    from pyvision_engine.onnx import _ops_detect
    rng = np.random.default_rng(5)
    x, rois, idx = _roi_case(rng, rois=50)
    attrs = {"output_height": 2, "output_width": 3, "mode": mode}
    whole = _run("RoiAlign", attrs, 16, [x, rois, idx])[0]
    monkeypatch.setattr(_ops_detect, "_CHUNK_ELEMENTS", 64)  # (one roi per chunk)
    np.testing.assert_allclose(_run("RoiAlign", attrs, 16, [x, rois, idx])[0], whole,
                               rtol=1e-6, atol=1e-7)
    if mode == "avg":
        want = _reference_roi_align_avg(x, rois, idx, 2, 3, 0, 1.0, True)
        np.testing.assert_allclose(whole, want, rtol=1e-5, atol=1e-5)


def test_roi_align_errors():
    x = np.zeros((2, 3, 5, 5), np.float32)
    rois = np.zeros((4, 4), np.float32)
    with pytest.raises(OnnxOpError, match=r"batch_indices must be in \[0, 2\)"):
        _run("RoiAlign", {}, 16, [x, rois, np.array([0, 1, 2, 0], np.int64)])
    with pytest.raises(OnnxOpError, match="batch_indices must be"):
        _run("RoiAlign", {}, 16, [x, rois, np.array([0, -1, 1, 0], np.int64)])
    with pytest.raises(OnnxOpError, match=r"batch_indices \(4,\) expected"):
        _run("RoiAlign", {}, 16, [x, rois, np.zeros(3, np.int64)])
    with pytest.raises(OnnxOpError, match=r"rois \(num_rois, 4\)"):
        _run("RoiAlign", {}, 16, [x, np.zeros((4, 5), np.float32), np.zeros(4, np.int64)])
    with pytest.raises(OnnxOpError, match="input \\(N, C, H, W\\)"):
        _run("RoiAlign", {}, 16, [x[0], rois, np.zeros(4, np.int64)])
    with pytest.raises(OnnxOpError, match="mode"):
        _run("RoiAlign", {"mode": "sum"}, 16, [x, rois, np.zeros(4, np.int64)])
    with pytest.raises(OnnxOpError, match="coordinate_transformation_mode"):
        _run("RoiAlign", {"coordinate_transformation_mode": "asymmetric"}, 16,
             [x, rois, np.zeros(4, np.int64)])
    with pytest.raises(OnnxOpError, match="output_height"):
        _run("RoiAlign", {"output_height": 0}, 16, [x, rois, np.zeros(4, np.int64)])


# ----------------------------------------------------------------- DeformConv
DEFORM_INPUTS = ["X", "W", "offset", "B", "mask"]


def _deform_case(rng, n, c, oc, h, w, k, group, offset_group, strides, pads, dilations,
                 with_mask, with_bias, spread=2.0):
    kh, kw = k
    oh = (h + pads[0] + pads[2] - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (w + pads[1] + pads[3] - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((oc, c // group, kh, kw)).astype(np.float32)
    offset = (rng.standard_normal((n, offset_group * 2 * kh * kw, oh, ow)) * spread).astype(np.float32)
    bias = rng.standard_normal(oc).astype(np.float32) if with_bias else None
    mask = rng.random((n, offset_group * kh * kw, oh, ow)).astype(np.float32) if with_mask else None
    attrs = {"kernel_shape": [kh, kw], "group": group, "offset_group": offset_group,
             "strides": list(strides), "pads": list(pads), "dilations": list(dilations)}
    return attrs, [x, weight, offset, bias, mask]


DEFORM_SETTINGS = [  # n, c, oc, h, w, kernel, group, offset_group, strides, pads, dilations
    (1, 2, 3, 6, 7, (3, 3), 1, 1, (1, 1), (1, 1, 1, 1), (1, 1)),
    (2, 4, 6, 7, 5, (3, 2), 2, 2, (2, 1), (0, 1, 1, 0), (1, 2)),
    (1, 6, 4, 8, 8, (2, 2), 2, 3, (1, 2), (2, 0, 0, 2), (2, 1)),
    (2, 3, 3, 5, 6, (1, 1), 3, 1, (1, 1), (0, 0, 0, 0), (1, 1)),
    (1, 4, 8, 9, 7, (3, 3), 4, 4, (2, 2), (1, 2, 1, 2), (1, 1)),
]


@pytest.mark.parametrize("setting", DEFORM_SETTINGS)
@pytest.mark.parametrize("with_bias", [False, True])
def test_deform_conv_zero_offsets_unit_mask_is_conv(setting, with_bias):
    n, c, oc, h, w, k, group, og, strides, pads, dil = setting
    rng = np.random.default_rng(sum(setting[:5]))
    attrs, inputs = _deform_case(rng, n, c, oc, h, w, k, group, og, strides, pads, dil,
                                 with_mask=True, with_bias=with_bias)
    inputs[2] = np.zeros_like(inputs[2])
    inputs[4] = np.ones_like(inputs[4])
    got = _run("DeformConv", attrs, 19, inputs)[0]
    x = np.pad(inputs[0], ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    bias = None if inputs[3] is None else pve.tensor(inputs[3])
    want = pve.nn.functional.conv2d(pve.tensor(x), pve.tensor(inputs[1]), bias, tuple(strides),
                                    0, tuple(dil), group).numpy()
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [19, 22])
@pytest.mark.parametrize("setting", DEFORM_SETTINGS)
@pytest.mark.parametrize("with_mask,with_bias", [(False, False), (True, True), (True, False)])
def test_deform_conv_matches_onnxruntime(opset, setting, with_mask, with_bias):
    n, c, oc, h, w, k, group, og, strides, pads, dil = setting
    rng = np.random.default_rng(opset + sum(setting[:5]) + 10 * with_mask)
    attrs, inputs = _deform_case(rng, n, c, oc, h, w, k, group, og, strides, pads, dil,
                                 with_mask, with_bias)
    want = _ort_run("DeformConv", attrs, opset, inputs, DEFORM_INPUTS)
    got = _session_run("DeformConv", attrs, opset, inputs, DEFORM_INPUTS)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_deform_conv_integer_offsets_shift_the_input():
    # an offset of exactly (dy, dx) everywhere reads the input shifted, zeros outside
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 1, 5, 6)).astype(np.float32)
    weight = np.ones((1, 1, 1, 1), np.float32)
    offset = np.zeros((1, 2, 5, 6), np.float32)
    offset[:, 0], offset[:, 1] = 2.0, -1.0
    got = _run("DeformConv", {}, 19, [x, weight, offset])[0]
    want = np.zeros_like(x)
    want[0, 0, :3, 1:] = x[0, 0, 2:, :5]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_deform_conv_float64():
    rng = np.random.default_rng(2)
    attrs, inputs = _deform_case(rng, *DEFORM_SETTINGS[1], with_mask=True, with_bias=True)
    inputs64 = [a.astype(np.float64) for a in inputs]
    got = _run("DeformConv", attrs, 19, inputs64)[0]
    assert got.dtype == np.float64
    want = _run("DeformConv", attrs, 19, inputs)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_deform_conv_errors():
    x = np.zeros((1, 4, 6, 6), np.float32)
    w = np.zeros((2, 4, 3, 3), np.float32)
    offset = np.zeros((1, 18, 4, 4), np.float32)
    with pytest.raises(OnnxOpError, match=r"offset \(N, offset_group\*2\*kH\*kW, oH, oW\)"):
        _run("DeformConv", {}, 19, [x, w, np.zeros((1, 16, 4, 4), np.float32)])
    with pytest.raises(OnnxOpError, match="offset"):
        _run("DeformConv", {"offset_group": 2}, 19, [x, w, offset])
    with pytest.raises(OnnxOpError, match="offset"):
        _run("DeformConv", {}, 19, [x, w, np.zeros((1, 18, 3, 4), np.float32)])
    with pytest.raises(OnnxOpError, match="mask"):
        _run("DeformConv", {}, 19, [x, w, offset, None, np.zeros((1, 18, 4, 4), np.float32)])
    with pytest.raises(OnnxOpError, match="bias"):
        _run("DeformConv", {}, 19, [x, w, offset, np.zeros(3, np.float32)])
    with pytest.raises(OnnxOpError, match="group"):
        _run("DeformConv", {"group": 2}, 19, [x, w, offset])
    with pytest.raises(OnnxOpError, match="offset_group"):
        _run("DeformConv", {"offset_group": 3}, 19, [x, w, offset])
    with pytest.raises(OnnxOpError, match="kernel_shape"):
        _run("DeformConv", {"kernel_shape": [2, 2]}, 19, [x, w, offset])
    with pytest.raises(NotImplementedError, match="2-D only"):
        _run("DeformConv", {}, 19, [x[..., 0], w[..., 0], offset[..., 0]])
