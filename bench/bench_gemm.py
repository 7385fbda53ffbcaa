"""SGEMM: pyvision_engine vs numpy (OpenBLAS) vs torch.mm; see bench/README.md."""
import sys

from pyvision_engine.benchmarks.gemm import main

sys.exit(main())
