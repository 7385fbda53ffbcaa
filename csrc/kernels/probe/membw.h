// Memory-bandwidth probe: a STREAM-style triad a[i] = b[i] + s * c[i] (streaming stores) over
// arrays far larger than the caches, on a given number of threads.
#pragma once

#include <cstdint>

#include "core/dispatch.h"

namespace pve {

// Runs `reps` triads over n floats; returns bytes counted STREAM's way
// (3 arrays x 4 bytes x n per rep). Time it outside.
using MemBwTriadFn = double (*)(float* a, const float* b, const float* c, int64_t n, int reps,
                                int num_threads);

PVE_DECLARE_KERNEL(membw_triad, MemBwTriadFn);

}  // namespace pve
