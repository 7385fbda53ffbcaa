// SGD with momentum, dampening, Nesterov, L2 weight decay and maximize, in one pass.
#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

void sgd_impl(float* param, const float* grad, float* buf, int64_t n, const SgdArgs& a,
              int num_threads) {
  const Vec neg_lr = Vec::set1(-a.lr), mu = Vec::set1(a.momentum),
            keep = Vec::set1(a.one_minus_dampening);
  const bool use_momentum = a.momentum != 0.0f;
  parallel_vec_for(n, num_threads, [=](int64_t i, int w) {
    const Vec p = ld(param + i, w);
    Vec g = effective_grad(ld(grad + i, w), p, a.maximize, a.weight_decay);
    if (use_momentum) {
      // First step: buf is a copy of g; later buf·μ (rounded) + (1−τ)·g.
      const Vec b = a.first_step ? g : fmadd(g, keep, ld(buf + i, w) * mu);
      st(b, buf + i, w);
      g = a.nesterov ? fmadd(b, mu, g) : b;
    }
    st(fmadd(g, neg_lr, p), param + i, w);
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_sgd, &sgd_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
