"""SGEMM: pyvision_engine vs numpy (OpenBLAS) vs torch.mm; see bench/README.md."""
import os
import sys

# torch (and onnxruntime) bring their own thread pools. Every benchmark bounds
# the OpenMP spin so that each engine's threads stay awake between the layers
# of its own run but sleep right after it, instead of spinning on the cores the
# next engine needs (see pyvision_engine/benchmarks/__init__.py). Set before any
# OpenMP runtime loads; an explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if not any(k in os.environ for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")):
    os.environ["GOMP_SPINCOUNT"] = "100000"

from pyvision_engine.benchmarks.gemm import main  # noqa: E402

sys.exit(main())
