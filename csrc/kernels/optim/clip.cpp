// Gradient clipping: the norm reduction and the in-place scale / clamp, each
// one pass over a gradient buffer (a whole arena when the grads share one).
#include <cmath>
#include <limits>

#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

// Partial sums are kept per vector lane in float over blocks of 1024
// elements and then added in double, so 11M squares lose no more than a
// float32 sum of 1024 terms would (the norm is returned in float32 anyway).
constexpr int64_t kBlock = 1024;

double grad_norm_part_impl(const float* grad, int64_t n, double p, int kind, int num_threads) {
  const int threads = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(num_threads, n / kMinPerThread)));
  double total = 0.0;
  if (kind == 1) {  // max |g|, NaN-propagating like torch's inf-norm
    float best = 0.0f;
    bool any_nan = false;
#pragma omp parallel num_threads(threads) reduction(max : best) reduction(|| : any_nan)
    {
      const int64_t lines = (n + 15) / 16, nt = omp_get_num_threads(), id = omp_get_thread_num();
      const int64_t begin = std::min(n, lines * id / nt * 16);
      const int64_t end = std::min(n, lines * (id + 1) / nt * 16);
      Vec acc = Vec::zero();
      vec_range(begin, end, [&](int64_t i, int w) { acc = max_nan(acc, abs(ld(grad + i, w))); });
      float lanes[kW];
      acc.store(lanes);
      for (int l = 0; l < kW; ++l) {
        if (std::isnan(lanes[l])) any_nan = true;
        else best = std::max(best, lanes[l]);
      }
    }
    return any_nan ? std::numeric_limits<double>::quiet_NaN() : static_cast<double>(best);
  }
  const bool square = p == 2.0, absolute = p == 1.0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    const int64_t lines = (n + 15) / 16, nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t begin = std::min(n, lines * id / nt * 16), end = std::min(n, lines * (id + 1) / nt * 16);
    double local = 0.0;
    if (square || absolute) {
      for (int64_t b = begin; b < end; b += kBlock) {
        const int64_t e = std::min(end, b + kBlock);
        Vec acc = Vec::zero();
        vec_range(b, e, [&](int64_t i, int w) {
          const Vec g = ld(grad + i, w);
          acc = square ? fmadd(g, g, acc) : acc + abs(g);
        });
        local += static_cast<double>(reduce_add(acc));
      }
    } else {
      for (int64_t i = begin; i < end; ++i) local += std::pow(std::fabs(static_cast<double>(grad[i])), p);
    }
    total += local;
  }
  return total;
}

void grad_scale_impl(float* grad, int64_t n, float scale, int num_threads) {
  const Vec s = Vec::set1(scale);
  parallel_vec_for(n, num_threads, [=](int64_t i, int w) { st(ld(grad + i, w) * s, grad + i, w); });
}

void grad_clamp_impl(float* grad, int64_t n, float c, int num_threads) {
  const Vec hi = Vec::set1(c), lo = Vec::set1(-c);
  // Operand order keeps NaN: x86 max/min return the second operand on NaN.
  parallel_vec_for(n, num_threads, [=](int64_t i, int w) {
    st(min(hi, max(lo, ld(grad + i, w))), grad + i, w);
  });
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(grad_norm_part, &grad_norm_part_impl);
  register_kernel(grad_scale, &grad_scale_impl);
  register_kernel(grad_clamp, &grad_clamp_impl);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
