"""Training-step images/s: pve vs torch (LeNet-5, ResNet-20, ResNet-18; SGD-momentum and Adam).

    PYTHONPATH=. python bench/bench_train.py [--threads 1 2] [--only ...]

See pyvision_engine/benchmarks/train.py for what is measured (also: pyvision-engine bench train).
"""

import os
import sys

# torch brings its own OpenMP runtime: with two in one process, the idle threads of one
# spinning while the other works would skew both engines' times (set before either loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pyvision_engine.benchmarks.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
