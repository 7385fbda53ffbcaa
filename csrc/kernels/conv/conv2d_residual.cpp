// y = act(y + residual) in place: the residual pass for convolution families
// whose epilogue does not take the residual (im2col, depthwise, pointwise off
// its driver). The caller has run the convolution without activation; the
// sum and clamp here are the epilogues' own (relu_clamp), so a fused and an
// unfused layer round and clamp alike.
#include <algorithm>
#include <cstdint>

#include "kernels/conv/conv2d.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int64_t kChunk = int64_t(1) << 14;  // floats per parallel task (64 KiB of y)

template <bool RELU>
void add_chunk(float* y, const float* r, int64_t n, Vec cap) {
  constexpr int64_t W = Vec::kWidth;
  auto act = [&](Vec v) { return RELU ? relu_clamp(v, cap) : v; };
  int64_t i = 0;
  for (; i + W <= n; i += W) act(Vec::load(y + i) + Vec::load(r + i)).store(y + i);
  if (i < n) {
    const int k = static_cast<int>(n - i);
    act(Vec::load_partial(y + i, k) + Vec::load_partial(r + i, k)).store_partial(y + i, k);
  }
}

void add_residual(float* y, const float* residual, int64_t n, bool relu, float relu_max,
                  int threads) {
  if (n <= 0) return;
  const Vec cap = Vec::set1(relu_max);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  const int team = static_cast<int>(std::min<int64_t>(threads, chunks));
#pragma omp parallel for num_threads(team) schedule(static) if (team > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kChunk, count = std::min(kChunk, n - begin);
    if (relu) add_chunk<true>(y + begin, residual + begin, count, cap);
    else add_chunk<false>(y + begin, residual + begin, count, cap);
  }
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(conv2d_add_residual, &add_residual); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
