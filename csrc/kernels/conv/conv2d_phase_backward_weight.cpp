// Backward-weight of the `phase` family (groups 1, any stride up to 8, any
// dilation), made for 3x3 stride-2 layers, where im2col builds and packs
// 9 x C columns per output pixel:
//
//   gw[k][c][tap] = sum_{n, oh, ow} gy[n][k][oh][ow] * P_tap[n][c][oh][ow]
//
// with P_tap the shifted stride phase of x that tap reads (conv2d_phase.h):
// a GEMM over pixels with an implicit im2col. Both operands are first made
// channel-minor, once per image:
//   X[n][phase][i][j][c]   the zero-padded phases, Cs = C rounded up to L
//   G[n][oh][ow][k]        the output gradient, Kp = K rounded up to L
// Then a register tile of KV vectors of output channels x TC input channels
// (AVX-512: 4 x 16 x 6, 24 accumulators) walks the pixels of one tap: per
// pixel it loads KV gradient vectors and broadcasts TC consecutive floats of
// X (one pointer, constant displacements), so every tap is a run of X rows
// and nothing is lost to plane sizes (7x7, 14x14): pixels are the reduction.
//
// Threads: items are (input-channel block, output-channel group) pairs, each
// the sole owner of its gw entries (no reduction, so any thread count gives
// the same sums), handed out dynamically, channel block major (neighbouring
// items share X's cache lines). An item runs each tap over every pixel of
// the group's images in one call (the accumulators stay in registers; a
// whole image at once measured 1.04-1.1x faster than L1-sized bands); its
// sums wait between taps in a per-thread buffer (taps x TC x KV vectors),
// then go through register transposes into gw's rows (gw[k][c0..] is cn x
// taps consecutive floats). Images are prepared in groups (kGroupFloats),
// all threads sharing the work; with several groups each item's sums stay
// in a buffer of their own between them.
#include <cstdint>
#include <cstring>

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
  int64_t Cs, Kp, kvecs;     // channel-minor strides; vectors of output channels
  int64_t kgroups, cblocks, items;
  int64_t x_image, g_image;  // floats of one image's X and G
  int64_t images, groups;    // images per group (the last may have fewer), groups
  int64_t sum_buffers;       // of acc_floats: one per item with several groups, else per thread
  int64_t acc_floats;        // per item: taps x TC x KV vectors
  int64_t tapoff[kPhaseMaxTaps];   // per tap: X pixel offset
};

bool weight_ok(const Conv2dShape& s) { return s.groups == 1 && phase_split_ok(s); }

WeightPlan weight_plan(const Conv2dShape& s, int threads) {
  WeightPlan w;
  w.g = phase_split(s);
  const PhaseSplit& g = w.g;
  w.C = s.in_channels;
  w.K = s.out_channels;
  w.taps = s.kernel_h * s.kernel_w;
  w.pixels = s.out_h * s.out_w;
  w.Cs = round_up(w.C, L);
  w.Kp = round_up(w.K, L);
  w.kvecs = w.Kp / L;
  w.kgroups = (w.kvecs + KV - 1) / KV;
  w.cblocks = (w.C + TC - 1) / TC;
  w.items = w.kgroups * w.cblocks;
  w.x_image = g.sh * g.sw * g.plane * w.Cs;  // (whole vectors: Cs is a multiple of L)
  w.g_image = w.pixels * w.Kp;
  w.acc_floats = round_up(w.taps * TC * KV * L, 16);
  const int64_t sums = w.items * w.acc_floats;
  int64_t images = (sums > kGroupFloats ? sums : kGroupFloats) / (w.x_image + w.g_image);
  if (images < 1) images = 1;
  if (images > s.batch) images = s.batch;
  w.groups = (s.batch + images - 1) / images;  // then as even as they go
  w.images = (s.batch + w.groups - 1) / w.groups;
  w.sum_buffers = w.groups > 1 ? w.items : threads;
  for (int64_t r = 0; r < s.kernel_h; ++r) {
    for (int64_t q = 0; q < s.kernel_w; ++q) {
      const int64_t dy = r * s.dilation_h, dx = q * s.dilation_w;
      w.tapoff[r * s.kernel_w + q] = ((dy % g.sh) * g.sw + dx % g.sw) * g.plane +
                                     (dy / g.sh) * g.wp + dx / g.sw;
    }
  }
  return w;
}

// Phase row i of row phase a (every column phase) for channels [c0, c0 + L)
// of one image: item = (block of L channels, phase row i*sh + a), channel
// block major (a thread walks the rows of its channels in order). Input row
// ih = i*sh + a - pad_top goes through L x L register transposes straight to
// its phase pixels (one vector of L channels each); padding pixels get zeros.
void split_rows(const Conv2dShape& s, const WeightPlan& w, const float* x, float* xp,
                int64_t item) {
  const PhaseSplit& g = w.g;
  const int64_t Cs = w.Cs, sw = g.sw, wp = g.wp;
  const int64_t rows = g.hp * g.sh;
  const int64_t c0 = (item / rows) * L, ai = item % rows;
  const int64_t a = ai % g.sh, i = ai / g.sh, ih = ai - s.pad_top;
  // next[b]: where the next pixel of column phase b goes
  float* next[kPhaseMaxStride];
  for (int64_t b = 0; b < sw; ++b) next[b] = xp + ((a * sw + b) * g.plane + i * wp) * Cs + c0;
  const Vec zero = Vec::zero();
  const bool inside = ih >= 0 && ih < s.in_h;
  for (int64_t b = 0; b < sw; ++b) {
    const int64_t lo = inside ? g.first[b] : wp, hi = inside ? g.last[b] : wp;
    for (int64_t j = 0; j < lo; ++j) zero.store(next[b] + j * Cs);
    for (int64_t j = hi; j < wp; ++j) zero.store(next[b] + j * Cs);
    next[b] += lo * Cs;
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
      const char* ahead = reinterpret_cast<const char*>(row + l * in_plane + kPrefetchRows * s.in_w);
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
        r[m].store(p0 + (m / 2) * Cs);
        r[m + 1].store(p1 + (m / 2) * Cs);
      }
      next[b] = p0 + (L / 2) * Cs;
      next[1 - b] = p1 + (L / 2) * Cs;
      continue;
    }
    for (int m = 0; m < mn; ++m) {
      r[m].store(next[b]);
      next[b] += Cs;
      if (++b == sw) b = 0;
    }
  }
}

// L output channels x L pixels of G: item = (vector of channels, block of pixels).
void transpose_grad(const WeightPlan& w, const float* gy, float* gt, int64_t item) {
  const int64_t pblocks = (w.pixels + L - 1) / L;
  const int64_t k0 = (item / pblocks) * L, p0 = (item % pblocks) * L;
  const int pn = static_cast<int>((w.pixels - p0) < L ? (w.pixels - p0) : L);
  if (p0 + kPrefetchPixels < w.pixels)  // what a later item reads
    for (int64_t l = 0; l < L && k0 + l < w.K; ++l)
      __builtin_prefetch(gy + (k0 + l) * w.pixels + p0 + kPrefetchPixels, 0, 2);
  Vec r[L];
  for (int64_t l = 0; l < L; ++l)
    r[l] = k0 + l < w.K ? Vec::load_partial(gy + (k0 + l) * w.pixels + p0, pn) : Vec::zero();
  transpose_lx(r);  // r[p] lane l: channel k0 + l at pixel p0 + p
  for (int p = 0; p < pn; ++p) r[p].store(gt + (p0 + p) * w.Kp + k0);
}

// acc[j][v] += sum over the pixels of `images` images of G[pixel][v] *
// X[pixel][j], j < T channels; x, g: the first image's first pixel (x at the
// block's first channel); an image is rows x cols pixels, X's rows x_skip
// floats apart past a row's cols pixels, G's consecutive; images x_image and
// g_image floats apart. acc: in memory between calls as [TC][V][L] (first:
// start from zero).
template <int V, int T>
void weight_tile(const float* x, const float* g, int64_t images, int64_t x_image,
                 int64_t g_image, int64_t rows, int64_t cols, int64_t Cs, int64_t Kp,
                 int64_t x_skip, float* acc_mem, bool first) {
  Vec acc[T][V];
#pragma GCC unroll 8
  for (int j = 0; j < T; ++j)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      acc[j][v] = first ? Vec::zero() : Vec::load(acc_mem + (j * V + v) * L);
  for (int64_t n = 0; n < images; ++n) {
    const float* xr = x + n * x_image;
    const float* gr = g + n * g_image;
    for (int64_t r = 0; r < rows; ++r, xr += x_skip) {
      for (int64_t c = 0; c < cols; ++c, xr += Cs, gr += Kp) {
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

struct TileWalk {  // what every tile of a group shares
  int64_t images, x_image, g_image, rows, cols, Cs, Kp, x_skip;
};

// weight_tile for a run-time channel count (<= TC: a layer's last block has
// what is left) and vector count (<= KV).
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
  weight_tile<V, T>(x, g, k.images, k.x_image, k.g_image, k.rows, k.cols, k.Cs, k.Kp, k.x_skip,
                    acc_mem, first);
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
  if (!weight_ok(s)) return -1;
  const WeightPlan w = weight_plan(s, threads);
  return w.images * (w.x_image + w.g_image) + w.sum_buffers * w.acc_floats;
}

void phase_backward_weight(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const WeightPlan w = weight_plan(s, a.num_threads);
  const PhaseSplit& g = w.g;
  float* xs = a.workspace;
  float* gs = xs + w.images * w.x_image;
  float* sums = gs + w.images * w.g_image;
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
      for (int64_t it = 0; it < nb * row_items; ++it) {
        const int64_t n = it / row_items;
        float* xn = xs + n * w.x_image;
        split_rows(s, w, a.input + (n0 + n) * in_image, xn, it % row_items);
      }
#pragma omp for schedule(static)
      for (int64_t it = 0; it < nb * grad_items; ++it) {
        const int64_t n = it / grad_items;
        transpose_grad(w, a.grad_output + (n0 + n) * out_image, gs + n * w.g_image,
                       it % grad_items);
      }
      // (implicit barrier: the group's X and G are complete)
      const bool last = n0 + nb == s.batch;
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < w.items; ++item) {
        const int64_t cb = item / w.kgroups, kg = item % w.kgroups;
        const int64_t c0 = cb * TC, cn = (w.C - c0) < TC ? (w.C - c0) : TC;
        const int64_t v0 = kg * KV;
        const int V = static_cast<int>((w.kvecs - v0) < KV ? (w.kvecs - v0) : KV);
        const int64_t k0 = v0 * L;
        const int64_t tap_floats = TC * V * L;
        float* acc = sums + (w.groups > 1 ? item : omp_get_thread_num()) * w.acc_floats;
        if (n0 > 0)  // the item's sums come back from the previous group (from L3: with
          // several groups they are as large as gw); fetch them while tap 0 runs
          for (int64_t off = 0; off < w.taps * tap_floats; off += 64 / sizeof(float))
            __builtin_prefetch(acc + off, 1, 3);
        const TileWalk walk{nb, w.x_image, w.g_image, s.out_h, s.out_w, w.Cs, w.Kp,
                            (g.wp - s.out_w) * w.Cs};
        for (int64_t t = 0; t < w.taps; ++t)
          run_tile<KV>(V, static_cast<int>(cn), walk, xs + w.tapoff[t] * w.Cs + c0, gs + k0,
                       acc + t * tap_floats, n0 == 0);
        if (last) write_item(w, acc, V, c0, cn, k0, a.grad_weight);
      }
      // (implicit barrier before the next group overwrites X and G)
    }
  }
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
