// Depthwise convolution (groups == in_channels, any channel multiplier),
// direct: one plane at a time, SIMD along the output row.
//
// Each input plane is first copied into a zero-padded scratch plane whose
// rows are split into `stride_w` phases (column j goes to phase j % stride_w
// at index j / stride_w; for stride 1 this is just the padded row). Then, for
// every stride and dilation, the pixels one kernel tap needs for consecutive
// outputs are consecutive in one phase: each tap is a vector load + FMA at a
// fixed offset, with no branches for padding. 3x3 and 5x5 are compiled with
// the taps unrolled and the weights held in registers; 3x3 has its own loops
// on AVX-512 (stride 1, register shifts) and AVX2 (stride 1 and 2, input rows
// walked once per block of output rows).
//
// Backward-data with stride 1 is the same kernel run on the output gradient
// with the kernel flipped (a full correlation); with larger strides it
// scatters into the phase layout and copies back. Backward-weight makes one
// pass per plane with one accumulator per tap; 3x3 and 5x5 with stride 1 and
// no dilation read the input plane directly, several gradient rows at a time.
// Threads split (image, channel) planes, or output channels for
// backward-weight (each owns its gradients).
#include <algorithm>
#include <cstring>

#include <omp.h>

#include "kernels/conv/conv2d.h"
#include "kernels/conv/conv2d_backward_data_shape.h"
#include "kernels/conv/conv2d_bias_gradient.h"
#include "simd/lanes.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int64_t L = Vec::kWidth;
constexpr int kMaxTaps = 64;  // kernels up to 8x8 use the precomputed-offset path

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

bool is_depthwise(const Conv2dShape& s) {
  return s.groups == s.in_channels && s.groups >= 1 && s.out_channels % s.in_channels == 0;
}

// Geometry of one phase-split padded plane for a (possibly transposed) problem.
struct PhasePlane {
  int64_t rows, cols;  // padded input rows/columns the outputs reach
  int64_t phase_len;   // floats per phase, with room for whole-vector loads past out_w
  int64_t row_stride;  // stride_w * phase_len
  int64_t pad_top, pad_left;  // may be negative (backward-data as a correlation)
  int64_t floats() const { return rows * row_stride; }
};

PhasePlane phase_plane(const Conv2dShape& s) {
  PhasePlane p;
  p.rows = (s.out_h - 1) * s.stride_h + (s.kernel_h - 1) * s.dilation_h + 1;
  p.cols = (s.out_w - 1) * s.stride_w + (s.kernel_w - 1) * s.dilation_w + 1;
  const int64_t max_offset = ((s.kernel_w - 1) * s.dilation_w) / s.stride_w;
  p.phase_len = round_up(round_up(s.out_w, L) + max_offset + 1, L);
  p.row_stride = s.stride_w * p.phase_len;
  p.pad_top = s.pad_top;
  p.pad_left = s.pad_left;
  return p;
}


// Padded, phase-split copy of one plane (in_h x in_w): zeros outside the
// plane and past the columns any output reads, so lanes past out_w only see 0.
void fill_phases(const PhasePlane& p, int64_t in_h, int64_t in_w, int64_t stride_w,
                 const float* plane, float* buf) {
  // Destination columns [lo, hi) hold input columns lo - pad_left ...
  int64_t lo = p.pad_left > 0 ? p.pad_left : 0;
  int64_t hi = in_w + p.pad_left;
  if (hi > p.cols) hi = p.cols;
  for (int64_t i = 0; i < p.rows; ++i) {
    const int64_t ih = i - p.pad_top;
    float* row = buf + i * p.row_stride;
    if (ih < 0 || ih >= in_h || hi <= lo) {
      std::memset(row, 0, sizeof(float) * p.row_stride);
      continue;
    }
    const float* src = plane + ih * in_w - p.pad_left;  // src[col] for col in [lo, hi)
    if (stride_w == 1) {  // zero the row with vectors, then copy over it (rows are short)
      int64_t j = 0;
      for (; j + L <= p.phase_len; j += L) Vec::zero().store(row + j);
      for (; j < p.phase_len; ++j) row[j] = 0.0f;
      for (j = lo; j + L <= hi; j += L) Vec::load(src + j).store(row + j);
      if (j < hi) {
        const int n = static_cast<int>(hi - j);
        Vec::load_partial(src + j, n).store_partial(row + j, n);
      }
      continue;
    }
    // Zero each phase, then copy the columns in [lo, hi) with a branch-free
    // gather (a constant stride for the common stride 2, which the compiler
    // turns into vector permutes).
    std::memset(row, 0, sizeof(float) * p.row_stride);
    for (int64_t q = 0; q < stride_w; ++q) {
      float* phase = row + q * p.phase_len;
      // Phase index j holds column j * stride_w + q; keep lo <= col < hi.
      int64_t j_lo = lo > q ? (lo - q + stride_w - 1) / stride_w : 0;
      int64_t j_hi = hi > q ? (hi - q + stride_w - 1) / stride_w : 0;
      if (j_hi > p.phase_len) j_hi = p.phase_len;
      const float* col0 = src + q;
      if (stride_w == 2) {
        for (int64_t j = j_lo; j < j_hi; ++j) phase[j] = col0[2 * j];
      } else {
        for (int64_t j = j_lo; j < j_hi; ++j) phase[j] = col0[j * stride_w];
      }
    }
  }
}

// Offsets of each tap (r, q) from the output row's base, in a phase plane.
void tap_offsets(const Conv2dShape& s, const PhasePlane& p, int64_t* off) {
  for (int64_t r = 0; r < s.kernel_h; ++r)
    for (int64_t q = 0; q < s.kernel_w; ++q) {
      const int64_t col = q * s.dilation_w;
      off[r * s.kernel_w + q] = r * s.dilation_h * p.row_stride +
                                (col % s.stride_w) * p.phase_len + col / s.stride_w;
    }
}

// y[oh][ow] (+)= bias + sum_t w[t] * buf[base(oh) + off[t] + ow], then ReLU.
// TAPS > 0: unrolled with weights in registers; TAPS == 0: any count.
// Four output rows go together, one vector each: four independent FMA chains
// whatever the row width (a 56-wide row is only 3.5 AVX-512 vectors).
template <int TAPS, bool RELU, bool ACCUMULATE>
void forward_plane_t(const Conv2dShape& s, const PhasePlane& p, const float* buf, const float* w,
                     const int64_t* off_in, int64_t taps_runtime, float bias, float relu_max,
                     float* y) {
  constexpr int RB = 4;
  const int64_t taps = TAPS > 0 ? TAPS : taps_runtime;
  int64_t off[TAPS > 0 ? TAPS : kMaxTaps];
  Vec wv[TAPS > 0 ? TAPS : 1];
  for (int64_t t = 0; t < taps; ++t) off[t] = off_in[t];
  if (TAPS > 0)
    for (int t = 0; t < TAPS; ++t) wv[t] = Vec::set1(w[t]);
  const Vec vbias = Vec::set1(bias), vcap = Vec::set1(relu_max);
  auto weight = [&](int64_t t) { return TAPS > 0 ? wv[t] : Vec::set1(w[t]); };
  const int64_t row_step = s.stride_h * p.row_stride;
  int64_t oh = 0;
  for (; oh + RB <= s.out_h; oh += RB) {
    const float* base = buf + oh * row_step;
    float* yrow = y + oh * s.out_w;
    for (int64_t ow = 0; ow < s.out_w; ow += L) {
      const int n = static_cast<int>(s.out_w - ow < L ? s.out_w - ow : L);
      Vec acc[RB];
#pragma GCC unroll 4
      for (int rr = 0; rr < RB; ++rr) {
        acc[rr] = vbias;
        if (ACCUMULATE) acc[rr] = acc[rr] + Vec::load_partial(yrow + rr * s.out_w + ow, n);
      }
#pragma GCC unroll 32
      for (int64_t t = 0; t < taps; ++t) {
        const Vec wt = weight(t);
        const float* src = base + off[t] + ow;
#pragma GCC unroll 4
        for (int rr = 0; rr < RB; ++rr) acc[rr] = fmadd(wt, Vec::load(src + rr * row_step), acc[rr]);
      }
#pragma GCC unroll 4
      for (int rr = 0; rr < RB; ++rr) {
        Vec o = RELU ? relu_clamp(acc[rr], vcap) : acc[rr];
        if (n == L) o.store(yrow + rr * s.out_w + ow);
        else o.store_partial(yrow + rr * s.out_w + ow, n);
      }
    }
  }
  for (; oh < s.out_h; ++oh) {  // the last rows, one at a time
    const float* base = buf + oh * row_step;
    float* yrow = y + oh * s.out_w;
    for (int64_t ow = 0; ow < s.out_w; ow += L) {
      const int n = static_cast<int>(s.out_w - ow < L ? s.out_w - ow : L);
      Vec a = vbias;
      if (ACCUMULATE) a = a + Vec::load_partial(yrow + ow, n);
#pragma GCC unroll 32
      for (int64_t t = 0; t < taps; ++t) a = fmadd(weight(t), Vec::load(base + off[t] + ow), a);
      if (RELU) a = relu_clamp(a, vcap);
      if (n == L) a.store(yrow + ow); else a.store_partial(yrow + ow, n);
    }
  }
}

template <int TAPS>
void forward_plane(const Conv2dShape& s, const PhasePlane& p, const float* buf, const float* w,
                   const int64_t* off, int64_t taps, float bias, bool relu, float relu_max,
                   bool accumulate, float* y) {
  const float cap = relu_max;
  if (relu) {
    if (accumulate) forward_plane_t<TAPS, true, true>(s, p, buf, w, off, taps, bias, cap, y);
    else forward_plane_t<TAPS, true, false>(s, p, buf, w, off, taps, bias, cap, y);
  } else {
    if (accumulate) forward_plane_t<TAPS, false, true>(s, p, buf, w, off, taps, bias, cap, y);
    else forward_plane_t<TAPS, false, false>(s, p, buf, w, off, taps, bias, cap, y);
  }
}

#if defined(__AVX512F__)
// 3x3, stride 1, dilation 1 on AVX-512: each padded input row is read as
// aligned vectors and the +1/+2 column shifts are made in registers
// (valignd), instead of two unaligned loads per tap that each straddle a
// cache line; four output rows share the six input rows they read.
template <bool RELU, bool ACCUMULATE>
void forward_plane_3x3s1(const Conv2dShape& s, const PhasePlane& p, const float* buf,
                         const float* w, float bias, float relu_max, float* y) {
  constexpr int RB = 4;
  Vec wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = Vec::set1(w[t]);
  const Vec vbias = Vec::set1(bias), vcap = Vec::set1(relu_max);
  const int64_t rs = p.row_stride;
  int64_t oh = 0;
  for (; oh < s.out_h; oh += RB) {
    const int rows = static_cast<int>(s.out_h - oh < RB ? s.out_h - oh : RB);
    const float* base = buf + oh * rs;
    float* yrow = y + oh * s.out_w;
    for (int64_t ow = 0; ow < s.out_w; ow += L) {
      const int n = static_cast<int>(s.out_w - ow < L ? s.out_w - ow : L);
      Vec acc[RB];
#pragma GCC unroll 4
      for (int rr = 0; rr < RB; ++rr) {
        acc[rr] = vbias;
        if (ACCUMULATE && rr < rows)
          acc[rr] = acc[rr] + Vec::load_partial(yrow + rr * s.out_w + ow, n);
      }
#pragma GCC unroll 6
      for (int i = 0; i < RB + 2; ++i) {  // input rows oh + i
        if (i >= rows + 2) break;
        const float* src = base + i * rs + ow;
        const __m512 v0 = _mm512_load_ps(src), v1 = _mm512_load_ps(src + L);
        const Vec c0 = v0;
        const Vec c1 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(v1),
                                                               _mm512_castps_si512(v0), 1));
        const Vec c2 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(v1),
                                                               _mm512_castps_si512(v0), 2));
#pragma GCC unroll 4
        for (int rr = 0; rr < RB; ++rr) {
          const int r = i - rr;  // kernel row that input row i is for output row rr
          if (r < 0 || r > 2) continue;
          acc[rr] = fmadd(wv[r * 3], c0, acc[rr]);
          acc[rr] = fmadd(wv[r * 3 + 1], c1, acc[rr]);
          acc[rr] = fmadd(wv[r * 3 + 2], c2, acc[rr]);
        }
      }
#pragma GCC unroll 4
      for (int rr = 0; rr < RB; ++rr) {
        if (rr >= rows) break;
        Vec o = RELU ? relu_clamp(acc[rr], vcap) : acc[rr];
        if (n == L) o.store(yrow + rr * s.out_w + ow);
        else o.store_partial(yrow + rr * s.out_w + ow, n);
      }
    }
  }
}
#endif

#if defined(__AVX2__) && !defined(__AVX512F__)
// 3x3, stride SW (1 or 2) in both directions, dilation 1, on AVX2: walks the
// input rows that four output rows read (SW * 3 + 3 of them), three loads per
// row (taps 0, 1, 2 of that row: offsets 0, 1, 2 for stride 1; 0, phase_len,
// 1 for stride 2), each used for every output row it feeds. The generic loop
// above gave GCC 36 addresses (4 rows x 9 taps), which it kept on the stack and
// reloaded every iteration: twice the loads, half the FMA rate.
template <int SW, bool RELU, bool ACCUMULATE>
void forward_plane_3x3_avx2(const Conv2dShape& s, const PhasePlane& p, const float* buf,
                            const float* w, float bias, float relu_max, float* y) {
  constexpr int RB = 4;
  constexpr int kInRows = SW * (RB - 1) + 3;
  Vec wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = Vec::set1(w[t]);
  const Vec vbias = Vec::set1(bias), vcap = Vec::set1(relu_max);
  const int64_t rs = p.row_stride;
  const int64_t o1 = SW == 1 ? 1 : p.phase_len, o2 = SW == 1 ? 2 : 1;  // taps 1, 2 of a row
  for (int64_t oh = 0; oh < s.out_h; oh += RB) {
    const int rows = static_cast<int>(s.out_h - oh < RB ? s.out_h - oh : RB);
    const float* base = buf + oh * SW * rs;
    float* yrow = y + oh * s.out_w;
    for (int64_t ow = 0; ow < s.out_w; ow += L) {
      const int n = static_cast<int>(s.out_w - ow < L ? s.out_w - ow : L);
      Vec acc[RB];
#pragma GCC unroll 4
      for (int rr = 0; rr < RB; ++rr) {
        acc[rr] = vbias;
        if (ACCUMULATE && rr < rows)
          acc[rr] = acc[rr] + Vec::load_partial(yrow + rr * s.out_w + ow, n);
      }
      const float* src = base + ow;
#pragma GCC unroll 12
      for (int i = 0; i < kInRows; ++i, src += rs) {  // input rows oh * SW + i
        if (i >= SW * (rows - 1) + 3) break;
#pragma GCC unroll 3
        for (int q = 0; q < 3; ++q) {
          const Vec v = Vec::load(src + (q == 0 ? 0 : q == 1 ? o1 : o2));
#pragma GCC unroll 4
          for (int rr = 0; rr < RB; ++rr) {
            const int r = i - SW * rr;  // kernel row that input row i is for output row rr
            if (r < 0 || r > 2) continue;
            acc[rr] = fmadd(wv[r * 3 + q], v, acc[rr]);
          }
        }
      }
#pragma GCC unroll 4
      for (int rr = 0; rr < RB; ++rr) {
        if (rr >= rows) break;
        Vec o = RELU ? relu_clamp(acc[rr], vcap) : acc[rr];
        if (n == L) o.store(yrow + rr * s.out_w + ow);
        else o.store_partial(yrow + rr * s.out_w + ow, n);
      }
    }
  }
}

template <int SW>
void forward_plane_3x3_avx2(const Conv2dShape& s, const PhasePlane& p, const float* buf,
                            const float* w, float bias, bool relu, float relu_max,
                            bool accumulate, float* y) {
  if (relu) {
    if (accumulate) forward_plane_3x3_avx2<SW, true, true>(s, p, buf, w, bias, relu_max, y);
    else forward_plane_3x3_avx2<SW, true, false>(s, p, buf, w, bias, relu_max, y);
  } else {
    if (accumulate) forward_plane_3x3_avx2<SW, false, true>(s, p, buf, w, bias, relu_max, y);
    else forward_plane_3x3_avx2<SW, false, false>(s, p, buf, w, bias, relu_max, y);
  }
}
#endif

// The 3x3 stride-1 fast path needs aligned phase rows (row_stride and the
// plane's base are multiples of 16 floats) and one vector of slack per row.
[[maybe_unused]] bool fast_3x3s1(const Conv2dShape& s, const PhasePlane& p) {
#if defined(__AVX512F__)
  return s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 &&
         s.dilation_h == 1 && s.dilation_w == 1 && p.row_stride % 16 == 0 &&
         p.phase_len >= round_up(s.out_w, L) + L;
#else
  (void)s;
  (void)p;
  return false;
#endif
}

void convolve_plane(const Conv2dShape& s, const PhasePlane& p, const float* buf, const float* w,
                    const int64_t* off, float bias, bool relu, float relu_max, bool accumulate,
                    float* y) {
  const int64_t taps = s.kernel_h * s.kernel_w;
#if defined(__AVX512F__)
  if (fast_3x3s1(s, p)) {
    if (relu) {
      if (accumulate) forward_plane_3x3s1<true, true>(s, p, buf, w, bias, relu_max, y);
      else forward_plane_3x3s1<true, false>(s, p, buf, w, bias, relu_max, y);
    } else {
      if (accumulate) forward_plane_3x3s1<false, true>(s, p, buf, w, bias, relu_max, y);
      else forward_plane_3x3s1<false, false>(s, p, buf, w, bias, relu_max, y);
    }
    return;
  }
#endif
#if defined(__AVX2__) && !defined(__AVX512F__)
  if (s.kernel_h == 3 && s.kernel_w == 3 && s.dilation_h == 1 && s.dilation_w == 1 &&
      s.stride_h == s.stride_w && (s.stride_h == 1 || s.stride_h == 2)) {
    if (s.stride_h == 1)
      forward_plane_3x3_avx2<1>(s, p, buf, w, bias, relu, relu_max, accumulate, y);
    else forward_plane_3x3_avx2<2>(s, p, buf, w, bias, relu, relu_max, accumulate, y);
    return;
  }
#endif
  if (taps == 9) forward_plane<9>(s, p, buf, w, off, taps, bias, relu, relu_max, accumulate, y);
  else if (taps == 25)
    forward_plane<25>(s, p, buf, w, off, taps, bias, relu, relu_max, accumulate, y);
  else forward_plane<0>(s, p, buf, w, off, taps, bias, relu, relu_max, accumulate, y);
}

void forward(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const PhasePlane p = phase_plane(s);
  const int64_t mult = s.out_channels / s.in_channels;
  const int64_t taps = s.kernel_h * s.kernel_w;
  int64_t off[kMaxTaps];
  tap_offsets(s, p, off);
  const int64_t items = s.batch * s.in_channels;
#pragma omp parallel for num_threads(a.num_threads) schedule(dynamic, 2)
  for (int64_t it = 0; it < items; ++it) {
    const int64_t n = it / s.in_channels, c = it % s.in_channels;
    float* buf = a.workspace + omp_get_thread_num() * round_up(p.floats(), 16);
    fill_phases(p, s.in_h, s.in_w, s.stride_w, a.input + (n * s.in_channels + c) * s.in_h * s.in_w,
                buf);
    for (int64_t m = 0; m < mult; ++m) {
      const int64_t k = c * mult + m;
      convolve_plane(s, p, buf, a.weight + k * taps, off, a.bias ? a.bias[k] : 0.0f, a.relu,
                     a.relu_max, false, a.output + (n * s.out_channels + k) * s.out_h * s.out_w);
    }
  }
}

// Stride 1: gx[c] = sum over the channel's multiplier outputs of the full
// correlation of gy[k] with w[k] flipped.
void backward_data_stride1(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const Conv2dShape t = backward_data_as_forward(s, false);
  const PhasePlane p = phase_plane(t);
  const int64_t mult = s.out_channels / s.in_channels;
  const int64_t taps = s.kernel_h * s.kernel_w;
  int64_t off[kMaxTaps];
  tap_offsets(t, p, off);
  const int64_t items = s.batch * s.in_channels;
#pragma omp parallel for num_threads(a.num_threads) schedule(dynamic, 2)
  for (int64_t it = 0; it < items; ++it) {
    const int64_t n = it / s.in_channels, c = it % s.in_channels;
    float* buf = a.workspace + omp_get_thread_num() * round_up(p.floats() + taps, 16);
    float* flipped = buf + p.floats();
    for (int64_t m = 0; m < mult; ++m) {
      const int64_t k = c * mult + m;
      const float* w = a.weight + k * taps;
      for (int64_t i = 0; i < taps; ++i) flipped[i] = w[taps - 1 - i];
      fill_phases(p, t.in_h, t.in_w, 1, a.grad_output + (n * s.out_channels + k) * t.in_h * t.in_w,
                  buf);
      convolve_plane(t, p, buf, flipped, off, 0.0f, false, INFINITY, m > 0,
                     a.grad_input + (n * s.in_channels + c) * s.in_h * s.in_w);
    }
  }
}

// Any stride: scatter w * gy into the phase layout, then copy the plane out.
void backward_data_strided(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const PhasePlane p = phase_plane(s);
  const int64_t mult = s.out_channels / s.in_channels;
  const int64_t taps = s.kernel_h * s.kernel_w;
  int64_t off[kMaxTaps];
  tap_offsets(s, p, off);
  const int64_t items = s.batch * s.in_channels;
#pragma omp parallel for num_threads(a.num_threads) schedule(dynamic, 2)
  for (int64_t it = 0; it < items; ++it) {
    const int64_t n = it / s.in_channels, c = it % s.in_channels;
    float* buf = a.workspace + omp_get_thread_num() * round_up(p.floats(), 16);
    std::memset(buf, 0, sizeof(float) * p.floats());
    for (int64_t m = 0; m < mult; ++m) {
      const int64_t k = c * mult + m;
      const float* w = a.weight + k * taps;
      const float* gy = a.grad_output + (n * s.out_channels + k) * s.out_h * s.out_w;
      for (int64_t oh = 0; oh < s.out_h; ++oh) {
        float* base = buf + oh * s.stride_h * p.row_stride;
        const float* grow = gy + oh * s.out_w;
        for (int64_t t = 0; t < taps; ++t) {
          float* dst = base + (taps <= kMaxTaps ? off[t] : 0);
          if (taps > kMaxTaps) {
            const int64_t r = t / s.kernel_w, col = (t % s.kernel_w) * s.dilation_w;
            dst = base + r * s.dilation_h * p.row_stride + (col % s.stride_w) * p.phase_len +
                  col / s.stride_w;
          }
          const Vec wv = Vec::set1(w[t]);
          int64_t ow = 0;
          for (; ow + L <= s.out_w; ow += L)
            fmadd(wv, Vec::load(grow + ow), Vec::load(dst + ow)).store(dst + ow);
          if (ow < s.out_w) {  // zeros past out_w land in the plane's slack
            const Vec g = Vec::load_partial(grow + ow, static_cast<int>(s.out_w - ow));
            fmadd(wv, g, Vec::load(dst + ow)).store(dst + ow);
          }
        }
      }
    }
    float* gx = a.grad_input + (n * s.in_channels + c) * s.in_h * s.in_w;
    for (int64_t ih = 0; ih < s.in_h; ++ih) {
      float* dst = gx + ih * s.in_w;
      const int64_t i = ih + s.pad_top;
      if (i >= p.rows) {
        std::memset(dst, 0, sizeof(float) * s.in_w);
        continue;
      }
      const float* row = buf + i * p.row_stride;
      for (int64_t iw = 0; iw < s.in_w; ++iw) {
        const int64_t col = iw + s.pad_left;
        dst[iw] = col < p.cols ? row[(col % s.stride_w) * p.phase_len + col / s.stride_w] : 0.0f;
      }
    }
  }
}

// gw[t] += sum_{oh, ow} gy[oh][ow] * buf[base(oh) + off[t] + ow], one pass,
// one accumulator per tap (TAPS > 0), or one pass per tap (TAPS == 0).
template <int TAPS>
void weight_grad_plane(const Conv2dShape& s, const PhasePlane& p, const float* buf,
                       const float* gy, const int64_t* off_in, int64_t taps_runtime, float* gw) {
  if (TAPS > 0) {
    int64_t off[TAPS > 0 ? TAPS : 1];
    Vec acc[TAPS > 0 ? TAPS : 1];
    for (int t = 0; t < TAPS; ++t) {
      off[t] = off_in[t];
      acc[t] = Vec::zero();
    }
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      const float* base = buf + oh * s.stride_h * p.row_stride;
      const float* grow = gy + oh * s.out_w;
      for (int64_t ow = 0; ow < s.out_w; ow += L) {
        const int64_t rest = s.out_w - ow;
        const Vec g = rest >= L ? Vec::load(grow + ow)
                                : Vec::load_partial(grow + ow, static_cast<int>(rest));
#pragma GCC unroll 32
        for (int t = 0; t < TAPS; ++t) acc[t] = fmadd(g, Vec::load(base + off[t] + ow), acc[t]);
      }
    }
    for (int t = 0; t < TAPS; ++t) gw[t] += reduce_add(acc[t]);
    return;
  }
  for (int64_t t = 0; t < taps_runtime; ++t) {
    int64_t o;
    if (t < kMaxTaps) {
      o = off_in[t];
    } else {
      const int64_t r = t / s.kernel_w, col = (t % s.kernel_w) * s.dilation_w;
      o = r * s.dilation_h * p.row_stride + (col % s.stride_w) * p.phase_len + col / s.stride_w;
    }
    Vec acc0 = Vec::zero(), acc1 = Vec::zero();
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      const float* src = buf + oh * s.stride_h * p.row_stride + o;
      const float* grow = gy + oh * s.out_w;
      int64_t ow = 0;
      for (; ow + 2 * L <= s.out_w; ow += 2 * L) {
        acc0 = fmadd(Vec::load(grow + ow), Vec::load(src + ow), acc0);
        acc1 = fmadd(Vec::load(grow + ow + L), Vec::load(src + ow + L), acc1);
      }
      for (; ow < s.out_w; ow += L) {
        const int64_t rest = s.out_w - ow;
        const Vec g = rest >= L ? Vec::load(grow + ow)
                                : Vec::load_partial(grow + ow, static_cast<int>(rest));
        acc0 = fmadd(g, Vec::load(src + ow), acc0);
      }
    }
    gw[t] += reduce_add(acc0 + acc1);
  }
}

bool stride1(const Conv2dShape& s) { return s.stride_h == 1 && s.stride_w == 1; }

// Stride 1, dilation 1, KH x KW, read straight from the input plane: no
// padded copy (copying the plane cost about as much as the FMAs). ROWS
// gradient rows go together and share the ROWS + KH - 1 input rows they read,
// so each input vector is loaded once for up to KH rows' taps. Padding rows
// are skipped; only the column blocks that reach the padding (or the row's
// tail) take masked loads, with zeros outside the plane and past out_w.
template <int T>
struct TapAcc {  // passed by value so that the accumulators stay in registers
  Vec v[T];
};

// Software prefetch of the gradient and the input two row blocks on: on
// AVX-512 (Zen 5) the hardware prefetcher alone left these loads stalled; on
// AVX2 (Zen 2) the prefetches made the pass 1.4x slower, even from L2.
constexpr bool kPrefetch = L == 16;

// One block of ROWS gradient rows x n lanes. ih0: input row of gradient row
// 0's tap row 0; c0: input column of lane 0's tap column 0. EDGE: the block
// reaches the padding or the row's tail (masked loads); ROW_CHECK: some of its
// input rows are padding. Both are template parameters so that the interior
// blocks, nearly all of them, run without a branch per load.
template <int KH, int KW, int ROWS, bool EDGE, bool ROW_CHECK>
[[gnu::always_inline]] inline TapAcc<KH * KW> weight_grad_block_s1(
    TapAcc<KH * KW> acc, const Conv2dShape& s, const float* x, int64_t ih0, int64_t c0,
    const float* gy, int n, const LaneMask* mask) {
  Vec g[ROWS];
#pragma GCC unroll 8
  for (int rr = 0; rr < ROWS; ++rr) {
    g[rr] = EDGE ? Vec::load_partial(gy + rr * s.out_w, n) : Vec::load(gy + rr * s.out_w);
    if (kPrefetch) __builtin_prefetch(gy + (rr + 2 * ROWS) * s.out_w, 0, 3);
  }
#pragma GCC unroll 16
  for (int i = 0; i < ROWS + KH - 1; ++i) {
    const int64_t ih = ih0 + i;
    if (ROW_CHECK && (ih < 0 || ih >= s.in_h)) continue;  // a padding row adds nothing
    const float* row = x + ih * s.in_w + c0;
    if (kPrefetch) __builtin_prefetch(row + 2 * ROWS * s.in_w, 0, 3);
    Vec v[KW];
#pragma GCC unroll 8
    for (int q = 0; q < KW; ++q) v[q] = EDGE ? load_lanes(row + q, mask[q]) : Vec::load(row + q);
#pragma GCC unroll 8
    for (int rr = 0; rr < ROWS; ++rr) {
      const int r = i - rr;  // kernel row that input row i is for gradient row rr
      if (r < 0 || r >= KH) continue;
#pragma GCC unroll 8
      for (int q = 0; q < KW; ++q)
        acc.v[r * KW + q] = fmadd(g[rr], v[q], acc.v[r * KW + q]);
    }
  }
  return acc;
}

template <int KH, int KW, int ROWS, bool ROW_CHECK>
[[gnu::always_inline]] inline TapAcc<KH * KW> weight_grad_rows_s1(
    TapAcc<KH * KW> acc, const Conv2dShape& s, const float* x, int64_t oh, const float* gy) {
  const int64_t ih0 = oh - s.pad_top;
  const float* grow = gy + oh * s.out_w;
  for (int64_t ow = 0; ow < s.out_w; ow += L) {
    const int n = static_cast<int>(s.out_w - ow < L ? s.out_w - ow : L);
    const int64_t c0 = ow - s.pad_left;
    if (n == L && c0 >= 0 && c0 + KW - 1 + L <= s.in_w) {
      acc = weight_grad_block_s1<KH, KW, ROWS, false, ROW_CHECK>(acc, s, x, ih0, c0, grow + ow,
                                                                  n, nullptr);
      continue;
    }
    LaneMask mask[KW];  // lanes inside the row and below out_w, per tap column
    for (int q = 0; q < KW; ++q)
      mask[q] = lane_mask(-(c0 + q), std::min<int64_t>(n, s.in_w - (c0 + q)));
    acc = weight_grad_block_s1<KH, KW, ROWS, true, ROW_CHECK>(acc, s, x, ih0, c0, grow + ow, n,
                                                             mask);
  }
  return acc;
}

template <int KH, int KW, int RB>
void weight_grad_plane_s1(const Conv2dShape& s, const float* x, const float* gy, float* gw) {
  TapAcc<KH * KW> acc;
  for (int t = 0; t < KH * KW; ++t) acc.v[t] = Vec::zero();
  // Row blocks whose input rows all lie inside the plane skip the row check.
  auto inside = [&](int64_t oh, int rows) {
    return oh - s.pad_top >= 0 && oh - s.pad_top + rows + KH - 1 <= s.in_h;
  };
  int64_t oh = 0;
  for (; oh + RB <= s.out_h; oh += RB) {
    if (inside(oh, RB)) acc = weight_grad_rows_s1<KH, KW, RB, false>(acc, s, x, oh, gy);
    else acc = weight_grad_rows_s1<KH, KW, RB, true>(acc, s, x, oh, gy);
  }
  for (; oh < s.out_h; ++oh) acc = weight_grad_rows_s1<KH, KW, 1, true>(acc, s, x, oh, gy);
  for (int t = 0; t < KH * KW; ++t) gw[t] += reduce_add(acc.v[t]);
}

void backward_weight(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const PhasePlane p = phase_plane(s);
  const int64_t mult = s.out_channels / s.in_channels;
  const int64_t taps = s.kernel_h * s.kernel_w;
  const int64_t pixels = s.out_h * s.out_w;
  int64_t off[kMaxTaps];
  if (taps <= kMaxTaps) tap_offsets(s, p, off);
  // 3x3 and 5x5 with stride 1 and no dilation read the input directly.
  const bool square35 = s.kernel_h == s.kernel_w && (s.kernel_h == 3 || s.kernel_h == 5);
  const bool direct_s1 = stride1(s) && s.dilation_h == 1 && s.dilation_w == 1 && square35;
  // Gradient rows per pass: as many as the registers hold (accumulators, one
  // gradient vector per row, one input vector per tap column).
  constexpr int kRows3x3 = L == 8 ? 2 : 4;
  constexpr int kRows5x5 = L == 16 ? 2 : 1;
  // Parallel over input channels: each thread owns that channel's outputs'
  // gradients, and fills each input plane once for all its multiplier outputs.
#pragma omp parallel for num_threads(a.num_threads) schedule(dynamic, 2)
  for (int64_t c = 0; c < s.in_channels; ++c) {
    float* buf = a.workspace + omp_get_thread_num() * round_up(p.floats(), 16);
    for (int64_t k = c * mult; k < (c + 1) * mult; ++k)
      for (int64_t t = 0; t < taps; ++t) a.grad_weight[k * taps + t] = 0.0f;
    for (int64_t n = 0; n < s.batch; ++n) {
      const float* x = a.input + (n * s.in_channels + c) * s.in_h * s.in_w;
      if (direct_s1) {
        for (int64_t k = c * mult; k < (c + 1) * mult; ++k) {
          const float* gy = a.grad_output + (n * s.out_channels + k) * pixels;
          float* gw = a.grad_weight + k * taps;
          if (taps == 9) weight_grad_plane_s1<3, 3, kRows3x3>(s, x, gy, gw);
          else weight_grad_plane_s1<5, 5, kRows5x5>(s, x, gy, gw);
        }
        continue;
      }
      fill_phases(p, s.in_h, s.in_w, s.stride_w,
                  a.input + (n * s.in_channels + c) * s.in_h * s.in_w, buf);
      for (int64_t k = c * mult; k < (c + 1) * mult; ++k) {
        const float* gy = a.grad_output + (n * s.out_channels + k) * pixels;
        float* gw = a.grad_weight + k * taps;
        if (taps == 9) weight_grad_plane<9>(s, p, buf, gy, off, taps, gw);
        else if (taps == 25) weight_grad_plane<25>(s, p, buf, gy, off, taps, gw);
        else weight_grad_plane<0>(s, p, buf, gy, off, taps, gw);
      }
    }
    if (a.grad_bias) {
      for (int64_t k = c * mult; k < (c + 1) * mult; ++k) a.grad_bias[k] = conv2d_bias_gradient(a, k);
    }
  }
}

int64_t workspace(ConvPass pass, const Conv2dShape& s, int threads) {
  if (!is_depthwise(s)) return -1;
  const int64_t taps = s.kernel_h * s.kernel_w;
  if (pass == ConvPass::backward_data && stride1(s)) {
    if (taps > kMaxTaps) return -1;  // refuse: im2col takes it
    return threads * round_up(phase_plane(backward_data_as_forward(s, false)).floats() + taps, 16);
  }
  if (pass == ConvPass::forward && taps > kMaxTaps) return -1;
  return threads * round_up(phase_plane(s).floats(), 16);
}

void run(ConvPass pass, const Conv2dArgs& a) {
  switch (pass) {
    case ConvPass::forward: forward(a); break;
    case ConvPass::backward_data:
      if (stride1(a.shape)) backward_data_stride1(a); else backward_data_strided(a);
      break;
    case ConvPass::backward_weight: backward_weight(a); break;
  }
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(conv2d_depthwise_workspace, &workspace);
  register_kernel(conv2d_depthwise_run, &run);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
