"""The Cython batch kernels against numpy and against the Python transforms they replace."""

import numpy as np
import pytest

from pyvision_engine.data import crop_flip_normalize_batch, uint8_hwc_to_normalized_chw
from pyvision_engine.data import transforms as T


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


# ------------------------------------------------ edge cases against the Python transforms


def python_pipeline(image, top, left, flip, oh, ow, padding, fill, mean, std):
    """RandomCrop(padding, fill) with the window the kernel was given, then
    RandomHorizontalFlip(1.0 or 0.0), ToTensor, Normalize: the Python transforms."""
    crop = T.RandomCrop((image.shape[0] + 2 * padding, image.shape[1] + 2 * padding),
                        padding=padding, fill=tuple(int(f) for f in fill))(image)  # pads only
    window = crop[top + padding:top + padding + oh, left + padding:left + padding + ow]
    window = T.RandomHorizontalFlip(1.0 if flip else 0.0)(window)
    return T.Normalize(mean, std)(T.ToTensor()(window)).numpy()


@pytest.mark.parametrize("n, h, w, c, crop, padding", [
    (1, 3, 3, 3, 5, 4),      # padding larger than the image, batch of 1
    (1, 1, 1, 1, 1, 0),      # a single pixel
    (3, 5, 7, 3, (9, 11), 6),  # odd sizes, padding > both sides
    (2, 7, 5, 2, (3, 8), 2),  # crop taller-narrow / wider than the image
    (4, 9, 9, 1, None, 3),   # no crop size: the whole padded image
])
@pytest.mark.parametrize("threads", [1, 3])
def test_batch_augment_edge_cases_equal_python_transforms(n, h, w, c, crop, padding, threads):
    rng = np.random.default_rng(n * 100 + h)
    images = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    mean = tuple(float(v) for v in rng.random(c))
    std = tuple(float(v) for v in rng.random(c) + 0.2)
    fill = tuple(int(v) for v in rng.integers(0, 256, c))
    aug = T.BatchAugment(mean, std, crop_size=crop, padding=padding, flip_p=0.5, fill=fill,
                         num_threads=threads)
    top, left, flip, oh, ow = aug.draw(n, h, w, np.random.default_rng(7))
    assert top.min() >= -padding and (top + oh).max() <= h + padding
    got = crop_flip_normalize_batch(images, top, left, flip, oh, ow, aug.mean, aug.std,
                                    aug.fill, threads)
    assert got.shape == (n, c, oh, ow)
    for b in range(n):
        want = python_pipeline(images[b], int(top[b]), int(left[b]), flip[b], oh, ow, padding, fill,
                               mean, std)
        np.testing.assert_allclose(got[b], want, rtol=1e-6, atol=1e-6)


def test_batch_augment_call_shapes_and_errors():
    images = np.zeros((1, 3, 3, 3), np.uint8)
    out = T.BatchAugment((0.5,), (0.5,), crop_size=7, padding=2, fill=255)(images)
    assert out.shape == (1, 3, 7, 7)
    assert np.allclose(out.numpy()[0, :, 0, 0], 1.0)  # a corner of the padding: (1 - .5) / .5
    single = T.BatchAugment((0.0,), (1.0,))(np.full((2, 2), 51, np.uint8)[None])  # (N, H, W)
    assert single.shape == (1, 1, 2, 2) and np.allclose(single.numpy(), 0.2)
    with pytest.raises(ValueError, match="larger than the padded image"):
        T.BatchAugment((0.5,), (0.5,), crop_size=8, padding=2)(images)
    with pytest.raises(TypeError, match="uint8"):
        T.BatchAugment((0.5,), (0.5,))(images.astype(np.float32))
    with pytest.raises(ValueError, match="padding"):
        T.BatchAugment((0.5,), (0.5,), padding=-1)
