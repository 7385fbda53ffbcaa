// RAdam (rectified Adam) in one pass; the rectification branch is chosen per
// step in Python (ρ_t > 5) and arrives as a flag.
#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

void radam_impl(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const RadamArgs& a, int num_threads) {
  const AdamMomentRule moments(a);
  const Vec bc1 = Vec::set1(a.bias_correction1), lr = Vec::set1(a.lr),
            bc2_sqrt = Vec::set1(a.bias_correction2_sqrt), eps = Vec::set1(a.eps),
            rect = Vec::set1(a.rect);
  parallel_vec_for(n, num_threads, [=](int64_t i, int w) {
    const AdamMoments r = moments(param, grad, exp_avg, exp_avg_sq, i, w);
    Vec update = (r.m / bc1) * lr;
    if (a.rectified) update = (update * (bc2_sqrt / (sqrt(r.v) + eps))) * rect;  // eps before bc
    st(r.p - update, param + i, w);
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_radam, &radam_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
