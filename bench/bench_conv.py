"""Convolution benchmark vs torch (oneDNN): see pyvision_engine/benchmarks/conv.py."""

import os
import sys

# torch brings its own OpenMP runtime: with two in one process, idle threads of
# one spinning while the other works would skew both engines' times.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pyvision_engine.benchmarks.conv import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
