"""SGEMM benchmark: pyvision_engine against numpy (its BLAS) and torch.mm.

All three run in the same process on the same arrays; each cell is the
median of several timed rounds (each round loops calls for >= 0.1 s). Peers get the same thread count (threadpoolctl for numpy's BLAS,
torch.set_num_threads for torch). GFLOP/s counts 2*M*N*K flops; "% peak" is
against the FMA peak of the active ISA measured by the probe in the same run.

    python bench/bench_gemm.py [--threads 1,2] [--sizes 64,256] [--repeat 7] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import numpy as np

from pyvision_engine import _C
from pyvision_engine.benchmarks.peak import all_threads, measure_peak

try:  # optional peers
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None
try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_info = threadpool_limits = None

SQUARE_SIZES = [64, 256, 512, 1024, 2048]
SETTLE_SECONDS = 0.15

# Linear layers: y = x @ W^T, x is (batch, in), W is (out, in) -> trans_b.
LINEAR_SHAPES = [
    ("resnet18 fc, batch 1", 1, 1000, 512),
    ("resnet18 fc, batch 16", 16, 1000, 512),
    ("resnet50 fc, batch 1", 1, 1000, 2048),
    ("resnet50 fc, batch 16", 16, 1000, 2048),
    ("lenet fc1, batch 64", 64, 120, 400),
    ("lenet fc2, batch 64", 64, 84, 120),
    ("lenet fc3, batch 64", 64, 10, 84),
]


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _time_call(fn, min_seconds: float) -> float:
    """Seconds per call: loops fn until min_seconds have passed (>= 1 call)."""
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def _blas_description() -> str:
    if threadpool_info is None:
        return "threadpoolctl not installed: BLAS unknown, its threads not limited"
    parts = []
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            parts.append(f"{pool.get('internal_api')} {pool.get('version')} "
                         f"(kernel: {pool.get('architecture')}, {pool.get('filepath')})")
    return "; ".join(parts) or "no BLAS pool found"


class _Case:
    """One GEMM problem with its operands for pve, numpy and torch."""

    def __init__(self, name, m, n, k, trans_b, rng):
        self.name, self.m, self.n, self.k, self.trans_b = name, m, n, k, trans_b
        self.a = rng.standard_normal((m, k), dtype=np.float32)
        self.b = rng.standard_normal((n, k) if trans_b else (k, n), dtype=np.float32)
        self.out_pve = np.empty((m, n), np.float32)
        self.out_np = np.empty((m, n), np.float32)
        self.flops = 2.0 * m * n * k
        if torch is not None:
            self.ta = torch.from_numpy(self.a)
            self.tb = torch.from_numpy(self.b)
            self.tout = torch.empty((m, n), dtype=torch.float32)

    def runners(self):
        b_op = self.b.T if self.trans_b else self.b
        run = {
            "pve": lambda: _C.gemm(self.a, self.b, out=self.out_pve, trans_b=self.trans_b),
            "numpy": lambda: np.matmul(self.a, b_op, out=self.out_np),
        }
        if torch is not None:
            tb_op = self.tb.t() if self.trans_b else self.tb
            run["torch"] = lambda: torch.mm(self.ta, tb_op, out=self.tout)
        return run


def bench_case(case: _Case, repeat: int, min_seconds: float) -> dict:
    """Median GFLOP/s per library.

    Each library runs its rounds back to back after a pause: idle worker
    threads of the library that ran before keep spinning for a while
    (OpenBLAS ~60 ms, OpenMP runtimes less), and on a 2-core machine a
    spinning peer thread halves whoever runs next.
    """
    result = {}
    for name, fn in case.runners().items():
        time.sleep(SETTLE_SECONDS)
        fn()  # warm up: caches, page faults, thread pools
        fn()
        samples = [case.flops / _time_call(fn, min_seconds) / 1e9 for _ in range(repeat)]
        result[name] = statistics.median(samples)
    return result


def _check(case: _Case) -> None:
    """The numbers only count if pve agrees with numpy on this case."""
    _C.gemm(case.a, case.b, out=case.out_pve, trans_b=case.trans_b)
    ref = case.a.astype(np.float64) @ (case.b.T if case.trans_b else case.b).astype(np.float64)
    scale = np.abs(case.a).astype(np.float64) @ np.abs(case.b.T if case.trans_b else case.b)
    tol = (2 * math.sqrt(case.k) + 4) * 2.0**-24 * scale
    if not np.all(np.abs(case.out_pve - ref) <= tol):
        raise AssertionError(f"pve result differs from numpy for {case.name}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=_int_list, default=None,
                        help="comma-separated thread counts (default: 1 and all cores)")
    parser.add_argument("--sizes", type=_int_list, default=None,
                        help="square sizes M=N=K (default: 64,256,512,1024,2048)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="timed rounds per cell, median reported (default 7, quick 3)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds and shorter samples (< 1 minute)")
    parser.add_argument("--isa", default=None, help="run pve at this ISA level (default: best)")
    parser.add_argument("--no-linear", action="store_true", help="skip the Linear-layer shapes")
    args = parser.parse_args(argv)

    if args.isa:
        _C.set_isa(args.isa)
    isa = _C.active_isa()
    thread_counts = args.threads or sorted({1, all_threads()})
    sizes = args.sizes or SQUARE_SIZES
    repeat = args.repeat or (3 if args.quick else 7)
    min_seconds = 0.02 if args.quick else 0.1

    print(f"pyvision_engine SGEMM benchmark ({platform.machine()}, {all_threads()} cores)")
    print(f"  pve ISA: {isa} (supported: {', '.join(_C.supported_isas())}), "
          f"OpenMP: {_C.openmp_runtime()}")
    print(f"  numpy {np.__version__}, BLAS: {_blas_description()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"):
        if os.environ.get(var):
            print(f"  note: {var}={os.environ[var]} is set")
    if torch is None:
        print("  torch: not installed, its columns are skipped")
    else:
        print(f"  torch {torch.__version__} (its own BLAS/oneDNN)")

    peaks = measure_peak([isa], thread_counts, repeat=3 if args.quick else 5)[isa]
    print("  measured FMA peak ({}): {}".format(
        isa, ", ".join(f"{t} thr {g:.1f} GFLOP/s" for t, g in peaks.items())))
    print(f"  median of {repeat} rounds; GFLOP/s = 2*M*N*K / time")
    print()

    rng = np.random.default_rng(0)
    cases = [_Case(f"{s}^3", s, s, s, False, rng) for s in sizes]
    if not args.no_linear:
        cases += [_Case(name, m, n, k, True, rng) for name, m, n, k in LINEAR_SHAPES]
    for case in cases:
        _check(case)

    peers = ["numpy"] + (["torch"] if torch is not None else [])
    header = (f"{'shape':24s} {'M x N x K':>16s} {'thr':>3s} {'pve':>8s} "
              + "".join(f"{p:>8s}" for p in peers)
              + "".join(f" {'pve/' + p:>11s}" for p in peers) + f" {'% peak':>7s}")
    print(header)
    print("-" * len(header))
    saved_threads = _C.get_num_threads()
    results = []
    try:
        for threads in thread_counts:
            _C.set_num_threads(threads)
            if torch is not None:
                torch.set_num_threads(threads)
            limiter = (threadpool_limits(limits=threads, user_api="blas")
                       if threadpool_limits is not None else None)
            try:
                for case in cases:
                    g = bench_case(case, repeat, min_seconds)
                    results.append((case, threads, g))
                    dims = f"{case.m}x{case.n}x{case.k}" + ("ᵀ" if case.trans_b else "")
                    line = f"{case.name:24s} {dims:>16s} {threads:3d} {g['pve']:8.1f} "
                    line += "".join(f"{g[p]:8.1f}" for p in peers)
                    line += "".join(f" {g['pve'] / g[p]:10.2f}x" for p in peers)
                    line += f" {100.0 * g['pve'] / peaks[threads]:6.1f}%"
                    print(line, flush=True)
            finally:
                if limiter is not None:
                    limiter.restore_original_limits()
    finally:
        _C.set_num_threads(saved_threads)
    print()
    print("ᵀ: trans_b=True (Linear: x @ W^T). GFLOP/s columns; ratios > 1 mean pve is faster.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
