#include "kernels/eltwise/finite.h"

#include <omp.h>

#include <algorithm>

#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

// x - x is 0 for a finite x and NaN for NaN or +-inf, so a sum of such
// differences is 0 exactly when all are finite (one subtract and one add per
// vector: the loop runs at memory speed).
bool all_finite_impl(const float* x, int64_t n, int num_threads) {
  constexpr int W = Vec::kWidth;
  constexpr int64_t kPerThread = int64_t(1) << 16;  // floats worth a thread's start-up
  const int threads = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>(num_threads, n / kPerThread)));
  int bad = 0;
#pragma omp parallel num_threads(threads) reduction(| : bad)
  {
    const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t begin = n * id / nt, end = n * (id + 1) / nt;
    Vec acc0 = Vec::zero(), acc1 = Vec::zero();
    int64_t i = begin;
    for (; i + 2 * W <= end; i += 2 * W) {
      const Vec a = Vec::load(x + i), b = Vec::load(x + i + W);
      acc0 = acc0 + (a - a);
      acc1 = acc1 + (b - b);
    }
    float tail = 0.0f;
    for (; i < end; ++i) tail += x[i] - x[i];
    bad |= !(reduce_add(acc0 + acc1) + tail == 0.0f);
  }
  return bad == 0;
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(all_finite, &all_finite_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
