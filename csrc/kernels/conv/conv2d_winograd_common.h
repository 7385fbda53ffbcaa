// The Winograd families' shared pieces (kernel sources only, after
// conv2d.h: per-ISA namespace): F(4x4, 3x3) in conv2d_winograd_f4x3.cpp and
// F(2x2, 3x3) in conv2d_winograd_f2x3.cpp both turn a 3x3 convolution into
// element-wise GEMMs over channels,
//   M[e][tile][k] = sum_c V[e][tile][c] * U[e][c][k]
// with the channels blocked by the vector width L, and share what does that:
// the weight transform driver (G g G^T for blocks of output channels), the
// GEMM micro-kernels with their weight prefetch, and the copies between NCHW
// planes and channel-blocked rows ([c / L][h][w][L]) the tile transforms read
// and write.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/conv/conv2d.h"
#include "kernels/conv/conv2d_backward_data_shape.h"
#include "kernels/conv/conv2d_transpose.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace winograd {

constexpr int64_t L = Vec::kWidth;
// The micro-kernel covers KB output channels (2 vectors, or 1 when the layer
// has at most L) x NT tiles.
#if defined(__AVX512F__)
constexpr int NT2 = 14, NT1 = 28;  // 28 accumulators + weights + broadcast of 32 zmm
#elif defined(__AVX2__)
constexpr int NT2 = 6, NT1 = 12;   // 12 accumulators + weights + broadcast of 16 ymm
#else
constexpr int NT2 = 4, NT1 = 8;
#endif

inline int64_t k_block(int64_t out_channels) { return out_channels <= L ? L : 2 * L; }
inline int64_t tiles_per_block(int64_t kb) { return kb == L ? NT1 : NT2; }

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

inline bool is_winograd_shape(const Conv2dShape& s) {
  return s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 &&
         s.dilation_h == 1 && s.dilation_w == 1 && s.groups == 1;
}

constexpr int64_t kGemmChannelChunk = 128;  // channels per L1-resident GEMM pass
// Staged, packed: the GEMM micro-kernels prefetch U this far ahead of the
// panel they read (one channel chunk of 32 output channels; 12-32 KiB
// measured alike, 4 KiB recovers only half of the DRAM stall).
constexpr int64_t kWeightPrefetchBytes = int64_t(16) << 10;
// Unpacked: the elements (36 or 16) of a thread's transformed weights lie
// cn * kb + kElementPad floats apart; without the pad that stride is a multiple
// of 4 KiB and the transform's store streams all fall in one L1 set.
constexpr int64_t kElementPad = 16;

// ------------------------------------------------------- weight transform
constexpr int64_t kPackC = 16;  // input channels per packing work item

constexpr int64_t kWeightRunsAhead = 4;  // see transform_weight_block
// Forward: each of a block's filters is its own stream of 36 bytes per input
// channel, KB streams C x 36 bytes apart, too short and too many for the
// hardware prefetchers; the line kWeightTapsAhead channels ahead in each is
// fetched (training forward, weights from DRAM, 1 thread: 256 channels at
// 14x14 batch 1 1.21 -> 0.73 ms, 512 at 7x7 2.69 -> 1.52; 32 ahead measured
// 3-8% slower than 16).
constexpr int64_t kWeightTapsAhead = 16;

// The 3x3 weights of L output channels at one input channel as 9 tap
// vectors (lane i: output channel i). Channel i's 9 taps are contiguous at
// base + i * k_stride (flipped for backward data), so each channel is one
// masked row load and an in-register transpose turns rows into taps; 9
// strided gathers (16 lines each) made the weight transform 40% of a
// training forward of 256 channels at 14x14 (Zen 5).
// (FLIP a template argument: with a run-time flag the taps' indices are not
// constants and the taps go through memory.)
template <bool FLIP>
inline void load_taps(const float* base, int64_t k_stride, Vec (&taps)[9]) {
  for (int t0 = 0; t0 < 9; t0 += L) {
    const int n = 9 - t0 < L ? 9 - t0 : L;
    Vec rows[L];
    for (int i = 0; i < L; ++i) rows[i] = Vec::load_partial(base + i * k_stride + t0, n);
    transpose_lx(rows);
    for (int j = 0; j < n; ++j) taps[FLIP ? 8 - (t0 + j) : t0 + j] = rows[j];
  }
}

// Transforms output-channel block kb, input channels [c0, c0 + count) into
// dst[e * e_stride + (c - c0) * KB + lane] (zeros past K and C) for the N x N
// elements e of G g G^T; `transform` applies G to 3 values (3 -> N; a lambda,
// so it inlines). L output channels at a time: the 9 taps of L consecutive
// output channels are loaded (load_taps; consecutive channels c reuse the
// same cache lines), transformed in registers and stored as N x N vectors.
template <int N, bool BWD, typename Transform>
void transform_weight_block_t(const Conv2dShape& fwd, const float* weight, int64_t KB, int64_t kb,
                              int64_t c0, int64_t count, float* dst, int64_t e_stride,
                              Transform transform) {
  const Conv2dShape s = BWD ? backward_data_as_forward(fwd) : fwd;
  const int64_t C = s.in_channels, K = s.out_channels;
  // The original weight is [K0][C0][3][3]: (K0, C0) = (K, C) forward; for
  // backward-data (K0, C0) = (C, K) and the taps are flipped.
  const int64_t orig_c = fwd.in_channels;
  const int64_t k_stride = BWD ? 9 : orig_c * 9;  // between output channels
  const int64_t c_stride = BWD ? orig_c * 9 : 9;  // between input channels
  // Backward data: a channel's KB x 9 weights are one run, the next channel's
  // a whole filter (C0 x 9 floats) further, on another page, where the
  // hardware prefetchers stop; fetch the run kWeightRunsAhead channels ahead
  // (512 channels at 7x7, batch 1: the transform was half the time).
  const float* block = weight + kb * KB * k_stride;  // this block's first output channel
  const int64_t filters = std::min(KB, K - kb * KB);  // this block's output channels
  const int64_t run = filters * 9;
  alignas(64) float g[9][L];
  for (int64_t cc = 0; cc < count; ++cc) {
    const int64_t c = c0 + cc;
    float* out_c = dst + cc * KB;
    if (BWD && c + kWeightRunsAhead < C) {
      const float* ahead = block + (c + kWeightRunsAhead) * c_stride;
      for (int64_t f = 0; f < run; f += 16) __builtin_prefetch(ahead + f);
    }
    if (!BWD && c + kWeightTapsAhead < C) {
      const float* ahead = block + (c + kWeightTapsAhead) * c_stride;
      for (int64_t k = 0; k < filters; ++k) __builtin_prefetch(ahead + k * k_stride);
    }
    for (int64_t h = 0; h < KB / L; ++h) {
      const int64_t k0 = kb * KB + h * L;
      Vec taps[9];
      if (c < C && k0 + L <= K) {
        const float* base = weight + k0 * k_stride + c * c_stride;
        load_taps<BWD>(base, k_stride, taps);
      } else {
        for (int64_t lane = 0; lane < L; ++lane) {
          const int64_t k = k0 + lane;
          const float* src = weight + k * k_stride + c * c_stride;
          for (int t = 0; t < 9; ++t)
            g[t][lane] = (k < K && c < C) ? src[BWD ? 8 - t : t] : 0.0f;
        }
        for (int t = 0; t < 9; ++t) taps[t] = Vec::load(g[t]);
      }
      Vec col[3][N];  // G applied to each of the 3 columns
      for (int j = 0; j < 3; ++j) {
        const Vec in[3] = {taps[j], taps[3 + j], taps[6 + j]};
        transform(in, col[j]);
      }
      for (int i = 0; i < N; ++i) {  // then along each row
        const Vec in[3] = {col[0][i], col[1][i], col[2][i]};
        Vec out[N];
        transform(in, out);
        for (int j = 0; j < N; ++j) out[j].store(out_c + (i * N + j) * e_stride + h * L);
      }
    }
  }
}

// (One instance per direction: with the direction a run-time flag in the loop,
// the F(2x2, 3x3) forward transform ran 3-4% slower.)
template <int N, typename Transform>
void transform_weight_block(const Conv2dShape& fwd, const float* weight, bool for_backward_data,
                            int64_t KB, int64_t kb, int64_t c0, int64_t count, float* dst,
                            int64_t e_stride, Transform transform) {
  if (for_backward_data)
    transform_weight_block_t<N, true>(fwd, weight, KB, kb, c0, count, dst, e_stride, transform);
  else
    transform_weight_block_t<N, false>(fwd, weight, KB, kb, c0, count, dst, e_stride, transform);
}

// ------------------------------------------------------------ micro-kernel

// A software prefetch stream riding along a micro-kernel: iteration c touches
// the line(s) at address + c * step (step <= 2 lines; address 0: none). An
// integer, as the stream may run a little past the end of U.
struct Prefetch {
  uintptr_t address = 0;
  int64_t step = 0;
};

// M[j][0 .. KV*L) (+)= sum_{c < cn} V[j][c] * U[c][0 .. KV*L) for j < ROWS (tiles).
template <int ROWS, int KV>
void gemm_tile(const float* __restrict v, int64_t ldv, const float* __restrict u, int64_t cn,
               float* __restrict m, int64_t ldm, bool accumulate, Prefetch pf) {
  Vec acc[ROWS][KV];
#pragma GCC unroll 32
  for (int j = 0; j < ROWS; ++j)
#pragma GCC unroll 2
    for (int h = 0; h < KV; ++h) acc[j][h] = Vec::zero();
  for (int64_t c = 0; c < cn; ++c) {
    if (pf.address) {
      const uintptr_t a = pf.address + static_cast<uintptr_t>(c * pf.step);
      __builtin_prefetch(reinterpret_cast<const void*>(a));
      if (pf.step > 64) __builtin_prefetch(reinterpret_cast<const void*>(a + 64));
    }
    Vec uv[KV];
#pragma GCC unroll 2
    for (int h = 0; h < KV; ++h) uv[h] = Vec::load(u + (c * KV + h) * L);
#pragma GCC unroll 32
    for (int j = 0; j < ROWS; ++j) {
      const Vec b = Vec::set1(v[j * ldv + c]);
#pragma GCC unroll 2
      for (int h = 0; h < KV; ++h) acc[j][h] = fmadd(uv[h], b, acc[j][h]);
    }
  }
#pragma GCC unroll 32
  for (int j = 0; j < ROWS; ++j) {
#pragma GCC unroll 2
    for (int h = 0; h < KV; ++h) {
      if (accumulate) acc[j][h] = acc[j][h] + Vec::load(m + j * ldm + h * L);
      acc[j][h].store(m + j * ldm + h * L);
    }
  }
}

template <int R, int KV>
void gemm_rest(int64_t rows, const float* v, int64_t ldv, const float* u, int64_t cn, float* m,
               int64_t ldm, bool accumulate, Prefetch pf) {
  if constexpr (R > 0) {
    if (rows == R) {
      gemm_tile<R, KV>(v, ldv, u, cn, m, ldm, accumulate, pf);
      return;
    }
    gemm_rest<R - 1, KV>(rows, v, ldv, u, cn, m, ldm, accumulate, pf);
  }
}

// Rows [0, rows) in as few micro-kernel tiles as fit ROWS, of balanced height
// (16 rows: 8 + 8, not 14 + 2, whose 4 accumulators wait on FMA latency:
// 256 channels at 14x14, batch 1, 0.45 -> 0.40 ms). With pf_bytes > 0 the
// tiles share the prefetch of the pf_bytes bytes at pf, spread evenly over
// all of them (the first tile alone would issue them in a burst, and lost
// 0.08 ms of that layer's 0.41 to the DRAM stream).
template <int KV, int ROWS>
void gemm_rows_chunk_t(int64_t rows, const float* v, int64_t ldv, const float* u, int64_t cn,
                       float* m, int64_t ldm, bool accumulate, uintptr_t pf,
                       int64_t pf_bytes) {
  const int64_t tiles = (rows + ROWS - 1) / ROWS;
  const int64_t step = (KV * L * 4 + tiles - 1) / tiles;  // bytes per tile and channel
  int64_t j = 0;
  for (int64_t i = 0; i < tiles; ++i) {
    const int64_t h = (rows - j) / (tiles - i);
    Prefetch tp;
    if (i * cn * step < pf_bytes) {
      tp.address = pf + static_cast<uintptr_t>(i * cn * step);
      tp.step = step;
    }
    gemm_rest<ROWS, KV>(h, v + j * ldv, ldv, u, cn, m + j * ldm, ldm, accumulate, tp);
    j += h;
  }
}

// Rows [0, rows) of one element's GEMM for kb output channels over cn input
// channels.
inline void gemm_rows_chunk(int64_t kb, int64_t rows, const float* v, int64_t ldv,
                            const float* u, int64_t cn, float* m, int64_t ldm, bool accumulate,
                            uintptr_t pf = 0, int64_t pf_bytes = 0) {
  if (kb == L) gemm_rows_chunk_t<1, NT1>(rows, v, ldv, u, cn, m, ldm, accumulate, pf, pf_bytes);
  else gemm_rows_chunk_t<2, NT2>(rows, v, ldv, u, cn, m, ldm, accumulate, pf, pf_bytes);
}

// The same over all channels, in L1-sized chunks (the U and V slices of a
// chunk are reused by every row tile). With pf_ahead > 0 the micro-kernels
// prefetch the U that lies pf_ahead bytes past each chunk they read, but not
// at or past pf_end: the caller's stream of U continues past this panel.
inline void gemm_rows(int64_t kb, int64_t rows, const float* v, int64_t ldv, const float* u,
                      int64_t c_pad, float* m, int64_t ldm, int64_t pf_ahead = 0,
                      const float* pf_end = nullptr) {
  for (int64_t c0 = 0; c0 < c_pad; c0 += kGemmChannelChunk) {
    const int64_t cn = (c_pad - c0) < kGemmChannelChunk ? (c_pad - c0) : kGemmChannelChunk;
    const float* uc = u + c0 * kb;
    int64_t pf_bytes = 0;
    if (pf_ahead > 0) {
      const int64_t left = (pf_end - uc) * static_cast<int64_t>(sizeof(float)) - pf_ahead;
      pf_bytes = std::min<int64_t>(left, cn * kb * static_cast<int64_t>(sizeof(float)));
    }
    gemm_rows_chunk(kb, rows, v + c0, ldv, uc, cn, m, ldm, c0 > 0,
                    reinterpret_cast<uintptr_t>(uc) + static_cast<uintptr_t>(pf_ahead), pf_bytes);
  }
}

// ---------------------------------------------- channel-blocked tile sources

// dst[cb][i][j][lane] = src[cb*L + lane][i - top][j - left] (zero outside the
// src planes or past `channels`), for an h x w destination per block.
inline void to_blocked(const float* src, int64_t channels, int64_t src_h, int64_t src_w,
                       int64_t top, int64_t left, int64_t h, int64_t w, float* dst) {
  const int64_t plane = src_h * src_w;
  for (int64_t c0 = 0; c0 < channels; c0 += L) {
    const int64_t lanes = (channels - c0) < L ? (channels - c0) : L;
    float* out = dst + (c0 / L) * h * w * L;
    for (int64_t i = 0; i < h; ++i) {
      const int64_t sh = i - top;
      float* row = out + i * w * L;
      if (sh < 0 || sh >= src_h) {
        for (int64_t j = 0; j < w; ++j) Vec::zero().store(row + j * L);
        continue;
      }
      // first column holding source pixels (left < 0: the forward form of
      // backward-data with padding 3 crops the input)
      const int64_t j_lo = std::clamp<int64_t>(left, 0, w);
      int64_t j_hi = left + src_w;
      if (j_hi > w) j_hi = w;
      for (int64_t j = 0; j < j_lo; ++j) Vec::zero().store(row + j * L);
      for (int64_t j0 = j_lo; j0 < j_hi; j0 += L) {
        const int n = static_cast<int>((j_hi - j0) < L ? (j_hi - j0) : L);
        Vec r[L];
        if (n == L && lanes == L) {  // the common case: plain loads and stores
          const float* first = src + c0 * plane + sh * src_w + (j0 - left);
          for (int64_t lane = 0; lane < L; ++lane) r[lane] = Vec::load(first + lane * plane);
          transpose_lx(r);
          for (int t = 0; t < L; ++t) r[t].store(row + (j0 + t) * L);
          continue;
        }
        for (int64_t lane = 0; lane < L; ++lane)
          r[lane] = lane < lanes
                        ? Vec::load_partial(src + (c0 + lane) * plane + sh * src_w + (j0 - left), n)
                        : Vec::zero();
        transpose_lx(r);
        for (int t = 0; t < n; ++t) r[t].store(row + (j0 + t) * L);
      }
      for (int64_t j = j_hi > j_lo ? j_hi : j_lo; j < w; ++j) Vec::zero().store(row + j * L);
    }
  }
}

// One channel block of one tile: the N x N pixels at base (pixel stride L,
// row stride w * L) go through `transform` (N -> M; a lambda, so it inlines)
// along the rows, then along the columns, into dst[e * e_stride + lane] for
// the M x M elements e.
template <int N, int M, typename Transform>
void blocked_tile_block(const float* base, int64_t w, float* dst, int64_t e_stride,
                        Transform transform) {
  Vec cols[N][M];
  for (int bb = 0; bb < N; ++bb) {
    Vec d[N];
    for (int a = 0; a < N; ++a) d[a] = Vec::load(base + (a * w + bb) * L);
    transform(d, cols[bb]);
  }
  for (int a = 0; a < M; ++a) {
    Vec d[N], r[M];
    for (int bb = 0; bb < N; ++bb) d[bb] = cols[bb][a];
    transform(d, r);
    for (int bb = 0; bb < M; ++bb) r[bb].store(dst + (a * M + bb) * e_stride);
  }
}

// dst[lane * plane + i * dst_w + j] = src[(i * w + j) * L + lane] for lane <
// channels, i < rows, j in [j_begin, j_end): channel-blocked rows back into
// NCHW planes, L pixels x L channels per transpose. With res (laid out as
// dst), act(src + res) instead: the residual and the activation after it.
inline void from_blocked(const float* src, int64_t w, int64_t rows, int64_t j_begin,
                         int64_t j_end, int64_t channels, float* dst, int64_t dst_w,
                         int64_t plane, const float* res = nullptr, bool relu = false,
                         float relu_max = INFINITY) {
  const Vec cap = Vec::set1(relu_max);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j0 = j_begin; j0 < j_end; j0 += L) {
      const int n = static_cast<int>((j_end - j0) < L ? (j_end - j0) : L);
      Vec r[L];
      for (int t = 0; t < L; ++t)
        r[t] = t < n ? Vec::load(src + (i * w + j0 + t) * L) : Vec::zero();
      transpose_lx(r);
      float* out = dst + i * dst_w + j0;
      for (int64_t lane = 0; lane < channels; ++lane) {
        Vec o = r[lane];
        if (res) {
          const float* rl = res + i * dst_w + j0 + lane * plane;
          o = o + (n == L ? Vec::load(rl) : Vec::load_partial(rl, n));
          if (relu) o = relu_clamp(o, cap);
        }
        if (n == L) o.store(out + lane * plane);
        else o.store_partial(out + lane * plane, n);
      }
    }
  }
}

// The backward-weight's element at `at` summed over the threads' private
// accumulators (`accumulators` of them, `stride` floats apart), in thread order.
inline Vec sum_accumulators(const float* at, int accumulators, int64_t stride) {
  Vec sum = Vec::load(at);
  for (int u = 1; u < accumulators; ++u) sum = sum + Vec::load(at + u * stride);
  return sum;
}

// ------------------------------------- the 6-point input transform, GEMM
// (F(4x4, 3x3) and F(3x3, 4x4) of conv2d_winograd_s2.cpp share their
// interpolation points 0, +-1, +-2, inf, hence B^T.)

// B^T d for one column of 6 values (d0..d5 -> r0..r5).
inline void input_transform_6(const Vec* d, Vec* r) {
  const Vec four = Vec::set1(4.0f), five = Vec::set1(5.0f), two = Vec::set1(2.0f);
  r[0] = fnmadd(five, d[2], fmadd(four, d[0], d[4]));
  const Vec a = fnmadd(four, d[2], d[4]);  // d4 - 4 d2
  const Vec b = fnmadd(four, d[1], d[3]);  // d3 - 4 d1
  r[1] = a + b;
  r[2] = a - b;
  const Vec c = d[4] - d[2];
  const Vec e = two * (d[3] - d[1]);
  r[3] = c + e;
  r[4] = c - e;
  r[5] = fnmadd(five, d[3], fmadd(four, d[1], d[5]));
}

// m[i][0 .. CV*L) (+)= sum_{t < nt} z[t][i] * v[t][0 .. CV*L) for i < R: the
// backward-weight GEMM over tiles, and the tile-lane schedules' GEMM over channels
// (F(4x4, 3x3)'s and winograd_s2's).
template <int R, int CV>
void bw_tile(const float* __restrict z, int64_t ldz, const float* __restrict v, int64_t ldv,
             int64_t nt, float* __restrict m, int64_t ldm, bool accumulate) {
  Vec acc[R][CV];
#pragma GCC unroll 32
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int h = 0; h < CV; ++h) acc[i][h] = Vec::zero();
  for (int64_t t = 0; t < nt; ++t) {
    Vec vv[CV];
#pragma GCC unroll 4
    for (int h = 0; h < CV; ++h) vv[h] = Vec::load(v + t * ldv + h * L);
#pragma GCC unroll 32
    for (int i = 0; i < R; ++i) {
      const Vec b = Vec::set1(z[t * ldz + i]);
#pragma GCC unroll 4
      for (int h = 0; h < CV; ++h) acc[i][h] = fmadd(vv[h], b, acc[i][h]);
    }
  }
#pragma GCC unroll 32
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int h = 0; h < CV; ++h) {
      if (accumulate) acc[i][h] = acc[i][h] + Vec::load(m + i * ldm + h * L);
      acc[i][h].store(m + i * ldm + h * L);
    }
}

template <int R, int CV>
void bw_rest(int64_t rows, const float* z, int64_t ldz, const float* v, int64_t ldv, int64_t nt,
             float* m, int64_t ldm, bool accumulate) {
  if constexpr (R > 0) {
    if (rows == R) {
      bw_tile<R, CV>(z, ldz, v, ldv, nt, m, ldm, accumulate);
      return;
    }
    bw_rest<R - 1, CV>(rows, z, ldz, v, ldv, nt, m, ldm, accumulate);
  }
}

}  // namespace winograd
}  // namespace PVE_KERNEL_NS
}  // namespace pve
