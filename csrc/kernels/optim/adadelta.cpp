// Adadelta in one pass: reads θ, g, s, a; writes θ, s, a.
#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

void adadelta_impl(float* param, const float* grad, float* square_avg, float* acc_delta,
                   int64_t n, const AdadeltaArgs& a, int num_threads) {
  const Vec rho = Vec::set1(a.rho), omr = Vec::set1(a.one_minus_rho), eps = Vec::set1(a.eps),
            neg_lr = Vec::set1(a.neg_lr);
  parallel_vec_for(n, num_threads, [=](int64_t i, int w) {
    const Vec p = ld(param + i, w);
    const Vec g = effective_grad(ld(grad + i, w), p, a.maximize, a.weight_decay);
    const Vec s = fmadd(omr * g, g, ld(square_avg + i, w) * rho);
    const Vec acc = ld(acc_delta + i, w);
    const Vec delta = sqrt(acc + eps) / sqrt(s + eps) * g;  // eps inside both sqrts
    st(s, square_avg + i, w);
    st(fmadd(omr * delta, delta, acc * rho), acc_delta + i, w);
    st(fmadd(delta, neg_lr, p), param + i, w);
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_adadelta, &adadelta_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
