// The `phase` family's shared pieces (kernel sources only, after conv2d.h:
// per-ISA namespace): the stride-phase geometry of an input, one phase row
// filled from the input, and the backward-weight pass, which lives in its own
// source (conv2d_phase_backward_weight.cpp) and is dispatched from
// conv2d_phase.cpp's `run`.
//
// Phase (a, b) of an input (stride sh x sw, zero-padded) is the plane
//     P[a][b][i][j] = xpad[i*sh + a][j*sw + b]        (hp x wp)
// so tap (r, q) of output pixel (oh, ow) reads phase ((r*dh) % sh, (q*dw) % sw)
// at row oh + r*dh/sh, column ow + q*dw/sw.
#pragma once

#include <cstdint>

#include "kernels/conv/conv2d.h"
#include "kernels/conv/conv2d_strided.h"

namespace pve {
namespace PVE_KERNEL_NS {

constexpr int64_t kPhaseMaxTaps = 64;
constexpr int64_t kPhaseMaxStride = 8;

struct PhaseSplit {
  int64_t sh, sw;    // phases per axis (the strides)
  int64_t hp, wp;    // rows and columns of a phase plane
  int64_t plane;     // hp * wp
  // Phase column j of column phase b reads input column j*sw + b - pad_left:
  // columns [first[b], last[b]) of every phase row lie inside the input row.
  int64_t first[kPhaseMaxStride], last[kPhaseMaxStride];
};

inline bool phase_split_ok(const Conv2dShape& s) {
  return s.kernel_h * s.kernel_w <= kPhaseMaxTaps && s.stride_h <= kPhaseMaxStride &&
         s.stride_w <= kPhaseMaxStride && s.out_h > 0 && s.out_w > 0 && s.in_h > 0 &&
         s.in_w > 0 && s.in_channels > 0 && s.out_channels > 0;
}

// Shapes every pass of the family runs (forward, backward-data and
// backward-weight alike): ungrouped, within the phase split's limits.
inline bool phase_family_ok(const Conv2dShape& s) { return s.groups == 1 && phase_split_ok(s); }

inline PhaseSplit phase_split(const Conv2dShape& s) {
  PhaseSplit g;
  g.sh = s.stride_h;
  g.sw = s.stride_w;
  g.hp = s.out_h + (s.kernel_h - 1) * s.dilation_h / g.sh;
  g.wp = s.out_w + (s.kernel_w - 1) * s.dilation_w / g.sw;
  g.plane = g.hp * g.wp;
  for (int64_t b = 0; b < g.sw; ++b) {
    const int64_t off = b - s.pad_left;
    int64_t first = off >= 0 ? 0 : (-off + g.sw - 1) / g.sw;
    int64_t last = s.in_w - 1 - off < 0 ? 0 : (s.in_w - 1 - off) / g.sw + 1;
    if (first > g.wp) first = g.wp;
    if (last > g.wp) last = g.wp;
    if (last < first) last = first;
    g.first[b] = first;
    g.last[b] = last;
  }
  return g;
}

// Per tap (r, q): the offset of what it reads from the tile's pixel, in
// pixels of one channel's phases (phase plane, row and column).
inline void phase_tap_offsets(const Conv2dShape& s, const PhaseSplit& g, int64_t* tapoff) {
  for (int64_t r = 0; r < s.kernel_h; ++r) {
    for (int64_t q = 0; q < s.kernel_w; ++q) {
      const int64_t dy = r * s.dilation_h, dx = q * s.dilation_w;
      tapoff[r * s.kernel_w + q] = ((dy % g.sh) * g.sw + dx % g.sw) * g.plane +
                                   (dy / g.sh) * g.wp + dx / g.sw;
    }
  }
}

// Row i of phase (a, b) of one input channel (xc: its plane) into d (wp floats).
inline void phase_row(const Conv2dShape& s, const PhaseSplit& g, const float* xc, int64_t a,
                      int64_t b, int64_t i, float* d) {
  const int64_t ih = i * g.sh + a - s.pad_top;
  const bool inside = ih >= 0 && ih < s.in_h;
  const int64_t lo = inside ? g.first[b] : 0, hi = inside ? g.last[b] : 0;
  for (int64_t j = 0; j < lo; ++j) d[j] = 0.0f;
  if (inside) {
    const int64_t off = b - s.pad_left;
    copy_strided(xc + ih * s.in_w + off, g.sw, lo, hi, s.in_w - off, d);
  }
  for (int64_t j = hi; j < g.wp; ++j) d[j] = 0.0f;
}

// Backward-weight over the phases (conv2d_phase_backward_weight.cpp): scratch
// floats (-1: cannot run the shape) and the pass.
int64_t phase_backward_weight_workspace(const Conv2dShape& s, int threads);
void phase_backward_weight(const Conv2dArgs& a);

}  // namespace PVE_KERNEL_NS
}  // namespace pve
