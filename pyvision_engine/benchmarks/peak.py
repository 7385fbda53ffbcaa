"""The machine's measured FP32 FMA peak, per ISA level and thread count.

The probe (``_C.fma_peak_flops``) runs independent chains of vector FMAs on
each thread; timing it here gives what this machine actually sustains, which
benchmarks use as the 100% mark instead of a datasheet number.
"""

from __future__ import annotations

import os
import statistics
import time

from pyvision_engine import _C


def all_threads() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def probe_gflops(isa: str, threads: int, seconds: float = 0.1) -> float:
    """One timed run of the probe, sized to last about `seconds`; GFLOP/s."""
    iterations = 100_000
    while True:
        start = time.perf_counter()
        flops = _C.fma_peak_flops(isa, iterations, threads)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return flops / elapsed / 1e9
        iterations *= max(2, int(seconds / max(elapsed, 1e-6) * 1.2))


def measure_peak(isas=None, thread_counts=None, repeat: int = 5,
                 seconds: float = 0.1) -> dict:
    """Median FMA peak in GFLOP/s: ``{isa: {threads: gflops}}``.

    isas defaults to every level this CPU supports, thread_counts to 1 and
    all cores.
    """
    isas = list(isas or _C.supported_isas())
    if thread_counts is None:
        thread_counts = sorted({1, all_threads()})
    result = {}
    for isa in isas:
        result[isa] = {}
        for threads in thread_counts:
            runs = [probe_gflops(isa, threads, seconds) for _ in range(repeat)]
            result[isa][threads] = statistics.median(runs)
    return result


class TriadProbe:
    """A STREAM triad (a = b + s*c) over three arrays holding ``total_floats``
    floats in all. Size it like the working set of the kernel it judges: a set
    that fits partly in L3 runs faster than DRAM."""

    def __init__(self, total_floats: int, threads: int) -> None:
        from pyvision_engine.nn.arena import aligned_empty

        self.n = total_floats // 3 // 16 * 16
        self.a, self.b, self.c = (aligned_empty(self.n) for _ in range(3))
        self.b.fill(1.0)
        self.c.fill(2.0)
        self.threads = threads
        for nontemporal in (False, True):  # fault the pages in
            _C.triad(self.a, self.b, self.c, 0.5, nontemporal, threads)

    def run_gbs(self, nontemporal: bool) -> float:
        """One timed triad; STREAM's convention counts the 3 arrays once."""
        start = time.perf_counter()
        _C.triad(self.a, self.b, self.c, 0.5, nontemporal, self.threads)
        return 3 * 4 * self.n / (time.perf_counter() - start) / 1e9

    def sample_gbs(self) -> float:
        """One sample as the machine is now: an untimed run (the arrays back in
        cache as far as they fit), then the better of plain and non-temporal
        stores."""
        _C.triad(self.a, self.b, self.c, 0.5, False, self.threads)
        return max(self.run_gbs(False), self.run_gbs(True))


def triad_bandwidth_gbs(total_floats: int, threads: int, repeats: int = 10) -> float:
    """Memory bandwidth in GB/s by a STREAM triad over ``total_floats`` floats:
    the best of ``repeats`` runs and of plain vs non-temporal stores."""
    probe = TriadProbe(total_floats, threads)
    return max(max(probe.run_gbs(False), probe.run_gbs(True)) for _ in range(repeats))


def main() -> None:
    peaks = measure_peak()
    print("FP32 FMA peak (median of 5 probe runs), GFLOP/s")
    for isa, by_threads in peaks.items():
        cells = ", ".join(f"{t} thread{'s' if t > 1 else ''}: {g:.1f}"
                          for t, g in by_threads.items())
        print(f"  {isa:7s} {cells}")


if __name__ == "__main__":
    main()
