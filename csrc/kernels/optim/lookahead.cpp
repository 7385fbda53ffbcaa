// Lookahead synchronisation: slow ← slow + α·(fast − slow); fast ← slow.
#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

void lookahead_sync_impl(float* fast, float* slow, int64_t n, float alpha, int num_threads) {
  const Vec al = Vec::set1(alpha);
  parallel_vec_for(n, num_threads, [=](int64_t i, int w) {
    const Vec s = ld(slow + i, w);
    const Vec r = fmadd(al, ld(fast + i, w) - s, s);
    st(r, slow + i, w);
    st(r, fast + i, w);
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_lookahead_sync, &lookahead_sync_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
