"""pve.onnx's loss, signal and miscellaneous operators (pyvision_engine/onnx/_ops_misc.py)
against independent references: onnxruntime on the same one-node models, torch
(nll_loss, cross_entropy, the windows, det), and plain float64 numpy references written
here; and their errors (bad target shapes, out-of-range targets, bad axes and lengths).

onnx builds the models; onnx, onnxruntime and torch are test extras: tests that need
one skip and say so without it.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyvision_engine.onnx import InferenceSession

onnx = pytest.importorskip("onnx", reason="onnx (a test extra) builds the test models")
from onnx import helper  # noqa: E402


def _model(op_type, feeds, attrs, opset, outputs=1, consts=None):
    """A one-node model: ``feeds`` are graph inputs (a name starting with '_' stands for
    an omitted optional input), ``consts`` initializers."""
    consts = consts or {}
    graph_inputs = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype),
                                                  v.shape)
                    for k, v in feeds.items() if not k.startswith("_")]
    inits = [onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()]
    names = [("" if k.startswith("_") else k) for k in list(feeds) + list(consts)]
    outs = [onnx.ValueInfoProto(name=f"y{i}") for i in range(outputs)]
    node = helper.make_node(op_type, names, [o.name for o in outs], **attrs)
    graph = helper.make_graph([node], "g", graph_inputs, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model.SerializeToString()


def _feeds(feeds):
    return {k: v for k, v in feeds.items() if not k.startswith("_")}


def _pve(op_type, feeds, attrs, opset, outputs=1, consts=None):
    data = _model(op_type, feeds, attrs, opset, outputs, consts)
    return InferenceSession(data).run(None, _feeds(feeds))


def _ort(op_type, feeds, attrs, opset, outputs=1, consts=None):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) is the reference")
    data = _model(op_type, feeds, attrs, opset, outputs, consts)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, _feeds(feeds))


def _same(got, want, rtol, atol):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- losses
def _loss_reference(x, target, weight, reduction, ignore_index, softmax):
    """Position by position, float64: the specification's definition."""
    x = x.astype(np.float64)
    if softmax:
        m = x.max(axis=1, keepdims=True)
        x = x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))
    n, c = x.shape[:2]
    flat_x = x.reshape(n, c, -1)
    flat_t = target.reshape(n, -1)
    loss = np.zeros(flat_t.shape)
    used = np.zeros(flat_t.shape)
    for i in range(n):
        for d in range(flat_t.shape[1]):
            t = int(flat_t[i, d])
            if ignore_index is not None and t == ignore_index:
                continue
            w = 1.0 if weight is None else float(weight[t])
            loss[i, d] = -w * flat_x[i, t, d]
            used[i, d] = w
    if reduction == "none":
        return loss.reshape(target.shape), x
    if reduction == "sum":
        return loss.sum(), x
    return loss.sum() / used.sum(), x


LOSS_SHAPES = [(5, 4), (3, 4, 6), (2, 3, 2, 3, 2)]


def _loss_case(rng, shape, with_weight, ignore_index, dtype=np.float32):
    x = rng.standard_normal(shape).astype(dtype)
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:]).astype(np.int64)
    if ignore_index is not None:
        target.reshape(-1)[::3] = ignore_index  # (every third target ignored)
    weight = rng.uniform(0.2, 2.0, shape[1]).astype(dtype) if with_weight else None
    return x, target, weight


def _loss_feeds(x, target, weight):
    feeds = {"x": x, "t": target}
    if weight is not None:
        feeds["w"] = weight
    return feeds


def _loss_attrs(reduction, ignore_index):
    attrs = {"reduction": reduction}
    if ignore_index is not None:
        attrs["ignore_index"] = ignore_index
    return attrs


@pytest.mark.parametrize("op_type, opset", [("NegativeLogLikelihoodLoss", 12),
                                            ("NegativeLogLikelihoodLoss", 13),
                                            ("NegativeLogLikelihoodLoss", 22),
                                            ("SoftmaxCrossEntropyLoss", 12),
                                            ("SoftmaxCrossEntropyLoss", 13)])
@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 1, -1])
def test_losses_match_onnxruntime_and_float64_reference(op_type, opset, shape, reduction,
                                                         with_weight, ignore_index):
    rng = np.random.default_rng(len(shape) * 7 + with_weight)
    x, target, weight = _loss_case(rng, shape, with_weight, ignore_index)
    feeds, attrs = _loss_feeds(x, target, weight), _loss_attrs(reduction, ignore_index)
    softmax = op_type == "SoftmaxCrossEntropyLoss"
    outputs = 2 if softmax else 1
    got = _pve(op_type, feeds, attrs, opset, outputs)
    loss, log_prob = _loss_reference(x, target, weight, reduction, ignore_index, softmax)
    np.testing.assert_allclose(got[0], loss, rtol=1e-6, atol=1e-6)
    assert got[0].dtype == np.float32 and got[0].shape == np.shape(loss)
    if softmax:
        np.testing.assert_allclose(got[1], log_prob, rtol=1e-6, atol=1e-6)
    _same(got, _ort(op_type, feeds, attrs, opset, outputs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
@pytest.mark.parametrize("op_type", ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"])
def test_losses_keep_float16_and_double(op_type, dtype):
    rng = np.random.default_rng(3)
    x, target, weight = _loss_case(rng, (4, 5, 3), True, 2, dtype)
    softmax = op_type == "SoftmaxCrossEntropyLoss"
    got = _pve(op_type, _loss_feeds(x, target, weight), _loss_attrs("mean", 2), 13,
               2 if softmax else 1)
    loss, log_prob = _loss_reference(x, target, weight, "mean", 2, softmax)
    assert all(g.dtype == dtype for g in got)
    # float16: the float64 result rounded once to float16
    tol = 1e-12 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(got[0], loss, rtol=tol, atol=tol)
    if softmax:
        np.testing.assert_allclose(got[1], log_prob, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 2, -3])
def test_losses_match_torch(shape, reduction, with_weight, ignore_index):
    torch = pytest.importorskip("torch", reason="torch (a test extra) is a reference")
    rng = np.random.default_rng(11)
    x, target, weight = _loss_case(rng, shape, with_weight, ignore_index)
    attrs = _loss_attrs(reduction, ignore_index)
    kwargs = {"reduction": reduction,
              "weight": None if weight is None else torch.from_numpy(weight),
              "ignore_index": -100 if ignore_index is None else ignore_index}
    xt, tt = torch.from_numpy(x), torch.from_numpy(target)
    nll = _pve("NegativeLogLikelihoodLoss", _loss_feeds(x, target, weight), attrs, 13)[0]
    want = torch.nn.functional.nll_loss(xt, tt, **kwargs).numpy()
    np.testing.assert_allclose(nll, want, rtol=1e-5, atol=1e-6)
    sce = _pve("SoftmaxCrossEntropyLoss", _loss_feeds(x, target, weight), attrs, 13)[0]
    want = torch.nn.functional.cross_entropy(xt, tt, **kwargs).numpy()
    np.testing.assert_allclose(sce, want, rtol=1e-5, atol=1e-6)


def test_mean_divides_by_the_weights_of_targets_not_ignored():
    x = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8], [0.2, 0.3, 0.5]], np.float32))
    target = np.array([0, 2, 1], np.int64)
    weight = np.array([1.0, 3.0, 2.0], np.float32)
    (got,) = _pve("NegativeLogLikelihoodLoss", {"x": x, "t": target, "w": weight},
                  {"reduction": "mean", "ignore_index": 1}, 13)
    want = -(1.0 * np.log(0.5) + 2.0 * np.log(0.8)) / (1.0 + 2.0)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("op_type", ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"])
def test_loss_errors(op_type):
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"target of shape \(2, 4\) expected.*got \(2, 3\)"):
        _pve(op_type, {"x": x, "t": np.zeros((2, 3), np.int64)}, {}, 13)
    for bad in (3, -1):
        t = np.zeros((2, 4), np.int64)
        t[1, 2] = bad
        with pytest.raises(ValueError, match=f"target {bad} is out of range for 3 classes"):
            _pve(op_type, {"x": x, "t": t}, {"ignore_index": 7}, 13)
    with pytest.raises(ValueError, match=r"weight of shape \(3,\) expected"):
        _pve(op_type, {"x": x, "t": np.zeros((2, 4), np.int64), "w": np.ones(4, np.float32)},
             {}, 13)
    with pytest.raises(ValueError, match="reduction must be"):
        _pve(op_type, {"x": x, "t": np.zeros((2, 4), np.int64)}, {"reduction": "avg"}, 13)


# --------------------------------------------------------------------------- CumProd
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumprod_matches_onnxruntime_and_numpy(dtype, axis, exclusive, reverse):
    rng = np.random.default_rng(axis + 5)
    x = rng.integers(-3, 4, (3, 4, 5)).astype(dtype)
    for axis_input in (np.array(axis, np.int64), np.array([axis], np.int32)):
        feeds = {"x": x, "a": axis_input}
        attrs = {"exclusive": exclusive, "reverse": reverse}
        got = _pve("CumProd", feeds, attrs, 26)
        # reference: the product of the elements before (after, reversed) along the axis
        moved = np.moveaxis(x, axis, -1)
        n = moved.shape[-1]
        want = np.empty(moved.shape, dtype)
        for k in range(n):
            span = range(k + 1, n) if reverse else range(0, k)
            span = list(span) + ([] if exclusive else [k])
            want[..., k] = np.prod(moved[..., span], axis=-1, dtype=dtype)
        np.testing.assert_array_equal(got[0], np.moveaxis(want, -1, axis))
        _same(got, _ort("CumProd", feeds, attrs, 26), rtol=0, atol=0)


def test_cumprod_errors():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="CumProd: axis 2 is out of range for rank 2"):
        _pve("CumProd", {"x": x, "a": np.array(2, np.int64)}, {}, 26)
    with pytest.raises(ValueError, match="axis must be one integer"):
        _pve("CumProd", {"x": x, "a": np.array([0, 1], np.int64)}, {}, 26)


# --------------------------------------------------------------------------- CenterCropPad, Det
@pytest.mark.parametrize("axes", [None, [0, 2], [-1, 1], [2]])
def test_center_crop_pad_matches_onnxruntime(axes):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 6, 7)).astype(np.float32)
    rank_axes = list(range(3)) if axes is None else axes
    for trial in range(6):
        shape = rng.integers(1, 11, len(rank_axes)).astype(np.int64)
        feeds = {"x": x, "s": shape}
        attrs = {} if axes is None else {"axes": axes}
        got = _pve("CenterCropPad", feeds, attrs, 18)
        # reference: each output index maps to input index i - offset, the offset
        # floor((out - in) / 2) (negative for a crop)
        out_shape = list(x.shape)
        for a, s in zip(rank_axes, shape):
            out_shape[a % 3] = int(s)
        want = np.zeros(out_shape, np.float32)
        for idx in np.ndindex(*out_shape):
            src = tuple(i - (o - n) // 2 if (o - n) >= 0 else i + (n - o) // 2
                        for i, o, n in zip(idx, out_shape, x.shape))
            if all(0 <= s_ < n for s_, n in zip(src, x.shape)):
                want[idx] = x[src]
        np.testing.assert_array_equal(got[0], want)
        _same(got, _ort("CenterCropPad", feeds, attrs, 18), rtol=0, atol=0)


def test_center_crop_pad_errors():
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="axes \\[0, 3\\] out of range for rank 3"):
        _pve("CenterCropPad", {"x": x, "s": np.array([1, 1], np.int64)}, {"axes": [0, 3]}, 18)
    with pytest.raises(ValueError, match="repeat an axis"):
        _pve("CenterCropPad", {"x": x, "s": np.array([1, 1], np.int64)}, {"axes": [1, -2]}, 18)
    with pytest.raises(ValueError, match="shape must give 3 sizes"):
        _pve("CenterCropPad", {"x": x, "s": np.array([1, 1], np.int64)}, {}, 18)


@pytest.mark.parametrize("shape", [(3, 3), (4, 2, 2), (2, 3, 5, 5), (0, 4, 4), (1, 1)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opset", [11, 22])
def test_det_matches_onnxruntime_and_torch(shape, dtype, opset):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    got = _pve("Det", {"x": x}, {}, opset)
    assert got[0].shape == shape[:-2] and got[0].dtype == dtype
    if dtype == np.float32:  # (onnxruntime's CPU Det is float only)
        _same(got, _ort("Det", {"x": x}, {}, opset), rtol=1e-5, atol=1e-6)
    torch = pytest.importorskip("torch", reason="torch (a test extra) is a reference")
    want = torch.linalg.det(torch.from_numpy(x.astype(np.float64))).numpy()
    np.testing.assert_allclose(got[0], want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-12)


def test_det_errors():
    with pytest.raises(ValueError, match=r"Det: input \(\*, M, M\) of square matrices expected, "
                                         r"got \(2, 3\)"):
        _pve("Det", {"x": np.ones((2, 3), np.float32)}, {}, 11)
    with pytest.raises(ValueError, match="Det: input must be float16, float or double"):
        _pve("Det", {"x": np.ones((2, 2), np.int64)}, {}, 22)


# --------------------------------------------------------------------------- windows
WINDOWS = ["HannWindow", "HammingWindow", "BlackmanWindow"]


@pytest.mark.parametrize("op_type", WINDOWS)
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("output_datatype", [1, 11, 10, 7, 6])
def test_windows_match_onnxruntime(op_type, periodic, output_datatype):
    for size in (0, 2, 5, 16, 33):
        feeds = {"n": np.array(size, np.int64)}
        attrs = {"periodic": periodic, "output_datatype": output_datatype}
        got = _pve(op_type, feeds, attrs, 17)
        want = _ort(op_type, feeds, attrs, 17)
        # (float16 from a float32 computation: at most one float16 rounding step apart)
        tol = 1e-3 if output_datatype == 10 else 1e-6
        _same(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("periodic", [False, True])
def test_windows_match_torch(periodic):
    torch = pytest.importorskip("torch", reason="torch (a test extra) is a reference")
    # (size 1 only symmetric: torch gives [1] for any one-point window, the
    # specification's periodic formula 0.5 - 0.5 cos(0) = 0, which pve.onnx follows)
    for size in (2, 7, 64) if periodic else (1, 2, 7, 64):
        attrs = {"periodic": int(periodic), "output_datatype": 11}
        feeds = {"n": np.array(size, np.int64)}
        hann = _pve("HannWindow", feeds, attrs, 17)[0]
        np.testing.assert_allclose(
            hann, torch.hann_window(size, periodic, dtype=torch.float64).numpy(), atol=1e-15)
        blackman = _pve("BlackmanWindow", feeds, attrs, 17)[0]
        np.testing.assert_allclose(
            blackman, torch.blackman_window(size, periodic, dtype=torch.float64).numpy(),
            atol=1e-15)
        hamming = _pve("HammingWindow", feeds, attrs, 17)[0]
        want = torch.hamming_window(size, periodic, alpha=25 / 46, beta=21 / 46,
                                    dtype=torch.float64).numpy()
        np.testing.assert_allclose(hamming, want, atol=1e-15)


def test_window_errors():
    with pytest.raises(ValueError, match="HannWindow: size must be >= 0, got -1"):
        _pve("HannWindow", {"n": np.array(-1, np.int64)}, {}, 17)
    with pytest.raises(ValueError, match="HannWindow: size must be one integer"):
        _pve("HannWindow", {"n": np.array([3, 4], np.int64)}, {}, 17)


# --------------------------------------------------------------------------- DFT
def _signal(rng, shape, complex_input, dtype=np.float32):
    return rng.standard_normal(shape + (2 if complex_input else 1,)).astype(dtype)


@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("axis", [0, 1, 2, -2, -3])
@pytest.mark.parametrize("inverse, onesided, complex_input", [
    (0, 0, False), (0, 0, True), (1, 0, True), (1, 0, False), (0, 1, False), (1, 1, True)])
@pytest.mark.parametrize("length", [None, 3, 8, 13])
def test_dft_matches_onnxruntime(opset, axis, inverse, onesided, complex_input, length):
    rng = np.random.default_rng(axis + 3)
    x = _signal(rng, (3, 6, 7), complex_input)
    feeds = {"x": x}
    attrs = {"inverse": inverse, "onesided": onesided}
    if length is not None:
        feeds["n"] = np.array(length, np.int64)
    if opset >= 20:
        if length is None:
            feeds["_n"] = None
        feeds["axis"] = np.array(axis, np.int64)
    else:
        attrs["axis"] = axis
    feeds = {k: feeds[k] for k in sorted(feeds, key=["x", "n", "_n", "axis"].index)}
    got = _pve("DFT", feeds, attrs, opset)
    if inverse and onesided and length is not None and length != 2 * (x.shape[axis] - 1):
        # IRFFT with a dft_length that does not fit the one-sided input: onnxruntime's
        # results vary with the axis; the specification's reference is numpy's irfft
        # (also checked in double by test_dft_in_double_matches_the_definition)
        z = x[..., 0] + 1j * x[..., 1].astype(np.float64)
        want = np.fft.irfft(z, length, axis=axis % 4)[..., None].astype(np.float32)
        np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-5)
        return
    want = _ort("DFT", feeds, attrs, opset)
    _same(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("inverse, onesided, complex_input", [
    (0, 0, False), (0, 0, True), (1, 0, True), (0, 1, False), (1, 1, True)])
def test_dft_in_double_matches_the_definition(inverse, onesided, complex_input):
    rng = np.random.default_rng(9)
    x = _signal(rng, (2, 5, 9), complex_input, np.float64)
    n_signal, length = 9, 12
    (got,) = _pve("DFT", {"x": x, "n": np.array(length, np.int64),
                          "axis": np.array(2, np.int64)},
                  {"inverse": inverse, "onesided": onesided}, 20)
    assert got.dtype == np.float64
    z = x[..., 0] + (1j * x[..., 1] if complex_input else 0)
    if inverse and onesided:  # the Hermitian-symmetric full spectrum of length 12
        half = np.zeros(z.shape[:2] + (length // 2 + 1,), complex)
        half[..., :min(n_signal, length // 2 + 1)] = z[..., :length // 2 + 1]
        half[..., 0] = half[..., 0].real
        half[..., -1] = half[..., -1].real
        z = np.concatenate([half, np.conj(half[..., -2:0:-1])], axis=-1)
    else:
        padded = np.zeros(z.shape[:2] + (length,), complex)
        padded[..., :n_signal] = z
        z = padded
    k = np.arange(length)
    sign = 1.0 if inverse else -1.0
    basis = np.exp(sign * 2j * np.pi * np.outer(k, k) / length)
    y = z @ basis.T / (length if inverse else 1)
    if inverse and onesided:
        np.testing.assert_allclose(got[..., 0], y.real, atol=1e-12)
        assert got.shape == (2, 5, length, 1)
        return
    if onesided:
        y = y[..., :length // 2 + 1]
    np.testing.assert_allclose(got, np.stack([y.real, y.imag], -1), atol=1e-12)


def test_dft_errors():
    x = np.zeros((2, 8, 2), np.float32)
    with pytest.raises(ValueError, match=r"axis 2 is out of range for an input of rank 3"):
        _pve("DFT", {"x": x}, {"axis": 2}, 17)
    with pytest.raises(ValueError, match=r"axis -1 is out of range"):
        _pve("DFT", {"x": x, "_n": None, "axis": np.array(-1, np.int64)}, {}, 20)
    with pytest.raises(ValueError, match=r"onesided forward \(RFFT\) takes a real input"):
        _pve("DFT", {"x": x}, {"onesided": 1}, 17)
    with pytest.raises(ValueError, match=r"onesided inverse \(IRFFT\) takes a complex input"):
        _pve("DFT", {"x": np.zeros((2, 8, 1), np.float32)}, {"onesided": 1, "inverse": 1}, 17)
    with pytest.raises(ValueError, match="input \\[..., 1\\] \\(real\\) or \\[..., 2\\]"):
        _pve("DFT", {"x": np.zeros((2, 8, 3), np.float32)}, {}, 17)
    with pytest.raises(ValueError, match="dft_length must be >= 1, got 0"):
        _pve("DFT", {"x": x, "n": np.array(0, np.int64)}, {}, 17)


# --------------------------------------------------------------------------- STFT
@pytest.mark.parametrize("onesided", [0, 1])
@pytest.mark.parametrize("complex_input", [False, True])
@pytest.mark.parametrize("step, frame, with_window, with_length", [
    (4, 8, True, False), (3, 10, True, True), (5, 7, False, True), (2, 16, True, True),
    (1, 12, False, True)])
def test_stft_matches_onnxruntime(onesided, complex_input, step, frame, with_window,
                                  with_length):
    rng = np.random.default_rng(frame)
    x = _signal(rng, (2, 40), complex_input)
    feeds = {"x": x, "s": np.array(step, np.int64)}
    if with_window:
        feeds["w"] = rng.uniform(0, 1, frame).astype(np.float32)
    elif with_length:
        feeds["_w"] = None
    if with_length:
        feeds["l"] = np.array(frame, np.int64)
    got = _pve("STFT", feeds, {"onesided": onesided}, 17)
    _same(got, _ort("STFT", feeds, {"onesided": onesided}, 17), rtol=1e-4, atol=1e-4)
    frames = (40 - frame) // step + 1
    assert got[0].shape == (2, frames, frame // 2 + 1 if onesided else frame, 2)


def test_stft_in_double_matches_numpy_frames():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 50, 1))
    window = rng.uniform(0, 1, 12)
    (got,) = _pve("STFT", {"x": x, "s": np.array(5, np.int64), "w": window}, {}, 17)
    frames = [x[:, f * 5:f * 5 + 12, 0] * window for f in range((50 - 12) // 5 + 1)]
    k = np.arange(12)
    basis = np.exp(-2j * np.pi * np.outer(k, k) / 12)[:, :7]
    want = np.stack([fr @ basis for fr in frames], axis=1)
    np.testing.assert_allclose(got, np.stack([want.real, want.imag], -1), atol=1e-12)


def test_stft_without_window_and_frame_length_takes_the_whole_signal():
    # (as the specification says; onnxruntime 1.32 fails on such a node)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 30, 1)).astype(np.float32)
    (got,) = _pve("STFT", {"x": x, "s": np.array(3, np.int64)}, {}, 17)
    want = np.fft.rfft(x[..., 0].astype(np.float64), axis=1)[:, None]
    np.testing.assert_allclose(got, np.stack([want.real, want.imag], -1), rtol=1e-5, atol=1e-5)


def test_stft_errors():
    x = np.zeros((1, 20, 1), np.float32)
    step = np.array(4, np.int64)
    with pytest.raises(ValueError, match="window of length 8 for frame_length 6"):
        _pve("STFT", {"x": x, "s": step, "w": np.ones(8, np.float32),
                      "l": np.array(6, np.int64)}, {}, 17)
    with pytest.raises(ValueError, match="frame_length <= signal length 20"):
        _pve("STFT", {"x": x, "s": step, "_w": None, "l": np.array(21, np.int64)}, {}, 17)
    with pytest.raises(ValueError, match="frame_step >= 1"):
        _pve("STFT", {"x": x, "s": np.array(0, np.int64)}, {}, 17)
    with pytest.raises(ValueError, match=r"signal \[batch, length, 1 or 2\] expected"):
        _pve("STFT", {"x": np.zeros((20, 1), np.float32), "s": step}, {}, 17)


# --------------------------------------------------------------------------- MelWeightMatrix
@pytest.mark.parametrize("mels, dft_length, rate, low, high", [
    (8, 16, 8192, 0.0, 4096.0), (10, 64, 16000, 20.0, 8000.0), (40, 512, 16000, 0.0, 8000.0),
    (5, 33, 22050, 300.0, 6000.0), (64, 1024, 44100, 50.0, 14000.0), (3, 8, 100, 0.0, 50.0)])
@pytest.mark.parametrize("output_datatype", [1, 11])
def test_mel_weight_matrix_matches_onnxruntime(mels, dft_length, rate, low, high,
                                               output_datatype):
    feeds = {"m": np.array(mels, np.int64), "d": np.array(dft_length, np.int64),
             "r": np.array(rate, np.int64), "lo": np.array(low, np.float32),
             "hi": np.array(high, np.float32)}
    attrs = {"output_datatype": output_datatype}
    got = _pve("MelWeightMatrix", feeds, attrs, 17)
    assert got[0].shape == (dft_length // 2 + 1, mels)
    _same(got, _ort("MelWeightMatrix", feeds, attrs, 17), rtol=1e-6, atol=1e-7)


def test_mel_weight_matrix_errors():
    feeds = {"m": np.array(8, np.int64), "d": np.array(16, np.int64),
             "r": np.array(8000, np.int64), "lo": np.array(100.0, np.float32),
             "hi": np.array(50.0, np.float32)}
    with pytest.raises(ValueError, match="lower_edge_hertz < upper_edge_hertz"):
        _pve("MelWeightMatrix", feeds, {}, 17)
    feeds["hi"], feeds["m"] = np.array(4000.0, np.float32), np.array(0, np.int64)
    with pytest.raises(ValueError, match="num_mel_bins, dft_length and sample_rate must be >= 1"):
        _pve("MelWeightMatrix", feeds, {}, 17)
