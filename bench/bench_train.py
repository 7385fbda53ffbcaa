"""Training-step images/s: pve vs torch (LeNet-5, ResNet-20, ResNet-18; SGD-momentum and Adam).

    PYTHONPATH=. python bench/bench_train.py [--threads 1 2] [--only ...]

See pyvision_engine/benchmarks/train.py for what is measured (also: pyvision-engine bench train).
"""

import sys

from pyvision_engine.benchmarks.train import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
