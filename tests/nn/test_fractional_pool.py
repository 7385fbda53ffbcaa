"""F.fractional_max_pool2d / nn.FractionalMaxPool2d against a plain-loop reference of
torch's interval formula, float64 finite differences, and torch (same _random_samples:
equal outputs and indices, equal gradients)."""

import numpy as np
import pytest

import pyvision_engine as pve
import pyvision_engine.nn.functional as F
from pyvision_engine.nn._f_fractional import interval_starts
from reference.gradcheck import assert_grad_close, numerical_grads

rng = np.random.default_rng(21)


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="torch parity tests need torch")


# ---------------------------------------------------------------- plain-loop reference
def ref_starts(u, in_size, out_size, k):
    """torch's generate_intervals, one element at a time in float32."""
    u = np.float32(u)
    seq = []
    if out_size > 1:
        alpha = np.float32(in_size - k) / np.float32(out_size - 1)
        for i in range(out_size - 1):
            seq.append(int(np.float32(np.float32(i) + u) * alpha) - int(np.float32(u * alpha)))
    if out_size > 0:
        seq.append(in_size - k)
    return seq


def ref_pool(x, kernel, out, samples):
    """Plain loops over (N, C, H, W) float32: the scan of torch's CPU kernel (value >
    best or NaN replaces the best, starting from -inf at the window's first element)."""
    n, c, h, w = x.shape
    kh, kw = kernel
    values = np.zeros((n, c) + tuple(out), np.float32)
    index = np.zeros((n, c) + tuple(out), np.int64)
    for b in range(n):
        for ch in range(c):
            rows = ref_starts(samples[b, ch, 1], h, out[0], kh)
            cols = ref_starts(samples[b, ch, 0], w, out[1], kw)
            for i, r0 in enumerate(rows):
                for j, c0 in enumerate(cols):
                    best, where = -np.inf, r0 * w + c0
                    for r in range(r0, r0 + kh):
                        for cc in range(c0, c0 + kw):
                            v = x[b, ch, r, cc]
                            if v > best or np.isnan(v):
                                best, where = v, r * w + cc
                    values[b, ch, i, j], index[b, ch, i, j] = best, where
    return values, index


CONFIGS = [  # (shape, kernel, output_size)
    ((2, 3, 10, 9), (3, 3), (5, 4)),
    ((1, 2, 7, 11), (2, 3), (4, 6)),
    ((2, 1, 16, 16), (2, 2), (8, 8)),
    ((1, 2, 5, 5), (1, 1), (5, 5)),
    ((1, 1, 9, 6), (3, 2), (1, 1)),
    ((3, 2, 12, 8), (4, 1), (9, 3)),
]


@pytest.mark.parametrize("shape,kernel,out", CONFIGS)
def test_matches_loop_reference(shape, kernel, out):
    x = rng.standard_normal(shape).astype(np.float32)
    samples = rng.random((shape[0], shape[1], 2)).astype(np.float32)
    y, idx = F.fractional_max_pool2d(pve.tensor(x), kernel, output_size=out,
                                     return_indices=True, _random_samples=pve.tensor(samples))
    want_y, want_idx = ref_pool(x, kernel, out, samples)
    np.testing.assert_array_equal(y.numpy(), want_y)
    np.testing.assert_array_equal(idx.numpy(), want_idx)
    assert y.dtype == np.float32 and idx.dtype == np.int64


def test_interval_starts_loop_reference_and_bounds():
    for in_size, out_size, k in [(10, 5, 3), (9, 4, 2), (7, 7, 1), (30, 2, 5), (6, 1, 6)]:
        u = rng.random(20).astype(np.float32)
        starts = interval_starts(u, in_size, out_size, k)
        for ui, row in zip(u, starts):
            assert list(row) == ref_starts(ui, in_size, out_size, k)
        # windows cover the input's ends and never leave it
        assert starts.min() >= 0 and starts.max() == in_size - k
        assert np.all(np.diff(starts, axis=1) >= 0)


def test_ties_nan_and_infinities_follow_torchs_scan():
    x = np.array([[[[1, 3, 3, 0],
                    [3, 2, 1, 3],
                    [np.nan, 0, np.nan, 5],
                    [-np.inf, -np.inf, -np.inf, -np.inf]]]], np.float32)
    samples = np.full((1, 1, 2), 0.3, np.float32)
    for kernel, out in [((2, 2), (3, 3)), ((1, 2), (4, 3)), ((2, 1), (3, 4))]:
        y, idx = F.fractional_max_pool2d(x, kernel, output_size=out, return_indices=True,
                                         _random_samples=samples)
        want_y, want_idx = ref_pool(x, kernel, out, samples)
        np.testing.assert_array_equal(y.numpy(), want_y)
        np.testing.assert_array_equal(idx.numpy(), want_idx)
    # an all -inf window keeps its first element's index
    y, idx = F.fractional_max_pool2d(x, (1, 2), output_size=(4, 3), return_indices=True,
                                     _random_samples=samples)
    assert y.numpy()[0, 0, 3, 0] == -np.inf and idx.numpy()[0, 0, 3, 0] == 12


def test_unbatched_and_output_ratio():
    x = rng.standard_normal((3, 10, 8)).astype(np.float32)
    samples = rng.random((1, 3, 2)).astype(np.float32)
    y, idx = F.fractional_max_pool2d(x, 2, output_ratio=(0.5, 0.75), return_indices=True,
                                     _random_samples=samples)
    assert y.shape == (3, 5, 6)
    want_y, want_idx = ref_pool(x[None], (2, 2), (5, 6), samples)
    np.testing.assert_array_equal(y.numpy(), want_y[0])
    np.testing.assert_array_equal(idx.numpy(), want_idx[0])
    # int(H * ratio) truncates, as torch's Python
    assert F.fractional_max_pool2d(x, 2, output_ratio=(0.33, 0.33),
                                   _random_samples=samples).shape == (3, 3, 2)


def test_extra_sample_rows_are_ignored():
    x = rng.standard_normal((2, 2, 9, 9)).astype(np.float32)
    samples = rng.random((4, 2, 2)).astype(np.float32)
    a = F.fractional_max_pool2d(x, 2, output_size=4, _random_samples=samples)
    b = F.fractional_max_pool2d(x, 2, output_size=4, _random_samples=samples[:2].copy())
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_default_samples_come_from_the_engine_generator():
    x = rng.standard_normal((2, 3, 12, 12)).astype(np.float32)
    pve.manual_seed(5)
    a = F.fractional_max_pool2d(x, 2, output_size=5)
    b = F.fractional_max_pool2d(x, 2, output_size=5)
    pve.manual_seed(5)
    c = F.fractional_max_pool2d(x, 2, output_size=5)
    np.testing.assert_array_equal(a.numpy(), c.numpy())
    assert not np.array_equal(a.numpy(), b.numpy())
    # the draw is (N, C, 2) U[0, 1) samples, used in that layout
    pve.manual_seed(5)
    drawn = pve.random.default_generator().random((2, 3, 2), dtype=np.float32)
    want, _ = ref_pool(x, (2, 2), (5, 5), drawn)
    np.testing.assert_array_equal(a.numpy(), want)


# ---------------------------------------------------------------- gradients
def test_gradient_scatters_through_indices():
    x = rng.standard_normal((2, 2, 9, 7)).astype(np.float32)
    samples = rng.random((2, 2, 2)).astype(np.float32)
    t = pve.tensor(x, requires_grad=True)
    y, idx = F.fractional_max_pool2d(t, 3, output_size=(5, 4), return_indices=True,
                                     _random_samples=samples)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(pve.tensor(g))
    want = np.zeros((2, 2, 63), np.float64)
    flat_idx, flat_g = idx.numpy().reshape(2, 2, -1), g.reshape(2, 2, -1)
    for b in range(2):
        for c in range(2):
            for k in range(flat_idx.shape[-1]):  # overlapping windows add up
                want[b, c, flat_idx[b, c, k]] += flat_g[b, c, k]
    np.testing.assert_allclose(t.grad.numpy(), want.reshape(x.shape), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape,kernel,out", CONFIGS[:4])
def test_gradient_against_finite_differences(shape, kernel, out):
    # distinct, well separated values: the argmax is stable under the FD step
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64) * 0.1
    samples = rng.random((shape[0], shape[1], 2)).astype(np.float32)
    _, idx = ref_pool(x.astype(np.float32), kernel, out, samples)
    planes = idx.reshape(shape[0] * shape[1], -1)

    def f(x64):
        flat = x64.reshape(shape[0] * shape[1], -1)
        return np.take_along_axis(flat, planes, axis=1)

    t = pve.tensor(x.astype(np.float32), requires_grad=True)
    y = F.fractional_max_pool2d(t, kernel, output_size=out, _random_samples=samples)
    up = rng.standard_normal(y.shape)
    y.backward(pve.tensor(up.astype(np.float32)))
    (want,) = numerical_grads(f, [x], up.reshape(planes.shape))
    assert_grad_close(t.grad.numpy(), want, name="fractional_max_pool2d")


# ---------------------------------------------------------------- module
def test_module_buffer_state_dict_and_forward():
    samples = rng.random((2, 3, 2)).astype(np.float32)
    m = pve.nn.FractionalMaxPool2d(3, output_size=(5, 4), return_indices=True,
                                   _random_samples=samples)
    assert list(m.state_dict()) == ["_random_samples"]
    assert m.kernel_size == (3, 3) and m.output_size == (5, 4) and m.output_ratio is None
    x = rng.standard_normal((2, 3, 10, 9)).astype(np.float32)
    y, idx = m(x)
    want_y, want_idx = ref_pool(x, (3, 3), (5, 4), samples)
    np.testing.assert_array_equal(y.numpy(), want_y)
    np.testing.assert_array_equal(idx.numpy(), want_idx)
    plain = pve.nn.FractionalMaxPool2d(2, output_ratio=0.5)
    assert plain.output_ratio == (0.5, 0.5) and list(plain.state_dict()) == []
    assert plain(x).shape == (2, 3, 5, 4)
    assert repr(plain) == "FractionalMaxPool2d()"


@pytest.mark.parametrize("kwargs,message", [
    (dict(), "requires specifying either an output size, or a pooling ratio"),
    (dict(output_size=3, output_ratio=0.5), "only one of output_size and output_ratio"),
    (dict(output_ratio=1.0), "output_ratio must be between 0 and 1"),
    (dict(output_ratio=(0.5, 0)), "output_ratio must be between 0 and 1"),
])
def test_module_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pve.nn.FractionalMaxPool2d(2, **kwargs)


# ---------------------------------------------------------------- errors
X = np.zeros((2, 3, 10, 9), np.float32)
S = np.zeros((2, 3, 2), np.float32)

ERRORS = [  # (call, pve exception, torch exception)
    (lambda f, x, s: f(x, 3, _random_samples=s), ValueError, ValueError),
    (lambda f, x, s: f(x, 3, output_size=(9, 4), _random_samples=s), ValueError, RuntimeError),
    (lambda f, x, s: f(x, 3, output_size=(5, 8), _random_samples=s), ValueError, RuntimeError),
    (lambda f, x, s: f(x, 3, output_size=(5, 4, 3), _random_samples=s), ValueError,
     RuntimeError),
    (lambda f, x, s: f(x, (3, 2, 1), output_size=(5, 4), _random_samples=s), ValueError,
     RuntimeError),
    (lambda f, x, s: f(x, 3, output_ratio=0.5, _random_samples=s), TypeError, TypeError),
    (lambda f, x, s: f(x, 3, output_ratio=(0.5, 0.5, 0.5), _random_samples=s), ValueError,
     ValueError),
    (lambda f, x, s: f(x, 3, output_size=(5.0, 4), _random_samples=s), TypeError, TypeError),
    (lambda f, x, s: f(x, 3, output_size=(-1, 4), _random_samples=s), ValueError, RuntimeError),
    (lambda f, x, s: f(x, 3, output_size=(5, 4), _random_samples=s[:1]), ValueError,
     RuntimeError),
    (lambda f, x, s: f(x, 3, output_size=(5, 4), _random_samples=s[:, :2]), ValueError,
     RuntimeError),
    (lambda f, x, s: f(x, 3, output_size=(5, 4), _random_samples=s[..., :1]), ValueError,
     RuntimeError),
    (lambda f, x, s: f(x, 3, output_size=(5, 4), _random_samples=s[0]), ValueError,
     RuntimeError),
    (lambda f, x, s: f(x[:, :0], 3, output_size=(5, 4), _random_samples=s[:, :0]), ValueError,
     RuntimeError),
    (lambda f, x, s: f(x[:, :, :0], 3, output_size=(5, 4), _random_samples=s), ValueError,
     RuntimeError),
    (lambda f, x, s: f(x[None], 3, output_size=(5, 4), _random_samples=s), ValueError,
     RuntimeError),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_as_torch(case, torch):
    call, pve_error, torch_error = ERRORS[case]
    with pytest.raises(pve_error, match="fractional_max_pool2d|output_ratio|Expect"):
        call(F.fractional_max_pool2d, pve.tensor(X), pve.tensor(S))
    with pytest.raises(torch_error):
        call(torch.nn.functional.fractional_max_pool2d, torch.tensor(X), torch.tensor(S))


def test_refuses_bad_kernels_and_dtypes():
    # (a kernel of 0 makes torch read past the input's last row)
    with pytest.raises(ValueError, match="kernel_size must be positive"):
        F.fractional_max_pool2d(X, 0, output_size=(5, 4), _random_samples=S)
    with pytest.raises(TypeError, match="float32"):
        F.fractional_max_pool2d(X, 2, output_size=(5, 4), _random_samples=S.astype(np.int64))
    with pytest.raises(TypeError):
        F.fractional_max_pool2d(X.astype(np.int64), 2, output_size=(5, 4), _random_samples=S)


def test_empty_batch_and_empty_output():
    assert F.fractional_max_pool2d(np.zeros((0, 3, 10, 9), np.float32), 3,
                                   output_size=(5, 4)).shape == (0, 3, 5, 4)
    y, idx = F.fractional_max_pool2d(X, 3, output_size=(0, 4), return_indices=True,
                                     _random_samples=S)
    assert y.shape == (2, 3, 0, 4) and idx.shape == (2, 3, 0, 4)


# ---------------------------------------------------------------- torch parity
TORCH_CASES = CONFIGS + [
    ((4, 5, 32, 32), (3, 3), (14, 20)),
    ((1, 3, 50, 32), (3, 3), (13, 12)),
    ((2, 2, 6, 40), (2, 5), (5, 9)),
]


@pytest.mark.parametrize("shape,kernel,out", TORCH_CASES)
@pytest.mark.parametrize("integers", [False, True], ids=["real", "ties"])
def test_torch_parity_values_indices_gradients(shape, kernel, out, integers, torch):
    x = rng.standard_normal(shape).astype(np.float32)
    if integers:  # many ties inside windows
        x = np.round(x)
    samples = rng.random((shape[0], shape[1], 2)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty, ti = torch.nn.functional.fractional_max_pool2d(
        tx, kernel, output_size=out, return_indices=True, _random_samples=torch.tensor(samples))
    px = pve.tensor(x, requires_grad=True)
    py, pi = F.fractional_max_pool2d(px, kernel, output_size=out, return_indices=True,
                                     _random_samples=pve.tensor(samples))
    np.testing.assert_array_equal(py.detach().numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(pi.numpy(), ti.numpy())
    g = rng.standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.tensor(g))
    py.backward(pve.tensor(g))
    np.testing.assert_array_equal(px.grad.numpy(), tx.grad.numpy())


def test_torch_parity_at_float32_rounding_boundaries(torch):
    # samples u with (i + u) * alpha within a float32 rounding of an integer: the
    # float32 formula and a float64 one give different windows there
    cases = []
    for in_size, out_size, k in [(5, 3, 1), (5, 4, 1), (13, 7, 2), (29, 11, 3), (17, 5, 2)]:
        alpha = (in_size - k) / (out_size - 1)
        for i in range(out_size - 1):
            for m in range(int(i * alpha), int((i + 1) * alpha) + 2):
                u = np.float32(m / alpha - i)
                for v in (np.nextafter(u, np.float32(-1)), u, np.nextafter(u, np.float32(2))):
                    if 0 <= v < 1:
                        cases.append((in_size, out_size, k, np.float32(v)))
    differ = 0
    for in_size, out_size, k, u in cases:
        x = rng.standard_normal((1, 1, in_size, in_size)).astype(np.float32)
        s = np.array([[[u, u]]], np.float32)
        _, ti = torch.nn.functional.fractional_max_pool2d(
            torch.tensor(x), k, output_size=out_size, return_indices=True,
            _random_samples=torch.tensor(s))
        _, pi = F.fractional_max_pool2d(x, k, output_size=out_size, return_indices=True,
                                        _random_samples=s)
        np.testing.assert_array_equal(pi.numpy(), ti.numpy())
        alpha64 = (in_size - k) / (out_size - 1)
        float64_starts = [int((i + float(u)) * alpha64) - int(float(u) * alpha64)
                          for i in range(out_size - 1)]
        differ += float64_starts != list(interval_starts(s[0, 0, :1], in_size, out_size, k)[0,
                                                                                            :-1])
    assert differ > 0  # the cases do reach the float32 / float64 disagreement


def test_torch_parity_module_with_ratio(torch):
    samples = rng.random((3, 4, 2)).astype(np.float32)
    x = rng.standard_normal((3, 4, 21, 17)).astype(np.float32)
    tm = torch.nn.FractionalMaxPool2d((3, 2), output_ratio=(0.6, 0.45), return_indices=True,
                                      _random_samples=torch.tensor(samples))
    pm = pve.nn.FractionalMaxPool2d((3, 2), output_ratio=(0.6, 0.45), return_indices=True,
                                    _random_samples=samples)
    (ty, ti), (py, pi) = tm(torch.tensor(x)), pm(x)
    np.testing.assert_array_equal(py.numpy(), ty.numpy())
    np.testing.assert_array_equal(pi.numpy(), ti.numpy())
    assert list(pm.state_dict()) == list(tm.state_dict())


def _signature(fn):
    import inspect
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_api_as_torchs_and_loaded_lazily(torch):
    assert _signature(F.fractional_max_pool2d_with_indices) == \
        _signature(torch.nn.functional.fractional_max_pool2d_with_indices)
    assert _signature(F.fractional_max_pool2d) == \
        _signature(torch.nn.functional.fractional_max_pool2d_with_indices)
    assert _signature(pve.nn.FractionalMaxPool2d.__init__) == \
        _signature(torch.nn.FractionalMaxPool2d.__init__)
    for name in ("fractional_max_pool2d", "fractional_max_pool2d_with_indices"):
        assert name in F.__all__ and name in dir(F)
    assert "FractionalMaxPool2d" in pve.nn.__all__
    from subprocess_env import run_python
    done = run_python(["-c", "import sys, pyvision_engine; "
                       "assert 'pyvision_engine.nn._f_fractional' not in sys.modules; "
                       "assert 'pyvision_engine.nn.fractional_pool' not in sys.modules"])
    assert done.returncode == 0, done.stderr
