"""pve.onnx.export of the 1-D layers, Hardshrink/Softshrink/RReLU/GLU, LPPool2d, max
unpooling, the vector-norm layers and Unfold/Fold.

Each net is exported once with a free batch dim and checked three ways: onnx.checker, the
ONNX op types it became (each layer as its standard op), and its outputs against the
model's own eval output, in onnxruntime (at the example's batch size and another) and in
pve.onnx.InferenceSession (helpers and tolerance: tests/reference/onnx_roundtrip.py). The
refusals raise errors that name the layer and why.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import nn
from pyvision_engine.nn import functional as F
from pyvision_engine.onnx import export
from reference.onnx_roundtrip import RNG, assert_close, check, images, reference, run


# --------------------------------------------------------------------------- small modules
class Unpool(nn.Module):
    """MaxPool2d's indices into MaxUnpool2d (and out, as torch's per-plane indices)."""

    def __init__(self, kernel, stride=None, padding=0, output_size=None):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.pool = nn.MaxPool2d(kernel, stride, padding, return_indices=True)
        self.unpool = nn.MaxUnpool2d(kernel, stride, padding)
        self.output_size = output_size

    def forward(self, x):
        y, indices = self.pool(self.conv(x))
        return self.unpool(F.relu(y), indices, output_size=self.output_size), indices


class Distances(nn.Module):
    def __init__(self):
        super().__init__()
        self.cos = nn.CosineSimilarity(dim=1)
        self.l2 = nn.PairwiseDistance()
        self.l1 = nn.PairwiseDistance(p=1, keepdim=True)
        self.l3 = nn.PairwiseDistance(p=3, eps=1e-3)
        self.inf = nn.PairwiseDistance(p=math.inf)

    def forward(self, a, b):
        return (self.cos(a, b), self.l2(a, b), self.l1(a, b), self.l3(a, b), self.inf(a, b),
                F.normalize(a, dim=-1) + F.normalize(b, p=1.0, dim=1))


class PositiveLpPools(nn.Module):
    """Fractional and odd orders need x >= 0 (torch's root of a negative sum is NaN)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.lp = nn.ModuleList([nn.LPPool2d(1.5, 2), nn.LPPool2d(3, (2, 3), (1, 2), True),
                                 nn.LPPool2d(math.inf, 3, 2)])

    def forward(self, x):
        x = F.sigmoid(self.conv(x))
        return tuple(pool(x) for pool in self.lp)


def _with_running_stats(norm):
    norm.running_mean.copy_(RNG.normal(0.0, 0.3, norm.num_features).astype(np.float32))
    norm.running_var.copy_(RNG.uniform(0.5, 2.0, norm.num_features).astype(np.float32))
    return norm


# name: (make the model, input shapes, opset, the op types the graph holds)
NETS = {
    "conv1d": (lambda: nn.Sequential(
        nn.Conv1d(4, 6, 3, stride=2, padding=1),
        nn.Conv1d(6, 6, 4, padding="same", dilation=2, groups=3),
        nn.Conv1d(6, 4, 3, padding="valid", bias=False),
        nn.Conv1d(4, 4, 3, padding=2, padding_mode="reflect"),
        nn.Conv1d(4, 3, 2, padding=1, padding_mode="replicate")),
        [(2, 4, 23)], 17, {"Conv", "Pad"}),
    "conv1d_circular": (lambda: nn.Conv1d(4, 5, 3, padding=2, padding_mode="circular"),
                        [(2, 4, 9)], 19, {"Conv", "Pad"}),
    "conv_transpose1d": (lambda: nn.Sequential(
        nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
        # output padding 1 at stride 1 (below the dilation: torch's rule, not onnxruntime's)
        nn.ConvTranspose1d(6, 4, 3, padding=1, output_padding=1, dilation=2),
        nn.ConvTranspose1d(4, 3, 2, bias=False)),
        [(2, 4, 7)], 17, {"ConvTranspose", "Reshape", "Add"}),
    "pool1d": (lambda: nn.Sequential(
        nn.MaxPool1d(2, 3, 1, dilation=2, ceil_mode=True),  # -inf Pad: window past the input
        nn.MaxPool1d(3, 2, 1, ceil_mode=True),
        nn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        nn.Conv1d(4, 4, 1), nn.AvgPool1d(2, 1, padding=1, ceil_mode=True),  # counts padding
        nn.MaxPool1d(2, 1, dilation=2)),
        [(2, 4, 27)], 17, {"MaxPool", "AveragePool", "Conv", "Pad"}),
    "adaptive_pool1d": (lambda: nn.Sequential(
        nn.AdaptiveAvgPool1d(6), nn.AdaptiveMaxPool1d(3), nn.Conv1d(4, 4, 1),
        nn.AdaptiveMaxPool1d(1), nn.Conv1d(4, 4, 1), nn.AdaptiveAvgPool1d(1)),
        [(2, 4, 12)], 17,
        {"AveragePool", "MaxPool", "Conv", "GlobalMaxPool", "GlobalAveragePool"}),
    "dropout_norm_pad1d": (lambda: nn.Sequential(
        nn.Conv1d(3, 4, 1), nn.Dropout1d(0.3), nn.InstanceNorm1d(4, affine=True),
        nn.ZeroPad1d((1, 2)), nn.InstanceNorm1d(4), nn.ConstantPad1d((2, 0), 0.5),
        nn.ReflectionPad1d(2), nn.ReplicationPad1d((1, 3)),
        _with_running_stats(nn.InstanceNorm1d(4, track_running_stats=True))),
        [(2, 3, 6)], 17, {"Conv", "InstanceNormalization", "Pad", "BatchNormalization"}),
    "circular_pad1d": (lambda: nn.Sequential(nn.CircularPad1d((2, 1)), nn.Conv1d(3, 3, 1),
                                             nn.CircularPad1d(1)),
                       [(2, 3, 5)], 19, {"Pad", "Conv"}),
    "shrink_rrelu_glu": (lambda: nn.Sequential(
        nn.Conv2d(3, 6, 1), nn.Hardshrink(0.3), nn.Conv2d(6, 6, 1), nn.Softshrink(0.2),
        nn.RReLU(0.1, 0.3), nn.Conv2d(6, 8, 1), nn.GLU(1), nn.GLU(-1)),
        [(2, 3, 5, 4)], 13, {"Conv", "Shrink", "LeakyRelu", "Split", "Sigmoid", "Mul"}),
    "glu_opset18": (lambda: nn.Sequential(nn.Conv1d(3, 4, 1), nn.GLU(1), nn.GLU(2)),
                    [(2, 3, 6)], 18, {"Conv", "Split", "Sigmoid", "Mul"}),
    "lp_pool_even": (lambda: nn.Sequential(nn.Conv2d(3, 3, 1), nn.LPPool2d(2, 3, 2),
                                           nn.LPPool2d(4, (2, 1), ceil_mode=True)),
                     [(2, 3, 9, 7)], 17, {"Conv", "LpPool"}),
    # ceil_mode's partial windows are scaled by the full window's area: composed
    "lp_pool_partial_windows": (lambda: nn.Sequential(nn.Conv2d(3, 3, 1),
                                                      nn.LPPool2d(2, 3, 2, ceil_mode=True)),
                                [(2, 3, 8, 8)], 17, {"Conv", "Pow", "AveragePool", "Mul", "Pad"}),
    "lp_pool_other_orders": (PositiveLpPools, [(2, 3, 8, 9)], 17,
                             {"Conv", "Sigmoid", "Pow", "AveragePool", "Mul", "Abs", "MaxPool"}),
    "max_unpool": (lambda: Unpool(2), [(2, 3, 8, 6)], 17,
                   {"Conv", "MaxPool", "Mod", "Relu", "MaxUnpool"}),
    # an output_size beyond the inferred size, overlapping windows, padding: scattered
    "max_unpool_output_size": (lambda: Unpool(3, 2, 1, output_size=(10, 8)), [(2, 3, 10, 8)], 17,
                               {"Conv", "MaxPool", "Mod", "Relu", "Reshape", "Shape", "Slice",
                                "Concat", "Expand", "ScatterElements"}),
    "distances": (Distances, [(2, 5, 4), (2, 5, 4)], 17,
                  {"ReduceL2", "ReduceL1", "ReduceSum", "ReduceMax", "Abs", "Pow", "Clip", "Div",
                   "Mul", "Sub", "Add"}),
    "distances_opset18": (Distances, [(3, 5, 4), (3, 5, 4)], 18,  # (axes as an input)
                          {"ReduceL2", "ReduceL1", "ReduceSum", "ReduceMax", "Abs", "Pow", "Clip",
                           "Div", "Mul", "Sub", "Add"}),
    "unfold": (lambda: nn.Sequential(nn.Conv2d(3, 2, 1), nn.Unfold(3, dilation=2, padding=1,
                                                                   stride=2)),
               [(2, 3, 9, 7)], 17, {"Conv", "Pad", "Slice", "Reshape", "Concat"}),
    "fold": (lambda: nn.Fold((5, 6), (2, 3), stride=(1, 2), padding=(1, 0)), [(2, 12, 12)], 18,
             {"Col2Im"}),
    "unfold_fold": (lambda: nn.Sequential(nn.Unfold((2, 3), dilation=(1, 2)), nn.Fold(
        (6, 7), (2, 3), dilation=(1, 2))), [(2, 2, 6, 7)], 21,
        {"Slice", "Reshape", "Concat", "Col2Im"}),
}


def _inputs(shapes, batch=None):
    return [images(*((batch,) + s[1:] if batch else s)) for s in shapes]


def _feeds(arrays):
    names = ["input"] if len(arrays) == 1 else [f"input_{i}" for i in range(len(arrays))]
    return dict(zip(names, arrays))


@pytest.fixture(params=sorted(NETS))
def exported(request, tmp_path):
    make, shapes, opset, ops = NETS[request.param]
    model = make().eval()
    arrays = _inputs(shapes)
    outputs = len(reference(model, *arrays))
    free = {name: {0: "batch"} for name in _feeds(arrays)}
    free.update({name: {0: "batch"} for name in (
        ["output"] if outputs == 1 else [f"output_{i}" for i in range(outputs)])})
    path = tmp_path / f"{request.param}.onnx"
    export(model, tuple(arrays), path, opset_version=opset, dynamic_axes=free)
    return model, shapes, path, ops


def test_exports_as_standard_ops_that_onnxruntime_runs(exported):
    model, shapes, path, ops = exported
    graph = check(path).graph
    assert {n.op_type for n in graph.node} == ops
    for batch in (None, 3):  # the example's batch size, then another through the same file
        arrays = _inputs(shapes, batch)
        got = run(path, _feeds(arrays))
        want_all = reference(model, *arrays)
        assert len(got) == len(want_all)  # (zip's strict= needs Python 3.10; 3.9 is supported)
        for g, want in zip(got, want_all):
            assert g.dtype == want.dtype
            assert_close(g, want)


def test_pve_inference_session_runs_the_file(exported):
    model, shapes, path, _ = exported
    arrays = _inputs(shapes)
    got = pve.onnx.InferenceSession(str(path)).run(None, _feeds(arrays))
    want_all = reference(model, *arrays)
    assert len(got) == len(want_all)
    for g, want in zip(got, want_all):
        assert np.asarray(g).dtype == want.dtype
        assert_close(np.asarray(g), want)


def test_max_pool_indices_are_torchs_per_plane_positions(tmp_path):
    """The Mod that turns ONNX's whole-tensor indices into torch's is what both read."""
    model = Unpool(2).eval()
    x = images(2, 3, 6, 4)
    path = tmp_path / "m.onnx"
    export(model, x, path)
    want = reference(model, x)[1]
    assert want.max() < 6 * 4  # (within a plane)
    np.testing.assert_array_equal(pve.onnx.InferenceSession(str(path)).run(None, {"input": x})[1],
                                  want)
    np.testing.assert_array_equal(run(path, {"input": x})[1], want)


# --------------------------------------------------------------------------- refusals
class _Functional(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class UntracedIndices(nn.Module):
    def forward(self, x):
        y = F.max_pool2d(x, 2)
        return F.max_unpool2d(y, pve.tensor(np.zeros(y.shape, np.int64)), 2)


@pytest.mark.parametrize("model,shape,opset,pattern", [
    (nn.Fold((4, 5), 2), (1, 8, 12), 17, r"fold below opset 18.*Col2Im came in opset 18"),
    (nn.CircularPad1d(1), (1, 3, 8), 18, "circular padding below opset 19"),
    (nn.AdaptiveAvgPool1d(3), (1, 3, 8), 17, r"adaptive_avg_pool1d from 8 to 3 .*divide"),
    (nn.AdaptiveMaxPool1d(0), (1, 3, 8), 17, "empty 0 output"),
    (nn.MaxPool1d(2, return_indices=True), (1, 3, 8), 17, "max_pool1d with return_indices"),
    (nn.AdaptiveMaxPool1d(2, return_indices=True), (1, 3, 8), 17, "return_indices"),
    (nn.Conv1d(3, 3, 3), (3, 8), 17, r"conv1d on a 2-D input cannot be exported \(only \(N, C, L\)\)"),
    (nn.ConvTranspose1d(3, 3, 3), (3, 8), 17, "conv_transpose1d on a 2-D input"),
    (nn.MaxPool1d(2), (3, 8), 17, "max_pool1d on a 2-D input"),
    (nn.Unfold(2), (3, 4, 4), 17, "unfold on a 3-D input"),
    (_Functional(lambda x: F.pairwise_distance(x, -x, p=0)), (2, 5), 17,
     "vector norm of order 0"),
    (nn.Sequential(nn.MaxPool2d(2, 3, 1, dilation=2, ceil_mode=True, return_indices=True)),
     (1, 3, 10, 9), 17, "return_indices=True and a dilated window"),
    (UntracedIndices(), (1, 3, 4, 4), 17, "neither a traced value nor a parameter"),
], ids=["fold-opset17", "circular-pad1d-opset18", "uneven-adaptive-pool1d",
        "empty-adaptive-pool1d", "max-pool1d-indices", "adaptive-max-pool1d-indices",
        "unbatched-conv1d", "unbatched-conv-transpose1d", "unbatched-max-pool1d",
        "unbatched-unfold", "norm-order-0", "padded-max-pool-indices", "untraced-indices"])
def test_refused_layers_are_not_implemented_errors(model, shape, opset, pattern, tmp_path):
    with pytest.raises(NotImplementedError, match=pattern) as info:
        export(model.eval(), images(*shape), tmp_path / "m.onnx", opset_version=opset)
    assert "Supported:" in str(info.value)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("model,shape,pattern", [
    (nn.Sequential(nn.Conv1d(3, 3, 1), nn.RReLU()), (2, 3, 4),
     r"1 \(RReLU\) is in training mode.*model\.eval\(\)"),
    (nn.Sequential(nn.Dropout1d()), (2, 3, 4), r"0 \(Dropout1d\) is in training mode"),
    (_Functional(lambda x: F.rrelu(x, training=True)), (2, 3, 4),
     "rrelu in training mode \\(random slopes\\)"),
    (_Functional(lambda x: F.dropout1d(x, 0.2, training=True)), (2, 3, 4),
     "dropout1d in training mode \\(random masks\\)"),
], ids=["rrelu-module", "dropout1d-module", "rrelu-functional", "dropout1d-functional"])
def test_random_layers_in_training_mode_are_value_errors(model, shape, pattern, tmp_path):
    if isinstance(model, _Functional):
        model.eval()  # (the functional is told training=True itself)
    with pytest.raises(ValueError, match=pattern):
        export(model, images(*shape), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
