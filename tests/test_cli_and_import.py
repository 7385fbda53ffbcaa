"""The pyvision-engine command and the cost of `import pyvision_engine`."""

import json

from subprocess_env import run_python


def run(*args):
    return run_python(list(args))


def test_python_m_info():
    proc = run("-m", "pyvision_engine", "info")
    assert proc.returncode == 0, proc.stderr
    assert "isa:" in proc.stdout and "gemm_f32" in proc.stdout


def test_info_json():
    proc = run("-m", "pyvision_engine", "info", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert {"version", "isa", "supported_isas", "num_threads", "openmp"} <= set(info)


def test_unknown_benchmark_is_one_clear_line():
    proc = run("-m", "pyvision_engine", "bench", "nope")
    assert proc.returncode != 0
    assert "unknown benchmark 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_import_stays_light():
    # Import cost is kept small by never importing heavy optional modules at
    # import time (the measured time is in bench/bench_import.py).
    code = ("import sys, pyvision_engine; heavy = [m for m in ('torch', 'onnx', 'onnxruntime', "
            "'safetensors', 'tqdm', 'scipy', 'PIL') if m in sys.modules]; print(heavy)")
    proc = run("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_sequence_and_rarely_used_modules_load_on_first_use():
    # what a CNN program never touches is not imported with the package, and still is
    # reachable under its torch name
    lazy = ("pyvision_engine.nn.rnn", "pyvision_engine.nn.attention", "pyvision_engine.nn.transformer",
            "pyvision_engine.nn.utils.rnn", "pyvision_engine.nn.utils.stateless",
            "pyvision_engine.onnx", "pyvision_engine.func")
    code = ("import sys, pyvision_engine as pve; "
            f"print([m for m in {lazy!r} if m in sys.modules]); "
            "print(pve.nn.utils.rnn.pad_sequence.__name__, "
            "pve.nn.utils.stateless.functional_call.__name__, pve.nn.LSTM.__name__)")
    proc = run("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[]", "pad_sequence functional_call LSTM"]
