"""Replays the torch-generated golden cases (tests/golden/layers_golden.npz, made by
tests/golden/make_layers_golden.py) through pve: no torch needed."""

import os

import numpy as np
import pytest

import pyvision_engine as pve
import layer_cases

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden",
                      "layers_golden.npz")
pytestmark = pytest.mark.kernels


def _tensor(a, requires_grad):
    arr = np.array(a)
    return pve.tensor(arr, requires_grad=requires_grad and arr.dtype.kind == "f")


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("name,build", layer_cases.cases(), ids=[n for n, _ in layer_cases.cases()])
def test_matches_torch_golden(isa, golden, name, build):
    result = build(pve, pve.nn.functional, _tensor)
    for key, value in result.items():
        expected = golden[f"{name}/{key}"]
        assert value.shape == expected.shape, f"{name}/{key}"
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=2e-5 * scale, err_msg=f"{name}/{key}")


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_running_stats_match_torch_golden(isa, golden, momentum):
    rm, rv, n = layer_cases.batchnorm_running_stats(
        pve, lambda m: pve.nn.BatchNorm2d(3, momentum=m), _tensor, momentum=momentum)
    np.testing.assert_allclose(rm, golden[f"bn_running_{momentum}/mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, golden[f"bn_running_{momentum}/var"], rtol=1e-5, atol=1e-6)
    assert n == int(golden[f"bn_running_{momentum}/count"])
