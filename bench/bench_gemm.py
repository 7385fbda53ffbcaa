"""SGEMM: pyvision_engine vs numpy (OpenBLAS) vs torch.mm; see bench/README.md."""
import os
import sys

# Before any OpenMP runtime loads: torch brings its own, and two pools spinning
# without bound on the same cores starve each other. A bounded spin (not
# OMP_WAIT_POLICY=PASSIVE, whose ~50 us wake-ups swamp the sub-0.1 ms products
# here) is fair to both (see bench/README.md).
os.environ.setdefault("GOMP_SPINCOUNT", "100000")

from pyvision_engine.benchmarks.gemm import main  # noqa: E402

sys.exit(main())
