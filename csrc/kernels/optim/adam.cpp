// Adam and AdamW (decoupled weight decay), with amsgrad, in one pass:
// reads θ, g, m, v (and v̂), writes θ, m, v (and v̂).
#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

void adam_impl(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
               float* max_exp_avg_sq, int64_t n, const AdamArgs& a, int num_threads) {
  const Lerp lerp(a.lerp_weight);
  const Vec beta2 = Vec::set1(a.beta2), omb2 = Vec::set1(a.one_minus_beta2),
            decay = Vec::set1(a.decay_factor), neg_step = Vec::set1(a.neg_step_size),
            bc2_sqrt = Vec::set1(a.bias_correction2_sqrt), eps = Vec::set1(a.eps);
  const bool l2 = a.weight_decay != 0.0f && !a.decoupled;
  const bool decoupled = a.weight_decay != 0.0f && a.decoupled;
  parallel_vec_for(n, num_threads, [&](int64_t i, int w) {
    Vec p = ld(param + i, w);
    Vec g = ld(grad + i, w);
    if (a.maximize) g = -g;
    if (decoupled) p = p * decay;
    if (l2) g = fmadd(p, Vec::set1(a.weight_decay), g);
    const Vec m = lerp(ld(exp_avg + i, w), g);
    Vec v = fmadd(omb2 * g, g, ld(exp_avg_sq + i, w) * beta2);
    st(m, exp_avg + i, w);
    st(v, exp_avg_sq + i, w);
    if (a.amsgrad) {
      v = max_nan(ld(max_exp_avg_sq + i, w), v);  // of the uncorrected v
      st(v, max_exp_avg_sq + i, w);
    }
    const Vec denom = sqrt(v) / bc2_sqrt + eps;  // eps after the bias correction
    st(p + (neg_step * m) / denom, param + i, w);
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_adam, &adam_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
