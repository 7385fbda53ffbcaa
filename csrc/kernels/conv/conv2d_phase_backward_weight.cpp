// Backward-weight of the `phase` family (groups 1, any stride up to 8, any
// dilation), made for 3x3 stride-2 layers, where im2col builds and packs
// 9 x C columns per output pixel:
//
//   gw[k][c][tap] = sum_{n, oh, ow} gy[n][k][oh][ow] * P_tap[n][c][oh][ow]
//
// with P_tap the shifted stride phase of x that tap reads (conv2d_phase.h):
// a GEMM over pixels with an implicit im2col. Both operands are first made
// channel-minor, once per image, in blocks that keep what one tile reads
// consecutive:
//   X[c / 16][n][phase][i][j][c % 16]   the zero-padded phases
//   G[k / (KV*L)][n][oh][ow][k % (KV*L)] the output gradient
// Then a register tile of KV vectors of output channels x TC input channels
// (AVX-512: 4 x 16 x 6, 24 accumulators) walks the pixels of one tap: per
// pixel it loads KV gradient vectors and broadcasts TC consecutive floats of
// X (one pointer, constant displacements), so every tap is a run of X rows
// and nothing is lost to plane sizes (7x7, 14x14): pixels are the reduction.
// (With channel-minor rows of all C or K channels instead of blocks, every
// pixel of a tile was a new cache line 1-2 KB from the last one, and large
// layers ran up to 10% slower.) Input-channel blocks lie within one X block
// (16 = 6 + 6 + 4 channels).
//
// Threads: items are (input-channel block, output-channel group) pairs, each
// the sole owner of its gw entries (no reduction, so any thread count gives
// the same sums), handed out dynamically, channel block major (neighbouring
// items share X's cache lines). An item runs each tap over every pixel of
// the group's images in one call (the accumulators stay in registers; a
// whole image at once measured 1.04-1.1x faster than L1-sized bands); each
// tap's sums go to a per-thread buffer (taps x TC x KV vectors), then through
// register transposes into gw's rows (gw[k][c0..] is cn x taps consecutive
// floats). Images are prepared in groups (kGroupFloats),
// all threads sharing the work; with several groups each item's sums stay
// in a buffer of their own between them.
#include <cstdint>

#include <omp.h>

#include "kernels/conv/conv2d.h"
#include "kernels/conv/conv2d_bias_gradient.h"
#include "kernels/conv/conv2d_phase.h"
#include "kernels/conv/conv2d_transpose.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int64_t L = Vec::kWidth;
#if defined(__AVX512F__)
constexpr int TC = 6, KV = 4;  // 24 of 32 zmm accumulate
#elif defined(__AVX2__)
constexpr int TC = 6, KV = 2;  // 12 of 16 ymm
#else
constexpr int TC = 4, KV = 2;
#endif
constexpr int64_t XB = 16;  // channels per X block (a multiple of L)
static_assert(XB % L == 0, "X blocks hold whole vectors");
constexpr int64_t kSubBlocks = (XB + TC - 1) / TC;  // input-channel blocks per X block
// Channel-minor images per group: about this many floats (at least one
// image), so that a group's X and G are still in cache when the items read
// them (measured: 8 images of 64->128 @56 at once, 10 MB, 1.4x slower than one
// at a time; 128->256 @28: 4 at once 1.12x slower), unless the items' sums,
// which cross between groups, are larger still: then one group holds as
// many floats as the sums (256->512 @14, 4.7 MB of sums: 8 images in one
// group 1.03x faster than two groups of 4).
constexpr int64_t kGroupFloats = int64_t(1) << 18;
// Prefetch distances of the transposes into X and G.
constexpr int64_t kPrefetchRows = 2;
constexpr int64_t kPrefetchPixels = 4 * L;

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

struct WeightPlan {
  PhaseSplit g;
  int64_t C, K, taps, pixels;
  int64_t Cs, xblocks;       // C rounded up to XB, X blocks
  int64_t npix;              // phase pixels of one image
  int64_t Kp, kvecs;         // K rounded up to L, vectors of output channels
  int64_t gk;                // floats per G pixel: KV * L
  int64_t kgroups, cblocks, items;
  int64_t images, groups;    // images per group (the last may have fewer), groups
  int64_t x_image, x_block;  // X: floats of one image's block, of a block of the group
  int64_t g_image, g_group;  // G: floats of one image's group, of a group of the group's images
  int64_t sum_buffers;       // of acc_floats: one per item with several groups, else per thread
  int64_t acc_floats;        // per item: taps x TC x KV vectors
  int64_t tapoff[kPhaseMaxTaps];  // per tap: X pixel offset
};

WeightPlan weight_plan(const Conv2dShape& s, int threads) {
  WeightPlan w;
  w.g = phase_split(s);
  const PhaseSplit& g = w.g;
  w.C = s.in_channels;
  w.K = s.out_channels;
  w.taps = s.kernel_h * s.kernel_w;
  w.pixels = s.out_h * s.out_w;
  w.Cs = round_up(w.C, XB);
  w.xblocks = w.Cs / XB;
  w.npix = g.sh * g.sw * g.plane;
  w.Kp = round_up(w.K, L);
  w.kvecs = w.Kp / L;
  w.gk = KV * L;
  w.kgroups = (w.kvecs + KV - 1) / KV;
  w.cblocks = w.xblocks * kSubBlocks;  // (some of the last X block's may be empty)
  w.items = w.kgroups * w.cblocks;
  w.x_image = w.npix * XB;
  w.g_image = w.pixels * w.gk;
  w.acc_floats = round_up(w.taps * TC * KV * L, 16);
  const int64_t image_floats = w.xblocks * w.x_image + w.kgroups * w.g_image;
  const int64_t sums = w.items * w.acc_floats;
  int64_t images = (sums > kGroupFloats ? sums : kGroupFloats) / image_floats;
  if (images < 1) images = 1;
  if (images > s.batch) images = s.batch;
  w.groups = (s.batch + images - 1) / images;  // then as even as they go
  w.images = (s.batch + w.groups - 1) / w.groups;
  w.x_block = w.images * w.x_image;
  w.g_group = w.images * w.g_image;
  w.sum_buffers = w.groups > 1 ? w.items : threads;
  phase_tap_offsets(s, g, w.tapoff);
  return w;
}

// Phase row i of row phase a (every column phase) for channels [c0, c0 + L)
// of image n of the group: item = (block of L channels, phase row i*sh + a),
// channel block major (a thread walks the rows of its channels in order).
// Input row ih = i*sh + a - pad_top goes through L x L register transposes
// straight to its phase pixels (one vector of L channels each); padding
// pixels get zeros.
void split_rows(const Conv2dShape& s, const WeightPlan& w, const float* x, float* xs, int64_t n,
                int64_t item) {
  const PhaseSplit& g = w.g;
  const int64_t sw = g.sw, wp = g.wp;
  const int64_t rows = g.hp * g.sh;
  const int64_t c0 = (item / rows) * L, ai = item % rows;
  const int64_t a = ai % g.sh, i = ai / g.sh, ih = ai - s.pad_top;
  float* xn = xs + (c0 / XB) * w.x_block + n * w.x_image + c0 % XB;
  // next[b]: where the next pixel of column phase b goes
  float* next[kPhaseMaxStride];
  for (int64_t b = 0; b < sw; ++b) next[b] = xn + ((a * sw + b) * g.plane + i * wp) * XB;
  const Vec zero = Vec::zero();
  const bool inside = ih >= 0 && ih < s.in_h;
  for (int64_t b = 0; b < sw; ++b) {
    const int64_t lo = inside ? g.first[b] : wp, hi = inside ? g.last[b] : wp;
    for (int64_t j = 0; j < lo; ++j) zero.store(next[b] + j * XB);
    for (int64_t j = hi; j < wp; ++j) zero.store(next[b] + j * XB);
    next[b] += lo * XB;
  }
  if (!inside) return;
  // input columns whose phase column lies in the plane, from column 0 (phase
  // (pad_left % sw), column pad_left / sw = first[b] of that phase)
  const int64_t reach = wp * sw - s.pad_left;
  const int64_t iw_end = s.in_w < reach ? s.in_w : reach;
  const int64_t cn = (w.C - c0) < L ? (w.C - c0) : L;
  const int64_t in_plane = s.in_h * s.in_w;
  const float* row = x + c0 * in_plane + ih * s.in_w;
  if (ih + kPrefetchRows < s.in_h) {  // the rows a later item reads (measured: the
    // inputs come from memory, and the transposes waited on them)
    for (int64_t l = 0; l < cn; ++l) {
      const char* ahead =
          reinterpret_cast<const char*>(row + l * in_plane + kPrefetchRows * s.in_w);
      for (int64_t off = 0; off < iw_end * 4; off += 64) __builtin_prefetch(ahead + off, 0, 2);
    }
  }
  int64_t b = s.pad_left % sw;
  for (int64_t iw0 = 0; iw0 < iw_end; iw0 += L) {
    const int mn = static_cast<int>((iw_end - iw0) < L ? (iw_end - iw0) : L);
    Vec r[L];
    if (cn == L && mn == L) {
#pragma GCC unroll 16
      for (int64_t l = 0; l < L; ++l) r[l] = Vec::load(row + l * in_plane + iw0);
    } else {
      for (int64_t l = 0; l < L; ++l)
        r[l] = l < cn ? Vec::load_partial(row + l * in_plane + iw0, mn) : zero;
    }
    transpose_lx(r);  // r[m] lane l: channel c0 + l at input column iw0 + m
    if (sw == 2 && mn == L && L % 2 == 0) {  // columns alternate between the two phases
      float* p0 = next[b];
      float* p1 = next[1 - b];
#pragma GCC unroll 16
      for (int m = 0; m < L; m += 2) {
        r[m].store(p0 + (m / 2) * XB);
        r[m + 1].store(p1 + (m / 2) * XB);
      }
      next[b] = p0 + (L / 2) * XB;
      next[1 - b] = p1 + (L / 2) * XB;
      continue;
    }
    for (int m = 0; m < mn; ++m) {
      r[m].store(next[b]);
      next[b] += XB;
      if (++b == sw) b = 0;
    }
  }
}

// L output channels x L pixels of image n's G: item = (vector of channels,
// block of pixels).
void transpose_grad(const WeightPlan& w, const float* gy, float* gs, int64_t n, int64_t item) {
  const int64_t pblocks = (w.pixels + L - 1) / L;
  const int64_t kb = item / pblocks, k0 = kb * L, p0 = (item % pblocks) * L;
  const int pn = static_cast<int>((w.pixels - p0) < L ? (w.pixels - p0) : L);
  if (p0 + kPrefetchPixels < w.pixels)  // what a later item reads
    for (int64_t l = 0; l < L && k0 + l < w.K; ++l)
      __builtin_prefetch(gy + (k0 + l) * w.pixels + p0 + kPrefetchPixels, 0, 2);
  Vec r[L];
  for (int64_t l = 0; l < L; ++l)
    r[l] = k0 + l < w.K ? Vec::load_partial(gy + (k0 + l) * w.pixels + p0, pn) : Vec::zero();
  transpose_lx(r);  // r[p] lane l: channel k0 + l at pixel p0 + p
  float* d = gs + (kb / KV) * w.g_group + n * w.g_image + p0 * w.gk + (kb % KV) * L;
  for (int p = 0; p < pn; ++p) r[p].store(d + p * w.gk);
}

struct TileWalk {  // what every tile of a group shares
  int64_t images, x_image, g_image, rows, cols, x_skip, gk;
};

// acc[j][v] += sum over the pixels of k.images images of G[pixel][v] *
// X[pixel][j], j < T channels; x, g: the first image's first pixel (x at the
// tile's first channel); an image is rows x cols pixels, XB floats apart in
// X (rows x_skip floats apart past a row's cols pixels), gk apart in G;
// images x_image and g_image floats apart. acc: in memory between calls as
// [TC][V][L] (first: start from zero). Out of line: inlined into the item
// loop (AVX2), its counters spilled to the stack inside the pixel loop.
template <int V, int T>
__attribute__((noinline)) void weight_tile(const TileWalk& k, const float* x, const float* g,
                                           float* acc_mem, bool first) {
  const int64_t images = k.images, rows = k.rows, cols = k.cols, gk = k.gk, x_skip = k.x_skip;
  Vec acc[T][V];
#pragma GCC unroll 8
  for (int j = 0; j < T; ++j)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      acc[j][v] = first ? Vec::zero() : Vec::load(acc_mem + (j * V + v) * L);
  for (int64_t n = 0; n < images; ++n) {
    const float* xr = x + n * k.x_image;
    const float* gr = g + n * k.g_image;
    for (int64_t r = 0; r < rows; ++r, xr += x_skip) {
      for (int64_t c = 0; c < cols; ++c, xr += XB, gr += gk) {
        Vec gv[V];
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) gv[v] = Vec::load(gr + v * L);
#pragma GCC unroll 8
        for (int j = 0; j < T; ++j) {
          const Vec xj = Vec::set1(xr[j]);
#pragma GCC unroll 4
          for (int v = 0; v < V; ++v) acc[j][v] = fmadd(xj, gv[v], acc[j][v]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < T; ++j)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[j][v].store(acc_mem + (j * V + v) * L);
}

// weight_tile for a run-time channel count (<= TC: what a block has) and
// vector count (<= KV: a layer's last group has what is left).
template <int V, int T = TC>
void run_tile(int vectors, int channels, const TileWalk& k, const float* x, const float* g,
              float* acc_mem, bool first) {
  if constexpr (V > 1) {
    if (vectors < V) {
      run_tile<V - 1, T>(vectors, channels, k, x, g, acc_mem, first);
      return;
    }
  }
  if constexpr (T > 1) {
    if (channels < T) {
      run_tile<V, T - 1>(vectors, channels, k, x, g, acc_mem, first);
      return;
    }
  }
  weight_tile<V, T>(k, x, g, acc_mem, first);
}

// An item's sums (acc: [tap][TC][V][L]) into gw: for output channel k, its
// entries of channels c0 .. c0 + cn are cn x taps consecutive floats, so
// L of them at a time go through a register transpose.
void write_item(const WeightPlan& w, const float* acc, int V, int64_t c0, int64_t cn, int64_t k0,
                float* gw) {
  const int64_t taps = w.taps, Q = cn * taps;
  for (int v = 0; v < V; ++v) {
    int64_t j = 0, t = 0;  // entry q = j * taps + t
    for (int64_t q0 = 0; q0 < Q; q0 += L) {
      const int qn = static_cast<int>((Q - q0) < L ? (Q - q0) : L);
      Vec r[L];
      for (int m = 0; m < L; ++m) {
        if (m < qn) {
          r[m] = Vec::load(acc + ((t * TC + j) * V + v) * L);
          if (++t == taps) {
            t = 0;
            ++j;
          }
        } else {
          r[m] = Vec::zero();
        }
      }
      transpose_lx(r);  // r[l] lane m: output channel k0 + v*L + l, entry q0 + m
      for (int64_t l = 0; l < L; ++l) {
        const int64_t k = k0 + v * L + l;
        if (k >= w.K) break;
        r[l].store_partial(gw + (k * w.C + c0) * taps + q0, qn);
      }
    }
  }
}

}  // namespace

int64_t phase_backward_weight_workspace(const Conv2dShape& s, int threads) {
  if (!phase_family_ok(s)) return -1;
  const WeightPlan w = weight_plan(s, threads);
  return w.xblocks * w.x_block + w.kgroups * w.g_group + w.sum_buffers * w.acc_floats;
}

void phase_backward_weight(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const WeightPlan w = weight_plan(s, a.num_threads);
  const PhaseSplit& g = w.g;
  float* xs = a.workspace;
  float* gs = xs + w.xblocks * w.x_block;
  float* sums = gs + w.kgroups * w.g_group;
  const int64_t in_image = s.in_channels * s.in_h * s.in_w;
  const int64_t out_image = s.out_channels * w.pixels;
  const int64_t row_items = g.sh * g.hp * (w.Cs / L);
  const int64_t grad_items = w.kvecs * ((w.pixels + L - 1) / L);
#pragma omp parallel num_threads(a.num_threads)
  {
    if (a.grad_bias) {
#pragma omp for schedule(static) nowait
      for (int64_t k = 0; k < s.out_channels; ++k) a.grad_bias[k] = conv2d_bias_gradient(a, k);
    }
    for (int64_t n0 = 0; n0 < s.batch; n0 += w.images) {
      const int64_t nb = (s.batch - n0) < w.images ? (s.batch - n0) : w.images;
#pragma omp for schedule(static) nowait
      for (int64_t it = 0; it < nb * row_items; ++it)
        split_rows(s, w, a.input + (n0 + it / row_items) * in_image, xs, it / row_items,
                   it % row_items);
#pragma omp for schedule(static)
      for (int64_t it = 0; it < nb * grad_items; ++it)
        transpose_grad(w, a.grad_output + (n0 + it / grad_items) * out_image, gs,
                       it / grad_items, it % grad_items);
      // (implicit barrier: the group's X and G are complete)
      const bool last = n0 + nb == s.batch;
      const TileWalk walk{nb, w.x_image, w.g_image, s.out_h, s.out_w, (g.wp - s.out_w) * XB,
                          w.gk};
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < w.items; ++item) {
        const int64_t cb = item / w.kgroups, kg = item % w.kgroups;
        const int64_t xb = cb / kSubBlocks, sub = (cb % kSubBlocks) * TC;
        const int64_t c0 = xb * XB + sub;
        int64_t cn = XB - sub < TC ? XB - sub : TC;
        if (w.C - c0 < cn) cn = w.C - c0;
        if (cn <= 0) continue;  // past C in the last X block
        const int64_t v0 = kg * KV;
        const int V = static_cast<int>((w.kvecs - v0) < KV ? (w.kvecs - v0) : KV);
        const int64_t k0 = v0 * L;
        const int64_t tap_floats = TC * V * L;
        float* acc = sums + (w.groups > 1 ? item : omp_get_thread_num()) * w.acc_floats;
        if (n0 > 0)  // the item's sums come back from the previous group (from L3: with
          // several groups they are as large as gw); fetch them while tap 0 runs
          for (int64_t off = 0; off < w.taps * tap_floats; off += 64 / sizeof(float))
            __builtin_prefetch(acc + off, 1, 3);
        const float* xc = xs + xb * w.x_block + sub;
        const float* gg = gs + kg * w.g_group;
        for (int64_t t = 0; t < w.taps; ++t)
          run_tile<KV>(V, static_cast<int>(cn), walk, xc + w.tapoff[t] * XB, gg,
                       acc + t * tap_floats, n0 == 0);
        if (last) write_item(w, acc, V, c0, cn, k0, a.grad_weight);
      }
      // (implicit barrier before the next group overwrites X and G)
    }
  }
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
