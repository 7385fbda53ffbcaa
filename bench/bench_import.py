"""Time `import pyvision_engine` beyond `import numpy` (median of fresh processes).

    python bench/bench_import.py [--runs 15]
"""

import argparse
import statistics
import subprocess
import sys

CODE = ("import time; t0 = time.perf_counter(); import numpy; t1 = time.perf_counter(); "
        "import pyvision_engine; t2 = time.perf_counter(); print(t1 - t0, t2 - t1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    numpy_times, engine_times = [], []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
        n, e = map(float, out.stdout.split())
        numpy_times.append(n)
        engine_times.append(e)
    print(f"import numpy:                   median {statistics.median(numpy_times) * 1e3:7.1f} ms")
    print(f"import pyvision_engine (extra): median {statistics.median(engine_times) * 1e3:7.1f} ms "
          f"(budget 250 ms)")


if __name__ == "__main__":
    main()
