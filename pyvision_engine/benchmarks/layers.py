"""Layer benchmark: this engine vs torch, in one process, on memory-bound layers.

    python bench/bench_layers.py [--threads 1,2] [--reps 15] [--quick]
    pyvision-engine bench layers [...]

For each op: median wall time over ``reps`` runs (engine and torch runs
alternate, so background load on a shared machine hits both alike) (caches flushed before each
run by reading a 256 MiB buffer, so data comes from DRAM as in a real network),
the speed ratio torch_time / pve_time (> 1: this engine is faster), effective
GB/s counting the compulsory traffic only (each input read once, each output
written once), and that as a percentage of the memory bandwidth measured here
by a STREAM triad probe (``peak.triad_bandwidth_gbs``) at the same thread count.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

import pyvision_engine as pve
from pyvision_engine import _C
from pyvision_engine.benchmarks.peak import triad_bandwidth_gbs

_FLUSH = np.ones(64 << 20, dtype=np.float32)  # 256 MiB, far larger than the L3 cache


def _pve_flush() -> None:
    # Read-only, so the caches are left holding clean lines: the op under test
    # does not pay for writing back someone else's dirty data. Read by the
    # engine's own threads (its global-average-pool kernel), so that every
    # core's L2 is flushed too and the threads are awake when the op starts,
    # as they are inside a network after the previous layer.
    _C.adaptive_avg_pool2d_forward(_FLUSH.reshape(-1, 64, 64), 1, 1)


def _torch_flush(torch) -> Callable[[], None]:
    flush = torch.from_numpy(_FLUSH)
    return lambda: flush.sum()  # torch's own threads, as _pve_flush


def _paired_times(pfn: Callable[[], object], tfn: Optional[Callable[[], object]], reps: int,
                  torch_flush: Optional[Callable[[], None]] = None,
                  warmup: int = 2) -> Tuple[List[float], List[float]]:
    """Per-run wall times of the engine and torch, alternating run by run so that
    load from other processes on a shared machine hits both alike. Each run
    starts from cold caches, flushed by the same engine's threads."""
    for _ in range(warmup):
        pfn()
        if tfn:
            tfn()
    tp: List[float] = []
    tt: List[float] = []
    for _ in range(reps):
        for fn, out, flush in ((pfn, tp, _pve_flush), (tfn, tt, torch_flush)):
            if fn is None:
                continue
            flush()
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return tp, tt


def measure_bandwidth(threads: int, n: int = 16 << 20, reps: int = 10) -> float:
    """STREAM triad bandwidth in GB/s over 3 arrays of n floats (64 MiB each: DRAM)."""
    return triad_bandwidth_gbs(3 * n, threads, reps)


def _cases(torch) -> List[Tuple[str, float, Callable, Optional[Callable]]]:
    """(name, compulsory bytes, pve fn, torch fn) for every benchmarked op."""
    F = pve.nn.functional
    rng = np.random.default_rng(0)
    cases = []

    x = rng.standard_normal((8, 64, 112, 112)).astype(np.float32)
    px = pve.from_numpy(x)
    tx = torch.from_numpy(x) if torch else None
    out_elems = 8 * 64 * 56 * 56
    cases.append(("max_pool2d 3x3 s2 p1, 8x64x112x112 (fwd)", 4.0 * (x.size + out_elems),
                  lambda: F.max_pool2d(px, 3, 2, 1),
                  (lambda: torch.nn.functional.max_pool2d(tx, 3, 2, 1)) if torch else None))

    # Training path: indices (int64) are written by the forward and read back
    # by the backward, which writes grad_input.
    cases.append(("max_pool2d 3x3 s2 p1, 8x64x112x112 (fwd with indices)",
                  4.0 * x.size + 12.0 * out_elems,
                  lambda: F.max_pool2d(px, 3, 2, 1, return_indices=True),
                  (lambda: torch.nn.functional.max_pool2d(tx, 3, 2, 1, return_indices=True))
                  if torch else None))
    pxg = pve.tensor(x, requires_grad=True)
    gmp = rng.standard_normal((8, 64, 56, 56)).astype(np.float32)
    pgmp = pve.from_numpy(gmp)

    def pve_mp_train():
        pxg.grad = None
        F.max_pool2d(pxg, 3, 2, 1).backward(pgmp)

    tmp_fn = None
    if torch:
        txg = torch.tensor(x, requires_grad=True)
        tgmp = torch.from_numpy(gmp)

        def tmp_fn():
            txg.grad = None
            torch.nn.functional.max_pool2d(txg, 3, 2, 1).backward(tgmp)

    # fwd: read x, write y and indices; bwd: read gy and indices, write gx.
    cases.append(("max_pool2d 3x3 s2 p1, 8x64x112x112 (train fwd+bwd)",
                  2 * (4.0 * x.size + 12.0 * out_elems), pve_mp_train, tmp_fn))

    cases.append(("relu, 8x64x112x112 (fwd)", 4.0 * 2 * x.size,
                  lambda: F.relu(px), (lambda: torch.relu(tx)) if torch else None))

    g = rng.standard_normal((32, 2048, 7, 7)).astype(np.float32)
    pg = pve.from_numpy(g)
    tg = torch.from_numpy(g) if torch else None
    cases.append(("global avg pool, 32x2048x7x7 (fwd)", 4.0 * (g.size + 32 * 2048),
                  lambda: F.adaptive_avg_pool2d(pg, 1),
                  (lambda: torch.nn.functional.adaptive_avg_pool2d(tg, 1)) if torch else None))

    b = rng.standard_normal((16, 64, 56, 56)).astype(np.float32)
    gb = rng.standard_normal(b.shape).astype(np.float32)
    bn = pve.nn.BatchNorm2d(64)
    pb = pve.tensor(b, requires_grad=True)
    pgb = pve.from_numpy(gb)

    def pve_bn():
        pb.grad = None
        bn(pb).backward(pgb)

    tbn_fn = None
    if torch:
        tbn = torch.nn.BatchNorm2d(64)
        tb = torch.tensor(b, requires_grad=True)
        tgb = torch.from_numpy(gb)

        def tbn_fn():
            tb.grad = None
            tbn(tb).backward(tgb)

    # fwd: read x, write y; bwd: read x and gy, write gx.
    cases.append(("BatchNorm2d train fwd+bwd, 16x64x56x56", 4.0 * 5 * b.size, pve_bn, tbn_fn))

    logits = rng.standard_normal((256, 1000)).astype(np.float32)
    target = rng.integers(0, 1000, 256)
    pl = pve.tensor(logits, requires_grad=True)
    pt = pve.tensor(target)

    def pve_ce():
        pl.grad = None
        F.cross_entropy(pl, pt).backward()

    tce_fn = None
    if torch:
        tl = torch.tensor(logits, requires_grad=True)
        tt = torch.from_numpy(target)

        def tce_fn():
            tl.grad = None
            torch.nn.functional.cross_entropy(tl, tt).backward()

    # fwd reads logits; bwd reads logits, writes the gradient.
    cases.append(("cross_entropy fwd+bwd, 256x1000", 4.0 * 3 * logits.size, pve_ce, tce_fn))
    return cases


def run(threads_list: List[int], reps: int) -> List[Dict[str, object]]:
    try:
        import torch
    except ImportError:  # the engine's numbers alone
        torch = None
    rows: List[Dict[str, object]] = []
    cases = _cases(torch)
    for threads in threads_list:
        pve.set_num_threads(threads)
        if torch:
            torch.set_num_threads(threads)
        bw = measure_bandwidth(threads)
        for name, nbytes, pfn, tfn in cases:
            times_p, times_t = _paired_times(pfn, tfn, reps,
                                              _torch_flush(torch) if torch else None)
            tp = statistics.median(times_p)
            tt = statistics.median(times_t) if times_t else float("nan")
            best = min(times_p)
            gbs = nbytes / tp / 1e9
            rows.append({"op": name, "threads": threads, "pve_ms": tp * 1e3, "torch_ms": tt * 1e3,
                         "ratio": tt / tp, "gbs": gbs, "pct_bw": 100.0 * gbs / bw, "bw": bw,
                         "best_ratio": (min(times_t) if times_t else float("nan")) / best,
                         "best_pct": 100.0 * nbytes / best / 1e9 / bw})
    return rows


def format_table(rows: List[Dict[str, object]]) -> str:
    lines = ["| op | threads | pve ms | torch ms | torch/pve | pve GB/s | % of triad BW (GB/s) "
             "| best-run torch/pve, % BW |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['op']} | {r['threads']} | {r['pve_ms']:.3f} | {r['torch_ms']:.3f} | "
                     f"{r['ratio']:.2f} | {r['gbs']:.1f} | {r['pct_bw']:.0f}% ({r['bw']:.1f}) | "
                     f"{r['best_ratio']:.2f}, {r['best_pct']:.0f}% |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_layers", description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--reps", type=int, default=15, help="timed runs per op (median)")
    parser.add_argument("--quick", action="store_true", help="3 runs per op (smoke test)")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t]
    if not threads or min(threads) < 1:
        raise ValueError(f"bench_layers: --threads must list positive counts, got {args.threads!r}")
    reps = 3 if args.quick else args.reps
    info = pve.info()
    print(f"pyvision_engine {info['version']}, isa {info['isa']}, {info['openmp']}")
    print(format_table(run(threads, reps)))
    return 0
