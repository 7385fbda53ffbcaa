"""Transforms and the Cython batch augment kernel against plain numpy references (and torch)."""

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine.data import DataLoader, crop_flip_normalize_batch
from pyvision_engine.data import transforms as T
from pyvision_engine.data.datasets import Digits


def reference_crop_flip_normalize(images, top, left, flip, out_h, out_w, mean, std, fill):
    """Plain numpy: pad generously with fill, cut each window, mirror, scale, normalize."""
    n, h, w, c = images.shape
    pad = max(out_h, out_w) + int(np.abs(top).max()) + int(np.abs(left).max()) + 1
    padded = np.empty((n, h + 2 * pad, w + 2 * pad, c), np.uint8)
    padded[...] = fill
    padded[:, pad:pad + h, pad:pad + w] = images
    out = np.empty((n, c, out_h, out_w), np.float32)
    for b in range(n):
        win = padded[b, pad + top[b]:pad + top[b] + out_h, pad + left[b]:pad + left[b] + out_w]
        if flip[b]:
            win = win[:, ::-1]
        f = (win.astype(np.float32) / np.float32(255) - mean) / std
        out[b] = f.transpose(2, 0, 1)
    return out


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape, out_hw", [((6, 7, 9, 3), (5, 8)), ((3, 8, 8, 1), (8, 8)),
                                           ((2, 4, 5, 2), (7, 6))])
def test_kernel_matches_numpy(threads, shape, out_hw):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=shape, dtype=np.uint8)
    n, h, w, c = shape
    oh, ow = out_hw
    top = rng.integers(-3, h - oh + 4, n).astype(np.int32)   # includes windows past every edge
    left = rng.integers(-3, w - ow + 4, n).astype(np.int32)
    flip = rng.integers(0, 2, n).astype(np.uint8)
    mean = rng.random(c).astype(np.float32)
    std = (rng.random(c) + 0.2).astype(np.float32)
    fill = rng.integers(0, 256, c).astype(np.uint8)
    got = crop_flip_normalize_batch(images, top, left, flip, oh, ow, mean, std, fill, threads)
    want = reference_crop_flip_normalize(images, top, left, flip, oh, ow, mean, std, fill)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_kernel_argument_errors():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    ok = dict(top=np.zeros(2, np.int32), left=np.zeros(2, np.int32), flip=np.zeros(2, np.uint8),
              out_h=4, out_w=4, mean=np.zeros(3, np.float32), std=np.ones(3, np.float32),
              fill=np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="one per image"):
        crop_flip_normalize_batch(images, **{**ok, "top": np.zeros(3, np.int32)})
    with pytest.raises(ValueError, match="one per channel"):
        crop_flip_normalize_batch(images, **{**ok, "mean": np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match="std must be positive"):
        crop_flip_normalize_batch(images, **{**ok, "std": np.zeros(3, np.float32)})


def test_batch_augment_equals_per_image_transforms():
    """BatchAugment == RandomCrop(padding) -> flip -> ToTensor -> Normalize, given the same draws."""
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(5, 6, 6, 3), dtype=np.uint8)
    aug = T.BatchAugment(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), crop_size=6, padding=2,
                         flip_p=0.5, fill=(7, 8, 9))
    top, left, flip, oh, ow = aug.draw(5, 6, 6, np.random.default_rng(11))
    assert (oh, ow) == (6, 6) and top.min() >= -2 and top.max() <= 2
    pve.manual_seed(0)
    got = crop_flip_normalize_batch(images, top, left, flip, oh, ow, aug.mean, aug.std, aug.fill, 1)
    for b in range(5):
        padded = np.empty((10, 10, 3), np.uint8)
        padded[...] = (7, 8, 9)
        padded[2:8, 2:8] = images[b]
        crop = padded[top[b] + 2:top[b] + 8, left[b] + 2:left[b] + 8]
        if flip[b]:
            crop = crop[:, ::-1]
        want = T.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))(T.ToTensor()(crop))
        np.testing.assert_allclose(got[b], want.numpy(), rtol=1e-6, atol=1e-6)


def test_batch_augment_in_loader_is_seeded():
    def epoch(seed, workers):
        ds = Digits(train=False, transform=T.BatchAugment(Digits.MEAN, Digits.STD, crop_size=8,
                                                          padding=1, flip_p=0.5))
        loader = DataLoader(ds, batch_size=64, shuffle=True, generator=seed, num_workers=workers)
        return np.concatenate([x.numpy() for x, _ in loader])

    a, b, c = epoch(1, 0), epoch(1, 2), epoch(2, 0)
    assert a.shape == (359, 1, 8, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_to_tensor_and_normalize():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    t = T.ToTensor()(img)
    assert t.shape == (3, 2, 3)
    np.testing.assert_allclose(t.numpy(), img.transpose(2, 0, 1) / np.float32(255), rtol=1e-7)
    n = T.Normalize((0.1, 0.2, 0.3), (0.5, 0.5, 0.5))(t)
    want = (img.transpose(2, 0, 1) / np.float32(255) - np.array([0.1, 0.2, 0.3], np.float32)[:, None, None]) / 0.5
    np.testing.assert_allclose(n.numpy(), want, rtol=1e-6)
    assert T.ToTensor()(np.zeros((4, 5), np.uint8)).shape == (1, 4, 5)
    with pytest.raises(TypeError, match="float"):
        T.Normalize((0,), (1,))(np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="division by zero"):
        T.Normalize((0,), (0,))


def test_random_crop_padding_flip_and_center_crop():
    img = np.arange(5 * 5, dtype=np.uint8).reshape(5, 5, 1)
    pve.manual_seed(0)
    crops = [T.RandomCrop(5, padding=1, fill=200)(img) for _ in range(30)]
    padded = np.pad(img[..., 0], 1, constant_values=200)
    windows = {padded[i:i + 5, j:j + 5].tobytes() for i in range(3) for j in range(3)}
    assert all(c.shape == (5, 5, 1) and c[..., 0].tobytes() in windows for c in crops)
    assert len({c.tobytes() for c in crops}) > 1
    small = T.RandomCrop((7, 6), pad_if_needed=True)(img)
    assert small.shape == (7, 6, 1)
    with pytest.raises(ValueError, match="larger than the input"):
        T.RandomCrop(6)(img)
    assert np.array_equal(T.RandomHorizontalFlip(p=1.0)(img), img[:, ::-1])
    assert np.array_equal(T.RandomHorizontalFlip(p=0.0)(img), img)
    np.testing.assert_array_equal(T.CenterCrop(3)(img)[..., 0], img[1:4, 1:4, 0])
    t = pve.tensor(np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6))  # CHW tensor
    np.testing.assert_array_equal(T.CenterCrop((2, 2))(t).numpy(), t.numpy()[:, 1:3, 2:4])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(t).numpy(), t.numpy()[:, :, ::-1])
    composed = T.Compose([T.CenterCrop(4), T.ToTensor(), T.Normalize((0.5,), (0.5,))])
    assert composed(img).shape == (1, 4, 4)


def test_resize_bilinear_against_hand_values_and_shapes():
    img = np.array([[0, 100], [200, 50]], dtype=np.uint8)[..., None]
    up = T.Resize((4, 4))(img)[..., 0].astype(np.float32)
    # half-pixel centres: output pixel 1 samples source coordinate 0.25
    assert up[0, 0] == 0 and up[3, 3] == 50
    assert abs(up[0, 1] - 25) <= 0.5 and abs(up[1, 0] - 50) <= 0.5
    wide = np.zeros((10, 20, 3), np.uint8)
    assert T.Resize(5)(wide).shape == (5, 10, 3)
    with pytest.raises(ValueError, match="lanczos"):
        T.Resize(5, interpolation="lanczos")



def torchvision_resized_size(h, w, size, max_size=None):
    """torchvision.transforms.functional._compute_resized_output_size, written out."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return new_h, new_w


def test_resize_one_element_sequence_is_the_shorter_edge_as_torchvision():
    torch = pytest.importorskip("torch")
    img = np.random.default_rng(1).random((10, 23, 2)).astype(np.float32)
    for size, max_size in (([5], None), ((7,), None), ([5], 8), ([12], 20), ([4], None)):
        for im in (img, img.transpose(1, 0, 2)):
            want_hw = torchvision_resized_size(im.shape[0], im.shape[1], size[0], max_size)
            got = T.Resize(size, max_size=max_size, antialias=False)(im)
            assert got.shape[:2] == want_hw, (size, max_size, im.shape)
            want = torch.nn.functional.interpolate(torch.from_numpy(im.transpose(2, 0, 1))[None],
                                                   size=want_hw, mode="bilinear", align_corners=False)
            np.testing.assert_allclose(got, want[0].numpy().transpose(1, 2, 0), rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(got, T.Resize(size[0], max_size=max_size, antialias=False)(im))
    with pytest.raises(ValueError, match="max_size"):
        T.Resize([5], max_size=5)   # torchvision: max_size must exceed the shorter edge
    with pytest.raises(ValueError, match="max_size"):
        T.Resize((5, 6), max_size=10)   # torchvision: max_size only with a shorter-edge size

def test_resize_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    img = rng.random((9, 13, 2)).astype(np.float32)
    for size in [(5, 7), (20, 17), (9, 4)]:
        got = T.Resize(size, antialias=False)(img)
        want = torch.nn.functional.interpolate(torch.from_numpy(img.transpose(2, 0, 1))[None], size=size,
                                               mode="bilinear", align_corners=False, antialias=False)
        np.testing.assert_allclose(got, want[0].numpy().transpose(1, 2, 0), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------- Resize(interpolation="bicubic")
def _cubic_aa_matrix(n_in, n_out, a=-0.5):
    """float64 (n_out, n_in) weights of the antialiased cubic filter (Pillow's BICUBIC and
    torch's antialias bicubic): Keys' kernel with parameter a, stretched by the downscale
    factor, centred on (i + 0.5) * scale, normalised to sum 1."""
    def keys(t):
        t = abs(t)
        if t < 1:
            return ((a + 2) * t - (a + 3)) * t * t + 1
        if t < 2:
            return (((t - 5) * t + 8) * t - 4) * a
        return 0.0
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo = max(int(centre - 2 * stretch + 0.5), 0)
        hi = min(int(centre + 2 * stretch + 0.5), n_in)
        for j in range(lo, hi):
            m[i, j] = keys((j - centre + 0.5) / stretch)
        m[i] /= m[i].sum()
    return m


@pytest.mark.parametrize("hw, out", [((17, 23), (9, 31)), ((40, 12), (7, 5)), ((6, 6), (13, 11)),
                                     ((1, 9), (4, 3))])
def test_resize_bicubic_float_against_the_filter_in_float64(hw, out):
    x = np.random.default_rng(7).random(hw + (2,))
    want = np.einsum("ij,jkc,lk->ilc", _cubic_aa_matrix(hw[0], out[0]), x,
                     _cubic_aa_matrix(hw[1], out[1]))
    got = T.Resize(out, interpolation="bicubic")(x.astype(np.float32))
    assert got.dtype == np.float32 and got.shape == out + (2,)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_resize_bicubic_uint8_matches_pillow():
    Image = pytest.importorskip("PIL.Image", reason="Pillow (a test extra) is the reference")
    import PIL
    # Pillow < 13 always runs the horizontal pass first, Pillow 13 (and pve) the cheaper
    # pass first; the uint8 rounding and clipping between the passes then differ (by more
    # than 1 where an upsampling pass overshoots). With an older Pillow only one axis
    # changes, where the order cannot matter.
    both_axes = int(PIL.__version__.split(".")[0]) >= 13
    rng = np.random.default_rng(11)
    for k in range(80):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        oh, ow = (int(v) for v in rng.integers(1, 70, 2))
        if not both_axes:
            oh, ow = (h, ow) if k % 2 else (oh, w)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        want = np.asarray(Image.fromarray(img).resize((ow, oh), Image.BICUBIC))
        got = T.Resize((oh, ow), interpolation="bicubic")(img)
        assert np.array_equal(got, want), (h, w, oh, ow)


def _plain_bicubic(v, n_out, a=-0.75):
    """float64 plain bicubic of a 1-D signal: half-pixel source x = (i + 0.5) * in / out - 0.5,
    taps floor(x) - 1 .. floor(x) + 2 clamped into the signal, Keys' weights with a."""
    def keys(t):
        t = abs(t)
        return ((a + 2) * t - (a + 3)) * t * t + 1 if t < 1 else (((t - 5) * t + 8) * t - 4) * a
    out = []
    for i in range(n_out):
        x = (i + 0.5) * len(v) / n_out - 0.5
        x0 = int(np.floor(x))
        out.append(sum(keys(x - j) * v[min(max(j, 0), len(v) - 1)] for j in range(x0 - 1, x0 + 3)))
    return np.array(out)


def test_resize_bicubic_without_antialias_is_plain_bicubic():
    """antialias=False: interpolate's plain bicubic (A = -0.75, clamped taps); uint8 rounded
    and its overshoot clipped."""
    img = np.zeros((8, 8, 1), np.uint8)
    img[:, 4:] = 255
    out = T.Resize((8, 16), interpolation="bicubic", antialias=False)(img)[..., 0]
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255  # (clipped overshoot)
    x = np.random.default_rng(3).random((2, 5, 1))
    got = T.Resize((2, 9), interpolation="bicubic", antialias=False)(x.astype(np.float32))[0, :, 0]
    np.testing.assert_allclose(got, _plain_bicubic(x[0, :, 0], 9), rtol=0, atol=1e-6)
    assert "bicubic" in repr(T.Resize(3, interpolation="bicubic"))
