// NAdam (Nesterov momentum with momentum decay) in one pass.
#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

void nadam_impl(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const NadamArgs& a, int num_threads) {
  const AdamMomentRule moments(a);
  const Vec bc2 = Vec::set1(a.bias_correction2), eps = Vec::set1(a.eps),
            gc = Vec::set1(a.grad_coef), mc = Vec::set1(a.exp_avg_coef);
  parallel_vec_for(n, num_threads, [=](int64_t i, int w) {
    const AdamMoments r = moments(param, grad, exp_avg, exp_avg_sq, i, w);
    const Vec denom = sqrt(r.v / bc2) + eps;     // eps outside sqrt(v / bc2)
    const Vec p = r.p + (gc * r.g) / denom;      // two updates, in torch's order
    st(p + (mc * r.m) / denom, param + i, w);
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_nadam, &nadam_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
