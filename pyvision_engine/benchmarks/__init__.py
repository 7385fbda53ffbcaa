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
# runtime and onnxruntime its own pool; pools that spin without bound on the
# same cores starve each other. A bounded spin (~0.1-0.3 ms) keeps each
# engine's threads awake between the layers of its own run and lets them sleep
# right after it, so the engines, timed in alternation, do not take each
# other's cores. OMP_WAIT_POLICY=PASSIVE instead costs every parallel region a
# wake-up (tens of microseconds, dominant for sub-0.1 ms layers at 2 threads),
# but is more robust when other processes load the cores: set it explicitly to
# measure that way.
OPENMP_ENV = {name: {"GOMP_SPINCOUNT": "100000"} for name in BENCHMARKS}


def run_benchmark(name: str, argv: List[str]) -> int:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark '{name}'; choose from: {', '.join(BENCHMARKS)}")
    module = importlib.import_module(f"pyvision_engine.benchmarks.{name}")
    return int(module.main(argv) or 0)
