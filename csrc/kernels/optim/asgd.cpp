// ASGD in one pass: reads θ, g, ax; writes θ, ax.
//
// torch's _single_tensor_asgd with the step's η and μ (the values stored at
// the previous step, advanced in Python afterwards):
//   g = g + λθ;  θ = θ·(1 − lambd·η);  θ = θ − η·g   (add with alpha: one FMA on SIMD builds)
//   ax = ax + (θ − ax)·μ   when μ ≠ 1 (three roundings, no FMA, as torch's sub/mul/add)
//   ax = θ                 otherwise
#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

constexpr int64_t kWriteAhead = 256;  // floats (1 KiB) ahead

void asgd_impl(float* param, const float* grad, float* ax, int64_t n, const AsgdArgs& a,
               int num_threads) {
  const Vec decay = Vec::set1(a.decay), neg_eta = Vec::set1(a.neg_eta), mu = Vec::set1(a.mu);
  parallel_vec_for(n, num_threads, [=](int64_t i, int w) {
    Vec p = ld(param + i, w);
    const Vec g = effective_grad(ld(grad + i, w), p, a.maximize, a.weight_decay);
    p = fmadd(g, neg_eta, p * decay);
    st(p, param + i, w);
    if (a.average) {
      const Vec x = ld(ax + i, w);
      st(x + (p - x) * mu, ax + i, w);
    } else {
      // ax is only written here: fetch its lines for writing ahead of the
      // stores (left to the stores' own read-for-ownership, this stream ran
      // at half the speed of the read-modify-write form above)
      __builtin_prefetch(ax + i + kWriteAhead, 1, 3);
      st(p, ax + i, w);
    }
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_asgd, &asgd_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
