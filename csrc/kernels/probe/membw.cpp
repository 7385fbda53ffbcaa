// STREAM-style triad with the streaming (non-temporal) stores that optimised
// STREAM builds use: each rep moves exactly 3 x 4 bytes per element, the same
// way the layer kernels move their outputs, so the two are comparable.
#include "kernels/probe/membw.h"

#include <algorithm>
#include <cstdint>

#include "simd/vec.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int W = Vec::kWidth;

void triad_range(float* a, const float* b, const float* c, int64_t n, Vec s) {
  int64_t i = 0;
  while (i < n && reinterpret_cast<uintptr_t>(a + i) % (W * sizeof(float)) != 0) {
    a[i] = b[i] + 1.0001f * c[i];
    ++i;
  }
  for (; i + W <= n; i += W) fmadd(s, Vec::load(c + i), Vec::load(b + i)).stream(a + i);
  for (; i < n; ++i) a[i] = b[i] + 1.0001f * c[i];
}

double membw_triad_impl(float* a, const float* b, const float* c, int64_t n, int reps,
                        int threads) {
  const Vec s = Vec::set1(1.0001f);
  for (int r = 0; r < reps; ++r) {
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
      const int t = 0, nt = 1;
#endif
      const int64_t chunk = (n + nt - 1) / nt;
      const int64_t begin = std::min<int64_t>(n, t * chunk), end = std::min<int64_t>(n, begin + chunk);
      triad_range(a + begin, b + begin, c + begin, end - begin, s);
#if defined(__AVX512F__) || defined(__AVX2__)
      _mm_sfence();
#endif
    }
  }
  return 12.0 * static_cast<double>(n) * reps;
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(membw_triad, &membw_triad_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
