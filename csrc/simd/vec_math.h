// Compare/select helpers, strided loads and vectorized transcendental functions
// on top of Vec (csrc/simd/vec.h). Like vec.h this is included only from kernel
// sources, so each ISA build gets its own copy inside pve::<isa>.
//
//   Mask                      per-lane predicate (__mmask16, a lane-wide __m256, bool)
//   cmp_gt/cmp_ge/cmp_lt/cmp_le/is_nan, mask_or, mask_and, select(m, a, b) = m ? a : b
//   load_strided(p, s)        lanes p[0], p[s], p[2s], ...; reads no element it does not return
//   reduce_add4(a, b, c, d, out)  four horizontal sums at once
//   exp, tanh, erf, sigmoid   scalar build: the <cmath> functions (the reference);
//                             SIMD builds: Cephes-style polynomials, a few ulp
//                             (erf: <= ~3e-7 absolute), NaN in -> NaN out.
#pragma once

#include <limits>

#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {

#if defined(__AVX512F__)

using Mask = __mmask16;
inline Mask cmp_gt(Vec a, Vec b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ); }
inline Mask cmp_ge(Vec a, Vec b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_GE_OQ); }
inline Mask cmp_lt(Vec a, Vec b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ); }
inline Mask cmp_le(Vec a, Vec b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_LE_OQ); }
inline Mask is_nan(Vec a) { return _mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q); }
inline Mask mask_or(Mask a, Mask b) { return static_cast<Mask>(a | b); }
inline Mask mask_and(Mask a, Mask b) { return static_cast<Mask>(a & b); }
inline Vec select(Mask m, Vec a, Vec b) { return _mm512_mask_blend_ps(m, b.v, a.v); }
inline Vec round_nearest(Vec a) {
  return _mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// 2^n for integral-valued n in [-126, 127].
inline Vec pow2i(Vec n) {
  __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127));
  return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
inline Vec load_strided(const float* p, int stride) {
  if (stride == 1) return Vec::load(p);
  if (stride == 2) {
    // Two loads (the second masked to the 15 lanes needed: p[16..30]) and one
    // cross-register permute picking the even elements.
    __m512 lo = _mm512_loadu_ps(p);
    __m512 hi = _mm512_maskz_loadu_ps(static_cast<__mmask16>(0x7FFF), p + 16);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(lo, even, hi);
  }
  const __m512i idx = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(stride));
  return _mm512_i32gather_ps(idx, p, 4);
}


// out[0..3] = horizontal sums of a, b, c, d (one shuffle tree for four vectors).
inline void reduce_add4(Vec a, Vec b, Vec c, Vec d, float* out) {
  auto half = [](__m512 v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  };
  __m128 ab = _mm_hadd_ps(half(a.v), half(b.v));
  __m128 cd = _mm_hadd_ps(half(c.v), half(d.v));
  _mm_storeu_ps(out, _mm_hadd_ps(ab, cd));
}

#elif defined(__AVX2__)

using Mask = __m256;  // all-ones lanes where true
inline Mask cmp_gt(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ); }
inline Mask cmp_ge(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_GE_OQ); }
inline Mask cmp_lt(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ); }
inline Mask cmp_le(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_LE_OQ); }
inline Mask is_nan(Vec a) { return _mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q); }
inline Mask mask_or(Mask a, Mask b) { return _mm256_or_ps(a, b); }
inline Mask mask_and(Mask a, Mask b) { return _mm256_and_ps(a, b); }
inline Vec select(Mask m, Vec a, Vec b) { return _mm256_blendv_ps(b.v, a.v, m); }
inline Vec round_nearest(Vec a) {
  return _mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
inline Vec pow2i(Vec n) {
  __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
inline Vec load_strided(const float* p, int stride) {
  if (stride == 1) return Vec::load(p);
  if (stride == 2) {
    __m256 lo = _mm256_loadu_ps(p);
    __m256 hi = _mm256_maskload_ps(p + 8, Vec::tail_mask(7));  // p[8..14] only
    // [a0 a2 b0 b2 | a4 a6 b4 b6] -> [a0 a2 a4 a6 b0 b2 b4 b6]
    __m256 sh = _mm256_shuffle_ps(lo, hi, 0x88);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(sh), 0xD8));
  }
  const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                         _mm256_set1_epi32(stride));
  return _mm256_i32gather_ps(p, idx, 4);
}


inline void reduce_add4(Vec a, Vec b, Vec c, Vec d, float* out) {
  auto half = [](__m256 v) { return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); };
  __m128 ab = _mm_hadd_ps(half(a.v), half(b.v));
  __m128 cd = _mm_hadd_ps(half(c.v), half(d.v));
  _mm_storeu_ps(out, _mm_hadd_ps(ab, cd));
}

#else

using Mask = bool;
inline Mask cmp_gt(Vec a, Vec b) { return a.v > b.v; }
inline Mask cmp_ge(Vec a, Vec b) { return a.v >= b.v; }
inline Mask cmp_lt(Vec a, Vec b) { return a.v < b.v; }
inline Mask cmp_le(Vec a, Vec b) { return a.v <= b.v; }
inline Mask is_nan(Vec a) { return a.v != a.v; }
inline Mask mask_or(Mask a, Mask b) { return a || b; }
inline Mask mask_and(Mask a, Mask b) { return a && b; }
inline Vec select(Mask m, Vec a, Vec b) { return m ? a : b; }
inline Vec load_strided(const float* p, int stride) { return *p; }


inline void reduce_add4(Vec a, Vec b, Vec c, Vec d, float* out) {
  out[0] = a.v;
  out[1] = b.v;
  out[2] = c.v;
  out[3] = d.v;
}

#endif

#if defined(__AVX512F__) || defined(__AVX2__)

// exp(x): range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial
// (Cephes expf coefficients), scale by 2^n built in the exponent bits.
inline Vec exp(Vec x) {
  const Vec hi = Vec::set1(88.3762626647949f), lo = Vec::set1(-86.6f);  // 2^(n-1) stays a normal number
  // (below lo the result, < 2.2e-38, is flushed to 0)
  // min/max return their second operand for NaN, so NaN survives the clamp.
  Vec xc = max(lo, min(hi, x));
  Vec n = round_nearest(xc * Vec::set1(1.44269504088896341f));
  // n may be 128 at the top of the range: scale by 2^(n-1) and then by 2.
  Vec r = fnmadd(n, Vec::set1(0.693359375f), xc);
  r = fnmadd(n, Vec::set1(-2.12194440e-4f), r);
  Vec p = Vec::set1(1.9875691500e-4f);
  p = fmadd(p, r, Vec::set1(1.3981999507e-3f));
  p = fmadd(p, r, Vec::set1(8.3334519073e-3f));
  p = fmadd(p, r, Vec::set1(4.1665795894e-2f));
  p = fmadd(p, r, Vec::set1(1.6666665459e-1f));
  p = fmadd(p, r, Vec::set1(5.0000001201e-1f));
  p = fmadd(p, r * r, r + Vec::set1(1.0f));
  Vec y = p * pow2i(n - Vec::set1(1.0f)) * Vec::set1(2.0f);
  y = select(cmp_gt(x, hi), Vec::set1(std::numeric_limits<float>::infinity()), y);
  return select(cmp_lt(x, lo), Vec::zero(), y);
}

// tanh: odd polynomial for |x| < 0.625 (Cephes tanhf), else 1 - 2/(e^{2|x|}+1).
inline Vec tanh(Vec x) {
  Vec ax = abs(x);
  Vec s = x * x;
  Vec p = Vec::set1(-5.70498872745e-3f);
  p = fmadd(p, s, Vec::set1(2.06390887954e-2f));
  p = fmadd(p, s, Vec::set1(-5.37397155531e-2f));
  p = fmadd(p, s, Vec::set1(1.33314422036e-1f));
  p = fmadd(p, s, Vec::set1(-3.33332819422e-1f));
  Vec small = fmadd(p * s, x, x);
  Vec e = exp(ax + ax);
  Vec large = Vec::set1(1.0f) - Vec::set1(2.0f) / (e + Vec::set1(1.0f));
  large = select(cmp_lt(x, Vec::zero()), -large, large);
  return select(cmp_lt(ax, Vec::set1(0.625f)), small, large);
}

// erf: Taylor series to x^13 for |x| < 0.5 (relative error < 1e-8), else
// Abramowitz-Stegun 7.1.26 (absolute error 1.5e-7 where erf > 0.52).
inline Vec erf(Vec x) {
  Vec ax = abs(x);
  Vec s = x * x;
  Vec p = Vec::set1(1.0f / 9360.0f);
  p = fmadd(p, s, Vec::set1(-1.0f / 1320.0f));
  p = fmadd(p, s, Vec::set1(1.0f / 216.0f));
  p = fmadd(p, s, Vec::set1(-1.0f / 42.0f));
  p = fmadd(p, s, Vec::set1(1.0f / 10.0f));
  p = fmadd(p, s, Vec::set1(-1.0f / 3.0f));
  p = fmadd(p, s, Vec::set1(1.0f));
  Vec small = p * x * Vec::set1(1.1283791670955126f);
  Vec t = Vec::set1(1.0f) / fmadd(Vec::set1(0.3275911f), ax, Vec::set1(1.0f));
  Vec q = Vec::set1(1.061405429f);
  q = fmadd(q, t, Vec::set1(-1.453152027f));
  q = fmadd(q, t, Vec::set1(1.421413741f));
  q = fmadd(q, t, Vec::set1(-0.284496736f));
  q = fmadd(q, t, Vec::set1(0.254829592f));
  Vec large = fnmadd(q * t, exp(-s), Vec::set1(1.0f));
  large = select(cmp_lt(x, Vec::zero()), -large, large);
  return select(cmp_lt(ax, Vec::set1(0.5f)), small, large);
}

#else

inline Vec exp(Vec x) { return std::exp(x.v); }
inline Vec tanh(Vec x) { return std::tanh(x.v); }
inline Vec erf(Vec x) { return std::erf(x.v); }

#endif

// 1 / (1 + e^{-x}); saturates cleanly to 0 and 1.
inline Vec sigmoid(Vec x) { return Vec::set1(1.0f) / (Vec::set1(1.0f) + exp(-x)); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
