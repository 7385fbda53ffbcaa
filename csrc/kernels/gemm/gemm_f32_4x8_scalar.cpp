// Reference SGEMM micro-kernel in plain C++ (baseline x86-64, no ISA flags):
// a 4 x 8 tile of scalar accumulators that the compiler may keep in SSE
// registers. It runs the same packing, blocking and epilogue as the SIMD
// kernels, so it is both the fallback and the cross-check for them.
//
// Cache blocks: KC = 256 (B micro-panel 8 KiB in L1), MC = 128 (A block
// 128 KiB in L2), NC = 2048.
#include "kernels/gemm/gemm_driver.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace gemm {

template <int MR, int NR>
inline void ukernel_scalar(int64_t kc, const float* __restrict ap, const float* __restrict bp,
                           float* c, int64_t ldc, int mr, int nr, const TileEpilogue& epilogue) {
  // A local copy: C's stores may alias the caller's struct as far as the
  // compiler knows, and it would re-read every field after every store.
  const TileEpilogue ep = epilogue;
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += ap[i] * bp[j];
    ap += MR;
    bp += NR;
  }
  for (int i = 0; i < mr; ++i) {
    float* cr = c + i * ldc;
    const float brow = ep.bias_row ? ep.bias_row[i] : 0.0f;
    for (int j = 0; j < nr; ++j) {
      float x = acc[i][j];
      if (ep.beta == 1.0f) x += cr[j];
      else if (ep.beta != 0.0f) x += ep.beta * cr[j];
      x += brow;
      if (ep.bias_col) x += ep.bias_col[j];
      if (ep.relu) x = relu_clamp(x, ep.relu_max);  // NaN stays NaN, as in torch.relu
      cr[j] = x;
    }
  }
}

struct Config4x8 {
  static constexpr int MR = 4, NR = 8;
  static constexpr int64_t KC = 256, MC = 128, NC = 2048;
  static void ukernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                      int mr, int nr, const TileEpilogue& ep) {
    ukernel_scalar<4, 8>(kc, ap, bp, c, ldc, mr, nr, ep);
  }
};

}  // namespace gemm

PVE_REGISTER_KERNELS { register_kernel(gemm_f32, &gemm::gemm_f32<gemm::Config4x8>); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
