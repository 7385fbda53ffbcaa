// nChw16c inference kernels (see conv2d_blocked.h): reorders, pointwise
// convolution as a register-blocked GEMM over pixel tiles, and depthwise
// convolution one output row at a time. Written once against Vec: a block of
// 16 channels is kV vectors (1 for AVX-512, 2 for AVX2, 16 scalars).
#include "kernels/conv/conv2d_blocked.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int L = Vec::kWidth;
constexpr int B = static_cast<int>(kChannelBlock);
constexpr int kV = B / L;  // vectors per channel block

// ------------------------------------------------------------------ reorder

void reorder(const BlockedShape& s, const float* src, float* dst, bool to_blocked, int threads) {
  const int64_t hw = s.height * s.width, blocks = s.blocks();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t item = 0; item < s.batch * blocks; ++item) {
    const int64_t n = item / blocks, c0 = (item % blocks) * B;
    const int64_t lanes = std::min<int64_t>(B, s.channels - c0);
    if (to_blocked) {
      const float* planes = src + (n * s.channels + c0) * hw;
      float* block = dst + item * s.plane();
      // 16 pixels at a time: 16 short reads per channel, writes that stay in L1.
      for (int64_t p0 = 0; p0 < hw; p0 += B) {
        const int64_t np = std::min<int64_t>(B, hw - p0);
        float* out = block + p0 * B;
        for (int64_t ci = 0; ci < B; ++ci) {
          const float* in = planes + ci * hw + p0;
          for (int64_t p = 0; p < np; ++p) out[p * B + ci] = ci < lanes ? in[p] : 0.0f;
        }
      }
    } else {
      const float* block = src + item * s.plane();
      float* planes = dst + (n * s.channels + c0) * hw;
      for (int64_t ci = 0; ci < lanes; ++ci) {
        float* out = planes + ci * hw;
        for (int64_t p = 0; p < hw; ++p) out[p] = block[p * B + ci];
      }
    }
  }
}

// ---------------------------------------------------------------- pointwise

// Accumulator budget per ISA (32 zmm: 24 accumulators + up to 4 weight
// vectors + a broadcast; 16 ymm: 12 + 2 + 1) and the widest output-channel
// group, in blocks.
constexpr int kAccumulators = L == 16 ? 24 : L == 8 ? 12 : 16;
constexpr int kMaxGroup = L == 16 ? 4 : 1;

template <int KB>
constexpr int tile_pixels() {
  return kAccumulators / (KB * kV) > 0 ? kAccumulators / (KB * kV) : 1;
}

struct PointwiseGeometry {
  int64_t in_blocks, out_blocks, pixels, weight_stride;  // weight_stride: floats per K block
};

// One tile: P pixels starting at `pixel` of image n, KB output blocks from kb0.
// Reads P whole pixels (the slack covers a tile running past the plane) and
// stores `rows` of them.
template <int KB>
void pointwise_tile(const BlockedPointwiseArgs& a, const PointwiseGeometry& g, int64_t n,
                    int64_t kb0, int64_t pixel, int rows) {
  constexpr int P = tile_pixels<KB>();
  constexpr int NV = KB * kV;
  const int64_t in_plane = g.pixels * B;
  const float* x = a.x + n * g.in_blocks * in_plane + pixel * B;
  const float* w = a.weight + kb0 * g.weight_stride;
  Vec acc[P][NV];
#pragma GCC unroll 32
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 16
    for (int q = 0; q < NV; ++q) acc[p][q] = Vec::zero();
  for (int64_t cb = 0; cb < g.in_blocks; ++cb) {
    const float* xs = x + cb * in_plane;
    const float* ws = w + cb * B * B;
    // The padded channels of the last block are zeros: skip them (24 channels: 25%).
    const int lanes = static_cast<int>(std::min<int64_t>(B, a.input.channels - cb * B));
    for (int ci = 0; ci < lanes; ++ci) {
      Vec wv[NV];
#pragma GCC unroll 16
      for (int j = 0; j < KB; ++j)
#pragma GCC unroll 16
        for (int v = 0; v < kV; ++v) wv[j * kV + v] = Vec::load(ws + j * g.weight_stride + ci * B + v * L);
#pragma GCC unroll 32
      for (int p = 0; p < P; ++p) {
        const Vec xv = Vec::set1(xs[p * B + ci]);
#pragma GCC unroll 16
        for (int q = 0; q < NV; ++q) acc[p][q] = fmadd(xv, wv[q], acc[p][q]);
      }
    }
  }
  const int64_t out_plane = g.pixels * B;
  const int64_t out0 = (n * g.out_blocks + kb0) * out_plane + pixel * B;
  const Vec cap = Vec::set1(a.relu_max);
#pragma GCC unroll 16
  for (int j = 0; j < KB; ++j)
#pragma GCC unroll 16
    for (int v = 0; v < kV; ++v) {
      const Vec bias = Vec::load(a.bias + (kb0 + j) * B + v * L);
#pragma GCC unroll 32
      for (int p = 0; p < P; ++p) {
        if (p >= rows) break;
        const int64_t at = out0 + j * out_plane + p * B + v * L;
        Vec o = acc[p][j * kV + v] + bias;
        if (a.residual) o = o + Vec::load(a.residual + at);
        if (a.relu) o = relu_clamp(o, cap);
        o.store(a.y + at);
      }
    }
}

template <int KB>
void pointwise_span(const BlockedPointwiseArgs& a, const PointwiseGeometry& g, int64_t n,
                    int64_t kb0, int64_t p_begin, int64_t p_end) {
  constexpr int P = tile_pixels<KB>();
  for (int64_t p = p_begin; p < p_end; p += P)
    pointwise_tile<KB>(a, g, n, kb0, p, static_cast<int>(std::min<int64_t>(P, p_end - p)));
}

void pointwise_group(const BlockedPointwiseArgs& a, const PointwiseGeometry& g, int64_t n,
                     int64_t kb0, int group, int64_t p_begin, int64_t p_end) {
  if constexpr (kMaxGroup >= 4) {
    switch (group) {
      case 4: return pointwise_span<4>(a, g, n, kb0, p_begin, p_end);
      case 3: return pointwise_span<3>(a, g, n, kb0, p_begin, p_end);
      case 2: return pointwise_span<2>(a, g, n, kb0, p_begin, p_end);
      default: break;
    }
  }
  pointwise_span<1>(a, g, n, kb0, p_begin, p_end);
}

void pointwise(const BlockedPointwiseArgs& a) {
  const BlockedShape& s = a.input;
  PointwiseGeometry g;
  g.in_blocks = s.blocks();
  g.out_blocks = (a.out_channels + B - 1) / B;
  g.pixels = s.height * s.width;
  g.weight_stride = g.in_blocks * B * B;
  // Output blocks go in chunks whose weights (~256 KiB) stay in L2 while a
  // thread sweeps its pixel tiles; inside a chunk, each pixel span (whose
  // input, span x C floats, stays in L1/L2) meets every group of the chunk.
  const int64_t group_bytes = kMaxGroup * g.weight_stride * 4;
  const int64_t groups_per_chunk = std::max<int64_t>(1, (256 << 10) / group_bytes);
  const int64_t chunk_blocks = groups_per_chunk * kMaxGroup;
  const int64_t chunks = (g.out_blocks + chunk_blocks - 1) / chunk_blocks;
  // Pixel spans: up to 4 main tiles each, enough items for every thread, and
  // of equal length (a whole number of tiles) so that the items balance.
  constexpr int P = tile_pixels<kMaxGroup>();
  int64_t spans = (g.pixels + 4 * P - 1) / (4 * P);
  const int64_t want = 4 * static_cast<int64_t>(a.num_threads);
  while (spans * P < g.pixels && s.batch * chunks * spans < want) ++spans;
  const int64_t span = ((g.pixels + spans - 1) / spans + P - 1) / P * P;
  spans = (g.pixels + span - 1) / span;
  const int64_t items = chunks * s.batch * spans;
  // Dynamic: the last chunk may hold fewer output blocks than the others.
#pragma omp parallel for num_threads(a.num_threads) schedule(dynamic, 1)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t chunk = item / (s.batch * spans), rest = item % (s.batch * spans);
    const int64_t n = rest / spans, p_begin = (rest % spans) * span;
    const int64_t p_end = std::min(g.pixels, p_begin + span);
    const int64_t kb_end = std::min(g.out_blocks, (chunk + 1) * chunk_blocks);
    for (int64_t kb = chunk * chunk_blocks; kb < kb_end; kb += kMaxGroup) {
      const int group = static_cast<int>(std::min<int64_t>(kMaxGroup, kb_end - kb));
      pointwise_group(a, g, n, kb, group, p_begin, p_end);
    }
  }
}

// ------------------------------------------------------ dense, NCHW input

// Output pixels [ow, ow + P) of row oh for KB output blocks from kb0; with
// CHECKED, taps outside the input are skipped one by one (border pixels).
template <int KB, int P, bool CHECKED>
void dense_tile(const BlockedDenseArgs& a, const float* image, int64_t kb0, int64_t oh, int64_t ow,
                int pixels, float* y_row) {
  constexpr int NV = KB * kV;
  const BlockedShape& s = a.input;
  const int64_t taps = s.channels * a.kernel_h * a.kernel_w;
  const int64_t weight_stride = taps * B;  // floats per output block
  Vec acc[P][NV];
#pragma GCC unroll 16
  for (int j = 0; j < KB; ++j)
#pragma GCC unroll 16
    for (int v = 0; v < kV; ++v) {
      const Vec bias = Vec::load(a.bias + (kb0 + j) * B + v * L);
#pragma GCC unroll 32
      for (int p = 0; p < P; ++p) acc[p][j * kV + v] = bias;
    }
  const int64_t ih0 = oh * a.stride_h - a.pad_top, iw0 = ow * a.stride_w - a.pad_left;
  for (int64_t c = 0; c < s.channels; ++c) {
    const float* plane = image + c * s.height * s.width;
    for (int64_t r = 0; r < a.kernel_h; ++r) {
      const int64_t ih = ih0 + r * a.dilation_h;
      if (ih < 0 || ih >= s.height) continue;
      const float* row = plane + ih * s.width;
      for (int64_t q = 0; q < a.kernel_w; ++q) {
        const float* w = a.weight + kb0 * weight_stride + ((c * a.kernel_h + r) * a.kernel_w + q) * B;
        Vec wv[NV];
#pragma GCC unroll 16
        for (int j = 0; j < KB; ++j)
#pragma GCC unroll 16
          for (int v = 0; v < kV; ++v) wv[j * kV + v] = Vec::load(w + j * weight_stride + v * L);
        const int64_t iw_q = iw0 + q * a.dilation_w;
#pragma GCC unroll 32
        for (int p = 0; p < P; ++p) {
          if (CHECKED && p >= pixels) break;  // unchecked tiles are whole
          const int64_t iw = iw_q + p * a.stride_w;
          if (CHECKED && (iw < 0 || iw >= s.width)) continue;
          const Vec xv = Vec::set1(row[iw]);
#pragma GCC unroll 16
          for (int k = 0; k < NV; ++k) acc[p][k] = fmadd(xv, wv[k], acc[p][k]);
        }
      }
    }
  }
  const Vec cap = Vec::set1(a.relu_max);
  const int64_t out_plane = a.out_h * a.out_w * B;
#pragma GCC unroll 16
  for (int j = 0; j < KB; ++j)
#pragma GCC unroll 16
    for (int v = 0; v < kV; ++v)
#pragma GCC unroll 32
      for (int p = 0; p < P; ++p) {
        if (CHECKED && p >= pixels) break;
        const Vec o = a.relu ? relu_clamp(acc[p][j * kV + v], cap) : acc[p][j * kV + v];
        o.store(y_row + j * out_plane + (ow + p) * B + v * L);
      }
}

template <int KB>
void dense_row_group(const BlockedDenseArgs& a, const float* image, int64_t kb0, int64_t oh,
                     float* y_row) {
  constexpr int P = tile_pixels<KB>();
  // Interior columns: every tap of every channel inside the row.
  const int64_t span = (a.kernel_w - 1) * a.dilation_w;
  const int64_t lo = std::min(a.out_w, (a.pad_left + a.stride_w - 1) / a.stride_w);
  const int64_t last = a.input.width - 1 - span + a.pad_left;
  const int64_t hi = std::max(lo, std::min(a.out_w, last >= 0 ? last / a.stride_w + 1 : 0));
  int64_t ow = 0;
  for (; ow < lo; ow += P) {
    const int n = static_cast<int>(std::min<int64_t>(P, lo - ow));
    dense_tile<KB, P, true>(a, image, kb0, oh, ow, n, y_row);
  }
  ow = lo;
  for (; ow + P <= hi; ow += P) dense_tile<KB, P, false>(a, image, kb0, oh, ow, P, y_row);
  for (; ow < a.out_w; ow += P) {
    const int n = static_cast<int>(std::min<int64_t>(P, a.out_w - ow));
    dense_tile<KB, P, true>(a, image, kb0, oh, ow, n, y_row);
  }
}

void dense_nchw(const BlockedDenseArgs& a) {
  const BlockedShape& s = a.input;
  const int64_t out_blocks = (a.out_channels + B - 1) / B;
  const int64_t groups = (out_blocks + kMaxGroup - 1) / kMaxGroup;
  const int64_t out_plane = a.out_h * a.out_w * B;
  const int64_t items = s.batch * a.out_h * groups;
#pragma omp parallel for num_threads(a.num_threads) schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t g = item % groups, oh = (item / groups) % a.out_h, n = item / groups / a.out_h;
    const int64_t kb0 = g * kMaxGroup;
    const int group = static_cast<int>(std::min<int64_t>(kMaxGroup, out_blocks - kb0));
    const float* image = a.x + n * s.channels * s.height * s.width;
    float* y_row = a.y + (n * out_blocks + kb0) * out_plane + oh * a.out_w * B;
    if constexpr (kMaxGroup >= 4) {
      if (group == 4) { dense_row_group<4>(a, image, kb0, oh, y_row); continue; }
      if (group == 3) { dense_row_group<3>(a, image, kb0, oh, y_row); continue; }
      if (group == 2) { dense_row_group<2>(a, image, kb0, oh, y_row); continue; }
    }
    dense_row_group<1>(a, image, kb0, oh, y_row);
  }
}

// ---------------------------------------------------------------- depthwise

constexpr int kDepthwisePixels = L == 16 ? 8 : L == 8 ? 4 : 1;  // outputs per step

// Output columns [lo, hi) whose taps all fall inside the input row.
void interior_columns(const BlockedDepthwiseArgs& a, int64_t* lo, int64_t* hi) {
  const int64_t span = (a.kernel_w - 1) * a.dilation_w;
  int64_t l = (a.pad_left + a.stride_w - 1) / a.stride_w;
  const int64_t last = a.input.width - 1 - span + a.pad_left;  // ow * stride_w <= last
  int64_t h = last >= 0 ? last / a.stride_w + 1 : 0;
  l = std::min(l, a.out_w);
  *lo = l;
  *hi = std::max(std::min(h, a.out_w), l);
}

// One output pixel with every tap bounds-checked (the border columns).
inline void depthwise_pixel(const BlockedDepthwiseArgs& a, const float* plane, const float* w,
                            const Vec* bias, int64_t r_lo, int64_t r_hi, int64_t ih0, int64_t ow,
                            float* y) {
  Vec acc[kV];
  for (int v = 0; v < kV; ++v) acc[v] = bias[v];
  const int64_t iw0 = ow * a.stride_w - a.pad_left;
  for (int64_t r = r_lo; r < r_hi; ++r) {
    const float* row = plane + (ih0 + r * a.dilation_h) * a.input.width * B;
    for (int64_t q = 0; q < a.kernel_w; ++q) {
      const int64_t iw = iw0 + q * a.dilation_w;
      if (iw < 0 || iw >= a.input.width) continue;
      const float* wt = w + (r * a.kernel_w + q) * B;
      for (int v = 0; v < kV; ++v)
        acc[v] = fmadd(Vec::load(wt + v * L), Vec::load(row + iw * B + v * L), acc[v]);
    }
  }
  const Vec cap = Vec::set1(a.relu_max);
  for (int v = 0; v < kV; ++v) (a.relu ? relu_clamp(acc[v], cap) : acc[v]).store(y + v * L);
}

// Q interior output pixels from ow; KW > 0: kernel width known at compile time.
template <int KW, int Q>
inline void depthwise_interior(const BlockedDepthwiseArgs& a, const float* plane, const float* w,
                               const Vec* bias, int64_t r_lo, int64_t r_hi, int64_t ih0, int64_t ow,
                               float* y) {
  const int64_t kw = KW > 0 ? KW : a.kernel_w;
  const int64_t step = a.stride_w * B, tap_step = a.dilation_w * B;
  Vec acc[Q][kV];
#pragma GCC unroll 8
  for (int i = 0; i < Q; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < kV; ++v) acc[i][v] = bias[v];
  const float* base = plane + (ow * a.stride_w - a.pad_left) * B;
  for (int64_t r = r_lo; r < r_hi; ++r) {
    const float* row = base + (ih0 + r * a.dilation_h) * a.input.width * B;
    const float* wr = w + r * kw * B;
#pragma GCC unroll 7
    for (int64_t q = 0; q < kw; ++q) {
#pragma GCC unroll 16
      for (int v = 0; v < kV; ++v) {
        const Vec wt = Vec::load(wr + q * B + v * L);
#pragma GCC unroll 8
        for (int i = 0; i < Q; ++i)
          acc[i][v] = fmadd(wt, Vec::load(row + q * tap_step + i * step + v * L), acc[i][v]);
      }
    }
  }
  const Vec cap = Vec::set1(a.relu_max);
#pragma GCC unroll 8
  for (int i = 0; i < Q; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < kV; ++v)
      (a.relu ? relu_clamp(acc[i][v], cap) : acc[i][v]).store(y + i * B + v * L);
}

template <int KW>
void depthwise_rows(const BlockedDepthwiseArgs& a, int64_t begin, int64_t end) {
  const BlockedShape& s = a.input;
  const int64_t blocks = s.blocks(), taps = a.kernel_h * a.kernel_w;
  int64_t lo, hi;
  interior_columns(a, &lo, &hi);
  for (int64_t item = begin; item < end; ++item) {  // item = (n, cb, oh)
    const int64_t oh = item % a.out_h, plane_index = item / a.out_h;
    const int64_t cb = plane_index % blocks;
    const float* plane = a.x + plane_index * s.plane();
    const float* w = a.weight + cb * taps * B;
    Vec bias[kV];
    for (int v = 0; v < kV; ++v) bias[v] = Vec::load(a.bias + cb * B + v * L);
    // Kernel rows whose input row exists: ih0 + r * dilation_h in [0, height).
    const int64_t ih0 = oh * a.stride_h - a.pad_top;
    int64_t r_lo = 0, r_hi = a.kernel_h;
    while (r_lo < r_hi && ih0 + r_lo * a.dilation_h < 0) ++r_lo;
    while (r_hi > r_lo && ih0 + (r_hi - 1) * a.dilation_h >= s.height) --r_hi;
    float* y = a.y + (plane_index * a.out_h + oh) * a.out_w * B;
    int64_t ow = 0;
    for (; ow < lo; ++ow) depthwise_pixel(a, plane, w, bias, r_lo, r_hi, ih0, ow, y + ow * B);
    constexpr int Q = kDepthwisePixels;
    if (hi - ow >= Q) {
      for (; ow + Q <= hi; ow += Q)
        depthwise_interior<KW, Q>(a, plane, w, bias, r_lo, r_hi, ih0, ow, y + ow * B);
      if (ow < hi) {  // the last Q pixels again, overlapping: same values, no 1-wide tail
        depthwise_interior<KW, Q>(a, plane, w, bias, r_lo, r_hi, ih0, hi - Q, y + (hi - Q) * B);
        ow = hi;
      }
    }
    for (; ow < hi; ++ow) depthwise_interior<KW, 1>(a, plane, w, bias, r_lo, r_hi, ih0, ow, y + ow * B);
    for (; ow < a.out_w; ++ow) depthwise_pixel(a, plane, w, bias, r_lo, r_hi, ih0, ow, y + ow * B);
  }
}

void depthwise(const BlockedDepthwiseArgs& a) {
  const int64_t items = a.input.batch * a.input.blocks() * a.out_h;
#pragma omp parallel num_threads(a.num_threads)
  {
    // Contiguous ranges of rows: a thread keeps to its planes.
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = items * t / nt, end = items * (t + 1) / nt;
    if (a.kernel_w == 3) depthwise_rows<3>(a, begin, end);
    else if (a.kernel_w == 5) depthwise_rows<5>(a, begin, end);
    else depthwise_rows<0>(a, begin, end);
  }
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(conv2d_blocked_reorder, &reorder);
  register_kernel(conv2d_blocked_dense_nchw, &dense_nchw);
  register_kernel(conv2d_blocked_pointwise, &pointwise);
  register_kernel(conv2d_blocked_depthwise, &depthwise);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
