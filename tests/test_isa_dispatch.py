"""SIMD level selection: cpuid-based default, PVE_ISA, errors, and a complete scalar path."""

import json
import textwrap

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import _C
from subprocess_env import run_python as _run

ISA_ORDER = ["scalar", "avx2", "avx512"]


def run_python(code: str, **env_overrides):
    return _run(["-c", textwrap.dedent(code)], **env_overrides)


def test_info_fields():
    info = pve.info()
    assert info["version"] == pve.__version__
    assert info["supported_isas"][0] == "scalar"
    assert info["supported_isas"] == ISA_ORDER[:len(info["supported_isas"])]
    assert info["isa"] in info["supported_isas"]
    assert info["num_threads"] >= 1
    assert info["openmp"] in ("libgomp", "libomp")


def test_default_level_is_the_best_supported():
    proc = run_python("import pyvision_engine as pve, json; print(json.dumps(pve.info()))")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["isa"] == info["supported_isas"][-1]


def test_supported_levels_follow_cpu_features():
    f = _C.cpu_features()
    avx2 = f["avx2"] and f["fma"] and f["f16c"] and f["os_saves_ymm"]
    avx512 = avx2 and all(f[k] for k in ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")) \
        and f["os_saves_zmm"]
    expected = ["scalar"] + (["avx2"] if avx2 else []) + (["avx512"] if avx512 else [])
    assert list(_C.supported_isas()) == expected


@pytest.mark.parametrize("level", list(_C.supported_isas()))
def test_pve_isa_forces_a_level(level):
    proc = run_python("import pyvision_engine as pve; print(pve.info()['isa'])", PVE_ISA=level)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == level


def test_unknown_pve_isa_is_a_clear_error():
    proc = run_python("import pyvision_engine", PVE_ISA="avx9000")
    assert proc.returncode != 0
    assert "PVE_ISA='avx9000' is not a known ISA level" in proc.stderr


def test_unsupported_pve_isa_is_a_clear_error():
    supported = list(_C.supported_isas())
    missing = [lvl for lvl in ISA_ORDER if lvl not in supported]
    if not missing:
        pytest.skip("this CPU supports every level, so no unsupported level can be requested")
    proc = run_python("import pyvision_engine", PVE_ISA=missing[0])
    assert proc.returncode != 0 and "not supported by this CPU" in proc.stderr


def test_set_isa_rejects_unknown_levels():
    with pytest.raises(ValueError, match="unknown ISA level"):
        _C.set_isa("sse9")


def test_every_kernel_has_a_scalar_reference():
    for name in _C.kernel_names():
        assert "scalar" in _C.kernel_isas(name), name


def test_scalar_path_is_complete_in_a_fresh_process():
    # Under PVE_ISA=scalar no AVX code may be needed: a full forward/backward
    # with every op the engine has must work and be right.
    code = """
        import numpy as np, pyvision_engine as pve
        assert pve.info()['isa'] == 'scalar'
        rng = np.random.default_rng(0)
        a = rng.standard_normal((37, 53)).astype(np.float32)
        b = rng.standard_normal((53, 29)).astype(np.float32)
        np.testing.assert_allclose(pve.tensor(a) @ pve.tensor(b), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
        model = pve.nn.Sequential(pve.nn.Linear(53, 16), pve.nn.Linear(16, 3))
        x = pve.tensor(a, requires_grad=True)
        model(x).sum().backward()
        assert x.grad.shape == a.shape and np.isfinite(x.grad.numpy()).all()
        print('scalar ok')
    """
    proc = run_python(code, PVE_ISA="scalar")
    assert proc.returncode == 0, proc.stderr
    assert "scalar ok" in proc.stdout


def test_set_num_threads_round_trip_and_omp_num_threads():
    before = pve.get_num_threads()
    try:
        pve.set_num_threads(1)
        assert pve.get_num_threads() == 1
        assert pve.info()["num_threads"] == 1
    finally:
        pve.set_num_threads(before)
    with pytest.raises(ValueError):
        pve.set_num_threads(0)
    proc = run_python("import pyvision_engine as pve; print(pve.get_num_threads())", OMP_NUM_THREADS="1")
    assert proc.stdout.strip() == "1"


def test_threadpoolctl_sees_and_limits_openmp():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl not installed")
    infos = threadpoolctl.threadpool_info()
    assert any(i["user_api"] == "openmp" for i in infos)
    code = """
        import pyvision_engine as pve
        from threadpoolctl import threadpool_limits
        with threadpool_limits(1, user_api='openmp'):
            print(pve.get_num_threads())
    """
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
