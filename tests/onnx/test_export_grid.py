"""pve.onnx.export of F.grid_sample (GridSample, opset >= 16) and F.affine_grid (AffineGrid,
opset >= 20): each net exported with a free batch dim, checked with onnx.checker, its op
types, and its outputs against the model's own output in onnxruntime (the example's batch
and another) and in pve.onnx.InferenceSession; the opsets without these ops are refused
with NotImplementedError. Skips without onnx / onnxruntime."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import nn
from pyvision_engine.nn import functional as F
from pyvision_engine.onnx import export
from reference.onnx_roundtrip import RNG, assert_close, check, run

pytest.importorskip("onnx", reason="onnx (a test extra) checks the exported files")
pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) runs the exported files")


class Sampler(nn.Module):
    """A conv, then sampling of its output at a grid that is a second input."""

    def __init__(self, mode, padding, align):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.mode, self.padding, self.align = mode, padding, align

    def forward(self, x, grid):
        return F.grid_sample(self.conv(x), grid, self.mode, self.padding, self.align)


class SpatialTransformer(nn.Module):
    """The classic spatial transformer: theta from a small head, affine_grid, grid_sample."""

    def __init__(self, mode, padding, align):
        super().__init__()
        self.head = nn.Linear(3 * 6 * 5, 6)
        self.register_buffer("identity", pve.tensor(np.eye(2, 3, dtype=np.float32)))
        self.mode, self.padding, self.align = mode, padding, align

    def forward(self, x):
        theta = self.head(x.flatten(1)).reshape(-1, 2, 3) * 0.3 + self.identity
        grid = F.affine_grid(theta, (x.shape[0], 3, 4, 7), self.align)
        return F.grid_sample(x, grid, self.mode, self.padding, self.align)


def _outputs(model, *arrays):
    with pve.no_grad():
        return model(*[pve.tensor(a) for a in arrays]).numpy()


def _roundtrip(model, arrays, names, opset, ops, tmp_path, batches=(None, 3)):
    path = tmp_path / "m.onnx"
    dynamic = {n: {0: "batch"} for n in names + ["output"]}
    export(model, tuple(pve.tensor(a) for a in arrays), path, opset_version=opset,
           input_names=names, output_names=["output"], dynamic_axes=dynamic)
    assert {n.op_type for n in check(path).graph.node} == ops
    for batch in batches:
        feeds = arrays if batch is None else [
            RNG.uniform(-1.3, 1.3, (batch,) + a.shape[1:]).astype(np.float32) for a in arrays]
        want = _outputs(model, *feeds)
        got = run(path, dict(zip(names, feeds)))[0]
        assert got.dtype == want.dtype
        assert_close(got, want)
        ours = pve.onnx.InferenceSession(str(path)).run(None, dict(zip(names, feeds)))[0]
        assert_close(np.asarray(ours), want)


@pytest.mark.parametrize("opset", [16, 20])
@pytest.mark.parametrize("mode,padding,align", [
    c for c in itertools.product(["bilinear", "nearest", "bicubic"],
                                 ["zeros", "border", "reflection"], [False, True])])
def test_grid_sample_exports_as_grid_sample(mode, padding, align, opset, tmp_path):
    model = Sampler(mode, padding, align).eval()
    x = RNG.standard_normal((2, 3, 5, 6)).astype(np.float32)
    # uniform in [-1.3, 1.3): some points outside, few exactly on a tie
    grid = RNG.uniform(-1.3, 1.3, (2, 4, 3, 2)).astype(np.float32)
    _roundtrip(model, [x, grid], ["input", "grid"], opset, {"Conv", "GridSample"}, tmp_path)


@pytest.mark.parametrize("align", [False, True])
def test_spatial_transformer_exports_with_affine_grid(align, tmp_path):
    model = SpatialTransformer("bilinear", "border", align).eval()
    x = RNG.standard_normal((2, 3, 6, 5)).astype(np.float32)
    _roundtrip(model, [x], ["input"], 20,
               {"Flatten", "Gemm", "Reshape", "Mul", "Add", "Shape", "Slice", "Concat",
                "AffineGrid", "GridSample"}, tmp_path)


@pytest.mark.parametrize("model,args,opset,pattern", [
    (Sampler("bilinear", "zeros", False), [(1, 3, 4, 4), (1, 2, 2, 2)], 15,
     "grid_sample below opset 16"),
    (SpatialTransformer("bilinear", "zeros", False), [(1, 3, 6, 5)], 19,
     "affine_grid below opset 20"),
], ids=["grid-sample-opset15", "affine-grid-opset19"])
def test_grid_ops_below_their_opset_are_refused(model, args, opset, pattern, tmp_path):
    arrays = tuple(pve.tensor(RNG.standard_normal(s).astype(np.float32)) for s in args)
    with pytest.raises(NotImplementedError, match=pattern):
        export(model.eval(), arrays, tmp_path / "m.onnx", opset_version=opset)
    assert not (tmp_path / "m.onnx").exists()
