"""Side-by-side benchmarks (this engine vs numpy / torch / onnxruntime in one process).

Each module has ``main(argv)``; ``bench/bench_<name>.py`` and
``pyvision-engine bench <name>`` both run it.
"""

from __future__ import annotations

import importlib
from typing import List

BENCHMARKS = ("gemm", "optim", "layers", "train", "infer", "conv")


def run_benchmark(name: str, argv: List[str]) -> int:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark '{name}'; choose from: {', '.join(BENCHMARKS)}")
    module = importlib.import_module(f"pyvision_engine.benchmarks.{name}")
    return int(module.main(argv) or 0)
