// Helpers shared by the optimizer kernels (included only from kernel sources,
// so each ISA build gets its own copy inside pve::<isa>).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/optim/optim.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace optim_detail {

constexpr int kW = Vec::kWidth;

// Full vector when w == kW (a constant after inlining), masked tail otherwise.
inline Vec ld(const float* p, int w) { return w == kW ? Vec::load(p) : Vec::load_partial(p, w); }
inline void st(Vec v, float* p, int w) {
  if (w == kW) v.store(p);
  else v.store_partial(p, w);
}

// torch's lerp (ATen's lerp_vec): weight < 0.5 in magnitude -> a + w·(b − a),
// else b + (w − 1)·(b − a); one FMA either way on FMA builds.
struct Lerp {
  Vec coeff;
  bool small;
  explicit Lerp(float w) : coeff(Vec::set1(std::fabs(w) < 0.5f ? w : w - 1.0f)),
                           small(std::fabs(w) < 0.5f) {}
  Vec operator()(Vec a, Vec b) const { return fmadd(coeff, b - a, small ? a : b); }
};

// a·b + c with one rounding on every build: the scalar build's fmadd rounds
// a·b first, which overflows to inf where torch's fused addcmul stays finite
// (RMSprop's s − ḡ² with ḡ² beyond float's range: inf − inf = NaN there).
inline Vec fmadd_exact(Vec a, Vec b, Vec c) {
#if defined(__AVX512F__) || defined(__AVX2__)
  return fmadd(a, b, c);
#else
  return std::fma(a.v, b.v, c.v);
#endif
}

// max that returns NaN when either operand is NaN (torch.maximum); x86 max
// alone returns its second operand when either is NaN.
inline Vec max_nan(Vec a, Vec b) {
#if defined(__AVX512F__)
  const __mmask16 a_nan = _mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q);
  return _mm512_mask_blend_ps(a_nan, _mm512_max_ps(a.v, b.v), a.v);
#elif defined(__AVX2__)
  return _mm256_blendv_ps(_mm256_max_ps(a.v, b.v), a.v, _mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q));
#else
  return a.v != a.v ? a : (a.v > b.v ? a : b);
#endif
}

// Elements per thread below which another thread costs more than it saves
// (one fork/join is a few microseconds; 32K floats stream in about as long).
constexpr int64_t kMinPerThread = int64_t(1) << 15;

// Runs body(i, w) over [begin, end) in whole vectors (w == kW) plus one masked tail.
template <class Body>
inline void vec_range(int64_t begin, int64_t end, const Body& body) {
  int64_t i = begin;
  for (; i + kW <= end; i += kW) body(i, kW);
  if (i < end) body(i, static_cast<int>(end - i));
}

// Static split of [0, n) into one contiguous range per thread, each starting
// on a 16-float (64-byte) boundary, so threads never share a cache line and
// each streams its own range for the hardware prefetchers.
//
// Bodies capture by value ([=]) and each thread runs a local copy: the vector
// constants and flags then live in registers and GCC unswitches the flag tests
// out of the loop. Captured by reference they are memory that every float
// store may alias (__m512 is may_alias), so the loop reloaded and re-tested
// them per vector and ran 20-30% below a plain streaming loop on one core.
template <class Body>
inline void parallel_vec_for(int64_t n, int num_threads, const Body& body) {
  const int threads = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(num_threads, n / kMinPerThread)));
  if (threads <= 1) {
    const Body local = body;
    vec_range(0, n, local);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t lines = (n + 15) / 16;
    const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t begin = std::min(n, lines * id / nt * 16);
    const int64_t end = std::min(n, lines * (id + 1) / nt * 16);
    const Body local = body;
    vec_range(begin, end, local);
  }
}

// g after maximize and L2 weight decay, as every rule starts.
inline Vec effective_grad(Vec g, Vec p, bool maximize, float weight_decay) {
  if (maximize) g = -g;
  if (weight_decay != 0.0f) g = fmadd(p, Vec::set1(weight_decay), g);
  return g;
}

// The first half of Adam, AdamW, NAdam and RAdam, shared by all four: weight
// decay (decoupled: p *= 1 - lr*wd; else L2 into g), then the moments
// m = lerp(m, g, 1 - b1) and v = b2*v + (1 - b2)*g^2, stored back.
struct AdamMoments {
  Vec p, g, m, v;
};

struct AdamMomentRule {
  Lerp lerp;
  Vec beta2, one_minus_beta2, decay;
  bool maximize, decoupled;
  float l2;  // L2 weight decay folded into g (0 when decoupled or off)

  template <class Args>
  explicit AdamMomentRule(const Args& a)
      : lerp(a.lerp_weight), beta2(Vec::set1(a.beta2)), one_minus_beta2(Vec::set1(a.one_minus_beta2)),
        decay(Vec::set1(a.decay_factor)), maximize(a.maximize),
        decoupled(a.weight_decay != 0.0f && a.decoupled),
        l2(a.decoupled ? 0.0f : a.weight_decay) {}

  AdamMoments operator()(const float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                         int64_t i, int w) const {
    AdamMoments r;
    r.p = ld(param + i, w);
    if (decoupled) r.p = r.p * decay;
    r.g = effective_grad(ld(grad + i, w), r.p, maximize, l2);
    r.m = lerp(ld(exp_avg + i, w), r.g);
    r.v = fmadd(one_minus_beta2 * r.g, r.g, ld(exp_avg_sq + i, w) * beta2);
    st(r.m, exp_avg + i, w);
    st(r.v, exp_avg_sq + i, w);
    return r;
  }
};

}  // namespace optim_detail
}  // namespace PVE_KERNEL_NS
}  // namespace pve
