// Compare/select helpers, strided loads and vectorized transcendental functions
// on top of Vec (csrc/simd/vec.h). Like vec.h this is included only from kernel
// sources, so each ISA build gets its own copy inside pve::<isa>.
//
//   Mask                      per-lane predicate (__mmask16, a lane-wide __m256, bool)
//   cmp_gt/cmp_ge/cmp_lt/cmp_le/cmp_eq/is_nan, mask_or, mask_and, select(m, a, b) = m ? a : b
//   unordered(a, b) (a or b NaN), any_lane(m)
//   all_true(), and_ordered(m, a, b) (m where neither a nor b is NaN: one
//                             instruction on AVX-512), all_lanes(m)
//   load_strided(p, s)        lanes p[0], p[s], p[2s], ...; reads no element it does not return
//   reduce_add_lanes(v)       lane i = horizontal sum of v[i], for W vectors at once
//   load_fill(p, n, f)        p[0..n-1], then f in the other lanes (reads only those n)
//   deinterleave(lo, hi, e, o)  even / odd elements of the 2W floats lo:hi
//   shift_in(prev, cur)       [prev[W-1], cur[0], ..., cur[W-2]]
//   max_propagate_nan(a, b)   max that returns NaN when either operand is NaN
//   lane_iota()               0, 1, ..., W-1
//   store_index(d, base, off, n)  d[l] = base + (int64) off[l] for the first n lanes
//                             (off holds exact integers, |off| < 2^24)
//   stream_index(d, off, n)   d[l] = (int64) off[l], lanes 0..n-1; the 64-byte lines
//                             they fill wholly with non-temporal stores (d 64-byte
//                             aligned), the rest with plain ones
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
inline Mask cmp_eq(Vec a, Vec b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_EQ_OQ); }
inline Mask is_nan(Vec a) { return _mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q); }
inline Mask mask_or(Mask a, Mask b) { return static_cast<Mask>(a | b); }
inline Mask mask_and(Mask a, Mask b) { return static_cast<Mask>(a & b); }
inline Mask unordered(Vec a, Vec b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_UNORD_Q); }
inline bool any_lane(Mask m) { return m != 0; }
inline Mask all_true() { return static_cast<Mask>(0xFFFF); }
inline Mask and_ordered(Mask m, Vec a, Vec b) { return _mm512_mask_cmp_ps_mask(m, a.v, b.v, _CMP_ORD_Q); }
inline bool all_lanes(Mask m) { return m == 0xFFFF; }
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

// Lane i of the result = horizontal sum of v[i], i < 16: a 4-level
// shuffle/add tree, about 2 shuffles and 1 add per input vector. The tree
// leaves a 4x4 transpose of the lane order, so the inputs are taken in the
// transposed order (slot m reads v[4 * (m % 4) + m / 4]).
inline Vec reduce_add_lanes(const Vec* v) {
  auto in = [v](int m) { return v[4 * (m % 4) + m / 4].v; };
  __m512 s[8], t[4], u[2];
  for (int i = 0; i < 8; ++i) {  // 256-bit halves: lanes 0-7 from in(2i), 8-15 from in(2i+1)
    const __m512 a = in(2 * i), b = in(2 * i + 1);
    s[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  }
  for (int i = 0; i < 4; ++i)  // 128-bit blocks: one 4-lane partial per input
    t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i)
    u[i] = _mm512_add_ps(_mm512_unpacklo_ps(t[2 * i], t[2 * i + 1]),
                         _mm512_unpackhi_ps(t[2 * i], t[2 * i + 1]));
  return _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], 0x44), _mm512_shuffle_ps(u[0], u[1], 0xEE));
}
inline Vec load_fill(const float* p, int n, float fill) {
  if (n >= 16) return Vec::load(p);
  return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), static_cast<__mmask16>((1u << n) - 1u), p);
}
// even = lo[0], lo[2], ..., hi[14]; odd = lo[1], lo[3], ..., hi[15].
inline void deinterleave(Vec lo, Vec hi, Vec* even, Vec* odd) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  *even = _mm512_permutex2var_ps(lo.v, ie, hi.v);
  *odd = _mm512_permutex2var_ps(lo.v, io, hi.v);
}
inline Vec shift_in(Vec prev, Vec cur) {
  return _mm512_castsi512_ps(
      _mm512_alignr_epi32(_mm512_castps_si512(cur.v), _mm512_castps_si512(prev.v), 15));
}
// vmaxps returns its second operand when either is NaN, so it keeps b's NaN
// and the blend keeps a's. (A merge-masked vmaxps instead of the blend was 2x
// slower in the max-pool loop on Zen 5.)
inline Vec max_propagate_nan(Vec a, Vec b) { return select(is_nan(a), a, max(a, b)); }
inline Vec lane_iota() {
  return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
inline void store_index(int64_t* dst, int64_t base, Vec off, int n) {
  const __m512i i32 = _mm512_cvttps_epi32(off.v);
  const __m512i b = _mm512_set1_epi64(base);
  const __m512i lo = _mm512_add_epi64(b, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(i32)));
  const __m512i hi = _mm512_add_epi64(b, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(i32, 1)));
  if (n >= 16) {
    _mm512_storeu_si512(dst, lo);
    _mm512_storeu_si512(dst + 8, hi);
  } else {
    const unsigned m = (1u << n) - 1u;
    _mm512_mask_storeu_epi64(dst, static_cast<__mmask8>(m & 0xFF), lo);
    _mm512_mask_storeu_epi64(dst + 8, static_cast<__mmask8>(m >> 8), hi);
  }
}
inline void stream_index(int64_t* dst, Vec off, int n) {
  const __m512i i32 = _mm512_cvttps_epi32(off.v);
  const __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(i32));
  const __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(i32, 1));
  if (n >= 8) {
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst), lo);
  } else {
    _mm512_mask_storeu_epi64(dst, static_cast<__mmask8>((1u << n) - 1u), lo);
  }
  if (n >= 16) {
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + 8), hi);
  } else if (n > 8) {
    _mm512_mask_storeu_epi64(dst + 8, static_cast<__mmask8>((1u << (n - 8)) - 1u), hi);
  }
}

#elif defined(__AVX2__)

using Mask = __m256;  // all-ones lanes where true
inline Mask cmp_gt(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ); }
inline Mask cmp_ge(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_GE_OQ); }
inline Mask cmp_lt(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ); }
inline Mask cmp_le(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_LE_OQ); }
inline Mask cmp_eq(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_EQ_OQ); }
inline Mask is_nan(Vec a) { return _mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q); }
inline Mask mask_or(Mask a, Mask b) { return _mm256_or_ps(a, b); }
inline Mask mask_and(Mask a, Mask b) { return _mm256_and_ps(a, b); }
inline Mask unordered(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_UNORD_Q); }
inline bool any_lane(Mask m) { return _mm256_movemask_ps(m) != 0; }
inline Mask all_true() { return _mm256_castsi256_ps(_mm256_set1_epi32(-1)); }
inline Mask and_ordered(Mask m, Vec a, Vec b) { return _mm256_and_ps(m, _mm256_cmp_ps(a.v, b.v, _CMP_ORD_Q)); }
inline bool all_lanes(Mask m) { return _mm256_movemask_ps(m) == 0xFF; }
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

// Lane i of the result = horizontal sum of v[i], i < 8 (3-level tree; slot m
// reads v[4 * (m % 2) + m / 2] so the result comes out in order).
inline Vec reduce_add_lanes(const Vec* v) {
  auto in = [v](int m) { return v[4 * (m % 2) + m / 2].v; };
  __m256 s[4], u[2];
  for (int i = 0; i < 4; ++i) {
    const __m256 a = in(2 * i), b = in(2 * i + 1);
    s[i] = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
  }
  for (int i = 0; i < 2; ++i)
    u[i] = _mm256_add_ps(_mm256_unpacklo_ps(s[2 * i], s[2 * i + 1]),
                         _mm256_unpackhi_ps(s[2 * i], s[2 * i + 1]));
  return _mm256_add_ps(_mm256_shuffle_ps(u[0], u[1], 0x44), _mm256_shuffle_ps(u[0], u[1], 0xEE));
}
inline Vec load_fill(const float* p, int n, float fill) {
  if (n >= 8) return Vec::load(p);
  const __m256i m = Vec::tail_mask(n);
  return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
inline void deinterleave(Vec lo, Vec hi, Vec* even, Vec* odd) {
  // [l0 l2 h0 h2 | l4 l6 h4 h6] -> [l0 l2 l4 l6 h0 h2 h4 h6]
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo.v, hi.v, 0x88)), 0xD8));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo.v, hi.v, 0xDD)), 0xD8));
}
inline Vec shift_in(Vec prev, Vec cur) {
  const __m256i rot = _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6);
  return _mm256_blend_ps(_mm256_permutevar8x32_ps(cur.v, rot), _mm256_permutevar8x32_ps(prev.v, rot), 0x01);
}
inline Vec max_propagate_nan(Vec a, Vec b) { return select(is_nan(a), a, max(a, b)); }
inline Vec lane_iota() { return _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7); }
inline void store_index(int64_t* dst, int64_t base, Vec off, int n) {
  const __m256i i32 = _mm256_cvttps_epi32(off.v);
  const __m256i b = _mm256_set1_epi64x(base);
  const __m256i lo = _mm256_add_epi64(b, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(i32)));
  const __m256i hi = _mm256_add_epi64(b, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(i32, 1)));
  if (n >= 8) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 4), hi);
  } else {
    alignas(32) int64_t tmp[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), lo);
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 4), hi);
    for (int l = 0; l < n; ++l) dst[l] = tmp[l];
  }
}
inline void stream_index(int64_t* dst, Vec off, int n) {
  if (n < 8) {
    store_index(dst, 0, off, n);
    return;
  }
  const __m256i i32 = _mm256_cvttps_epi32(off.v);
  _mm256_stream_si256(reinterpret_cast<__m256i*>(dst), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(i32)));
  _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + 4),
                      _mm256_cvtepi32_epi64(_mm256_extracti128_si256(i32, 1)));
}

#else

using Mask = bool;
inline Mask cmp_gt(Vec a, Vec b) { return a.v > b.v; }
inline Mask cmp_ge(Vec a, Vec b) { return a.v >= b.v; }
inline Mask cmp_lt(Vec a, Vec b) { return a.v < b.v; }
inline Mask cmp_le(Vec a, Vec b) { return a.v <= b.v; }
inline Mask cmp_eq(Vec a, Vec b) { return a.v == b.v; }
inline Mask is_nan(Vec a) { return a.v != a.v; }
inline Mask mask_or(Mask a, Mask b) { return a || b; }
inline Mask mask_and(Mask a, Mask b) { return a && b; }
inline Mask unordered(Vec a, Vec b) { return a.v != a.v || b.v != b.v; }
inline bool any_lane(Mask m) { return m; }
inline Mask all_true() { return true; }
inline Mask and_ordered(Mask m, Vec a, Vec b) { return m && a.v == a.v && b.v == b.v; }
inline bool all_lanes(Mask m) { return m; }
inline Vec select(Mask m, Vec a, Vec b) { return m ? a : b; }
inline Vec load_strided(const float* p, int stride) { return *p; }

inline Vec reduce_add_lanes(const Vec* v) { return v[0]; }
inline Vec load_fill(const float* p, int n, float fill) { return n > 0 ? *p : fill; }
inline void deinterleave(Vec lo, Vec hi, Vec* even, Vec* odd) {
  *even = lo;
  *odd = hi;
}
inline Vec shift_in(Vec prev, Vec cur) { return prev; }
inline Vec max_propagate_nan(Vec a, Vec b) { return a.v != a.v ? a : (b.v != b.v ? b : max(a, b)); }
inline Vec lane_iota() { return 0.0f; }
inline void store_index(int64_t* dst, int64_t base, Vec off, int n) {
  if (n > 0) *dst = base + static_cast<int64_t>(off.v);
}
inline void stream_index(int64_t* dst, Vec off, int n) { store_index(dst, 0, off, n); }

#endif

#if defined(__AVX512F__) || defined(__AVX2__)

// exp(xc) = 2^n * (returned polynomial), for xc already clamped: range
// reduction xc = n ln2 + r, |r| <= ln2/2, degree-6 polynomial in r (Cephes
// expf coefficients).
inline Vec exp_reduced(Vec xc, Vec* n) {
  *n = round_nearest(xc * Vec::set1(1.44269504088896341f));
  Vec r = fnmadd(*n, Vec::set1(0.693359375f), xc);
  r = fnmadd(*n, Vec::set1(-2.12194440e-4f), r);
  Vec p = Vec::set1(1.9875691500e-4f);
  p = fmadd(p, r, Vec::set1(1.3981999507e-3f));
  p = fmadd(p, r, Vec::set1(8.3334519073e-3f));
  p = fmadd(p, r, Vec::set1(4.1665795894e-2f));
  p = fmadd(p, r, Vec::set1(1.6666665459e-1f));
  p = fmadd(p, r, Vec::set1(5.0000001201e-1f));
  return fmadd(p, r * r, r + Vec::set1(1.0f));
}

// exp(x), the scale 2^n built in the exponent bits.
inline Vec exp(Vec x) {
  const Vec hi = Vec::set1(88.3762626647949f), lo = Vec::set1(-86.6f);  // 2^(n-1) stays a normal number
  // (below lo the result, < 2.2e-38, is flushed to 0)
  // min/max return their second operand for NaN, so NaN survives the clamp.
  Vec n;
  Vec p = exp_reduced(max(lo, min(hi, x)), &n);
  // n may be 128 at the top of the range: scale by 2^(n-1) and then by 2.
  Vec y = p * pow2i(n - Vec::set1(1.0f)) * Vec::set1(2.0f);
  y = select(cmp_gt(x, hi), Vec::set1(std::numeric_limits<float>::infinity()), y);
  return select(cmp_lt(x, lo), Vec::zero(), y);
}

// exp(x) for x <= 0 (or NaN), e.g. x - max in a softmax: exp's steps without
// its overflow side (no upper clamp; 2^n is a normal number for every n here).
// Equal to exp(x) except below -86.3, where exp scales through a subnormal;
// meaningless (but harmless) for x > 0.
inline Vec exp_nonpositive(Vec x) {
  const Vec lo = Vec::set1(-86.6f);
  Vec n;
  Vec p = exp_reduced(max(lo, x), &n);  // NaN survives (max returns its second operand)
  return select(cmp_lt(x, lo), Vec::zero(), p * pow2i(n));
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
inline Vec exp_nonpositive(Vec x) { return std::exp(x.v); }
inline Vec tanh(Vec x) { return std::tanh(x.v); }
inline Vec erf(Vec x) { return std::erf(x.v); }

#endif

// 1 / (1 + e^{-x}); saturates cleanly to 0 and 1.
inline Vec sigmoid(Vec x) { return Vec::set1(1.0f) / (Vec::set1(1.0f) + exp(-x)); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
