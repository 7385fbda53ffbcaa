#include "kernels/probe/triad.h"

#include <omp.h>

#include <algorithm>

#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

void triad_impl(float* a, const float* b, const float* c, float s, int64_t n, bool nontemporal,
                int num_threads) {
  constexpr int W = Vec::kWidth;
  const Vec sv = Vec::set1(s);
  // Same static split as the optimizer kernels: one 64-byte-aligned range per thread.
#pragma omp parallel num_threads(num_threads)
  {
    const int64_t lines = (n + 15) / 16, nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t begin = std::min(n, lines * id / nt * 16);
    const int64_t end = std::min(n, lines * (id + 1) / nt * 16);
    int64_t i = begin;
    if (nontemporal) {
      for (; i + W <= end; i += W) fmadd(sv, Vec::load(c + i), Vec::load(b + i)).stream(a + i);
    } else {
      for (; i + W <= end; i += W) fmadd(sv, Vec::load(c + i), Vec::load(b + i)).store(a + i);
    }
    for (; i < end; ++i) a[i] = b[i] + s * c[i];
  }
#if defined(__AVX2__) || defined(__AVX512F__)
  if (nontemporal) _mm_sfence();
#endif
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(triad, &triad_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
