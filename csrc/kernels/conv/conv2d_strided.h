// Strided reads of one image row for the convolution kernels (include from
// kernel sources only: uses Vec). Stride 2 takes the even lanes of two
// vector loads; other strides are scalar.
#pragma once

#include <cstdint>

#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {

// p[0], p[2], ..., p[2L - 2]: the even elements of 2L consecutive floats.
inline Vec load_even(const float* p) {
#if defined(__AVX512F__)
  const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(_mm512_loadu_ps(p), idx, _mm512_loadu_ps(p + 16));
#elif defined(__AVX2__)
  const __m256 ab = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), 0x88);
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ab), 0xD8));
#else
  return Vec(p[0]);
#endif
}

// The first n (<= L) even elements p[0], p[2], ..., p[2n - 2], reading only
// those 2n - 1 floats (masked loads do not touch the rest).
inline Vec load_even_partial(const float* p, int n) {
#if defined(__AVX512F__)
  const int span = 2 * n - 1;
  const __mmask16 lo = static_cast<__mmask16>(span >= 16 ? 0xFFFF : (1u << span) - 1u);
  const __mmask16 hi = static_cast<__mmask16>(span > 16 ? (1u << (span - 16)) - 1u : 0u);
  const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(lo, p), idx,
                                _mm512_maskz_loadu_ps(hi, p + 16));
#elif defined(__AVX2__)
  const int span = 2 * n - 1;
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(span), lanes);
  const __m256i hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(span - 8), lanes);
  const __m256 ab = _mm256_shuffle_ps(_mm256_maskload_ps(p, lo), _mm256_maskload_ps(p + 8, hi),
                                      0x88);
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ab), 0xD8));
#else
  (void)n;
  return Vec(p[0]);
#endif
}

// d[t] = sp[t * stride] for t in [first, last); room: floats readable from sp
// (sp[2t .. 2t + 2L) is only loaded whole while 2(t + L) <= room; the rest
// masked), so nothing past the row is read.
inline void copy_strided(const float* sp, int64_t stride, int64_t first, int64_t last,
                         int64_t room, float* d) {
  int64_t t = first;
  if (stride == 1) {
    for (; t + Vec::kWidth <= last; t += Vec::kWidth) Vec::load(sp + t).store(d + t);
    if (t < last) {
      const int n = static_cast<int>(last - t);
      Vec::load_partial(sp + t, n).store_partial(d + t, n);
    }
    return;
  }
  if (stride == 2) {
    for (; t + Vec::kWidth <= last && 2 * (t + Vec::kWidth) <= room; t += Vec::kWidth)
      load_even(sp + 2 * t).store(d + t);
    while (t < last) {  // short runs and row ends: masked
      const int n = static_cast<int>((last - t) < Vec::kWidth ? (last - t) : Vec::kWidth);
      load_even_partial(sp + 2 * t, n).store_partial(d + t, n);
      t += n;
    }
    return;
  }
  for (; t < last; ++t) d[t] = sp[t * stride];
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
