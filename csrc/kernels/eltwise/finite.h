// Whether every value of a float array is finite (no NaN, no +-inf): the
// Winograd convolutions check their outputs with it, since their transforms
// spread one non-finite input over a whole tile (see bind_conv.cpp).
#pragma once

#include <cstdint>

#include "core/dispatch.h"

namespace pve {

using AllFiniteFn = bool (*)(const float* x, int64_t n, int num_threads);

PVE_DECLARE_KERNEL(all_finite, AllFiniteFn);

}  // namespace pve
