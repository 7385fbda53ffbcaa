// Winograd F(2x2, 3x3) forward for 3x3, stride-1, dilation-1, ungrouped
// convolution: the `winograd_f2` family, for layers with few output pixels
// and many channel pairs (ResNet's 512-channel layers at 7x7, batch 1).
// Backward data runs as the same correlation of the output gradient with the
// transposed, flipped weights (backward_data_as_forward), transformed per call.
//
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A     per 2x2 output tile, 4x4 input tile
//
//   B^T = | 1  0 -1  0 |   G = | 1    0    0  |   A^T = | 1  1  1  0 |
//         | 0  1  1  0 |       | 1/2  1/2  1/2 |         | 0  1 -1 -1 |
//         | 0 -1  1  0 |       | 1/2 -1/2  1/2 |
//         | 0  1  0 -1 |       | 0    0    1  |
//
// 16 element-wise products become 16 GEMMs over channels (as in F(4x4, 3x3),
// conv2d_winograd_f4x3.cpp, whose micro-kernels, weight transform driver and
// channel-blocked copies this shares through conv2d_winograd_common.h):
//   M[e][tile][k] = sum_c V[e][tile][c] * U[e][c][k]
// 36 multiplies per tile and channel pair become 16 (2.25x fewer; 1.72x on a
// 7x7 plane, which its 4 x 4 tiles cover as 8x8). Why not F(4x4, 3x3) there:
// its transformed weights are 36 floats per channel pair (37.7 MB at 512 x
// 512, more than L3), read from memory on every call for only 4 tiles per
// image, so that layer ran memory-bound; here they are 16 per pair (16.8 MB)
// and each U vector serves 16 tiles, which keeps the GEMMs compute-bound.
// Measured there (AVX-512, weights from DRAM as inside a model): 0.62 ms on
// 1 thread (the GEMMs at ~90% of the FMA peak) and 0.37 ms on 2 (now bound by
// the 16.8 MB stream of U), against 1.01-1.08 and 0.53-0.59 ms for phase.
//
// Layout (channels blocked by the vector width L):
//   U (packed weights) [K/KB][16][C][KB]   KB = 2L output channels per micro-kernel
//                                          (L when the layer has at most L)
//   V (shared)         [16][chunk][C]      a chunk of tiles (all of them at batch 1)
//   M (per thread)     [16][tiles][KB]     one output-channel block's products
// Output-channel blocks lead in U, so the blocks a thread owns are one
// contiguous range of U.
//
// Schedule, per chunk of tiles: all threads transform the input into V (per
// image and channel block, through a channel-blocked copy of the input rows:
// each tile pixel is one vector load); then each thread takes one contiguous
// range of output-channel blocks and, per block, runs its 16 GEMMs over all
// the chunk's tiles into a private M (streaming its slice of U once, with
// software prefetch ahead, as U comes from DRAM inside a model) and
// transforms that M straight into the output while it is in cache: no
// barrier between the GEMMs and the output transform. With fewer
// output-channel blocks than threads, each block's tiles are split too.
//
// Forward only: backward passes go to other families (workspace() refuses
// them, so a forced winograd_f2 falls back to im2col there, like `direct`
// in forward).
#include <algorithm>

#include <omp.h>

#include "kernels/conv/conv2d.h"
#include "kernels/conv/conv2d_winograd_common.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

using namespace winograd;

constexpr int kElements = 16;  // 4 x 4
// Budgets of one chunk of tiles: V (shared, L3) and each thread's M (L2).
constexpr int64_t kChunkVBytes = int64_t(8) << 20;
constexpr int64_t kChunkMBytes = int64_t(256) << 10;

struct Plan {
  int64_t kb, k_blocks;              // output channels per micro-kernel, and blocks of them
  int64_t c_pad, k_pad;              // channels rounded up to L and kb
  int64_t tiles_h, tiles_w, tiles;   // tiles per image, and in the batch
  int64_t chunk;                     // tiles per chunk
  int64_t v_floats;                  // V of one chunk
  int64_t m_stride;                  // between the elements of a thread's M
  int64_t window_floats, m_floats, u_floats, thread_floats;
};

bool f2_shape(const Conv2dShape& s) {
  return is_winograd_shape(s) && s.in_channels > 0 && s.out_channels > 0;
}

Plan make_plan(const Conv2dShape& s) {
  Plan p;
  p.kb = k_block(s.out_channels);
  p.c_pad = round_up(s.in_channels, L);
  p.k_pad = round_up(s.out_channels, p.kb);
  p.k_blocks = p.k_pad / p.kb;
  p.tiles_h = (s.out_h + 1) / 2;
  p.tiles_w = (s.out_w + 1) / 2;
  p.tiles = s.batch * p.tiles_h * p.tiles_w;
  int64_t chunk = std::min(kChunkVBytes / (4 * kElements * p.c_pad),
                           kChunkMBytes / (4 * kElements * p.kb));
  chunk = std::max<int64_t>(chunk, NT2);
  p.chunk = std::min(chunk, p.tiles);
  p.v_floats = kElements * (p.chunk * p.c_pad + kElementPad);
  p.m_stride = p.chunk * p.kb + kElementPad;
  p.m_floats = kElements * p.m_stride;
  // The window: one channel block of the input rows under the tile rows a
  // chunk can touch in one image (input_tiles); the output's two rows of a
  // tile row (output_tiles) are smaller.
  const int64_t tile_rows = std::min(p.tiles_h, (p.chunk + p.tiles_w - 1) / p.tiles_w + 1);
  p.window_floats = (2 * tile_rows + 2) * (2 * p.tiles_w + 2) * L;
  // Unpacked weights: one output-channel block's transform for a channel chunk.
  p.u_floats = kElements * (kGemmChannelChunk * p.kb + kElementPad);
  p.thread_floats = round_up(p.window_floats, 16) + round_up(p.m_floats, 16) +
                    round_up(p.u_floats, 16);
  return p;
}

// ------------------------------------------------------------- transforms
// B^T d for one column of 4 values (d0..d3 -> r0..r3).
inline void input_transform_4(const Vec* d, Vec* r) {
  r[0] = d[0] - d[2];
  r[1] = d[1] + d[2];
  r[2] = d[2] - d[1];
  r[3] = d[1] - d[3];
}

// A^T m for one column of 4 values (m0..m3 -> o0, o1).
inline void output_transform_4(const Vec* m, Vec* o) {
  const Vec s = m[1] + m[2];
  o[0] = m[0] + s;
  o[1] = (m[1] - m[2]) - m[3];
}

// G g for one column of 3 values (g0..g2 -> u0..u3).
inline void weight_transform_3(const Vec* g, Vec* u) {
  const Vec half = Vec::set1(0.5f);
  const Vec s02 = g[0] + g[2];
  u[0] = g[0];
  u[1] = half * (s02 + g[1]);
  u[2] = half * (s02 - g[1]);
  u[3] = g[2];
}

// U[k / KB][e][c][k % KB] for output-channel block kb, input channels
// [c0, c0 + count), e_stride apart per element. fwd: the layer's forward
// shape; for backward data the weights are those of the correlation that
// computes it (transposed and flipped: transform_weight_block).
void transform_weights(const Conv2dShape& fwd, const float* weight, bool for_backward_data,
                       int64_t KB, int64_t kb, int64_t c0, int64_t count, float* dst,
                       int64_t e_stride) {
  transform_weight_block<4>(fwd, weight, for_backward_data, KB, kb, c0, count, dst, e_stride,
                            [](const Vec* g, Vec* u) { weight_transform_3(g, u); });
}

int64_t pack_weights(const Conv2dShape& s, const float* weight, float* packed,
                     bool for_backward_data, int threads) {
  if (for_backward_data || !f2_shape(s)) return -1;
  const int64_t KB = k_block(s.out_channels);
  const int64_t c_pad = round_up(s.in_channels, L), k_pad = round_up(s.out_channels, KB);
  const int64_t total = kElements * k_pad * c_pad;
  if (!packed) return total;
  const int64_t k_blocks = k_pad / KB, c_blocks = (c_pad + kPackC - 1) / kPackC;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 4)
  for (int64_t item = 0; item < k_blocks * c_blocks; ++item) {
    const int64_t kb = item / c_blocks, c0 = (item % c_blocks) * kPackC;
    const int64_t count = std::min(kPackC, c_pad - c0);
    transform_weights(s, weight, false, KB, kb, c0, count,
                      packed + (kb * kElements * c_pad + c0) * KB, c_pad * KB);
  }
  return total;
}

// ------------------------------------------------------- tile transforms
// Image n's tiles [r0, r1) (indices within the image; the first lands in row
// j0 of V) for channels [c0, c0 + L): the input rows under those tiles go
// channel-blocked into buf ([rows][2 tiles_w + 2][L], zero padded), then
// B^T d B per tile.
void input_tiles(const Conv2dShape& s, const Plan& p, const float* x, int64_t n, int64_t r0,
                 int64_t r1, int64_t c0, float* V, int64_t e_stride, int64_t j0, float* buf) {
  const int64_t C = s.in_channels;
  const int64_t th0 = r0 / p.tiles_w, th1 = (r1 - 1) / p.tiles_w;
  const int64_t rows = 2 * (th1 - th0) + 4, w = 2 * p.tiles_w + 2;
  to_blocked(x + (n * C + c0) * s.in_h * s.in_w, std::min(L, C - c0), s.in_h, s.in_w,
             s.pad_top - 2 * th0, s.pad_left, rows, w, buf);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t i = 2 * (r / p.tiles_w - th0), j = 2 * (r % p.tiles_w);
    blocked_tile_block<4, 4>(buf + (i * w + j) * L, w, V + (j0 + r - r0) * p.c_pad + c0,
                             e_stride, [](const Vec* d, Vec* o) { input_transform_4(d, o); });
  }
}

// L output channels of one tile: A^T M A of src[e * e_stride + lane], + bias,
// ReLU, into out[a * out_row + b * L + lane] for the 2 x 2 pixels (a, b).
inline void output_tile(const float* src, int64_t e_stride, Vec vb, bool relu, Vec cap,
                        float* out, int64_t out_row) {
  Vec cols[4][2];
  for (int b = 0; b < 4; ++b) {
    Vec m4[4];
    for (int a = 0; a < 4; ++a) m4[a] = Vec::load(src + (a * 4 + b) * e_stride);
    output_transform_4(m4, cols[b]);
  }
  for (int a = 0; a < 2; ++a) {
    const Vec m4[4] = {cols[0][a], cols[1][a], cols[2][a], cols[3][a]};
    Vec o2[2];
    output_transform_4(m4, o2);
    for (int b = 0; b < 2; ++b) {
      Vec o = o2[b] + vb;
      if (relu) o = relu_clamp(o, cap);
      o.store(out + a * out_row + b * L);
    }
  }
}

// Output-channel block kb of the chunk's tiles [t0 + ja, t0 + jb) from the
// thread's M (row j - ja): per L channels and run of tiles within one tile
// row, the 2 x 2 pixels go channel-blocked into buf ([2][2 count][L]) and
// from there into the output planes, L pixels x L channels per transpose; a
// residual (laid out as y, or null) is added there, and then the activation.
void output_tiles(const Conv2dShape& s, const Plan& p, const float* M, int64_t t0, int64_t ja,
                  int64_t jb, int64_t kb, const float* bias, bool relu, float relu_max,
                  float* y, const float* residual, float* buf) {
  const int64_t K = s.out_channels, plane = s.out_h * s.out_w;
  const int64_t per_image = p.tiles_h * p.tiles_w;
  const Vec cap = Vec::set1(relu_max);
  for (int64_t h = 0; h < p.kb; h += L) {
    const int64_t k0 = kb * p.kb + h;
    if (k0 >= K) break;
    const int lanes = static_cast<int>(std::min(L, K - k0));
    const Vec vb = bias ? Vec::load_partial(bias + k0, lanes) : Vec::zero();
    for (int64_t t = t0 + ja; t < t0 + jb;) {
      const int64_t n = t / per_image, r = t % per_image;
      const int64_t th = r / p.tiles_w, tw = r % p.tiles_w;
      const int64_t count = std::min(p.tiles_w - tw, t0 + jb - t);
      const int64_t w = 2 * count;
      for (int64_t i = 0; i < count; ++i)
        output_tile(M + (t + i - t0 - ja) * p.kb + h, p.m_stride, vb, relu && !residual, cap,
                    buf + 2 * i * L, w * L);
      const int64_t oh = 2 * th, ow = 2 * tw;
      const int64_t at = (n * K + k0) * plane + oh * s.out_w + ow;
      from_blocked(buf, w, std::min<int64_t>(2, s.out_h - oh), 0, std::min(w, s.out_w - ow),
                   lanes, y + at, s.out_w, plane, residual ? residual + at : nullptr, relu,
                   relu_max);
      t += count;
    }
  }
}

// ---------------------------------------------------------------- driver
// s: the correlation computed (the layer's forward, or for backward data the
// correlation of the output gradient that computes it: weight_shape is then
// the layer's forward shape); u: packed weights, or null to transform
// `weight` per output-channel block.
void convolve(const Conv2dShape& s, const Plan& p, const float* x, const float* u,
              const Conv2dShape& weight_shape, const float* weight, bool for_backward_data,
              const float* bias, bool relu, float relu_max, float* y, const float* residual,
              float* workspace, int threads) {
  const int64_t KB = p.kb;
  float* V = workspace;
  float* scratch = V + round_up(p.v_floats, 16);
  const int64_t per_image = p.tiles_h * p.tiles_w;
  const int64_t c_blocks = p.c_pad / L;
  const int64_t panel = p.c_pad * KB;  // one element of one output-channel block of U
#pragma omp parallel num_threads(threads)
  {
    const int64_t team = omp_get_num_threads(), me = omp_get_thread_num();
    float* window = scratch + me * p.thread_floats;
    float* m_local = window + round_up(p.window_floats, 16);
    float* u_local = m_local + round_up(p.m_floats, 16);
    // Work items: (output-channel block, part of the chunk's tiles), a
    // contiguous range of them per thread; one part per block unless there
    // are fewer blocks than threads.
    const int64_t parts = p.k_blocks >= team ? 1 : (team + p.k_blocks - 1) / p.k_blocks;
    const int64_t items = p.k_blocks * parts;
    const int64_t first = items * me / team, last = items * (me + 1) / team;
    // The end of this thread's range of U: its prefetch stops there.
    const float* u_end = u ? u + ((last - 1) / parts + 1) * kElements * panel : nullptr;
    for (int64_t t0 = 0; t0 < p.tiles; t0 += p.chunk) {
      const int64_t nt = std::min(p.chunk, p.tiles - t0);
      // nt rows and a pad: the 16 elements of a tile (a multiple of 4 KiB
      // apart for 16 tiles of 256 channels) do not all fall in one L1 set.
      const int64_t vs = nt * p.c_pad + kElementPad;
      const int64_t n_first = t0 / per_image;
      const int64_t images = (t0 + nt - 1) / per_image - n_first + 1;
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < images * c_blocks; ++item) {
        const int64_t n = n_first + item / c_blocks, c0 = (item % c_blocks) * L;
        const int64_t r0 = std::max(t0, n * per_image) - n * per_image;
        const int64_t r1 = std::min(t0 + nt, (n + 1) * per_image) - n * per_image;
        input_tiles(s, p, x, n, r0, r1, c0, V, vs, n * per_image + r0 - t0, window);
      }
      // (the implicit barrier: V is complete)
      for (int64_t item = first; item < last; ++item) {
        const int64_t kb = item / parts, part = item % parts;
        const int64_t ja = nt * part / parts, jb = nt * (part + 1) / parts;
        if (ja == jb) continue;
        const float* v = V + ja * p.c_pad;
        if (u) {
          const float* ub = u + kb * kElements * panel;
          for (int e = 0; e < kElements; ++e)
            gemm_rows(KB, jb - ja, v + e * vs, p.c_pad, ub + e * panel, p.c_pad,
                      m_local + e * p.m_stride, KB, kWeightPrefetchBytes, u_end);
        } else {
          for (int64_t c0 = 0; c0 < p.c_pad; c0 += kGemmChannelChunk) {
            const int64_t cn = std::min(kGemmChannelChunk, p.c_pad - c0);
            const int64_t e_stride = cn * KB + kElementPad;
            transform_weights(weight_shape, weight, for_backward_data, KB, kb, c0, cn, u_local,
                              e_stride);
            for (int e = 0; e < kElements; ++e)
              gemm_rows_chunk(KB, jb - ja, v + e * vs + c0, p.c_pad, u_local + e * e_stride, cn,
                              m_local + e * p.m_stride, KB, c0 > 0);
          }
        }
        output_tiles(s, p, m_local, t0, ja, jb, kb, bias, relu, relu_max, y, residual, window);
      }
      if (t0 + p.chunk < p.tiles) {
#pragma omp barrier
      }  // (before the next chunk's input transform overwrites V)
    }
  }
}

// Forward, and backward data as the stride-1 correlation of the output
// gradient with the transposed, flipped weights (transformed on every call).
int64_t workspace(ConvPass pass, const Conv2dShape& s, int threads) {
  if (pass == ConvPass::backward_weight) return -1;
  const Conv2dShape f = pass == ConvPass::forward ? s : backward_data_as_forward(s);
  if (!f2_shape(f)) return -1;
  const Plan p = make_plan(f);
  return round_up(p.v_floats, 16) + threads * p.thread_floats;
}

void run(ConvPass pass, const Conv2dArgs& a) {
  if (pass == ConvPass::backward_weight) return;  // refused by workspace(): never called
  const bool bwd = pass == ConvPass::backward_data;  // (never packed: pack_weights refuses)
  const Conv2dShape f = bwd ? backward_data_as_forward(a.shape) : a.shape;
  convolve(f, make_plan(f), bwd ? a.grad_output : a.input, bwd ? nullptr : a.packed_weight,
           a.shape, a.weight, bwd, bwd ? nullptr : a.bias, !bwd && a.relu, a.relu_max,
           bwd ? a.grad_input : a.output, bwd ? nullptr : a.residual, a.workspace,
           a.num_threads);
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(conv2d_winograd_f2_workspace, &workspace);
  register_kernel(conv2d_winograd_f2_run, &run);
  register_kernel(conv2d_winograd_f2_pack, &pack_weights);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
