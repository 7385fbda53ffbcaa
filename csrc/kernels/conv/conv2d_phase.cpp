// Direct (implicit-GEMM) forward convolution over stride phases, groups 1:
// the `phase` family, made for 3x3 stride-2 layers (ResNet's downsampling
// convolutions), where im2col + packed GEMM spends a third of its time
// building and packing columns and loses lanes to 7x7 and 14x14 planes.
//
// Each image is split once into its sh x sw stride phases, zero-padded:
//     P[c][a][b][i][j] = xpad[c][i*sh + a][j*sw + b]      (hp x wp each)
// so tap (r, s) of output pixel (oh, ow) reads phase ((r*dh) % sh, (s*dw) % sw)
// at row oh + r*dh/sh, column ow + s*dw/sw: for every tap, the pixels of an
// output row read consecutive floats of one phase row, with no im2col.
//
// The product y[k][p] = act(bias[k] + sum_{c, tap} W[k][c, tap] * P_tap[c][p])
// runs as a register tile of TP output pixels x KV vectors of output
// channels (AVX-512: 14 x 2 x 16 channels, 28 accumulators): per (channel,
// tap) it loads KV weight vectors and broadcasts TP input pixels. Channels
// are the vector lanes, so no lane is lost to plane sizes (7x7, 14x14); a
// tile holds a run of one output row or, on planes at most TP/2 wide, two
// whole rows. The epilogue transposes the tile (pixels x channels) into the
// NCHW output planes with bias and ReLU clamp.
//
// Weights are packed as [K/L vector blocks][c][tap][L] (zeros past K); eval
// mode packs them once (pack_weights) and caches them, otherwise every call
// packs them into the workspace. The inner dimension is walked in chunks of
// channels whose weights stay in L2 across the tiles of a band of output
// rows; partial sums wait in a small per-thread buffer between chunks.
//
// Threads: with at least two images per thread (or one thread), each thread
// takes whole images with its own phase buffer; otherwise images run in turn,
// all threads split the phases by channel, then the output-channel vector
// blocks (and, with fewer blocks than threads, the output rows).
#include <cstdint>
#include <cstring>

#include <omp.h>

#include "kernels/conv/conv2d.h"
#include "kernels/conv/conv2d_strided.h"
#include "kernels/conv/conv2d_transpose.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int64_t L = Vec::kWidth;
#if defined(__AVX512F__)
constexpr int TP = 14;  // pixels per tile: 14 x 2 accumulators of 32 zmm
#elif defined(__AVX2__)
constexpr int TP = 6;   // 12 of 16 ymm
#else
constexpr int TP = 4;
#endif
constexpr int KV = 2;  // channel vectors per tile (a layer's last one may have 1)
static_assert(TP <= L || L == 1, "the epilogue transposes a tile's pixels into one vector");
constexpr int64_t kMaxTaps = 64;
constexpr int64_t kMaxStride = 8;
// Weights of one channel chunk (KV vectors x channels x taps): ~128 KiB.
constexpr int64_t kChunkFloats = int64_t(1) << 15;
// Partial sums of one band of tiles between channel chunks, per thread (at
// least one row of tiles).
constexpr int64_t kPartialFloats = int64_t(1) << 14;

struct PhasePlan {
  int64_t C, K, taps;
  int64_t sh, sw;     // phases per axis (the strides)
  int64_t hp, wp;     // rows and columns of a phase plane
  int64_t plane;      // hp * wp
  int64_t cstride;    // floats per channel: sh * sw * plane
  int64_t image_floats;
  int64_t blocks;     // vector blocks of output channels: ceil(K / L)
  int64_t width, rows_per_tile, runs;  // tiles: runs per row of `width` pixels, or 2 rows
  int64_t band;       // output rows per band
  int64_t partial_floats;  // per thread: the band's partial sums (~kPartialFloats)
  int64_t chunk;      // input channels per chunk
  bool per_image;     // threads take whole images
  int64_t image_buffers;
};

bool phase_ok(const Conv2dShape& s) {
  return s.groups == 1 && s.kernel_h * s.kernel_w <= kMaxTaps && s.stride_h <= kMaxStride &&
         s.stride_w <= kMaxStride && s.out_h > 0 && s.out_w > 0 && s.in_channels > 0 &&
         s.out_channels > 0;
}

int64_t round16(int64_t v) { return (v + 15) / 16 * 16; }
int64_t vector_blocks(int64_t K) { return (K + L - 1) / L; }

PhasePlan make_plan(const Conv2dShape& s, int threads) {
  PhasePlan p;
  p.C = s.in_channels;
  p.K = s.out_channels;
  p.taps = s.kernel_h * s.kernel_w;
  p.sh = s.stride_h;
  p.sw = s.stride_w;
  p.hp = s.out_h + (s.kernel_h - 1) * s.dilation_h / p.sh;
  p.wp = s.out_w + (s.kernel_w - 1) * s.dilation_w / p.sw;
  p.plane = p.hp * p.wp;
  p.cstride = p.sh * p.sw * p.plane;
  p.image_floats = round16(p.C * p.cstride);
  p.blocks = vector_blocks(p.K);
  if (2 * s.out_w <= TP) {  // narrow planes: two whole rows per tile
    p.width = s.out_w;
    p.rows_per_tile = 2;
    p.runs = 1;
  } else {
    p.runs = (s.out_w + TP - 1) / TP;
    p.width = (s.out_w + p.runs - 1) / p.runs;
    p.rows_per_tile = 1;
  }
  const int64_t row_floats = p.runs * TP * KV * L;  // partial sums of a row of tiles
  const int64_t tile_rows = kPartialFloats / row_floats > 1 ? kPartialFloats / row_floats : 1;
  p.band = tile_rows * p.rows_per_tile;
  p.partial_floats = tile_rows * row_floats;
  int64_t cc = kChunkFloats / (KV * L * p.taps);
  if (cc < 1) cc = 1;
  const int64_t chunks = (p.C + cc - 1) / cc;
  p.chunk = (p.C + chunks - 1) / chunks;
  p.per_image = threads <= 1 || s.batch >= 2 * threads;
  p.image_buffers = p.per_image ? (threads < s.batch ? threads : s.batch) : 1;
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

// The phases of one image (x: its C planes) into ph; channels split over the
// threads of the enclosing region when `parallel`.
void split_phases(const Conv2dShape& s, const PhasePlan& p, const float* x, float* ph,
                  bool parallel) {
  // Phase column j of column phase b reads input column j*sw + b - pad_left:
  // columns [first[b], last[b]) of every phase row lie inside the input row.
  int64_t first[kMaxStride], last[kMaxStride];
  for (int64_t b = 0; b < p.sw; ++b) {
    const int64_t off = b - s.pad_left;
    first[b] = off >= 0 ? 0 : (-off + p.sw - 1) / p.sw;
    last[b] = s.in_w - 1 - off < 0 ? 0 : (s.in_w - 1 - off) / p.sw + 1;
    if (first[b] > p.wp) first[b] = p.wp;
    if (last[b] > p.wp) last[b] = p.wp;
    if (last[b] < first[b]) last[b] = first[b];
  }
  const int64_t in_plane = s.in_h * s.in_w;
  auto channel = [&](int64_t c) {
    const float* xc = x + c * in_plane;
    if (c + 1 < p.C) {  // the next plane into L2 while this one is copied (measured:
      // batch-8 inputs come from memory, and the copy waited on them)
      const char* next = reinterpret_cast<const char*>(xc + in_plane);
      for (int64_t off = 0; off < in_plane * 4; off += 64) __builtin_prefetch(next + off, 0, 2);
    }
    float* pc = ph + c * p.cstride;
    // Phase row i of row phase a holds input row i*sh + a - pad_top (zeros in
    // the padding): input rows in order.
    for (int64_t i = 0, a = 0, ih = -s.pad_top; i < p.hp; ++ih) {
      const bool inside = ih >= 0 && ih < s.in_h;
      for (int64_t b = 0; b < p.sw; ++b) {
        float* d = pc + (a * p.sw + b) * p.plane + i * p.wp;
        const int64_t lo = inside ? first[b] : 0, hi = inside ? last[b] : 0;
        for (int64_t j = 0; j < lo; ++j) d[j] = 0.0f;
        if (inside) {
          const int64_t off = b - s.pad_left;
          copy_strided(xc + ih * s.in_w + off, p.sw, lo, hi, s.in_w - off, d);
        }
        for (int64_t j = hi; j < p.wp; ++j) d[j] = 0.0f;
      }
      if (++a == p.sh) {
        a = 0;
        ++i;
      }
    }
  };
  if (parallel) {
#pragma omp for schedule(static)
    for (int64_t c = 0; c < p.C; ++c) channel(c);
  } else {
    for (int64_t c = 0; c < p.C; ++c) channel(c);
  }
}

struct TileArgs {
  const PhasePlan* p;
  const int64_t* tapoff;  // per tap: phase plane, row and column offset
  const float* bias;      // at the vector block's first channel, nullable
  bool relu;
  float relu_max;
  int64_t kvalid;         // output channels from the block's first that exist
  int64_t pixels;         // out_h * out_w: the output's channel stride
  int64_t c0, c1;         // the channel chunk
  float* partial;         // the tile's partial sums between chunks
};

// The sums of a tile (R pixels x V vectors, in t.partial) plus bias, clamped,
// into the output planes (y at the vector block's first channel): the tile's
// pixels are consecutive there, p0 .. p0 + R. Kept out of line so the tile's
// loop has every vector register.
__attribute__((noinline)) void finish_tile(const TileArgs& t, int R, int V, int64_t p0,
                                           float* y) {
  const Vec cap = Vec::set1(t.relu_max);
  auto act = [&](Vec o, int64_t k) {
    if (t.bias) o = o + Vec::set1(t.bias[k]);
    return t.relu ? relu_clamp(o, cap) : o;
  };
  for (int v = 0; v < V; ++v) {
    if constexpr (L == 1) {  // one channel per vector: pixel by pixel
      if (v >= t.kvalid) break;
      for (int i = 0; i < R; ++i)
        act(Vec::load(t.partial + i * V + v), v).store(y + v * t.pixels + p0 + i);
    } else {
      Vec r[L];  // r[l]: the R pixels of channel v*L + l
      for (int l = 0; l < L; ++l)
        r[l] = l < R ? Vec::load(t.partial + (l * V + v) * L) : Vec::zero();
      transpose_lx(r);
      for (int l = 0; l < L && v * L + l < t.kvalid; ++l)
        act(r[l], v * L + l).store_partial(y + (v * L + l) * t.pixels + p0, R);
    }
  }
}

// acc[pixel][v] += sum over the chunk's channels and taps; src: the phase
// image at the tile's first pixel (NR rows of W pixels, rows wp apart),
// w: the packed weights of its first vector block. Sums go back to
// t.partial; the last chunk then finishes the tile into y.
template <int W, int NR, int V>
void phase_tile(const TileArgs& t, const float* src, const float* w, int64_t p0, float* y) {
  constexpr int R = W * NR;
  const PhasePlan& p = *t.p;
  const int64_t taps = p.taps, wp = p.wp;
  const int64_t wstride = p.C * taps * L;
  Vec acc[R][V];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v)
      acc[i][v] = t.c0 == 0 ? Vec::zero() : Vec::load(t.partial + (i * V + v) * L);
  w += t.c0 * taps * L;
  for (int64_t c = t.c0; c < t.c1; ++c) {
    const float* pc = src + c * p.cstride;
    for (int64_t k = 0; k < taps; ++k, w += L) {
      const float* b = pc + t.tapoff[k];
      Vec wv[V];
#pragma GCC unroll 2
      for (int v = 0; v < V; ++v) wv[v] = Vec::load(w + v * wstride);
#pragma GCC unroll 2
      for (int r = 0; r < NR; ++r) {
#pragma GCC unroll 16
        for (int x = 0; x < W; ++x) {
          const Vec xi = Vec::set1(b[r * wp + x]);
#pragma GCC unroll 2
          for (int v = 0; v < V; ++v) acc[r * W + x][v] = fmadd(xi, wv[v], acc[r * W + x][v]);
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) acc[i][v].store(t.partial + (i * V + v) * L);
  if (t.c1 == p.C) finish_tile(t, R, V, p0, y);
}

// phase_tile for a run-time width (<= TP), row count (1, or 2 with 2W <= TP)
// and vector count (1 or 2).
template <int W>
void tile_of_width(int width, int rows, int vectors, const TileArgs& t, const float* src,
                   const float* w, int64_t p0, float* y) {
  if constexpr (W > 1) {
    if (width < W) {
      tile_of_width<W - 1>(width, rows, vectors, t, src, w, p0, y);
      return;
    }
  }
  if constexpr (2 * W <= TP) {
    if (rows == 2) {
      vectors == KV ? phase_tile<W, 2, KV>(t, src, w, p0, y)
                    : phase_tile<W, 2, 1>(t, src, w, p0, y);
      return;
    }
  }
  vectors == KV ? phase_tile<W, 1, KV>(t, src, w, p0, y) : phase_tile<W, 1, 1>(t, src, w, p0, y);
}

// Vector blocks [v0, v1) x output rows [r0, r1) of one image (ph: its phases,
// y: its output); partial: p.partial_floats of this thread's scratch.
void compute(const Conv2dArgs& a, const PhasePlan& p, const int64_t* tapoff, const float* packed,
             const float* ph, float* y, int64_t v0, int64_t v1, int64_t r0, int64_t r1,
             float* partial) {
  const Conv2dShape& s = a.shape;
  const int64_t inner = p.C * p.taps, tile_floats = TP * KV * L;
  TileArgs t{&p, tapoff, nullptr, a.relu, a.relu_max, 0, s.out_h * s.out_w, 0, 0, partial};
  for (int64_t g = v0; g < v1; g += KV) {
    const int vectors = static_cast<int>((v1 - g) < KV ? (v1 - g) : KV);
    const int64_t k0 = g * L;
    t.bias = a.bias ? a.bias + k0 : nullptr;
    t.kvalid = p.K - k0;
    const float* w = packed + g * inner * L;
    float* yk = y + k0 * t.pixels;
    for (int64_t b0 = r0; b0 < r1; b0 += p.band) {
      const int64_t b1 = (b0 + p.band) < r1 ? (b0 + p.band) : r1;
      for (t.c0 = 0; t.c0 < p.C; t.c0 += p.chunk) {
        t.c1 = (t.c0 + p.chunk) < p.C ? (t.c0 + p.chunk) : p.C;
        t.partial = partial;
        for (int64_t oh = b0; oh < b1; oh += p.rows_per_tile) {
          const int rows = static_cast<int>((b1 - oh) < p.rows_per_tile ? (b1 - oh)
                                                                        : p.rows_per_tile);
          for (int64_t j = 0; j < p.runs; ++j, t.partial += tile_floats) {
            const int64_t ow0 = j * p.width, ow1 = (ow0 + p.width) < s.out_w ? (ow0 + p.width)
                                                                               : s.out_w;
            tile_of_width<TP>(static_cast<int>(ow1 - ow0), rows, vectors, t,
                              ph + oh * p.wp + ow0, w, oh * s.out_w + ow0, yk);
          }
        }
      }
    }
  }
}

void forward(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const int threads = a.num_threads;
  const PhasePlan p = make_plan(s, threads);
  int64_t tapoff[kMaxTaps];
  for (int64_t r = 0; r < s.kernel_h; ++r) {
    for (int64_t q = 0; q < s.kernel_w; ++q) {
      const int64_t dy = r * s.dilation_h, dx = q * s.dilation_w;
      tapoff[r * s.kernel_w + q] = ((dy % p.sh) * p.sw + dx % p.sw) * p.plane +
                                   (dy / p.sh) * p.wp + dx / p.sw;
    }
  }
  float* images = a.workspace;
  float* partials = images + p.image_buffers * p.image_floats;
  const float* packed = a.packed_weight;
  if (packed == nullptr) {
    float* mine = partials + threads * p.partial_floats;
    pack_blocks(p.K, p.C * p.taps, a.weight, mine, threads);
    packed = mine;
  }
  const int64_t in_image = s.in_channels * s.in_h * s.in_w;
  const int64_t out_image = s.out_channels * s.out_h * s.out_w;
  if (p.per_image) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t n = 0; n < s.batch; ++n) {
      const int me = omp_get_thread_num();
      float* ph = images + me * p.image_floats;
      split_phases(s, p, a.input + n * in_image, ph, false);
      compute(a, p, tapoff, packed, ph, a.output + n * out_image, 0, p.blocks, 0, s.out_h,
              partials + me * p.partial_floats);
    }
    return;
  }
  // Fewer than two images per thread: all threads on each image in turn. Items
  // are groups of KV vector blocks (each reads its own share of the weights),
  // cut into row ranges when that makes fewer than two items per thread; they
  // are handed out dynamically, so a thread whose core is busy with another
  // process just takes fewer.
  const int64_t groups = (p.blocks + KV - 1) / KV;
  int64_t rparts = (2 * threads + groups - 1) / groups;
  if (rparts > s.out_h) rparts = s.out_h;
#pragma omp parallel num_threads(threads)
  for (int64_t n = 0; n < s.batch; ++n) {
    split_phases(s, p, a.input + n * in_image, images, true);
    // (implicit barrier: the phases are complete)
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < groups * rparts; ++item) {
      const int64_t g = item / rparts, rp = item % rparts;
      compute(a, p, tapoff, packed, images, a.output + n * out_image, g * KV,
              (g + 1) * KV < p.blocks ? (g + 1) * KV : p.blocks, rp * s.out_h / rparts,
              (rp + 1) * s.out_h / rparts, partials + omp_get_thread_num() * p.partial_floats);
    }
    // implicit barrier before the next image overwrites the phases
  }
}

int64_t workspace(ConvPass pass, const Conv2dShape& s, int threads) {
  if (pass != ConvPass::forward || !phase_ok(s)) return -1;
  const PhasePlan p = make_plan(s, threads);
  return p.image_buffers * p.image_floats + threads * p.partial_floats +
         round16(vector_blocks(p.K) * L * p.C * p.taps);
}

void run(ConvPass pass, const Conv2dArgs& a) {
  if (pass == ConvPass::forward) forward(a);
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(conv2d_phase_workspace, &workspace);
  register_kernel(conv2d_phase_run, &run);
  register_kernel(conv2d_phase_pack, &pack_weights);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
