// Adam and AdamW (decoupled weight decay), with amsgrad, in one pass:
// reads θ, g, m, v (and v̂), writes θ, m, v (and v̂).
#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

void adam_impl(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
               float* max_exp_avg_sq, int64_t n, const AdamArgs& a, int num_threads) {
  const AdamMomentRule moments(a);
  const Vec neg_step = Vec::set1(a.neg_step_size), bc2_sqrt = Vec::set1(a.bias_correction2_sqrt),
            eps = Vec::set1(a.eps);
  parallel_vec_for(n, num_threads, [=](int64_t i, int w) {
    const AdamMoments r = moments(param, grad, exp_avg, exp_avg_sq, i, w);
    Vec v = r.v;
    if (a.amsgrad) {
      v = max_nan(ld(max_exp_avg_sq + i, w), v);  // of the uncorrected v
      st(v, max_exp_avg_sq + i, w);
    }
    const Vec denom = sqrt(v) / bc2_sqrt + eps;  // eps after the bias correction
    st(r.p + (neg_step * r.m) / denom, param + i, w);
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_adam, &adam_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
