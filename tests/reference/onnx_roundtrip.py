"""What the exporter tests share: running an exported file in onnxruntime, checking it
with onnx.checker, the model's own eval output, the tolerance, random inputs.

onnx (the checker) and onnxruntime are test extras; the helpers that need them skip the
test, saying so, when they are missing.

Tolerance: outputs are compared with rtol 1e-4 and atol 1e-4 times the output's largest
magnitude. pve and onnxruntime sum convolutions in different orders (Winograd, im2col,
blocked kernels vs MLAS) and the exporter folds BatchNorm into the convolutions, so results
differ by float32 rounding, which grows with depth and with the size of the values.
"""

from __future__ import annotations

import numpy as np
import pytest

import pyvision_engine as pve

RNG = np.random.default_rng(1234)


def ort():
    return pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) runs the "
                                                     "exported files")


def check(path):
    onnx = pytest.importorskip("onnx", reason="onnx (a test extra) checks the exported files")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    return model


def run(path, feeds):
    session = ort().InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def reference(model, *inputs):
    with pve.no_grad():  # the model's own inference path (fused, blocked)
        out = model(*inputs)
    return [o.numpy() for o in out] if isinstance(out, (tuple, list)) else [out.numpy()]


def assert_close(got, want):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


def images(*shape):
    return RNG.standard_normal(shape).astype(np.float32)
