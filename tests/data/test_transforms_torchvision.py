"""pve.data.transforms against torchvision.transforms (v1) and torch.

A uint8 HWC numpy array stands for what torchvision gets as a PIL image; a float
array or a pve CHW Tensor for what it gets as a tensor. The torchvision tests skip
when torchvision cannot be imported (a CUDA-only wheel, or none); the torch tests
(the tensor path is ``torch.nn.functional.interpolate``) skip without torch.
"""

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine.data import transforms as T


def _torchvision():
    try:
        import torchvision.transforms as tvt
        from PIL import Image
    except Exception as exc:  # ImportError, or a CUDA build whose _C cannot load
        pytest.skip(f"torchvision (with PIL) cannot be imported here: {type(exc).__name__}: {exc}")
    return tvt, Image


def _pil_major():
    import PIL
    return int(PIL.__version__.split(".")[0])


def _pil(Image, img):
    return Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)


def _from_pil(pic, channels):
    a = np.asarray(pic)
    return a[..., None] if channels == 1 and a.ndim == 2 else a


# ------------------------------------------------------------------ Resize

RESIZE_CASES = [((32, 48), (16, 24)), ((32, 48), 8), ((17, 23), (9, 31)), ((17, 23), 20),
                ((10, 10), (40, 50)), ((5, 7), (12, 9)), ((23, 11), (7, 5)), ((40, 6), (3, 29)),
                ((9, 50), 4), ((3, 3), (2, 2))]


@pytest.mark.parametrize("hw, size", RESIZE_CASES)
@pytest.mark.parametrize("channels", [1, 3])
def test_resize_uint8_equals_torchvision_pil_path(hw, size, channels):
    """Bilinear: Pillow's antialiased filter in 8-bit fixed point. Byte-exact with Pillow >= 13
    (its pass order); Pillow < 13 always resizes horizontally first: at most 1 apart."""
    tvt, Image = _torchvision()
    rng = np.random.default_rng(hash((hw, str(size), channels)) % 2 ** 32)
    img = rng.integers(0, 256, hw + (channels,), dtype=np.uint8)
    want = _from_pil(tvt.Resize(size)(_pil(Image, img)), channels)
    got = T.Resize(size)(img)
    assert got.dtype == np.uint8 and got.shape == want.shape
    diff = np.abs(got.astype(int) - want.astype(int)).max()
    assert diff == 0 if _pil_major() >= 13 else diff <= 1
    near = tvt.Resize(size, interpolation=tvt.InterpolationMode.NEAREST)(_pil(Image, img))
    np.testing.assert_array_equal(T.Resize(size, interpolation="nearest")(img),
                                  _from_pil(near, channels))


def test_resize_uint8_random_shapes_match_pillow():
    _, Image = _torchvision()
    rng = np.random.default_rng(0)
    for k in range(60):
        h, w, oh, ow = _shapes(rng, k)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        want = np.asarray(Image.fromarray(img).resize((ow, oh), Image.BILINEAR))
        assert np.array_equal(T.Resize((oh, ow))(img), want), (h, w, oh, ow)
        want = np.asarray(Image.fromarray(img).resize((ow, oh), Image.NEAREST))
        np.testing.assert_array_equal(T.Resize((oh, ow), interpolation="nearest")(img), want)


@pytest.mark.parametrize("hw, size", [hs for hs in RESIZE_CASES if hs[1] != (3, 29)])
@pytest.mark.parametrize("antialias", [True, False])
def test_resize_tensor_equals_torch_interpolate(hw, size, antialias):
    """The tensor path: torch.nn.functional.interpolate(bilinear, antialias) / nearest."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.random((2,) + hw).astype(np.float32)
    got = T.Resize(size, antialias=antialias)(pve.tensor(x))
    oh, ow = got.shape[1:]
    want = torch.nn.functional.interpolate(torch.from_numpy(x)[None], size=(oh, ow), mode="bilinear",
                                           align_corners=False, antialias=antialias)[0].numpy()
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-5)
    # a float HWC array follows the same path
    np.testing.assert_allclose(T.Resize(size, antialias=antialias)(x.transpose(1, 2, 0)),
                               want.transpose(1, 2, 0), rtol=0, atol=1e-5)
    near = T.Resize(size, interpolation="nearest")(pve.tensor(x)).numpy()
    np.testing.assert_array_equal(near, torch.nn.functional.interpolate(
        torch.from_numpy(x)[None], size=(oh, ow), mode="nearest")[0].numpy())


def test_resize_default_is_antialiased_as_torchvision():
    """torchvision's Resize defaults to antialias=True (since 0.17): shrinking averages
    over the footprint. The old pve default sampled 2 pixels per output (aliasing)."""
    img = np.zeros((8, 8, 1), np.uint8)
    img[:, ::2] = 255  # vertical stripes, 1 px wide
    out = T.Resize((8, 2))(img)[..., 0]
    assert out.min() >= 100 and out.max() <= 155, out  # ~ the mean, 127.5
    assert T.Resize(4, antialias=None).antialias is True
    plain = T.Resize((8, 2), antialias=False)(img)[..., 0]
    assert set(np.unique(plain)) <= {0, 255, 128, 127}


def test_resize_same_size_returns_input_and_rejects_other_modes():
    img = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    assert T.Resize((3, 4))(img) is img
    assert T.Resize(3)(img) is img
    with pytest.raises(ValueError, match="box"):
        T.Resize(3, interpolation="box")


def test_resize_torchvision_output_sizes_and_interpolation_enum():
    tvt, Image = _torchvision()
    img = np.zeros((30, 47, 3), np.uint8)
    for size, max_size in [(10, None), ([10], None), (10, 12), ((5, 9), None), (29, 40)]:
        want = tvt.Resize(size, max_size=max_size)(Image.fromarray(img)).size[::-1]
        assert T.Resize(size, max_size=max_size)(img).shape[:2] == want
    assert T.Resize(4, interpolation=tvt.InterpolationMode.NEAREST).interpolation == "nearest"
    assert T.Resize(4, interpolation=tvt.InterpolationMode.BICUBIC).interpolation == "bicubic"


@pytest.mark.parametrize("hw, size", RESIZE_CASES)
def test_resize_bicubic_uint8_equals_torchvision_pil_path(hw, size):
    """Bicubic: Pillow's BICUBIC (a = -0.5, antialiased when shrinking) in 8-bit fixed point,
    byte-exact with Pillow >= 13, as torchvision's Resize(BICUBIC) of a PIL image."""
    tvt, Image = _torchvision()
    rng = np.random.default_rng(hash((hw, str(size))) % 2 ** 32)
    img = rng.integers(0, 256, hw + (3,), dtype=np.uint8)
    want = _from_pil(tvt.Resize(size, interpolation=tvt.InterpolationMode.BICUBIC)(
        _pil(Image, img)), 3)
    got = T.Resize(size, interpolation="bicubic")(img)
    assert got.dtype == np.uint8 and got.shape == want.shape
    if _pil_major() < 13 and got.shape[0] != hw[0] and got.shape[1] != hw[1]:
        pytest.skip("Pillow < 13 runs its two passes in another order, and bicubic's uint8 "
                    "clipping between them differs by more than 1 (one-axis resizes: "
                    "test_resize_bicubic_uint8_random_shapes_match_pillow)")
    np.testing.assert_array_equal(got, want)


def test_resize_bicubic_uint8_random_shapes_match_pillow():
    _, Image = _torchvision()
    rng = np.random.default_rng(1)
    for k in range(60):
        h, w, oh, ow = _shapes(rng, k)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        want = np.asarray(Image.fromarray(img).resize((ow, oh), Image.BICUBIC))
        got = T.Resize((oh, ow), interpolation="bicubic")(img)
        assert np.array_equal(got, want), (h, w, oh, ow)


def _shapes(rng, k):
    """(h, w, oh, ow) of a random resize. Pillow < 13 always runs the horizontal pass
    first, Pillow 13 (and pve) the cheaper one first, and the uint8 rounding and clipping
    between the passes then differ (bicubic by more than 1 where a pass overshoots): with
    an older Pillow one axis changes at a time, where the order cannot matter."""
    h, w = (int(v) for v in rng.integers(1, 50, 2))
    oh, ow = (int(v) for v in rng.integers(1, 70, 2))
    if _pil_major() < 13:
        oh, ow = (h, ow) if k % 2 else (oh, w)
    return h, w, oh, ow


@pytest.mark.parametrize("hw, size", [hs for hs in RESIZE_CASES if hs[1] != (3, 29)])
@pytest.mark.parametrize("antialias", [True, False])
def test_resize_bicubic_tensor_equals_torch_interpolate(hw, size, antialias):
    """The tensor path: torch.nn.functional.interpolate(bicubic, antialias), not clamped."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.random((2,) + hw).astype(np.float32)
    got = T.Resize(size, interpolation="bicubic", antialias=antialias)(pve.tensor(x))
    oh, ow = got.shape[1:]
    want = torch.nn.functional.interpolate(torch.from_numpy(x)[None], size=(oh, ow),
                                           mode="bicubic", align_corners=False,
                                           antialias=antialias)[0].numpy()
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(T.Resize(size, interpolation="bicubic", antialias=antialias)(
        x.transpose(1, 2, 0)), want.transpose(1, 2, 0), rtol=0, atol=1e-5)


# ------------------------------------------------------------- ToTensor, Normalize

def test_to_tensor_and_normalize_equal_torchvision():
    tvt, _ = _torchvision()
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for shape in [(5, 7, 3), (4, 6), (1, 1, 1), (3, 2, 4)]:
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        want = tvt.ToTensor()(img)
        got = T.ToTensor()(img)
        assert got.shape == tuple(want.shape)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    x = rng.random((3, 4, 5)).astype(np.float32)
    for mean, std in [((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), ((0.5,), (0.25,)),
                      ((0.1, 0.2, 0.3), (0.5,)), ((0.4,), (0.1, 0.2, 0.3))]:
        want = tvt.Normalize(mean, std)(torch.from_numpy(x.copy())).numpy()
        np.testing.assert_allclose(T.Normalize(mean, std)(pve.tensor(x)).numpy(), want,
                                   rtol=1e-6, atol=1e-6)
    t = pve.tensor(x)
    assert T.Normalize((0.5,), (0.5,), inplace=True)(t) is t
    np.testing.assert_allclose(t.numpy(), (x - 0.5) / 0.5, rtol=1e-6)


def test_normalize_broadcasts_one_mean_or_std_as_torchvision():
    x = np.full((3, 2, 2), 0.5, np.float32)
    out = T.Normalize((0.1, 0.2, 0.3), (0.5,))(x)
    np.testing.assert_allclose(out[:, 0, 0], [0.8, 0.6, 0.4], rtol=1e-6)
    with pytest.raises(ValueError, match="same length"):
        T.Normalize((0.1, 0.2), (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="channels"):
        T.Normalize((0.1, 0.2), (0.5, 0.5))(x)


# ----------------------------------------------------------------- crops, flip

@pytest.mark.parametrize("hw", [(7, 8), (8, 7), (5, 5), (6, 9), (3, 4), (1, 2)])
@pytest.mark.parametrize("size", [(4, 4), (3, 5), (2, 2), (8, 9), (10, 5), (7, 3), 6, 1])
def test_center_crop_equals_torchvision(hw, size):
    tvt, Image = _torchvision()
    torch = pytest.importorskip("torch")
    img = np.random.default_rng(2).integers(1, 256, hw + (3,), dtype=np.uint8)
    want = np.asarray(tvt.CenterCrop(size)(Image.fromarray(img)))
    np.testing.assert_array_equal(T.CenterCrop(size)(img), want)  # pads with 0 when larger
    x = img.transpose(2, 0, 1).astype(np.float32)
    want_t = tvt.CenterCrop(size)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(T.CenterCrop(size)(pve.tensor(x)).numpy(), want_t)


@pytest.mark.parametrize("padding, padding_mode, fill", [
    (2, "constant", 0), (3, "constant", 9), ((1, 2), "constant", (10, 20, 30)),
    ((1, 2, 3, 4), "constant", 7), (2, "edge", 0), ((3, 1), "reflect", 0),
    ((0, 2, 1, 3), "symmetric", 0), (9, "reflect", 0), (12, "symmetric", 0), (10, "edge", 0),
])
def test_random_crop_padding_equals_torchvision(padding, padding_mode, fill):
    """Crop size = padded size leaves one window, so the result is deterministic: it is
    the padding alone, as torchvision's PIL path pads (padding larger than the image too)."""
    tvt, Image = _torchvision()
    img = np.random.default_rng(3).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    p = (padding,) * 4 if isinstance(padding, int) else (
        padding * 2 if len(padding) == 2 else padding)
    size = (5 + p[1] + p[3], 6 + p[0] + p[2])
    want = np.asarray(tvt.RandomCrop(size, padding=padding, fill=fill,
                                     padding_mode=padding_mode)(Image.fromarray(img)))
    got = T.RandomCrop(size, padding=padding, fill=fill, padding_mode=padding_mode)(img)
    np.testing.assert_array_equal(got, want)


def test_random_crop_pad_if_needed_pads_both_sides_as_torchvision():
    """torchvision pads (size - side) on BOTH sides of a short side, then crops at random:
    every crop is a window of that padded image (with ``fill``)."""
    tvt, Image = _torchvision()
    img = np.random.default_rng(4).integers(0, 256, (4, 3, 3), dtype=np.uint8)
    pve.manual_seed(1)
    for size, padding in [((4, 9), None), ((12, 3), None), ((10, 11), 1)]:
        want = tvt.RandomCrop(size, padding=padding, pad_if_needed=True, fill=5)(Image.fromarray(img))
        p = padding or 0
        dh, dw = max(size[0] - 4 - 2 * p, 0), max(size[1] - 3 - 2 * p, 0)
        padded = np.pad(img, ((p + dh, p + dh), (p + dw, p + dw), (0, 0)), constant_values=5)
        windows = {padded[i:i + size[0], j:j + size[1]].tobytes()
                   for i in range(padded.shape[0] - size[0] + 1)
                   for j in range(padded.shape[1] - size[1] + 1)}
        for _ in range(5):
            got = T.RandomCrop(size, padding=padding, pad_if_needed=True, fill=5)(img)
            assert got.shape == np.asarray(want).shape and got.tobytes() in windows
        assert np.asarray(want).tobytes() in windows
    with pytest.raises(ValueError, match="larger than the input"):
        T.RandomCrop(5)(img)


def test_random_crop_windows_cover_every_offset():
    img = np.arange(4 * 4, dtype=np.uint8).reshape(4, 4, 1)
    pve.manual_seed(0)
    seen = {tuple(T.RandomCrop(3, padding=1)(img)[..., 0].ravel()) for _ in range(300)}
    padded = np.pad(img[..., 0], 1)
    assert seen == {tuple(padded[i:i + 3, j:j + 3].ravel()) for i in range(4) for j in range(4)}


def test_horizontal_flip_and_compose_equal_torchvision():
    tvt, Image = _torchvision()
    img = np.random.default_rng(6).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(img),
                                  np.asarray(tvt.RandomHorizontalFlip(1.0)(Image.fromarray(img))))
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(img), img)
    ours = T.Compose([T.Resize(4), T.CenterCrop(3), T.ToTensor(), T.Normalize((0.5,) * 3, (0.2,) * 3)])
    theirs = tvt.Compose([tvt.Resize(4), tvt.CenterCrop(3), tvt.ToTensor(),
                          tvt.Normalize((0.5,) * 3, (0.2,) * 3)])
    np.testing.assert_allclose(ours(img).numpy(), theirs(Image.fromarray(img)).numpy(),
                               rtol=1e-6, atol=1e-6)
