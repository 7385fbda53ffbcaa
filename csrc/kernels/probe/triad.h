// STREAM triad probe, a = b + s·c, for measuring the bandwidth a streaming
// kernel can reach over a working set of a given size (which may sit partly in
// L3). Counted traffic, STREAM's convention: 3 arrays × n × 4 bytes per call.
#pragma once

#include <cstdint>

#include "core/dispatch.h"

namespace pve {

// nontemporal: store `a` with streaming stores (needs `a` 64-byte aligned).
using TriadFn = void (*)(float* a, const float* b, const float* c, float s, int64_t n,
                         bool nontemporal, int num_threads);

PVE_DECLARE_KERNEL(triad, TriadFn);

}  // namespace pve
