"""Inference latency/throughput: pve vs torch vs onnxruntime (ResNet-18, ResNet-50, MobileNetV2 at 224).

    PYTHONPATH=. python bench/bench_infer.py [--threads 1 2] [--only ...]

See pyvision_engine/benchmarks/infer.py for what is measured (also: pyvision-engine bench infer).
"""

import sys

from pyvision_engine.benchmarks.infer import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
