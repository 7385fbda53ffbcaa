#include "kernels/probe/membw.h"

#include <algorithm>

#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

double membw_triad_impl(float* a, const float* b, const float* c, int64_t n, int reps,
                        int threads) {
  constexpr int W = Vec::kWidth;
  const Vec s = Vec::set1(1.0001f);
  for (int r = 0; r < reps; ++r) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i += W) {
      const int k = static_cast<int>(std::min<int64_t>(W, n - i));
      fmadd(s, Vec::load_partial(c + i, k), Vec::load_partial(b + i, k)).store_partial(a + i, k);
    }
  }
  return 12.0 * static_cast<double>(n) * reps;
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(membw_triad, &membw_triad_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
