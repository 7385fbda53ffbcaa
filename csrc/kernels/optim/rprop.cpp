// Rprop in one pass: reads θ, g, prev, step_size; writes θ, prev, step_size.
//
// torch's _single_tensor_rprop, operation by operation:
//   s = sign(g·prev)                      (the float32 product: an underflow to 0 counts as 0)
//   f = etaplus if s > 0, etaminus if s < 0, 1 if s == 0
//   step_size = clamp(step_size·f, min, max)
//   g' = 0 where f == etaminus, else g
//   θ = θ + (−sign(g'))·step_size;  prev = g'
// torch's sign is (x > 0) − (x < 0): 0 for ±0 and for NaN (so a NaN gradient
// leaves θ and step_size as they are and only reaches prev).
#include "kernels/optim/common.h"
#include "simd/vec_math.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

// (x > 0) − (x < 0), as ATen's vectorized sign.
inline Vec torch_sign(Vec x) {
  const Vec zero = Vec::zero(), one = Vec::set1(1.0f);
  return select(cmp_gt(x, zero), one, zero) - select(cmp_lt(x, zero), one, zero);
}

void rprop_impl(float* param, const float* grad, float* prev, float* step_size, int64_t n,
                const RpropArgs& a, int num_threads) {
  const Vec zero = Vec::zero(), one = Vec::set1(1.0f), etaminus = Vec::set1(a.etaminus),
            etaplus = Vec::set1(a.etaplus), lo = Vec::set1(a.step_size_min),
            hi = Vec::set1(a.step_size_max);
  parallel_vec_for(n, num_threads, [=](int64_t i, int w) {
    Vec g = ld(grad + i, w);
    if (a.maximize) g = -g;
    const Vec s = torch_sign(g * ld(prev + i, w));
    const Vec f = select(cmp_gt(s, zero), etaplus, select(cmp_lt(s, zero), etaminus, one));
    Vec step = ld(step_size + i, w) * f;
    step = select(cmp_lt(step, lo), lo, step);  // clamp: min(max(x, lo), hi), NaN kept
    step = select(cmp_gt(step, hi), hi, step);
    const Vec g2 = select(cmp_eq(f, etaminus), zero, g);
    st(step, step_size + i, w);
    st(g2, prev + i, w);
    st(ld(param + i, w) + (-torch_sign(g2)) * step, param + i, w);
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_rprop, &rprop_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
