"""_C.gemm at every ISA level against a float64 numpy reference.

out = act(alpha * op(a) @ op(b) + beta * out + bias), float32, row-major.

The tolerance is a forward error bound of float32 summation, relative to the
magnitude of the terms summed, never to the result (which may cancel):
    |out - ref| <= (2 sqrt(k) + 4) * u * (|alpha| |op(a)| @ |op(b)| + |beta| |out0| + |bias|)
with u = 2^-24. Rounding errors of a k-term sum grow like sqrt(k) for data
that is not adversarial; a single wrong or missing product is far larger.
"""

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvision_engine import _C

pytestmark = pytest.mark.kernels

ISAS = _C.supported_isas()
U = 2.0**-24

# Register tile and cache blocks of each ISA's kernel (see the MR/NR/KC/MC/NC
# constants in csrc/kernels/gemm/gemm_f32_<MR>x<NR>_<isa>.cpp); the sweeps
# below straddle these edges.
TILES = {
    "scalar": dict(MR=4, NR=8, KC=256, MC=128, NC=2048),
    "avx2": dict(MR=6, NR=16, KC=384, MC=384, NC=4096),
    "avx512": dict(MR=14, NR=32, KC=1024, MC=112, NC=2048),
}

TRANS = [(False, False), (True, False), (False, True), (True, True)]


@pytest.fixture
def isa(isa):
    """The shared per-ISA fixture (tests/conftest.py), also restoring the thread count."""
    previous_threads = _C.get_num_threads()
    yield isa
    _C.set_num_threads(previous_threads)


def make_operands(rng, m, n, k, trans_a, trans_b):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    return a, b


def check_gemm(rng, m, n, k, trans_a=False, trans_b=False, alpha=1.0, beta=0.0,
               bias_axis=None, relu=False, nan_out=False):
    """Runs one _C.gemm call and compares it with the float64 reference."""
    a, b = make_operands(rng, m, n, k, trans_a, trans_b)
    if nan_out:
        out0 = np.full((m, n), np.nan, dtype=np.float32)
    else:
        out0 = rng.standard_normal((m, n)).astype(np.float32)
    bias = None
    if bias_axis is not None:
        bias = rng.standard_normal(m if bias_axis == "row" else n).astype(np.float32)

    out = out0.copy()
    kwargs = dict(trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, relu=relu)
    if bias is not None:
        kwargs.update(bias=bias, bias_axis=bias_axis)
    result = _C.gemm(a, b, out=out, **kwargs)
    assert result is out or np.shares_memory(result, out)

    opa = (a.T if trans_a else a).astype(np.float64)
    opb = (b.T if trans_b else b).astype(np.float64)
    ref = alpha * (opa @ opb)
    bound = abs(alpha) * (np.abs(opa) @ np.abs(opb))
    if beta != 0.0:
        ref += beta * out0.astype(np.float64)
        bound += abs(beta) * np.abs(out0.astype(np.float64))
    if bias is not None:
        bias64 = bias.astype(np.float64)
        bias64 = bias64[:, None] if bias_axis == "row" else bias64[None, :]
        ref = ref + bias64
        bound = bound + np.abs(bias64)
    if relu:
        ref = np.maximum(ref, 0.0)
    tol = (2.0 * np.sqrt(k) + 4.0) * U * bound
    assert np.all(np.isfinite(out)), f"non-finite output for m={m} n={n} k={k}"
    err = np.abs(out.astype(np.float64) - ref)
    bad = err > tol
    if bad.any():
        i, j = np.argwhere(bad)[0]
        pytest.fail(
            f"{_C.active_isa()} m={m} n={n} k={k} trans_a={trans_a} trans_b={trans_b} "
            f"alpha={alpha} beta={beta} bias={bias_axis} relu={relu}: {bad.sum()} elements "
            f"off, first at ({i}, {j}): got {out[i, j]!r}, expected {ref[i, j]!r}, "
            f"tolerance {tol[i, j]:.3g}")


def test_every_isa_fills_its_gemm_slot():
    # Each level the CPU can run has its own kernel (no silent fallback).
    assert _C.kernel_isas("gemm_f32") == ISAS
    if "avx512" in ISAS:
        assert _C.kernel_isas("gemm_f32") == ["scalar", "avx2", "avx512"]


def test_tile_edges(isa):
    """Every m, n in 1..2*MR+1 x 1..2*NR+1: full, partial and multiple tiles."""
    t = TILES[isa]
    rng = np.random.default_rng(1)
    case = 0
    for m in range(1, 2 * t["MR"] + 2):
        for n in range(1, 2 * t["NR"] + 2):
            # Cycle the options so every edge sees each transpose and epilogue.
            trans_a, trans_b = TRANS[case % 4]
            bias_axis = (None, "row", "col")[case % 3]
            beta = (0.0, 1.0, -0.5)[case % 3 if case % 5 else 2]
            check_gemm(rng, m, n, 1 + case % 19, trans_a, trans_b, alpha=1.0,
                       beta=beta, bias_axis=bias_axis, relu=case % 2 == 1)
            case += 1


@pytest.mark.parametrize("trans_a, trans_b", TRANS)
def test_k_edges(isa, trans_a, trans_b):
    """K around the packing (8), the k-loop unroll and the KC block edge."""
    t = TILES[isa]
    kc = t["KC"]
    rng = np.random.default_rng(2)
    m, n = 2 * t["MR"] + 1, t["NR"] + 3
    for k in [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, kc - 1, kc, kc + 1, 2 * kc + 3]:
        check_gemm(rng, m, n, k, trans_a, trans_b, alpha=0.75, beta=0.5, bias_axis="col")
        check_gemm(rng, m, n, k, trans_a, trans_b, beta=0.0, nan_out=True, relu=True)


@pytest.mark.parametrize("trans_a, trans_b", TRANS)
def test_blocks_larger_than_cache_blocks(isa, trans_a, trans_b):
    """M > MC, N > NC, K > KC: every block is a strided sub-matrix (ld > width)."""
    t = TILES[isa]
    rng = np.random.default_rng(3)
    m = t["MC"] + t["MR"] + 1
    n = t["NC"] + t["NR"] + 3 if (trans_a, trans_b) == (False, False) else 2 * t["NR"] + 5
    k = t["KC"] + 5
    check_gemm(rng, m, n, k, trans_a, trans_b, alpha=1.25, beta=-1.0, bias_axis="row", relu=True)


@pytest.mark.parametrize("trans_a, trans_b", TRANS)
@pytest.mark.parametrize("bias_axis", [None, "row", "col"])
def test_gemv_shapes(isa, trans_a, trans_b, bias_axis):
    """M = 1 or N = 1 take the GEMV path; strided vectors come from the trans flags."""
    rng = np.random.default_rng(4)
    for k in [1, 2, 3, 7, 16, 17, 33, 64, 100, 1031]:
        for m, n in [(1, 1), (1, 5), (1, 67), (1, 700), (5, 1), (67, 1), (700, 1)]:
            check_gemm(rng, m, n, k, trans_a, trans_b, alpha=1.5, beta=0.0, nan_out=True,
                       bias_axis=bias_axis, relu=bias_axis == "col")
            check_gemm(rng, m, n, k, trans_a, trans_b, alpha=-1.0, beta=2.0,
                       bias_axis=bias_axis)


@pytest.mark.parametrize("alpha", [1.0, -0.5, 2.5, 0.0])
@pytest.mark.parametrize("beta", [0.0, 1.0, -1.5])
def test_alpha_beta(isa, alpha, beta):
    rng = np.random.default_rng(5)
    for m, n, k in [(37, 45, 29), (1, 40, 33), (40, 1, 33), (3, 4, 0)]:
        check_gemm(rng, m, n, k, False, True, alpha=alpha, beta=beta)
        check_gemm(rng, m, n, k, True, False, alpha=alpha, beta=beta, bias_axis="row", relu=True)


def test_beta_zero_never_reads_out(isa):
    """NaN and inf in out must not leak when beta == 0 (also for k == 0)."""
    rng = np.random.default_rng(6)
    for m, n, k in [(33, 70, 20), (1, 50, 9), (50, 1, 9), (9, 9, 0), (3, 5, 1)]:
        a, b = make_operands(rng, m, n, k, False, False)
        for fill in (np.nan, np.inf):
            out = np.full((m, n), fill, dtype=np.float32)
            _C.gemm(a, b, out=out, beta=0.0)
            np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


def test_k_zero_is_scale_bias_act(isa):
    rng = np.random.default_rng(7)
    a = np.zeros((6, 0), np.float32)
    b = np.zeros((0, 9), np.float32)
    out0 = rng.standard_normal((6, 9)).astype(np.float32)
    bias = rng.standard_normal(9).astype(np.float32)
    out = out0.copy()
    _C.gemm(a, b, out=out, beta=-2.0, bias=bias, bias_axis="col", relu=True)
    np.testing.assert_array_equal(out, np.maximum(-2.0 * out0 + bias, 0.0).astype(np.float32))
    res = _C.gemm(a, b)
    np.testing.assert_array_equal(res, np.zeros((6, 9), np.float32))


def test_without_out_allocates(isa):
    rng = np.random.default_rng(8)
    a, b = make_operands(rng, 20, 30, 40, False, False)
    res = _C.gemm(a, b)
    assert res.shape == (20, 30) and res.dtype == np.float32
    np.testing.assert_allclose(res, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-4)


def test_relu_keeps_nan_like_torch(isa):
    a = np.array([[np.nan, 1.0], [1.0, 1.0]], np.float32)
    b = np.ones((2, 40), np.float32)
    out = _C.gemm(a, b, relu=True)
    assert np.isnan(out[0]).all() and (out[1] == 2.0).all()


def test_results_do_not_depend_on_thread_count(isa):
    """Threads split M and N, never K: each element is summed in the same order."""
    rng = np.random.default_rng(9)
    for m, n, k, tb in [(300, 257, 301, False), (16, 1000, 512, True), (1, 1000, 512, True),
                        (700, 1, 300, False)]:
        a, b = make_operands(rng, m, n, k, False, tb)
        _C.set_num_threads(1)
        one = _C.gemm(a, b, trans_b=tb)
        _C.set_num_threads(2)
        two = _C.gemm(a, b, trans_b=tb)
        np.testing.assert_array_equal(one, two)


def test_concurrent_python_threads(isa):
    """Kernels keep no global state: parallel callers (GIL released) all get their answer."""
    _C.set_num_threads(2)
    shapes = [(64, 96, 80), (130, 33, 257), (1, 500, 300), (200, 1, 150), (45, 310, 64)]
    errors = []

    def worker(seed):
        rng = np.random.default_rng(100 + seed)
        try:
            for it in range(12):
                m, n, k = shapes[(seed + it) % len(shapes)]
                a, b = make_operands(rng, m, n, k, False, it % 2 == 1)
                out = _C.gemm(a, b, trans_b=it % 2 == 1)
                ref = a.astype(np.float64) @ (b.T if it % 2 == 1 else b).astype(np.float64)
                tol = (2 * np.sqrt(k) + 4) * U * (np.abs(a) @ np.abs(b.T if it % 2 else b))
                if not np.all(np.abs(out - ref) <= tol):
                    errors.append((seed, it, m, n, k))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_shape_errors():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError):
        _C.gemm(a, np.ones((5, 2), np.float32))
    with pytest.raises(ValueError):
        _C.gemm(a, np.ones((4, 2), np.float32), out=np.zeros((3, 3), np.float32))


@pytest.mark.parametrize("level", ISAS)
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 200), n=st.integers(1, 200), k=st.integers(0, 1100),
       trans_a=st.booleans(), trans_b=st.booleans(),
       alpha=st.sampled_from([1.0, -1.0, 0.5, 3.0]), beta=st.sampled_from([0.0, 1.0, 0.25]),
       bias_axis=st.sampled_from([None, "row", "col"]), relu=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_random_shapes(level, m, n, k, trans_a, trans_b, alpha, beta, bias_axis, relu, seed):
    previous = _C.active_isa()
    _C.set_isa(level)
    try:
        check_gemm(np.random.default_rng(seed), m, n, k, trans_a, trans_b, alpha=alpha,
                   beta=beta, bias_axis=bias_axis, relu=relu, nan_out=beta == 0.0)
    finally:
        _C.set_isa(previous)
