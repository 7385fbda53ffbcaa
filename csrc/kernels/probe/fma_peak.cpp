#include "kernels/probe/fma_peak.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX2__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;  // SSE2, the x86-64 baseline: mul + add, no FMA
#endif
typedef float VecF __attribute__((vector_size(kLanes * sizeof(float))));

// Enough independent accumulators to cover FMA latency x issue width on
// current cores (4-cycle latency x 2 pipes => 8), without spilling registers.
#if defined(__AVX512F__)
constexpr int kChains = 16;  // of 32 zmm registers
#else
constexpr int kChains = 12;  // of 16 xmm/ymm registers, leaving room for the operands
#endif

double fma_peak_impl(int64_t iterations, int num_threads) {
  double total_flops = 0.0;
#pragma omp parallel num_threads(num_threads) reduction(+ : total_flops)
  {
    VecF acc[kChains];
    VecF mul, add;
    for (int l = 0; l < kLanes; ++l) {
      mul[l] = 0.999999f;
      add[l] = 1e-7f;
    }
    for (int c = 0; c < kChains; ++c) acc[c] = mul * static_cast<float>(c);
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
      for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * mul + add;
    }
    // Keep the results alive so the loop is not removed.
    for (int c = 0; c < kChains; ++c) __asm__ volatile("" : : "x"(acc[c]));
    total_flops += 2.0 * kLanes * kChains * static_cast<double>(iterations);
  }
  return total_flops;
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(fma_peak, &fma_peak_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
