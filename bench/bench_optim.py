"""Optimizer step benchmark (pve vs torch) on ResNet-18's parameters.

    PYTHONPATH=. python bench/bench_optim.py [--threads 1 2] [--repeats 15]

See pyvision_engine/benchmarks/optim.py for what is measured and counted.
"""

import sys

from pyvision_engine.benchmarks.optim import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
