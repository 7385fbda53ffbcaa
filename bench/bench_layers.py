"""Layer benchmark (pooling, ReLU, BatchNorm, cross-entropy) vs torch; see
pyvision_engine/benchmarks/layers.py. Usage: python bench/bench_layers.py [--threads 1,2]"""

import os
import sys

# torch's wheel brings its own libgomp, so two OpenMP runtimes live in this
# process; with the default (spinning) wait policy each one's idle threads spin
# on the cores the other is using. Passive waiting keeps the comparison fair.
# Must be set before either runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pyvision_engine.benchmarks.layers import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
