// Winograd F(3x3, 4x4) over the stride phases of a stride-2 convolution with a
// kernel of up to 8x8 taps: the `winograd_s2` family (forward and
// backward-weight). Its use is the 7x7 stride-2 RGB stem of ResNets, which
// direct convolution (the stem family, im2col's GEMM for the weight
// gradient) runs at ~75-80% of the FMA peak for 147 products per output and
// input channel.
//
// A stride-2 convolution is the sum over the input's four stride phases
// (p, q) of stride-1 convolutions with the phase's taps:
//   y[k][i][j] = sum_{c,p,q} sum_{a,b<4} w[k][c][2a+p][2b+q] * X_cpq[i+a][j+b]
//   X_cpq[i][j] = x[c][2i + p - pad_top][2j + q - pad_left]
// (taps past the kernel read as zero): a 4x4 stride-1 convolution over 4C
// "phase channels" c' = 4c + 2p + q, run here as Winograd F(3x3, 4x4):
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A   per 3x3 output tile, 6x6 phase tile
// with the interpolation points of F(4x4, 3x3) (0, +-1, +-2, inf), hence its
// B^T (input_transform_6) and its accuracy, and
//   G = |  1/4    0     0     0   |   A^T = | 1  1  1  1  1  0 |
//       | -1/6  -1/6  -1/6  -1/6  |         | 0  1 -1  2 -2  0 |
//       | -1/6   1/6  -1/6   1/6  |         | 0  1  1  4  4  1 |
//       |  1/24  1/12  1/6   1/3  |
//       |  1/24 -1/12  1/6  -1/3  |
//       |  0     0     0     1    |
// A 7x7 kernel's 147 products per output and input channel become 36 x 4 / 3
// = 48 (3.06x fewer), plus the transforms.
//
// Schedule (the tile-lane layout of conv2d_winograd_f4x3.cpp: vector lanes
// hold L consecutive tiles of one tile row, so every access runs along rows).
// A work item is a block of up to NV vectors of tiles of one tile row:
//   split   the 12 input rows under the tile row, per channel, into the four
//           phases' 6 rows (zero-padded: P[c'][6][pw], one row per phase
//           row, columns 3 tw0 ...);
//   input   per phase channel and tile vector: a stride-3 deinterleave of
//           each P row gives the 6 tile columns, B along W, then B^T along
//           H: V[e][c'][tiles];
//   GEMM    per chunk of KC output channels, M[e][k][tiles] = sum_c'
//           U[e][c'][k] * V[e][c'][tiles] (U broadcast);
//   output  A^T on tile vectors, bias and ReLU, a stride-3 interleave into
//           the 3 output rows.
// Weights: U[36][4C][K], transformed once per call, or packed (eval mode).
// The transforms spread one NaN / inf input over its tiles; the epilogue
// tests its results while they are in registers (Conv2dArgs::non_finite),
// and the caller then computes the layer again by im2col (torch's placement).
#include <algorithm>
#include <cstring>

#include <omp.h>

#include "kernels/conv/conv2d.h"
#include "kernels/conv/conv2d_transpose.h"
#include "kernels/conv/conv2d_winograd_common.h"
#include "simd/lanes.h"
#include "simd/prefetch.h"
#include "simd/vec.h"
#include "simd/vec_math.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

using namespace winograd;

#if defined(__AVX512F__)
constexpr int RK = 8, NV = 3;  // 24 accumulators + 3 tile vectors of 32 zmm
#elif defined(__AVX2__)
constexpr int RK = 4, NV = 3;  // 12 + 3 + broadcast of 16 ymm
#else
constexpr int RK = 4, NV = 4;
#endif
constexpr int64_t NT = NV * L;  // tiles per forward block
// Output channels per GEMM + output pass: M of one chunk (36 x KC x NT
// floats, 55 KiB on AVX2) stays in L2 between the two.
constexpr int64_t KC = 16;
constexpr int kMaxTaps = 8;  // kernel rows/columns: 4 per phase

// What packing needs (the weights' shape) ...
bool kernel_ok(const Conv2dShape& s) {
  return s.groups == 1 && s.kernel_h <= kMaxTaps && s.kernel_w <= kMaxTaps;
}

// ... and what a run needs besides.
bool shape_ok(const Conv2dShape& s) {
  return kernel_ok(s) && s.stride_h == 2 && s.stride_w == 2 && s.dilation_h == 1 &&
         s.dilation_w == 1;
}

// ------------------------------------------------------------ lane shuffles
// (even / odd lanes of two vectors: simd/vec_math.h's deinterleave)

// out[s] lane l = src[3 l + s] (s < 3): 3L floats, i.e. 3 columns of L tiles.
// interleave3 is its inverse.
#if defined(__AVX2__) && !defined(__AVX512F__)
// Blend the three loads so each output's lanes are in place up to a fixed
// permutation (lane l of output s sits at position (3 l + s) mod 8 of load
// (3 l + s) / 8), then one permute per output.
inline void deinterleave3(const float* src, Vec* out) {
  const __m256 v0 = _mm256_loadu_ps(src), v1 = _mm256_loadu_ps(src + 8);
  const __m256 v2 = _mm256_loadu_ps(src + 16);
  const __m256 t0 = _mm256_blend_ps(_mm256_blend_ps(v0, v1, 0x92), v2, 0x24);
  const __m256 t1 = _mm256_blend_ps(_mm256_blend_ps(v0, v1, 0x24), v2, 0x49);
  const __m256 t2 = _mm256_blend_ps(_mm256_blend_ps(v0, v1, 0x49), v2, 0x92);
  out[0] = _mm256_permutevar8x32_ps(t0, _mm256_setr_epi32(0, 3, 6, 1, 4, 7, 2, 5));
  out[1] = _mm256_permutevar8x32_ps(t1, _mm256_setr_epi32(1, 4, 7, 2, 5, 0, 3, 6));
  out[2] = _mm256_permutevar8x32_ps(t2, _mm256_setr_epi32(2, 5, 0, 3, 6, 1, 4, 7));
}
template <bool STREAM>
inline void interleave3(const Vec* in, float* dst) {
  const __m256 a = _mm256_permutevar8x32_ps(in[0].v, _mm256_setr_epi32(0, 3, 6, 1, 4, 7, 2, 5));
  const __m256 b = _mm256_permutevar8x32_ps(in[1].v, _mm256_setr_epi32(5, 0, 3, 6, 1, 4, 7, 2));
  const __m256 c = _mm256_permutevar8x32_ps(in[2].v, _mm256_setr_epi32(2, 5, 0, 3, 6, 1, 4, 7));
  const Vec out[3] = {_mm256_blend_ps(_mm256_blend_ps(a, b, 0x92), c, 0x24),
                      _mm256_blend_ps(_mm256_blend_ps(a, b, 0x24), c, 0x49),
                      _mm256_blend_ps(_mm256_blend_ps(a, b, 0x49), c, 0x92)};
  for (int i = 0; i < 3; ++i) {
    if (STREAM) out[i].stream(dst + 8 * i);
    else out[i].store(dst + 8 * i);
  }
}
#else
// (AVX-512, where this family is not chosen by default, and the scalar
// build: through lane arrays.)
inline void deinterleave3(const float* src, Vec* out) {
  alignas(64) float lanes[3][L];
  for (int64_t l = 0; l < L; ++l)
    for (int s = 0; s < 3; ++s) lanes[s][l] = src[3 * l + s];
  for (int s = 0; s < 3; ++s) out[s] = Vec::load(lanes[s]);
}
template <bool STREAM>  // (plain stores here)
inline void interleave3(const Vec* in, float* dst) {
  alignas(64) float lanes[3][L];
  for (int s = 0; s < 3; ++s) in[s].store(lanes[s]);
  for (int64_t l = 0; l < L; ++l)
    for (int s = 0; s < 3; ++s) dst[3 * l + s] = lanes[s][l];
}
#endif

// ------------------------------------------------------------- transforms
// A^T m for one column of 6 values (m0..m5 -> o0..o2).
inline void output_transform_3(const Vec* m, Vec* o) {
  const Vec two = Vec::set1(2.0f), four = Vec::set1(4.0f);
  const Vec s12 = m[1] + m[2], s34 = m[3] + m[4];
  o[0] = m[0] + s12 + s34;
  o[1] = fmadd(two, m[3] - m[4], m[1] - m[2]);
  o[2] = fmadd(four, s34, s12) + m[5];
}

// G g for one column of 4 taps (g0..g3 -> u0..u5).
inline void weight_transform_4(const Vec* g, Vec* u) {
  const Vec quarter = Vec::set1(0.25f), sixth = Vec::set1(1.0f / 6.0f);
  const Vec twelfth = Vec::set1(1.0f / 12.0f), twentyfourth = Vec::set1(1.0f / 24.0f);
  const Vec third = Vec::set1(1.0f / 3.0f);
  u[0] = quarter * g[0];
  const Vec even = g[0] + g[2], odd = g[1] + g[3];
  u[1] = -(sixth * (even + odd));
  u[2] = sixth * (odd - even);
  // 1/24 g0 +- 1/12 g1 + 1/6 g2 +- 1/3 g3
  const Vec e2 = fmadd(sixth, g[2], twentyfourth * g[0]);
  const Vec o2 = fmadd(third, g[3], twelfth * g[1]);
  u[3] = e2 + o2;
  u[4] = e2 - o2;
  u[5] = g[3];
}

// --------------------------------------------------------------- packing
int64_t packed_floats(const Conv2dShape& s) { return 36 * 4 * s.in_channels * s.out_channels; }

// U[e][c'][k] (e stride 4C K) for output channels [k0, k1), at most L of
// them: vectors across output channels, so each of U's rows is one store.
void transform_weights(const Conv2dShape& s, const float* w, float* u, int64_t k0, int64_t k1) {
  const int64_t C = s.in_channels, K = s.out_channels, kh = s.kernel_h, kw = s.kernel_w;
  const int64_t e_stride = 4 * C * K;
  const int n = static_cast<int>(k1 - k0);
  for (int64_t c = 0; c < C; ++c)
    for (int p = 0; p < 2; ++p)
      for (int q = 0; q < 2; ++q) {
        alignas(64) float taps[4][4][L] = {};  // the phase's 4x4 taps, lane: output channel
        for (int a = 0; a < 4 && 2 * a + p < kh; ++a)
          for (int b = 0; b < 4 && 2 * b + q < kw; ++b)
            for (int l = 0; l < n; ++l)
              taps[a][b][l] = w[(((k0 + l) * C + c) * kh + 2 * a + p) * kw + 2 * b + q];
        Vec cols[4][6];  // G along the rows (a) of each tap column b
        for (int b = 0; b < 4; ++b) {
          Vec g[4];
          for (int a = 0; a < 4; ++a) g[a] = Vec::load(taps[a][b]);
          weight_transform_4(g, cols[b]);
        }
        const int64_t cp = 4 * c + 2 * p + q;
        for (int i = 0; i < 6; ++i) {  // then along the columns
          const Vec g[4] = {cols[0][i], cols[1][i], cols[2][i], cols[3][i]};
          Vec r[6];
          weight_transform_4(g, r);
          for (int j = 0; j < 6; ++j) r[j].store_partial(u + (i * 6 + j) * e_stride + cp * K + k0, n);
        }
      }
}

void transform_weights_parallel(const Conv2dShape& s, const float* w, float* u, int threads) {
  const int64_t blocks = (s.out_channels + L - 1) / L;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < blocks; ++i)
    transform_weights(s, w, u, i * L, std::min(s.out_channels, (i + 1) * L));
}

// Packed weights depend only on the kernel's shape (the stride is the
// caller's business: they are only used with stride 2); none for backward.
int64_t pack(const Conv2dShape& s, const float* weight, float* packed, bool for_backward_data,
             int threads) {
  if (for_backward_data || !kernel_ok(s)) return -1;
  if (packed) transform_weights_parallel(s, weight, packed, threads);
  return packed_floats(s);
}

// ------------------------------------------------------------------- plan
struct Plan {
  int64_t nv, nt;                      // tile vectors and tiles per block
  int64_t cp;                          // phase channels, 4C
  int64_t tiles_h, tiles_w, vectors_w;  // vectors_w: tile vectors per tile row
  int64_t blocks_per_row, blocks;
  int64_t pw;                          // floats per phase row of P
  int64_t p_floats, v_floats, m_floats, thread_floats;
};

Plan make_plan(const Conv2dShape& s, int64_t nv = NV) {
  Plan p;
  p.nv = nv;
  p.nt = nv * L;
  p.cp = 4 * s.in_channels;
  p.tiles_h = (s.out_h + 2) / 3;
  p.tiles_w = (s.out_w + 2) / 3;
  p.vectors_w = (p.tiles_w + L - 1) / L;
  p.blocks_per_row = (p.vectors_w + nv - 1) / nv;
  p.blocks = s.batch * p.tiles_h * p.blocks_per_row;
  // The last vector's second deinterleave reads through column 3 nt + 3.
  p.pw = round_up(3 * p.nt + 3, L);
  p.p_floats = p.cp * 6 * p.pw;
  p.v_floats = 36 * p.cp * p.nt;
  p.m_floats = 36 * KC * p.nt;
  p.thread_floats = round_up(p.p_floats + p.v_floats + p.m_floats, 16);
  return p;
}

int64_t bw_workspace(const Conv2dShape& s, int threads);  // (with the backward-weight below)

int64_t workspace(ConvPass pass, const Conv2dShape& s, int threads) {
  if (pass == ConvPass::backward_data || !shape_ok(s)) return -1;
  if (pass == ConvPass::backward_weight) return bw_workspace(s, threads);
  const Plan p = make_plan(s);
  return round_up(packed_floats(s), 16) + threads * p.thread_floats;
}

// Where block `block` lies: image n, tile row th, first tile column tw0,
// nvec tile vectors.
struct BlockAt {
  int64_t n, th, tw0, nvec;
};

BlockAt block_at(const Plan& pl, int64_t block) {
  const int64_t bj = block % pl.blocks_per_row;
  const int64_t g0 = bj * pl.nv;
  return {block / pl.blocks_per_row / pl.tiles_h, block / pl.blocks_per_row % pl.tiles_h, g0 * L,
          std::min(pl.nv, pl.vectors_w - g0)};
}

// ------------------------------------------------------------------ steps
// P[c'][a'][t] = x[n][c][2 (3 th + a') + p - pad_top][2 (3 tw0 + t) + q - pad_left]
// for t < pw, zero outside the image.
void split_phases(const Conv2dShape& s, const Plan& pl, const float* x, int64_t n, int64_t th,
                  int64_t tw0, float* P) {
  const int64_t C = s.in_channels, plane = s.in_h * s.in_w;
  const int64_t col0 = 6 * tw0 - s.pad_left;  // original column of phase column 0 (q = 0)
  for (int64_t c = 0; c < C; ++c) {
    const float* src = x + (n * C + c) * plane;
    for (int p = 0; p < 2; ++p)
      for (int a = 0; a < 6; ++a) {
        float* even = P + ((4 * c + 2 * p) * 6 + a) * pl.pw;  // q = 0
        float* odd = even + 6 * pl.pw;                         // q = 1
        const int64_t ih = 2 * (3 * th + a) + p - s.pad_top;
        if (ih < 0 || ih >= s.in_h) {
          std::fill(even, even + pl.pw, 0.0f);
          std::fill(odd, odd + pl.pw, 0.0f);
          continue;
        }
        const float* row = src + ih * s.in_w;
        for (int64_t t = 0; t < pl.pw; t += L) {
          const int64_t iw = col0 + 2 * t;  // original columns iw .. iw + 2L
          Vec e, o;
          if (iw >= 0 && iw + 2 * L <= s.in_w) {
            deinterleave(Vec::load(row + iw), Vec::load(row + iw + L), &e, &o);
          } else {  // (masks only at the image's edges: building them costs)
            const LaneMask m0 = lane_mask(-iw, s.in_w - iw);
            const LaneMask m1 = lane_mask(-(iw + L), s.in_w - (iw + L));
            deinterleave(load_lanes(row + iw, m0), load_lanes(row + iw + L, m1), &e, &o);
          }
          e.store(even + t);
          o.store(odd + t);
        }
      }
  }
}

// Prefetches the input lines split_phases reads for a block.
void prefetch_input_rows(const Conv2dShape& s, const Plan& pl, const float* x, int64_t n,
                         int64_t th, int64_t tw0) {
  const int64_t col0 = std::max<int64_t>(0, 6 * tw0 - s.pad_left);
  const int64_t col1 = std::min(s.in_w, 6 * tw0 - s.pad_left + 2 * pl.pw);
  if (col1 <= col0) return;
  for (int64_t c = 0; c < s.in_channels; ++c)
    for (int64_t i = 0; i < 12; ++i) {
      const int64_t ih = 6 * th + i - s.pad_top;
      if (ih < 0 || ih >= s.in_h) continue;
      prefetch_span(x + ((n * s.in_channels + c) * s.in_h + ih) * s.in_w + col0, col1 - col0);
    }
}

// V[e][c'][g L ..] for the tile vectors g < nvec of the block.
void input_tiles(const Plan& pl, const float* P, int64_t nvec, float* V) {
  for (int64_t c = 0; c < pl.cp; ++c)
    for (int64_t g = 0; g < nvec; ++g) {
      Vec rows[6][6];  // [a'][b]: B along W of phase row a'
      for (int a = 0; a < 6; ++a) {
        const float* row = P + (c * 6 + a) * pl.pw + 3 * L * g;
        Vec d[6];
        deinterleave3(row, d);
        deinterleave3(row + 3, d + 3);
        input_transform_6(d, rows[a]);
      }
      for (int b = 0; b < 6; ++b) {
        Vec d[6], r[6];
        for (int a = 0; a < 6; ++a) d[a] = rows[a][b];
        input_transform_6(d, r);
        for (int a = 0; a < 6; ++a) r[a].store(V + ((a * 6 + b) * pl.cp + c) * pl.nt + g * L);
      }
    }
}

// M[e][k - k0][0 .. nvec L) for output channels [k0, k1), U rows of ldu.
template <int NVEC>
void gemm_chunk(const Plan& pl, const float* u, int64_t ldu, const float* V, int64_t k0,
                int64_t k1, float* M) {
  const int64_t e_stride_u = pl.cp * ldu;
  for (int e = 0; e < 36; ++e) {
    const float* ue = u + e * e_stride_u;
    const float* ve = V + e * pl.cp * NT;
    float* me = M + e * KC * NT;
    int64_t k = k0;
    for (; k + RK <= k1; k += RK)
      bw_tile<RK, NVEC>(ue + k, ldu, ve, NT, pl.cp, me + (k - k0) * NT, NT, false);
    if (k < k1)
      bw_rest<RK - 1, NVEC>(k1 - k, ue + k, ldu, ve, NT, pl.cp, me + (k - k0) * NT, NT, false);
  }
}

void gemm_chunk_vectors(int64_t nvec, const Plan& pl, const float* u, int64_t ldu, const float* V,
                        int64_t k0, int64_t k1, float* M) {
  static_assert(NV <= 4, "one instance per vector count");
  switch (nvec) {
    case 1: gemm_chunk<1>(pl, u, ldu, V, k0, k1, M); break;
    case 2: gemm_chunk<(NV >= 2 ? 2 : 1)>(pl, u, ldu, V, k0, k1, M); break;
    case 3: gemm_chunk<(NV >= 3 ? 3 : 1)>(pl, u, ldu, V, k0, k1, M); break;
    default: gemm_chunk<NV>(pl, u, ldu, V, k0, k1, M); break;
  }
}

// Output channels [k0, k1) of the block's tiles from M: A^T M A per tile
// vector, bias, ReLU, interleaved into the tile row's 3 output rows (STREAM:
// whole vectors stored non-temporally; rows of a multiple of L floats, so
// they are aligned).
template <bool STREAM>
void output_tiles(const Conv2dShape& s, const Plan& pl, const float* M, int64_t n, int64_t th,
                  int64_t tw0, int64_t nvec, int64_t k0, int64_t k1, const float* bias, bool relu,
                  float relu_max, float* y, Vec* non_finite) {
  const int64_t K = s.out_channels, plane = s.out_h * s.out_w;
  const int64_t rows = std::min<int64_t>(3, s.out_h - 3 * th);
  const Vec cap = Vec::set1(relu_max);
  for (int64_t k = k0; k < k1; ++k) {
    const Vec vb = Vec::set1(bias ? bias[k] : 0.0f);
    const float* src = M + (k - k0) * NT;
    for (int64_t g = 0; g < nvec; ++g) {
      // A^T along H on each column j of the 6x6, folded into A^T along W as
      // the columns come (columns 1-2 and 3-4 in pairs), so that only the 9
      // results stay live, not 18 half-transformed vectors.
      const float* at = src + g * L;
      auto column = [&](int j, Vec* h) {
        Vec m6[6];
        for (int i = 0; i < 6; ++i) m6[i] = Vec::load(at + (i * 6 + j) * KC * NT);
        output_transform_3(m6, h);
      };
      Vec out[3][3], h[3], h2[3];
      column(0, h);
      for (int a = 0; a < 3; ++a) out[a][0] = h[a] + vb;
      column(1, h);
      column(2, h2);
      for (int a = 0; a < 3; ++a) {
        const Vec sum = h[a] + h2[a];
        out[a][0] = out[a][0] + sum;
        out[a][1] = (h[a] - h2[a]) + vb;
        out[a][2] = sum + vb;
      }
      const Vec two = Vec::set1(2.0f), four = Vec::set1(4.0f);
      column(3, h);
      column(4, h2);
      for (int a = 0; a < 3; ++a) {
        const Vec sum = h[a] + h2[a];
        out[a][0] = out[a][0] + sum;
        out[a][1] = fmadd(two, h[a] - h2[a], out[a][1]);
        out[a][2] = fmadd(four, sum, out[a][2]);
      }
      column(5, h);
      for (int a = 0; a < 3; ++a) out[a][2] = out[a][2] + h[a];
      // NaN if any of the 9 is NaN or inf (or the sum overflows: then im2col
      // computes it again, as for a non-finite one)
      const Vec sum = (out[0][0] + out[0][1]) + (out[0][2] + out[1][0]) +
                      ((out[1][1] + out[1][2]) + (out[2][0] + (out[2][1] + out[2][2])));
      *non_finite = *non_finite + (sum - sum);
      if (relu)
        for (int a = 0; a < 3; ++a)
          for (int b = 0; b < 3; ++b) out[a][b] = relu_clamp(out[a][b], cap);
      const int64_t ow0 = 3 * (tw0 + g * L);
      const int64_t width = std::min<int64_t>(3 * L, s.out_w - ow0);
      float* dst = y + (n * K + k) * plane + 3 * th * s.out_w + ow0;
      for (int64_t a = 0; a < rows; ++a) {
        if (width == 3 * L) {
          interleave3<STREAM>(out[a], dst + a * s.out_w);
        } else {
          alignas(64) float tail[3 * L];
          interleave3<false>(out[a], tail);
          std::memcpy(dst + a * s.out_w, tail, width * sizeof(float));
        }
      }
    }
  }
}

// ------------------------------------------------------------------ driver
// One block (see the schedule above) with the thread's scratch; check
// gathers the NaN test of output_tiles.
template <bool STREAM>
void run_block(const Conv2dArgs& a, const Plan& pl, const float* u, int64_t block,
               float* scratch, Vec* check) {
  const Conv2dShape& s = a.shape;
  float* P = scratch;
  float* V = P + pl.p_floats;
  float* M = V + pl.v_floats;
  const auto [n, th, tw0, nvec] = block_at(pl, block);
  split_phases(s, pl, a.input, n, th, tw0, P);
  input_tiles(pl, P, nvec, V);
  const int64_t K = s.out_channels;
  for (int64_t k0 = 0; k0 < K; k0 += KC) {
    const int64_t k1 = std::min(K, k0 + KC);
    gemm_chunk_vectors(nvec, pl, u, K, V, k0, k1, M);
    output_tiles<STREAM>(s, pl, M, n, th, tw0, nvec, k0, k1, a.bias, a.relu, a.relu_max,
                         a.output, check);
  }
}

void forward(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const Plan pl = make_plan(s);
  float* ws = a.workspace;
  const float* u = a.packed_weight;
  if (!u) {
    transform_weights_parallel(s, a.weight, ws, a.num_threads);
    u = ws;
  }
  ws += round_up(packed_floats(s), 16);
  const bool stream = s.out_w % L == 0 &&
                      use_streamed_outputs(a, s.batch * s.out_channels * s.out_h * s.out_w);
  bool non_finite = false;
#pragma omp parallel num_threads(a.num_threads) reduction(|| : non_finite)
  {
    float* scratch = ws + omp_get_thread_num() * pl.thread_floats;
    Vec check = Vec::zero();
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t block = 0; block < pl.blocks; ++block) {
      if (stream) run_block<true>(a, pl, u, block, scratch, &check);
      else run_block<false>(a, pl, u, block, scratch, &check);
    }
    if (stream) stream_fence();  // (before the closing barrier)
    alignas(64) float lanes[L];
    check.store(lanes);
    for (int64_t l = 0; l < L; ++l) non_finite = non_finite || lanes[l] != 0.0f;
  }
  if (a.non_finite) *a.non_finite = non_finite ? 1 : 0;
}

// -------------------------------------------------------- backward-weight
// The forward's algorithm transposed: per tile, the phase kernels' gradient is
//   dg = G^T [ (A dY A^T) (.) (B^T d B) ] G     (A = (A^T)^T: 6x3, G^T: 4x6)
// with dY the tile's 3x3 output gradients and d its 6x6 phase inputs (the
// forward's tiles), summed over tiles before G^T . G. Per block of tiles:
//   split, input  as the forward: V[e][c'][tiles];
//   grad    per chunk of KZ = 2L output channels, the block's 3 rows of dY
//           transposed to channel-minor (DT[r][x][KZ]), then A dY A^T per
//           tile on channel vectors: Z[e][tile][KZ];
//   GEMM    M[e][c'][k] += sum_tiles V[e][c'][t] * Z[e][t][k], V broadcast,
//           into the thread's own M (output channels in the lanes: the
//           reduction runs over tiles, so tile lanes would need a horizontal
//           sum per element);
// and after all blocks, the threads' M summed, G^T M G per phase channel and
// vector of output channels, scattered into the taps (2a + p, 2b + q) of dW
// that exist. The GEMM is 36 x 4C x K products per tile of 9 outputs: a 7x7
// kernel's 147 per output pixel and channel pair become 16 (x4 phases / 3x3).
constexpr int64_t KZ = 2 * L;  // output channels per Z chunk
constexpr int RC = 6;          // phase channels per GEMM tile: 6 x 2 vectors of accumulators
// Tile vectors per backward block: longer sums per GEMM call than NV (AVX2:
// 5, a 224-pixel image's tile row, 1.59 vs 1.72 ms with 3 at 1 thread);
// AVX-512 (not measured) takes 3: its vectors hold twice the tiles and its Z
// chunks twice the channels, so Z would be 4x AVX2's at 5.
#if defined(__AVX512F__)
constexpr int64_t NVB = 3;
#else
constexpr int64_t NVB = 5;
#endif
constexpr int64_t NTB = NVB * L;
constexpr int64_t DT_W = 3 * NTB;  // columns of a DT row
// Floats per element of Z: one tile more than a block (NTB KZ would put the
// 36 elements' rows of one tile a multiple of 512 bytes apart, in 8 of L1's
// 64 sets). Compile-time, so that Z's 36 stores per tile take one base register.
constexpr int64_t Z_E_STRIDE = (NTB + 1) * KZ;

struct BwPlan {
  Plan f;
  int64_t k_pad;
  int64_t dt_floats, z_floats, m_floats, bias_floats, thread_floats;
  int64_t m_offset, bias_offset;  // of M and the bias sums in a thread's scratch
};

BwPlan make_bw_plan(const Conv2dShape& s) {
  BwPlan b;
  b.f = make_plan(s, NVB);  // (so b.f.nt == NTB)
  b.k_pad = round_up(s.out_channels, KZ);
  b.dt_floats = round_up(3 * DT_W * KZ, 16);
  b.z_floats = round_up(36 * Z_E_STRIDE, 16);
  b.m_floats = round_up(36 * b.f.cp * b.k_pad, 16);
  b.bias_floats = round_up(2 * b.k_pad, 16);  // k_pad doubles
  b.m_offset = round_up(b.f.p_floats, 16) + round_up(b.f.v_floats, 16) + b.dt_floats + b.z_floats;
  b.bias_offset = b.m_offset + b.m_floats;
  b.thread_floats = b.bias_offset + b.bias_floats;
  return b;
}

int64_t bw_workspace(const Conv2dShape& s, int threads) {
  return threads * make_bw_plan(s).thread_floats;
}

// DT[r][x][kz] = dY[n][k0 + kz][3 th + r][3 tw0 + x] for r < 3, x < 3 nvec L,
// zero past the output's rows, columns and channels; with bias_sum, the
// values (each dY value is in one block) are also added to bias_sum[k0 + kz]
// (a float sum per block, then double, as conv2d_bias_gradient's per image;
// its separate pass over dY cost 0.08 ms of the stem's 1.6 at batch 1).
void grad_rows(const Conv2dShape& s, const float* gy, int64_t n, int64_t th, int64_t tw0,
               int64_t nvec, int64_t k0, float* DT, double* bias_sum) {
  const int64_t K = s.out_channels, plane = s.out_h * s.out_w;
  const int64_t cols = 3 * nvec * L;
  const int64_t valid = std::min(cols, s.out_w - 3 * tw0);  // columns inside the output
  Vec sums[KZ / L];
  for (Vec& sum : sums) sum = Vec::zero();
  for (int r = 0; r < 3; ++r) {
    const int64_t oh = 3 * th + r;
    float* row = DT + r * DT_W * KZ;
    for (int64_t g = 0; g < KZ; g += L) {
      const int64_t lanes = std::clamp<int64_t>(K - (k0 + g), 0, L);  // channels present
      if (oh >= s.out_h || lanes == 0) {
        for (int64_t x = 0; x < cols; ++x) Vec::zero().store(row + x * KZ + g);
        continue;
      }
      const float* src = gy + (n * K + k0 + g) * plane + oh * s.out_w + 3 * tw0;
      for (int64_t x0 = 0; x0 < cols; x0 += L) {
        const int m = static_cast<int>(std::clamp<int64_t>(valid - x0, 0, L));
        Vec v[L];
        if (m == L && lanes == L) {
          for (int64_t l = 0; l < L; ++l) v[l] = Vec::load(src + l * plane + x0);
        } else {  // (the output's last columns, the last channels)
          for (int64_t l = 0; l < L; ++l)
            v[l] = l < lanes ? Vec::load_partial(src + l * plane + x0, m) : Vec::zero();
        }
        transpose_lx(v);
        Vec sum = Vec::zero();
        for (int64_t t = 0; t < L; ++t) {
          v[t].store(row + (x0 + t) * KZ + g);
          sum = sum + v[t];
        }
        sums[g / L] = sums[g / L] + sum;
      }
    }
  }
  if (bias_sum) {
    alignas(64) float lanes[KZ];
    for (int64_t g = 0; g < KZ; g += L) sums[g / L].store(lanes + g);
    for (int64_t kz = 0; kz < KZ; ++kz) bias_sum[k0 + kz] += lanes[kz];
  }
}

// Prefetches the dY lines grad_rows reads for the chunk at k0 (issued a
// chunk ahead: its segments are a few lines of 3 KZ planes, too short for
// the hardware prefetchers, and the chunk's GEMMs hide their latency).
void prefetch_grad_rows(const Conv2dShape& s, const float* gy, int64_t n, int64_t th,
                        int64_t tw0, int64_t nvec, int64_t k0) {
  const int64_t K = s.out_channels, plane = s.out_h * s.out_w;
  const int64_t cols = std::min(3 * nvec * L, s.out_w - 3 * tw0);
  const int64_t rows = std::min<int64_t>(3, s.out_h - 3 * th);
  for (int64_t k = k0; k < std::min(K, k0 + KZ); ++k)
    for (int64_t r = 0; r < rows; ++r)
      prefetch_span(gy + (n * K + k) * plane + (3 * th + r) * s.out_w + 3 * tw0, cols);
}

// A y for one column of 3 values (y0..y2 -> z0..z5).
inline void grad_transform_3(const Vec* y, Vec* z) {
  const Vec two = Vec::set1(2.0f), four = Vec::set1(4.0f);
  const Vec ends = y[0] + y[2], wide = fmadd(four, y[2], y[0]), y1x2 = two * y[1];
  z[0] = y[0];
  z[1] = ends + y[1];
  z[2] = ends - y[1];
  z[3] = wide + y1x2;
  z[4] = wide - y1x2;
  z[5] = y[2];
}

// Z[e][t][kz] = (A dY A^T)[e] of the block's tiles t < ntiles. Row i of A dY
// at a time, then A along W of it, so that the 9 inputs and one row are live
// (all 18 half-transformed values would spill; the 36 stores bound it anyway).
void grad_tiles(const float* DT, int64_t ntiles, float* Z) {
  const Vec two = Vec::set1(2.0f), four = Vec::set1(4.0f);
  for (int64_t t = 0; t < ntiles; ++t)
    for (int64_t g = 0; g < KZ; g += L) {
      Vec y[3][3];
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) y[r][c] = Vec::load(DT + (r * DT_W + 3 * t + c) * KZ + g);
#pragma GCC unroll 6
      for (int i = 0; i < 6; ++i) {
        Vec h[3];
        for (int c = 0; c < 3; ++c) {
          switch (i) {  // row i of A: (1 0 0) (1 1 1) (1 -1 1) (1 2 4) (1 -2 4) (0 0 1)
            case 0: h[c] = y[0][c]; break;
            case 1: h[c] = y[0][c] + y[1][c] + y[2][c]; break;
            case 2: h[c] = y[0][c] - y[1][c] + y[2][c]; break;
            case 3: h[c] = fmadd(four, y[2][c], fmadd(two, y[1][c], y[0][c])); break;
            case 4: h[c] = fmadd(four, y[2][c], fnmadd(two, y[1][c], y[0][c])); break;
            default: h[c] = y[2][c]; break;
          }
        }
        Vec z[6];
        grad_transform_3(h, z);
        for (int j = 0; j < 6; ++j) z[j].store(Z + (i * 6 + j) * Z_E_STRIDE + t * KZ + g);
      }
    }
}

// m[i][0 .. KZ) += sum_{t < nt} v[i ldv + t] * z[t KZ .. t KZ + KZ) for i < R.
// (The same product as winograd::gemm_tile with KV = 2; through it, with its
// prefetch stream, the stem's backward-weight measured 4.5% slower: 1.64 vs
// 1.57 ms at batch 1, 1 thread, 8 interleaved runs each.)
template <int R>
void grad_gemm_tile(const float* __restrict v, int64_t ldv, const float* __restrict z, int64_t nt,
                    float* __restrict m, int64_t ldm) {
  Vec acc[R][2];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = Vec::zero();
  for (int64_t t = 0; t < nt; ++t) {
    const Vec z0 = Vec::load(z + t * KZ), z1 = Vec::load(z + t * KZ + L);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const Vec bv = Vec::set1(v[i * ldv + t]);
      acc[i][0] = fmadd(z0, bv, acc[i][0]);
      acc[i][1] = fmadd(z1, bv, acc[i][1]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
    for (int h = 0; h < 2; ++h) {
      float* at = m + i * ldm + h * L;
      (acc[i][h] + Vec::load(at)).store(at);
    }
}

template <int R>
void grad_gemm_rest(int rows, const float* v, int64_t ldv, const float* z, int64_t nt, float* m,
                    int64_t ldm) {
  if constexpr (R > 0) {
    if (rows == R) return grad_gemm_tile<R>(v, ldv, z, nt, m, ldm);
    grad_gemm_rest<R - 1>(rows, v, ldv, z, nt, m, ldm);
  }
}

// G^T m for one column of 6 values (m0..m5 -> g0..g3).
inline void phase_grad_transform_6(const Vec* m, Vec* g) {
  const Vec quarter = Vec::set1(0.25f), sixth = Vec::set1(1.0f / 6.0f);
  const Vec twelfth = Vec::set1(1.0f / 12.0f), twentyfourth = Vec::set1(1.0f / 24.0f);
  const Vec third = Vec::set1(1.0f / 3.0f);
  const Vec s12 = m[1] + m[2], d21 = m[2] - m[1];
  const Vec s34 = m[3] + m[4], d34 = m[3] - m[4];
  g[0] = fmadd(twentyfourth, s34, fnmadd(sixth, s12, quarter * m[0]));
  g[1] = fmadd(twelfth, d34, sixth * d21);
  g[2] = sixth * (s34 - s12);
  g[3] = fmadd(third, d34, fmadd(sixth, d21, m[5]));
}

// dW's taps from phase channel cp and output channels [k0, k0 + L): the
// threads' M (m_stride apart) summed, G^T M G, the taps that exist stored.
void phase_kernel_grad(const Conv2dShape& s, const BwPlan& b, const float* M, int64_t m_stride,
                       int accumulators, int64_t cp, int64_t k0, float* gw) {
  const int64_t e_stride = b.f.cp * b.k_pad;
  const float* src = M + cp * b.k_pad + k0;
  Vec cols[6][4];  // G^T along H of each column j
  for (int j = 0; j < 6; ++j) {
    Vec m6[6];
    for (int i = 0; i < 6; ++i)
      m6[i] = sum_accumulators(src + (i * 6 + j) * e_stride, accumulators, m_stride);
    phase_grad_transform_6(m6, cols[j]);
  }
  alignas(64) float taps[4][4][L];
  for (int r = 0; r < 4; ++r) {  // then along W
    Vec m6[6], g4[4];
    for (int j = 0; j < 6; ++j) m6[j] = cols[j][r];
    phase_grad_transform_6(m6, g4);
    for (int q = 0; q < 4; ++q) g4[q].store(taps[r][q]);
  }
  const int64_t C = s.in_channels, kh = s.kernel_h, kw = s.kernel_w;
  const int64_t c = cp / 4, p = cp / 2 % 2, q = cp % 2;
  const int64_t lanes = std::min<int64_t>(L, s.out_channels - k0);
  for (int64_t l = 0; l < lanes; ++l) {
    float* dst = gw + ((k0 + l) * C + c) * kh * kw;
    for (int64_t i = 0; i < 4 && 2 * i + p < kh; ++i)
      for (int64_t j = 0; j < 4 && 2 * j + q < kw; ++j)
        dst[(2 * i + p) * kw + 2 * j + q] = taps[i][j][l];
  }
}

void backward_weight(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const BwPlan b = make_bw_plan(s);
  const Plan& pl = b.f;
  int used = 1;
#pragma omp parallel num_threads(a.num_threads)
  {
#pragma omp single
    used = omp_get_num_threads();
    float* P = a.workspace + omp_get_thread_num() * b.thread_floats;
    float* V = P + round_up(pl.p_floats, 16);
    float* DT = V + round_up(pl.v_floats, 16);
    float* Z = DT + b.dt_floats;
    float* M = P + b.m_offset;
    double* bias_sum = a.grad_bias ? reinterpret_cast<double*>(P + b.bias_offset) : nullptr;
    std::fill(M, M + b.m_floats, 0.0f);
    if (bias_sum) std::fill(bias_sum, bias_sum + b.k_pad, 0.0);
    // (static: a thread's next block is usually block + 1, whose first
    // lines the last chunk prefetches)
#pragma omp for schedule(static)
    for (int64_t block = 0; block < pl.blocks; ++block) {
      const auto [n, th, tw0, nvec] = block_at(pl, block);
      const int64_t nt = nvec * L;
      split_phases(s, pl, a.input, n, th, tw0, P);
      input_tiles(pl, P, nvec, V);
      for (int64_t k0 = 0; k0 < b.k_pad; k0 += KZ) {
        grad_rows(s, a.grad_output, n, th, tw0, nvec, k0, DT, bias_sum);
        if (k0 + KZ < b.k_pad) {
          prefetch_grad_rows(s, a.grad_output, n, th, tw0, nvec, k0 + KZ);
        } else if (block + 1 < pl.blocks) {
          const BlockAt next = block_at(pl, block + 1);
          prefetch_grad_rows(s, a.grad_output, next.n, next.th, next.tw0, next.nvec, 0);
          prefetch_input_rows(s, pl, a.input, next.n, next.th, next.tw0);
        }
        grad_tiles(DT, nt, Z);
        for (int e = 0; e < 36; ++e) {
          const float* ve = V + e * pl.cp * pl.nt;
          const float* ze = Z + e * Z_E_STRIDE;
          float* me = M + e * pl.cp * b.k_pad + k0;
          int64_t c = 0;
          for (; c + RC <= pl.cp; c += RC)
            grad_gemm_tile<RC>(ve + c * pl.nt, pl.nt, ze, nt, me + c * b.k_pad, b.k_pad);
          if (c < pl.cp)
            grad_gemm_rest<RC - 1>(static_cast<int>(pl.cp - c), ve + c * pl.nt, pl.nt, ze, nt,
                                   me + c * b.k_pad, b.k_pad);
        }
      }
    }
    // (implicit barrier: every thread's M and bias sums are complete)
    const float* M0 = a.workspace + b.m_offset;
    if (a.grad_bias) {
#pragma omp for schedule(static) nowait
      for (int64_t k = 0; k < s.out_channels; ++k) {
        double sum = 0.0;
        for (int u = 0; u < used; ++u)
          sum += reinterpret_cast<const double*>(a.workspace + u * b.thread_floats +
                                                 b.bias_offset)[k];
        a.grad_bias[k] = static_cast<float>(sum);
      }
    }
    const int64_t k_vectors = (s.out_channels + L - 1) / L;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < pl.cp * k_vectors; ++item)
      phase_kernel_grad(s, b, M0, b.thread_floats, used, item / k_vectors,
                        item % k_vectors * L, a.grad_weight);
  }
}

void run(ConvPass pass, const Conv2dArgs& a) {
  if (pass == ConvPass::forward) forward(a);
  else if (pass == ConvPass::backward_weight) backward_weight(a);
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(conv2d_winograd_s2_workspace, &workspace);
  register_kernel(conv2d_winograd_s2_run, &run);
  register_kernel(conv2d_winograd_s2_pack, &pack);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
