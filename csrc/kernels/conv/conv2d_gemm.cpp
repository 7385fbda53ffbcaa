// Convolution lowered to GEMM: im2col (general) and pointwise (1x1; its
// forward and backward-data use their own register-tiled kernel below).
//
// im2col never builds the whole column matrix: output pixels are processed in
// chunks so one chunk's columns (C/g*R*S x cols) stay around 1 MiB, and each
// chunk is one GEMM with the bias/ReLU epilogue fused. A 1x1, stride-1,
// unpadded convolution skips the copy entirely and multiplies the input
// itself (pointwise); 1x1 with stride > 1 gathers the strided pixels only.
//
// Threads: when there are at least as many (image, group) items as threads,
// each thread takes whole items with a single-threaded GEMM and its own
// scratch slice; otherwise (batch 1) items run one after another and the GEMM
// and the im2col/col2im loops use all threads. Backward-weight gives each
// thread a private gradient accumulator, reduced once at the end.
//
// Two paths skip im2col and the shared GEMM (SIMD builds, groups 1):
//  - forward of large kernels (>= kRowMinTaps taps, stride_w 1 or 2: the
//    7x7 stem) builds B vectors straight from a zero-padded copy of the
//    image (forward_rows);
//  - backward-weight of those kernels and of 1x1 writes each pixel's im2row
//    row (runs of kernel_w input pixels, or transposed channels) into one
//    buffer that the micro-kernel reads in place, with gy broadcast from its
//    rows (backward_weight_rows).
#include <algorithm>
#include <cstdint>
#include <cstring>

#include <omp.h>

#include "kernels/conv/conv2d.h"
#include "kernels/conv/conv2d_backward_data_shape.h"
#include "kernels/conv/conv2d_bias_gradient.h"
#include "kernels/conv/conv2d_strided.h"
#include "kernels/conv/conv2d_transpose.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int64_t kColumnBudgetFloats = int64_t(1) << 18;  // ~1 MiB of columns per chunk
constexpr int64_t RL = Vec::kWidth;
// Kernels with at least this many taps (the 7x7 stem) skip im2col in forward
// and backward-weight (see forward_rows and backward_weight_rows).
constexpr int64_t kRowMinTaps = 25;

struct Lowering {
  int64_t groups, cg, kg;      // channels per group in / out
  int64_t rows;                // cg * R * S: the GEMM's inner dimension
  int64_t pixels;              // out_h * out_w
  int64_t chunk;               // output pixels per GEMM
  bool direct;                 // pointwise stride 1: the input is the column matrix
};

bool is_pointwise(const Conv2dShape& s) {
  return s.kernel_h == 1 && s.kernel_w == 1 && s.pad_top == 0 && s.pad_left == 0 &&
         (s.out_h - 1) * s.stride_h < s.in_h && (s.out_w - 1) * s.stride_w < s.in_w;
}

Lowering plan(const Conv2dShape& s) {
  Lowering l;
  l.groups = s.groups;
  l.cg = s.in_channels / s.groups;
  l.kg = s.out_channels / s.groups;
  l.rows = l.cg * s.kernel_h * s.kernel_w;
  l.pixels = s.out_h * s.out_w;
  l.direct = is_direct_pointwise(s);
  if (l.direct || l.rows * l.pixels <= kColumnBudgetFloats) {
    l.chunk = l.pixels;
  } else {
    int64_t c = kColumnBudgetFloats / (l.rows > 0 ? l.rows : 1);
    c = c < 64 ? 64 : (c / 16) * 16;
    l.chunk = c < l.pixels ? c : l.pixels;
  }
  return l;
}

// Items run in parallel (one GEMM each) when they can keep every thread busy.
bool items_in_parallel(int64_t items, int threads) { return threads > 1 && items >= threads; }

int64_t column_floats(const Lowering& l) { return l.direct ? 0 : l.rows * l.chunk; }

// First t in [0, run) with (ow + t) * stride + off >= 0 (run if none).
int64_t valid_begin(int64_t ow, int64_t off, int64_t stride, int64_t run) {
  const int64_t need = -(ow * stride + off);  // t * stride >= need
  if (need <= 0) return 0;
  const int64_t t = (need + stride - 1) / stride;
  return t < run ? t : run;
}

// One past the last t in [0, run) with (ow + t) * stride + off < in_w.
int64_t valid_end(int64_t ow, int64_t off, int64_t stride, int64_t in_w, int64_t run) {
  const int64_t room = in_w - 1 - (ow * stride + off);  // t * stride <= room
  if (room < 0) return 0;
  const int64_t t = room / stride + 1;
  return t < run ? t : run;
}

// Columns for output pixels [p0, p0 + cols) of one image and group:
// col[(c*R + r)*S + s][j] = x[c, ih, iw] (0 outside), row-major, ld = cols.
// With `parallel`, rows are split over the threads of the enclosing parallel region.
void im2col_chunk(const Conv2dShape& s, const float* x, int64_t p0, int64_t cols,
                  int64_t rows, float* col, bool parallel, int64_t ld = -1) {
  if (ld < 0) ld = cols;
  const int64_t kk = s.kernel_h * s.kernel_w;
  auto fill_row = [&](int64_t row) {
    const int64_t c = row / kk, r = (row % kk) / s.kernel_w, q = row % s.kernel_w;
    const float* plane = x + c * s.in_h * s.in_w;
    float* dst = col + row * ld;
    int64_t j = 0;
    int64_t oh = p0 / s.out_w, ow = p0 % s.out_w;
    while (j < cols) {
      const int64_t run = (s.out_w - ow) < (cols - j) ? (s.out_w - ow) : (cols - j);
      const int64_t ih = oh * s.stride_h - s.pad_top + r * s.dilation_h;
      if (ih < 0 || ih >= s.in_h) {
        for (int64_t t = 0; t < run; ++t) dst[j + t] = 0.0f;
      } else {
        // Outputs ow + t read iw = (ow + t) * stride + off: zeros before the
        // first valid t and after the last, a plain (strided) copy between.
        const float* src = plane + ih * s.in_w;
        const int64_t off = q * s.dilation_w - s.pad_left;
        float* d = dst + j;
        if (s.stride_w == 1) {  // runs are often short (7-56): no divisions, no calls
          int64_t first = -(ow + off), last = s.in_w - (ow + off);
          first = first < 0 ? 0 : (first > run ? run : first);
          last = last < first ? first : (last > run ? run : last);
          for (int64_t t = 0; t < first; ++t) d[t] = 0.0f;
          const float* sp = src + ow + off;
          int64_t t = first;
          for (; t + Vec::kWidth <= last; t += Vec::kWidth) Vec::load(sp + t).store(d + t);
          if (t < last) {
            const int n = static_cast<int>(last - t);
            Vec::load_partial(sp + t, n).store_partial(d + t, n);
          }
          for (t = last; t < run; ++t) d[t] = 0.0f;
          j += run;
          ow = 0;
          ++oh;
          continue;
        }
        const int64_t first = valid_begin(ow, off, s.stride_w, run);
        const int64_t last = valid_end(ow, off, s.stride_w, s.in_w, run);
        for (int64_t t = 0; t < first; ++t) d[t] = 0.0f;
        // (stride 2, stem-like layers: even lanes of two vectors)
        copy_strided(src + ow * s.stride_w + off, s.stride_w, first, last,
                     s.in_w - (ow * s.stride_w + off), d);
        for (int64_t t = last > first ? last : first; t < run; ++t) d[t] = 0.0f;
      }
      j += run;
      ow = 0;
      ++oh;
    }
  };
  if (parallel) {
#pragma omp for schedule(static)
    for (int64_t row = 0; row < rows; ++row) fill_row(row);
  } else {
    for (int64_t row = 0; row < rows; ++row) fill_row(row);
  }
}

// gx[c, ih, iw] += col[(c*R + r)*S + s][j] for output pixels [p0, p0 + cols).
// Channels are split over threads when `parallel` (a channel's rows stay on
// one thread, so no two threads add into the same plane).
void col2im_chunk(const Conv2dShape& s, const float* col, int64_t p0, int64_t cols,
                  int64_t channels, float* gx, bool parallel) {
  const int64_t kk = s.kernel_h * s.kernel_w;
  auto add_channel = [&](int64_t c) {
    float* plane = gx + c * s.in_h * s.in_w;
    for (int64_t rs = 0; rs < kk; ++rs) {
      const int64_t r = rs / s.kernel_w, q = rs % s.kernel_w;
      const float* src = col + (c * kk + rs) * cols;
      int64_t j = 0;
      int64_t oh = p0 / s.out_w, ow = p0 % s.out_w;
      while (j < cols) {
        const int64_t run = (s.out_w - ow) < (cols - j) ? (s.out_w - ow) : (cols - j);
        const int64_t ih = oh * s.stride_h - s.pad_top + r * s.dilation_h;
        if (ih >= 0 && ih < s.in_h) {
          const int64_t off = q * s.dilation_w - s.pad_left;
          const int64_t first = valid_begin(ow, off, s.stride_w, run);
          const int64_t last = valid_end(ow, off, s.stride_w, s.in_w, run);
          float* dst = plane + ih * s.in_w + ow * s.stride_w + off;
          const float* sp = src + j;
          if (s.stride_w == 1) {
            for (int64_t t = first; t < last; ++t) dst[t] += sp[t];
          } else {
            for (int64_t t = first; t < last; ++t) dst[t * s.stride_w] += sp[t];
          }
        }
        j += run;
        ow = 0;
        ++oh;
      }
    }
  };
  if (parallel) {
#pragma omp for schedule(static)
    for (int64_t c = 0; c < channels; ++c) add_channel(c);
  } else {
    for (int64_t c = 0; c < channels; ++c) add_channel(c);
  }
}

// ---------------------------------------------------- pointwise, no GEMM call
// For 1x1 forward and backward-data the product is thin (K or C of 16-256
// against a few thousand pixels), so instead of packing for a general GEMM,
// a register tile of PR output rows x NV vectors of pixels runs over the
// inner channels directly on the activations: per channel NV vector loads, PR
// broadcast weights, NV*PR FMAs; the pixel block stays in L1 across all rows.
//   out[m][p] = act(bias[m] + sum_j A(m, j) * B[j][p])
// with A in one of the TileLayouts below (plain weight rows, eval mode's
// packed panels, backward-data's transposed weights). Tiles are 2 vectors
// wide; an odd count of vectors ends in one 3-vector tile (7x7 planes: 3
// full vectors, no half-empty pair), and a remainder of at most L/2 pixels
// takes dot products along the inner dimension instead of a mostly empty
// vector (pointwise_columns, packed_columns). A short last panel of rows
// runs on a shorter tile (PR_MID, PR_LOW) instead of repeating rows.
#if defined(__AVX512F__)
constexpr int PR = 14;
constexpr int PR3 = 7;  // rows of a 3-vector tile: 21 accumulators
#elif defined(__AVX2__)
constexpr int PR = 6;
constexpr int PR3 = 3;
#else
constexpr int PR = 4;
constexpr int PR3 = 4;
#endif
static_assert(PR % PR3 == 0, "row parts are whole tiles of either width");
constexpr int64_t PL = Vec::kWidth;
constexpr int64_t PB = 2 * PL;  // pixels per tile
// im2col forward with at most this many output channels per group also uses
// the tiled kernel on its columns (measured faster than the packed GEMM).
constexpr int64_t kTiledMaxRows = 64;
// ... and so does a chunk of at most this many pixels: the packed GEMM would
// pack all the weights for two or fewer column tiles (batch-1 layers at 7x7).
constexpr int64_t kTiledMaxCols = 2 * PB;

// Software prefetch distances (measured, Zen 5): weights streamed from DRAM
// (several MiB per layer at 7x7 and 14x14) outrun the hardware prefetchers.
// Small weights stay in cache and skip it (MobileNet's 144->24 @56 lost 10%
// to the plain-row prefetch, 16->96 @112 3% to the packed one).
constexpr int64_t kPackedAhead = 4096;  // floats (16 KiB) ahead in the packed stream
constexpr int64_t kPackedAheadMinFloats = int64_t(32) << 10;  // ... for weights over 128 KiB
constexpr int64_t kPlainAhead = 256;    // channels ahead in each plain row
constexpr int64_t kPlainAheadMinFloats = int64_t(256) << 10;  // ... for weights over 1 MiB
// The next tile's B strip is prefetched over the first kPrefetchPasses
// panels of a tile (rows j = k mod passes in panel k), not all in the first:
// fewer misses outstanding at once.
constexpr int64_t kPrefetchPasses = 4;

// Row tiles shorter than PR for a short last panel (64 = 4 * 14 + 8).
#if defined(__AVX512F__)
constexpr int PR_MID = 8, PR_LOW = 4;
#elif defined(__AVX2__)
constexpr int PR_MID = 4, PR_LOW = 2;
#else
constexpr int PR_MID = PR, PR_LOW = PR;
#endif

// The weights of one row tile, A(i, j) for rows i < mr, by layout:
//   kRows     plain rows (forward): p[i * ma + j], rows past mr repeat the last;
//   kPanel    a packed panel: p[j * PR + i];
//   kColumns  rows contiguous per channel (backward-data's transposed
//             weights): p[j * ja + i];
//   kStrided  any: p[i * ma + j * ja], rows past mr repeat the last (a
//             short kColumns panel: rows past mr could lie past the array).
enum TileLayout : int { kRows = 0, kPanel = 1, kColumns = 2, kStrided = 3 };

struct TileRows {
  const float* p;
  int64_t ma, ja;
  int mr;              // rows stored
  bool ahead = false;  // kRows, kPanel: prefetch the weights ahead (too large for L2)
};

struct TileOut {
  float* out;         // the tile's first row and pixel
  int64_t ldo;
  const float* bias;  // the tile's first row, or null
  // Added before the activation (a residual connection): laid out as out
  // (the tile's first row and pixel, ldo apart), or null.
  const float* res = nullptr;
  bool relu, stream;
  float relu_max;
  // Prefetch rows j of the next B strip (pf, rows pf_ld apart) with
  // (j & pf_mask) == pf_phase.
  int64_t pf_mask = 0, pf_phase = 0, pf_ld = 0;
  // The first half of a 3-vector tile on a packed panel may also take the
  // q <= kFoldMax remainder pixels (7x7: 1) for all rem_mr rows of the
  // panel, one FMA per channel with the panel's rows as lanes (rem_q > 0):
  // B columns at rem_b, outputs at rem_out; the bias is `bias` (the first
  // half's rows start at the panel's first row).
  int rem_q = 0, rem_mr = 0;
  const float* rem_b = nullptr;
  const float* rem_res = nullptr;
  float* rem_out = nullptr;
};

enum TilePrefetch : int { kNextB = 1, kAheadA = 2 };

// Remainder pixels a 3-vector tile can carry in its spare registers.
constexpr int kFoldMax = PR > PL ? 0 : PL == 16 ? 4 : 1;

// The remainder pixels' results (lanes = rows) to their rows: bias, the
// residual (res: laid out as out, or null; gathered down its rows), ReLU, a
// scalar store per row.
template <int Q>
inline void store_rem_columns(Vec (&acc)[Q], int mr, const float* bias, bool relu,
                              float relu_max, float* out, int64_t ldo,
                              const float* res = nullptr) {
  const Vec b = bias ? Vec::load_partial(bias, mr) : Vec::zero();
  const Vec cap = Vec::set1(relu_max);
  alignas(64) float lanes[PL];
#pragma GCC unroll 8
  for (int q = 0; q < Q; ++q) {
    Vec y = acc[q] + b;
    if (res) {
      for (int i = 0; i < mr; ++i) lanes[i] = res[i * ldo + q];
      y = y + Vec::load_partial(lanes, mr);
    }
    if (relu) y = relu_clamp(y, cap);
    y.store(lanes);
    for (int i = 0; i < mr; ++i) out[i * ldo + q] = lanes[i];
  }
}

// The lines of the next pixel tile (NV vectors on from `tile`) in R rows ldo
// apart, for reading (RW 0) or writing (RW 1).
template <int R, int NV, int RW>
__attribute__((always_inline)) inline void prefetch_next_tile(const float* tile, int64_t ldo) {
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int q = 0; q < NV * PL; q += 16) __builtin_prefetch(tile + i * ldo + NV * PL + q, RW);
}

// R rows x NV vectors; FULL: the last vector is whole, else nlast lanes.
// PF, what to prefetch: kNextB the next tile's B strip at pf, rows j with
// (j & pf_mask) == pf_phase; kAheadA the weights ahead (w.ahead). One function per case, so each loop keeps its accumulators in
// registers (with a masked and a whole last vector in one body GCC spilled
// them: 2.5x slower).
// Q: remainder pixels folded in (kPanel, first half of a 3-vector tile).
template <int R, int NV, bool FULL, int LAYOUT, int PF, int Q = 0>
void driver_tile_t(int64_t inner, const TileRows& w, const float* b, int64_t ldb, int nlast,
                   const float* pf, const TileOut& o) {
  constexpr bool kRowPointers = LAYOUT == kRows || LAYOUT == kStrided;
  static_assert(Q == 0 || LAYOUT == kPanel, "remainder pixels fold into packed panels only");
  const float* arow[kRowPointers ? R : 1];
  Vec acc[R][NV];
  Vec rem[Q > 0 ? Q : 1];
#pragma GCC unroll 8
  for (int q = 0; q < Q; ++q) rem[q] = Vec::zero();
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    const int r = i < w.mr ? i : w.mr - 1;
    if constexpr (kRowPointers) arow[i] = w.p + r * w.ma;
    const Vec init = o.bias ? Vec::set1(o.bias[r]) : Vec::zero();
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = init;
  }
  if constexpr (!kRowPointers) arow[0] = w.p;
  if (o.res) {
    // The residual of these rows' next pixel tile, a whole tile ahead: a tile
    // reads a column strip (rows a plane apart), which the hardware
    // prefetchers do not follow. Measured (64->256 @56, batch 1, 1 thread):
    // loads at the point of use +19% over the conv alone, this tile's rows
    // prefetched here no better, the next tile's +10% (the separate add pass
    // +11%). (A prefetch past the array's end is harmless: it never faults.)
    prefetch_next_tile<R, NV, 0>(o.res, o.ldo);
  }
  // ... and its output lines, for the same reason: a store that misses holds
  // its store-buffer entry until the line arrives. Measured (Zen 2, 1 thread,
  // against no output prefetch): batch 16 64->256 @56 + residual 25.6 ->
  // 22.0 ms, 256->1024 @14 + residual 22.1 -> 19.1; 96->24 @56 batch 8 3.0 ->
  // 1.45 ms; training's backward-data 256->64 @56 batch 16 27.7 -> 21.0 ms.
  // (Streamed outputs skip the cache: nothing to fetch. With 16 inner
  // channels the tile is too short to hide the extra loads: 16->64 @56 +
  // residual, batch 16, 5.3 ms without, 5.6-5.8 with.)
  if (!o.stream && inner > 16) prefetch_next_tile<R, NV, 1>(o.out, o.ldo);
  for (int64_t j = 0; j < inner; ++j) {
    // Weights: the packed stream kPackedAhead floats ahead; plain rows, a
    // line of row j % 16 kPlainAhead channels ahead (one prefetch per j
    // covers every row's stream).
    if constexpr (LAYOUT == kPanel && (PF & kAheadA))
      __builtin_prefetch(arow[0] + j * PR + kPackedAhead);
    if constexpr (LAYOUT == kRows && (PF & kAheadA)) {
      if ((j & 15) < R) __builtin_prefetch(arow[j & 15] + j + kPlainAhead);
    }
    if constexpr (PF & kNextB) {
      if ((j & o.pf_mask) == o.pf_phase) {
#pragma GCC unroll 4
        for (int q = 0; q < NV * PL; q += 16) __builtin_prefetch(pf + j * o.pf_ld + q);
      }
    }
    Vec bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      bv[v] = FULL || v < NV - 1 ? Vec::load(b + j * ldb + v * PL)
                                 : Vec::load_partial(b + j * ldb + v * PL, nlast);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const Vec a = Vec::set1(LAYOUT == kRows      ? arow[i][j]
                              : LAYOUT == kPanel   ? arow[0][j * PR + i]
                              : LAYOUT == kColumns ? arow[0][j * w.ja + i]
                                                   : arow[i][j * w.ja]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = fmadd(a, bv[v], acc[i][v]);
    }
    if constexpr (Q > 0) {
      const Vec rows = Vec::load(arow[0] + j * PR);
#pragma GCC unroll 8
      for (int q = 0; q < Q; ++q) rem[q] = fmadd(rows, Vec::set1(o.rem_b[j * ldb + q]), rem[q]);
    }
  }
  if constexpr (Q > 0)
    store_rem_columns<Q>(rem, o.rem_mr, o.bias, o.relu, o.relu_max, o.rem_out, o.ldo,
                         o.rem_res);
  if (o.res) {  // the residual of the rows stored (rows past mr may lie past the array)
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      if (i >= w.mr) break;
      const float* r = o.res + i * o.ldo;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v)
        acc[i][v] = acc[i][v] + (FULL || v < NV - 1 ? Vec::load(r + v * PL)
                                                    : Vec::load_partial(r + v * PL, nlast));
    }
  }
  if (o.relu) {  // (plain ReLU: no min against +inf; max(0, x) keeps NaN, as torch.relu)
    const Vec cap = Vec::set1(o.relu_max);
    const bool capped = o.relu_max < INFINITY;
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v)
        acc[i][v] = capped ? relu_clamp(acc[i][v], cap) : max(Vec::zero(), acc[i][v]);
  }
  // Locals for the stores: they may alias `o` and `w` as far as the compiler
  // knows (the intrinsics store through may_alias types), which would re-read
  // out, ldo, stream and mr after every store.
  float* const out = o.out;
  const int64_t ldo = o.ldo;
  const bool stream = o.stream;
  const int mr = w.mr;
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    if (i >= mr) break;
    float* dst = out + i * ldo;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const Vec y = acc[i][v];
      if (!FULL && v == NV - 1) y.store_partial(dst + v * PL, nlast);
      else if (stream) y.stream(dst + v * PL);
      else y.store(dst + v * PL);
    }
  }
}

// A 3-vector tile of a packed panel carrying Q remainder pixels (no B
// prefetch: it is the last tile).
template <int R, int NV, bool FULL, int Q>
__attribute__((always_inline)) inline void driver_tile_fold(int64_t inner, const TileRows& w, const float* b, int64_t ldb, int nlast,
                      const TileOut& o) {
  if (w.ahead) driver_tile_t<R, NV, FULL, kPanel, kAheadA, Q>(inner, w, b, ldb, nlast, nullptr, o);
  else driver_tile_t<R, NV, FULL, kPanel, 0, Q>(inner, w, b, ldb, nlast, nullptr, o);
}

template <int R, int NV, bool FULL, int LAYOUT>
__attribute__((always_inline)) inline void driver_tile(int64_t inner, const TileRows& w, const float* b, int64_t ldb, int nlast,
                 const float* pf, const TileOut& o) {
  if constexpr (LAYOUT == kPanel && NV == 3 && kFoldMax > 0) {
    switch (o.rem_q) {
      case 0: break;
      case 1: return driver_tile_fold<R, NV, FULL, 1>(inner, w, b, ldb, nlast, o);
#if defined(__AVX512F__)
      case 2: return driver_tile_fold<R, NV, FULL, 2>(inner, w, b, ldb, nlast, o);
      case 3: return driver_tile_fold<R, NV, FULL, 3>(inner, w, b, ldb, nlast, o);
      default: return driver_tile_fold<R, NV, FULL, 4>(inner, w, b, ldb, nlast, o);
#else
      default: return driver_tile_fold<R, NV, FULL, 1>(inner, w, b, ldb, nlast, o);
#endif
    }
  }
  if constexpr (LAYOUT == kColumns) {  // (weights in cache: no kAheadA)
    if (w.mr < R) driver_tile_t<R, NV, FULL, kStrided, 0>(inner, w, b, ldb, nlast, nullptr, o);
    else if (pf) driver_tile_t<R, NV, FULL, LAYOUT, kNextB>(inner, w, b, ldb, nlast, pf, o);
    else driver_tile_t<R, NV, FULL, LAYOUT, 0>(inner, w, b, ldb, nlast, pf, o);
    return;
  }
  switch ((pf ? kNextB : 0) | (w.ahead ? kAheadA : 0)) {
    case 0: return driver_tile_t<R, NV, FULL, LAYOUT, 0>(inner, w, b, ldb, nlast, pf, o);
    case kNextB: return driver_tile_t<R, NV, FULL, LAYOUT, kNextB>(inner, w, b, ldb, nlast, pf, o);
    case kAheadA: return driver_tile_t<R, NV, FULL, LAYOUT, kAheadA>(inner, w, b, ldb, nlast, pf, o);
    default:
      return driver_tile_t<R, NV, FULL, LAYOUT, kNextB | kAheadA>(inner, w, b, ldb, nlast, pf, o);
  }
}

// Rows of a panel (mr <= PR) for 1 or 2 vectors: the shortest tile that holds them.
template <int NV, bool FULL, int LAYOUT>
__attribute__((always_inline)) inline void driver_rows(int64_t inner, const TileRows& w, const float* b, int64_t ldb, int nlast,
                 const float* pf, const TileOut& o) {
  if (w.mr > PR_MID) driver_tile<PR, NV, FULL, LAYOUT>(inner, w, b, ldb, nlast, pf, o);
  else if (w.mr > PR_LOW) driver_tile<PR_MID, NV, FULL, LAYOUT>(inner, w, b, ldb, nlast, pf, o);
  else driver_tile<PR_LOW, NV, FULL, LAYOUT>(inner, w, b, ldb, nlast, pf, o);
}

// One panel (w.mr <= PR rows) x one pixel tile of cols <= 3 * PL pixels;
// a 3-vector tile runs in halves of PR3 rows.
template <int LAYOUT>
void driver_panel_tile(int64_t inner, const TileRows& w, int64_t cols, const float* b,
                       int64_t ldb, const float* pf, const TileOut& o) {
  const int nv = static_cast<int>((cols + PL - 1) / PL);
  const int nlast = static_cast<int>(cols - (nv - 1) * PL);
  const bool full = nlast == PL;
  if (nv >= 3) {
    for (int h = 0; h * PR3 < w.mr; ++h) {
      TileRows half = w;
      half.p = w.p + h * PR3 * (LAYOUT == kRows ? w.ma : 1);
      half.mr = (w.mr - h * PR3) < PR3 ? (w.mr - h * PR3) : PR3;
      TileOut oh = o;
      oh.out = o.out + h * PR3 * o.ldo;
      oh.bias = o.bias ? o.bias + h * PR3 : nullptr;
      oh.res = o.res ? o.res + h * PR3 * o.ldo : nullptr;
      if (h > 0) oh.rem_q = 0;  // the first half takes the whole panel's remainder
      if (full) driver_tile<PR3, 3, true, LAYOUT>(inner, half, b, ldb, nlast, pf, oh);
      else driver_tile<PR3, 3, false, LAYOUT>(inner, half, b, ldb, nlast, pf, oh);
      pf = nullptr;  // fetched by the first half
    }
  } else if (nv == 2) {
    if (full) driver_rows<2, true, LAYOUT>(inner, w, b, ldb, nlast, pf, o);
    else driver_rows<2, false, LAYOUT>(inner, w, b, ldb, nlast, pf, o);
  } else {
    if (full) driver_rows<1, true, LAYOUT>(inner, w, b, ldb, nlast, pf, o);
    else driver_rows<1, false, LAYOUT>(inner, w, b, ldb, nlast, pf, o);
  }
}

// out[rows x cols] = act(A[rows x inner] @ B[inner x cols] + bias), cols <= 3 * PL;
// A(i, j) = a[i * ma + j * ja] with ja == 1 (plain rows) or ma == 1 (columns);
// rows of out are ldo apart.
void pointwise_tile(int64_t rows, int64_t cols, int64_t inner, const float* a, int64_t ma,
                    int64_t ja, const float* b, int64_t ldb, const float* bias, bool relu,
                    float relu_max, float* out, int64_t ldo) {
  TileOut o;
  o.ldo = ldo;
  o.relu = relu;
  o.relu_max = relu_max;
  o.stream = false;
  for (int64_t m0 = 0; m0 < rows; m0 += PR) {
    TileRows w;
    w.p = a + m0 * ma;
    w.ma = ma;
    w.ja = ja;
    w.mr = static_cast<int>(std::min<int64_t>(PR, rows - m0));
    o.out = out + m0 * ldo;
    o.bias = bias ? bias + m0 : nullptr;
    if (ja == 1) driver_panel_tile<kRows>(inner, w, cols, b, ldb, nullptr, o);
    else driver_panel_tile<kColumns>(inner, w, cols, b, ldb, nullptr, o);
  }
}

// The last r <= L/2 pixels of a span (7x7: 1, 14x14: 4 with 16 lanes), as
// dot products along the inner dimension: out[m][q] = act(bias[m] + A row m .
// B column q), A rows contiguous (ja == 1). xt receives the columns
// transposed, [q][j], zero-padded to whole vectors (columns_floats).
#if defined(__AVX512F__)
constexpr int CM = 4;  // rows per pass: CM x CQ accumulators
#else
constexpr int CM = 2;
#endif
constexpr int CQ = 4;  // pixels per pass

int64_t columns_inner(int64_t inner) { return (inner + PL - 1) / PL * PL; }

// Remainder pixels of a span of cols that go to pointwise_columns (0: none).
int64_t column_pixels(int64_t cols) {
  const int64_t r = cols % PL;
  return PL > 1 && r <= PL / 2 ? r : 0;
}

int64_t columns_floats(int64_t cols, int64_t inner) {
  return column_pixels(cols) * columns_inner(inner);
}

// ... for any count of cols.
int64_t columns_bound(int64_t inner) { return PL / 2 * columns_inner(inner); }

// res: a residual laid out as out (added before the activation), or null.
void pointwise_columns(int64_t rows, int64_t r, int64_t inner, const float* a, int64_t ma,
                       const float* b, int64_t ldb, const float* bias, bool relu,
                       float relu_max, float* out, int64_t ldo, float* xt,
                       const float* res = nullptr) {
  const int64_t ip = columns_inner(inner);
  for (int64_t q = 0; q < r; ++q) {
    for (int64_t j = 0; j < inner; ++j) xt[q * ip + j] = b[j * ldb + q];
    for (int64_t j = inner; j < ip; ++j) xt[q * ip + j] = 0.0f;
  }
  const int64_t whole = inner / PL * PL;
  const int tail = static_cast<int>(inner - whole);
  for (int64_t q0 = 0; q0 < r; q0 += CQ) {
    const int64_t qn = (r - q0) < CQ ? (r - q0) : CQ;
    const float* xq[CQ];
    for (int q = 0; q < CQ; ++q) xq[q] = xt + (q0 + (q < qn ? q : qn - 1)) * ip;
    for (int64_t m0 = 0; m0 < rows; m0 += CM) {
      const int64_t mn = (rows - m0) < CM ? (rows - m0) : CM;
      const float* ar[CM];
      for (int i = 0; i < CM; ++i) ar[i] = a + (m0 + (i < mn ? i : mn - 1)) * ma;
      Vec acc[CM][CQ];
#pragma GCC unroll 4
      for (int i = 0; i < CM; ++i)
#pragma GCC unroll 4
        for (int q = 0; q < CQ; ++q) acc[i][q] = Vec::zero();
      auto step = [&](int64_t j, bool partial) __attribute__((always_inline)) {
        Vec x[CQ];
#pragma GCC unroll 4
        for (int q = 0; q < CQ; ++q) x[q] = Vec::load(xq[q] + j);
#pragma GCC unroll 4
        for (int i = 0; i < CM; ++i) {
          const Vec w = partial ? Vec::load_partial(ar[i] + j, tail) : Vec::load(ar[i] + j);
#pragma GCC unroll 4
          for (int q = 0; q < CQ; ++q) acc[i][q] = fmadd(w, x[q], acc[i][q]);
        }
      };
      for (int64_t j = 0; j < whole; j += PL) step(j, false);
      if (tail > 0) step(whole, true);
      for (int64_t i = 0; i < mn; ++i) {
        for (int64_t q = 0; q < qn; ++q) {
          float v = reduce_add(acc[i][q]) + (bias ? bias[m0 + i] : 0.0f);
          if (res) v += res[(m0 + i) * ldo + q0 + q];
          if (relu) v = v < 0.0f ? 0.0f : (v > relu_max ? relu_max : v);  // (NaN stays NaN)
          out[(m0 + i) * ldo + q0 + q] = v;
        }
      }
    }
  }
}

// A span of cols pixels as work items: vector tiles (2 vectors, the last one
// 3 when the count is odd, a partial vector counted as one), then the
// column remainder if any (column_pixels).
struct PixelTiles {
  int64_t vectors;  // vectors the tiles cover
  int64_t tiles;    // vector tiles
  int64_t covered;  // pixels the tiles cover
  int64_t rem;      // pixels after them, for pointwise_columns

  int64_t items() const { return tiles + (rem > 0 ? 1 : 0); }
  int64_t first(int64_t t) const { return t * PB; }
  int64_t width(int64_t t) const {  // pixels of tile t; a 3-vector tile ends the span
    const int64_t left = covered - t * PB;
    return t == tiles - 1 ? left : (left < PB ? left : PB);
  }
};

PixelTiles pixel_tiles(int64_t cols) {
  PixelTiles pt;
  pt.rem = column_pixels(cols);
  pt.covered = cols - pt.rem;
  pt.vectors = (pt.covered + PL - 1) / PL;
  pt.tiles = pt.vectors <= 1 ? pt.vectors : pt.vectors / 2;
  return pt;
}

// Item t of a span at b (ldb apart) into out (ldo apart): a vector tile or
// the column remainder.
void pointwise_item(const PixelTiles& pt, int64_t t, int64_t rows, int64_t inner, const float* a,
                    int64_t ma, const float* b, int64_t ldb, const float* bias, bool relu,
                    float relu_max, float* out, int64_t ldo, float* xt) {
  if (t < pt.tiles) {
    const int64_t q0 = pt.first(t);
    pointwise_tile(rows, pt.width(t), inner, a, ma, 1, b + q0, ldb, bias, relu, relu_max,
                   out + q0, ldo);
  } else {
    pointwise_columns(rows, pt.rem, inner, a, ma, b + pt.covered, ldb, bias, relu, relu_max,
                      out + pt.covered, ldo, xt);
  }
}

// Fewer than two pixel items per thread (batch 1 at 7x7 or 14x14): the
// threads also split the output rows, in whole PR-row tiles, `parts` per item.
struct RowParts {
  int64_t parts, rows;  // rows per part (a multiple of PR)
};

RowParts row_parts(int64_t pixel_items, int threads, int64_t rows) {
  int64_t parts = threads <= 1 || pixel_items >= 2 * threads
                      ? 1 : (2 * threads + pixel_items - 1) / pixel_items;
  const int64_t row_tiles = (rows + PR - 1) / PR;
  if (parts > row_tiles) parts = row_tiles;
  return {parts, (row_tiles + parts - 1) / parts * PR};
}

// ----------------------------------------------------------------- forward
// Output pixels [p0, p0 + cols) of image n, group g.
// xt: columns_bound(l.rows) floats per thread for the tiled kernel's remainder.
void forward_chunk(const Conv2dArgs& a, const Lowering& l, int64_t n, int64_t g, int64_t p0,
                   int64_t cols, float* col, float* xt, int gemm_threads,
                   bool parallel_lowering) {
  const Conv2dShape& s = a.shape;
  const float* x = a.input + (n * s.in_channels + g * l.cg) * s.in_h * s.in_w;
  const float* w = a.weight + g * l.kg * l.rows;
  float* y = a.output + (n * s.out_channels + g * l.kg) * l.pixels;
  const float* b = x + p0;
  int64_t ldb = s.in_h * s.in_w;
  if (!l.direct) {
    if (parallel_lowering) {
#pragma omp parallel num_threads(gemm_threads)
      im2col_chunk(s, x, p0, cols, l.rows, col, true);
    } else {
      im2col_chunk(s, x, p0, cols, l.rows, col, false);
    }
    b = col;
    ldb = cols;
  }
  if (l.kg <= kTiledMaxRows || cols <= kTiledMaxCols) {  // the tiled kernel, no packing
    const PixelTiles pt = pixel_tiles(cols);
    const int64_t blocks = pt.items();
    const float* bias = a.bias ? a.bias + g * l.kg : nullptr;
    const RowParts rp = row_parts(blocks, gemm_threads, l.kg);
    const int64_t parts = rp.parts, rows_per_part = rp.rows;
    const int64_t xt_floats = columns_bound(l.rows);
    auto tile = [&](int64_t item, float* xt_thread) {
      const int64_t bi = item / parts, r0 = (item % parts) * rows_per_part;
      if (r0 >= l.kg) return;
      const int64_t rn = (l.kg - r0) < rows_per_part ? (l.kg - r0) : rows_per_part;
      pointwise_item(pt, bi, rn, l.rows, w + r0 * l.rows, l.rows, b, ldb,
                     bias ? bias + r0 : nullptr, a.relu, a.relu_max, y + r0 * l.pixels + p0,
                     l.pixels, xt_thread);
    };
    if (gemm_threads > 1) {
#pragma omp parallel for num_threads(gemm_threads) schedule(dynamic, 1)
      for (int64_t item = 0; item < blocks * parts; ++item)
        tile(item, xt + omp_get_thread_num() * xt_floats);
    } else {
      for (int64_t bi = 0; bi < blocks; ++bi) tile(bi, xt);  // parts == 1
    }
    return;
  }
  GemmEpilogue ep;
  if (a.bias) {
    ep.bias = a.bias + g * l.kg;
    ep.bias_axis = BiasAxis::per_row;
  }
  ep.relu = a.relu;
  ep.relu_max = a.relu_max;
  a.gemm(false, false, l.kg, cols, l.rows, 1.0f, w, l.rows, b, ldb, 0.0f, y + p0, l.pixels, ep,
         gemm_threads);
}

int64_t chunks_per_image(const Lowering& l) { return (l.pixels + l.chunk - 1) / l.chunk; }

// Work units for the threads: (image, group, pixel chunk). When there are at
// least as many as threads, each thread takes whole units with its own
// columns and a single-threaded GEMM, so batch 1 uses every core through
// spatial chunks too; otherwise units run in turn with all threads inside.
bool units_in_parallel(const Lowering& l, const Conv2dShape& s, int threads) {
  return threads > 1 && s.batch * l.groups * chunks_per_image(l) >= threads;
}

// Small images (stride-2 layers at 14x14 and 28x28, 7x7 layers) give one
// image's GEMM few columns: the weights are packed for every image and the
// last column panel is mostly padding. Several whole images then share one
// GEMM: their columns side by side, the product into scratch, copied out to
// each image's planes. With few output channels the tiled kernel runs on the
// shared columns instead (no pixel tile half empty at the end of each image).
constexpr int64_t kForwardMinColumns = 512;

int64_t forward_images_per_gemm(const Lowering& l, const Conv2dShape& s, int threads) {
  if (l.direct || l.chunk != l.pixels || l.pixels >= kForwardMinColumns || s.batch < 2)
    return 1;
  int64_t nb = (kForwardMinColumns + l.pixels - 1) / l.pixels;
  // (the GEMM packs its columns block by block: they need not fit in L2)
  const int64_t budget = 4 * kColumnBudgetFloats / (l.rows * l.pixels);
  if (nb > budget) nb = budget;
  if (threads > 1 && nb > s.batch / threads) nb = s.batch / threads;  // a unit per thread
  if (nb > s.batch) nb = s.batch;
  return nb < 2 ? 1 : nb;
}

int64_t batched_forward_floats(const Lowering& l, int64_t nb) {
  return nb * l.pixels * (l.rows + l.kg);  // columns + product
}

bool batched_units_in_parallel(const Lowering& l, const Conv2dShape& s, int64_t nb,
                               int threads) {
  return threads > 1 && (s.batch + nb - 1) / nb * l.groups >= threads;
}

void forward_batched(const Conv2dArgs& a, const Lowering& l, int64_t nb) {
  const Conv2dShape& s = a.shape;
  const int64_t units = (s.batch + nb - 1) / nb * l.groups;
  const int64_t per_unit = batched_forward_floats(l, nb);
  const int64_t plane = s.in_h * s.in_w;
  auto unit = [&](int64_t u, float* scratch, int threads) {
    const int64_t g = u % l.groups, n0 = (u / l.groups) * nb;
    const int64_t count = (s.batch - n0) < nb ? (s.batch - n0) : nb;
    const int64_t cols = count * l.pixels;
    float* col = scratch;
    float* product = scratch + nb * l.pixels * l.rows;
    for (int64_t i = 0; i < count; ++i) {
      const float* x = a.input + ((n0 + i) * s.in_channels + g * l.cg) * plane;
      if (threads > 1) {
#pragma omp parallel num_threads(threads)
        im2col_chunk(s, x, 0, l.pixels, l.rows, col + i * l.pixels, true, cols);
      } else {
        im2col_chunk(s, x, 0, l.pixels, l.rows, col + i * l.pixels, false, cols);
      }
    }
    const float* w = a.weight + g * l.kg * l.rows;
    const float* bias = a.bias ? a.bias + g * l.kg : nullptr;
    if (l.kg <= kTiledMaxRows) {
      const int64_t blocks = (cols + PB - 1) / PB;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 4) if (threads > 1)
      for (int64_t bi = 0; bi < blocks; ++bi) {
        const int64_t q0 = bi * PB, qc = (cols - q0) < PB ? (cols - q0) : PB;
        pointwise_tile(l.kg, qc, l.rows, w, l.rows, 1, col + q0, cols, bias, a.relu, a.relu_max,
                       product + q0, cols);
      }
    } else {
      GemmEpilogue ep;
      if (bias) {
        ep.bias = bias;
        ep.bias_axis = BiasAxis::per_row;
      }
      ep.relu = a.relu;
      ep.relu_max = a.relu_max;
      a.gemm(false, false, l.kg, cols, l.rows, 1.0f, w, l.rows, col, cols, 0.0f, product, cols,
             ep, threads);
    }
    for (int64_t i = 0; i < count; ++i) {
      float* y = a.output + ((n0 + i) * s.out_channels + g * l.kg) * l.pixels;
      for (int64_t k = 0; k < l.kg; ++k)
        std::memcpy(y + k * l.pixels, product + k * cols + i * l.pixels,
                    sizeof(float) * l.pixels);
    }
  };
  if (batched_units_in_parallel(l, s, nb, a.num_threads)) {
#pragma omp parallel for num_threads(a.num_threads) schedule(dynamic, 1)
    for (int64_t u = 0; u < units; ++u) unit(u, a.workspace + omp_get_thread_num() * per_unit, 1);
  } else {
    for (int64_t u = 0; u < units; ++u) unit(u, a.workspace, a.num_threads);
  }
}

// ------------------------------------------ forward, large kernels (stem)
// Without im2col: each image is copied once into zero-padded planes, and the
// micro-kernel builds its B vectors (L consecutive output pixels of one row
// for one tap) straight from them with one plain load. At stride 2 each padded
// row is stored as its even columns then its odd columns ("column phases"), so
// tap t of output pixels ow.. reads phase t % 2 from ow + t / 2 on: no lane
// shuffle per vector, which would compete with the FMAs for the same port
// (measured: the 7x7 stem ran at 55-65% of peak with two loads + a permute
// per vector). Tiles are FK output channels x FV pixel vectors (the vectors
// may come from different output rows, so a row's partial last vector is the
// only waste); weights are broadcast from their OIHW rows.
// Threads split (tile, channel block) items of one image at a time, so batch
// 1 uses all threads. Used for groups 1, dilation_w 1, stride_w 1 or 2 and at
// least kRowMinTaps taps (the 7x7 stem), SIMD builds only.
#if defined(__AVX512F__)
constexpr int FK = 8, FV = 3;   // 24 zmm accumulators
#elif defined(__AVX2__)
constexpr int FK = 4, FV = 2;
#else
constexpr int FK = 1, FV = 1;
#endif

bool rows_forward_ok(const Conv2dShape& s) {
  return RL > 1 && s.groups == 1 && s.dilation_w == 1 && (s.stride_w == 1 || s.stride_w == 2) &&
         s.kernel_h * s.kernel_w >= kRowMinTaps && s.out_h > 0 && s.out_w > 0;
}

struct FwdRowPlan {
  int64_t hp, wp;        // padded plane: hp rows of wp floats (stride_w column phases)
  int64_t phase_w;       // floats per column phase of a padded row
  int64_t row_vectors;   // pixel vectors per output row
  int64_t vectors, tiles, k_blocks;
  int64_t pad_floats;
};

FwdRowPlan fwd_row_plan(const Conv2dShape& s) {
  FwdRowPlan f;
  f.hp = (s.out_h - 1) * s.stride_h + (s.kernel_h - 1) * s.dilation_h + 1;
  f.row_vectors = (s.out_w + RL - 1) / RL;
  // A whole last vector of every row (lanes past out_w read zeros or the
  // next taps' columns and are not stored) from the last tap's column.
  f.phase_w = f.row_vectors * RL + (s.kernel_w - 1) / s.stride_w;
  f.wp = f.phase_w * s.stride_w;
  f.vectors = s.out_h * f.row_vectors;
  f.tiles = (f.vectors + FV - 1) / FV;
  f.k_blocks = (s.out_channels + FK - 1) / FK;
  f.pad_floats = (s.in_channels * f.hp * f.wp + 15) / 16 * 16;
  return f;
}

// out[k0 + i][pixel vector v] for i < FK, the FV vectors from first_vec.
template <int SW>
void fwd_row_tile(const Conv2dShape& s, const FwdRowPlan& f, const float* xpad, const float* w,
                  const float* bias, bool relu, const float& relu_max, int64_t k0,
                  int64_t first_vec, float* out) {
  // (relu_max by reference: a float argument would hold a vector register
  // through the loop, and the 24 accumulators + 3 pixel vectors need them all)
  const int64_t Q = s.in_channels * s.kernel_h * s.kernel_w;
  const int64_t K = s.out_channels, pixels = s.out_h * s.out_w;
  const float* base[FV];
  int64_t dst[FV];
  int lanes[FV];
  int nv = 0;
  for (int v = 0; v < FV; ++v) {
    int64_t id = first_vec + v;
    if (id < f.vectors) nv = v + 1;
    else id = f.vectors - 1;  // repeats the last vector; not stored
    const int64_t oh = id / f.row_vectors, ow0 = (id % f.row_vectors) * RL;
    base[v] = xpad + oh * s.stride_h * f.wp + ow0;
    dst[v] = oh * s.out_w + ow0;
    lanes[v] = static_cast<int>((s.out_w - ow0) < RL ? (s.out_w - ow0) : RL);
  }
  const float* wr[FK];
  for (int i = 0; i < FK; ++i) wr[i] = w + (k0 + i < K ? k0 + i : K - 1) * Q;
  Vec acc[FK][FV];
#pragma GCC unroll 16
  for (int i = 0; i < FK; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < FV; ++v) acc[i][v] = Vec::zero();
  const int64_t plane = f.hp * f.wp;
  int64_t q = 0;
  for (int64_t c = 0; c < s.in_channels; ++c) {
    for (int64_t r = 0; r < s.kernel_h; ++r) {
      const int64_t off = c * plane + r * s.dilation_h * f.wp;
      for (int64_t t = 0; t < s.kernel_w; ++t, ++q) {
        const int64_t col = off + (t % SW) * f.phase_w + t / SW;
        Vec b[FV];
#pragma GCC unroll 4
        for (int v = 0; v < FV; ++v) b[v] = Vec::load(base[v] + col);
#pragma GCC unroll 16
        for (int i = 0; i < FK; ++i) {
          const Vec a = Vec::set1(wr[i][q]);
#pragma GCC unroll 4
          for (int v = 0; v < FV; ++v) acc[i][v] = fmadd(a, b[v], acc[i][v]);
        }
      }
    }
  }
  const Vec zero = Vec::zero();
  for (int i = 0; i < FK && k0 + i < K; ++i) {
    const Vec bv = bias ? Vec::set1(bias[k0 + i]) : zero;
    float* o = out + (k0 + i) * pixels;
    for (int v = 0; v < nv; ++v) {
      Vec y = acc[i][v] + bv;
      if (relu) y = relu_clamp(y, Vec::set1(relu_max));
      if (lanes[v] == RL) y.store(o + dst[v]);
      else y.store_partial(o + dst[v], lanes[v]);
    }
  }
}

// One image's zero-padded planes, rows [r0, r1) of its in_channels x hp rows,
// each row as stride_w column phases: phase p holds padded columns p, p + sw, ...
void pad_image_rows(const Conv2dShape& s, const FwdRowPlan& f, const float* x, float* xpad,
                    int64_t r0, int64_t r1) {
  const int64_t in_plane = s.in_h * s.in_w, sw = s.stride_w;
  for (int64_t cr = r0; cr < r1; ++cr) {
    const int64_t c = cr / f.hp, i = cr % f.hp, ih = i - s.pad_top;
    float* row = xpad + c * f.hp * f.wp + i * f.wp;
    std::memset(row, 0, sizeof(float) * f.wp);
    if (ih < 0 || ih >= s.in_h) continue;
    const float* src = x + c * in_plane + ih * s.in_w;
    if (sw == 1) {
      int64_t lo = s.pad_left, hi = s.pad_left + s.in_w;  // padded columns holding the row
      if (hi > f.wp) hi = f.wp;
      if (hi > lo) std::memcpy(row + lo, src, sizeof(float) * (hi - lo));
      continue;
    }
    for (int64_t p = 0; p < sw; ++p) {
      float* phase = row + p * f.phase_w;
      for (int64_t j = 0; j < f.phase_w; ++j) {
        const int64_t iw = j * sw + p - s.pad_left;
        if (iw >= 0 && iw < s.in_w) phase[j] = src[iw];
      }
    }
  }
}

void row_item(const Conv2dArgs& a, const FwdRowPlan& f, const float* xpad, float* y, int64_t it) {
  const Conv2dShape& s = a.shape;
  const int64_t tile = it / f.k_blocks, k0 = (it % f.k_blocks) * FK;
  if (s.stride_w == 2)
    fwd_row_tile<2>(s, f, xpad, a.weight, a.bias, a.relu, a.relu_max, k0, tile * FV, y);
  else
    fwd_row_tile<1>(s, f, xpad, a.weight, a.bias, a.relu, a.relu_max, k0, tile * FV, y);
}

// Whole images per thread, each padded into the thread's own buffer, when
// there are at least two per thread and the buffers stay small: the shared
// path below pays two barriers per image, which on small planes cost more
// than the image's tiles (LeNet's 16->6 5x5 backward-data, 64 images of 14x14:
// 2 threads took 2.1 ms against 0.9 ms on 1).
constexpr int64_t kRowsPrivatePadFloats = int64_t(1) << 20;

bool rows_images_in_parallel(const Conv2dShape& s, const FwdRowPlan& f, int threads) {
  return threads > 1 && s.batch >= 2 * threads && f.pad_floats <= kRowsPrivatePadFloats;
}

int64_t rows_forward_floats(const Conv2dShape& s, int threads) {
  const FwdRowPlan f = fwd_row_plan(s);
  return f.pad_floats * (rows_images_in_parallel(s, f, threads) ? threads : 1);
}

void forward_rows(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const FwdRowPlan f = fwd_row_plan(s);
  const int64_t items = f.tiles * f.k_blocks;
  const int64_t in_image = s.in_channels * s.in_h * s.in_w;
  const int64_t out_image = s.out_channels * s.out_h * s.out_w;
  const int64_t pad_rows = s.in_channels * f.hp;
  if (rows_images_in_parallel(s, f, a.num_threads)) {
#pragma omp parallel for num_threads(a.num_threads) schedule(dynamic, 1)
    for (int64_t n = 0; n < s.batch; ++n) {
      float* xpad = a.workspace + omp_get_thread_num() * f.pad_floats;
      pad_image_rows(s, f, a.input + n * in_image, xpad, 0, pad_rows);
      for (int64_t it = 0; it < items; ++it) row_item(a, f, xpad, a.output + n * out_image, it);
    }
    return;
  }
  float* xpad = a.workspace;
#pragma omp parallel num_threads(a.num_threads)
  for (int64_t n = 0; n < s.batch; ++n) {
    const float* x = a.input + n * in_image;
#pragma omp for schedule(static)
    for (int64_t cr = 0; cr < pad_rows; ++cr) pad_image_rows(s, f, x, xpad, cr, cr + 1);
    // implicit barrier: the padded image is complete
#pragma omp for schedule(dynamic, 4)
    for (int64_t it = 0; it < items; ++it) row_item(a, f, xpad, a.output + n * out_image, it);
    // implicit barrier before the next image overwrites the padded planes
  }
}

void forward(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  if (rows_forward_ok(s)) {
    forward_rows(a);
    return;
  }
  const Lowering l = plan(s);
  const int64_t nb = forward_images_per_gemm(l, s, a.num_threads);
  if (nb > 1) {
    forward_batched(a, l, nb);
    return;
  }
  const int64_t chunks = chunks_per_image(l);
  const int64_t units = s.batch * l.groups * chunks;
  const int64_t col_floats = column_floats(l);
  const int64_t xt_floats = columns_bound(l.rows);
  auto unit = [&](int64_t u, float* col, float* xt, int threads) {
    const int64_t ng = u / chunks, p0 = (u % chunks) * l.chunk;
    const int64_t cols = (l.pixels - p0) < l.chunk ? (l.pixels - p0) : l.chunk;
    forward_chunk(a, l, ng / l.groups, ng % l.groups, p0, cols, col, xt, threads, threads > 1);
  };
  if (units_in_parallel(l, s, a.num_threads)) {
#pragma omp parallel for num_threads(a.num_threads) schedule(dynamic, 1)
    for (int64_t u = 0; u < units; ++u) {
      float* slice = a.workspace + omp_get_thread_num() * (col_floats + xt_floats);
      unit(u, slice, slice + col_floats, 1);
    }
  } else {
    // A plain loop, not a one-thread parallel region: the regions inside would
    // then be nested, and libgomp gives nested teams fresh threads that compete
    // with the top-level pool's spinning ones (ResNet-18 batch 1 on 2 threads:
    // stride-2 layers took 3-5 ms instead of 0.1-0.5 ms).
    for (int64_t u = 0; u < units; ++u)
      unit(u, a.workspace, a.workspace + col_floats, a.num_threads);
  }
}

// ----------------------------------------------------------- backward data
void backward_data_item(const Conv2dArgs& a, const Lowering& l, int64_t n, int64_t g,
                        float* col, int threads, bool parallel_lowering) {
  const Conv2dShape& s = a.shape;
  const int64_t plane = s.in_h * s.in_w;
  float* gx = a.grad_input + (n * s.in_channels + g * l.cg) * plane;
  const float* w = a.weight + g * l.kg * l.rows;
  const float* gy = a.grad_output + (n * s.out_channels + g * l.kg) * l.pixels;
  const GemmEpilogue none;
  if (l.direct) {  // gx = W^T gy, written straight into the gradient
    a.gemm(true, false, l.rows, l.pixels, l.kg, 1.0f, w, l.rows, gy, l.pixels, 0.0f, gx, plane,
           none, threads);
    return;
  }
  std::memset(gx, 0, sizeof(float) * l.cg * plane);
  for (int64_t p0 = 0; p0 < l.pixels; p0 += l.chunk) {
    const int64_t cols = (l.pixels - p0) < l.chunk ? (l.pixels - p0) : l.chunk;
    a.gemm(true, false, l.rows, cols, l.kg, 1.0f, w, l.rows, gy + p0, l.pixels, 0.0f, col, cols,
           none, threads);
    if (parallel_lowering) {
#pragma omp parallel num_threads(threads)
      col2im_chunk(s, col, p0, cols, l.cg, gx, true);
    } else {
      col2im_chunk(s, col, p0, cols, l.cg, gx, false);
    }
  }
}

// Few (image, group) items but several pixel chunks each (batch 1): threads
// take chunks, each scattering into its own copy of the item's input
// gradient (chunks' receptive fields overlap), summed at the end.
bool chunks_in_parallel_bwd(const Lowering& l, const Conv2dShape& s, int threads) {
  return threads > 1 && !l.direct && !items_in_parallel(s.batch * l.groups, threads) &&
         chunks_per_image(l) >= threads;
}

// Backward-data of a stride-1 convolution with a large kernel (>= kRowMinTaps
// taps, LeNet's 5x5) is a forward correlation of the output gradient with the
// kernel flipped and its channel axes swapped (backward_data_as_forward): it
// runs on the rows path above (no column matrix, no col2im scatter).
bool rows_backward_data_ok(const Conv2dShape& s) {
  // (the input channels become the tile's FK rows: with fewer than half of them
  // used, the column path is faster)
  return s.stride_h == 1 && s.stride_w == 1 && s.dilation_h == 1 && s.dilation_w == 1 &&
         2 * s.in_channels >= FK &&
         s.pad_top <= s.kernel_h - 1 && s.pad_left <= s.kernel_w - 1 &&
         rows_forward_ok(backward_data_as_forward(s));
}

int64_t rows_backward_data_floats(const Conv2dShape& s, int threads) {
  const int64_t weights = s.out_channels * s.in_channels * s.kernel_h * s.kernel_w;
  return rows_forward_floats(backward_data_as_forward(s), threads) + (weights + 15) / 16 * 16;
}

void backward_data_rows(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const Conv2dShape t = backward_data_as_forward(s);
  const int64_t R = s.kernel_h, S = s.kernel_w, taps = R * S;
  const int64_t K = s.out_channels, C = s.in_channels;
  float* flipped = a.workspace + rows_forward_floats(t, a.num_threads);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t q = 0; q < S; ++q)
          flipped[(c * K + k) * taps + (R - 1 - r) * S + (S - 1 - q)] =
              a.weight[(k * C + c) * taps + r * S + q];
  Conv2dArgs f = a;
  f.shape = t;
  f.input = a.grad_output;
  f.weight = flipped;
  f.bias = nullptr;
  f.relu = false;
  f.output = a.grad_input;
  forward_rows(f);
}

void backward_data(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  if (rows_backward_data_ok(s)) {
    backward_data_rows(a);
    return;
  }
  const Lowering l = plan(s);
  const int64_t items = s.batch * l.groups;
  const int64_t col_floats = column_floats(l);
  if (items_in_parallel(items, a.num_threads)) {
#pragma omp parallel for num_threads(a.num_threads) schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it) {
      float* col = a.workspace + omp_get_thread_num() * col_floats;
      backward_data_item(a, l, it / l.groups, it % l.groups, col, 1, false);
    }
  } else if (chunks_in_parallel_bwd(l, s, a.num_threads)) {
    const int64_t plane = s.in_h * s.in_w;
    const int64_t item_floats = l.cg * plane;
    const int64_t per_thread = col_floats + item_floats;
    const int64_t chunks = chunks_per_image(l);
    const int threads = a.num_threads;
    const GemmEpilogue none;
    for (int64_t it = 0; it < items; ++it) {
      const int64_t n = it / l.groups, g = it % l.groups;
      const float* w = a.weight + g * l.kg * l.rows;
      const float* gy = a.grad_output + (n * s.out_channels + g * l.kg) * l.pixels;
      float* gx = a.grad_input + (n * s.in_channels + g * l.cg) * plane;
#pragma omp parallel num_threads(threads)
      {
        float* col = a.workspace + omp_get_thread_num() * per_thread;
        float* mine = col + col_floats;
        std::memset(mine, 0, sizeof(float) * item_floats);
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < chunks; ++c) {
          const int64_t p0 = c * l.chunk;
          const int64_t cols = (l.pixels - p0) < l.chunk ? (l.pixels - p0) : l.chunk;
          a.gemm(true, false, l.rows, cols, l.kg, 1.0f, w, l.rows, gy + p0, l.pixels, 0.0f, col,
                 cols, none, 1);
          col2im_chunk(s, col, p0, cols, l.cg, mine, false);
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < item_floats; ++i) {
          float sum = 0.0f;
          for (int u = 0; u < threads; ++u) sum += a.workspace[u * per_thread + col_floats + i];
          gx[i] = sum;
        }
      }
    }
  } else {
    for (int64_t it = 0; it < items; ++it)
      backward_data_item(a, l, it / l.groups, it % l.groups, a.workspace, a.num_threads,
                         a.num_threads > 1);
  }
}

// ------------------------------------------------ pointwise forward driver
// out = act(A @ B + bias) for each image and group: B the input planes
// (stride 1) or, with packed weights, the strided pixels gathered into the
// workspace; A the weights, plain (K x C rows) or packed (pack_pointwise).
//
// Blocking (measured on ResNet-50's 1x1 layers): output rows go in slabs of
// whole PR-row panels, at most kSlabFloats weights each; a slab stays in L2
// while every pixel tile of a block of pixels uses it (tiles outer, the
// slab's panels inner, so a tile's B strip stays in L1 across the panels),
// and the remainder pixels use it right after the tiles. Weights larger
// than a slab (1-4 MiB at 14x14 and 7x7) are so read once per image, not
// once per pixel tile and again for the remainder. With several slabs the
// pixels go in blocks of at most kBlockFloats of B, which stay in L2 across
// the slabs. The threads take (image, slab, pixel block) items; batch 1 gets
// enough of them by splitting the slabs (large weights) or the pixels.
//
// Packed weights (eval mode, groups 1): panel t holds rows [t*PR, t*PR + PR)
// as [j][i] (rows past K zero), so a tile's broadcasts are one sequential
// stream (the hardware prefetcher follows it from DRAM; the plain layout is
// PR streams a row apart) and the remainder pixels read a panel's PR rows of
// channel j as one vector (packed_columns).
//
// While a tile runs its first panels, the next tile's B strip is prefetched:
// large planes (batch 16 at 56x56) come from DRAM as one strided stream per
// input channel, more than the hardware prefetchers follow. Outputs much
// larger than the last-level cache are stored non-temporally (no
// read-for-ownership) when every row is whole aligned vectors (batch 16, 1
// thread, against plain stores: 64->256 @56 7.7 vs 8.5 ms, 128->512 @28 6.8
// vs 7.1 ms; outputs of 8-16 MiB gained 0-20% alone but may be read from
// the last-level cache by the next layer, so they keep plain stores).
constexpr int64_t kSlabFloats = int64_t(64) << 10;      // 256 KiB of weights per slab
constexpr int64_t kBlockFloats = int64_t(96) << 10;     // 384 KiB of B per pixel block

// + PL: packed_columns reads a whole vector at the last panel's last channel.
int64_t packed_pointwise_floats(int64_t k, int64_t c) { return (k + PR - 1) / PR * PR * c + PL; }

// Packs K x C weights (1x1, groups 1) into PR-row panels, [panel][j][i].
void pack_pointwise_panels(int64_t K, int64_t C, const float* w, float* packed, int threads) {
  const int64_t panels = (K + PR - 1) / PR;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t t = 0; t < panels; ++t) {
    float* dst = packed + t * PR * C;
    for (int64_t j = 0; j < C; ++j)
      for (int64_t i = 0; i < PR; ++i) {
        const int64_t row = t * PR + i;
        dst[j * PR + i] = row < K ? w[row * C + j] : 0.0f;
      }
  }
  for (int64_t i = 0; i < PL; ++i) packed[panels * PR * C + i] = 0.0f;
}

// Needs only the channel counts of the shape.
int64_t pack_pointwise(const Conv2dShape& s, const float* w, float* packed,
                       bool for_backward_data, int threads) {
  if (for_backward_data || s.groups != 1 || s.kernel_h != 1 || s.kernel_w != 1) return -1;
  if (packed != nullptr) pack_pointwise_panels(s.out_channels, s.in_channels, w, packed, threads);
  return packed_pointwise_floats(s.out_channels, s.in_channels);
}

// The last q <= PL/2 pixels (pixel_tiles' remainder) for panels [p0, p1) of
// packed weights: lanes are a panel's rows, acc[k][q] += panel_k[j] * B[j][q]
// for NP = 8 / Q panels at once, so a channel's Q broadcasts of B serve NP
// panel vectors and 8 FMAs are independent (one panel at a time took 5
// loads per 4 FMAs at 14x14: its 4 pixels cost 2.3% of the layer).
// (SIMD builds: PR <= PL.)
// res: a residual laid out as out, or null.
template <int Q>
void packed_columns_t(int64_t inner, const float* packed, int64_t p0, int64_t p1, int64_t kg,
                      const float* b, int64_t ldb, const float* bias, float* out,
                      const float* res, const TileOut& o) {
  constexpr int NP = Q >= 8 ? 1 : 8 / Q;
  for (int64_t g = p0; g < p1; g += NP) {
    const int np = static_cast<int>(std::min<int64_t>(NP, p1 - g));
    const float* panel[NP];
    Vec acc[NP][Q];
#pragma GCC unroll 8
    for (int k = 0; k < NP; ++k) {
      panel[k] = packed + (g + (k < np ? k : np - 1)) * PR * inner;  // extra: repeat, not stored
#pragma GCC unroll 8
      for (int q = 0; q < Q; ++q) acc[k][q] = Vec::zero();
    }
    for (int64_t j = 0; j < inner; ++j) {
      Vec x[Q];
#pragma GCC unroll 8
      for (int q = 0; q < Q; ++q) x[q] = Vec::set1(b[j * ldb + q]);
#pragma GCC unroll 8
      for (int k = 0; k < NP; ++k) {
        const Vec w = Vec::load(panel[k] + j * PR);
#pragma GCC unroll 8
        for (int q = 0; q < Q; ++q) acc[k][q] = fmadd(w, x[q], acc[k][q]);
      }
    }
    for (int k = 0; k < np; ++k) {
      const int64_t m0 = (g + k) * PR;
      store_rem_columns<Q>(acc[k], static_cast<int>(std::min<int64_t>(PR, kg - m0)),
                           bias ? bias + m0 : nullptr, o.relu, o.relu_max, out + m0 * o.ldo,
                           o.ldo, res ? res + m0 * o.ldo : nullptr);
    }
  }
}

void packed_columns(int64_t q, int64_t inner, const float* packed, int64_t p0, int64_t p1,
                    int64_t kg, const float* b, int64_t ldb, const float* bias, float* out,
                    const float* res, const TileOut& o) {
  if constexpr (PR <= PL && PL >= 8) {
#define PVE_PACKED_COLUMNS(Q) \
  packed_columns_t<Q>(inner, packed, p0, p1, kg, b, ldb, bias, out, res, o)
    switch (q) {
      case 1: PVE_PACKED_COLUMNS(1); break;
      case 2: PVE_PACKED_COLUMNS(2); break;
      case 3: PVE_PACKED_COLUMNS(3); break;
      case 4: PVE_PACKED_COLUMNS(4); break;
      case 5: PVE_PACKED_COLUMNS(5); break;
      case 6: PVE_PACKED_COLUMNS(6); break;
      case 7: PVE_PACKED_COLUMNS(7); break;
      default: PVE_PACKED_COLUMNS(8); break;
    }
#undef PVE_PACKED_COLUMNS
  }
}

// Slab i holds panels [i * panels / slabs, (i + 1) * panels / slabs), block i
// the pixel tiles likewise (sizes differ by one at most); the last block also
// takes the remainder pixels.
struct DriverPlan {
  PixelTiles pt;
  int64_t panels;  // PR-row panels per group
  int64_t slabs, blocks;
  int64_t items() const { return slabs * blocks; }  // per image and group
  int64_t slab_begin(int64_t i) const { return i * panels / slabs; }
  // Item i of an image: block-major, so the slabs run back to back on a block
  // of B while it is in L2 (measured at batch 16: 512->128 @28 8.4-8.8 ->
  // 7.9 ms, 1024->256 @14 7.0-7.2 -> 6.85 ms; slab-major read B again from
  // memory for every slab).
  int64_t slab_of(int64_t i) const { return i % slabs; }
  int64_t block_of(int64_t i) const { return i / slabs; }
  int64_t block_begin(int64_t i) const { return i * pt.tiles / blocks; }
};

// images: (image, group) pairs that run in parallel with these items.
DriverPlan driver_plan(int64_t kg, int64_t cg, int64_t pixels, int64_t images, int threads) {
  DriverPlan d;
  d.pt = pixel_tiles(pixels);
  const int64_t tiles = d.pt.tiles;
  d.panels = (kg + PR - 1) / PR;
  auto set_slabs = [&](int64_t slabs) { d.slabs = std::max<int64_t>(1, std::min(slabs, d.panels)); };
  auto set_blocks = [&](int64_t blocks) {  // (no tiles: one block, the remainder alone)
    d.blocks = std::max<int64_t>(1, std::min(blocks, tiles));
  };
  const int64_t slab_floats = PR * (cg > 0 ? cg : 1);
  set_slabs((d.panels * slab_floats + kSlabFloats - 1) / kSlabFloats);
  const int64_t tile_floats = PB * (cg > 0 ? cg : 1);
  set_blocks(d.slabs > 1 ? (tiles * tile_floats + kBlockFloats - 1) / kBlockFloats : 1);
  const int64_t want = threads > 1 ? 4 * int64_t(threads) : 1;
  if (images * d.items() < want) {
    const int64_t need = (want + images - 1) / images;
    if (d.slabs > 1 || tiles <= 1) set_slabs((need + d.blocks - 1) / d.blocks);
    else set_blocks((need + d.slabs - 1) / d.slabs);
  }
  return d;
}

struct DriverJob {
  const Conv2dArgs* a;
  const DriverPlan* d;
  int64_t kg, cg, pixels;
  const float* weight;  // the group's rows (plain, ma = cg) or the packed panels
  bool packed, stream;
};

// Each pixel tile's B strip (its columns of every inner channel, rows a
// plane apart) is first copied into a contiguous per-thread strip, which the
// slab's panels then read. Read in place, every channel's row of the strip
// lies on another page (a plane apart: 12.5 KiB at 56x56) and, for planes a
// multiple of 1 KiB, in the same few L1 sets, so each panel paid TLB and
// conflict misses on every row. Measured, the tile kernel alone over
// ResNet-50's 1x1 shapes (1 thread, the copy included): 64->256 @56 80 -> 102
// GFLOP/s, 512->128 @28 85 -> 111; the whole layer at batch 16 against
// reading B in place (the next strip prefetched): 64->256 @56 1.02-1.17x,
// 128->512 @28 1.05-1.15x, 256->1024 @14 1.04-1.12x, the layers with
// few panels per slab unchanged.
// Floats of one thread's strip: a 3-vector tile and the remainder pixels it
// may carry (kFoldMax < PL), rows of whole vectors.
int64_t strip_floats(int64_t inner) { return inner * 4 * PL; }
// Slabs of fewer panels read B in place: there the copy measured slower
// (AVX-512, 1024->256 @14, 4-5 panels per slab: 0.91-0.98x; 144->24 @56, 2
// panels). With AVX2's 6-row panels only 2048 inner channels give slabs that
// short (5 panels), and there the copy measured faster (Zen 2, 1 thread,
// 2048->512 @7: batch 1 1.55-1.61 -> 1.48-1.50 ms, batch 16 25.5-25.8 ->
// 23.7-24.7 ms).
#if defined(__AVX512F__)
constexpr int64_t kStripMinPanels = 6;
#else
constexpr int64_t kStripMinPanels = 4;
#endif

// Row length of a strip of n pixels: whole vectors.
int64_t strip_ld(int64_t n) { return (n + PL - 1) / PL * PL; }

// Pixels [0, n) of inner rows ldb apart into dst, rows strip_ld(n) apart
// (lanes past n in the last vector are zero).
void copy_strip(int64_t inner, const float* b, int64_t ldb, int64_t n, float* dst) {
  const int64_t ld = strip_ld(n), whole = n / PL * PL;
  const int tail = static_cast<int>(n - whole);
  for (int64_t j = 0; j < inner; ++j) {
    const float* src = b + j * ldb;
    float* d = dst + j * ld;
    for (int64_t q = 0; q < whole; q += PL) Vec::load(src + q).store(d + q);
    if (tail > 0) Vec::load_partial(src + whole, tail).store(d + whole);
  }
}

// Per-thread scratch of the driver: pointwise_columns' transposed pixels,
// then the strip (64-byte aligned in an aligned workspace).
int64_t driver_xt_floats(int64_t pixels, int64_t inner) {
  return (columns_floats(pixels, inner) + 15) / 16 * 16;
}
int64_t driver_scratch_floats(int64_t pixels, int64_t inner) {
  return driver_xt_floats(pixels, inner) + strip_floats(inner);
}

// Whether the packed last 3-vector tile of an image carries its remainder
// pixels (kFoldMax).
bool folds_remainder(bool packed, const PixelTiles& pt) {
  return packed && pt.rem > 0 && pt.rem <= kFoldMax && pt.tiles > 0 &&
         pt.width(pt.tiles - 1) > 2 * PL;
}

// Pixels a tile's strip holds: its own, and the remainder it carries.
int64_t strip_pixels(const PixelTiles& pt, bool fold, int64_t t) {
  return pt.width(t) + (fold && t == pt.tiles - 1 ? pt.rem : 0);
}

// Weights of more than one slab made every tile's B strip be copied once per
// slab, by each item that used it (1024->256 @14: 4 copies, 2048->512 @7: 16;
// the copies took 15-30% of those layers on Zen 2). Such layers copy an
// image's strips once, tile after tile into an image-strips buffer (tile t's
// strip at first(t) * inner, copy_strip's layout), and every item reads them
// there.
bool strips_per_image(int64_t kg, int64_t cg) {
  const int64_t panels = (kg + PR - 1) / PR;
  const int64_t slabs = (panels * PR * cg + kSlabFloats - 1) / kSlabFloats;
  return slabs > 1 && panels / slabs >= kStripMinPanels;
}
int64_t image_strips_floats(int64_t pixels, int64_t inner) {
  return (inner * (pixels + PL) + 15) / 16 * 16;
}

// Tiles [t0, t1) of an image's B (planes ldb apart) into its image strips.
void copy_image_strips(const PixelTiles& pt, bool fold, int64_t inner, const float* b,
                       int64_t ldb, int64_t t0, int64_t t1, float* strips) {
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t q0 = pt.first(t);
    copy_strip(inner, b + q0, ldb, strip_pixels(pt, fold, t), strips + q0 * inner);
  }
}

// Item (slab, block) of one image and group: B planes ldb apart, out planes
// of the group's first row (res: the residual laid out as out, or null);
// scratch: the thread's driver_scratch_floats (pointwise_columns' transposed
// pixels, then the tiles' B strip); strips: the image's strips
// (copy_image_strips), or null to copy or read B per tile.
void driver_item(const DriverJob& j, int64_t slab, int64_t block, const float* b, int64_t ldb,
                 float* out, const float* res, const float* bias, float* scratch,
                 const float* strips = nullptr) {
  const DriverPlan& d = *j.d;
  const PixelTiles& pt = d.pt;
  const int64_t p0 = d.slab_begin(slab), p1 = d.slab_begin(slab + 1);
  const int64_t t0 = d.block_begin(block), t1 = d.block_begin(block + 1);
  const int64_t inner = j.cg;
  TileOut o;
  o.ldo = j.pixels;
  o.relu = j.a->relu;
  o.relu_max = j.a->relu_max;
  o.stream = j.stream;
  o.pf_ld = ldb;
  float* const xt = scratch;
  float* const strip = scratch + driver_xt_floats(j.pixels, inner);
  auto rows_of = [&](int64_t p, TileRows* w) {
    const int64_t m0 = p * PR;
    w->mr = static_cast<int>(std::min<int64_t>(PR, j.kg - m0));
    w->p = j.packed ? j.weight + p * PR * inner : j.weight + m0 * inner;
    w->ma = inner;
    w->ja = 1;
    w->ahead = j.kg * inner > (j.packed ? kPackedAheadMinFloats : kPlainAheadMinFloats);
    return m0;
  };
  // Packed: a last 3-vector tile carries up to kFoldMax remainder pixels.
  const bool last_block = block == d.blocks - 1;
  const bool fold = last_block && folds_remainder(j.packed, pt);
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t q0 = pt.first(t), cols = pt.width(t);
    const bool folds = fold && t == pt.tiles - 1;
    // The next tile's B: its rows in B, or its image strip.
    const float* pf0 = nullptr;
    if (t + 1 < t1 && strips) {
      pf0 = strips + pt.first(t + 1) * inner;
      o.pf_ld = strip_ld(strip_pixels(pt, fold, t + 1));
    } else if (t + 1 < t1) {
      pf0 = b + pt.first(t + 1);
    }
    int64_t step = kPrefetchPasses;
    while (step > 1 && step > p1 - p0) step /= 2;
    o.pf_mask = step - 1;
    // The strip (a copy of the tile's columns, and of the remainder pixels
    // when they fold into it; or the image's) or, for a slab of few panels,
    // B in place.
    const float* bt = b + q0;
    int64_t ldt = ldb;
    const int64_t copied = cols + (folds ? pt.rem : 0);
    if (strips) {
      bt = strips + q0 * inner;
      ldt = strip_ld(copied);
    } else if (p1 - p0 >= kStripMinPanels) {
      copy_strip(inner, b + q0, ldb, copied, strip);
      bt = strip;
      ldt = strip_ld(copied);
    }
    for (int64_t p = p0; p < p1; ++p) {
      const float* pf = (p - p0) < step ? pf0 : nullptr;
      o.pf_phase = p - p0;
      TileRows w;
      const int64_t m0 = rows_of(p, &w);
      o.out = out + m0 * j.pixels + q0;
      o.bias = bias ? bias + m0 : nullptr;
      o.res = res ? res + m0 * j.pixels + q0 : nullptr;
      if (folds) {
        o.rem_q = static_cast<int>(pt.rem);
        o.rem_mr = w.mr;
        o.rem_b = bt + cols;  // (pt.covered == q0 + cols, in B or the strip)
        o.rem_res = res ? res + m0 * j.pixels + pt.covered : nullptr;
        o.rem_out = out + m0 * j.pixels + pt.covered;
      }
      if (j.packed) driver_panel_tile<kPanel>(inner, w, cols, bt, ldt, pf, o);
      else driver_panel_tile<kRows>(inner, w, cols, bt, ldt, pf, o);
    }
  }
  if (pt.rem > 0 && last_block && !fold) {
    o.stream = false;
    if (j.packed) {
      packed_columns(pt.rem, inner, j.weight, p0, p1, j.kg, b + pt.covered, ldb, bias,
                     out + pt.covered, res ? res + pt.covered : nullptr, o);
    } else {
      const int64_t m0 = p0 * PR, rows = std::min(j.kg, p1 * PR) - m0;
      pointwise_columns(rows, pt.rem, inner, j.weight + m0 * inner, inner, b + pt.covered, ldb,
                        bias ? bias + m0 : nullptr, j.a->relu, j.a->relu_max,
                        out + m0 * j.pixels + pt.covered, j.pixels, xt,
                        res ? res + m0 * j.pixels + pt.covered : nullptr);
    }
  }
}

bool packed_pointwise_ok(const Conv2dArgs& a) {
  return a.packed_weight != nullptr && a.shape.groups == 1;
}

// Floats of gathered pixels per image (strided), rounded up to 64 bytes.
int64_t gather_floats(const Conv2dShape& s) {
  return (s.in_channels / s.groups * s.out_h * s.out_w + 15) / 16 * 16;
}

// The strided pixels of one image (1x1, no padding) into col, [c][pixel]:
// one copy_strided per output row (im2col_chunk's general row walk spent
// 10 ns a row: 75 us of 256->512 s2 @56's 0.9 ms). With `ahead` (inputs
// over 16 MiB, from DRAM) the rows kGatherAhead channels ahead are
// prefetched (batch 16: 256->512 s2 @56 15.6-16.3 -> 15.1 ms; inputs in
// cache only pay for the prefetches). Channels are split over the threads of
// the enclosing region when `parallel`.
constexpr int64_t kGatherAhead = 4;
// Inputs of at least this many floats (16 MiB) come from DRAM, not cache:
// gather_pixels prefetches their rows ahead.
constexpr int64_t kGatherAheadMinFloats = int64_t(4) << 20;

void gather_pixels(const Conv2dShape& s, const float* x, float* col, bool parallel, bool ahead) {
  const int64_t plane = s.in_h * s.in_w, pixels = s.out_h * s.out_w;
  auto channel = [&](int64_t c) {
    if (ahead && c + kGatherAhead < s.in_channels) {
      const float* next = x + (c + kGatherAhead) * plane;
      for (int64_t oh = 0; oh < s.out_h; ++oh)
        for (int64_t q = 0; q < s.in_w; q += 16) __builtin_prefetch(next + oh * s.stride_h * s.in_w + q);
    }
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      const float* src = x + c * plane + oh * s.stride_h * s.in_w;
      copy_strided(src, s.stride_w, 0, s.out_w, s.in_w, col + c * pixels + oh * s.out_w);
    }
  };
  if (parallel) {
#pragma omp for schedule(static)
    for (int64_t c = 0; c < s.in_channels; ++c) channel(c);
  } else {
    for (int64_t c = 0; c < s.in_channels; ++c) channel(c);
  }
}

// Pointwise forward on the driver (conv2d_pointwise_on_driver): stride 1, or
// strided with groups 1 (each image's pixels gathered first); plain or packed
// weights.
void pointwise_forward(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const Lowering l = plan(s);
  if (l.kg <= 0 || l.pixels <= 0 || s.batch <= 0) return;
  const bool packed = packed_pointwise_ok(a);
  const int threads = a.num_threads;
  const int64_t images = s.batch * l.groups;
  const bool gathered = !l.direct;  // (groups 1 only: run_pointwise)
  // Strided: whole images per thread when there are enough, else one image
  // at a time with the items of that image shared.
  const bool image_parallel = gathered && threads > 1 && s.batch >= threads;
  const DriverPlan d = driver_plan(l.kg, l.cg, l.pixels,
                                   gathered ? (image_parallel ? s.batch : 1) : images,
                                   image_parallel ? 1 : threads);
  DriverJob job;
  job.a = &a;
  job.d = &d;
  job.kg = l.kg;
  job.cg = l.cg;
  job.pixels = l.pixels;
  job.packed = packed;
  job.stream = RL > 1 && use_streamed_outputs(a, s.batch * s.out_channels * l.pixels) &&
               l.pixels % PL == 0 &&
               reinterpret_cast<uintptr_t>(a.output) % (PL * sizeof(float)) == 0;
  const int64_t scratch_floats = driver_scratch_floats(l.pixels, l.cg);
  auto scratch_of = [&](float* base, int tid) { return base + tid * scratch_floats; };
  const int64_t in_plane = s.in_h * s.in_w;
  auto weights_of = [&](int64_t g) { return packed ? a.packed_weight : a.weight + g * l.kg * l.cg; };
  // Image strips (strips_per_image) after every thread's scratch.
  const bool use_strips = strips_per_image(l.kg, l.cg) && d.pt.tiles > 0;
  const bool fold = folds_remainder(packed, d.pt);
  const int64_t strips_floats = image_strips_floats(l.pixels, l.cg);
  float* const strips_base =
      a.workspace + threads * ((gathered ? gather_floats(s) : 0) + scratch_floats);
  if (!gathered && use_strips) {
    // Whole images per thread when there are enough, else one image at a
    // time, its strips copied by all threads before its items share them.
    const bool whole_images = images >= threads;
    const int64_t per_image = d.items();
#pragma omp parallel num_threads(threads)
    {
      const int tid = omp_get_thread_num();
      auto run_image = [&](int64_t ng, float* strips, bool shared) {
        const int64_t n = ng / l.groups, g = ng % l.groups;
        DriverJob jg = job;
        jg.weight = weights_of(g);
        const float* b = a.input + (n * s.in_channels + g * l.cg) * in_plane;
        const int64_t out_offset = (n * s.out_channels + g * l.kg) * l.pixels;
        if (shared) {
#pragma omp for schedule(static)
          for (int64_t t = 0; t < d.pt.tiles; ++t)
            copy_image_strips(d.pt, fold, l.cg, b, l.pixels, t, t + 1, strips);
#pragma omp for schedule(dynamic, 1)
          for (int64_t item = 0; item < per_image; ++item)
            driver_item(jg, d.slab_of(item), d.block_of(item), b, l.pixels, a.output + out_offset,
                        a.residual ? a.residual + out_offset : nullptr,
                        a.bias ? a.bias + g * l.kg : nullptr, scratch_of(a.workspace, tid), strips);
          return;
        }
        copy_image_strips(d.pt, fold, l.cg, b, l.pixels, 0, d.pt.tiles, strips);
        for (int64_t item = 0; item < per_image; ++item)
          driver_item(jg, d.slab_of(item), d.block_of(item), b, l.pixels, a.output + out_offset,
                      a.residual ? a.residual + out_offset : nullptr,
                      a.bias ? a.bias + g * l.kg : nullptr, scratch_of(a.workspace, tid), strips);
      };
      if (whole_images) {
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t ng = 0; ng < images; ++ng) run_image(ng, strips_base + tid * strips_floats, false);
      } else {
        for (int64_t ng = 0; ng < images; ++ng) run_image(ng, strips_base, true);
      }
      if (job.stream) stream_fence();
    }
    return;
  }
  if (!gathered) {
    const int64_t per_image = d.items();
#pragma omp parallel num_threads(threads)
    {
#pragma omp for schedule(dynamic, 1) nowait
      for (int64_t item = 0; item < images * per_image; ++item) {
        const int64_t ng = item / per_image, rest = item % per_image;
        const int64_t n = ng / l.groups, g = ng % l.groups;
        DriverJob jg = job;
        jg.weight = weights_of(g);
        const int64_t out_offset = (n * s.out_channels + g * l.kg) * l.pixels;
        driver_item(jg, d.slab_of(rest), d.block_of(rest),
                    a.input + (n * s.in_channels + g * l.cg) * in_plane, l.pixels,
                    a.output + out_offset, a.residual ? a.residual + out_offset : nullptr,
                    a.bias ? a.bias + g * l.kg : nullptr,
                    scratch_of(a.workspace, omp_get_thread_num()));
      }
      if (job.stream) stream_fence();
    }
    return;
  }
  job.weight = weights_of(0);
  const int64_t gf = gather_floats(s);
  // Each thread's scratch after the gathered pixels.
  float* const scratch_base = a.workspace + (image_parallel ? threads : 1) * gf;
  const bool large_input = s.batch * s.in_channels * in_plane >= kGatherAheadMinFloats;
  auto image_out = [&](int64_t n) { return a.output + n * s.out_channels * l.pixels; };
  auto image_res = [&](int64_t n) -> const float* {
    return a.residual ? a.residual + n * s.out_channels * l.pixels : nullptr;
  };
  if (image_parallel) {
#pragma omp parallel num_threads(threads)
    {
      float* col = a.workspace + omp_get_thread_num() * gf;
      float* strips = use_strips ? strips_base + omp_get_thread_num() * strips_floats : nullptr;
#pragma omp for schedule(dynamic, 1) nowait
      for (int64_t n = 0; n < s.batch; ++n) {
        gather_pixels(s, a.input + n * s.in_channels * in_plane, col, false, large_input);
        if (strips) copy_image_strips(d.pt, fold, l.cg, col, l.pixels, 0, d.pt.tiles, strips);
        for (int64_t item = 0; item < d.items(); ++item)
          driver_item(job, d.slab_of(item), d.block_of(item), col, l.pixels, image_out(n),
                      image_res(n), a.bias, scratch_of(scratch_base, omp_get_thread_num()),
                      strips);
      }
      if (job.stream) stream_fence();
    }
    return;
  }
  float* col = a.workspace;
#pragma omp parallel num_threads(threads)
  {
    for (int64_t n = 0; n < s.batch; ++n) {
      gather_pixels(s, a.input + n * s.in_channels * in_plane, col, true, large_input);
      // (the omp for above ends in a barrier: the gathered pixels are
      // complete; so does this one: the strips are)
      if (use_strips) {
#pragma omp for schedule(static)
        for (int64_t t = 0; t < d.pt.tiles; ++t)
          copy_image_strips(d.pt, fold, l.cg, col, l.pixels, t, t + 1, strips_base);
      }
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < d.items(); ++item)
        driver_item(job, d.slab_of(item), d.block_of(item), col, l.pixels, image_out(n),
                    image_res(n), a.bias, scratch_of(scratch_base, omp_get_thread_num()),
                    use_strips ? strips_base : nullptr);
    }
    if (job.stream) stream_fence();
  }
}

void pointwise_backward_data(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const Lowering l = plan(s);
  const int64_t blocks = (l.pixels + PB - 1) / PB;
  const int64_t items = s.batch * l.groups * blocks;
  const int64_t plane = s.in_h * s.in_w;
#pragma omp parallel num_threads(a.num_threads)
  {
    if (!l.direct) {  // pixels the stride skips get no gradient
#pragma omp for schedule(static)
      for (int64_t i = 0; i < s.batch * s.in_channels; ++i)
        std::memset(a.grad_input + i * plane, 0, sizeof(float) * plane);
    }
    // Static: each thread a contiguous run of pixel blocks. Blocks of 32 pixels
    // end mid-line when the output is not 64-byte aligned (numpy gives 16), so
    // blocks handed out one by one put two threads on every boundary line of all
    // in_channels rows: 2 threads took 2.5x as long as 1 (144 <- 24 @56).
#pragma omp for schedule(static)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t ng = it / blocks, p0 = (it % blocks) * PB;
      const int64_t n = ng / l.groups, g = ng % l.groups;
      const int64_t cols = (l.pixels - p0) < PB ? (l.pixels - p0) : PB;
      const float* gy = a.grad_output + (n * s.out_channels + g * l.kg) * l.pixels + p0;
      float* gx = a.grad_input + (n * s.in_channels + g * l.cg) * plane;
      // gx[c][p] = sum_k W[k][c] gy[k][p]: rows c, inner k, A(c, k) = w[k*cg + c]
      if (l.direct) {
        pointwise_tile(l.cg, cols, l.kg, a.weight + g * l.kg * l.cg, 1, l.cg, gy, l.pixels,
                       nullptr, false, INFINITY, gx + p0, plane);
        continue;
      }
      float* buf = a.workspace + omp_get_thread_num() * l.cg * PB;
      pointwise_tile(l.cg, cols, l.kg, a.weight + g * l.kg * l.cg, 1, l.cg, gy, l.pixels,
                     nullptr, false, INFINITY, buf, PB);
      for (int64_t c = 0; c < l.cg; ++c) {  // scatter to the strided positions
        float* dst = gx + c * plane;
        const float* src = buf + c * PB;
        int64_t oh = p0 / s.out_w, ow = p0 % s.out_w;
        for (int64_t t = 0; t < cols; ++t) {
          dst[oh * s.stride_h * s.in_w + ow * s.stride_w] = src[t];
          if (++ow == s.out_w) {
            ow = 0;
            ++oh;
          }
        }
      }
    }
  }
}

// --------------------------------------------------------- backward weight
// With few output channels (kg < 128) it is computed transposed,
// gw^T[g] (rows x kg) (+)= col (rows x cols) @ gy^T: the tall product (rows =
// C/g*R*S up to thousands) keeps the GEMM's register tiles full where
// gy @ col^T (kg rows) would not; one transpose into OIHW at the end. With
// many output channels gw[g] (kg x rows) (+)= gy @ col^T directly (the
// transpose of a large gradient would cost more than it saves).
bool weight_grad_transposed(const Lowering& l) { return l.kg < 128; }

// Images per GEMM: small planes (7x7, 8x8, 14x14) make thin GEMMs, so several
// images' columns go side by side into one; with threads, at most an equal
// share of the batch (8 images on 2 threads: 4 + 4, not 5 + 3).
int64_t images_per_gemm(const Lowering& l, const Conv2dShape& s, int threads) {
  if (l.chunk != l.pixels) return 1;
  int64_t nb = kColumnBudgetFloats / (l.rows * l.pixels > 0 ? l.rows * l.pixels : 1);
  if (nb > s.batch) nb = s.batch;
  if (threads > 1) {
    const int64_t share = (s.batch + threads - 1) / threads;
    if (nb > share) nb = share;
  }
  return nb < 1 ? 1 : nb;
}

// The lowering backward-weight uses: when the batch gives fewer than two
// (image, pixel chunk) units per thread (batch 1), images are cut into more,
// smaller pixel chunks, so every thread accumulates its own share privately
// instead of all threads meeting inside one GEMM per chunk.
Lowering weight_grad_plan(const Conv2dShape& s, int threads) {
  Lowering l = plan(s);
  if (threads <= 1 || images_per_gemm(l, s, threads) > 1 ||
      s.batch * chunks_per_image(l) >= 2 * threads)
    return l;
  const int64_t per_image = (2 * threads + s.batch - 1) / s.batch;
  int64_t c = (l.pixels + per_image - 1) / per_image;
  c = (c + 15) / 16 * 16;
  if (c < l.chunk) l.chunk = c;
  return l;
}

// Floats of per-thread scratch: columns (unless direct) and batched gy.
int64_t weight_grad_scratch(const Lowering& l, int64_t nb) {
  if (nb > 1) return nb * l.pixels * (l.rows + l.kg);  // columns side by side + gy
  return column_floats(l);
}

// gwT[g] (or gw[g]) (+)= the product for output pixels [p0, p0 + cols) of image n.
void weight_grad_chunk_group(const Conv2dArgs& a, const Lowering& l, int64_t n, int64_t g,
                             int64_t p0, int64_t cols, float* gwt_g, float* scratch, int threads,
                             bool parallel_lowering, bool accumulate) {
  const Conv2dShape& s = a.shape;
  const GemmEpilogue none;
  const int64_t plane = s.in_h * s.in_w;
  const float* x = a.input + (n * s.in_channels + g * l.cg) * plane;
  const float* gy = a.grad_output + (n * s.out_channels + g * l.kg) * l.pixels;
  const float* col = x + p0;
  int64_t ldcol = plane;
  if (!l.direct) {
    if (parallel_lowering) {
#pragma omp parallel num_threads(threads)
      im2col_chunk(s, x, p0, cols, l.rows, scratch, true);
    } else {
      im2col_chunk(s, x, p0, cols, l.rows, scratch, false);
    }
    col = scratch;
    ldcol = cols;
  }
  const float beta = accumulate ? 1.0f : 0.0f;
  if (weight_grad_transposed(l))
    a.gemm(false, true, l.rows, l.kg, cols, 1.0f, col, ldcol, gy + p0, l.pixels, beta, gwt_g,
           l.kg, none, threads);
  else
    a.gemm(false, true, l.kg, l.rows, cols, 1.0f, gy + p0, l.pixels, col, ldcol, beta, gwt_g,
           l.rows, none, threads);
}

// All groups of one pixel chunk of image n, into gwT (or gw).
void weight_grad_chunk(const Conv2dArgs& a, const Lowering& l, int64_t n, int64_t p0,
                       int64_t cols, float* gwt, float* scratch, int threads,
                       bool parallel_lowering, bool accumulate) {
  for (int64_t g = 0; g < l.groups; ++g)
    weight_grad_chunk_group(a, l, n, g, p0, cols, gwt + g * l.rows * l.kg, scratch, threads,
                            parallel_lowering, accumulate);
}

// gwT (+)= sum over images [n0, n1): nb images per GEMM, their columns side by
// side in col (rows x nb*pixels) and their gradients in gyb (kg x nb*pixels).
void backward_weight_images(const Conv2dArgs& a, const Lowering& l, int64_t n0, int64_t n1,
                            int64_t nb, float* gwt, float* scratch, int threads,
                            bool parallel_lowering, bool accumulate) {
  const Conv2dShape& s = a.shape;
  const GemmEpilogue none;
  const int64_t plane = s.in_h * s.in_w;
  const bool transposed = weight_grad_transposed(l);
  for (int64_t b0 = n0; b0 < n1; b0 += nb) {
    const int64_t count = (n1 - b0) < nb ? (n1 - b0) : nb;
    for (int64_t g = 0; g < l.groups; ++g) {
      float* gwt_g = gwt + g * l.rows * l.kg;
      if (count == 1 || nb == 1) {  // one image at a time, in pixel chunks
        for (int64_t i = 0; i < count; ++i)
          for (int64_t p0 = 0; p0 < l.pixels; p0 += l.chunk) {
            const int64_t cols = (l.pixels - p0) < l.chunk ? (l.pixels - p0) : l.chunk;
            weight_grad_chunk_group(a, l, b0 + i, g, p0, cols, gwt_g, scratch, threads,
                                    parallel_lowering, accumulate || i > 0 || b0 > n0 || p0 > 0);
          }
        continue;
      }
      const int64_t width = count * l.pixels;
      float* col = scratch;
      float* gyb = scratch + nb * l.pixels * l.rows;
      for (int64_t i = 0; i < count; ++i) {
        const float* x = a.input + ((b0 + i) * s.in_channels + g * l.cg) * plane;
        const float* gy = a.grad_output + ((b0 + i) * s.out_channels + g * l.kg) * l.pixels;
        if (l.direct) {
          for (int64_t c = 0; c < l.rows; ++c)
            std::memcpy(col + c * width + i * l.pixels, x + c * plane, sizeof(float) * l.pixels);
        } else if (parallel_lowering) {
#pragma omp parallel num_threads(threads)
          im2col_chunk(s, x, 0, l.pixels, l.rows, col + i * l.pixels, true, width);
        } else {
          im2col_chunk(s, x, 0, l.pixels, l.rows, col + i * l.pixels, false, width);
        }
        for (int64_t k = 0; k < l.kg; ++k)
          std::memcpy(gyb + k * width + i * l.pixels, gy + k * l.pixels, sizeof(float) * l.pixels);
      }
      const float beta = (accumulate || b0 > n0) ? 1.0f : 0.0f;
      if (transposed)
        a.gemm(false, true, l.rows, l.kg, width, 1.0f, col, width, gyb, width, beta, gwt_g, l.kg,
               none, threads);
      else
        a.gemm(false, true, l.kg, l.rows, width, 1.0f, gyb, width, col, width, beta, gwt_g,
               l.rows, none, threads);
    }
  }
}

void grad_bias(const Conv2dArgs& a) {
#pragma omp parallel for num_threads(a.num_threads) schedule(static)
  for (int64_t k = 0; k < a.shape.out_channels; ++k) a.grad_bias[k] = conv2d_bias_gradient(a, k);
}

// gw[g*kg + k][row] = sum over the accumulators u of gwT_u[g][row][k] (or of
// gw_u itself when not transposed).
void transpose_into_weight_grad(const Lowering& l, const float* gwt, int accumulators,
                                int64_t weight_floats, float* gw) {
  const int64_t per_group = l.rows * l.kg;
  if (!weight_grad_transposed(l)) {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < weight_floats; ++i) {
      float sum = 0.0f;
      for (int u = 0; u < accumulators; ++u) sum += gwt[u * weight_floats + i];
      gw[i] = sum;
    }
    return;
  }
#pragma omp for schedule(static)
  for (int64_t gk = 0; gk < l.groups * l.kg; ++gk) {
    const int64_t g = gk / l.kg, k = gk % l.kg;
    float* dst = gw + gk * l.rows;
    for (int64_t row = 0; row < l.rows; ++row) {
      float sum = 0.0f;
      for (int u = 0; u < accumulators; ++u)
        sum += gwt[u * weight_floats + g * per_group + row * l.kg + k];
      dst[row] = sum;
    }
  }
}

// ------------------------------------ backward weight, large kernels (stem)
// gw[k][q] = sum_p gy[k][p] * x(q, p), q = (c*R + r)*S + s (OIHW order), as a
// GEMM whose B operand is written straight into micro-kernel panels: for each
// output pixel p, the S taps of one (c, r) are S consecutive input pixels
// (dilation_w 1), so a panel row is filled by one masked vector load per
// (c, r) instead of an im2col pass plus a transposing pack. A is gy itself,
// broadcast from its rows (no packing). Units of kRowChunk pixels of one
// image go to threads dynamically; each thread accumulates into a private
// gw, reduced at the end. Used where S <= L, dilation_w 1, groups 1 and the
// kernel has at least kRowMinTaps taps (the 7x7 stem).
#if defined(__AVX512F__)
constexpr int RK = 8, RV = 3;   // 8 output channels x 3 vectors: 24 zmm accumulators
#elif defined(__AVX2__)
constexpr int RK = 4, RV = 3;   // 12 ymm accumulators
#else
constexpr int RK = 4, RV = 1;
#endif
constexpr int64_t kRowChunk = 192;      // output pixels per unit

// 1x1 without padding: the panels are the (strided) input pixels, channels
// minor, filled by L x L register transposes.
bool rows_pointwise(const Conv2dShape& s) {
  return RL > 1 && s.groups == 1 && is_pointwise(s) && s.in_h * s.in_w < (int64_t(1) << 30);
}

bool rows_backward_weight_ok(const Conv2dShape& s) {
  return rows_pointwise(s) || (RL > 1 && s.groups == 1 && s.dilation_w == 1 &&
                               s.kernel_w <= RL && s.kernel_h * s.kernel_w >= kRowMinTaps);
}

struct RowPlan {
  int64_t rows;      // C*R*S
  int64_t panel;     // columns q per full panel: RV or RV - 1 vectors
  int64_t full;      // full panels
  int64_t last_w;    // width of the last, narrower panel (0: none), a multiple of RL
  int64_t q_pad;     // full * panel + last_w: accumulator row length
  int64_t ldp;       // floats per pixel row of the B buffer: q_pad + RL (spill room)
  int64_t chunk;     // pixels per unit
  int64_t panels_floats;  // B panels of one unit, with slack
  int64_t thread_floats;  // panels + private accumulator
};

RowPlan row_plan(const Conv2dShape& s) {
  RowPlan r;
  r.rows = s.in_channels * s.kernel_h * s.kernel_w;
  // Panels of RV vectors, unless that leaves a one-vector last panel (the
  // slowest tile shape) and RV - 1 vectors would not (ResNet's stem: 147
  // columns as 5 x 2 vectors instead of 3 x 3 + 1).
  const int64_t vectors = (r.rows + RL - 1) / RL;
  r.panel = RV * RL;
  if (RV > 2 && vectors % RV == 1 && vectors > 1 && vectors % (RV - 1) != 1) r.panel = (RV - 1) * RL;
  r.full = r.rows / r.panel;
  const int64_t rem = r.rows - r.full * r.panel;
  r.last_w = (rem + RL - 1) / RL * RL;
  r.q_pad = r.full * r.panel + r.last_w;
  const int64_t pixels = s.out_h * s.out_w;
  r.chunk = pixels < kRowChunk ? pixels : kRowChunk;
  r.ldp = r.q_pad + RL;
  r.panels_floats = (r.chunk * r.ldp + 15) / 16 * 16;
  r.thread_floats = r.panels_floats + (s.out_channels * r.q_pad + 15) / 16 * 16;
  return r;
}

// The B buffer holds one row of ldp floats per pixel p of the unit: columns
// q < rows, zeros up to q_pad, then room for whole-vector spills. Panel j is
// columns [j * panel, ...) of every row, read in place by the micro-kernel.

// Lanes [lo, hi) of a vector from p_lo[0 .. hi - lo) (p_lo is lane lo's
// address), zeros elsewhere: one masked load at lane 0's address, whose
// masked-off lanes are never accessed (so nothing outside those floats is
// touched, even before the start of the buffer).
inline Vec load_lanes(const float* p_lo, int lo, int hi) {
  const float* p0 = reinterpret_cast<const float*>(reinterpret_cast<uintptr_t>(p_lo) -
                                                   static_cast<uintptr_t>(lo) * sizeof(float));
#if defined(__AVX512F__)
  const __mmask16 m = static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
  return _mm512_maskz_loadu_ps(m, p0);
#elif defined(__AVX2__)
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(lo - 1)),
                                      _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane));
  return _mm256_maskload_ps(p0, in);
#else
  (void)p0;
  return lo == 0 && hi > 0 ? Vec(*p_lo) : Vec::zero();
#endif
}

// count pixels of one run: whole vectors from src (+= sstep) to dst (+= ld).
void fill_fast(const float* __restrict src, int64_t sstep, float* __restrict dst, int64_t ld,
               int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    Vec::load(src).store(dst);
    src += sstep;
    dst += ld;
  }
}

void fill_row_panels(const Conv2dShape& s, const RowPlan& rp, const float* x, int64_t p0,
                     int64_t cols, float* panels) {
  const int64_t S = s.kernel_w, R = s.kernel_h;
  const int64_t plane = s.in_h * s.in_w;
  const int64_t ld = rp.ldp;
  const int n_run = static_cast<int>(S);
  // Columns past C*R*S must be finite (zero): cleared first; the runs then
  // overwrite the live ones.
  for (int64_t p = 0; p < cols; ++p) Vec::zero().store(panels + p * ld + rp.q_pad - RL);
  // Runs in increasing column order, each over all pixels. A run's whole-
  // vector store spills (finite) values only into columns of later runs of
  // the same pixel, rewritten afterwards, or past C*R*S, whose accumulator
  // columns are dropped (ld leaves room for the last run's spill).
  for (int64_t run = 0; run < s.in_channels * R; ++run) {
    const int64_t c = run / R, r = run % R;
    float* d1 = panels + run * S;
    const float* xc = x + c * plane;
    int64_t oh = p0 / s.out_w, ow = p0 % s.out_w;
    for (int64_t p = 0; p < cols;) {
      const int64_t len = (s.out_w - ow) < (cols - p) ? (s.out_w - ow) : (cols - p);
      const int64_t ih = oh * s.stride_h - s.pad_top + r * s.dilation_h;
      const bool row_ok = ih >= 0 && ih < s.in_h;
      const float* row = xc + ih * s.in_w;
      // Pixels whose run lies inside the row as a whole vector take the
      // branch-free loop; the few at the edges, and rows in the padding, the
      // general one.
      int64_t t_lo = len, t_hi = len;
      if (row_ok) {
        const int64_t need = s.pad_left - ow * s.stride_w;  // iw0 >= 0
        t_lo = need <= 0 ? 0 : (need + s.stride_w - 1) / s.stride_w;
        const int64_t room = s.in_w - RL + s.pad_left - ow * s.stride_w;  // iw0 + RL <= in_w
        t_hi = room < 0 ? 0 : room / s.stride_w + 1;
        if (t_lo > len) t_lo = len;
        if (t_hi > len) t_hi = len;
        if (t_hi < t_lo) t_hi = t_lo;
      }
      auto general = [&](int64_t t) {
        const int64_t iw0 = (ow + t) * s.stride_w - s.pad_left;
        Vec v;
        if (!row_ok) {
          v = Vec::zero();
        } else if (iw0 >= 0 && iw0 + S <= s.in_w) {
          v = Vec::load_partial(row + iw0, n_run);
        } else {  // taps in [lo, hi) are inside the row
          const int64_t lo = iw0 < 0 ? -iw0 : 0;
          int64_t hi = s.in_w - iw0;
          if (hi > S) hi = S;
          v = hi > lo ? load_lanes(row + iw0 + lo, static_cast<int>(lo), static_cast<int>(hi))
                      : Vec::zero();
        }
        v.store(d1 + (p + t) * ld);
      };
      for (int64_t t = 0; t < t_lo; ++t) general(t);
      if (t_hi > t_lo)
        fill_fast(row + (ow + t_lo) * s.stride_w - s.pad_left, s.stride_w, d1 + (p + t_lo) * ld,
                  ld, t_hi - t_lo);
      for (int64_t t = t_hi; t < len; ++t) general(t);
      p += len;
      ow = 0;
      ++oh;
    }
  }
}

// v[t] = base[off[t]] for t < L (a plane is far below 2^31 floats: checked
// by rows_pointwise).
inline Vec gather_pixels(const float* base, const int32_t* off) {
#if defined(__AVX512F__)
  return _mm512_i32gather_ps(_mm512_load_si512(off), base, 4);
#elif defined(__AVX2__)
  return _mm256_i32gather_ps(base, _mm256_load_si256(reinterpret_cast<const __m256i*>(off)), 4);
#else
  return Vec(base[off[0]]);
#endif
}

// 1x1: panel row p holds input channels for output pixel p0 + p, i.e. input
// pixel (oh * stride_h, ow * stride_w). L pixels x L channels at a time are
// loaded channel by channel (contiguous for stride 1) and transposed.
void fill_pointwise_panels(const Conv2dShape& s, const RowPlan& rp, const float* x, int64_t p0,
                           int64_t cols, float* panels) {
  const int64_t plane = s.in_h * s.in_w;
  const bool contiguous = is_direct_pointwise(s);
  alignas(64) int32_t off[RL];
  for (int64_t p = 0; p < cols; p += RL) {
    const int n = static_cast<int>((cols - p) < RL ? (cols - p) : RL);
    // Stride 2 along W with the n pixels in one output row: the even lanes of
    // two plain loads (masked where the row's end is near), not a gather
    // (1T 64->128 s2 @56: ~20 cycles per AVX2 gather on Zen 2).
    const int64_t q0 = p0 + p, oh0 = q0 / s.out_w, ow0 = q0 % s.out_w;
    const bool even_run = !contiguous && s.stride_w == 2 && ow0 + n <= s.out_w;
    const int64_t run_at = oh0 * s.stride_h * s.in_w + 2 * ow0;
    const bool run_room = 2 * (ow0 + RL) <= s.in_w;  // whole vectors stay in the row
    if (!contiguous && !even_run) {  // lanes past n repeat pixel 0 (read, never stored)
      for (int t = 0; t < RL; ++t) {
        const int64_t q = p0 + p + (t < n ? t : 0), oh = q / s.out_w, ow = q % s.out_w;
        off[t] = static_cast<int32_t>(oh * s.stride_h * s.in_w + ow * s.stride_w);
      }
    }
    for (int64_t c0 = 0; c0 < rp.q_pad; c0 += RL) {
      Vec r[RL];
      for (int64_t i = 0; i < RL; ++i) {
        const int64_t c = c0 + i;
        if (c >= s.in_channels) {
          r[i] = Vec::zero();
        } else if (contiguous) {
          r[i] = Vec::load_partial(x + c * plane + p0 + p, n);
        } else if (even_run) {
          const float* at = x + c * plane + run_at;
          r[i] = run_room ? load_even(at) : load_even_partial(at, n);
        } else {
          r[i] = gather_pixels(x + c * plane, off);
        }
      }
      transpose_lx(r);
      float* dst = panels + p * rp.ldp + c0;
      for (int t = 0; t < n; ++t) r[t].store(dst + t * rp.ldp);
    }
  }
}

// acc[i][q0 + v*RL ...] += sum_p gy_i[p] * panel[p][v*RL ...] for i < MR, v < NV.
template <int MR, int NV>
void row_tile(const float* const* gy, const float* __restrict panel, int64_t w, int64_t cols,
              float* __restrict acc, int64_t ldacc) {
  Vec c[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) c[i][v] = Vec::zero();
  const float* g[MR];
  for (int i = 0; i < MR; ++i) g[i] = gy[i];
  for (int64_t p = 0; p < cols; ++p) {
    Vec b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = Vec::load(panel + p * w + v * RL);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const Vec a = Vec::set1(g[i][p]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[i][v] = fmadd(a, b[v], c[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      (c[i][v] + Vec::load(acc + i * ldacc + v * RL)).store(acc + i * ldacc + v * RL);
}

template <int MR, int NV>
void row_tile_rows(int64_t mr, const float* const* gy, const float* panel, int64_t w,
                   int64_t cols, float* acc, int64_t ldacc) {
  if constexpr (MR > 0) {
    if (mr == MR) {
      row_tile<MR, NV>(gy, panel, w, cols, acc, ldacc);
      return;
    }
    row_tile_rows<MR - 1, NV>(mr, gy, panel, w, cols, acc, ldacc);
  }
}

template <int NV>
void row_panel(int64_t K, const float* gy, int64_t ldgy, const float* panel, int64_t w,
               int64_t cols, float* acc, int64_t ldacc) {
  for (int64_t k0 = 0; k0 < K; k0 += RK) {
    const int64_t mr = (K - k0) < RK ? (K - k0) : RK;
    const float* rows[RK];
    for (int i = 0; i < RK; ++i) rows[i] = gy + (k0 + (i < mr ? i : mr - 1)) * ldgy;
    row_tile_rows<RK, NV>(mr, rows, panel, w, cols, acc + k0 * ldacc, ldacc);
  }
}

void backward_weight_rows(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const RowPlan rp = row_plan(s);
  const int64_t pixels = s.out_h * s.out_w;
  const int64_t chunks = (pixels + rp.chunk - 1) / rp.chunk;
  const int64_t units = s.batch * chunks;
  const int64_t K = s.out_channels;
  const bool pointwise = rows_pointwise(s);
  if (a.grad_bias) grad_bias(a);
  int used = 1;
#pragma omp parallel num_threads(a.num_threads)
  {
#pragma omp single
    used = omp_get_num_threads();
    float* panels = a.workspace + omp_get_thread_num() * rp.thread_floats;
    float* acc = panels + rp.panels_floats;
    std::memset(acc, 0, sizeof(float) * K * rp.q_pad);
#pragma omp for schedule(dynamic, 1)
    for (int64_t u = 0; u < units; ++u) {
      const int64_t n = u / chunks, p0 = (u % chunks) * rp.chunk;
      const int64_t cols = (pixels - p0) < rp.chunk ? (pixels - p0) : rp.chunk;
      const float* x = a.input + n * s.in_channels * s.in_h * s.in_w;
      if (pointwise) fill_pointwise_panels(s, rp, x, p0, cols, panels);
      else fill_row_panels(s, rp, x, p0, cols, panels);
      const float* gy = a.grad_output + n * K * pixels + p0;
      const int64_t ld = rp.ldp;
      for (int64_t j = 0; j < rp.full; ++j) {
        const float* pl = panels + j * rp.panel;
        float* ac = acc + j * rp.panel;
        if (rp.panel == RV * RL) row_panel<RV>(K, gy, pixels, pl, ld, cols, ac, rp.q_pad);
        else row_panel<(RV > 1 ? RV - 1 : 1)>(K, gy, pixels, pl, ld, cols, ac, rp.q_pad);
      }
      if (rp.last_w > 0) {
        const float* pl = panels + rp.full * rp.panel;
        float* ac = acc + rp.full * rp.panel;
        switch (rp.last_w / RL) {
          case 1: row_panel<1>(K, gy, pixels, pl, ld, cols, ac, rp.q_pad); break;
          case 2: row_panel<(RV >= 2 ? 2 : 1)>(K, gy, pixels, pl, ld, cols, ac, rp.q_pad); break;
          default: row_panel<RV>(K, gy, pixels, pl, ld, cols, ac, rp.q_pad); break;
        }
      }
    }
    // implicit barrier: every private accumulator is complete; a row of gw
    // at a time (a division per weight cost 1T 1x1 s2 64->128 @56 a sixth)
    const float* acc0 = a.workspace + rp.panels_floats;
#pragma omp for schedule(static)
    for (int64_t k = 0; k < K; ++k) {
      float* dst = a.grad_weight + k * rp.rows;
      std::memcpy(dst, acc0 + k * rp.q_pad, sizeof(float) * rp.rows);
      for (int t = 1; t < used; ++t) {
        const float* src = acc0 + t * rp.thread_floats + k * rp.q_pad;
        for (int64_t q = 0; q < rp.rows; ++q) dst[q] += src[q];
      }
    }
  }
}

// Stride-1 1x1 backward-weight on AVX2 as dot products along the pixels:
// gw[k][c] = sum over images and pixels of gy[k][p] * x[c][p], both read in
// place (pixels are contiguous in NCHW). A tile of DK output x DC input
// channels keeps DK * DC vector accumulators and loads DK + DC vectors per
// DK * DC FMAs, the same ratio as the panel path, without transposing the
// input into panels (a quarter of that path's time at 144 -> 24 @56). Units
// are (image, pixel chunk, group of output-channel tiles); each thread sums
// into its own K x C accumulator, reduced at the end. Taken where there are
// fewer output than input channels (with as many or more outputs, 24 -> 144 and
// 64 -> 256, the panel path was even or faster). AVX2 only: the AVX-512 panel
// path was tuned on its own machine and this one was not measured there.
constexpr int DK = 3, DC = 4;          // 12 accumulators, 7 loads: 16 ymm registers
constexpr int64_t kDotChunk = 1024;    // pixels per unit: DC rows of x stay in L1
constexpr int64_t kDotMaxWeights = int64_t(1) << 21;  // K * C: at most 8 MiB of sums a thread

bool dot_backward_weight_ok(const Conv2dShape& s) {
  return RL == 8 && s.groups == 1 && is_direct_pointwise(s) && s.out_channels < s.in_channels &&
         s.out_channels * s.in_channels <= kDotMaxWeights;
}

struct DotPlan {
  int64_t pixels, chunks, k_tiles, k_groups, units;
};

DotPlan dot_plan(const Conv2dShape& s, int threads) {
  DotPlan d;
  d.pixels = s.out_h * s.out_w;
  d.chunks = (d.pixels + kDotChunk - 1) / kDotChunk;
  d.k_tiles = (s.out_channels + DK - 1) / DK;
  // Too few (image, chunk) units for the threads: split the output channels too.
  const int64_t per_k = s.batch * d.chunks;
  d.k_groups = per_k >= threads ? 1 : std::min<int64_t>(d.k_tiles, threads);
  d.units = per_k * d.k_groups;
  return d;
}

// sums[k][c] += sum_p gy_k[p] * x_c[p] for the DK x DC tile at (k0, c0): rows
// past K or C repeat the last one and their sums are dropped.
void dot_tile(const float* gy, const float* x, int64_t pixels, int64_t cols, int64_t K,
              int64_t C, int64_t k0, int64_t c0, float* sums) {
  const float* g[DK];
  const float* xr[DC];
  for (int i = 0; i < DK; ++i) g[i] = gy + std::min<int64_t>(k0 + i, K - 1) * pixels;
  for (int j = 0; j < DC; ++j) xr[j] = x + std::min<int64_t>(c0 + j, C - 1) * pixels;
  Vec acc[DK][DC];
#pragma GCC unroll 4
  for (int i = 0; i < DK; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < DC; ++j) acc[i][j] = Vec::zero();
  int64_t p = 0;
  for (; p + RL <= cols; p += RL) {
    Vec gv[DK];
#pragma GCC unroll 4
    for (int i = 0; i < DK; ++i) gv[i] = Vec::load(g[i] + p);
#pragma GCC unroll 4
    for (int j = 0; j < DC; ++j) {
      const Vec xv = Vec::load(xr[j] + p);
#pragma GCC unroll 4
      for (int i = 0; i < DK; ++i) acc[i][j] = fmadd(gv[i], xv, acc[i][j]);
    }
  }
  if (p < cols) {  // the tail: zeros in the lanes past cols
    const int n = static_cast<int>(cols - p);
    Vec gv[DK];
#pragma GCC unroll 4
    for (int i = 0; i < DK; ++i) gv[i] = Vec::load_partial(g[i] + p, n);
#pragma GCC unroll 4
    for (int j = 0; j < DC; ++j) {
      const Vec xv = Vec::load_partial(xr[j] + p, n);
#pragma GCC unroll 4
      for (int i = 0; i < DK; ++i) acc[i][j] = fmadd(gv[i], xv, acc[i][j]);
    }
  }
  for (int i = 0; i < DK && k0 + i < K; ++i)
    for (int j = 0; j < DC && c0 + j < C; ++j) sums[(k0 + i) * C + c0 + j] += reduce_add(acc[i][j]);
}

void backward_weight_dot(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const int64_t K = s.out_channels, C = s.in_channels;
  const DotPlan d = dot_plan(s, a.num_threads);
  if (a.grad_bias) grad_bias(a);
  int used = 1;
#pragma omp parallel num_threads(a.num_threads)
  {
#pragma omp single
    used = omp_get_num_threads();
    float* sums = a.workspace + omp_get_thread_num() * K * C;
    std::memset(sums, 0, sizeof(float) * K * C);
#pragma omp for schedule(dynamic, 1)
    for (int64_t u = 0; u < d.units; ++u) {
      const int64_t group = u % d.k_groups, rest = u / d.k_groups;
      const int64_t n = rest / d.chunks, p0 = (rest % d.chunks) * kDotChunk;
      const int64_t cols = std::min(kDotChunk, d.pixels - p0);
      const int64_t t0 = d.k_tiles * group / d.k_groups, t1 = d.k_tiles * (group + 1) / d.k_groups;
      const float* gy = a.grad_output + n * K * d.pixels + p0;
      const float* x = a.input + n * C * d.pixels + p0;
      // Input-channel tiles outside, so that their DC rows are reused from L1
      // by every output-channel tile.
      for (int64_t c0 = 0; c0 < C; c0 += DC)
        for (int64_t t = t0; t < t1; ++t) dot_tile(gy, x, d.pixels, cols, K, C, t * DK, c0, sums);
    }
    // implicit barrier: every thread's sums are complete
#pragma omp for schedule(static)
    for (int64_t i = 0; i < K * C; ++i) {
      float total = 0.0f;
      for (int t = 0; t < used; ++t) total += a.workspace[t * K * C + i];
      a.grad_weight[i] = total;
    }
  }
}

void backward_weight(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  if (dot_backward_weight_ok(s)) {
    backward_weight_dot(a);
    return;
  }
  if (rows_backward_weight_ok(s)) {
    backward_weight_rows(a);
    return;
  }
  const Lowering l = weight_grad_plan(s, a.num_threads);
  const int64_t weight_floats = s.out_channels * l.rows;
  const int64_t nb = images_per_gemm(l, s, a.num_threads);
  const int64_t scratch_floats = weight_grad_scratch(l, nb);
  if (a.grad_bias) grad_bias(a);
  const int64_t chunks = nb > 1 ? 1 : chunks_per_image(l);
  const int64_t units = nb > 1 ? (s.batch + nb - 1) / nb : s.batch * chunks;
  if (a.num_threads > 1 && units >= a.num_threads) {
    // Thread-private accumulators after the per-thread scratch; units (groups
    // of nb images, or one image's pixel chunk) are handed out dynamically (a
    // thread that shares its core with another process just takes fewer),
    // then all threads reduce.
    float* privates = a.workspace + a.num_threads * scratch_floats;
    const int threads = a.num_threads;
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      float* acc = privates + t * weight_floats;
      float* scratch = a.workspace + t * scratch_floats;
      std::memset(acc, 0, sizeof(float) * weight_floats);
#pragma omp for schedule(dynamic, 1)
      for (int64_t u = 0; u < units; ++u) {
        if (nb > 1) {
          const int64_t n0 = u * nb, n1 = (n0 + nb) < s.batch ? (n0 + nb) : s.batch;
          backward_weight_images(a, l, n0, n1, nb, acc, scratch, 1, false, true);
        } else {
          const int64_t p0 = (u % chunks) * l.chunk;
          const int64_t cols = (l.pixels - p0) < l.chunk ? (l.pixels - p0) : l.chunk;
          weight_grad_chunk(a, l, u / chunks, p0, cols, acc, scratch, 1, false, true);
        }
      }
      transpose_into_weight_grad(l, privates, threads, weight_floats, a.grad_weight);
    }
  } else if (!weight_grad_transposed(l)) {
    backward_weight_images(a, l, 0, s.batch, nb, a.grad_weight, a.workspace, a.num_threads,
                           a.num_threads > 1, false);
  } else {
    float* gwt = a.workspace + scratch_floats;
    backward_weight_images(a, l, 0, s.batch, nb, gwt, a.workspace, a.num_threads,
                           a.num_threads > 1, false);
#pragma omp parallel num_threads(a.num_threads)
    transpose_into_weight_grad(l, gwt, 1, weight_floats, a.grad_weight);
  }
}

int64_t workspace_floats(ConvPass pass, const Conv2dShape& s, int threads) {
  const Lowering l = pass == ConvPass::backward_weight ? weight_grad_plan(s, threads) : plan(s);
  const int64_t col = column_floats(l);
  if (pass == ConvPass::backward_weight && dot_backward_weight_ok(s))
    return threads * s.out_channels * s.in_channels;
  if (pass == ConvPass::backward_weight && rows_backward_weight_ok(s))
    return threads * row_plan(s).thread_floats;
  if (pass == ConvPass::backward_weight) {
    const int64_t nb = images_per_gemm(l, s, threads);
    const int64_t scratch = weight_grad_scratch(l, nb);
    const int64_t weights = s.out_channels * l.rows;
    const int64_t units = nb > 1 ? (s.batch + nb - 1) / nb : s.batch * chunks_per_image(l);
    if (threads > 1 && units >= threads) return threads * (scratch + weights);
    return scratch + weights;
  }
  if (pass == ConvPass::forward && rows_forward_ok(s)) return rows_forward_floats(s, threads);
  if (pass == ConvPass::backward_data && rows_backward_data_ok(s))
    return rows_backward_data_floats(s, threads);
  if (pass == ConvPass::forward) {
    const int64_t nb = forward_images_per_gemm(l, s, threads);
    if (nb > 1) {
      const int64_t per_unit = batched_forward_floats(l, nb);
      return batched_units_in_parallel(l, s, nb, threads) ? threads * per_unit : per_unit;
    }
    const int64_t xt = columns_bound(l.rows);  // forward_chunk's per-thread remainder
    return units_in_parallel(l, s, threads) ? threads * (col + xt) : col + threads * xt;
  }
  if (chunks_in_parallel_bwd(l, s, threads)) return threads * (col + l.cg * s.in_h * s.in_w);
  return items_in_parallel(s.batch * l.groups, threads) ? threads * col : col;
}

int64_t im2col_workspace(ConvPass pass, const Conv2dShape& s, int threads) {
  return workspace_floats(pass, s, threads);
}

int64_t pointwise_workspace(ConvPass pass, const Conv2dShape& s, int threads) {
  if (!is_pointwise(s)) return -1;
  const int64_t kg = s.out_channels / s.groups, cg = s.in_channels / s.groups;
  const int64_t strips = strips_per_image(kg, cg) ? threads * image_strips_floats(s.out_h * s.out_w, cg) : 0;
  if (pass == ConvPass::forward && is_direct_pointwise(s))
    return threads * driver_scratch_floats(s.out_h * s.out_w, cg) + strips;
  if (pass == ConvPass::forward && s.groups == 1)  // the driver's gathered pixels, or im2col's
    return std::max(workspace_floats(pass, s, threads),
                    threads * (gather_floats(s) +
                               driver_scratch_floats(s.out_h * s.out_w, s.in_channels)) + strips);
  if (pass == ConvPass::backward_data && is_direct_pointwise(s)) return 0;
  return workspace_floats(pass, s, threads);
}

// Stride 1 runs the register-tiled kernel straight on the planes; strided 1x1
// gathers the pixels once per image for a GEMM (measured faster than gathering
// per tile). Forward: the driver (conv2d_pointwise_on_driver, the only path
// that takes a residual) for stride 1 or groups 1.
void run_pointwise(ConvPass pass, const Conv2dArgs& a) {
  const bool tiled = is_direct_pointwise(a.shape);
  switch (pass) {
    case ConvPass::forward:
      conv2d_pointwise_on_driver(a.shape, a.packed_weight != nullptr) ? pointwise_forward(a)
                                                                        : forward(a);
      break;
    case ConvPass::backward_data: tiled ? pointwise_backward_data(a) : backward_data(a); break;
    case ConvPass::backward_weight: backward_weight(a); break;
  }
}

void run(ConvPass pass, const Conv2dArgs& a) {
  switch (pass) {
    case ConvPass::forward: forward(a); break;
    case ConvPass::backward_data: backward_data(a); break;
    case ConvPass::backward_weight: backward_weight(a); break;
  }
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(conv2d_im2col_workspace, &im2col_workspace);
  register_kernel(conv2d_im2col_run, &run);
  register_kernel(conv2d_pointwise_workspace, &pointwise_workspace);
  register_kernel(conv2d_pointwise_run, &run_pointwise);
  register_kernel(conv2d_pointwise_pack, &pack_pointwise);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
