// AVX-512 SGEMM: a 14 x 32 register tile (28 zmm accumulators + 2 for the B
// row + 1 broadcast of A = 31 of 32 registers); 14 x 16 when N <= 16.
//
// Per k step: 2 aligned loads of B, 14 broadcasts of A, 28 FMAs. On a core
// with two 512-bit FMA pipes that is 14 cycles of FMA work against 16 loads,
// and 28 independent accumulators cover the 4-cycle FMA latency 3.5 times.
//
// Cache blocks (Zen 5: 48 KiB L1d, 1 MiB L2 per core, 32 MiB shared L3):
//   KC = 1024: each K block re-reads and re-writes every C tile and repacks
//              A, so a deep K block pays those costs rarely. The B micro-panel
//              (1024 x 32 x 4 B = 128 KiB) then streams from L2 instead of
//              sitting in L1, which Zen 5's 64 B/cycle L2 feeds easily: the
//              kernel needs 184 B per 14 cycles. Measured at 2048^3, one
//              thread: KC 256 -> ~200, 512 -> ~230, 1024 -> ~240 GFLOP/s.
//   MC = 112:  the packed A block (112 x 1024 x 4 B = 448 KiB) stays in L2
//              next to the B micro-panel passing through.
//   NC = 2048: the packed B block (1024 x 2048 x 4 B = 8 MiB) lives in L3.
#include <immintrin.h>

#include "kernels/gemm/gemm_driver.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace gemm {

template <int MR, int NV>
inline void ukernel_avx512(int64_t kc, const float* __restrict ap, const float* __restrict bp,
                           float* c, int64_t ldc, int mr, int nr, const TileEpilogue& epilogue) {
  // A local copy: C's stores may alias the caller's struct as far as the
  // compiler knows, and it would re-read every field after every store.
  const TileEpilogue ep = epilogue;
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();

  // Start pulling the C tile in now; it is needed only after the k loop.
  for (int i = 0; i < mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * NV - 1), _MM_HINT_T0);
  }

#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm512_load_ps(bp + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(ap[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
    }
    ap += MR;
    bp += 16 * NV;
  }

  // Masks for the columns of a partial tile: never touch C past column nr.
  __mmask16 mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    const int rem = nr - 16 * v;
    mask[v] = rem >= 16 ? __mmask16(0xFFFF) : rem > 0 ? __mmask16((1u << rem) - 1) : __mmask16(0);
  }
  const __m512 beta = _mm512_set1_ps(ep.beta);
  const __m512 zero = _mm512_setzero_ps();
  __m512 bias_col[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v)
    bias_col[v] = ep.bias_col ? _mm512_maskz_loadu_ps(mask[v], ep.bias_col + 16 * v) : zero;
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if (i >= mr) break;
    float* cr = c + i * ldc;
    const __m512 bias_row = ep.bias_row ? _mm512_set1_ps(ep.bias_row[i]) : zero;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m512 x = acc[i][v];
      if (ep.beta == 1.0f) {
        x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], cr + 16 * v));
      } else if (ep.beta != 0.0f) {
        x = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask[v], cr + 16 * v), x);
      }
      x = _mm512_add_ps(_mm512_add_ps(x, bias_row), bias_col[v]);
      // max(0, x): NaN stays NaN (vmaxps returns operand 2); the maskz form
      // avoids a GCC 12 false -Wmaybe-uninitialized in _mm512_max_ps.
      if (ep.relu) {
        x = _mm512_maskz_max_ps(__mmask16(0xFFFF), zero, x);
        if (ep.relu_max < INFINITY) x = _mm512_min_ps(_mm512_set1_ps(ep.relu_max), x);
      }
      _mm512_mask_storeu_ps(cr + 16 * v, mask[v], x);
    }
  }
}

struct Config14x32 {
  static constexpr int MR = 14, NR = 32;
  static constexpr int64_t KC = 1024, MC = 112, NC = 2048;
  static void ukernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                      int mr, int nr, const TileEpilogue& ep) {
    ukernel_avx512<14, 2>(kc, ap, bp, c, ldc, mr, nr, ep);
  }
};

// Narrow C (N <= 16, e.g. a classifier's last Linear layer): one zmm column,
// so a 32-wide tile would waste half or more of every FMA.
struct Config14x16 {
  static constexpr int MR = 14, NR = 16;
  static constexpr int64_t KC = 1024, MC = 112, NC = 2048;
  static void ukernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                      int mr, int nr, const TileEpilogue& ep) {
    ukernel_avx512<14, 1>(kc, ap, bp, c, ldc, mr, nr, ep);
  }
};

void gemm_f32_avx512(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                     float* c, int64_t ldc, const GemmEpilogue& ep, int num_threads) {
  if (n <= 16) {
    gemm_f32<Config14x16>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ep,
                          num_threads);
  } else {
    gemm_f32<Config14x32>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ep,
                          num_threads);
  }
}

}  // namespace gemm

PVE_REGISTER_KERNELS { register_kernel(gemm_f32, &gemm::gemm_f32_avx512); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
