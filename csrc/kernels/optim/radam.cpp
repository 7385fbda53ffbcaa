// RAdam (rectified Adam) in one pass; the rectification branch is chosen per
// step in Python (ρ_t > 5) and arrives as a flag.
#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

void radam_impl(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const RadamArgs& a, int num_threads) {
  const Lerp lerp(a.lerp_weight);
  const Vec beta2 = Vec::set1(a.beta2), omb2 = Vec::set1(a.one_minus_beta2),
            decay = Vec::set1(a.decay_factor), bc1 = Vec::set1(a.bias_correction1),
            lr = Vec::set1(a.lr), bc2_sqrt = Vec::set1(a.bias_correction2_sqrt),
            eps = Vec::set1(a.eps), rect = Vec::set1(a.rect);
  const bool l2 = a.weight_decay != 0.0f && !a.decoupled;
  const bool decoupled = a.weight_decay != 0.0f && a.decoupled;
  parallel_vec_for(n, num_threads, [&](int64_t i, int w) {
    Vec p = ld(param + i, w);
    Vec g = ld(grad + i, w);
    if (a.maximize) g = -g;
    if (decoupled) p = p * decay;
    if (l2) g = fmadd(p, Vec::set1(a.weight_decay), g);
    const Vec m = lerp(ld(exp_avg + i, w), g);
    const Vec v = fmadd(omb2 * g, g, ld(exp_avg_sq + i, w) * beta2);
    st(m, exp_avg + i, w);
    st(v, exp_avg_sq + i, w);
    Vec update = (m / bc1) * lr;
    if (a.rectified) update = (update * (bc2_sqrt / (sqrt(v) + eps))) * rect;  // eps before bc
    st(p - update, param + i, w);
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_radam, &radam_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
