// nChw16c inference kernels (see conv2d_blocked.h): reorders, pointwise
// convolution as a register-blocked GEMM over pixel tiles, and depthwise
// convolution one output row at a time. Written once against Vec: a block of
// 16 channels is kV vectors (1 for AVX-512, 2 for AVX2, 16 scalars).
#include "kernels/conv/conv2d_blocked.h"

#include "kernels/conv/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/conv/conv2d_transpose.h"
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

// Where a pointwise convolution over a span of pixels reads and writes: block
// planes `*_plane` floats apart, every pointer at the span's first pixel. An
// image of a blocked tensor, or a band of rows in a scratch buffer.
struct PointwiseView {
  const float* x = nullptr;
  int64_t x_plane = 0, in_blocks = 0, in_channels = 0;
  int64_t half_block = -1;        // the last output block when it holds <= 8 channels, else -1
  const float* weight = nullptr;  // [K blocks][C rounded up][16]
  int64_t weight_stride = 0;      // floats per K block
  const float* bias = nullptr;
  const float* residual = nullptr;  // nullable
  int64_t residual_plane = 0;
  float* y = nullptr;
  int64_t y_plane = 0;
  bool relu = false;
  float relu_max = INFINITY;
};

// A half output block (the last one, holding at most 8 channels, e.g. 24 =
// 16 + 8) is a quarter or more of the work of such a layer when computed as a
// whole block. Narrower vectors (AVX2, scalar) simply skip its upper vectors.
// A 16-lane vector cannot be halved, so there it runs over channel pairs:
// lane 2j accumulates output channel j from input channel c, lane 2j+1 from
// c+1 (one 64-bit broadcast of x[c], x[c+1] per pixel, no wasted lanes), and
// the two lanes of each output are added at the end.
constexpr bool kPairedHalf = L == 16;

#if defined(__AVX512F__)
// The half block's weights for input channels c, c+1 (rows of 16, the outputs
// in lanes 0-7), interleaved as (w[c][0], w[c+1][0], w[c][1], w[c+1][1], ...).
inline Vec paired_weights(const float* row) {
  const __m512i interleave = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutex2var_ps(_mm512_loadu_ps(row), interleave, _mm512_loadu_ps(row + B));
}
// (x[c], x[c+1]) in every lane pair.
inline Vec paired_inputs(const float* x) {
  double pair;
  std::memcpy(&pair, x, sizeof pair);  // (one vbroadcastsd from memory)
  return _mm512_castpd_ps(_mm512_set1_pd(pair));
}
// bias[j] in lane 2j, zeros in the odd lanes.
inline Vec paired_bias(const float* bias) {
  return _mm512_maskz_expand_ps(0x5555, _mm512_castps256_ps512(_mm256_loadu_ps(bias)));
}
// Lane pairs summed into lanes 0-7; lanes 8-15 zero (the padded channels).
inline Vec paired_sum(Vec acc) {
  const __m512 both = _mm512_add_ps(acc.v, _mm512_permute_ps(acc.v, 0xB1));
  const __m512i evens = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 14, 12, 10, 8, 6, 4, 2, 0);
  return _mm512_maskz_permutexvar_ps(0x00FF, evens, both);
}
#else
inline Vec paired_weights(const float* row) { return Vec::load(row); }  // (never called)
inline Vec paired_inputs(const float* x) { return Vec::set1(*x); }
inline Vec paired_bias(const float* bias) { return Vec::load(bias); }
inline Vec paired_sum(Vec acc) { return acc; }
#endif

// One tile: P pixels from `pixel`, KB output blocks from kb0 (with HALF, the
// last of them a half block). Reads P whole pixels (the slack after every
// buffer covers a tile running past its plane) and stores `rows` of them.
template <int KB, int P, bool HALF = false>
void pointwise_tile(const PointwiseView& v, int64_t kb0, int64_t pixel, int rows) {
  constexpr int NV = KB * kV;
  constexpr bool kPaired = HALF && kPairedHalf;
  // Vectors computed per pixel: all but the upper half of a half block (paired: its one vector).
  constexpr int NC = HALF && !kPaired ? NV - kV / 2 : NV;
  constexpr int NF = kPaired ? NV - 1 : NC;  // vectors accumulated one input channel at a time
  const float* x = v.x + pixel * B;
  const float* w = v.weight + kb0 * v.weight_stride;
  // Accumulators start at the bias: one add fewer per output vector, which
  // counts where few input channels feed each output (16-32: MobileNetV2's
  // expansions).
  Vec acc[P][NV];
#pragma GCC unroll 16
  for (int q = 0; q < NV; ++q) {
    const float* b = v.bias + kb0 * B + q * L;
    const Vec bias = kPaired && q == NV - 1 ? paired_bias(b) : Vec::load(b);
#pragma GCC unroll 32
    for (int p = 0; p < P; ++p) acc[p][q] = bias;
  }
  for (int64_t cb = 0; cb < v.in_blocks; ++cb) {
    const float* xs = x + cb * v.x_plane;
    const float* ws = w + cb * B * B;
    // The padded channels of the last block are zeros: skip them (24 channels: 25%).
    // Paired, an odd count rounds up (the padded channel's input and weights are zeros).
    int lanes = static_cast<int>(std::min<int64_t>(B, v.in_channels - cb * B));
    if (kPaired) lanes += lanes & 1;
    for (int ci = 0; ci < lanes; ++ci) {
      Vec wv[NV];
#pragma GCC unroll 16
      for (int q = 0; q < NF; ++q) wv[q] = Vec::load(ws + (q / kV) * v.weight_stride + ci * B + (q % kV) * L);
#pragma GCC unroll 32
      for (int p = 0; p < P; ++p) {
        const Vec xv = Vec::set1(xs[p * B + ci]);
#pragma GCC unroll 16
        for (int q = 0; q < NF; ++q) acc[p][q] = fmadd(xv, wv[q], acc[p][q]);
      }
      if constexpr (kPaired) {  // every second channel: the pair (ci - 1, ci)
        if (ci & 1) {
          const Vec wp = paired_weights(ws + (KB - 1) * v.weight_stride + (ci - 1) * B);
#pragma GCC unroll 32
          for (int p = 0; p < P; ++p)
            acc[p][NV - 1] = fmadd(paired_inputs(xs + p * B + ci - 1), wp, acc[p][NV - 1]);
        }
      }
    }
  }
  if constexpr (kPaired) {
#pragma GCC unroll 32
    for (int p = 0; p < P; ++p) acc[p][NV - 1] = paired_sum(acc[p][NV - 1]);
  }
  // The epilogue reads the view's fields into locals first: the vector stores
  // may alias anything as far as the compiler knows (the intrinsics store
  // through may_alias types), so it would read every field again after every
  // store, and branch on relu and residual per vector (a third of the time of
  // a 16-input-channel tile went there).
  const Vec cap = Vec::set1(v.relu_max);
  float* const y = v.y + kb0 * v.y_plane + pixel * B;
  const float* const res = v.residual ? v.residual + kb0 * v.residual_plane + pixel * B : nullptr;
  const int64_t y_plane = v.y_plane, res_plane = v.residual_plane;
  const bool relu = v.relu;
  auto finish = [&](auto whole) {  // whole: a full tile, no row checks
#pragma GCC unroll 16
    for (int j = 0; j < KB; ++j)
#pragma GCC unroll 16
      for (int u = 0; u < kV; ++u) {
#pragma GCC unroll 32
        for (int p = 0; p < P; ++p) {
          if (!decltype(whole)::value && p >= rows) break;
          const int64_t at = p * B + u * L;
          Vec o = acc[p][j * kV + u];
          if (res) o = o + Vec::load(res + j * res_plane + at);
          if (relu) o = relu_clamp(o, cap);
          o.store(y + j * y_plane + at);
        }
      }
  };
  if (rows == P) finish(std::true_type{});
  else finish(std::false_type{});
}

template <int KB, int P = tile_pixels<KB>()>
void pointwise_span(const PointwiseView& v, int64_t kb0, int64_t p_begin, int64_t p_end) {
  const bool half = kb0 + KB - 1 == v.half_block;
  for (int64_t p = p_begin; p < p_end; p += P) {
    const int rows = static_cast<int>(std::min<int64_t>(P, p_end - p));
    if (half) pointwise_tile<KB, P, true>(v, kb0, p, rows);
    else pointwise_tile<KB, P>(v, kb0, p, rows);
  }
}

// Tile shapes. By default up to kMaxGroup blocks by tile_pixels of them (4 x 6
// on AVX-512). A 7x7 plane (49 pixels) would then run 9 tiles of 6, computing
// 54 pixels; in "sevens" it takes 3 blocks x 7 pixels (21 accumulators), and
// groups of 2 x 7 where 3s do not divide the blocks, so no tile computes a
// pixel or a block past the plane (MobileNetV2's and ResNet's last stages).
constexpr bool kSevens = L == 16;
constexpr int kSevenGroup = 3;

bool use_sevens(int64_t pixels) {
  constexpr int P = tile_pixels<kMaxGroup>();
  // Only where P-pixel tiles would waste over 5% of their pixels.
  return kSevens && pixels % 7 == 0 && ((pixels + P - 1) / P * P - pixels) * 20 > pixels;
}

// Blocks in the group starting with `left` blocks to go.
int group_blocks(int64_t left, bool sevens) {
  if (!sevens) return static_cast<int>(std::min<int64_t>(kMaxGroup, left));
  return left == 4 || left == 2 ? 2 : left == 1 ? 1 : kSevenGroup;
}

void pointwise_group(const PointwiseView& v, int64_t kb0, int group, bool sevens,
                     int64_t p_begin, int64_t p_end) {
  if constexpr (kSevens) {
    if (sevens) {
      switch (group) {
        case 3: return pointwise_span<3, 7>(v, kb0, p_begin, p_end);
        case 2: return pointwise_span<2, 7>(v, kb0, p_begin, p_end);
        default: return pointwise_span<1, 7>(v, kb0, p_begin, p_end);
      }
    }
  }
  if constexpr (kMaxGroup >= 4) {
    switch (group) {
      case 4: return pointwise_span<4>(v, kb0, p_begin, p_end);
      case 3: return pointwise_span<3>(v, kb0, p_begin, p_end);
      case 2: return pointwise_span<2>(v, kb0, p_begin, p_end);
      default: break;
    }
  }
  pointwise_span<1>(v, kb0, p_begin, p_end);
}

// Output blocks [kb_begin, kb_end) of pixels [p_begin, p_end), group by group:
// a group's weights stay in L1/L2 while it sweeps the span.
void pointwise_blocks(const PointwiseView& v, int64_t kb_begin, int64_t kb_end, bool sevens,
                      int64_t p_begin, int64_t p_end) {
  for (int64_t kb = kb_begin; kb < kb_end;) {
    const int group = group_blocks(kb_end - kb, sevens);
    pointwise_group(v, kb, group, sevens, p_begin, p_end);
    kb += group;
  }
}

// Every output block of pixels [0, pixels), on the calling thread.
void pointwise_all(const PointwiseView& v, int64_t out_blocks, int64_t pixels) {
  pointwise_blocks(v, 0, out_blocks, use_sevens(pixels), 0, pixels);
}

int64_t half_block(int64_t out_channels) {
  const int64_t rest = out_channels % B;
  return rest > 0 && rest <= B / 2 ? out_channels / B : -1;
}

PointwiseView image_view(const BlockedPointwiseArgs& a, int64_t n) {
  const BlockedShape& s = a.input;
  const int64_t plane = s.plane(), out_blocks = (a.out_channels + B - 1) / B;
  PointwiseView v;
  v.x = a.x + n * s.blocks() * plane;
  v.x_plane = plane;
  v.in_blocks = s.blocks();
  v.in_channels = s.channels;
  v.half_block = half_block(a.out_channels);
  v.weight = a.weight;
  v.weight_stride = s.blocks() * B * B;
  v.bias = a.bias;
  v.residual = a.residual ? a.residual + n * out_blocks * plane : nullptr;
  v.residual_plane = plane;
  v.y = a.y + n * out_blocks * plane;
  v.y_plane = plane;
  v.relu = a.relu;
  v.relu_max = a.relu_max;
  return v;
}

void pointwise(const BlockedPointwiseArgs& a) {
  const BlockedShape& s = a.input;
  const int64_t in_blocks = s.blocks(), out_blocks = (a.out_channels + B - 1) / B;
  const int64_t pixels = s.height * s.width;
  // Output blocks go in chunks whose weights (~256 KiB) stay in L2 while a
  // thread sweeps its pixel tiles; inside a chunk, each pixel span (whose
  // input, span x C floats, stays in L1/L2) meets every group of the chunk.
  const bool sevens = use_sevens(pixels);
  const int group = sevens ? kSevenGroup : kMaxGroup;
  const int64_t group_bytes = group * in_blocks * B * B * 4;
  const int64_t groups_per_chunk = std::max<int64_t>(1, (256 << 10) / group_bytes);
  const int64_t chunk_blocks = groups_per_chunk * group;
  const int64_t chunks = (out_blocks + chunk_blocks - 1) / chunk_blocks;
  // Pixel spans: up to 4 main tiles each, enough items for every thread, and
  // of equal length (a whole number of tiles) so that the items balance.
  const int64_t P = sevens ? 7 : tile_pixels<kMaxGroup>();
  int64_t spans = (pixels + 4 * P - 1) / (4 * P);
  const int64_t want = 4 * static_cast<int64_t>(a.num_threads);
  while (spans * P < pixels && s.batch * chunks * spans < want) ++spans;
  const int64_t span = ((pixels + spans - 1) / spans + P - 1) / P * P;
  spans = (pixels + span - 1) / span;
  const int64_t items = chunks * s.batch * spans;
  // Dynamic: the last chunk may hold fewer output blocks than the others.
#pragma omp parallel for num_threads(a.num_threads) schedule(dynamic, 1)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t chunk = item / (s.batch * spans), rest = item % (s.batch * spans);
    const int64_t n = rest / spans, p_begin = (rest % spans) * span;
    const int64_t p_end = std::min(pixels, p_begin + span);
    const PointwiseView v = image_view(a, n);
    const int64_t kb_end = std::min(out_blocks, (chunk + 1) * chunk_blocks);
    pointwise_blocks(v, chunk * chunk_blocks, kb_end, sevens, p_begin, p_end);
  }
}

// ------------------------------------------------------ dense, NCHW input

// With nchw_out, a thread's tiles of one output row and KB output blocks go
// pixel-major into its row buffer (dense_row_floats: [pixel][KB * B], whole
// vectors), and the finished row is transposed L x L into the NCHW planes
// (flush_row_nchw). Each tile transposing its own P pixels into the planes
// instead (masked stores of P floats into 64 planes, lines written a few
// floats at a time) took a fifth of the 7x7 stem's time (Zen 5).
int64_t dense_row_floats(int64_t out_w) { return (out_w + L - 1) / L * L * kMaxGroup * B; }

// The row buffer of output row y_row (channel 0's row in the NCHW output) to
// the planes of KB blocks from kb0.
template <int KB>
void flush_row_nchw(const BlockedDenseArgs& a, const float* row, int64_t kb0, float* y_row) {
  constexpr int NV = KB * kV;
  const int64_t plane = a.out_h * a.out_w;
  const int64_t channels = std::min<int64_t>(KB * B, a.out_channels - kb0 * B);
  float* y = y_row + kb0 * B * plane;
  for (int64_t q0 = 0; q0 < a.out_w; q0 += L) {
    const int n = static_cast<int>(std::min<int64_t>(L, a.out_w - q0));
#pragma GCC unroll 4
    for (int k = 0; k < NV; ++k) {
      if (k * L >= channels) break;
      Vec r[L];
#pragma GCC unroll 16
      for (int i = 0; i < L; ++i) r[i] = Vec::load(row + ((q0 + i) * NV + k) * L);
      transpose_lx(r);  // r[i]: channel k * L + i, pixels q0 ..
      const int lanes = static_cast<int>(std::min<int64_t>(L, channels - k * L));
      float* dst = y + k * L * plane + q0;
      if (n == L && a.stream_out) {
        for (int i = 0; i < lanes; ++i) r[i].stream(dst + i * plane);
      } else if (n == L) {
        for (int i = 0; i < lanes; ++i) r[i].store(dst + i * plane);
      } else {
        for (int i = 0; i < lanes; ++i) r[i].store_partial(dst + i * plane, n);
      }
    }
  }
}

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
  const bool relu = a.relu;  // a local: the stores below may alias `a` (see pointwise_tile)
  if (a.nchw_out) {  // y_row: the thread's row buffer, pixel-major
#pragma GCC unroll 32
    for (int p = 0; p < P; ++p) {
      if (CHECKED && p >= pixels) break;
#pragma GCC unroll 16
      for (int k = 0; k < NV; ++k) {
        const Vec o = relu ? relu_clamp(acc[p][k], cap) : acc[p][k];
        o.store(y_row + ((ow + p) * NV + k) * L);
      }
    }
    return;
  }
  const int64_t out_plane = a.out_h * a.out_w * B;
#pragma GCC unroll 16
  for (int j = 0; j < KB; ++j)
#pragma GCC unroll 16
    for (int v = 0; v < kV; ++v)
#pragma GCC unroll 32
      for (int p = 0; p < P; ++p) {
        if (CHECKED && p >= pixels) break;
        const Vec o = relu ? relu_clamp(acc[p][j * kV + v], cap) : acc[p][j * kV + v];
        o.store(y_row + j * out_plane + (ow + p) * B + v * L);
      }
}

// Output row oh of KB blocks from kb0, tile by tile, into y_row: the blocked
// output's row oh of block kb0, or with nchw_out the thread's row buffer.
template <int KB>
void dense_row_tiles(const BlockedDenseArgs& a, const float* image, int64_t kb0, int64_t oh,
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

// y_row: the blocked output's row oh of block kb0, or with nchw_out channel
// 0's row oh of the NCHW output (`row`: the thread's row buffer).
template <int KB>
void dense_row_group(const BlockedDenseArgs& a, const float* image, int64_t kb0, int64_t oh,
                     float* y_row, float* row) {
  if (!a.nchw_out) {
    dense_row_tiles<KB>(a, image, kb0, oh, y_row);
    return;
  }
  dense_row_tiles<KB>(a, image, kb0, oh, row);
  flush_row_nchw<KB>(a, row, kb0, y_row);
}

void dense_nchw(const BlockedDenseArgs& a) {
  const BlockedShape& s = a.input;
  const int64_t out_blocks = (a.out_channels + B - 1) / B;
  const int64_t groups = (out_blocks + kMaxGroup - 1) / kMaxGroup;
  const int64_t out_plane = a.out_h * a.out_w * B;
  const int64_t items = s.batch * a.out_h * groups;
#pragma omp parallel num_threads(a.num_threads)
  {
    float* row = a.nchw_out ? a.row_buffers + omp_get_thread_num() * dense_row_floats(a.out_w)
                            : nullptr;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t g = item % groups, oh = (item / groups) % a.out_h, n = item / groups / a.out_h;
      const int64_t kb0 = g * kMaxGroup;
      const int group = static_cast<int>(std::min<int64_t>(kMaxGroup, out_blocks - kb0));
      const float* image = a.x + n * s.channels * s.height * s.width;
      // Blocked: the group's first block at row oh; NCHW: channel 0 at row oh.
      float* y_row = a.nchw_out ? a.y + (n * a.out_channels * a.out_h + oh) * a.out_w
                                : a.y + (n * out_blocks + kb0) * out_plane + oh * a.out_w * B;
      if constexpr (kMaxGroup >= 4) {
        if (group == 4) { dense_row_group<4>(a, image, kb0, oh, y_row, row); continue; }
        if (group == 3) { dense_row_group<3>(a, image, kb0, oh, y_row, row); continue; }
        if (group == 2) { dense_row_group<2>(a, image, kb0, oh, y_row, row); continue; }
      }
      dense_row_group<1>(a, image, kb0, oh, y_row, row);
    }
    if (a.stream_out) stream_fence();  // (before the closing barrier)
  }
}

// ------------------------------------------- the NCHW conv2d "stem" family
// Dense convolutions (groups 1) run through dense_tile from NCHW to NCHW:
// each tap is one broadcast input value against output-channel vectors, no
// im2col. The rule (backends/conv.py) picks it for image stems, whose few
// input channels make im2col's GEMM thin (K = C * kh * kw of 27-147).
// Forward only; weights packed as pack_dense's (K/16, C, kh, kw, 16).

int64_t stem_weight_floats(const Conv2dShape& s) {
  return (s.out_channels + B - 1) / B * B * s.in_channels * s.kernel_h * s.kernel_w;
}

int64_t stem_bias_floats(const Conv2dShape& s) { return (s.out_channels + B - 1) / B * B; }

// The workspace: the packed weights, the padded bias, then each thread's row buffer.
int64_t stem_workspace(ConvPass pass, const Conv2dShape& s, int threads) {
  if (pass != ConvPass::forward || s.groups != 1) return -1;
  return stem_weight_floats(s) + stem_bias_floats(s) + threads * dense_row_floats(s.out_w);
}

void stem_pack_into(const Conv2dShape& s, const float* w, float* packed) {
  const int64_t taps = s.in_channels * s.kernel_h * s.kernel_w;
  const int64_t k16 = (s.out_channels + B - 1) / B * B;
  for (int64_t k = 0; k < k16; ++k)
    for (int64_t t = 0; t < taps; ++t)
      packed[(k / B * taps + t) * B + k % B] = k < s.out_channels ? w[k * taps + t] : 0.0f;
}

int64_t stem_pack(const Conv2dShape& s, const float* w, float* packed, bool for_backward_data,
                  int) {
  if (for_backward_data || s.groups != 1) return -1;
  if (packed != nullptr) stem_pack_into(s, w, packed);
  return stem_weight_floats(s);
}

void stem_run(ConvPass pass, const Conv2dArgs& a) {
  if (pass != ConvPass::forward) return;  // (the workspace refuses the other passes)
  const Conv2dShape& s = a.shape;
  float* weight = a.workspace;
  float* bias = a.workspace + stem_weight_floats(s);
  if (a.packed_weight == nullptr) stem_pack_into(s, a.weight, weight);
  const int64_t k16 = stem_bias_floats(s);
  for (int64_t k = 0; k < k16; ++k) bias[k] = a.bias && k < s.out_channels ? a.bias[k] : 0.0f;
  BlockedDenseArgs d;
  d.input = BlockedShape{s.batch, s.in_channels, s.in_h, s.in_w};
  d.out_channels = s.out_channels;
  d.out_h = s.out_h;
  d.out_w = s.out_w;
  d.kernel_h = s.kernel_h;
  d.kernel_w = s.kernel_w;
  d.stride_h = s.stride_h;
  d.stride_w = s.stride_w;
  d.pad_top = s.pad_top;
  d.pad_left = s.pad_left;
  d.dilation_h = s.dilation_h;
  d.dilation_w = s.dilation_w;
  d.x = a.input;
  d.weight = a.packed_weight ? a.packed_weight : weight;
  d.bias = bias;
  d.relu = a.relu;
  d.relu_max = a.relu_max;
  d.y = a.output;
  d.nchw_out = true;
  d.row_buffers = bias + k16;
  // Outputs over 16 MiB (batch 8 and up at 224) go to memory anyway: stored
  // non-temporally, they skip the read-for-ownership and leave the cache to
  // the image and weights (AVX-512, batch 16: 1.06x). Every whole vector is
  // aligned when the rows are whole vectors and the output is aligned. Not
  // with 8-float vectors: flush_row_nchw writes each line of a plane in two
  // halves, 64 planes apart, and the write-combining buffers give up the
  // half lines (Zen 2, batch 8, 1 thread: 26.2 ms streamed, 23.2 stored).
  const bool aligned = reinterpret_cast<uintptr_t>(a.output) % (L * sizeof(float)) == 0;
  const int64_t out_floats = s.batch * s.out_channels * s.out_h * s.out_w;
  d.stream_out = L == 16 && use_streamed_outputs(a, out_floats) && s.out_w % L == 0 && aligned;
  d.num_threads = a.num_threads;
  dense_nchw(d);
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
  const bool relu = a.relu;  // a local: the stores below may alias `a`
  for (int v = 0; v < kV; ++v) (relu ? relu_clamp(acc[v], cap) : acc[v]).store(y + v * L);
}

// Q consecutive output pixels (16 channels each) to y, clamped when the op has
// a ReLU.
template <int Q>
inline void store_pixels(const BlockedDepthwiseArgs& a, const Vec (&acc)[Q][kV], float* y) {
  const Vec cap = Vec::set1(a.relu_max);
  const bool relu = a.relu;  // a local: the stores below may alias `a`
#pragma GCC unroll 16
  for (int i = 0; i < Q; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < kV; ++v)
      (relu ? relu_clamp(acc[i][v], cap) : acc[i][v]).store(y + i * B + v * L);
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
  store_pixels<Q>(a, acc, y);
}

// Q output pixels from ow for a kernel KW wide at stride S (dilation_w 1),
// reading each input vector of a kernel row once and feeding it to every
// output it overlaps (a 3-wide kernel at stride 1: 10 loads for 24 FMAs at
// Q = 8, against 24 + 3 when every tap loads its input). Taps still add in
// kernel order for each output, so results equal depthwise_interior's.
// CHECKED: input columns outside [0, width) are padding and skipped.
template <int KW, int S, int Q, bool CHECKED>
inline void depthwise_window(const BlockedDepthwiseArgs& a, const float* plane, const float* w,
                             const Vec* bias, int64_t r_lo, int64_t r_hi, int64_t ih0, int64_t ow,
                             float* y) {
  constexpr int NI = (Q - 1) * S + KW;  // input columns under the Q outputs
  const int64_t iw0 = ow * S - a.pad_left, width = a.input.width;
  Vec acc[Q][kV];
#pragma GCC unroll 16
  for (int i = 0; i < Q; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < kV; ++v) acc[i][v] = bias[v];
  for (int64_t r = r_lo; r < r_hi; ++r) {
    const float* row = plane + (ih0 + r * a.dilation_h) * width * B + iw0 * B;
    const float* wr = w + r * KW * B;
#pragma GCC unroll 16
    for (int v = 0; v < kV; ++v) {
      Vec wt[KW];
#pragma GCC unroll 8
      for (int q = 0; q < KW; ++q) wt[q] = Vec::load(wr + q * B + v * L);
#pragma GCC unroll 64
      for (int k = 0; k < NI; ++k) {
        if (CHECKED && (iw0 + k < 0 || iw0 + k >= width)) continue;
        const Vec xv = in_register(Vec::load(row + k * B + v * L));
#pragma GCC unroll 8
        for (int q = 0; q < KW; ++q) {  // the output i with i * S + q == k
          if (k < q || (k - q) % S != 0 || (k - q) / S >= Q) continue;
          acc[(k - q) / S][v] = fmadd(wt[q], xv, acc[(k - q) / S][v]);
        }
      }
    }
  }
  store_pixels<Q>(a, acc, y);
}

// The last n < N pixels of a row (checked: a row's end meets the padding).
template <int KW, int S, int N>
inline void depthwise_window_tail(const BlockedDepthwiseArgs& a, const float* plane,
                                  const float* w, const Vec* bias, int64_t r_lo, int64_t r_hi,
                                  int64_t ih0, int64_t ow, int n, float* y) {
  if constexpr (N > 1) {
    if (n == N - 1) {
      depthwise_window<KW, S, N - 1, true>(a, plane, w, bias, r_lo, r_hi, ih0, ow, y);
      return;
    }
    depthwise_window_tail<KW, S, N - 1>(a, plane, w, bias, r_lo, r_hi, ih0, ow, n, y);
  }
}

// A whole output row in windows of Q pixels; only windows that reach into the
// padding check their columns.
template <int KW, int S>
void depthwise_row_windows(const BlockedDepthwiseArgs& a, const float* plane, const float* w,
                           const Vec* bias, int64_t r_lo, int64_t r_hi, int64_t ih0, float* y_row) {
  constexpr int Q = kDepthwisePixels;
  int64_t ow = 0;
  for (; ow + Q <= a.out_w; ow += Q) {
    const int64_t first = ow * S - a.pad_left, last = first + (Q - 1) * S + KW - 1;
    if (first >= 0 && last < a.input.width)
      depthwise_window<KW, S, Q, false>(a, plane, w, bias, r_lo, r_hi, ih0, ow, y_row + ow * B);
    else
      depthwise_window<KW, S, Q, true>(a, plane, w, bias, r_lo, r_hi, ih0, ow, y_row + ow * B);
  }
  if (ow < a.out_w)
    depthwise_window_tail<KW, S, Q>(a, plane, w, bias, r_lo, r_hi, ih0, ow,
                                    static_cast<int>(a.out_w - ow), y_row + ow * B);
}

// Output row oh of channel block cb (into y_row) from input rows kept at
// `rows`: input row ih is at rows + (ih - row0) * width * 16 (a whole plane:
// row0 = 0; a band of rows in scratch: its first row). Rows outside
// [0, height) are padding and never read.
template <int KW>
void depthwise_row(const BlockedDepthwiseArgs& a, const float* rows, int64_t row0, int64_t cb,
                   int64_t oh, int64_t lo, int64_t hi, float* y_row) {
  const float* w = a.weight + cb * a.kernel_h * a.kernel_w * B;
  Vec bias[kV];
  for (int v = 0; v < kV; ++v) bias[v] = Vec::load(a.bias + cb * B + v * L);
  // Kernel rows whose input row exists: ih0 + r * dilation_h in [0, height).
  const int64_t ih0 = oh * a.stride_h - a.pad_top;
  int64_t r_lo = 0, r_hi = a.kernel_h;
  while (r_lo < r_hi && ih0 + r_lo * a.dilation_h < 0) ++r_lo;
  while (r_hi > r_lo && ih0 + (r_hi - 1) * a.dilation_h >= a.input.height) --r_hi;
  const int64_t ih_rel = ih0 - row0;  // the kernels address rows from `rows`
  if constexpr (KW > 0) {
    if (a.dilation_w == 1 && a.stride_w == 1)
      return depthwise_row_windows<KW, 1>(a, rows, w, bias, r_lo, r_hi, ih_rel, y_row);
    if (a.dilation_w == 1 && a.stride_w == 2)
      return depthwise_row_windows<KW, 2>(a, rows, w, bias, r_lo, r_hi, ih_rel, y_row);
  }
  int64_t ow = 0;
  for (; ow < lo; ++ow) depthwise_pixel(a, rows, w, bias, r_lo, r_hi, ih_rel, ow, y_row + ow * B);
  constexpr int Q = kDepthwisePixels;
  if (hi - ow >= Q) {
    for (; ow + Q <= hi; ow += Q)
      depthwise_interior<KW, Q>(a, rows, w, bias, r_lo, r_hi, ih_rel, ow, y_row + ow * B);
    if (ow < hi) {  // the last Q pixels again, overlapping: same values, no 1-wide tail
      depthwise_interior<KW, Q>(a, rows, w, bias, r_lo, r_hi, ih_rel, hi - Q, y_row + (hi - Q) * B);
      ow = hi;
    }
  }
  for (; ow < hi; ++ow)
    depthwise_interior<KW, 1>(a, rows, w, bias, r_lo, r_hi, ih_rel, ow, y_row + ow * B);
  for (; ow < a.out_w; ++ow) depthwise_pixel(a, rows, w, bias, r_lo, r_hi, ih_rel, ow, y_row + ow * B);
}

template <int KW>
void depthwise_rows(const BlockedDepthwiseArgs& a, int64_t begin, int64_t end) {
  const BlockedShape& s = a.input;
  int64_t lo, hi;
  interior_columns(a, &lo, &hi);
  for (int64_t item = begin; item < end; ++item) {  // item = (n, cb, oh)
    const int64_t oh = item % a.out_h, plane_index = item / a.out_h;
    depthwise_row<KW>(a, a.x + plane_index * s.plane(), 0, plane_index % s.blocks(), oh, lo, hi,
                      a.y + (plane_index * a.out_h + oh) * a.out_w * B);
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


// ------------------------------------------------- fused inverted residual

void inverted_residual(const BlockedInvertedResidualArgs& a) {
  const BlockedShape& s = a.input;
  const BlockedDepthwiseArgs& d = a.depthwise;
  const int64_t hidden_blocks = (a.hidden + B - 1) / B, out_blocks = (a.out_channels + B - 1) / B;
  const int64_t in_rows = (a.band_rows - 1) * d.stride_h + (d.kernel_h - 1) * d.dilation_h + 1;
  const int64_t expanded_plane = in_rows * s.width * B;   // per hidden block, in scratch
  const int64_t band_plane = a.band_rows * d.out_w * B;   // depthwise output, in scratch
  const int64_t per_thread = (hidden_blocks * (expanded_plane + band_plane) + 2 * kBlockedSlack +
                              15) / 16 * 16;
  const int64_t out_plane = d.out_h * d.out_w * B;
  const int64_t bands = (d.out_h + a.band_rows - 1) / a.band_rows;
  int64_t lo, hi;
  interior_columns(d, &lo, &hi);
#pragma omp parallel for num_threads(a.num_threads) schedule(dynamic, 1)
  for (int64_t item = 0; item < s.batch * bands; ++item) {
    const int64_t n = item / bands, o0 = (item % bands) * a.band_rows;
    const int64_t o1 = std::min(d.out_h, o0 + a.band_rows);
    float* expanded = a.workspace + omp_get_thread_num() * per_thread;
    float* band = expanded + hidden_blocks * expanded_plane + kBlockedSlack;
    const float* x = a.x + n * s.blocks() * s.plane();
    // Input rows [ih_lo, ih_hi) feed the band's outputs (the rest is padding).
    const int64_t ih_lo = std::max<int64_t>(0, o0 * d.stride_h - d.pad_top);
    const int64_t ih_hi = std::min(s.height, (o1 - 1) * d.stride_h - d.pad_top +
                                                 (d.kernel_h - 1) * d.dilation_h + 1);
    const float* rows = x;  // the depthwise input: expanded rows, or x itself
    int64_t rows_plane = s.plane(), row0 = 0;
    if (a.expand_weight) {  // (a band wholly in the padding reads no row at all)
      PointwiseView e;
      e.x = x + ih_lo * s.width * B;
      e.x_plane = s.plane();
      e.in_blocks = s.blocks();
      e.in_channels = s.channels;
      e.half_block = half_block(a.hidden);
      e.weight = a.expand_weight;
      e.weight_stride = s.blocks() * B * B;
      e.bias = a.expand_bias;
      e.y = expanded;
      e.y_plane = expanded_plane;
      e.relu = a.expand_relu;
      e.relu_max = a.expand_relu_max;
      if (ih_hi > ih_lo) pointwise_all(e, hidden_blocks, (ih_hi - ih_lo) * s.width);
      rows = expanded;
      rows_plane = expanded_plane;
      row0 = ih_lo;
    }
    for (int64_t cb = 0; cb < hidden_blocks; ++cb)
      for (int64_t oh = o0; oh < o1; ++oh) {
        const float* plane = rows + cb * rows_plane;
        float* y_row = band + cb * band_plane + (oh - o0) * d.out_w * B;
        if (d.kernel_w == 3) depthwise_row<3>(d, plane, row0, cb, oh, lo, hi, y_row);
        else if (d.kernel_w == 5) depthwise_row<5>(d, plane, row0, cb, oh, lo, hi, y_row);
        else depthwise_row<0>(d, plane, row0, cb, oh, lo, hi, y_row);
      }
    PointwiseView p;
    p.x = band;
    p.x_plane = band_plane;
    p.in_blocks = hidden_blocks;
    p.in_channels = a.hidden;
    p.half_block = half_block(a.out_channels);
    p.weight = a.project_weight;
    p.weight_stride = hidden_blocks * B * B;
    p.bias = a.project_bias;
    if (a.residual) {  // stride 1, same channels: the input pixel under each output pixel
      p.residual = x + o0 * s.width * B;
      p.residual_plane = s.plane();
    }
    p.y = a.y + n * out_blocks * out_plane + o0 * d.out_w * B;
    p.y_plane = out_plane;
    p.relu = a.project_relu;
    p.relu_max = a.project_relu_max;
    pointwise_all(p, out_blocks, (o1 - o0) * d.out_w);
  }
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(conv2d_blocked_reorder, &reorder);
  register_kernel(conv2d_blocked_inverted_residual, &inverted_residual);
  register_kernel(conv2d_blocked_dense_nchw, &dense_nchw);
  register_kernel(conv2d_blocked_pointwise, &pointwise);
  register_kernel(conv2d_blocked_depthwise, &depthwise);
  register_kernel(conv2d_stem_workspace, &stem_workspace);
  register_kernel(conv2d_stem_run, &stem_run);
  register_kernel(conv2d_stem_pack, &stem_pack);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
