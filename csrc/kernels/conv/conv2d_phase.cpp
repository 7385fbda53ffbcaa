// Direct (implicit-GEMM) convolution over stride phases, groups 1: the
// `phase` family, made for 3x3 stride-2 layers (ResNet's downsampling
// convolutions), where im2col + packed GEMM spends a third of its time
// building and packing columns and loses lanes to 7x7 and 14x14 planes.
//
// Forward: each image is split once into its sh x sw stride phases,
// zero-padded (conv2d_phase.h):
//     P[c][a][b][i][j] = xpad[c][i*sh + a][j*sw + b]      (hp x wp each)
// so tap (r, s) of output pixel (oh, ow) reads phase ((r*dh) % sh, (s*dw) % sw)
// at row oh + r*dh/sh, column ow + s*dw/sw: for every tap, the pixels of an
// output row read consecutive floats of one phase row, with no im2col.
//
// Backward-data runs on the same tiles. Input pixel (ih, iw) with
// ih + pt = i*sh + a (and likewise iw + pl = j*sw + b) receives, from tap r,
// the output gradient at row i - (r*dh)/sh if (r*dh) % sh == a, and none
// otherwise. So each of the sh*sw input phases (a, b) is a stride-1
// correlation of the zero-padded output gradient with the sub-kernel of the
// taps of that parity (3x3 stride 2: 2x2, 2x1, 1x2 and 1x1 taps), written to
// every sh-th row and sw-th column of the input gradient: no col2im scatter,
// no multiply by a zero. Stride 1 is the one phase, the forward correlation
// with the flipped kernel. Weights are packed per phase as [C/L][K][taps][L].
//
// The product y[k][p] = act(bias[k] + sum_{c, tap} W[k][c, tap] * P_tap[c][p])
// runs as a register tile of TP output pixels x KV vectors of output
// channels (AVX-512: 7 x 4 x 16 channels, 28 accumulators): per (channel,
// tap) it loads KV weight vectors and broadcasts TP input pixels, 11 loads
// per 28 FMAs (14 x 2 took 16; measured 7 x 4 against it, interleaved, bit-
// equal results: forward 1.0-1.2x, median ~1.05x, backward-data 0.95-1.18x
// over ResNet's 3x3 layers, 1 and 2 threads). Channels
// are the vector lanes, so no lane is lost to plane sizes (7x7, 14x14); a
// tile holds a run of one output row or, on planes at most TP/2 wide, two
// whole rows. The epilogue transposes the tile (pixels x channels) into the
// NCHW output planes with bias and ReLU clamp (backward-data: every sw-th
// column, by expand + masked stores with AVX-512 at stride 2).
//
// Weights are packed as [K/L vector blocks][c][tap][L] (zeros past K); eval
// mode packs them once (pack_weights) and caches them, otherwise every call
// packs them into the workspace. The inner dimension is walked in chunks of
// channels whose weights stay in L2 across the tiles of a band of output
// rows; partial sums wait in a small per-thread buffer between chunks.
//
// Threads: with at least two images per thread (or one thread), each thread
// takes whole images with its own phase buffer (on small planes, groups of
// images whose flat tiles run on from one image into the next: image_group);
// otherwise images run in turn, all threads split the phases by channel, then
// the output-channel vector blocks (and, with fewer blocks than threads, the
// output rows; backward-data also the input phases).
//
// Backward-weight (conv2d_phase_backward_weight.cpp) reads the same phases,
// channel-minor.
#include <cstdint>
#include <cstring>

#include <omp.h>

#include "kernels/conv/conv2d.h"
#include "kernels/conv/conv2d_phase.h"
#include "kernels/conv/conv2d_transpose.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int64_t L = Vec::kWidth;
#if defined(__AVX512F__)
constexpr int TP = 7;  // pixels per tile: 7 x 4 accumulators of 32 zmm (see above)
#elif defined(__AVX2__)
constexpr int TP = 6;   // 12 of 16 ymm
#else
constexpr int TP = 4;
#endif
// Channel vectors per tile (a layer's last group of vector blocks may have fewer).
#if defined(__AVX512F__)
constexpr int KV = 4;
#else
constexpr int KV = 2;
#endif
static_assert(TP <= L || L == 1, "the epilogue transposes a tile's pixels into one vector");
// AVX2 only, as measured there: flat tiles (see tile_plan), the 3x3 tap loop
// of row tiles unrolled (64->128 s2 @56 batch 8: 4% faster on Zen 2) and the
// other tiles' (channel, tap) pairs walked as one loop (phase_tile); AVX-512's
// tile keeps its one-tap loop (unrolled, GCC spilled more of its 32 registers).
#if defined(__AVX512F__)
constexpr bool kFlatTiles = false;
constexpr bool kUnrollTaps = false;
#elif defined(__AVX2__)
constexpr bool kFlatTiles = true;
constexpr bool kUnrollTaps = true;
#else
constexpr bool kFlatTiles = true;
constexpr bool kUnrollTaps = false;
#endif
constexpr int64_t kMaxTaps = kPhaseMaxTaps;
constexpr int64_t kMaxStride = kPhaseMaxStride;
constexpr int64_t kMaxPhases = kMaxStride * kMaxStride;
// Weights of one channel chunk (KV vectors x channels x taps): ~128 KiB.
constexpr int64_t kChunkFloats = int64_t(1) << 15;
// (channel, tap) pairs per chunk, at most: chunk * taps * KV * L <= kChunkFloats,
// or one channel of kMaxTaps taps.
constexpr int64_t kMaxChunkPairs = kChunkFloats / (KV * L) > kPhaseMaxTaps
                                       ? kChunkFloats / (KV * L) : kPhaseMaxTaps;
// Partial sums of one band of tiles between channel chunks, per thread (at
// least one row of tiles).
constexpr int64_t kPartialFloats = int64_t(1) << 14;

int64_t round16(int64_t v) { return (v + 15) / 16 * 16; }
int64_t vector_blocks(int64_t K) { return (K + L - 1) / L; }

// One correlation the tiles compute: K output channels over an out_h x out_w
// grid, reducing over C source channels x taps. Tile pixel (i, j) reads
// src + i*wp + j + tapoff[tap] (+ c*cstride) and writes
// y + k*ychan + i*yrow + j*ycol.
struct TilePlan {
  int64_t C, K, taps;
  int64_t cstride, wp;
  int64_t out_h, out_w;
  int64_t ychan, yrow, ycol;
  int64_t blocks;     // vector blocks of output channels: ceil(K / L)
  int64_t width, rows_per_tile, runs;  // tiles: runs per row of `width` pixels, or 2 rows
  bool flat;          // tiles of TP consecutive pixels of the flattened grid instead
  // Flat tiles only: the grid is `images` grids one after the other, image i's
  // source at src + i * src_image and output at y + i * y_image (see
  // image_group).
  int64_t images = 1, src_image = 0, y_image = 0;
  int64_t band;       // output rows per band (flat: pixels)
  int64_t partial_floats;  // per thread: the band's partial sums (~kPartialFloats)
                           // and, from pair_offset, the chunk's pair offsets
  int64_t pair_offset;     // (AVX2: see phase_tile), else -1
  int64_t chunk;      // source channels per chunk
};

// Whether tiles of this plan walk (channel, tap) pairs (phase_tile): on AVX2
// all but row tiles of 3x3 kernels, which unroll their 9 taps.
bool uses_pairs(const TilePlan& p) { return kUnrollTaps && (p.flat || p.taps != 9); }

TilePlan tile_plan(int64_t C, int64_t K, int64_t taps, int64_t cstride, int64_t wp,
                   int64_t out_h, int64_t out_w, int64_t ychan, int64_t yrow, int64_t ycol) {
  TilePlan p;
  p.C = C;
  p.K = K;
  p.taps = taps;
  p.cstride = cstride;
  p.wp = wp;
  p.out_h = out_h;
  p.out_w = out_w;
  p.ychan = ychan;
  p.yrow = yrow;
  p.ycol = ycol;
  p.blocks = vector_blocks(K);
  if (2 * out_w <= TP) {  // narrow planes: two whole rows per tile
    p.width = out_w;
    p.rows_per_tile = 2;
    p.runs = 1;
  } else {
    p.runs = (out_w + TP - 1) / TP;
    p.width = (out_w + p.runs - 1) / p.runs;
    p.rows_per_tile = 1;
  }
  // Flat tiles where they are at least 10% fewer than row tiles: with 6-pixel
  // tiles (AVX2), a 7-wide grid runs tiles of 4 and 3 pixels by rows, 6 flat.
  // Zen 2, 1 thread, batch 8: 512->512 3x3 at 7x7 26.5 -> 21.0 ms, 256->512
  // s2 @14 14.5 -> 11.8, backward-data of 128->256 s2 @28 (14x14 phases)
  // 13.7 -> 10.4. A flat tile reads through per-pixel pointers and cannot
  // unroll its 9 taps as a row tile does, so on 28-wide grids (6% fewer
  // tiles) rows stay ahead. AVX-512's 7-pixel tiles divide ResNet's
  // 7/14/28/56-wide grids and were not measured flat: rows there.
  const int64_t row_tiles = p.rows_per_tile == 2 ? (out_h + 1) / 2 : out_h * p.runs;
  const int64_t flat_tiles = (out_h * out_w + TP - 1) / TP;
  p.flat = kFlatTiles && flat_tiles * 10 <= row_tiles * 9;
  const int64_t tile_floats = TP * KV * L;
  if (p.flat) {
    const int64_t tiles = kPartialFloats / tile_floats > 1 ? kPartialFloats / tile_floats : 1;
    p.band = tiles * TP;
    p.partial_floats = tiles * tile_floats;
  } else {
    const int64_t row_floats = p.runs * tile_floats;  // partial sums of a row of tiles
    const int64_t tile_rows = kPartialFloats / row_floats > 1 ? kPartialFloats / row_floats : 1;
    p.band = tile_rows * p.rows_per_tile;
    p.partial_floats = tile_rows * row_floats;
  }
  p.pair_offset = -1;
  if (uses_pairs(p)) {  // int64 offsets, 2 floats each (partial_floats is even)
    p.pair_offset = p.partial_floats;
    p.partial_floats += 2 * kMaxChunkPairs;
  }
  int64_t cc = kChunkFloats / (KV * L * (taps > 0 ? taps : 1));
  if (cc < 1) cc = 1;
  const int64_t chunks = (C + cc - 1) / cc;
  p.chunk = (C + chunks - 1) / chunks;
  return p;
}

// Packed weights: [K/L vector blocks][inner][L], inner = C * taps (OIHW order),
// zeros past K. Whole L x L squares go through a register transpose.
void pack_blocks(int64_t K, int64_t inner, const float* w, float* packed, int threads) {
  const int64_t blocks = vector_blocks(K);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t k0 = b * L, kn = (K - k0) < L ? (K - k0) : L;
    float* dst = packed + b * inner * L;
    int64_t j = 0;
    if (kn == L) {
      for (; j + L <= inner; j += L) {
        Vec r[L];
        for (int64_t l = 0; l < L; ++l) r[l] = Vec::load(w + (k0 + l) * inner + j);
        transpose_lx(r);
        for (int64_t l = 0; l < L; ++l) r[l].store(dst + (j + l) * L);
      }
    }
    for (; j < inner; ++j)
      for (int64_t l = 0; l < L; ++l) dst[j * L + l] = l < kn ? w[(k0 + l) * inner + j] : 0.0f;
  }
}

// Needs only the channel counts and kernel size of the shape.
int64_t pack_weights(const Conv2dShape& s, const float* w, float* packed, bool for_backward_data,
                     int threads) {
  if (for_backward_data || s.groups != 1 || s.kernel_h * s.kernel_w > kMaxTaps) return -1;
  const int64_t inner = s.in_channels * s.kernel_h * s.kernel_w;
  if (packed != nullptr) pack_blocks(s.out_channels, inner, w, packed, threads);
  return vector_blocks(s.out_channels) * L * inner;
}

// Phase rows [i0, i1) of channel plane xc, every phase, into pc (cstride
// floats). Input rows in order: phase row i of row phase a holds input row
// i*sh + a - pad_top.
void split_channel_rows(const Conv2dShape& s, const PhaseSplit& g, const float* xc, float* pc,
                        int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t a = 0; a < g.sh; ++a)
      for (int64_t b = 0; b < g.sw; ++b)
        phase_row(s, g, xc, a, b, i, pc + (a * g.sw + b) * g.plane + i * g.wp);
}

// The phases of one image (x: its C planes) into ph (C x cstride floats);
// channels split over the threads of the enclosing region when `parallel`.
void split_phases(const Conv2dShape& s, const PhaseSplit& g, int64_t cstride, const float* x,
                  float* ph, bool parallel) {
  const int64_t in_plane = s.in_h * s.in_w;
  const int64_t C = s.in_channels;
  auto channel = [&](int64_t c) {
    const float* xc = x + c * in_plane;
    if (c + 1 < C) {  // the next plane into L2 while this one is copied (measured:
      // batch-8 inputs come from memory, and the copy waited on them)
      const char* next = reinterpret_cast<const char*>(xc + in_plane);
      for (int64_t off = 0; off < in_plane * 4; off += 64) __builtin_prefetch(next + off, 0, 2);
    }
    split_channel_rows(s, g, xc, ph + c * cstride, 0, g.hp);
  };
  if (parallel) {
#pragma omp for schedule(static)
    for (int64_t c = 0; c < C; ++c) channel(c);
  } else {
    for (int64_t c = 0; c < C; ++c) channel(c);
  }
}

// Phase rows [i0, i1) of every channel of one image (x) into ph: one thread's
// share when the threads split an image by rows.
void split_phase_rows(const Conv2dShape& s, const PhaseSplit& g, int64_t cstride, const float* x,
                      float* ph, int64_t i0, int64_t i1) {
  const int64_t in_plane = s.in_h * s.in_w;
  for (int64_t c = 0; c < s.in_channels; ++c)
    split_channel_rows(s, g, x + c * in_plane, ph + c * cstride, i0, i1);
}

struct TileArgs {
  const TilePlan* p;
  const int64_t* tapoff;  // per tap: offset from the tile's source pixel
  const float* bias;      // at the vector block's first channel, nullable
  bool relu;
  float relu_max;
  int64_t kvalid;         // output channels from the block's first that exist
  int64_t c0, c1;         // the channel chunk
  float* partial;         // the tile's partial sums between chunks
  // Forward: a residual added before the activation, laid out as the output;
  // res_base corresponds to out_base (compute's y), so a tile writing at y
  // reads the residual at res_base + (y - out_base). Null: none.
  const float* res_base = nullptr;
  const float* out_base = nullptr;
  // A flat tile's output pixels, as offsets from its first, where they are not
  // consecutive (backward-data at stride 2 writes every second column). Null:
  // consecutive, or a row tile.
  const int64_t* yoff = nullptr;
  // Source offsets of the chunk's (channel, tap) pairs, channel-major, from c0.
  const int64_t* pairoff = nullptr;
};

// v's lanes [first, first + n) to d[0], d[stride], ..., d[(n - 1) * stride].
inline void store_run(Vec v, int first, int n, int64_t stride, float* d) {
#if defined(__AVX512F__)
  __m512 u = v.v;
  if (first > 0)
    u = _mm512_maskz_compress_ps(static_cast<__mmask16>(((1u << n) - 1u) << first), u);
  if (stride == 1) {
    Vec(u).store_partial(d, n);
    return;
  }
  if (stride == 2) {  // even lanes of two vectors; the odd columns are another phase's
    const int lo = n < 8 ? n : 8;
    _mm512_mask_storeu_ps(d, static_cast<__mmask16>(0x5555u & ((1u << (2 * lo - 1)) - 1u)),
                          _mm512_maskz_expand_ps(0x5555, u));
    if (n > 8) {
      const __m512 hi = _mm512_maskz_compress_ps(0xFF00, u);
      _mm512_mask_storeu_ps(d + 16,
                            static_cast<__mmask16>(0x5555u & ((1u << (2 * (n - 8) - 1)) - 1u)),
                            _mm512_maskz_expand_ps(0x5555, hi));
    }
    return;
  }
#endif
  float lanes[L];
  v.store(lanes);
  for (int i = 0; i < n; ++i) d[i * stride] = lanes[first + i];
}

// The sums of a tile (NR rows of W pixels x V vectors, in t.partial) plus
// bias and the residual (if any), clamped, into the output planes (y: the
// tile's first pixel of the vector block's first channel). Kept out of line
// so the tile's loop has every vector register.
__attribute__((noinline)) void finish_tile(const TileArgs& t, int W, int NR, int V, float* y) {
  const TilePlan& p = *t.p;
  const int R = W * NR;
  const Vec cap = Vec::set1(t.relu_max);
  const float* res = t.res_base ? t.res_base + (y - t.out_base) : nullptr;
  // the tile's pixels consecutive in the output (forward, backward-data at stride 1)
  const bool contiguous = t.yoff == nullptr && p.ycol == 1 && (NR == 1 || p.yrow == W);
  // Channel k's R pixels (lanes as the tile's pixels): + bias, + residual, clamp.
  auto act = [&](Vec o, int64_t k) {
    if (t.bias) o = o + Vec::set1(t.bias[k]);
    if (res) {
      const float* rk = res + k * p.ychan;
      if (contiguous) {
        o = o + Vec::load_partial(rk, R);
      } else {
        alignas(64) float lanes[L];
        for (int i = 0; i < R; ++i)
          lanes[i] = rk[t.yoff ? t.yoff[i] : (i / W) * p.yrow + (i % W) * p.ycol];
        o = o + Vec::load_partial(lanes, R);
      }
    }
    return t.relu ? relu_clamp(o, cap) : o;
  };
  for (int v = 0; v < V; ++v) {
    if constexpr (L == 1) {  // one channel per vector: pixel by pixel
      if (v >= t.kvalid) break;
      for (int i = 0; i < R; ++i) {
        const int64_t at =
            v * p.ychan + (t.yoff ? t.yoff[i] : (i / W) * p.yrow + (i % W) * p.ycol);
        Vec o = Vec::load(t.partial + i * V + v);
        if (t.bias) o = o + Vec::set1(t.bias[v]);
        if (res) o = o + Vec::load(res + at);
        o = t.relu ? relu_clamp(o, cap) : o;
        o.store(y + at);
      }
    } else {
      Vec r[L];  // r[l]: the R pixels of channel v*L + l
      for (int l = 0; l < L; ++l)
        r[l] = l < R ? Vec::load(t.partial + (l * V + v) * L) : Vec::zero();
      transpose_lx(r);
      for (int l = 0; l < L && v * L + l < t.kvalid; ++l) {
        const Vec o = act(r[l], v * L + l);
        float* d = y + (v * L + l) * p.ychan;
        if (contiguous) {
          o.store_partial(d, R);
        } else if (t.yoff) {
          alignas(64) float lanes[L];
          o.store(lanes);
          for (int i = 0; i < R; ++i) d[t.yoff[i]] = lanes[i];
        } else {
          for (int row = 0; row < NR; ++row) store_run(o, row * W, W, p.ycol, d + row * p.yrow);
        }
      }
    }
  }
}

// acc[pixel][v] += sum over the chunk's channels and taps; src: the source
// image at the tile's first pixel (NR rows of W pixels, rows wp apart; with
// FLAT, NR == 1 and pixel x at src + off[x], the tile's W pixels running on
// across rows), w: the packed weights of its first vector block. Sums go back
// to t.partial; the last chunk then finishes the tile into y. TAPS: the tap
// count when known at compile time (9: the tap loop unrolled), else 0.
// Out of line: inlined into compute, the tile's code (registers, unrolling)
// moved with every change around it, flat tiles by 5-10% between builds.
template <int W, int NR, int V, int TAPS, bool FLAT>
__attribute__((noinline)) void phase_tile(const TileArgs& t, const float* src,
                                          const int64_t* off, const float* w,
                                          float* y) {
  constexpr int R = W * NR;
  const TilePlan& p = *t.p;
  const int64_t taps = TAPS > 0 ? TAPS : p.taps, wp = p.wp;
  const int64_t wstride = p.C * taps * L;
  const float* px[W];
#pragma GCC unroll 16
  for (int x = 0; x < W; ++x) px[x] = FLAT ? src + off[x] : src + x;
  Vec acc[R][V];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      acc[i][v] = t.c0 == 0 ? Vec::zero() : Vec::load(t.partial + (i * V + v) * L);
  w += t.c0 * taps * L;
  // one tap of channel c: d is its source offset, w its packed weights
  auto tap = [&](int64_t d, const float* wk) __attribute__((always_inline)) {
    Vec wv[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) wv[v] = Vec::load(wk + v * wstride);
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
#pragma GCC unroll 16
      for (int x = 0; x < W; ++x) {
        const Vec xi = Vec::set1(FLAT ? px[x][d] : src[d + r * wp + x]);
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) acc[r * W + x][v] = fmadd(xi, wv[v], acc[r * W + x][v]);
      }
    }
  };
  if constexpr (TAPS > 0) {
    for (int64_t c = t.c0; c < t.c1; ++c, w += taps * L) {
      const int64_t pc = c * p.cstride;
#pragma GCC unroll 9
      for (int64_t k = 0; k < taps; ++k) tap(pc + t.tapoff[k], w + k * L);
    }
  } else if constexpr (kUnrollTaps) {
    // (channel, tap) pairs as one loop: backward-data's phases have 1-4 taps
    const int64_t pairs = (t.c1 - t.c0) * taps;
#pragma GCC unroll 4
    for (int64_t j = 0; j < pairs; ++j) tap(t.pairoff[j], w + j * L);
  } else {
    for (int64_t c = t.c0; c < t.c1; ++c, w += taps * L) {
      const int64_t pc = c * p.cstride;
      for (int64_t k = 0; k < taps; ++k) tap(pc + t.tapoff[k], w + k * L);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[i][v].store(t.partial + (i * V + v) * L);
  if (t.c1 == p.C) finish_tile(t, W, NR, V, y);
}

// phase_tile for a run-time count of vectors (1..KV).
template <int W, int NR, bool FLAT, int V = KV>
void with_vectors(int vectors, const TileArgs& t, const float* src, const int64_t* off,
                  const float* w, float* y) {
  if constexpr (V > 1) {
    if (vectors < V) {
      with_vectors<W, NR, FLAT, V - 1>(vectors, t, src, off, w, y);
      return;
    }
  }
  // AVX2: row tiles of 3x3 kernels (9 taps) channel by channel with the tap loop
  // unrolled; flat tiles and other kernels over (channel, tap) pairs
  if constexpr (kUnrollTaps && !FLAT) {
    if (!uses_pairs(*t.p)) {
      phase_tile<W, NR, V, 9, FLAT>(t, src, off, w, y);
      return;
    }
  }
  phase_tile<W, NR, V, 0, FLAT>(t, src, off, w, y);
}

// phase_tile for a run-time width (<= TP), row count (1, or 2 with 2W <= TP)
// and vector count (1..KV).
template <int W>
void tile_of_width(int width, int rows, int vectors, const TileArgs& t, const float* src,
                   const float* w, float* y) {
  if constexpr (W > 1) {
    if (width < W) {
      tile_of_width<W - 1>(width, rows, vectors, t, src, w, y);
      return;
    }
  }
  if constexpr (2 * W <= TP) {
    if (rows == 2) {
      with_vectors<W, 2, false>(vectors, t, src, nullptr, w, y);
      return;
    }
  }
  with_vectors<W, 1, false>(vectors, t, src, nullptr, w, y);
}

// A flat tile: `width` (<= TP) consecutive pixels of the flattened output grid,
// pixel x read at src + off[x].
template <int W>
void flat_tile_of_width(int width, int vectors, const TileArgs& t, const float* src,
                        const int64_t* off, const float* w, float* y) {
  if constexpr (W > 1) {
    if (width < W) {
      flat_tile_of_width<W - 1>(width, vectors, t, src, off, w, y);
      return;
    }
  }
  with_vectors<W, 1, true>(vectors, t, src, off, w, y);
}

struct Epilogue {
  const float* bias = nullptr;
  bool relu = false;
  float relu_max = 0.0f;
  const float* residual = nullptr;  // forward: the image's, laid out as its output
};

// The source offsets of channels [c0, c1) x every tap, channel-major.
void fill_pairs(const TilePlan& p, const int64_t* tapoff, int64_t c0, int64_t c1,
                int64_t* pairoff) {
  for (int64_t c = c0, j = 0; c < c1; ++c)
    for (int64_t k = 0; k < p.taps; ++k) pairoff[j++] = c * p.cstride + tapoff[k];
}

// Vector blocks [v0, v1) x output rows [r0, r1) of one correlation (src: its
// source image, y: its output at grid pixel (0, 0), channel 0); partial:
// p.partial_floats of this thread's scratch.
void compute(const TilePlan& p, const int64_t* tapoff, const float* packed, const float* src,
             float* y, const Epilogue& e, int64_t v0, int64_t v1, int64_t r0, int64_t r1,
             float* partial) {
  const int64_t inner = p.C * p.taps, tile_floats = TP * KV * L;
  TileArgs t{&p, tapoff, nullptr, e.relu, e.relu_max, 0, 0, 0, partial, e.residual, y};
  int64_t* pairoff = p.pair_offset < 0 ? nullptr
                                        : reinterpret_cast<int64_t*>(partial + p.pair_offset);
  t.pairoff = pairoff;
  // tiles() for each channel chunk, the partial sums and pair offsets set up
  auto each_chunk = [&](auto&& tiles) {
    for (t.c0 = 0; t.c0 < p.C; t.c0 += p.chunk) {
      t.c1 = (t.c0 + p.chunk) < p.C ? (t.c0 + p.chunk) : p.C;
      t.partial = partial;
      if (pairoff) fill_pairs(p, tapoff, t.c0, t.c1, pairoff);
      tiles();
    }
  };
  for (int64_t g = v0; g < v1; g += KV) {
    const int vectors = static_cast<int>((v1 - g) < KV ? (v1 - g) : KV);
    const int64_t k0 = g * L;
    t.bias = e.bias ? e.bias + k0 : nullptr;
    t.kvalid = p.K - k0;
    const float* w = packed + g * inner * L;
    float* yk = y + k0 * p.ychan;
    if (p.flat) {  // pixels [r0 * out_w, r1 * out_w) of the flattened grid (of each image)
      // output pixels consecutive within an image
      const bool dense = p.ycol == 1 && p.yrow == p.out_w;
      const int64_t grid = p.out_h * p.out_w;
      for (int64_t b0 = r0 * p.out_w, end = (p.images - 1) * grid + r1 * p.out_w; b0 < end;
           b0 += p.band) {
        const int64_t b1 = (b0 + p.band) < end ? (b0 + p.band) : end;
        each_chunk([&] {
          for (int64_t q = b0; q < b1; q += TP, t.partial += tile_floats) {
            const int n = static_cast<int>((b1 - q) < TP ? (b1 - q) : TP);
            int64_t off[TP], yoff[TP];
            const int64_t img0 = q / grid, oh0 = q % grid / p.out_w, ow0 = q % p.out_w;
            // (a tile that runs on into the next image has no common stride)
            const bool consecutive = dense && (q + n - 1) / grid == img0;
            for (int64_t i = 0, img = img0, oh = oh0, ow = ow0; i < n; ++i) {
              off[i] = (img - img0) * p.src_image + oh * p.wp + ow;
              if (!consecutive)
                yoff[i] = (img - img0) * p.y_image + (oh - oh0) * p.yrow + (ow - ow0) * p.ycol;
              if (++ow == p.out_w) {
                ow = 0;
                if (++oh == p.out_h) oh = 0, ++img;
              }
            }
            t.yoff = consecutive ? nullptr : yoff;
            flat_tile_of_width<TP>(n, vectors, t, src + img0 * p.src_image, off, w,
                                   yk + img0 * p.y_image + oh0 * p.yrow + ow0 * p.ycol);
          }
        });
      }
      continue;
    }
    for (int64_t b0 = r0; b0 < r1; b0 += p.band) {
      const int64_t b1 = (b0 + p.band) < r1 ? (b0 + p.band) : r1;
      each_chunk([&] {
        for (int64_t oh = b0; oh < b1; oh += p.rows_per_tile) {
          const int rows = static_cast<int>((b1 - oh) < p.rows_per_tile ? (b1 - oh)
                                                                        : p.rows_per_tile);
          for (int64_t j = 0; j < p.runs; ++j, t.partial += tile_floats) {
            const int64_t ow0 = j * p.width, ow1 = (ow0 + p.width) < p.out_w ? (ow0 + p.width)
                                                                               : p.out_w;
            tile_of_width<TP>(static_cast<int>(ow1 - ow0), rows, vectors, t,
                              src + oh * p.wp + ow0, w, yk + oh * p.yrow + ow0 * p.ycol);
          }
        }
      });
    }
  }
}

// ------------------------------------------------------------------ forward

struct ForwardPlan {
  PhaseSplit g;
  TilePlan tiles;
  int64_t image_floats;  // one image's phases
  bool per_image;        // threads take whole images, `group` at a time
  int64_t group;         // images per work item (their phases one after the other)
  int64_t groups;        // work items: ceil(batch / group)
  int64_t image_buffers; // groups of phases in the workspace
  int64_t tapoff[kMaxTaps];
};

// Images per work item when threads take whole images. On small planes (7x7
// outputs: 49 pixels, 9 flat tiles) one image's tiles are too few to pay for
// streaming each channel chunk's weights into L2 (a 512->512 layer's 9.4 MB
// come from L3 once per image), and the last, mostly empty tile costs about
// as much as a full one; flat tiles that run on through a group of images
// reuse each chunk's weights over ~kGroupPixels pixels and leave one partial
// tile per group. Zen 2, batch 8, 512->512 3x3 @7, forward: 1 thread 64-66
// -> 78-80 GFLOP/s, 2 threads 124 -> 143-149 (medians).
constexpr int64_t kGroupPixels = 196;
// At most this many floats of one channel chunk's sources over the group
// (512 KiB, L2's size: the group's 7x7 stride-2 phases of 256 channels, 4
// images, still pays).
constexpr int64_t kGroupChunkFloats = int64_t(1) << 17;

// Images per group for a plan whose largest grid has `grid` pixels: 1 unless
// its tiles are flat and each thread gets at least two images.
int64_t image_group(const TilePlan& p, int64_t grid, int64_t batch, int threads) {
  const int64_t per_thread = (batch + threads - 1) / threads;
  if (!p.flat || grid >= kGroupPixels || per_thread < 2) return 1;
  int64_t group = (kGroupPixels + grid - 1) / grid;
  if (group > per_thread) group = per_thread;
  while (group > 1 && group * p.chunk * p.cstride > kGroupChunkFloats) --group;
  return group;
}

ForwardPlan forward_plan(const Conv2dShape& s, int threads) {
  ForwardPlan f;
  f.g = phase_split(s);
  const PhaseSplit& g = f.g;
  const int64_t cstride = g.sh * g.sw * g.plane;
  f.tiles = tile_plan(s.in_channels, s.out_channels, s.kernel_h * s.kernel_w, cstride, g.wp,
                      s.out_h, s.out_w, s.out_h * s.out_w, s.out_w, 1);
  f.image_floats = round16(s.in_channels * cstride);
  f.per_image = threads <= 1 || s.batch >= 2 * threads;
  f.group = f.per_image ? image_group(f.tiles, s.out_h * s.out_w, s.batch, threads) : 1;
  f.groups = (s.batch + f.group - 1) / f.group;
  f.image_buffers = f.per_image ? (threads < f.groups ? threads : f.groups) : 1;
  f.tiles.src_image = f.image_floats;
  f.tiles.y_image = s.out_channels * s.out_h * s.out_w;
  phase_tap_offsets(s, g, f.tapoff);
  return f;
}

int64_t forward_workspace(const Conv2dShape& s, int threads) {
  const ForwardPlan f = forward_plan(s, threads);
  return f.image_buffers * f.group * f.image_floats + threads * f.tiles.partial_floats +
         round16(vector_blocks(s.out_channels) * L * s.in_channels * s.kernel_h * s.kernel_w);
}

void forward(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const int threads = a.num_threads;
  const ForwardPlan f = forward_plan(s, threads);
  const TilePlan& p = f.tiles;
  float* images = a.workspace;
  float* partials = images + f.image_buffers * f.group * f.image_floats;
  const float* packed = a.packed_weight;
  if (packed == nullptr) {
    float* mine = partials + threads * p.partial_floats;
    pack_blocks(p.K, p.C * p.taps, a.weight, mine, threads);
    packed = mine;
  }
  const int64_t in_image = s.in_channels * s.in_h * s.in_w;
  const int64_t out_image = s.out_channels * s.out_h * s.out_w;
  auto epilogue = [&](int64_t n) {
    return Epilogue{a.bias, a.relu, a.relu_max,
                    a.residual ? a.residual + n * out_image : nullptr};
  };
  if (f.per_image) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t item = 0; item < f.groups; ++item) {
      const int me = omp_get_thread_num();
      const int64_t n0 = item * f.group;
      TilePlan pg = p;
      pg.images = (s.batch - n0) < f.group ? (s.batch - n0) : f.group;
      float* ph = images + me * f.group * f.image_floats;
      for (int64_t i = 0; i < pg.images; ++i)
        split_phases(s, f.g, p.cstride, a.input + (n0 + i) * in_image, ph + i * f.image_floats,
                     false);
      compute(pg, f.tapoff, packed, ph, a.output + n0 * out_image, epilogue(n0), 0, p.blocks, 0,
              s.out_h, partials + me * p.partial_floats);
    }
    return;
  }
  // Fewer than two images per thread: all threads on each image in turn.
  // With enough output rows to share evenly (4 per thread: within 1/8), each
  // thread writes the phase rows of its share of the image and computes those
  // output rows for every output block, so it mostly reads what it wrote.
  // Split by channels for the phases and by output blocks for the compute,
  // every thread read the other's half of the phases and the next call's
  // split then had to take those lines back (64->128 s2 @56, batch 1, 2
  // threads: 0.275 -> 0.262 ms; in this VM's periods of slow cross-core
  // traffic the old split ran no faster on 2 threads than on 1, 0.54 ms).
  if (s.out_h >= 4 * threads) {
#pragma omp parallel num_threads(threads)
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      for (int64_t n = 0; n < s.batch; ++n) {
        split_phase_rows(s, f.g, p.cstride, a.input + n * in_image, images, f.g.hp * t / nt,
                         f.g.hp * (t + 1) / nt);
#pragma omp barrier
        compute(p, f.tapoff, packed, images, a.output + n * out_image, epilogue(n), 0, p.blocks,
                s.out_h * t / nt, s.out_h * (t + 1) / nt, partials + t * p.partial_floats);
#pragma omp barrier
      }
    }
    return;
  }
  // Otherwise items are groups of KV vector blocks (each reads its own share of
  // the weights), cut into row ranges when that makes fewer than two items per
  // thread; they are handed out dynamically, so a thread whose core is busy
  // with another process just takes fewer.
  const int64_t groups = (p.blocks + KV - 1) / KV;
  int64_t rparts = (2 * threads + groups - 1) / groups;
  if (rparts > s.out_h) rparts = s.out_h;
#pragma omp parallel num_threads(threads)
  for (int64_t n = 0; n < s.batch; ++n) {
    split_phases(s, f.g, p.cstride, a.input + n * in_image, images, true);
    // (implicit barrier: the phases are complete)
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < groups * rparts; ++item) {
      const int64_t g = item / rparts, rp = item % rparts;
      compute(p, f.tapoff, packed, images, a.output + n * out_image, epilogue(n), g * KV,
              (g + 1) * KV < p.blocks ? (g + 1) * KV : p.blocks, rp * s.out_h / rparts,
              (rp + 1) * s.out_h / rparts, partials + omp_get_thread_num() * p.partial_floats);
    }
    // implicit barrier before the next image overwrites the phases
  }
}

// ------------------------------------------------------------ backward-data

// The source is the output gradient, zero-padded: K planes of hp x wp, gy's
// pixel (oh, ow) at row oh + pt, column ow + pl. Input phase (a, b) covers
// input rows ih = i*sh + a - pad_top for i in [i0, i0 + rows) (and columns
// likewise); its tap (r, q) reads source row i - i0 + (i0 + pt - (r*dh)/sh)
// of the tile's grid, with r*dh = a (mod sh).
struct DataPhase {
  TilePlan tiles;        // grid: the phase's rows x columns; source channels K, outputs C
  int64_t first_tap;     // its taps' offsets: tapoff[first_tap, first_tap + tiles.taps)
  int64_t y_offset;      // grad_input offset of its grid pixel (0, 0)
  int64_t packed_offset; // its packed weights: [C/L][K][taps][L]
  bool empty;            // no input pixel in this phase
};

struct DataPlan {
  int64_t pt, pl;        // gy's first row / column in the padded source
  int64_t hp, wp, plane;
  int64_t image_floats;
  int64_t phases;
  DataPhase phase[kMaxPhases];
  int64_t tapoff[kMaxTaps];    // phase by phase
  int64_t tap_phase[kMaxTaps], tap_slot[kMaxTaps];  // per original tap: phase, index in it
  int64_t partial_floats;  // the largest phase's
  int64_t packed_floats;
  bool per_image;
  int64_t group;          // images per work item (see image_group; flat phases only)
  int64_t groups;         // work items: ceil(batch / group)
  int64_t image_buffers;  // groups of sources in the workspace
};

// The phase's first grid index and count along one axis: positions
// x = i*stride + a - pad in [0, size).
void axis_range(int64_t size, int64_t stride, int64_t pad, int64_t a, int64_t* first,
                int64_t* count) {
  *first = (pad - a + stride - 1) / stride;  // pad - a > -stride
  const int64_t top = size - 1 + pad - a;
  *count = top < 0 ? 0 : top / stride + 1 - *first;
  if (*count < 0) *count = 0;
}

void data_plan(const Conv2dShape& s, int threads, DataPlan* d) {
  const int64_t sh = s.stride_h, sw = s.stride_w, kh = s.kernel_h, kw = s.kernel_w;
  const int64_t K = s.out_channels, C = s.in_channels;
  d->pt = (kh - 1) * s.dilation_h / sh;
  d->pl = (kw - 1) * s.dilation_w / sw;
  int64_t rows_end = s.out_h, cols_end = s.out_w;  // grid rows / columns the tiles reach
  int64_t row_first[kMaxStride], row_count[kMaxStride], col_first[kMaxStride],
      col_count[kMaxStride];
  for (int64_t a = 0; a < sh; ++a) {
    axis_range(s.in_h, sh, s.pad_top, a, &row_first[a], &row_count[a]);
    if (row_first[a] + row_count[a] > rows_end) rows_end = row_first[a] + row_count[a];
  }
  for (int64_t b = 0; b < sw; ++b) {
    axis_range(s.in_w, sw, s.pad_left, b, &col_first[b], &col_count[b]);
    if (col_first[b] + col_count[b] > cols_end) cols_end = col_first[b] + col_count[b];
  }
  d->hp = d->pt + rows_end;
  d->wp = d->pl + cols_end;
  d->plane = d->hp * d->wp;
  d->image_floats = round16(K * d->plane);
  d->phases = sh * sw;
  d->partial_floats = 0;
  const int64_t cblocks = vector_blocks(C);
  int64_t ntaps = 0;
  for (int64_t a = 0; a < sh; ++a) {
    for (int64_t b = 0; b < sw; ++b) {
      DataPhase& ph = d->phase[a * sw + b];
      ph.first_tap = ntaps;
      for (int64_t r = 0; r < kh; ++r) {
        if ((r * s.dilation_h) % sh != a) continue;
        for (int64_t q = 0; q < kw; ++q) {
          if ((q * s.dilation_w) % sw != b) continue;
          const int64_t mr = r * s.dilation_h / sh, mq = q * s.dilation_w / sw;
          d->tapoff[ntaps] = (row_first[a] + d->pt - mr) * d->wp + (col_first[b] + d->pl - mq);
          d->tap_phase[r * kw + q] = a * sw + b;
          d->tap_slot[r * kw + q] = ntaps - ph.first_tap;
          ++ntaps;
        }
      }
      const int64_t taps = ntaps - ph.first_tap;
      ph.empty = row_count[a] == 0 || col_count[b] == 0;
      ph.tiles = tile_plan(K, C, taps, d->plane, d->wp, row_count[a], col_count[b],
                           s.in_h * s.in_w, sh * s.in_w, sw);
      ph.tiles.y_image = C * s.in_h * s.in_w;
      ph.y_offset = (row_first[a] * sh + a - s.pad_top) * s.in_w +
                    (col_first[b] * sw + b - s.pad_left);
      ph.packed_offset = cblocks * L * K * ph.first_tap;
      if (!ph.empty && taps > 0 && ph.tiles.partial_floats > d->partial_floats)
        d->partial_floats = ph.tiles.partial_floats;
    }
  }
  d->packed_floats = round16(cblocks * L * K * kh * kw);
  d->per_image = threads <= 1 || s.batch >= 2 * threads;
  // Groups as the phase with the most pixels allows (phases without flat tiles
  // then run image by image).
  const DataPhase* largest = &d->phase[0];
  for (int64_t ph = 1; ph < d->phases; ++ph)
    if (d->phase[ph].tiles.out_h * d->phase[ph].tiles.out_w >
        largest->tiles.out_h * largest->tiles.out_w)
      largest = &d->phase[ph];
  d->group = d->per_image ? image_group(largest->tiles,
                                        largest->tiles.out_h * largest->tiles.out_w, s.batch,
                                        threads)
                          : 1;
  for (int64_t ph = 0; ph < d->phases; ++ph) d->phase[ph].tiles.src_image = d->image_floats;
  d->groups = (s.batch + d->group - 1) / d->group;
  d->image_buffers = d->per_image ? (threads < d->groups ? threads : d->groups) : 1;
}

// Weights for the phases: packed[phase][C/L][K][phase taps][L] =
// w[k][c][tap] (zeros past C). Items are (block of L output channels k, block
// of L channels c), k block major: the L rows w[k] are read in order, and the
// L x taps floats of each (k, c block) go through a register transpose.
void pack_data_weights(const Conv2dShape& s, const DataPlan& d, const float* w, float* packed,
                       int threads) {
  const int64_t K = s.out_channels, C = s.in_channels, taps = s.kernel_h * s.kernel_w;
  const int64_t cblocks = vector_blocks(C), kblocks = vector_blocks(K);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t item = 0; item < kblocks * cblocks; ++item) {
    const int64_t cb = item % cblocks, k0 = (item / cblocks) * L;
    const int64_t c0 = cb * L, cn = (C - c0) < L ? (C - c0) : L;
    for (int64_t k = k0; k < K && k < k0 + L; ++k) {
      const float* src = w + (k * C + c0) * taps;
      if (cb + 1 < cblocks) {  // the next item's part of this row (measured: the
        // transposes waited on the loads)
        const char* next = reinterpret_cast<const char*>(src + L * taps);
        for (int64_t off = 0; off < L * taps * 4; off += 64) __builtin_prefetch(next + off, 0, 2);
      }
      for (int64_t t0 = 0; t0 < taps; t0 += L) {
        const int tn = static_cast<int>((taps - t0) < L ? (taps - t0) : L);
        Vec r[L];
        for (int64_t l = 0; l < L; ++l)
          r[l] = l < cn ? Vec::load_partial(src + l * taps + t0, tn) : Vec::zero();
        transpose_lx(r);  // r[t] lane l: w[k][c0 + l][t0 + t]
        for (int t = 0; t < tn; ++t) {
          const int64_t tap = t0 + t;
          const DataPhase& ph = d.phase[d.tap_phase[tap]];
          r[t].store(packed + ph.packed_offset +
                     ((cb * K + k) * ph.tiles.taps + d.tap_slot[tap]) * L);
        }
      }
    }
  }
}

// gy's K planes of one image into the zero-padded source (channels split over
// the threads of the enclosing region when `parallel`).
void pad_grad(const Conv2dShape& s, const DataPlan& d, const float* gy, float* src,
              bool parallel) {
  auto channel = [&](int64_t k) {
    const float* g = gy + k * s.out_h * s.out_w;
    float* o = src + k * d.plane;
    std::memset(o, 0, sizeof(float) * d.pt * d.wp);
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      float* row = o + (d.pt + oh) * d.wp;
      for (int64_t j = 0; j < d.pl; ++j) row[j] = 0.0f;
      std::memcpy(row + d.pl, g + oh * s.out_w, sizeof(float) * s.out_w);
      for (int64_t j = d.pl + s.out_w; j < d.wp; ++j) row[j] = 0.0f;
    }
    std::memset(o + (d.pt + s.out_h) * d.wp, 0, sizeof(float) * (d.hp - d.pt - s.out_h) * d.wp);
  };
  if (parallel) {
#pragma omp for schedule(static)
    for (int64_t k = 0; k < s.out_channels; ++k) channel(k);
  } else {
    for (int64_t k = 0; k < s.out_channels; ++k) channel(k);
  }
}

// Input pixels no tap reaches (kernel smaller than the stride): zero.
void zero_phase(const Conv2dShape& s, const DataPhase& ph, float* gx, int64_t r0, int64_t r1) {
  const TilePlan& p = ph.tiles;
  for (int64_t c = 0; c < s.in_channels; ++c)
    for (int64_t i = r0; i < r1; ++i) {
      float* row = gx + ph.y_offset + c * p.ychan + i * p.yrow;
      for (int64_t j = 0; j < p.out_w; ++j) row[j * p.ycol] = 0.0f;
    }
}

void run_phase(const Conv2dShape& s, const DataPlan& d, const DataPhase& ph, const float* packed,
               const float* src, float* gx, int64_t v0, int64_t v1, int64_t r0, int64_t r1,
               float* partial) {
  if (ph.empty) return;
  if (ph.tiles.taps == 0) {
    if (v0 == 0) zero_phase(s, ph, gx, r0, r1);
    return;
  }
  compute(ph.tiles, d.tapoff + ph.first_tap, packed + ph.packed_offset, src, gx + ph.y_offset,
          Epilogue{}, v0, v1, r0, r1, partial);
}

// Every block and row of one phase for `images` consecutive images (sources
// d.image_floats apart): flat tiles through all of them at once, or image by
// image.
void run_phase_images(const Conv2dShape& s, const DataPlan& d, const DataPhase& ph,
                      const float* packed, const float* src, float* gx, int64_t images,
                      float* partial) {
  const int64_t in_image = s.in_channels * s.in_h * s.in_w;
  if (images > 1 && ph.tiles.flat && !ph.empty && ph.tiles.taps > 0) {
    DataPhase group = ph;
    group.tiles.images = images;
    run_phase(s, d, group, packed, src, gx, 0, ph.tiles.blocks, 0, ph.tiles.out_h, partial);
    return;
  }
  for (int64_t i = 0; i < images; ++i)
    run_phase(s, d, ph, packed, src + i * d.image_floats, gx + i * in_image, 0, ph.tiles.blocks,
              0, ph.tiles.out_h, partial);
}

int64_t data_workspace(const Conv2dShape& s, int threads) {
  DataPlan d;
  data_plan(s, threads, &d);
  return d.image_buffers * d.group * d.image_floats + threads * d.partial_floats +
         d.packed_floats;
}

void backward_data(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const int threads = a.num_threads;
  DataPlan d;
  data_plan(s, threads, &d);
  float* images = a.workspace;
  float* partials = images + d.image_buffers * d.group * d.image_floats;
  float* packed = partials + threads * d.partial_floats;
  pack_data_weights(s, d, a.weight, packed, threads);
  const int64_t in_image = s.in_channels * s.in_h * s.in_w;
  const int64_t out_image = s.out_channels * s.out_h * s.out_w;
  if (d.per_image) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t item = 0; item < d.groups; ++item) {
      const int me = omp_get_thread_num();
      const int64_t n0 = item * d.group;
      const int64_t images_here = (s.batch - n0) < d.group ? (s.batch - n0) : d.group;
      float* src = images + me * d.group * d.image_floats;
      for (int64_t i = 0; i < images_here; ++i)
        pad_grad(s, d, a.grad_output + (n0 + i) * out_image, src + i * d.image_floats, false);
      for (int64_t ph = 0; ph < d.phases; ++ph)
        run_phase_images(s, d, d.phase[ph], packed, src, a.grad_input + n0 * in_image,
                         images_here, partials + me * d.partial_floats);
    }
    return;
  }
  // Fewer than two images per thread: items are (phase, group of KV vector
  // blocks, row range), handed out dynamically (phases differ in taps).
  int64_t rparts[kMaxPhases], first_item[kMaxPhases + 1];
  first_item[0] = 0;
  for (int64_t ph = 0; ph < d.phases; ++ph) {
    const TilePlan& p = d.phase[ph].tiles;
    const int64_t groups = (p.blocks + KV - 1) / KV;
    int64_t parts = (2 * threads + groups - 1) / groups;
    if (parts > p.out_h) parts = p.out_h;
    if (d.phase[ph].empty) parts = 0;
    rparts[ph] = parts;
    first_item[ph + 1] = first_item[ph] + groups * parts;
  }
  const int64_t items = first_item[d.phases];
#pragma omp parallel num_threads(threads)
  for (int64_t n = 0; n < s.batch; ++n) {
    pad_grad(s, d, a.grad_output + n * out_image, images, true);
    // (implicit barrier: the source is complete)
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      int64_t ph = 0;
      while (item >= first_item[ph + 1]) ++ph;
      const DataPhase& q = d.phase[ph];
      const int64_t rest = item - first_item[ph], g = rest / rparts[ph], rp = rest % rparts[ph];
      const int64_t rows = q.tiles.out_h;
      run_phase(s, d, q, packed, images, a.grad_input + n * in_image, g * KV,
                (g + 1) * KV < q.tiles.blocks ? (g + 1) * KV : q.tiles.blocks,
                rp * rows / rparts[ph], (rp + 1) * rows / rparts[ph],
                partials + omp_get_thread_num() * d.partial_floats);
    }
    // implicit barrier before the next image overwrites the source
  }
}

int64_t workspace(ConvPass pass, const Conv2dShape& s, int threads) {
  switch (pass) {
    case ConvPass::forward: return phase_family_ok(s) ? forward_workspace(s, threads) : -1;
    case ConvPass::backward_data: return phase_family_ok(s) ? data_workspace(s, threads) : -1;
    case ConvPass::backward_weight: return phase_backward_weight_workspace(s, threads);
  }
  return -1;
}

void run(ConvPass pass, const Conv2dArgs& a) {
  switch (pass) {
    case ConvPass::forward: forward(a); break;
    case ConvPass::backward_data: backward_data(a); break;
    case ConvPass::backward_weight: phase_backward_weight(a); break;
  }
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(conv2d_phase_workspace, &workspace);
  register_kernel(conv2d_phase_run, &run);
  register_kernel(conv2d_phase_pack, &pack_weights);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
