// Adamax (infinity-norm Adam) in one pass: reads θ, g, m, u; writes θ, m, u.
#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

void adamax_impl(float* param, const float* grad, float* exp_avg, float* exp_inf, int64_t n,
                 const AdamaxArgs& a, int num_threads) {
  const Lerp lerp(a.lerp_weight);
  const Vec beta2 = Vec::set1(a.beta2), eps = Vec::set1(a.eps), neg_clr = Vec::set1(a.neg_clr);
  parallel_vec_for(n, num_threads, [=](int64_t i, int w) {
    const Vec p = ld(param + i, w);
    const Vec g = effective_grad(ld(grad + i, w), p, a.maximize, a.weight_decay);
    const Vec m = lerp(ld(exp_avg + i, w), g);
    const Vec u = max_nan(ld(exp_inf + i, w) * beta2, abs(g) + eps);  // eps inside the max
    st(m, exp_avg + i, w);
    st(u, exp_inf + i, w);
    st(p + (neg_clr * m) / u, param + i, w);
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_adamax, &adamax_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
