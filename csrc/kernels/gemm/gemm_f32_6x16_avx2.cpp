// AVX2 SGEMM: a 6 x 16 register tile (12 ymm accumulators + 2 for the B row
// + 1 broadcast of A = 15 of 16 registers).
//
// Per k step: 2 aligned loads of B, 6 broadcasts of A, 12 FMAs, i.e. 6 cycles
// on two 256-bit FMA pipes; 12 independent accumulators cover the 4-cycle
// FMA latency. Partial tiles use maskload/maskstore so C is never touched
// outside the caller's matrix.
//
// Cache blocks (Zen 5: 48 KiB L1d, 1 MiB L2 per core, 32 MiB shared L3):
//   KC = 384: one B micro-panel (384 x 16 x 4 B = 24 KiB) stays in L1 while
//             6 x 384 A panels (9 KiB) stream through.
//   MC = 384: the packed A block (384 x 384 x 4 B = 576 KiB) sits in L2.
//   NC = 4096: the packed B block (384 x 4096 x 4 B = 6 MiB) lives in L3.
#include <immintrin.h>

#include "kernels/gemm/gemm_driver.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace gemm {

template <int MR, int NV>
inline void ukernel_avx2(int64_t kc, const float* __restrict ap, const float* __restrict bp,
                         float* c, int64_t ldc, int mr, int nr, const TileEpilogue& epilogue) {
  // A local copy: C's stores may alias the caller's struct as far as the
  // compiler knows, and it would re-read every field after every store.
  const TileEpilogue ep = epilogue;
  __m256 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();

  for (int i = 0; i < mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 8 * NV - 1), _MM_HINT_T0);
  }

#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    __m256 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm256_load_ps(bp + 8 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(ap + i);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(a, b[v], acc[i][v]);
    }
    ap += MR;
    bp += 8 * NV;
  }

  const bool full = nr == 8 * NV;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) mask[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8 * v), lane);
  const __m256 beta = _mm256_set1_ps(ep.beta);
  const __m256 zero = _mm256_setzero_ps();
  __m256 bias_col[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    bias_col[v] = !ep.bias_col ? zero
                  : full       ? _mm256_loadu_ps(ep.bias_col + 8 * v)
                               : _mm256_maskload_ps(ep.bias_col + 8 * v, mask[v]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if (i >= mr) break;
    float* cr = c + i * ldc;
    const __m256 bias_row = ep.bias_row ? _mm256_set1_ps(ep.bias_row[i]) : zero;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m256 x = acc[i][v];
      if (ep.beta != 0.0f) {
        const __m256 old = full ? _mm256_loadu_ps(cr + 8 * v) : _mm256_maskload_ps(cr + 8 * v, mask[v]);
        x = ep.beta == 1.0f ? _mm256_add_ps(x, old) : _mm256_fmadd_ps(beta, old, x);
      }
      x = _mm256_add_ps(_mm256_add_ps(x, bias_row), bias_col[v]);
      if (ep.relu) {
        x = _mm256_max_ps(zero, x);  // NaN stays NaN (max/min return operand 2)
        if (ep.relu_max < INFINITY) x = _mm256_min_ps(_mm256_set1_ps(ep.relu_max), x);
      }
      if (full) {
        _mm256_storeu_ps(cr + 8 * v, x);
      } else {
        _mm256_maskstore_ps(cr + 8 * v, mask[v], x);
      }
    }
  }
}

struct Config6x16 {
  static constexpr int MR = 6, NR = 16;
  static constexpr int64_t KC = 384, MC = 384, NC = 4096;
  static void ukernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                      int mr, int nr, const TileEpilogue& ep) {
    ukernel_avx2<6, 2>(kc, ap, bp, c, ldc, mr, nr, ep);
  }
};

}  // namespace gemm

PVE_REGISTER_KERNELS { register_kernel(gemm_f32, &gemm::gemm_f32<gemm::Config6x16>); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
