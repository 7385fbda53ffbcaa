// Measures the machine's peak FP32 FMA throughput for one ISA: each thread
// runs independent chains of vector FMAs long enough to hide their latency.
#pragma once

#include <cstdint>

#include "core/dispatch.h"

namespace pve {

// Runs `iterations` rounds on `num_threads` threads; returns the total number
// of floating-point operations performed (2 per lane per FMA).
using FmaPeakFn = double (*)(int64_t iterations, int num_threads);

PVE_DECLARE_KERNEL(fma_peak, FmaPeakFn);

}  // namespace pve
