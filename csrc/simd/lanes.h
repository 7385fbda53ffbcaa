// Lane masks: loads and stores of lanes [lo, hi) of one vector only, for rows
// whose ends fall inside a vector (the columns outside an image). Masked lanes
// are never touched, so p may point before or past the row it reads. Build a
// mask once per block and reuse it. Kernel sources only, like vec.h.
#pragma once

#include <cstdint>

#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {

#if defined(__AVX512F__)
using LaneMask = __mmask16;
#elif defined(__AVX2__)
struct LaneMask {
  __m256i m;
  bool full;  // all lanes: plain load/store (vmaskmovps stores are microcoded on AMD)
};
#else
using LaneMask = bool;
#endif

// Lanes [lo, hi), both clamped to [0, kWidth]; loads give zero elsewhere.
inline LaneMask lane_mask(int64_t lo, int64_t hi) {
  constexpr int64_t W = Vec::kWidth;
  lo = lo < 0 ? 0 : lo;
  hi = hi > W ? W : hi;
  if (hi < lo) hi = lo;
#if defined(__AVX512F__)
  return static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
#elif defined(__AVX2__)
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return {_mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(lo)), iota),
                              _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(hi)), iota)),
          lo == 0 && hi == W};
#else
  return lo < hi;
#endif
}

inline Vec load_lanes(const float* p, const LaneMask& m) {
#if defined(__AVX512F__)
  return _mm512_maskz_loadu_ps(m, p);
#elif defined(__AVX2__)
  return m.full ? Vec::load(p) : Vec(_mm256_maskload_ps(p, m.m));
#else
  return m ? *p : 0.0f;
#endif
}

inline void store_lanes(Vec v, float* p, const LaneMask& m) {
#if defined(__AVX512F__)
  _mm512_mask_storeu_ps(p, m, v.v);
#elif defined(__AVX2__)
  if (m.full) v.store(p);
  else _mm256_maskstore_ps(p, m.m, v.v);
#else
  if (m) *p = v.v;
#endif
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
