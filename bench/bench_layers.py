"""Layer benchmark (pooling, ReLU, BatchNorm, cross-entropy) vs torch; see
pyvision_engine/benchmarks/layers.py. Usage: python bench/bench_layers.py [--threads 1,2]"""

import sys

from pyvision_engine.benchmarks.layers import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
