"""Dropout, cat, add, pad / ZeroPad2d, interpolate / Upsample, Flatten, Identity."""

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op

F = pve.nn.functional
rng = np.random.default_rng(5)


def test_dropout_train_eval_and_scaling():
    pve.manual_seed(0)
    x = np.ones((200, 50), np.float32)
    m = pve.nn.Dropout(0.3)
    y = m(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    pve.manual_seed(0)
    np.testing.assert_array_equal(m(x).numpy(), y)  # seeded by manual_seed
    m.eval()
    np.testing.assert_array_equal(m(x).numpy(), x)
    assert (F.dropout(x, 1.0).numpy() == 0).all()
    np.testing.assert_array_equal(F.dropout(x, 0.0).numpy(), x)
    with pytest.raises(ValueError, match="dropout"):
        F.dropout(x, 1.5)
    with pytest.raises(ValueError, match="Dropout"):
        pve.nn.Dropout(-0.1)


def test_dropout_gradient_uses_the_same_mask():
    pve.manual_seed(1)
    x = pve.tensor(rng.standard_normal((10, 10)).astype(np.float32), requires_grad=True)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (y.detach().numpy() != 0) * 2.0)
    z = pve.tensor(np.ones(4, np.float32))
    F.dropout(z, 0.5, inplace=True)
    assert set(np.unique(z.numpy())) <= {0.0, 2.0}


def test_cat_and_add():
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    check_op(lambda s, t: F.cat([s, t], 1), lambda s, t: np.concatenate([s, t], 1), [a, b])
    check_op(lambda s, t: pve.cat((s, t), dim=-2), lambda s, t: np.concatenate([s, t], 1), [a, b])
    with pytest.raises(ValueError, match="cat: sizes must match"):
        F.cat([a.astype(np.float32), b.astype(np.float32)], 0)
    with pytest.raises(ValueError, match="cat: expected a non-empty"):
        F.cat([], 0)
    c = rng.standard_normal((2, 3, 4))
    check_op(lambda s, t: F.add(s, t, alpha=2), lambda s, t: s + 2 * t, [a, c])


def test_pad_and_zeropad2d():
    x = rng.standard_normal((2, 3, 4, 5))
    check_op(lambda t: F.pad(t, (1, 2, 0, 3)), lambda a: np.pad(a, ((0, 0), (0, 0), (0, 3), (1, 2))), [x])
    check_op(lambda t: F.pad(t, (-1, 2)), lambda a: np.pad(a[..., 1:], ((0, 0),) * 3 + ((0, 2),)), [x])
    y = pve.nn.ZeroPad2d((1, 0, 2, 3))(x.astype(np.float32))
    assert y.shape == (2, 3, 9, 6) and float(y.numpy()[0, 0, 0, 0]) == 0
    assert pve.nn.ZeroPad2d(2)(x.astype(np.float32)).shape == (2, 3, 8, 9)
    with pytest.raises(ValueError, match="pad"):
        F.pad(x.astype(np.float32), (1, 2, 3))
    with pytest.raises(ValueError, match="pad"):
        F.pad(x.astype(np.float32), (1, 1), mode="mirror")


# torch's reflect / replicate / circular are numpy.pad's reflect / edge / wrap
@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge"),
                                          ("circular", "wrap")])
@pytest.mark.parametrize("shape,pads", [((2, 3, 4, 5), (1, 2, 3, 0)), ((3, 6), (2, 1)),
                                        ((1, 2, 3, 4, 5), (1, 1, 0, 2, 2, 1))])
def test_pad_index_modes(mode, np_mode, shape, pads):
    x = rng.standard_normal(shape)
    widths = [(0, 0)] * (len(shape) - len(pads) // 2) + [
        (pads[2 * i], pads[2 * i + 1]) for i in reversed(range(len(pads) // 2))]
    check_op(lambda t: F.pad(t, pads, mode=mode), lambda a: np.pad(a, widths, mode=np_mode), [x])


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge"),
                                          ("circular", "wrap")])
def test_pad_index_modes_crop_first(mode, np_mode):
    x = rng.standard_normal((2, 3, 6))
    check_op(lambda t: F.pad(t, (-1, 2), mode=mode),
             lambda a: np.pad(a[..., 1:], ((0, 0), (0, 0), (0, 2)), mode=np_mode), [x])
    check_op(lambda t: F.pad(t, (2, -2), mode=mode),
             lambda a: np.pad(a[..., :-2], ((0, 0), (0, 0), (2, 0)), mode=np_mode), [x])


def test_pad_index_mode_errors():
    x = np.zeros((1, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="less than the corresponding input dimension"):
        F.pad(x, (3, 0, 0, 0), mode="reflect")
    with pytest.raises(ValueError, match="more than once"):
        F.pad(x, (0, 4, 0, 0), mode="circular")
    with pytest.raises(ValueError, match="value"):
        F.pad(x, (1, 1, 1, 1), mode="replicate", value=2.0)
    with pytest.raises(NotImplementedError, match="last 1, 2 or 3 dims"):
        F.pad(np.zeros((3,), np.float32), (1, 1), mode="reflect")
    with pytest.raises(NotImplementedError, match="last 1, 2 or 3 dims"):
        F.pad(x, (1, 1), mode="reflect")  # 4-D input: pad 2 or 3 dims (as torch)


def _bilinear_ref(x, out, align):
    """Direct per-pixel bilinear interpolation in float64 (torch's source-index rule)."""
    n, c, h, w = x.shape
    y = np.empty((n, c) + out)
    def src(i, insz, outsz):
        if align:
            return i * (insz - 1) / (outsz - 1) if outsz > 1 else 0.0
        return max((i + 0.5) * insz / outsz - 0.5, 0.0)
    for i in range(out[0]):
        sy = src(i, h, out[0]); y0 = min(int(np.floor(sy)), h - 1); y1 = min(y0 + 1, h - 1); ly = sy - y0
        for j in range(out[1]):
            sx = src(j, w, out[1]); x0 = min(int(np.floor(sx)), w - 1); x1 = min(x0 + 1, w - 1); lx = sx - x0
            y[:, :, i, j] = ((1 - ly) * ((1 - lx) * x[:, :, y0, x0] + lx * x[:, :, y0, x1])
                             + ly * ((1 - lx) * x[:, :, y1, x0] + lx * x[:, :, y1, x1]))
    return y


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("out", [(7, 9), (3, 2), (1, 5)])
def test_interpolate_bilinear(align, out):
    x = rng.standard_normal((2, 2, 4, 5))
    check_op(lambda t: F.interpolate(t, size=out, mode="bilinear", align_corners=align),
             lambda a: _bilinear_ref(a, out, align), [x])


def test_interpolate_nearest_and_upsample():
    x = rng.standard_normal((1, 2, 3, 4))
    up = np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)
    check_op(lambda t: F.interpolate(t, scale_factor=2), lambda a: np.repeat(np.repeat(a, 2, 2), 2, 3), [x])
    np.testing.assert_allclose(pve.nn.Upsample(scale_factor=2)(x.astype(np.float32)).numpy(), up, rtol=1e-6)
    y = F.interpolate(x.astype(np.float32), size=(5, 3)).numpy()
    rows, cols = np.floor(np.arange(5) * 3 / 5).astype(int), np.floor(np.arange(3) * 4 / 3).astype(int)
    np.testing.assert_array_equal(y, x.astype(np.float32)[:, :, rows][:, :, :, cols])
    with pytest.raises(ValueError, match="interpolate"):
        F.interpolate(x.astype(np.float32), size=(2, 2), mode="trilinear")
    with pytest.raises(ValueError, match="interpolate"):
        F.interpolate(x.astype(np.float32))
    with pytest.raises(ValueError, match="interpolate: input and output sizes should be greater than 0"):
        F.interpolate(x.astype(np.float32), size=(0, 2))


def test_flatten_identity_reshape():
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    assert pve.nn.Flatten()(x).shape == (2, 12)
    assert pve.nn.Identity(54, unused=1)(x).shape == (2, 3, 4)
    assert F.flatten(x, 1).shape == (2, 12)
    assert pve.tensor(x).view(-1, 4).shape == (6, 4)


def test_nearest_interpolate_twice_or_same_size_ignores_the_scale_value():
    # torch's nearest_idx: out == 2 * in repeats each pixel, out == in copies,
    # whatever scale_factor produced that size (2.3 * 3 -> 6, 1.2 * 3 -> 3).
    x = np.arange(3, dtype=np.float32).reshape(1, 1, 1, 3)
    F = pve.nn.functional
    np.testing.assert_array_equal(F.interpolate(x, scale_factor=2.3).numpy().ravel(),
                                  [0, 0, 1, 1, 2, 2] * 2)
    np.testing.assert_array_equal(F.interpolate(x, scale_factor=1.2).numpy().ravel(), [0, 1, 2])
    np.testing.assert_array_equal(F.interpolate(x, scale_factor=1.9).numpy().ravel(),
                                  [0, 0, 1, 1, 2])


def _pad_then_crop(a, widths, np_mode):
    """torch's reflect / replicate with negative amounts: pad the whole input by the
    positive amounts, then crop the negative ones (the reflection uses the full input)."""
    padded = np.pad(a, [(max(b, 0), max(e, 0)) for b, e in widths], mode=np_mode)
    return padded[tuple(slice(max(-b, 0), padded.shape[i] - max(-e, 0))
                        for i, (b, e) in enumerate(widths))]


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge")])
@pytest.mark.parametrize("shape,pads", [((2, 3, 4), (-1, 1, 2, -1)), ((2, 3, 4), (2, -3)),
                                        ((1, 2, 3, 4, 5), (-2, 1, 1, -2, 2, -1))])
def test_pad_negative_amounts_reflect_the_full_input(mode, np_mode, shape, pads):
    x = rng.standard_normal(shape)
    widths = [(0, 0)] * (len(shape) - len(pads) // 2) + [
        (pads[2 * i], pads[2 * i + 1]) for i in reversed(range(len(pads) // 2))]
    check_op(lambda t: F.pad(t, pads, mode=mode), lambda a: _pad_then_crop(a, widths, np_mode),
             [x])


def test_pad_output_size_rules():
    x = np.zeros((2, 3, 4), np.float32)
    assert F.pad(x, (-1, 1, 2, -1), mode="reflect").shape == (2, 4, 4)
    # an empty padded dim is fine while another is not (torch's rule) ...
    assert F.pad(x, (0, 0, -3, 0), mode="reflect").shape == (2, 0, 4)
    # ... but not when every padded dim is empty or one is negative
    with pytest.raises(ValueError, match="too small"):
        F.pad(x, (-2, -2), mode="replicate")
    with pytest.raises(ValueError, match="too small"):
        F.pad(x, (0, 0, -4, 0), mode="reflect")
    with pytest.raises(ValueError, match="nothing of dimension 2"):
        F.pad(np.zeros((3, 3), np.float32)[None], (2, -4), mode="circular")


def test_zeropad2d_two_values_pad_the_last_dim():
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    m = pve.nn.ZeroPad2d((1, 2))
    assert repr(m) == "ZeroPad2d((1, 2))"
    np.testing.assert_array_equal(m(x).numpy(), np.pad(x, ((0, 0),) * 3 + ((1, 2),)))
    assert pve.nn.ZeroPad2d([1, 1, 0, 2, 1, 0])(x).shape == (2, 4, 6, 7)  # as F.pad
    with pytest.raises(ValueError, match="pad"):
        pve.nn.ZeroPad2d((1, 2, 3))(x)
    with pytest.raises(TypeError, match="ZeroPad2d: padding"):
        pve.nn.ZeroPad2d((1.5, 2))
