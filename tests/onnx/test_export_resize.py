"""pve.onnx.export of interpolate / Upsample 'bicubic', 'area' and antialias=True: the
exported Resize (or pooling) runs in onnxruntime, and in pve.onnx's own InferenceSession,
as pve computes it (itself checked against torch in tests/layers); what ONNX cannot
express is refused with a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from pyvision_engine import nn
from pyvision_engine.nn import functional as F
from pyvision_engine.onnx import InferenceSession, export
from reference.onnx_roundtrip import assert_close, check, images, reference, run


class Interp(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x):
        return F.interpolate(x, **self.kwargs)


def _roundtrip(model, x, tmp_path, opset=18):
    path = tmp_path / "model.onnx"
    export(model, x, path, opset_version=opset)
    onnx_model = check(path)
    want = reference(model, x)[0]
    (got,) = run(path, {"input": x})
    assert got.shape == want.shape
    assert_close(got, want)
    (ours,) = InferenceSession(str(path)).run(None, {"input": x})
    assert_close(ours, want)
    return onnx_model


def _resize_attrs(onnx_model):
    (node,) = [n for n in onnx_model.graph.node if n.op_type == "Resize"]
    return {a.name: (a.s.decode() if a.s else a.i if a.type == 2 else a.f) for a in node.attribute}


CASES = [
    dict(size=(9, 13), mode="bicubic"),
    dict(size=(3, 4), mode="bicubic"),
    dict(scale_factor=2, mode="bicubic"),
    dict(scale_factor=0.5, mode="bicubic"),
    dict(size=(9, 13), mode="bicubic", align_corners=True),
    dict(size=(3, 4), mode="bilinear", antialias=True),
    dict(scale_factor=0.5, mode="bilinear", antialias=True),
    dict(size=(4, 17), mode="bilinear", antialias=True),
    dict(size=(3, 4), mode="bicubic", antialias=True),
    dict(scale_factor=0.3, mode="bicubic", antialias=True),
    dict(size=(11, 5), mode="bicubic", antialias=True),
]


@pytest.mark.parametrize("kwargs", CASES, ids=[str(sorted(c.items())) for c in CASES])
def test_resize_matches_onnxruntime(kwargs, tmp_path):
    model = Interp(**kwargs).eval()
    onnx_model = _roundtrip(model, images(2, 3, 8, 10), tmp_path)
    attrs = _resize_attrs(onnx_model)
    want_mode = "cubic" if kwargs["mode"] == "bicubic" else "linear"
    assert attrs["mode"] == want_mode
    assert attrs["coordinate_transformation_mode"] == (
        "align_corners" if kwargs.get("align_corners") else "half_pixel")
    if want_mode == "cubic":
        assert attrs["cubic_coeff_a"] == (-0.5 if kwargs.get("antialias") else -0.75)
    assert attrs.get("antialias", 0) == int(bool(kwargs.get("antialias")))


def test_upsample_bicubic_layer(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Upsample(scale_factor=1.5, mode="bicubic")).eval()
    _roundtrip(model, images(1, 3, 9, 9), tmp_path, opset=17)


@pytest.mark.parametrize("shape,size", [((2, 3, 8, 10), (4, 5)), ((2, 3, 8, 10), 1),
                                        ((2, 3, 12), 4)])
def test_area_exports_as_pooling(shape, size, tmp_path):
    onnx_model = _roundtrip(Interp(size=size, mode="area").eval(), images(*shape), tmp_path)
    assert {n.op_type for n in onnx_model.graph.node} & {"AveragePool", "GlobalAveragePool"}


@pytest.mark.parametrize("kwargs,opset,match", [
    (dict(size=(3, 4), mode="bilinear", antialias=True), 17, "below opset 18"),
    (dict(size=(3, 4), mode="bicubic", antialias=True, align_corners=True), 18,
     "align_corners=True"),
    (dict(size=(3, 4), mode="area"), 18, "only output sizes that divide"),
])
def test_refusals_are_clear(kwargs, opset, match, tmp_path):
    with pytest.raises(NotImplementedError, match=match):
        export(Interp(**kwargs).eval(), images(1, 3, 8, 10), tmp_path / "m.onnx",
               opset_version=opset)


def test_antialias_onnx_file_matches_torch_directly():
    """The pve.onnx importer's antialias (the specification's kernels with exclude_outside)
    is torch's antialias: a hand-built Resize node against torch."""
    torch = pytest.importorskip("torch", reason="compares with torch")
    pytest.importorskip("onnx", reason="builds an ONNX node")
    from onnx import TensorProto, helper
    x = images(1, 2, 12, 9)
    for mode, tmode, a in (("linear", "bilinear", -0.75), ("cubic", "bicubic", -0.5)):
        node = helper.make_node("Resize", ["x", "", "", "s"], ["y"], mode=mode, antialias=1,
                                exclude_outside=1, cubic_coeff_a=a,
                                coordinate_transformation_mode="half_pixel")
        graph = helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 12, 9])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [helper.make_tensor("s", TensorProto.INT64, [4], [1, 2, 5, 4])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        model.ir_version = 9  # (opset 18's; a newer onnx writes its own, which older onnxruntime refuses)
        (got,) = InferenceSession(model.SerializeToString()).run(None, {"x": x})
        want = torch.nn.functional.interpolate(torch.tensor(x), size=(5, 4), mode=tmode,
                                               antialias=True).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
