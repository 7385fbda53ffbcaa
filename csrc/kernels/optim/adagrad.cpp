// Adagrad in one pass: reads θ, g, G; writes θ, G.
#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

void adagrad_impl(float* param, const float* grad, float* sum, int64_t n, const AdagradArgs& a,
                  int num_threads) {
  const Vec eps = Vec::set1(a.eps), neg_clr = Vec::set1(a.neg_clr);
  parallel_vec_for(n, num_threads, [=](int64_t i, int w) {
    const Vec p = ld(param + i, w);
    const Vec g = effective_grad(ld(grad + i, w), p, a.maximize, a.weight_decay);
    const Vec s = fmadd(g, g, ld(sum + i, w));
    st(s, sum + i, w);
    st(p + (neg_clr * g) / (sqrt(s) + eps), param + i, w);  // eps outside the sqrt
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_adagrad, &adagrad_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
