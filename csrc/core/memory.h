// Heap settings for the engine's large, short-lived arrays.
//
// glibc serves allocations above a threshold (128 KiB, adjusted up to 32 MiB)
// with a fresh mmap and trims freed memory at the top of the heap back to the
// OS. A training step frees and re-allocates every activation and gradient,
// so each step paid tens of thousands of page faults (ResNet-20 at batch 128:
// 31,000 per step, about a third of the step; LeNet-5: a quarter). At import
// the engine raises both thresholds (mallopt), so freed arrays stay in the heap
// and are reused: no faults after the first step, at the price of the process
// keeping its peak heap. Set PVE_MALLOC_TUNING=0 before import to keep the
// C library's defaults. Other C libraries than glibc are left alone.
#pragma once

#include <string>

namespace pve {

// Applies the settings once (unless PVE_MALLOC_TUNING=0); returns what is in
// effect: "tuned", "default (PVE_MALLOC_TUNING=0)" or "default (not glibc)".
std::string tune_heap_for_large_arrays();

}  // namespace pve
