"""Training-step images/s: pve vs torch (LeNet-5, ResNet-20, ResNet-18; SGD-momentum and Adam).

    PYTHONPATH=. python bench/bench_train.py [--threads 1 2] [--only ...]

See pyvision_engine/benchmarks/train.py for what is measured (also: pyvision-engine bench train).
"""

import os
import sys

# torch (and onnxruntime) bring their own thread pools. Every benchmark bounds
# the OpenMP spin so that each engine's threads stay awake between the layers
# of its own run but sleep right after it, instead of spinning on the cores the
# next engine needs (see pyvision_engine/benchmarks/__init__.py). Set before any
# OpenMP runtime loads; an explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if not any(k in os.environ for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")):
    os.environ["GOMP_SPINCOUNT"] = "100000"

from pyvision_engine.benchmarks.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
