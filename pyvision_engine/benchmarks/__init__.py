"""Side-by-side benchmarks (this engine vs numpy / torch / onnxruntime in one process).

Each module has ``main(argv)``; ``bench/bench_<name>.py`` and
``pyvision-engine bench <name>`` both run it.
"""

from __future__ import annotations

import importlib
from typing import List

BENCHMARKS = ("gemm", "optim", "layers", "train", "infer", "conv")


# OpenMP settings each benchmark runs under (libgomp reads them when it loads,
# so the command line restarts itself with them). torch ships its own OpenMP
# runtime; two pools that spin without bound on the same cores starve each
# other, so every benchmark bounds or disables the spinning, as bench/*.py do.
OPENMP_ENV = {name: {"OMP_WAIT_POLICY": "PASSIVE"} for name in BENCHMARKS}
# A bounded spin where passive waiting measured slower (sub-0.1 ms GEMMs; optimizer steps).
OPENMP_ENV["gemm"] = OPENMP_ENV["optim"] = {"GOMP_SPINCOUNT": "100000"}


def run_benchmark(name: str, argv: List[str]) -> int:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark '{name}'; choose from: {', '.join(BENCHMARKS)}")
    module = importlib.import_module(f"pyvision_engine.benchmarks.{name}")
    return int(module.main(argv) or 0)
