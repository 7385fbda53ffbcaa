"""Convolution benchmark vs torch (oneDNN): see pyvision_engine/benchmarks/conv.py."""

import sys

from pyvision_engine.benchmarks.conv import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
