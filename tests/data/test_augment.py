"""The Cython batch conversion kernel against numpy (ToTensor + Normalize)."""

import numpy as np
import pytest

from pyvision_engine.data import uint8_hwc_to_normalized_chw


@pytest.mark.parametrize("threads", [1, 2])
def test_matches_numpy(threads):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 7, 9, 3), dtype=np.uint8)
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    out = uint8_hwc_to_normalized_chw(images, mean, std, threads)
    expected = (images.astype(np.float32) / np.float32(255) - mean) / std
    expected = expected.transpose(0, 3, 1, 2)
    assert out.shape == (5, 3, 7, 9) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_errors():
    images = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="one per channel"):
        uint8_hwc_to_normalized_chw(images, np.zeros(1, np.float32), np.ones(1, np.float32))
    with pytest.raises(ValueError, match="std must be positive"):
        uint8_hwc_to_normalized_chw(images, np.zeros(3, np.float32), np.zeros(3, np.float32))
