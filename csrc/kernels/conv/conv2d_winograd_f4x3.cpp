// Winograd F(4x4, 3x3) for 3x3, stride-1, dilation-1, ungrouped convolution
// (forward, and backward-data as the forward of the flipped, transposed
// weights).
//
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A     per 4x4 output tile, 6x6 input tile
//
// 36 element-wise products become 36 independent GEMMs over channels:
//   M[e][tile][k] = sum_c V[e][tile][c] * U[e][c][k]
// which is where the time goes; 144 multiplies per tile and channel pair
// shrink to 36 (4x fewer FLOPs than direct).
//
// Layout inside the kernel (channels blocked by the vector width L):
//   U (packed weights) [36][K/KB][C][KB]   KB = 2L output channels per micro-kernel
//   V (per thread)     [36][NT][C]         NT tiles per block
//   M (per thread)     [36][NT][K]
// The micro-kernel keeps NT x 2 vectors of accumulators (AVX-512: 14 x 2 of
// the 32 zmm) and broadcasts V straight from memory. Transforms are
// vectorized across L channels. Interpolation points 0, +-1, +-2, inf keep
// the result within ~1e-6 relative of direct convolution for realistic data
// (F(6x6) would need +-1/2 too and lose about 10x more).
//
// Threads: work items are blocks of NT tiles across the whole batch; when
// there are too few blocks (batch 1 at 7x7) each block is also split over
// output-channel slabs so every thread has work.
#include <cstring>

#include <omp.h>

#include "kernels/conv/conv2d.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int64_t L = Vec::kWidth;
constexpr int64_t KB = 2 * L;
#if defined(__AVX512F__)
constexpr int NT = 14;  // 28 accumulators + 2 weight vectors of 32 zmm
#elif defined(__AVX2__)
constexpr int NT = 6;   // 12 accumulators + 2 + 1 broadcast of 16 ymm
#else
constexpr int NT = 4;
#endif

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

bool is_winograd_shape(const Conv2dShape& s) {
  return s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 &&
         s.dilation_h == 1 && s.dilation_w == 1 && s.groups == 1;
}

// The forward problem backward-data is: input gy, weights flipped and
// transposed, padding 2 - p, output the input's size.
Conv2dShape backward_data_as_forward(const Conv2dShape& s) {
  Conv2dShape b = s;
  b.in_channels = s.out_channels;
  b.in_h = s.out_h;
  b.in_w = s.out_w;
  b.out_channels = s.in_channels;
  b.out_h = s.in_h;
  b.out_w = s.in_w;
  b.pad_top = 2 - s.pad_top;
  b.pad_left = 2 - s.pad_left;
  return b;
}

struct Plan {
  int64_t c_pad, k_pad;          // channels rounded up to L and KB
  int64_t tiles_h, tiles_w, tiles;  // tiles per image, and in the batch
  int64_t blocks, slabs, slab_k;    // work split: tile blocks x output-channel slabs
  int64_t v_floats, m_floats, thread_floats;
  int64_t u_floats;
};

Plan make_plan(const Conv2dShape& s, int threads) {
  Plan p;
  p.c_pad = round_up(s.in_channels, L);
  p.k_pad = round_up(s.out_channels, KB);
  p.tiles_h = (s.out_h + 3) / 4;
  p.tiles_w = (s.out_w + 3) / 4;
  p.tiles = s.batch * p.tiles_h * p.tiles_w;
  p.blocks = (p.tiles + NT - 1) / NT;
  const int64_t k_blocks = p.k_pad / KB;
  p.slabs = 1;
  if (p.blocks < 2 * threads) {
    p.slabs = (2 * threads + p.blocks - 1) / p.blocks;
    if (p.slabs > k_blocks) p.slabs = k_blocks;
  }
  p.slab_k = (k_blocks + p.slabs - 1) / p.slabs * KB;
  p.v_floats = 36 * NT * p.c_pad;
  p.m_floats = 36 * NT * p.k_pad;
  p.thread_floats = round_up(p.v_floats + p.m_floats + 64 * L, 16);
  p.u_floats = 36 * p.k_pad * p.c_pad;
  return p;
}

// ------------------------------------------------------------- transforms
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

// A^T m for one column of 6 values (m0..m5 -> o0..o3).
inline void output_transform_6(const Vec* m, Vec* o) {
  const Vec two = Vec::set1(2.0f), four = Vec::set1(4.0f), eight = Vec::set1(8.0f);
  const Vec s12 = m[1] + m[2], d12 = m[1] - m[2];
  const Vec s34 = m[3] + m[4], d34 = m[3] - m[4];
  o[0] = m[0] + s12 + s34;
  o[1] = fmadd(two, d34, d12);
  o[2] = fmadd(four, s34, s12);
  o[3] = fmadd(eight, d34, d12) + m[5];
}

// G g for one column of 3 values (g0..g2 -> u0..u5).
inline void weight_transform_3(const Vec* g, Vec* u) {
  const Vec quarter = Vec::set1(0.25f), sixth = Vec::set1(1.0f / 6.0f);
  const Vec twelfth = Vec::set1(1.0f / 12.0f), twentyfourth = Vec::set1(1.0f / 24.0f);
  const Vec two = Vec::set1(2.0f), four = Vec::set1(4.0f);
  u[0] = quarter * g[0];
  const Vec s02 = g[0] + g[2];
  u[1] = -(sixth * (s02 + g[1]));
  u[2] = -(sixth * (s02 - g[1]));
  const Vec t = fmadd(four, g[2], g[0]);
  u[3] = twentyfourth * fmadd(two, g[1], t);
  u[4] = twentyfourth * fnmadd(two, g[1], t);
  u[5] = g[2];
  (void)twelfth;
}

// --------------------------------------------------------------- packing
int64_t pack_weights(const Conv2dShape& fwd, const float* weight, float* packed,
                     bool for_backward_data, int threads) {
  const Conv2dShape s = for_backward_data ? backward_data_as_forward(fwd) : fwd;
  const int64_t c_pad = round_up(s.in_channels, L), k_pad = round_up(s.out_channels, KB);
  const int64_t total = 36 * k_pad * c_pad;
  if (!packed) return total;
  const int64_t C = s.in_channels, K = s.out_channels;
  const int64_t k_blocks = k_pad / KB;
  // The original weight is [K0][C0][3][3] with (K0, C0) = (K, C) forward and
  // (C, K) for backward-data, which also flips the taps.
  const int64_t orig_c = fwd.in_channels;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < c_pad; ++c) {
    alignas(64) float g[9][L];
    for (int64_t kb = 0; kb < k_blocks; ++kb) {
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t lane = 0; lane < L; ++lane) {
          const int64_t k = kb * KB + h * L + lane;
          for (int t = 0; t < 9; ++t) {
            float v = 0.0f;
            if (k < K && c < C) {
              v = for_backward_data ? weight[(c * orig_c + k) * 9 + (8 - t)]
                                    : weight[(k * orig_c + c) * 9 + t];
            }
            g[t][lane] = v;
          }
        }
        Vec col[3][6];  // G applied to each of the 3 columns
        for (int j = 0; j < 3; ++j) {
          const Vec in[3] = {Vec::load(g[j]), Vec::load(g[3 + j]), Vec::load(g[6 + j])};
          weight_transform_3(in, col[j]);
        }
        for (int i = 0; i < 6; ++i) {  // then along each row
          const Vec in[3] = {col[0][i], col[1][i], col[2][i]};
          Vec out[6];
          weight_transform_3(in, out);
          for (int j = 0; j < 6; ++j)
            out[j].store(packed + ((i * 6 + j) * k_blocks + kb) * c_pad * KB + c * KB + h * L);
        }
      }
    }
  }
  return total;
}

// ------------------------------------------------------------ micro-kernel
// M[j][k0 .. k0+KB) = sum_c V[j][c] * U[c][0 .. KB) for j < NT.
inline void gemm_tile(const float* __restrict v, const float* __restrict u, int64_t c_pad,
                      float* __restrict m, int64_t ldm) {
  Vec acc[NT][2];
#pragma GCC unroll 16
  for (int j = 0; j < NT; ++j) acc[j][0] = acc[j][1] = Vec::zero();
  for (int64_t c = 0; c < c_pad; ++c) {
    const Vec u0 = Vec::load(u + c * KB), u1 = Vec::load(u + c * KB + L);
#pragma GCC unroll 16
    for (int j = 0; j < NT; ++j) {
      const Vec b = Vec::set1(v[j * c_pad + c]);
      acc[j][0] = fmadd(u0, b, acc[j][0]);
      acc[j][1] = fmadd(u1, b, acc[j][1]);
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < NT; ++j) {
    acc[j][0].store(m + j * ldm);
    acc[j][1].store(m + j * ldm + L);
  }
}

// ---------------------------------------------------------------- driver
void convolve(const Conv2dShape& s, const Plan& p, const float* x, const float* u,
              const float* bias, bool relu, float* y, float* workspace, int threads) {
  const int64_t tiles_per_image = p.tiles_h * p.tiles_w;
  const int64_t C = s.in_channels, K = s.out_channels;
  const int64_t k_blocks = p.k_pad / KB;
  const int64_t items = p.blocks * p.slabs;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t block = item / p.slabs, slab = item % p.slabs;
    const int64_t k_begin = slab * p.slab_k;
    const int64_t k_end = (k_begin + p.slab_k) < p.k_pad ? (k_begin + p.slab_k) : p.k_pad;
    if (k_begin >= k_end) continue;
    float* base = workspace + omp_get_thread_num() * p.thread_floats;
    float* V = base;
    float* M = V + p.v_floats;
    float* tmp = M + p.m_floats;  // 36 x L gather / 16 x L scatter buffer
    const int64_t t0 = block * NT;
    const int64_t nt = (p.tiles - t0) < NT ? (p.tiles - t0) : NT;

    // 1. Input transform: V[e][j][c] for the block's tiles, L channels at a time.
    for (int64_t j = 0; j < NT; ++j) {
      if (j >= nt) {  // keep unused rows finite: the micro-kernel reads them
        for (int e = 0; e < 36; ++e) std::memset(V + (e * NT + j) * p.c_pad, 0, sizeof(float) * p.c_pad);
        continue;
      }
      const int64_t t = t0 + j;
      const int64_t n = t / tiles_per_image, r = t % tiles_per_image;
      const int64_t ih0 = (r / p.tiles_w) * 4 - s.pad_top, iw0 = (r % p.tiles_w) * 4 - s.pad_left;
      const bool inside = ih0 >= 0 && iw0 >= 0 && ih0 + 6 <= s.in_h && iw0 + 6 <= s.in_w;
      for (int64_t c0 = 0; c0 < p.c_pad; c0 += L) {
        for (int64_t lane = 0; lane < L; ++lane) {
          const int64_t c = c0 + lane;
          const float* plane = x + (n * C + c) * s.in_h * s.in_w;
          for (int a = 0; a < 6; ++a) {
            for (int b = 0; b < 6; ++b) {
              float v = 0.0f;
              if (c < C) {
                const int64_t ih = ih0 + a, iw = iw0 + b;
                if (inside || (ih >= 0 && ih < s.in_h && iw >= 0 && iw < s.in_w))
                  v = plane[ih * s.in_w + iw];
              }
              tmp[(a * 6 + b) * L + lane] = v;
            }
          }
        }
        Vec cols[6][6];
        for (int b = 0; b < 6; ++b) {
          Vec d[6];
          for (int a = 0; a < 6; ++a) d[a] = Vec::load(tmp + (a * 6 + b) * L);
          input_transform_6(d, cols[b]);
        }
        for (int a = 0; a < 6; ++a) {
          Vec d[6], r6[6];
          for (int b = 0; b < 6; ++b) d[b] = cols[b][a];
          input_transform_6(d, r6);
          for (int b = 0; b < 6; ++b) r6[b].store(V + ((a * 6 + b) * NT + j) * p.c_pad + c0);
        }
      }
    }

    // 2. 36 GEMMs over channels for this slab's output channels.
    for (int e = 0; e < 36; ++e) {
      const float* Ve = V + e * NT * p.c_pad;
      for (int64_t k0 = k_begin; k0 < k_end; k0 += KB) {
        const float* Ue = u + ((e * k_blocks) + k0 / KB) * p.c_pad * KB;
        gemm_tile(Ve, Ue, p.c_pad, M + e * NT * p.k_pad + k0, p.k_pad);
      }
    }

    // 3. Output transform, bias, ReLU, scatter to NCHW.
    const Vec zero = Vec::zero();
    for (int64_t j = 0; j < nt; ++j) {
      const int64_t t = t0 + j;
      const int64_t n = t / tiles_per_image, r = t % tiles_per_image;
      const int64_t oh0 = (r / p.tiles_w) * 4, ow0 = (r % p.tiles_w) * 4;
      const int64_t rows = (s.out_h - oh0) < 4 ? (s.out_h - oh0) : 4;
      const int64_t colsn = (s.out_w - ow0) < 4 ? (s.out_w - ow0) : 4;
      for (int64_t k0 = k_begin; k0 < k_end && k0 < K; k0 += L) {
        const int64_t lanes = (K - k0) < L ? (K - k0) : L;
        Vec cols[6][4];
        for (int b = 0; b < 6; ++b) {
          Vec m6[6];
          for (int a = 0; a < 6; ++a) m6[a] = Vec::load(M + ((a * 6 + b) * NT + j) * p.k_pad + k0);
          output_transform_6(m6, cols[b]);
        }
        const Vec vb = bias ? Vec::load_partial(bias + k0, static_cast<int>(lanes)) : zero;
        for (int a = 0; a < 4; ++a) {
          Vec m6[6], o4[4];
          for (int b = 0; b < 6; ++b) m6[b] = cols[b][a];
          output_transform_6(m6, o4);
          for (int b = 0; b < 4; ++b) {
            Vec o = o4[b] + vb;
            if (relu) o = max(o, zero);
            o.store(tmp + (a * 4 + b) * L);
          }
        }
        for (int64_t lane = 0; lane < lanes; ++lane) {
          float* plane = y + (n * K + k0 + lane) * s.out_h * s.out_w + oh0 * s.out_w + ow0;
          for (int64_t a = 0; a < rows; ++a)
            for (int64_t b = 0; b < colsn; ++b) plane[a * s.out_w + b] = tmp[(a * 4 + b) * L + lane];
        }
      }
    }
  }
}

int64_t workspace(ConvPass pass, const Conv2dShape& s, int threads) {
  if (!is_winograd_shape(s) || pass == ConvPass::backward_weight) return -1;
  const Conv2dShape f = pass == ConvPass::forward ? s : backward_data_as_forward(s);
  const Plan p = make_plan(f, threads);
  return round_up(p.u_floats, 16) + threads * p.thread_floats;
}

void run(ConvPass pass, const Conv2dArgs& a) {
  const bool bwd = pass == ConvPass::backward_data;
  const Conv2dShape f = bwd ? backward_data_as_forward(a.shape) : a.shape;
  const Plan p = make_plan(f, a.num_threads);
  const float* u = a.packed_weight;
  float* rest = a.workspace + round_up(p.u_floats, 16);
  if (!u) {
    pack_weights(a.shape, a.weight, a.workspace, bwd, a.num_threads);
    u = a.workspace;
  }
  if (bwd) {
    convolve(f, p, a.grad_output, u, nullptr, false, a.grad_input, rest, a.num_threads);
  } else {
    convolve(f, p, a.input, u, a.bias, a.relu, a.output, rest, a.num_threads);
  }
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(conv2d_winograd_workspace, &workspace);
  register_kernel(conv2d_winograd_run, &run);
  register_kernel(conv2d_winograd_pack, &pack_weights);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
