"""Optimizer step benchmark (pve vs torch) on ResNet-18's parameters.

    PYTHONPATH=. python bench/bench_optim.py [--threads 1 2] [--repeats 15]

See pyvision_engine/benchmarks/optim.py for what is measured and counted.
"""

import os
import sys

# Before any OpenMP runtime loads: torch brings its own, and two pools spinning
# without bound starve each other; a bounded spin is fair to both, while
# OMP_WAIT_POLICY=PASSIVE measured slower for both engines at 2 threads.
os.environ.setdefault("GOMP_SPINCOUNT", "100000")

from pyvision_engine.benchmarks.optim import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
