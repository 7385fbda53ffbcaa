// Vec: the one SIMD type element-wise, pooling, norm and optimizer kernels are
// written against. Include it only from kernel sources (built by
// pve_add_kernel): it defines `Vec` inside pve::<isa> for the ISA the source is
// being compiled for, so each ISA build gets its own copy and none is shared.
//
//   AVX-512: 16 floats (__m512)   AVX2: 8 floats (__m256)   scalar: 1 float
//
// Tails: load_partial/store_partial touch only the first n lanes (masked on
// AVX-512 and AVX2, so a kernel never reads or writes past a buffer).
#pragma once

#ifndef PVE_KERNEL_NS
#error "csrc/simd/vec.h is for kernel sources compiled by pve_add_kernel"
#endif

#include <cmath>
#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace pve {
namespace PVE_KERNEL_NS {

#if defined(__AVX512F__)

struct Vec {
  static constexpr int kWidth = 16;
  __m512 v;
  Vec() = default;
  Vec(__m512 x) : v(x) {}
  static Vec zero() { return _mm512_setzero_ps(); }
  static Vec set1(float x) { return _mm512_set1_ps(x); }
  static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  static Vec load_partial(const float* p, int n) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p);
  }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  // Non-temporal store for streaming passes over buffers larger than cache;
  // p must be 64-byte aligned.
  void stream(float* p) const { _mm512_stream_ps(p, v); }
  void store_partial(float* p, int n) const {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v);
  }
  friend Vec operator+(Vec a, Vec b) { return _mm512_add_ps(a.v, b.v); }
  friend Vec operator-(Vec a, Vec b) { return _mm512_sub_ps(a.v, b.v); }
  friend Vec operator*(Vec a, Vec b) { return _mm512_mul_ps(a.v, b.v); }
  friend Vec operator/(Vec a, Vec b) { return _mm512_div_ps(a.v, b.v); }
  friend Vec operator-(Vec a) { return _mm512_xor_ps(a.v, _mm512_set1_ps(-0.0f)); }
};
inline Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a.v, b.v, c.v); }  // a*b+c
inline Vec fnmadd(Vec a, Vec b, Vec c) { return _mm512_fnmadd_ps(a.v, b.v, c.v); }  // c-a*b
// max/min return b where a is NaN (x86 semantics); kernels that must
// propagate NaN like torch check for it explicitly.
inline Vec max(Vec a, Vec b) { return _mm512_max_ps(a.v, b.v); }
inline Vec min(Vec a, Vec b) { return _mm512_min_ps(a.v, b.v); }
inline Vec sqrt(Vec a) { return _mm512_sqrt_ps(a.v); }
inline Vec abs(Vec a) { return _mm512_abs_ps(a.v); }
inline float reduce_add(Vec a) { return _mm512_reduce_add_ps(a.v); }
inline float reduce_max(Vec a) { return _mm512_reduce_max_ps(a.v); }
// `a` held in a register: the compiler may not fold its load into each
// instruction that uses it (a vector loaded once for several FMAs would
// otherwise be loaded again as a memory operand of every one).
inline Vec in_register(Vec a) {
  asm("" : "+v"(a.v));
  return a;
}

#elif defined(__AVX2__)

struct Vec {
  static constexpr int kWidth = 8;
  __m256 v;
  Vec() = default;
  Vec(__m256 x) : v(x) {}
  static __m256i tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Vec zero() { return _mm256_setzero_ps(); }
  static Vec set1(float x) { return _mm256_set1_ps(x); }
  static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  // Full vectors take the plain load/store: vmaskmovps stores are microcoded
  // (slow) on AMD cores, so callers may pass n == kWidth in hot loops.
  static Vec load_partial(const float* p, int n) {
    return n >= kWidth ? load(p) : Vec(_mm256_maskload_ps(p, tail_mask(n)));
  }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void stream(float* p) const { _mm256_stream_ps(p, v); }  // p 32-byte aligned
  void store_partial(float* p, int n) const {
    if (n >= kWidth) {
      store(p);
    } else {
      _mm256_maskstore_ps(p, tail_mask(n), v);
    }
  }
  friend Vec operator+(Vec a, Vec b) { return _mm256_add_ps(a.v, b.v); }
  friend Vec operator-(Vec a, Vec b) { return _mm256_sub_ps(a.v, b.v); }
  friend Vec operator*(Vec a, Vec b) { return _mm256_mul_ps(a.v, b.v); }
  friend Vec operator/(Vec a, Vec b) { return _mm256_div_ps(a.v, b.v); }
  friend Vec operator-(Vec a) { return _mm256_xor_ps(a.v, _mm256_set1_ps(-0.0f)); }
};
inline Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a.v, b.v, c.v); }
inline Vec fnmadd(Vec a, Vec b, Vec c) { return _mm256_fnmadd_ps(a.v, b.v, c.v); }
inline Vec max(Vec a, Vec b) { return _mm256_max_ps(a.v, b.v); }
inline Vec min(Vec a, Vec b) { return _mm256_min_ps(a.v, b.v); }
inline Vec sqrt(Vec a) { return _mm256_sqrt_ps(a.v); }
inline Vec abs(Vec a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v); }
inline float reduce_add(Vec a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float reduce_max(Vec a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline Vec in_register(Vec a) {
  asm("" : "+v"(a.v));
  return a;
}

#else  // scalar reference: one lane, plain C++

struct Vec {
  static constexpr int kWidth = 1;
  float v;
  Vec() = default;
  Vec(float x) : v(x) {}
  static Vec zero() { return 0.0f; }
  static Vec set1(float x) { return x; }
  static Vec load(const float* p) { return *p; }
  static Vec load_partial(const float* p, int n) { return n > 0 ? *p : 0.0f; }
  void store(float* p) const { *p = v; }
  void stream(float* p) const { *p = v; }
  void store_partial(float* p, int n) const {
    if (n > 0) *p = v;
  }
  friend Vec operator+(Vec a, Vec b) { return a.v + b.v; }
  friend Vec operator-(Vec a, Vec b) { return a.v - b.v; }
  friend Vec operator*(Vec a, Vec b) { return a.v * b.v; }
  friend Vec operator/(Vec a, Vec b) { return a.v / b.v; }
  friend Vec operator-(Vec a) { return -a.v; }
};
// No FMA in baseline x86-64: the scalar path rounds a*b and then +c, which the
// optimizer tests must allow for (torch's own CPU kernels use FMA where built).
inline Vec fmadd(Vec a, Vec b, Vec c) { return a.v * b.v + c.v; }
inline Vec fnmadd(Vec a, Vec b, Vec c) { return c.v - a.v * b.v; }
inline Vec max(Vec a, Vec b) { return a.v > b.v ? a.v : b.v; }
inline Vec min(Vec a, Vec b) { return a.v < b.v ? a.v : b.v; }
inline Vec sqrt(Vec a) { return std::sqrt(a.v); }
inline Vec abs(Vec a) { return std::fabs(a.v); }
inline float reduce_add(Vec a) { return a.v; }
inline float reduce_max(Vec a) { return a.v; }
inline Vec in_register(Vec a) { return a; }

#endif

// Makes this thread's non-temporal stores (Vec::stream) visible to other
// threads: call it before the barrier that ends a streaming region.
inline void stream_fence() {
#if defined(__AVX512F__) || defined(__AVX2__)
  _mm_sfence();
#endif
}

// min(max(x, 0), cap): ReLU (cap = +inf) or ReLU6 (cap = 6) as a convolution
// epilogue. NaN stays NaN, as in torch: max/min return their second operand
// when one is NaN (and the scalar forms compare the same way).
inline Vec relu_clamp(Vec x, Vec cap) { return min(cap, max(Vec::zero(), x)); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
