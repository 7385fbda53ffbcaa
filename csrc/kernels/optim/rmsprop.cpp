// RMSprop (optionally centered, optionally with momentum) in one pass.
#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

void rmsprop_impl(float* param, const float* grad, float* square_avg, float* grad_avg,
                  float* buf, int64_t n, const RmspropArgs& a, int num_threads) {
  const Lerp lerp(a.one_minus_alpha);
  const Vec alpha = Vec::set1(a.alpha), oma = Vec::set1(a.one_minus_alpha),
            eps = Vec::set1(a.eps), mu = Vec::set1(a.momentum), neg_lr = Vec::set1(a.neg_lr);
  const bool use_momentum = a.momentum > 0.0f;
  parallel_vec_for(n, num_threads, [=](int64_t i, int w) {
    const Vec p = ld(param + i, w);
    const Vec g = effective_grad(ld(grad + i, w), p, a.maximize, a.weight_decay);
    const Vec s = fmadd(oma * g, g, ld(square_avg + i, w) * alpha);
    st(s, square_avg + i, w);
    Vec avg;
    if (a.centered) {
      const Vec ga = lerp(ld(grad_avg + i, w), g);
      st(ga, grad_avg + i, w);
      avg = sqrt(fmadd_exact(-ga, ga, s));  // s − ḡ², eps outside the sqrt
    } else {
      avg = sqrt(s);
    }
    avg = avg + eps;
    if (use_momentum) {
      const Vec b = ld(buf + i, w) * mu + g / avg;
      st(b, buf + i, w);
      st(fmadd(b, neg_lr, p), param + i, w);
    } else {
      st(p + (neg_lr * g) / avg, param + i, w);
    }
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_rmsprop, &rmsprop_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
