"""Pooling: numpy references and finite differences at every ISA, torch's tie,
NaN and ceil_mode rules, invalid arguments."""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyvision_engine as pve
from layers_helpers import check_op
from reference import pooling_reference as ref

F = pve.nn.functional
pytestmark = pytest.mark.kernels
rng = np.random.default_rng(1)

# (kernel, stride, padding, dilation, ceil_mode) on odd, non-square inputs.
MAX_CASES = [
    ((3, 3), (2, 2), (1, 1), (1, 1), False),
    ((3, 3), (2, 2), (1, 1), (1, 1), True),
    ((2, 2), (2, 2), (0, 0), (1, 1), True),
    ((3, 2), (1, 2), (1, 0), (1, 1), False),
    ((3, 3), (3, 3), (1, 1), (2, 2), True),
    ((2, 3), (3, 1), (1, 1), (2, 1), False),
]


@pytest.mark.parametrize("k,s,p,d,ceil", MAX_CASES)
def test_max_pool2d_matches_reference(isa, k, s, p, d, ceil):
    x = rng.standard_normal((2, 3, 9, 40))  # 40 wide: vector blocks + border columns
    y, idx = F.max_pool2d(pve.tensor(x.astype(np.float32)), k, s, p, d, ceil, return_indices=True)
    ry, ridx = ref.max_pool2d(x.astype(np.float32), k, s, p, d, ceil)
    np.testing.assert_array_equal(y.numpy(), ry.astype(np.float32))
    np.testing.assert_array_equal(idx.numpy(), ridx)


def test_max_pool2d_gradient_finite_differences(isa):
    # Distinct values keep the max away from ties, where the gradient is undefined.
    x = rng.permutation(2 * 2 * 7 * 9).reshape(2, 2, 7, 9) / 10.0
    check_op(lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True),
             lambda a: ref.max_pool2d(a, (3, 3), (2, 2), (1, 1), (1, 1), True)[0], [x], eps=1e-3)


def test_max_pool2d_ties_pick_first_in_scan_order(isa):
    x = np.zeros((1, 1, 6, 40), np.float32)  # all ties
    _, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    _, ridx = ref.max_pool2d(x, (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(idx.numpy(), ridx)
    # The window at (0, 0) starts in the padding: its first real position is 0.
    assert idx.numpy()[0, 0, 0, 0] == 0
    # Gradients of tied windows go to that one position only.
    xt = pve.tensor(x, requires_grad=True)
    F.max_pool2d(xt, 2, 2).sum().backward()
    assert xt.grad.numpy()[0, 0, 0, 0] == 1 and xt.grad.numpy()[0, 0, 1, 1] == 0


def test_max_pool2d_nan_propagates(isa):
    x = rng.standard_normal((1, 2, 8, 40)).astype(np.float32)
    x[0, 0, 3, 17] = np.nan
    x[0, 1, 0, 0] = np.nan
    y = F.max_pool2d(x, 3, 2, 1).numpy()
    ry, _ = ref.max_pool2d(x, (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ry))
    assert np.isnan(y).sum() >= 5


def test_ceil_mode_drops_window_starting_in_padding():
    # 5 wide, k=2, s=2, p=1, ceil: a 4th window would start at 5 = in + pad: dropped.
    y = F.max_pool2d(np.zeros((1, 1, 5, 5), np.float32), 2, 2, 1, ceil_mode=True)
    assert y.shape == (1, 1, 3, 3)
    y = F.avg_pool2d(np.zeros((1, 1, 6, 6), np.float32), 3, 2, 1, ceil_mode=True)
    assert y.shape == (1, 1, 4, 4)


AVG_CASES = [
    ((3, 3), (2, 2), (1, 1), False, True, None),
    ((3, 3), (2, 2), (1, 1), True, False, None),
    ((2, 2), (2, 2), (1, 1), True, True, None),
    ((3, 2), (1, 2), (1, 1), False, False, 5),
    ((2, 3), (2, 3), (0, 1), True, True, None),
]


@pytest.mark.parametrize("k,s,p,ceil,include,div", AVG_CASES)
def test_avg_pool2d_matches_reference_and_finite_differences(isa, k, s, p, ceil, include, div):
    x = rng.standard_normal((2, 2, 7, 37))
    check_op(lambda t: F.avg_pool2d(t, k, s, p, ceil, include, div),
             lambda a: ref.avg_pool2d(a, k, s, p, ceil, include, div), [x])


@pytest.mark.parametrize("out", [(1, 1), (3, 5), (4, 4), (7, 9), (2, 1)])
def test_adaptive_avg_pool2d(isa, out):
    x = rng.standard_normal((2, 3, 7, 9))
    check_op(lambda t: F.adaptive_avg_pool2d(t, out), lambda a: ref.adaptive_avg_pool2d(a, out), [x])


@pytest.mark.parametrize("grad_mode", ["no input needs grad", "no_grad"])
def test_inference_path_matches_reference(isa, grad_mode):
    # max_pool2d and adaptive_avg_pool2d call their kernels directly when no
    # graph is recorded; the result must be the same as through autograd.
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    t = pve.tensor(x, requires_grad=grad_mode == "no_grad")
    with pve.no_grad() if grad_mode == "no_grad" else contextlib.nullcontext():
        y_mp = F.max_pool2d(t, 3, 2, 1)
        y_gap = F.adaptive_avg_pool2d(t, (1, 1))
        y_gap_int = F.adaptive_avg_pool2d(t, 1)
        y_ap = F.adaptive_avg_pool2d(t, (4, 5))
    for y in (y_mp, y_gap, y_gap_int, y_ap):
        assert not y.requires_grad and y.grad_fn is None
    np.testing.assert_array_equal(y_mp.numpy(), ref.max_pool2d(x, (3, 3), (2, 2), (1, 1))[0])
    for y in (y_gap, y_gap_int):
        assert y.shape == (2, 3, 1, 1)
        np.testing.assert_allclose(y.numpy(), ref.adaptive_avg_pool2d(x.astype(np.float64), (1, 1)),
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y_ap.numpy(), ref.adaptive_avg_pool2d(x.astype(np.float64), (4, 5)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("out", [(1, 1), (3, 5), (5, 4)])
def test_adaptive_max_pool2d(isa, out):
    x = rng.permutation(2 * 3 * 7 * 9).reshape(2, 3, 7, 9) / 7.0
    y, idx = F.adaptive_max_pool2d(x.astype(np.float32), out, return_indices=True)
    ry, ridx = ref.adaptive_max_pool2d(x.astype(np.float32), out)
    np.testing.assert_array_equal(y.numpy(), ry.astype(np.float32))
    np.testing.assert_array_equal(idx.numpy(), ridx)
    check_op(lambda t: F.adaptive_max_pool2d(t, out),
             lambda a: ref.adaptive_max_pool2d(a, out)[0], [x], eps=1e-3)


def test_global_average_pool_large_plane(isa):
    x = rng.standard_normal((3, 5, 33, 31)).astype(np.float32)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, 1).numpy()[..., 0, 0],
                               x.astype(np.float64).mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("planes", [1, 7, 9, 33, 23_000])
def test_global_average_pool_interleaved_streams(isa, threads, planes):
    # The kernel reads each thread's planes as interleaved sub-ranges (of
    # which some are empty with few planes); 23,000 7x7 planes (4.5 MB) are
    # over the size that uses every thread.
    x = rng.standard_normal((1, planes, 7, 7)).astype(np.float32)
    before = pve.get_num_threads()
    pve.set_num_threads(threads)
    try:
        y = F.adaptive_avg_pool2d(x, 1).numpy()[0, :, 0, 0]
    finally:
        pve.set_num_threads(before)
    np.testing.assert_allclose(y, x[0].astype(np.float64).mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 40), k=st.integers(1, 4), s=st.integers(1, 3),
       ceil=st.booleans(), data=st.data())
def test_max_pool2d_random_shapes(h, w, k, s, ceil, data):
    p = data.draw(st.integers(0, k // 2))
    kh = min(k, h + 2 * p)
    kw = min(k, w + 2 * p)
    if ref.out_size(h, kh, s, p, 1, ceil) < 1 or ref.out_size(w, kw, s, p, 1, ceil) < 1:
        return
    p = min(p, kh // 2, kw // 2)
    x = np.random.default_rng(h * 100 + w).standard_normal((1, 2, h, w)).astype(np.float32)
    y, idx = F.max_pool2d(x, (kh, kw), s, p, 1, ceil, return_indices=True)
    ry, ridx = ref.max_pool2d(x, (kh, kw), (s, s), (p, p), (1, 1), ceil)
    np.testing.assert_array_equal(y.numpy(), ry.astype(np.float32))
    np.testing.assert_array_equal(idx.numpy(), ridx)
    ya = F.avg_pool2d(x, (kh, kw), s, p, ceil)
    np.testing.assert_allclose(ya.numpy(), ref.avg_pool2d(x, (kh, kw), (s, s), (p, p), ceil),
                               rtol=1e-5, atol=1e-6)


def test_3d_input_and_modules():
    x = rng.standard_normal((3, 8, 8)).astype(np.float32)
    assert pve.nn.MaxPool2d(2)(x).shape == (3, 4, 4)
    assert pve.nn.AvgPool2d(2, 1)(x).shape == (3, 7, 7)
    assert pve.nn.AdaptiveAvgPool2d((None, 2))(x).shape == (3, 8, 2)
    y, i = pve.nn.AdaptiveMaxPool2d(3, return_indices=True)(x)
    assert y.shape == i.shape == (3, 3, 3) and i.dtype == np.int64
    y, i = pve.nn.MaxPool2d(2, return_indices=True)(x[None])
    assert i.shape == (1, 3, 4, 4)


@pytest.mark.parametrize("call,match", [
    (lambda x: F.max_pool2d(x, 3, 1, 2), "max_pool2d: padding should be at most half"),
    (lambda x: F.avg_pool2d(x, 2, 2, 2), "avg_pool2d: padding should be at most half"),
    (lambda x: F.max_pool2d(x, 0), "max_pool2d: kernel_size must be greater than zero"),
    (lambda x: F.max_pool2d(x, 2, 0), "max_pool2d: stride must be greater than zero"),
    (lambda x: F.max_pool2d(x, 9), "max_pool2d: output size is too small"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), "avg_pool2d: divisor_override"),
    (lambda x: F.adaptive_avg_pool2d(x, -1), "adaptive_avg_pool2d: elements of output_size must "
                                              "be greater than or equal to 0"),
    (lambda x: F.adaptive_max_pool2d(x, (2, -1)), "adaptive_max_pool2d: elements of output_size"),
    (lambda x: F.max_pool2d(x[0, 0], 2), "max_pool2d: expected a 3-D"),
    (lambda x: pve.nn.MaxPool2d(2, padding=3)(x), "max_pool2d: padding"),
    (lambda x: F.avg_pool2d(x[:, :0], 2), "avg_pool2d: expected non-zero channel"),
    (lambda x: F.adaptive_avg_pool2d(x[:, :, :0], 1), "adaptive_avg_pool2d: expected non-zero"),
])
def test_invalid_arguments_raise_value_error(call, match):
    x = np.zeros((1, 2, 6, 6), np.float32)
    with pytest.raises(ValueError, match=match):
        call(x)


@pytest.mark.parametrize("pool,out", [
    (lambda x: F.max_pool2d(x, 3, 2, 1), (0, 3, 4, 5)),
    (lambda x: F.max_pool2d(x, 2, return_indices=True)[0], (0, 3, 3, 4)),
    (lambda x: F.avg_pool2d(x, 2, ceil_mode=True), (0, 3, 4, 5)),
    (lambda x: F.adaptive_avg_pool2d(x, (1, 1)), (0, 3, 1, 1)),
    (lambda x: F.adaptive_avg_pool2d(x, 3), (0, 3, 3, 3)),
    (lambda x: F.adaptive_max_pool2d(x, (2, 4)), (0, 3, 2, 4)),
])
def test_an_empty_batch_gives_empty_results_as_in_torch(pool, out):
    x = pve.tensor(np.zeros((0, 3, 7, 9), np.float32), requires_grad=True)
    y = pool(x)
    assert y.shape == out
    y.sum().backward()
    assert x.grad.shape == x.shape


# The stride-2 values path (3 wide pad 1, 2 wide pad 0): widths around the
# 8 / 16-lane block edges, odd widths, ceil_mode, vertical stride and padding.
@pytest.mark.parametrize("w", [1, 2, 5, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 112, 113])
@pytest.mark.parametrize("k,p,sh,ph,ceil", [(3, 1, 2, 1, False), (3, 1, 2, 1, True),
                                            (2, 0, 2, 0, False), (2, 0, 2, 0, True),
                                            (3, 1, 1, 0, False)])
def test_max_pool2d_stride2_values_path(isa, w, k, p, sh, ph, ceil):
    h = 7
    x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
    if ref.out_size(w, k, 2, p, 1, ceil) < 1 or ref.out_size(h, k, sh, ph, 1, ceil) < 1:
        with pytest.raises(ValueError, match="max_pool2d"):  # as torch: no empty output
            F.max_pool2d(x, k, (sh, 2), (ph, p), ceil_mode=ceil)
        return
    y = F.max_pool2d(x, k, (sh, 2), (ph, p), ceil_mode=ceil).numpy()
    ry, _ = ref.max_pool2d(x, (k, k), (sh, 2), (ph, p), (1, 1), ceil)
    np.testing.assert_array_equal(y, ry.astype(np.float32))


@pytest.mark.parametrize("col", [0, 1, 15, 16, 30, 31, 32, 33, 63, 64, 111])
def test_max_pool2d_stride2_nan_at_block_edges(isa, col):
    # A NaN in the last odd column of a block reaches the next block's first
    # output through the carried column; each must come out NaN like torch.
    x = rng.standard_normal((1, 2, 6, 112)).astype(np.float32)
    x[0, 0, 2, col] = np.nan
    x[0, 1, 5, 111 - col] = np.nan
    for k, p in ((3, 1), (2, 0)):
        y = F.max_pool2d(x, k, 2, p).numpy()
        ry, _ = ref.max_pool2d(x, (k, k), (2, 2), (p, p))
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ry))
        ok = ~np.isnan(ry)
        np.testing.assert_array_equal(y[ok], ry[ok].astype(np.float32))


@pytest.mark.parametrize("planes", [1, 7, 15, 16, 17, 33])
@pytest.mark.parametrize("hw", [(1, 1), (1, 7), (4, 4), (1, 17), (7, 7), (10, 10)])
def test_global_average_pool_plane_counts_and_sizes(isa, planes, hw):
    # Planes are summed W at a time (8 or 16): partial groups and plane sizes
    # below, at and above one vector.
    x = rng.standard_normal((1, planes) + hw).astype(np.float32)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, 1).numpy()[0, :, 0, 0],
                               x.astype(np.float64).mean(axis=(2, 3))[0], rtol=1e-5, atol=1e-6)


def test_pooling_same_result_on_1_and_2_threads(isa):
    # Large enough that both kernels split work across threads.
    x = rng.standard_normal((4, 64, 57, 58)).astype(np.float32)
    g = rng.standard_normal((64, 512, 7, 7)).astype(np.float32)
    before = pve.get_num_threads()
    out = {}
    try:
        for t in (1, 2):
            pve.set_num_threads(t)
            out[t] = (F.max_pool2d(x, 3, 2, 1).numpy(), F.adaptive_avg_pool2d(g, 1).numpy())
    finally:
        pve.set_num_threads(before)
    for a, b in zip(out[1], out[2]):
        np.testing.assert_array_equal(a, b)


# The stride-2 path with indices (training): 3 wide pad 1 and 2 wide pad 0 at
# stride 2 across, any vertical geometry. Values, indices and the gradient
# scattered by index against the float64 reference, at widths around the
# 8 / 16-lane block edges, odd widths, ceil_mode, vertical padding/dilation.
def _scatter_reference(gy, ridx, in_shape):
    # Sequential float32 adds in output scan order, as torch's backward adds.
    n, c, h, w = in_shape
    gx = np.zeros((n * c, h * w), np.float32)
    g2, i2 = gy.reshape(n * c, -1).astype(np.float32), ridx.reshape(n * c, -1)
    for p in range(n * c):
        np.add.at(gx[p], i2[p], g2[p])
    return gx.reshape(in_shape)


STRIDE2_INDEX_CASES = [  # (kernel, padding, stride_h, pad_h, dilation_h, ceil)
    (3, 1, 2, 1, 1, False), (3, 1, 2, 1, 1, True), (2, 0, 2, 0, 1, False),
    (2, 0, 2, 0, 1, True), (3, 1, 1, 0, 1, False), (3, 1, 1, 1, 2, False)]


@pytest.mark.parametrize("w", [1, 2, 3, 5, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 112, 113])
@pytest.mark.parametrize("k,p,sh,ph,dh,ceil", STRIDE2_INDEX_CASES)
def test_max_pool2d_stride2_indices_path(isa, w, k, p, sh, ph, dh, ceil):
    h = 7
    x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
    if ref.out_size(w, k, 2, p, 1, ceil) < 1 or ref.out_size(h, k, sh, ph, dh, ceil) < 1:
        return  # no output: covered by the values-path test
    args = ((k, k), (sh, 2), (ph, p), (dh, 1), ceil)
    xt = pve.tensor(x, requires_grad=True)
    y, idx = F.max_pool2d(xt, *args, return_indices=True)
    ry, ridx = ref.max_pool2d(x, *args)
    np.testing.assert_array_equal(y.detach().numpy(), ry.astype(np.float32))
    np.testing.assert_array_equal(idx.numpy(), ridx)
    gy = rng.standard_normal(ry.shape).astype(np.float32)
    y.backward(pve.from_numpy(gy))
    np.testing.assert_array_equal(xt.grad.numpy(), _scatter_reference(gy, ridx, x.shape))


@pytest.mark.parametrize("w", [5, 16, 28, 33, 64, 113])
@pytest.mark.parametrize("k,p", [(3, 1), (2, 0)])
def test_max_pool2d_stride2_indices_ties_and_infinities(isa, w, k, p):
    # Few distinct values: most windows tie, across rows and across the
    # shared column; the first maximum in scan order must win.
    x = rng.integers(0, 3, (2, 2, 9, w)).astype(np.float32)
    x[0, 1] = -np.inf  # a plane of -inf: every index is the window's first real tap
    x[1, 0, 4] = np.inf
    y, idx = F.max_pool2d(x, k, 2, p, return_indices=True)
    ry, ridx = ref.max_pool2d(x, (k, k), (2, 2), (p, p))
    np.testing.assert_array_equal(y.numpy(), ry.astype(np.float32))
    np.testing.assert_array_equal(idx.numpy(), ridx)


@pytest.mark.parametrize("col", [0, 1, 15, 16, 30, 31, 32, 33, 63, 64, 111])
def test_max_pool2d_stride2_indices_nan_at_block_edges(isa, col):
    # A NaN's index is its own position (the last NaN in scan order when a
    # window holds several), also through the column carried between blocks.
    x = rng.standard_normal((1, 3, 6, 112)).astype(np.float32)
    x[0, 0, 2, col] = np.nan
    x[0, 1, 5, 111 - col] = np.nan
    x[0, 2, 2, col] = np.nan
    x[0, 2, 3, min(col + 1, 111)] = np.nan
    for k, p in ((3, 1), (2, 0)):
        y, idx = F.max_pool2d(x, k, 2, p, return_indices=True)
        ry, ridx = ref.max_pool2d(x, (k, k), (2, 2), (p, p))
        np.testing.assert_array_equal(np.isnan(y.numpy()), np.isnan(ry))
        ok = ~np.isnan(ry)
        np.testing.assert_array_equal(y.numpy()[ok], ry[ok].astype(np.float32))
        np.testing.assert_array_equal(idx.numpy(), ridx)


def test_max_pool2d_training_path_same_on_1_and_2_threads(isa):
    x = rng.standard_normal((4, 64, 57, 58)).astype(np.float32)
    gy = rng.standard_normal((4, 64, 29, 29)).astype(np.float32)
    before = pve.get_num_threads()
    out = {}
    try:
        for t in (1, 2):
            pve.set_num_threads(t)
            xt = pve.tensor(x, requires_grad=True)
            y, idx = F.max_pool2d(xt, 3, 2, 1, return_indices=True)
            y.backward(pve.from_numpy(gy))
            out[t] = (y.detach().numpy(), idx.numpy(), xt.grad.numpy())
    finally:
        pve.set_num_threads(before)
    for a, b in zip(out[1], out[2]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape,k,s,p,ceil", [((3, 6, 28, 28), 2, 2, 0, False),
                                             ((3, 16, 10, 10), 2, 2, 0, False),
                                             ((2, 8, 37, 45), 3, 2, 1, False),
                                             ((2, 8, 37, 45), 3, 2, 1, True)])
def test_max_pool2d_training_path_torch_parity(isa, shape, k, s, p, ceil):
    torch = pytest.importorskip("torch")
    x = rng.integers(-4, 5, shape).astype(np.float32)  # many ties
    x.reshape(-1)[::97] = np.nan
    xt = pve.tensor(x, requires_grad=True)
    y, idx = F.max_pool2d(xt, k, s, p, ceil_mode=ceil, return_indices=True)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(pve.from_numpy(gy))
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = torch.nn.functional.max_pool2d(tx, k, s, p, ceil_mode=ceil, return_indices=True)
    ty.backward(torch.from_numpy(gy))
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    np.testing.assert_array_equal(xt.grad.numpy(), tx.grad.numpy())


# Square stride-2 windows (3x3 pad 1, 2x2 pad 0) read each input row once and
# carry the row maxima of the shared row: heights around the carried row,
# ceil_mode (a last window holding only the carried row), NaN in any row.
@pytest.mark.parametrize("h", [1, 2, 3, 4, 5, 6, 8, 9])
@pytest.mark.parametrize("k,p,ceil", [(3, 1, False), (3, 1, True), (2, 0, False), (2, 0, True)])
def test_max_pool2d_stride2_rows_path(isa, h, k, p, ceil):
    w = 37
    if ref.out_size(h, k, 2, p, 1, ceil) < 1:
        return
    x = rng.standard_normal((2, 2, h, w)).astype(np.float32)
    y = F.max_pool2d(x, k, 2, p, ceil_mode=ceil).numpy()
    ry, _ = ref.max_pool2d(x, (k, k), (2, 2), (p, p), (1, 1), ceil)
    np.testing.assert_array_equal(y, ry.astype(np.float32))
    for row in range(h):
        xn = x.copy()
        xn[1, 0, row, (5 * row) % w] = np.nan
        y = F.max_pool2d(xn, k, 2, p, ceil_mode=ceil).numpy()
        ry, _ = ref.max_pool2d(xn, (k, k), (2, 2), (p, p), (1, 1), ceil)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ry))
        ok = ~np.isnan(ry)
        np.testing.assert_array_equal(y[ok], ry[ok].astype(np.float32))


# Above 4 MiB of output the stride2_rows paths write values (and indices that
# start on a cache line) with streaming stores through a per-plane scratch, and
# split the planes statically between threads. Each plane of a large batch must
# equal the same plane pooled alone (which takes the plain-store path), also
# for planes redone because they hold a NaN, and the gradient scattered from
# the large run's indices must equal the reference scatter.
# Width 128 gives 64-wide rows of indices, whole cache lines: those are streamed too.
@pytest.mark.parametrize("k,p,ceil", [(3, 1, False), (3, 1, True), (2, 0, False)])
@pytest.mark.parametrize("w", [128, 130])
def test_max_pool2d_streamed_output_matches_plane_by_plane(isa, k, p, ceil, w):
    x = rng.integers(-3, 4, (5, 64, 131, w)).astype(np.float32)  # ties
    x[0, 5, 17, 33] = np.nan
    x[4, 63, 130, w - 1] = np.nan
    x[1, 7] = -np.inf
    x[1, 9, ::2] = np.nan
    before = pve.get_num_threads()
    try:
        for t in (1, 2):
            pve.set_num_threads(t)
            yv = F.max_pool2d(x, k, 2, p, ceil_mode=ceil).numpy()
            assert yv.nbytes > 4 << 20
            xt = pve.tensor(x, requires_grad=True)
            y, idx = F.max_pool2d(xt, k, 2, p, ceil_mode=ceil, return_indices=True)
            gy = rng.standard_normal(y.shape).astype(np.float32)
            y.backward(pve.from_numpy(gy))
            y = y.detach().numpy()
            np.testing.assert_array_equal(yv.view(np.uint32), y.view(np.uint32))
            for n, c in [(0, 0), (0, 5), (1, 7), (1, 9), (2, 40), (4, 63)]:
                ys, idxs = F.max_pool2d(x[n:n + 1, c:c + 1], k, 2, p, ceil_mode=ceil,
                                        return_indices=True)
                np.testing.assert_array_equal(y[n, c].view(np.uint32), ys.numpy()[0, 0].view(np.uint32))
                np.testing.assert_array_equal(idx.numpy()[n, c], idxs.numpy()[0, 0])
            np.testing.assert_array_equal(xt.grad.numpy(), _scatter_reference(gy, idx.numpy(), x.shape))
    finally:
        pve.set_num_threads(before)


def test_avg_pool_negative_divisor_override_negates(isa):
    # torch accepts any non-zero divisor_override; -d gives exactly -(sum / d).
    x = np.random.default_rng(5).standard_normal((2, 3, 6, 5)).astype(np.float32)
    F = pve.nn.functional
    t = pve.tensor(x, requires_grad=True)
    y = F.avg_pool2d(t, 3, 2, 1, divisor_override=-4)
    np.testing.assert_array_equal(y.detach().numpy(),
                                  -F.avg_pool2d(x, 3, 2, 1, divisor_override=4).numpy())
    y.sum().backward()
    u = pve.tensor(x, requires_grad=True)
    F.avg_pool2d(u, 3, 2, 1, divisor_override=4).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), -u.grad.numpy())
    with pytest.raises(ValueError, match="divisor_override"):
        F.avg_pool2d(x, 3, divisor_override=0)


@pytest.mark.parametrize("pool,out", [
    (lambda x: F.adaptive_avg_pool2d(x, 0), (2, 3, 0, 0)),
    (lambda x: F.adaptive_avg_pool2d(x, (0, 2)), (2, 3, 0, 2)),
    (lambda x: F.adaptive_avg_pool2d(x, (None, 0)), (2, 3, 7, 0)),
    (lambda x: F.adaptive_max_pool2d(x, 0), (2, 3, 0, 0)),
    (lambda x: pve.nn.AdaptiveMaxPool2d((2, 0))(x), (2, 3, 2, 0)),
    (lambda x: F.adaptive_avg_pool2d(x[0], 0), (3, 0, 0)),
])
def test_adaptive_pool_to_a_zero_size_is_empty_as_in_torch(pool, out):
    # torch returns the empty result; its backward then refuses the empty gradient
    x = pve.tensor(np.ones((2, 3, 7, 9), np.float32), requires_grad=True)
    y = pool(x)
    assert y.shape == out and y.dtype == np.float32
    with pytest.raises(ValueError, match="expected grad_output to have non-zero size"):
        y.sum().backward()
    with pve.no_grad():
        assert pool(x).shape == out
    y, idx = F.adaptive_max_pool2d(x, (0, 4), return_indices=True)
    assert y.shape == idx.shape == (2, 3, 0, 4) and idx.dtype == np.int64
