"""SGEMM: pyvision_engine vs numpy (OpenBLAS) vs torch.mm; see bench/README.md."""
import os
import sys

# Before any OpenMP runtime loads: torch brings its own, and two spinning pools
# on the same cores starve each other (see bench/README.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pyvision_engine.benchmarks.gemm import main  # noqa: E402

sys.exit(main())
