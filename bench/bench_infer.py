"""Inference latency/throughput: pve vs torch vs onnxruntime (ResNet-18, ResNet-50, MobileNetV2 at 224).

    PYTHONPATH=. python bench/bench_infer.py [--threads 1 2] [--only ...]

See pyvision_engine/benchmarks/infer.py for what is measured (also: pyvision-engine bench infer).
"""

import os
import sys

# torch brings its own OpenMP runtime: with two in one process, the idle threads of one
# spinning while the other works would skew both engines' times (set before either loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pyvision_engine.benchmarks.infer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
