// Packing of GEMM operands into the panel layout the micro-kernels read.
//
// A panel holds R consecutive rows of op(A) (or R consecutive columns of
// op(B)) for kc values of k, stored k-major: dst[p * R + r]. Rows/columns past
// the matrix edge are zero, so a micro-kernel always runs its full MR x NR
// tile and only its stores are masked. Packing also applies alpha (to A), so
// the micro-kernel sees one layout whatever trans_a / trans_b / alpha are.
//
// Both operands reduce to two source patterns, with element (r, p) at
//   copy:      src[p * ld + r]   (A with trans_a, B without trans_b)
//   transpose: src[r * ld + p]   (A without trans_a, B with trans_b)
//
// Included by each ISA's kernel source inside its own namespace.
#pragma once

#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace pve {
namespace PVE_KERNEL_NS {
namespace gemm {

// dst[p * R + r] = scale * src[p * ld + r] for r < rows, 0 for rows <= r < R.
template <int R>
inline void pack_panel_copy(const float* __restrict src, int64_t ld, int rows, int64_t kc,
                            float scale, float* __restrict dst) {
  if (rows == R) {
    for (int64_t p = 0; p < kc; ++p) {
      const float* s = src + p * ld;
      float* d = dst + p * R;
#pragma GCC unroll 64
      for (int r = 0; r < R; ++r) d[r] = scale * s[r];
    }
    return;
  }
  for (int64_t p = 0; p < kc; ++p) {
    const float* s = src + p * ld;
    float* d = dst + p * R;
    for (int r = 0; r < rows; ++r) d[r] = scale * s[r];
    for (int r = rows; r < R; ++r) d[r] = 0.0f;
  }
}

#if defined(__AVX2__)
// Stores the first `width` floats of v (all 8 when width == 8).
inline void store_first(float* dst, __m256 v, int width) {
  if (width == 8) {
    _mm256_storeu_ps(dst, v);
  } else {
#if defined(__AVX512VL__)
    _mm256_mask_storeu_ps(dst, static_cast<__mmask8>((1u << width) - 1), v);
#else
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(dst, _mm256_cmpgt_epi32(_mm256_set1_epi32(width), lane), v);
#endif
  }
}

// dst[p * ds + r] = scale * src[r * ld + p] for r < rows (<= 8), p < 8: an
// 8 x 8 register transpose (24 shuffles instead of 64 scalar moves). Rows past
// `rows` are neither read nor written.
inline void transpose_8x8(const float* src, int64_t ld, int rows, __m256 scale, float* dst,
                          int64_t ds) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = i < rows ? _mm256_loadu_ps(src + i * ld) : _mm256_setzero_ps();
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  store_first(dst + 0 * ds, _mm256_mul_ps(scale, _mm256_permute2f128_ps(u0, u4, 0x20)), rows);
  store_first(dst + 1 * ds, _mm256_mul_ps(scale, _mm256_permute2f128_ps(u1, u5, 0x20)), rows);
  store_first(dst + 2 * ds, _mm256_mul_ps(scale, _mm256_permute2f128_ps(u2, u6, 0x20)), rows);
  store_first(dst + 3 * ds, _mm256_mul_ps(scale, _mm256_permute2f128_ps(u3, u7, 0x20)), rows);
  store_first(dst + 4 * ds, _mm256_mul_ps(scale, _mm256_permute2f128_ps(u0, u4, 0x31)), rows);
  store_first(dst + 5 * ds, _mm256_mul_ps(scale, _mm256_permute2f128_ps(u1, u5, 0x31)), rows);
  store_first(dst + 6 * ds, _mm256_mul_ps(scale, _mm256_permute2f128_ps(u2, u6, 0x31)), rows);
  store_first(dst + 7 * ds, _mm256_mul_ps(scale, _mm256_permute2f128_ps(u3, u7, 0x31)), rows);
}
#endif

// dst[p * R + r] = scale * src[r * ld + p] for r < rows, 0 for rows <= r < R.
template <int R>
inline void pack_panel_transpose(const float* __restrict src, int64_t ld, int rows, int64_t kc,
                                 float scale, float* __restrict dst) {
  int64_t p0 = 0;
#if defined(__AVX2__)
  // Groups of 8 k values go through register transposes, 8 rows at a time
  // (the last group may be partial); this keeps packing A (row-major) and
  // B^T (Linear weights) cheap next to the multiply.
  const __m256 vscale = _mm256_set1_ps(scale);
  const int64_t p_vec = kc & ~int64_t{7};
  for (int64_t p = 0; p < p_vec; p += 8) {
    for (int r0 = 0; r0 < rows; r0 += 8) {
      transpose_8x8(src + r0 * ld + p, ld, rows - r0 < 8 ? rows - r0 : 8, vscale,
                    dst + p * R + r0, R);
    }
    if (rows < R) {
      for (int64_t q = p; q < p + 8; ++q)
        for (int r = rows; r < R; ++r) dst[q * R + r] = 0.0f;
    }
  }
  p0 = p_vec;
#endif
  for (int64_t p = p0; p < kc; ++p) {
    float* d = dst + p * R;
    for (int r = 0; r < rows; ++r) d[r] = scale * src[r * ld + p];
    for (int r = rows; r < R; ++r) d[r] = 0.0f;
  }
}

// Packs rows [0, rows) of op(A) (a points at op(A)[i0, p0]) for kc values of k.
template <int MR>
inline void pack_a_panel(bool trans_a, const float* a, int64_t lda, int rows, int64_t kc,
                         float alpha, float* dst) {
  if (trans_a) {
    pack_panel_copy<MR>(a, lda, rows, kc, alpha, dst);
  } else {
    pack_panel_transpose<MR>(a, lda, rows, kc, alpha, dst);
  }
}

// Packs columns [0, cols) of op(B) (b points at op(B)[p0, j0]) for kc values of k.
template <int NR>
inline void pack_b_panel(bool trans_b, const float* b, int64_t ldb, int cols, int64_t kc,
                         float* dst) {
  if (trans_b) {
    pack_panel_transpose<NR>(b, ldb, cols, kc, 1.0f, dst);
  } else {
    pack_panel_copy<NR>(b, ldb, cols, kc, 1.0f, dst);
  }
}

}  // namespace gemm
}  // namespace PVE_KERNEL_NS
}  // namespace pve
