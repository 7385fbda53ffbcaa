// Winograd F(4x4, 3x3) for 3x3, stride-1, dilation-1, ungrouped convolution
// (forward, backward-data as the forward of the flipped, transposed weights,
// and backward-weight: see the section of that name below).
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
//                                          (L when the layer has at most L)
//   V (shared)         [36][chunk][C]      a chunk of tiles (all of them at batch 1)
//   M (shared)         [36][chunk][K]
// The micro-kernel keeps up to NT x KB/L vectors of accumulators (AVX-512:
// 14 x 2 or 28 x 1 of the 32 zmm) and broadcasts V straight from memory.
// Transforms are vectorized across L channels. Interpolation points 0, +-1,
// +-2, inf keep the result within ~1e-6 relative of direct convolution for
// realistic data (F(6x6) would need +-1/2 too and lose about 10x more).
//
// Threads: each step of a chunk (input transform, GEMMs, output transform)
// is split over all threads; see Plan. The GEMM micro-kernels, the weight
// transform driver and the channel-blocked copies are shared with F(2x2, 3x3)
// (conv2d_winograd_common.h).
#include <algorithm>
#include <cstring>

#include <omp.h>

#include "kernels/conv/conv2d.h"
#include "kernels/conv/conv2d_backward_data_shape.h"
#include "kernels/conv/conv2d_bias_gradient.h"
#include "kernels/conv/conv2d_winograd_common.h"
#include "simd/lanes.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

using namespace winograd;

// The staged schedule of the channel-lane layout above (layers with few
// channels on planes of 16+ columns take the tile-lane schedule instead: see
// there): a chunk of tiles is transformed by all threads into shared V (per
// image and channel block, through a channel-blocked copy of the input rows),
// then the 36 GEMMs are split over (element, output-channel block) panels of
// U, each thread streaming one contiguous range of them in address order with
// software prefetch, so U is read from memory once per chunk at close to DRAM
// bandwidth; then all threads transform the outputs (per image and channel
// block, through the same kind of window).
// (It replaced a fused schedule for U of up to 1 MiB, in which each thread
// took blocks of NT tiles through all three steps with private V and M, and
// gathered and scattered pixels across channel planes: 64 channels at 56x56
// ran 0.45 -> 0.32 ms at batch 1 and 4.4 -> 3.0 ms at batch 16 on 2 threads.)
struct Plan {
  int64_t kb;                       // micro-kernel output channels
  int64_t c_pad, k_pad;             // channels rounded up to L and kb
  int64_t tiles_h, tiles_w, tiles;  // tiles per image, and in the batch
  int64_t chunk;                    // tiles per chunk
  int64_t v_floats, m_floats, thread_floats;
  int64_t window_floats;            // per-thread channel-blocked input or output rows
  int64_t u_floats;
  bool u_in_workspace;              // unpacked weights are packed into the workspace
};

// Called without packed weights (training), a layer whose U takes up to this
// much packs it into the workspace first, so its GEMMs split over all 36 x
// K/KB panels; bigger U is transformed per output-channel block on the fly,
// so the 4x larger transformed weights never travel through memory.
constexpr int64_t kPackInWorkspaceMaxBytes = int64_t(1) << 20;
// V + M of one chunk: at most kStagedChunkBytes, and at least twice U's bytes
// (each chunk reads U once) or kStagedChunkMinBytes. Small U allows small
// chunks, whose V and M are still in cache when the GEMMs and the output
// transform read them back (ResNet-50's 64->64 @56 at batch 1 in the model,
// 2 threads, U 0.6 MiB: 0.78-0.84 -> 0.69-0.73 ms with 2 MiB chunks against
// one 3.6 MiB chunk; the layers with larger U unchanged).
constexpr int64_t kStagedChunkBytes = int64_t(8) << 20;
constexpr int64_t kStagedChunkMinBytes = int64_t(2) << 20;

Plan make_plan(const Conv2dShape& s) {
  Plan p;
  p.kb = k_block(s.out_channels);
  const int64_t nt = tiles_per_block(p.kb);  // micro-kernel tiles
  p.c_pad = round_up(s.in_channels, L);
  p.k_pad = round_up(s.out_channels, p.kb);
  p.tiles_h = (s.out_h + 3) / 4;
  p.tiles_w = (s.out_w + 3) / 4;
  p.tiles = s.batch * p.tiles_h * p.tiles_w;
  p.u_floats = 36 * p.k_pad * p.c_pad;
  p.u_in_workspace = p.u_floats * 4 <= kPackInWorkspaceMaxBytes;
  const int64_t per_tile = 36 * (p.c_pad + p.k_pad) * 4;
  const int64_t chunk_bytes =
      std::min(kStagedChunkBytes, std::max(kStagedChunkMinBytes, 2 * p.u_floats * 4));
  int64_t chunk = chunk_bytes / per_tile;
  chunk = chunk < nt ? nt : chunk / nt * nt;
  p.chunk = chunk < p.tiles ? chunk : p.tiles;
  p.v_floats = 36 * (p.chunk * p.c_pad + kElementPad);
  p.m_floats = 36 * (p.chunk * p.k_pad + kElementPad);
  // One output-channel block's transformed weights for a channel chunk, when
  // the weights come unpacked and stay so, and the window: one channel block
  // of the input (or output) rows under the tile rows a chunk can touch in
  // one image (input_tiles_blocked, output_tiles_blocked).
  const int64_t tile_rows = std::min(p.tiles_h, (p.chunk + p.tiles_w - 1) / p.tiles_w + 1);
  p.window_floats = (4 * tile_rows + 2) * (4 * p.tiles_w + 2) * L;
  const int64_t local_u = 36 * (kGemmChannelChunk * p.kb + kElementPad);
  p.thread_floats = round_up(p.window_floats, 16) + (p.u_in_workspace ? 0 : round_up(local_u, 16));
  return p;
}

int64_t workspace_floats(const Plan& p, int threads) {
  return (p.u_in_workspace ? round_up(p.u_floats, 16) : 0) + round_up(p.v_floats, 16) +
         round_up(p.m_floats, 16) + threads * p.thread_floats;
}

// ------------------------------------------------------------- transforms
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
// U[e][k / KB][c][k % KB] = (G g[k][c] G^T)[e] (transform_weight_block in
// conv2d_winograd_common.h with the 36 elements of F(4x4, 3x3)).
void transform_weights(const Conv2dShape& fwd, const float* weight, bool for_backward_data,
                       int64_t KB, int64_t kb, int64_t c0, int64_t count, float* dst,
                       int64_t e_stride) {
  transform_weight_block<6>(fwd, weight, for_backward_data, KB, kb, c0, count, dst, e_stride,
                            [](const Vec* g, Vec* u) { weight_transform_3(g, u); });
}

// Lane offsets lane * stride (stride * L must fit in int32: checked by
// strided_ok), and a masked gather through them for the first n lanes.
#if defined(__AVX512F__)
using LaneIndex = __m512i;
inline LaneIndex lane_index(int64_t stride) {
  return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                            _mm512_set1_epi32(static_cast<int>(stride)));
}
inline Vec gather_lanes(const float* base, LaneIndex idx, int n) {
  const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
  return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base, 4);
}
#elif defined(__AVX2__)
using LaneIndex = __m256i;
inline LaneIndex lane_index(int64_t stride) {
  return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                            _mm256_set1_epi32(static_cast<int>(stride)));
}
inline Vec gather_lanes(const float* base, LaneIndex idx, int n) {
  const __m256 m = _mm256_castsi256_ps(Vec::tail_mask(n));
  return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, idx, m, 4);
}
#else
using LaneIndex = int64_t;
inline LaneIndex lane_index(int64_t stride) { return stride; }
inline Vec gather_lanes(const float* base, LaneIndex, int n) { return n > 0 ? *base : 0.0f; }
#endif

// Gathers across channel planes pay off unless the plane stride is a multiple
// of 4 KiB (then all lanes hit one L1 set) or too large for 32-bit offsets.
bool strided_ok(int64_t stride) {
  return stride * L < (int64_t(1) << 31) && (stride * 4) % 4096 != 0;
}

int64_t pack_weights(const Conv2dShape& fwd, const float* weight, float* packed,
                     bool for_backward_data, int threads) {
  const Conv2dShape s = for_backward_data ? backward_data_as_forward(fwd) : fwd;
  const int64_t KB = k_block(s.out_channels);
  const int64_t c_pad = round_up(s.in_channels, L), k_pad = round_up(s.out_channels, KB);
  const int64_t total = 36 * k_pad * c_pad;
  if (!packed) return total;
  const int64_t k_blocks = k_pad / KB, c_blocks = (c_pad + kPackC - 1) / kPackC;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 4)
  for (int64_t item = 0; item < k_blocks * c_blocks; ++item) {
    const int64_t kb = item / c_blocks, c0 = (item % c_blocks) * kPackC;
    const int64_t count = (c_pad - c0) < kPackC ? (c_pad - c0) : kPackC;
    transform_weights(fwd, weight, for_backward_data, KB, kb, c0, count,
                      packed + (kb * c_pad + c0) * KB, k_blocks * c_pad * KB);
  }
  return total;
}

// ------------------------------------------------------- per-tile transforms
// V[e][j][c] (row stride c_pad, element stride e_stride) for
// tile t, all channels, L at a time: each of the 36 input pixels of the tile
// is one gather across L channel planes (zero outside the image or past C).
void input_tile(const Conv2dShape& s, const Plan& p, const float* x, int64_t t, float* V,
                int64_t e_stride, int64_t j, float* tmp) {
  const int64_t C = s.in_channels;
  const int64_t plane = s.in_h * s.in_w;
  const int64_t tiles_per_image = p.tiles_h * p.tiles_w;
  const int64_t n = t / tiles_per_image, r = t % tiles_per_image;
  const int64_t ih0 = (r / p.tiles_w) * 4 - s.pad_top, iw0 = (r % p.tiles_w) * 4 - s.pad_left;
  const bool gather = strided_ok(plane);
  const LaneIndex idx = lane_index(plane);
  bool row_ok[6], col_ok[6];
  for (int a = 0; a < 6; ++a) {
    row_ok[a] = ih0 + a >= 0 && ih0 + a < s.in_h;
    col_ok[a] = iw0 + a >= 0 && iw0 + a < s.in_w;
  }
  for (int64_t c0 = 0; c0 < p.c_pad; c0 += L) {
    const int lanes = static_cast<int>((C - c0) < L ? (C - c0) : L);
    const float* base = x + (n * C + c0) * plane + ih0 * s.in_w + iw0;
    if (!gather) {  // channel by channel into tmp[36][L] (keeps each plane's lines together)
      for (int64_t lane = 0; lane < L; ++lane) {
        const float* src = base + lane * plane;
        for (int a = 0; a < 6; ++a)
          for (int b = 0; b < 6; ++b)
            tmp[(a * 6 + b) * L + lane] =
                (lane < lanes && row_ok[a] && col_ok[b]) ? src[a * s.in_w + b] : 0.0f;
      }
    }
    Vec cols[6][6];
    for (int b = 0; b < 6; ++b) {
      Vec d[6];
      for (int a = 0; a < 6; ++a) {
        if (!gather) {
          d[a] = Vec::load(tmp + (a * 6 + b) * L);
        } else if (lanes <= 0 || !row_ok[a] || !col_ok[b]) {
          d[a] = Vec::zero();
        } else {
          d[a] = gather_lanes(base + a * s.in_w + b, idx, lanes);
        }
      }
      input_transform_6(d, cols[b]);
    }
    float* dst = V + j * p.c_pad + c0;
    for (int a = 0; a < 6; ++a) {
      Vec d[6], r6[6];
      for (int b = 0; b < 6; ++b) d[b] = cols[b][a];
      input_transform_6(d, r6);
      for (int b = 0; b < 6; ++b) r6[b].store(dst + (a * 6 + b) * e_stride);
    }
  }
}

// L output channels of one tile: A^T M A of src[e * e_stride + lane], + bias,
// ReLU, into out[(a * out_row + b * L) + lane] for the 4 x 4 pixels (a, b).
inline void output_tile_block(const float* src, int64_t e_stride, Vec vb, bool relu,
                              float relu_max, float* out, int64_t out_row) {
  Vec cols[6][4];
  for (int b = 0; b < 6; ++b) {
    Vec m6[6];
    for (int a = 0; a < 6; ++a) m6[a] = Vec::load(src + (a * 6 + b) * e_stride);
    output_transform_6(m6, cols[b]);
  }
  for (int a = 0; a < 4; ++a) {
    Vec m6[6], o4[4];
    for (int b = 0; b < 6; ++b) m6[b] = cols[b][a];
    output_transform_6(m6, o4);
    for (int b = 0; b < 4; ++b) {
      Vec o = o4[b] + vb;
      if (relu) o = relu_clamp(o, Vec::set1(relu_max));
      o.store(out + a * out_row + b * L);
    }
  }
}

// ---------------------------------------------- channel-blocked tile sources
// (to_blocked, blocked_tile_block and from_blocked: conv2d_winograd_common.h)

// The 36 GEMM elements of tile t from a channel-blocked plane set
// (src: [n][pad / L][h][w][L], pad channels) into out[e][j][c] (element
// stride tiles_in_buffer * pad).
template <int N, typename Transform>
void blocked_tile(const Plan& p, const float* src, int64_t pad, int64_t h, int64_t w, int64_t t,
                  float* out, int64_t tiles_in_buffer, int64_t j, Transform transform) {
  const int64_t tiles_per_image = p.tiles_h * p.tiles_w;
  const int64_t n = t / tiles_per_image, r = t % tiles_per_image;
  const int64_t i0 = (r / p.tiles_w) * 4, j0 = (r % p.tiles_w) * 4;
  const int64_t block = h * w * L;
  for (int64_t c0 = 0; c0 < pad; c0 += L)
    blocked_tile_block<N, 6>(src + (n * (pad / L) + c0 / L) * block + (i0 * w + j0) * L, w,
                          out + j * pad + c0, tiles_in_buffer * pad, transform);
}

// Staged input transform of image n's tiles [r0, r1) (indices within the
// image; the first lands in row j0 of V) for channels [c0, c0 + L): the input
// rows under those tiles are transposed into buf ([rows][4 tiles_w + 2][L],
// zero padded; L1-sized for one image at 14x14), so each tile pixel is one
// vector load rather than a gather across L planes (which took 1/7 of a
// 256-channel 14x14 layer at batch 1).
void input_tiles_blocked(const Conv2dShape& s, const Plan& p, const float* x, int64_t n,
                         int64_t r0, int64_t r1, int64_t c0, float* V, int64_t e_stride,
                         int64_t j0, float* buf) {
  const int64_t C = s.in_channels;
  const int64_t th0 = r0 / p.tiles_w, th1 = (r1 - 1) / p.tiles_w;
  const int64_t rows = 4 * (th1 - th0) + 6, w = 4 * p.tiles_w + 2;
  const int64_t lanes = (C - c0) < L ? (C - c0) : L;
  to_blocked(x + (n * C + c0) * s.in_h * s.in_w, lanes, s.in_h, s.in_w, s.pad_top - 4 * th0,
             s.pad_left, rows, w, buf);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t i = 4 * (r / p.tiles_w - th0), j = 4 * (r % p.tiles_w);
    blocked_tile_block<6, 6>(buf + (i * w + j) * L, w, V + (j0 + r - r0) * p.c_pad + c0,
                          e_stride,
                          [](const Vec* d, Vec* o) { input_transform_6(d, o); });
  }
}

// Staged output transform of image n's tiles [r0, r1) (in rows j0.. of M)
// for output channels [k0, k0 + L): the tiles' 4 x 4 pixels go to buf
// ([4 tile rows][4 tiles_w][L]) and from there, per tile-row run, back into
// the output planes with vector stores (the mirror of input_tiles_blocked).
// A residual (laid out as y, or null) is added there, in the NCHW layout,
// and the activation after it.
void output_tiles_blocked(const Conv2dShape& s, const Plan& p, const float* M, int64_t e_stride,
                          int64_t n, int64_t r0, int64_t r1, int64_t k0, int64_t j0,
                          const float* bias, bool relu, float relu_max, float* y,
                          const float* residual, float* buf) {
  const int64_t K = s.out_channels, plane = s.out_h * s.out_w;
  const int64_t lanes = (K - k0) < L ? (K - k0) : L;
  const int64_t th0 = r0 / p.tiles_w, w = 4 * p.tiles_w;
  const Vec vb = bias ? Vec::load_partial(bias + k0, static_cast<int>(lanes)) : Vec::zero();
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t i = 4 * (r / p.tiles_w - th0), j = 4 * (r % p.tiles_w);
    output_tile_block(M + (j0 + r - r0) * p.k_pad + k0, e_stride, vb, relu && !residual,
                      relu_max, buf + (i * w + j) * L, w * L);
  }
  float* out = y + (n * K + k0) * plane;
  const float* res = residual ? residual + (n * K + k0) * plane : nullptr;
  for (int64_t r = r0; r < r1;) {  // runs of tiles within one tile row
    const int64_t th = r / p.tiles_w, tw = r % p.tiles_w;
    const int64_t count = std::min(p.tiles_w - tw, r1 - r);
    const int64_t oh = 4 * th, rows = std::min<int64_t>(4, s.out_h - oh);
    from_blocked(buf + 4 * (th - th0) * w * L, w, rows, 4 * tw,
                 std::min(4 * (tw + count), s.out_w), lanes, out + oh * s.out_w, s.out_w, plane,
                 res ? res + oh * s.out_w : nullptr, relu, relu_max);
    r += count;
  }
}

// ---------------------------------------------------------------- drivers

// Packed weights (u != nullptr): the 36 GEMMs go over (element, output-channel
// block) panels, each streaming its slice of U once. Unpacked (training, U
// over kPackInWorkspaceMaxBytes): each thread transforms one output-channel
// block's weights for a channel chunk into an L2-resident buffer and runs all
// 36 GEMMs on it, so the 4x larger transformed weights never travel through
// memory at all.
void convolve_staged(const Conv2dShape& s, const Plan& p, const float* x, const float* u,
                     const Conv2dShape& weight_shape, const float* weight, bool for_backward_data,
                     const float* bias, bool relu, float relu_max, float* y,
                     const float* residual, float* workspace, int threads) {
  const int64_t KB = p.kb;
  const int64_t k_blocks = p.k_pad / KB;
  float* V = workspace;
  float* M = V + round_up(p.v_floats, 16);
  float* scratch = M + round_up(p.m_floats, 16);
  const int64_t per_image = p.tiles_h * p.tiles_w;
  const int64_t c_blocks = p.c_pad / L, out_blocks = (s.out_channels + L - 1) / L;
#pragma omp parallel num_threads(threads)
  {
    float* window = scratch + omp_get_thread_num() * p.thread_floats;
    float* u_local = window + round_up(p.window_floats, 16);
    for (int64_t t0 = 0; t0 < p.tiles; t0 += p.chunk) {
      const int64_t nt = (p.tiles - t0) < p.chunk ? (p.tiles - t0) : p.chunk;
      // Element strides of V and M: nt rows and a pad, so that the 36
      // elements of a tile (a multiple of 4 KiB apart for 16 tiles of 256
      // channels) do not all fall in one L1 set.
      const int64_t vs = nt * p.c_pad + kElementPad, ms = nt * p.k_pad + kElementPad;
      // The transforms go over (image, channel block) items: the chunk's
      // tiles [r0, r1) of image n, L channels.
      const int64_t n_first = t0 / per_image;
      const int64_t images = (t0 + nt - 1) / per_image - n_first + 1;
      auto tiles_of = [&](int64_t n, int64_t* r0, int64_t* r1) {
        *r0 = std::max(t0, n * per_image) - n * per_image;
        *r1 = std::min(t0 + nt, (n + 1) * per_image) - n * per_image;
      };
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < images * c_blocks; ++item) {
        const int64_t n = n_first + item / c_blocks, c0 = (item % c_blocks) * L;
        int64_t r0, r1;
        tiles_of(n, &r0, &r1);
        input_tiles_blocked(s, p, x, n, r0, r1, c0, V, vs, n * per_image + r0 - t0, window);
      }
      if (u) {
        // Each thread streams one contiguous range of U's (element, output-
        // channel block) panels in address order, prefetching ahead within
        // it. In a model U comes from DRAM (the weights of all layers do not
        // stay in L3), and without the prefetch each line was waited for:
        // 256 channels at 14x14, batch 1, 0.85 ms against 0.45 with U in L3;
        // with it 0.47.
        const int64_t items = 36 * k_blocks, panel = p.c_pad * KB;
        const int64_t team = omp_get_num_threads(), me = omp_get_thread_num();
        const int64_t first = items * me / team, last = items * (me + 1) / team;
        for (int64_t item = first; item < last; ++item) {
          const int64_t e = item / k_blocks, kb = item % k_blocks;
          gemm_rows(KB, nt, V + e * vs, p.c_pad, u + item * panel, p.c_pad,
                    M + e * ms + kb * KB, p.k_pad, kWeightPrefetchBytes, u + last * panel);
        }
#pragma omp barrier
      } else {
#pragma omp for schedule(dynamic, 1)
        for (int64_t kb = 0; kb < k_blocks; ++kb) {
          for (int64_t c0 = 0; c0 < p.c_pad; c0 += kGemmChannelChunk) {
            const int64_t cn = (p.c_pad - c0) < kGemmChannelChunk ? (p.c_pad - c0)
                                                                  : kGemmChannelChunk;
            const int64_t e_stride = cn * KB + kElementPad;
            transform_weights(weight_shape, weight, for_backward_data, KB, kb, c0, cn, u_local,
                              e_stride);
            for (int e = 0; e < 36; ++e)
              gemm_rows_chunk(KB, nt, V + e * vs + c0, p.c_pad, u_local + e * e_stride, cn,
                              M + e * ms + kb * KB, p.k_pad, c0 > 0);
          }
        }
      }
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < images * out_blocks; ++item) {
        const int64_t n = n_first + item / out_blocks, k0 = (item % out_blocks) * L;
        int64_t r0, r1;
        tiles_of(n, &r0, &r1);
        output_tiles_blocked(s, p, M, ms, n, r0, r1, k0, n * per_image + r0 - t0, bias, relu,
                             relu_max, y, residual, window);
      }
    }
  }
}

// ----------------------------------------------------- tile-lane schedule
// For few channels (the 16-channel layers of CIFAR ResNets) the channel-lane
// layout above spends much of its time moving data: it pads the channels to a
// multiple of L and transposes every pixel between channel planes and
// channel-minor rows, for few FLOPs per pixel. Here the vector lanes hold L
// consecutive tiles of one channel instead, so every access runs along the
// contiguous rows of a single NCHW plane:
//   input   per channel and tile row: B^T along the rows (H) on full row
//           vectors, then a stride-4 deinterleave of those rows puts each
//           tile column b of L tiles in one vector, and B along W;
//   GEMM    M[e][k][tiles] = sum_c U[e][c][k] * V[e][c][tiles]: U broadcast,
//           RK output channels x NV vectors of tiles per micro-kernel;
//   output  A^T on tile vectors, bias and ReLU on whole vectors, a stride-4
//           interleave back into output rows.
// Work items are blocks of NT = NV * L consecutive tiles (they may span tile
// rows and images: each block is walked as segments of one tile row).
#if defined(__AVX512F__)
constexpr int TL_RK = 8, TL_NV = 3;  // 24 accumulators + 3 tile vectors of 32 zmm
#elif defined(__AVX2__)
constexpr int TL_RK = 4, TL_NV = 3;  // 12 + 3 + broadcast of 16 ymm
#else
constexpr int TL_RK = 4, TL_NV = 4;
#endif
constexpr int64_t TL_NT = TL_NV * L;
constexpr int64_t kTlPrefetchChannels = 1;
// Where the tile-lane schedule runs (measured at batch 128, 1 thread,
// AVX-512, against the fused channel-lane schedule of the time): 16 channels
// at 32x32 3.5 -> 1.8 ms, 32 at 16x16 1.67 -> 1.47 ms, 8 at 32x32 2.9 -> 0.7
// ms; but 64 channels at 16x16 (4.7 -> 5.3 ms) and 8x8 planes (tile rows of
// 2 tiles; 32 channels 0.36 -> 0.46 ms) lose. Against the staged schedule
// that replaced it, 8, 12, 16, 20 and 24 channels still gain (16 at 32x32:
// 2.3 -> 2.0 ms), 32 at 32x32 is even, and 32 at 16x16 now loses (1.1 vs
// 1.5 ms); left as it is.
constexpr int64_t kTileLaneMaxChannels = 32;
constexpr int64_t kTileLaneMinWidth = 16;

bool use_tile_lanes(const Conv2dShape& s) {
  return s.in_channels <= kTileLaneMaxChannels && s.out_channels <= kTileLaneMaxChannels &&
         s.out_w >= kTileLaneMinWidth;
}

// out[r] lane l = src[4 l + r] (r < 4): 4L floats, i.e. 4 columns of L tiles.
// interleave4 is its inverse.
#if defined(__AVX512F__)
inline void deinterleave4(const float* src, Vec* out) {
  const __m512i r01 = _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29);
  const __m512i r23 = _mm512_add_epi32(r01, _mm512_set1_epi32(2));
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 v0 = _mm512_loadu_ps(src), v1 = _mm512_loadu_ps(src + 16);
  const __m512 v2 = _mm512_loadu_ps(src + 32), v3 = _mm512_loadu_ps(src + 48);
  const __m512 a01 = _mm512_permutex2var_ps(v0, r01, v1);  // tiles 0-7: (r0, r1) pairs
  const __m512 a23 = _mm512_permutex2var_ps(v0, r23, v1);
  const __m512 b01 = _mm512_permutex2var_ps(v2, r01, v3);  // tiles 8-15
  const __m512 b23 = _mm512_permutex2var_ps(v2, r23, v3);
  out[0] = _mm512_permutex2var_ps(a01, even, b01);
  out[1] = _mm512_permutex2var_ps(a01, odd, b01);
  out[2] = _mm512_permutex2var_ps(a23, even, b23);
  out[3] = _mm512_permutex2var_ps(a23, odd, b23);
}
inline void interleave4(const Vec* in, float* dst) {
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  const __m512i q0 = _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
  const __m512i q1 = _mm512_add_epi32(q0, _mm512_set1_epi32(8));
  const __m512 a01 = _mm512_permutex2var_ps(in[0].v, lo, in[1].v);  // tiles 0-7: (r0, r1)
  const __m512 b01 = _mm512_permutex2var_ps(in[0].v, hi, in[1].v);  // tiles 8-15
  const __m512 a23 = _mm512_permutex2var_ps(in[2].v, lo, in[3].v);
  const __m512 b23 = _mm512_permutex2var_ps(in[2].v, hi, in[3].v);
  _mm512_storeu_ps(dst, _mm512_permutex2var_ps(a01, q0, a23));
  _mm512_storeu_ps(dst + 16, _mm512_permutex2var_ps(a01, q1, a23));
  _mm512_storeu_ps(dst + 32, _mm512_permutex2var_ps(b01, q0, b23));
  _mm512_storeu_ps(dst + 48, _mm512_permutex2var_ps(b01, q1, b23));
}
#elif defined(__AVX2__)
// Each 128-bit half holds one tile's 4 columns: pair tiles (i, i + 4) in
// the halves, then a 4 x 4 transpose within each half.
inline void deinterleave4(const float* src, Vec* out) {
  const __m256 v0 = _mm256_loadu_ps(src), v1 = _mm256_loadu_ps(src + 8);
  const __m256 v2 = _mm256_loadu_ps(src + 16), v3 = _mm256_loadu_ps(src + 24);
  const __m256 w0 = _mm256_permute2f128_ps(v0, v2, 0x20), w1 = _mm256_permute2f128_ps(v0, v2, 0x31);
  const __m256 w2 = _mm256_permute2f128_ps(v1, v3, 0x20), w3 = _mm256_permute2f128_ps(v1, v3, 0x31);
  const __m256 a = _mm256_unpacklo_ps(w0, w1), b = _mm256_unpackhi_ps(w0, w1);
  const __m256 c = _mm256_unpacklo_ps(w2, w3), d = _mm256_unpackhi_ps(w2, w3);
  out[0] = _mm256_shuffle_ps(a, c, 0x44);
  out[1] = _mm256_shuffle_ps(a, c, 0xEE);
  out[2] = _mm256_shuffle_ps(b, d, 0x44);
  out[3] = _mm256_shuffle_ps(b, d, 0xEE);
}
inline void interleave4(const Vec* in, float* dst) {
  const __m256 a = _mm256_unpacklo_ps(in[0].v, in[1].v), b = _mm256_unpackhi_ps(in[0].v, in[1].v);
  const __m256 c = _mm256_unpacklo_ps(in[2].v, in[3].v), d = _mm256_unpackhi_ps(in[2].v, in[3].v);
  const __m256 w0 = _mm256_shuffle_ps(a, c, 0x44), w1 = _mm256_shuffle_ps(a, c, 0xEE);
  const __m256 w2 = _mm256_shuffle_ps(b, d, 0x44), w3 = _mm256_shuffle_ps(b, d, 0xEE);
  _mm256_storeu_ps(dst, _mm256_permute2f128_ps(w0, w1, 0x20));
  _mm256_storeu_ps(dst + 8, _mm256_permute2f128_ps(w2, w3, 0x20));
  _mm256_storeu_ps(dst + 16, _mm256_permute2f128_ps(w0, w1, 0x31));
  _mm256_storeu_ps(dst + 24, _mm256_permute2f128_ps(w2, w3, 0x31));
}
#else
inline void deinterleave4(const float* src, Vec* out) {
  for (int r = 0; r < 4; ++r) out[r] = src[r];
}
inline void interleave4(const Vec* in, float* dst) {
  for (int r = 0; r < 4; ++r) dst[r] = in[r].v;
}
#endif

// Per-thread scratch of the tile-lane schedule (floats): V and M of one
// block, and the strips: 6 rows each of X and Y (see tl_input_block), whose
// first 4 rows are reused for the output rows O.
struct TlPlan {
  int64_t tiles_h, tiles_w, tiles, blocks;
  int64_t ldu, u_floats;            // U[36][C][ldu] when the kernel packs it
  int64_t strip;                    // floats per strip row: 4 NT + slack
  int64_t v_floats, m_floats, thread_floats;
};

TlPlan make_tl_plan(const Conv2dShape& s) {
  TlPlan p;
  p.tiles_h = (s.out_h + 3) / 4;
  p.tiles_w = (s.out_w + 3) / 4;
  p.tiles = s.batch * p.tiles_h * p.tiles_w;
  p.blocks = (p.tiles + TL_NT - 1) / TL_NT;
  p.ldu = round_up(s.out_channels, L);
  p.u_floats = 36 * s.in_channels * p.ldu;
  p.strip = 4 * TL_NT + 2 * L;
  p.v_floats = 36 * s.in_channels * TL_NT;
  p.m_floats = 36 * s.out_channels * TL_NT;
  p.thread_floats = round_up(p.v_floats + p.m_floats + 12 * p.strip, 16);
  return p;
}

// Calls f(n, th, tw, count, j) for the runs of tiles [t0, t0 + nt) within one
// tile row: image n, tile row th, tiles tw .. tw + count, block position j.
template <typename F>
void for_each_row_run(const TlPlan& p, int64_t t0, int64_t nt, F&& f) {
  const int64_t per_image = p.tiles_h * p.tiles_w;
  for (int64_t t = t0; t < t0 + nt;) {
    const int64_t n = t / per_image, r = t % per_image;
    const int64_t th = r / p.tiles_w, tw = r % p.tiles_w;
    const int64_t count = std::min(p.tiles_w - tw, t0 + nt - t);
    f(n, th, tw, count, t - t0);
    t += count;
  }
}

// V[e][c][j] for the tiles [t0, t0 + nt) of the block (e stride C * NT).
// Per channel: B^T d over the 6 input rows of each tile row, on vectors
// along W; its 6 result rows go to strips X[i] (columns 4 tw - pad .. +4 of
// each tile at 4 j) and Y[i] (the same shifted by 4 columns: tile columns 4
// and 5), so a stride-4 deinterleave of X and Y yields the 6 tile columns of
// L tiles; then B along W on those and the 36 vectors are stored.
void tl_input_block(const Conv2dShape& s, const TlPlan& p, const float* x, int64_t t0,
                    int64_t nt, float* V, float* strips) {
  const int64_t C = s.in_channels, plane = s.in_h * s.in_w;
  float* X = strips;                // [6][strip]
  float* Y = strips + 6 * p.strip;  // [6][strip]
  if (nt < TL_NT) {  // lanes past the last tile: zeros, not stale scratch
    for (int i = 0; i < 6; ++i) {
      std::fill(X + i * p.strip + 4 * nt, X + (i + 1) * p.strip, 0.0f);
      std::fill(Y + i * p.strip + 4 * nt, Y + (i + 1) * p.strip, 0.0f);
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    for_each_row_run(p, t0, nt, [&](int64_t n, int64_t th, int64_t tw, int64_t count, int64_t j) {
      const float* src = x + (n * C + c) * plane;
      const int64_t ih0 = th * 4 - s.pad_top, iw0 = tw * 4 - s.pad_left;
      if (c + kTlPrefetchChannels < C) {
        // The rows of this run a few channels ahead: each channel's rows are a
        // short stream the hardware prefetcher would only pick up part way.
        const int64_t r0 = std::max<int64_t>(0, ih0), r1 = std::min<int64_t>(s.in_h, ih0 + 6);
        const char* first = reinterpret_cast<const char*>(src + kTlPrefetchChannels * plane + r0 * s.in_w);
        const char* last = reinterpret_cast<const char*>(src + kTlPrefetchChannels * plane + r1 * s.in_w);
        for (const char* line = first; line < last; line += 64) __builtin_prefetch(line);
      }
      const int64_t width = 4 * count;  // strip columns of X; Y's run to width + 4
      for (int64_t q0 = 0; q0 < width + 4; q0 += L) {
        // columns iw0 + q0 + lane inside the image
        const LaneMask in = lane_mask(static_cast<int>(std::clamp<int64_t>(-(iw0 + q0), 0, L)),
                                      static_cast<int>(std::clamp<int64_t>(s.in_w - (iw0 + q0), 0, L)));
        const LaneMask to_x = lane_mask(0, static_cast<int>(std::clamp<int64_t>(width - q0, 0, L)));
        const LaneMask to_y = lane_mask(static_cast<int>(std::max<int64_t>(0, 4 - q0)),
                                        static_cast<int>(std::min<int64_t>(L, width + 4 - q0)));
        Vec d[6], r6[6];
        for (int a = 0; a < 6; ++a) {
          const int64_t ih = ih0 + a;
          d[a] = (ih < 0 || ih >= s.in_h) ? Vec::zero()
                                          : load_lanes(src + ih * s.in_w + iw0 + q0, in);
        }
        input_transform_6(d, r6);
        for (int i = 0; i < 6; ++i) {
          if (q0 < width) store_lanes(r6[i], X + i * p.strip + 4 * j + q0, to_x);
          store_lanes(r6[i], Y + i * p.strip + 4 * j + q0 - 4, to_y);
        }
      }
    });
    float* dst = V + c * TL_NT;
    for (int64_t g = 0; g < TL_NT; g += L) {
      for (int i = 0; i < 6; ++i) {
        Vec d[8], r6[6];  // tile columns 0-3 from X, 4-5 from Y
        deinterleave4(X + i * p.strip + 4 * g, d);
        deinterleave4(Y + i * p.strip + 4 * g, d + 4);
        input_transform_6(d, r6);
        for (int b = 0; b < 6; ++b) r6[b].store(dst + (i * 6 + b) * C * TL_NT + g);
      }
    }
  }
}



// Output channels [k_begin, k_end) of M[e][k][0 .. NT) for one element e.
void tl_gemm(const float* u, int64_t ldu, const float* v, int64_t cn, float* m, int64_t k_begin,
             int64_t k_end) {
  int64_t k = k_begin;
  for (; k + TL_RK <= k_end; k += TL_RK)
    bw_tile<TL_RK, TL_NV>(u + k, ldu, v, TL_NT, cn, m + k * TL_NT, TL_NT, false);
  if (k < k_end)
    bw_rest<TL_RK - 1, TL_NV>(k_end - k, u + k, ldu, v, TL_NT, cn, m + k * TL_NT, TL_NT, false);
}

// Output channels [k_begin, k_end) of the block's tiles from M[e][k][j]
// (e stride K * NT): A^T M A per L tiles, bias, ReLU, interleaved into the
// 4 output rows O[a] (column 4 j + b of tile j), then copied row run by row
// run into NCHW; a residual (laid out as y, or null) is added in that copy,
// and then the activation.
void tl_output_block(const Conv2dShape& s, const TlPlan& p, const float* M, int64_t t0,
                     int64_t nt, int64_t k_begin, int64_t k_end, const float* bias, bool relu,
                     float relu_max, float* y, const float* residual, float* O) {
  const int64_t K = s.out_channels, plane = s.out_h * s.out_w;
  const Vec cap = Vec::set1(relu_max);
  const bool relu_here = relu && !residual;  // (else after the residual, below)
  const bool relu_after = relu && residual;
  for (int64_t k = k_begin; k < k_end; ++k) {
    const Vec vb = Vec::set1(bias ? bias[k] : 0.0f);
    const float* src = M + k * TL_NT;
    for (int64_t g = 0; g < nt; g += L) {
      Vec cols[6][4];
      for (int i = 0; i < 6; ++i) {  // A^T along W for each row i of the 6x6
        Vec m6[6];
        for (int b = 0; b < 6; ++b) m6[b] = Vec::load(src + (i * 6 + b) * K * TL_NT + g);
        output_transform_6(m6, cols[i]);
      }
      for (int b = 0; b < 4; ++b) {  // then along H
        Vec m6[6], o4[4];
        for (int i = 0; i < 6; ++i) m6[i] = cols[i][b];
        output_transform_6(m6, o4);
        for (int a = 0; a < 4; ++a)
          cols[a][b] = relu_here ? relu_clamp(o4[a] + vb, cap) : o4[a] + vb;
      }
      for (int a = 0; a < 4; ++a) interleave4(cols[a], O + a * p.strip + 4 * g);
    }
    for_each_row_run(p, t0, nt, [&](int64_t n, int64_t th, int64_t tw, int64_t count, int64_t j) {
      const int64_t oh0 = th * 4, ow0 = tw * 4;
      const int64_t rows = std::min<int64_t>(4, s.out_h - oh0);
      const int64_t width = std::min<int64_t>(4 * count, s.out_w - ow0);
      const int64_t at = (n * K + k) * plane + oh0 * s.out_w + ow0;
      float* dst = y + at;
      const float* res = residual ? residual + at : nullptr;
      for (int64_t a = 0; a < rows; ++a) {
        const float* row = O + a * p.strip + 4 * j;
        const int64_t off = a * s.out_w;
        int64_t q = 0;
        for (; q + L <= width; q += L) {
          Vec o = Vec::load(row + q);
          if (res) o = o + Vec::load(res + off + q);
          if (relu_after) o = relu_clamp(o, cap);
          o.store(dst + off + q);
        }
        if (q < width) {
          const int m = static_cast<int>(width - q);
          Vec o = Vec::load(row + q);
          if (res) o = o + Vec::load_partial(res + off + q, m);
          if (relu_after) o = relu_clamp(o, cap);
          o.store_partial(dst + off + q, m);
        }
      }
    });
  }
}

// All blocks of the layer; U[e][c][k] with row stride ldu, e stride u_e_stride.
void tl_convolve(const Conv2dShape& s, const TlPlan& p, const float* x, const float* u,
                 int64_t ldu, int64_t u_e_stride, const float* bias, bool relu, float relu_max,
                 float* y, const float* residual, float* workspace, int threads) {
  const int64_t C = s.in_channels, K = s.out_channels;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t block = 0; block < p.blocks; ++block) {
    float* V = workspace + omp_get_thread_num() * p.thread_floats;
    float* M = V + p.v_floats;
    float* strips = M + p.m_floats;
    const int64_t t0 = block * TL_NT;
    const int64_t nt = std::min(TL_NT, p.tiles - t0);
    tl_input_block(s, p, x, t0, nt, V, strips);
    for (int e = 0; e < 36; ++e)
      tl_gemm(u + e * u_e_stride, ldu, V + e * C * TL_NT, C, M + e * K * TL_NT, 0, K);
    tl_output_block(s, p, M, t0, nt, 0, K, bias, relu, relu_max, y, residual, strips);
  }
}

// -------------------------------------------------------- backward weight
// The weight gradient of Y = A^T [ (G g G^T) (.) (B^T d B) ] A, summed over
// tiles t, is
//   gw[k][c] = G^T ( sum_t (A dY_k,t A^T) (.) (B^T d_c,t B) ) G
// so per tile the output gradient is transformed (4x4 -> 6x6 with A) and the
// input as in the forward pass; then 36 GEMMs reduce over tiles,
//   M[e][k][c] += sum_t Z[e][t][k] * V[e][t][c]
// (the long dimension, tiles, is the GEMM's inner one), and one G^T M G per
// channel pair at the end: 36 instead of 144 multiplies per tile and pair.
//
// Two schedules, like the forward:
//  private - threads take chunks of tiles through both transforms and the
//            GEMMs, accumulating into thread-private M (small channel counts:
//            M of a thread stays in L2), reduced in the final transform;
//  shared  - for large M: all threads transform a chunk of tiles into shared
//            V/Z, then split the 36 GEMMs over (element, input-channel block),
//            each M element owned by one item.
struct BwPlan {
  Plan p;                      // tiles_h/w, tiles, c_pad, k_pad (as input_tile expects)
  bool shared;
  int64_t chunk;               // tiles per chunk
  int64_t chunks;
  int64_t v_floats, z_floats;  // one chunk
  int64_t m_floats;            // one accumulator: 36 x k_pad x c_pad
  // Private schedule with whole images per chunk (SIMD builds): each chunk's
  // input and output gradient are first transposed into zero-padded,
  // channel-blocked planes [n][c / L][h][w][L] (xh x xw and gh x gw pixels),
  // so each tile pixel is one vector load instead of L scalar copies from L
  // planes (which 4 KiB-multiple plane strides make slow to gather).
  bool blocked;
  int64_t xh, xw, gh, gw;
  int64_t x_floats, g_floats;  // one chunk's blocked planes
  int64_t thread_floats;       // private schedule: tmp + V + Z + M (+ planes); shared: tmp
};

// Thread-private M up to kBwPrivateMaxBytes (128 channels: 2.3 MB), with
// chunks of tiles whose V + Z are at least as large as M, so the GEMMs do
// enough work per pass over M. M over kBwPrivateSmallBytes needs at least two
// chunks per thread (one chunk of 49 tiles, 128 @ 28 batch 1 on 1 thread,
// ran 0.88 -> 1.14 ms private). Measured on this session's Intel Xeon
// (AVX-512, 2 MiB L2 per core), shared -> private, ms, 2 threads; 1 thread:
//   64 @ 56 b8 10.3 -> 4.7; 16.6 -> 6.6.  b16 19.8 -> 8.0; 33.7 -> 12.9
//   64 @ 8 b128 2.9 -> 1.4.  64 @ 28 b8 2.6 -> 1.3; 4.0 -> 2.3
//   128 @ 28 b8 7.1 -> 4.2; 10.8 -> 6.8.  b16 12.5 -> 7.8; 20.0 -> 13.5
//   96 @ 28 b8 3.9 -> 2.0; 5.2 -> 3.6.  128 @ 14 b16 3.7 -> 2.5; even
// (M of 256 channels, 9.4 MB, keeps the shared schedule.)
constexpr int64_t kBwPrivateMaxBytes = int64_t(4) << 20;
constexpr int64_t kBwPrivateSmallBytes = int64_t(256) << 10;
constexpr int64_t kBwPrivateChunkBytes = int64_t(512) << 10;  // V + Z of one chunk, at least
constexpr int64_t kBwSharedChunkBytes = int64_t(16) << 20;    // V + Z of one chunk (L3)

BwPlan make_bw_plan(const Conv2dShape& s, int threads) {
  BwPlan b;
  Plan& p = b.p;
  p.kb = L;
  p.c_pad = round_up(s.in_channels, L);
  p.k_pad = round_up(s.out_channels, L);
  p.tiles_h = (s.out_h + 3) / 4;
  p.tiles_w = (s.out_w + 3) / 4;
  p.tiles = s.batch * p.tiles_h * p.tiles_w;
  b.m_floats = 36 * p.k_pad * p.c_pad;
  const int64_t m_bytes = 4 * b.m_floats;
  const int64_t per_tile = 36 * (p.c_pad + p.k_pad);
  int64_t chunk = std::max(kBwPrivateChunkBytes, m_bytes) / (4 * per_tile);
  chunk = chunk < 16 ? 16 : (chunk > 512 ? 512 : chunk);
  const int64_t priv_chunks = (p.tiles + chunk - 1) / chunk;
  const bool enough_chunks =
      priv_chunks >= 2 * threads || (threads == 1 && m_bytes <= kBwPrivateSmallBytes);
  b.shared = !(m_bytes <= kBwPrivateMaxBytes && enough_chunks);
  if (b.shared) {
    chunk = kBwSharedChunkBytes / (4 * per_tile);
    if (chunk < 16) chunk = 16;
  }
  const int64_t per_image = p.tiles_h * p.tiles_w;
  b.blocked = !b.shared && L > 1 && per_image > 0 && per_image <= chunk;
  if (b.blocked) chunk = chunk / per_image * per_image;
  b.chunk = chunk < p.tiles ? chunk : p.tiles;
  if (b.chunk < 1) b.chunk = 1;
  b.chunks = (p.tiles + b.chunk - 1) / b.chunk;
  b.xh = p.tiles_h * 4 + 2;
  b.xw = p.tiles_w * 4 + 2;
  b.gh = p.tiles_h * 4;
  b.gw = p.tiles_w * 4;
  b.x_floats = b.g_floats = 0;
  if (b.blocked) {
    const int64_t images = b.chunk / per_image;
    b.x_floats = round_up(images * p.c_pad * b.xh * b.xw, 16);
    b.g_floats = round_up(images * p.k_pad * b.gh * b.gw, 16);
  }
  // One spare tile row per element: 36 slices of nt x 16 channels would
  // otherwise sit a multiple of 4 KiB apart and share one L1 set.
  b.v_floats = round_up(36 * (b.chunk + 1) * p.c_pad, 16);
  b.z_floats = round_up(36 * (b.chunk + 1) * p.k_pad, 16);
  b.thread_floats = round_up(64 * L, 16);
  if (b.shared) b.thread_floats += round_up(36 * NT2 * 2 * L, 16);  // single-chunk local block
  if (!b.shared)
    b.thread_floats += b.v_floats + b.z_floats + round_up(b.m_floats, 16) + b.x_floats + b.g_floats;
  return b;
}

// Shared schedule, all tiles in one chunk and at most this many of them:
// items of (2L input, NT2 output channels) run their 36 GEMMs into a local
// block and transform it straight into gw, with no M. Above it the items of
// the general schedule, (element, 2L input channels) over M, win: each reads
// whole rows of Z instead of NT2-float pieces a row apart. Measured,
// AVX-512, ms single / general (2 threads; 1 thread):
//   b1 256@14 (16 tiles) 1.16 / 1.76; 1.50 / 2.27
//   b2 256@14 (32) 2.31 / 2.23; 3.12 / 3.30.  b8 512@7 (32) 9.6 / 9.5; 13.8 / 16.6
//   b1 128@28 (49) 0.99 / 0.98; 0.95 / 0.98
//   b4 256@14 (64) 5.26 / 3.29; 8.02 / 5.97.  b8 256@14 (128) 10.7 / 5.7; 15.3 / 8.2
//   b8 128@28 (392) 10.4 / 5.6; 16.3 / 6.6.  b128 64@8 (512) 3.39 / 2.27; 4.32 / 2.33
constexpr int64_t kBwSingleMaxTiles = 48;

bool single_pass(const BwPlan& b) { return b.chunks == 1 && b.p.tiles <= kBwSingleMaxTiles; }

// Shared schedule: M is needed unless the single pass runs.
int64_t shared_m_floats(const BwPlan& b) { return single_pass(b) ? 0 : round_up(b.m_floats, 16); }

int64_t bw_workspace_floats(const BwPlan& b, int threads) {
  if (b.shared) return b.v_floats + b.z_floats + shared_m_floats(b) + threads * b.thread_floats;
  return threads * b.thread_floats;
}

// A y for one column of 4 values (y0..y3 -> z0..z5).
inline void grad_transform_4(const Vec* y, Vec* z) {
  const Vec two = Vec::set1(2.0f), four = Vec::set1(4.0f), eight = Vec::set1(8.0f);
  const Vec e = y[0] + y[2], o = y[1] + y[3];
  const Vec e4 = fmadd(four, y[2], y[0]), o8 = fmadd(eight, y[3], two * y[1]);
  z[0] = y[0];
  z[1] = e + o;
  z[2] = e - o;
  z[3] = e4 + o8;
  z[4] = e4 - o8;
  z[5] = y[3];
}

// G^T m for one column of 6 values (m0..m5 -> g0..g2).
inline void weight_grad_transform_6(const Vec* m, Vec* g) {
  const Vec quarter = Vec::set1(0.25f), sixth = Vec::set1(1.0f / 6.0f);
  const Vec twelfth = Vec::set1(1.0f / 12.0f), twentyfourth = Vec::set1(1.0f / 24.0f);
  const Vec s12 = m[1] + m[2], d12 = m[1] - m[2];
  const Vec s34 = m[3] + m[4], d34 = m[3] - m[4];
  g[0] = fmadd(twentyfourth, s34, fnmadd(sixth, s12, quarter * m[0]));
  g[1] = fnmadd(sixth, d12, twelfth * d34);
  g[2] = fmadd(sixth, s34 - s12, m[5]);
}

// Z[e][j][k] (row stride k_pad, element stride tiles_in_buffer * k_pad) for
// tile t: A dY A^T, L output channels at a time (zero outside the output).
void grad_tile(const Conv2dShape& s, const Plan& p, const float* gy, int64_t t, float* Z,
               int64_t tiles_in_buffer, int64_t j, float* tmp) {
  const int64_t K = s.out_channels;
  const int64_t plane = s.out_h * s.out_w;
  const int64_t tiles_per_image = p.tiles_h * p.tiles_w;
  const int64_t n = t / tiles_per_image, r = t % tiles_per_image;
  const int64_t oh0 = (r / p.tiles_w) * 4, ow0 = (r % p.tiles_w) * 4;
  const int64_t rows = (s.out_h - oh0) < 4 ? (s.out_h - oh0) : 4;
  const int64_t colsn = (s.out_w - ow0) < 4 ? (s.out_w - ow0) : 4;
  const int64_t e_stride = tiles_in_buffer * p.k_pad;
  const bool gather = strided_ok(plane);
  const LaneIndex idx = lane_index(plane);
  for (int64_t k0 = 0; k0 < p.k_pad; k0 += L) {
    const int lanes = static_cast<int>((K - k0) < L ? (K - k0) : L);
    const float* base = gy + (n * K + k0) * plane + oh0 * s.out_w + ow0;
    if (!gather) {  // channel by channel into tmp[16][L]
      for (int64_t lane = 0; lane < L; ++lane) {
        const float* src = base + lane * plane;
        for (int a = 0; a < 4; ++a)
          for (int b = 0; b < 4; ++b)
            tmp[(a * 4 + b) * L + lane] =
                (lane < lanes && a < rows && b < colsn) ? src[a * s.out_w + b] : 0.0f;
      }
    }
    Vec cols[4][6];
    for (int b = 0; b < 4; ++b) {
      Vec y[4];
      for (int a = 0; a < 4; ++a) {
        if (!gather) {
          y[a] = Vec::load(tmp + (a * 4 + b) * L);
        } else if (lanes <= 0 || a >= rows || b >= colsn) {
          y[a] = Vec::zero();
        } else {
          y[a] = gather_lanes(base + a * s.out_w + b, idx, lanes);
        }
      }
      grad_transform_4(y, cols[b]);
    }
    float* dst = Z + j * p.k_pad + k0;
    for (int a = 0; a < 6; ++a) {
      Vec y[4], z6[6];
      for (int b = 0; b < 4; ++b) y[b] = cols[b][a];
      grad_transform_4(y, z6);
      for (int b = 0; b < 6; ++b) z6[b].store(dst + (a * 6 + b) * e_stride);
    }
  }
}

// V[e][j][c]: B^T d B of the blocked input's 6x6 pixels (xb: [n][c_pad / L][xh][xw][L]).
void input_tile_blocked(const Plan& p, const BwPlan& b, const float* xb, int64_t t, float* V,
                        int64_t tiles_in_buffer, int64_t j) {
  blocked_tile<6>(p, xb, p.c_pad, b.xh, b.xw, t, V, tiles_in_buffer, j,
                  [](const Vec* d, Vec* r) { input_transform_6(d, r); });
}

// Z[e][j][k]: A dY A^T of the blocked output gradient's 4x4 pixels
// (gb: [n][k_pad / L][gh][gw][L]).
void grad_tile_blocked(const Plan& p, const BwPlan& b, const float* gb, int64_t t, float* Z,
                       int64_t tiles_in_buffer, int64_t j) {
  blocked_tile<4>(p, gb, p.k_pad, b.gh, b.gw, t, Z, tiles_in_buffer, j,
                  [](const Vec* y, Vec* z) { grad_transform_4(y, z); });
}


template <int CV, int R>
void bw_rows_t(int64_t rows, const float* z, int64_t ldz, const float* v, int64_t ldv,
               int64_t nt, float* m, int64_t ldm, bool accumulate = true) {
  int64_t i = 0;
  for (; i + R <= rows; i += R)
    bw_tile<R, CV>(z + i, ldz, v, ldv, nt, m + i * ldm, ldm, accumulate);
  if (i < rows) bw_rest<R - 1, CV>(rows - i, z + i, ldz, v, ldv, nt, m + i * ldm, ldm, accumulate);
}

// Input channels [c0, c0 + cw) (cw = L or 2L) of one element's GEMM: M_e
// (k_pad x c_pad) += Z_e^T (k_pad x nt) V_e (nt x c_pad), all output channels.
// (accumulate false: M's block is overwritten, its old values never read.)
void bw_gemm_block(const Plan& p, int64_t nt, const float* z, const float* v, int64_t c0,
                   int64_t cw, float* m, bool accumulate = true) {
  if (cw == 2 * L)
    bw_rows_t<2, NT2>(p.k_pad, z, p.k_pad, v + c0, p.c_pad, nt, m + c0, p.c_pad, accumulate);
  else
    bw_rows_t<1, NT1>(p.k_pad, z, p.k_pad, v + c0, p.c_pad, nt, m + c0, p.c_pad, accumulate);
}

void bw_gemm_element(const Plan& p, int64_t nt, const float* z, const float* v, float* m) {
  for (int64_t c0 = 0; c0 < p.c_pad; c0 += 2 * L)
    bw_gemm_block(p, nt, z, v, c0, (p.c_pad - c0) >= 2 * L ? 2 * L : L, m);
}

// gw[k][c0 + lane][3][3] = G^T (sum_u M_u[e]) G for L input channels: m
// points at element 0's L values of (k, c0), e_stride apart per element,
// m_stride apart per accumulator.
void bw_output(const Conv2dShape& s, const float* m, int64_t e_stride, int64_t m_stride,
               int accumulators, int64_t k, int64_t c0, float* gw, float* tmp) {
  const int64_t C = s.in_channels;
  if (c0 >= C) return;
  Vec cols[6][3];
  for (int b = 0; b < 6; ++b) {
    Vec m6[6];
    for (int a = 0; a < 6; ++a)
      m6[a] = sum_accumulators(m + (a * 6 + b) * e_stride, accumulators, m_stride);
    weight_grad_transform_6(m6, cols[b]);
  }
  for (int r = 0; r < 3; ++r) {
    Vec m6[6], g3[3];
    for (int b = 0; b < 6; ++b) m6[b] = cols[b][r];
    weight_grad_transform_6(m6, g3);
    for (int q = 0; q < 3; ++q) g3[q].store(tmp + (r * 3 + q) * L);
  }
  const int64_t lanes = (C - c0) < L ? (C - c0) : L;
  for (int64_t lane = 0; lane < lanes; ++lane) {
    float* dst = gw + (k * C + c0 + lane) * 9;
    for (int q = 0; q < 9; ++q) dst[q] = tmp[q * L + lane];
  }
}

void backward_weight(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const BwPlan b = make_bw_plan(s, a.num_threads);
  const Plan& p = b.p;
  const int threads = a.num_threads;
  const int64_t c_blocks = (p.c_pad + L - 1) / L;
  const int64_t finals = s.out_channels * c_blocks;
  if (a.grad_bias) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t k = 0; k < s.out_channels; ++k) a.grad_bias[k] = conv2d_bias_gradient(a, k);
  }
  if (!b.shared) {
    int used = 1;
#pragma omp parallel num_threads(threads)
    {
      const int tid = omp_get_thread_num();
#pragma omp single
      used = omp_get_num_threads();
      float* tmp = a.workspace + tid * b.thread_floats;
      float* V = tmp + round_up(64 * L, 16);
      float* Z = V + b.v_floats;
      float* M = Z + b.z_floats;
      std::memset(M, 0, sizeof(float) * b.m_floats);
#pragma omp for schedule(dynamic, 1)
      for (int64_t ch = 0; ch < b.chunks; ++ch) {
        const int64_t t0 = ch * b.chunk;
        const int64_t nt = (p.tiles - t0) < b.chunk ? (p.tiles - t0) : b.chunk;
        if (b.blocked) {
          float* xb = M + round_up(b.m_floats, 16);
          float* gb = xb + b.x_floats;
          const int64_t per_image = p.tiles_h * p.tiles_w;
          const int64_t n0 = t0 / per_image, images = nt / per_image;
          const int64_t x_plane = s.in_h * s.in_w, g_plane = s.out_h * s.out_w;
          for (int64_t i = 0; i < images; ++i) {
            to_blocked(a.input + (n0 + i) * s.in_channels * x_plane, s.in_channels, s.in_h,
                       s.in_w, s.pad_top, s.pad_left, b.xh, b.xw, xb + i * p.c_pad * b.xh * b.xw);
            to_blocked(a.grad_output + (n0 + i) * s.out_channels * g_plane, s.out_channels,
                       s.out_h, s.out_w, 0, 0, b.gh, b.gw, gb + i * p.k_pad * b.gh * b.gw);
          }
          for (int64_t j = 0; j < nt; ++j) {
            input_tile_blocked(p, b, xb, j, V, nt + 1, j);
            grad_tile_blocked(p, b, gb, j, Z, nt + 1, j);
          }
        } else {
          for (int64_t j = 0; j < nt; ++j) {
            input_tile(s, p, a.input, t0 + j, V, (nt + 1) * p.c_pad, j, tmp);
            grad_tile(s, p, a.grad_output, t0 + j, Z, nt + 1, j, tmp);
          }
        }
        for (int e = 0; e < 36; ++e)
          bw_gemm_element(p, nt, Z + e * (nt + 1) * p.k_pad, V + e * (nt + 1) * p.c_pad,
                          M + e * p.k_pad * p.c_pad);
      }
      // implicit barrier: every private M is complete
      const float* M0 = a.workspace + round_up(64 * L, 16) + b.v_floats + b.z_floats;
#pragma omp for schedule(static)
      for (int64_t item = 0; item < finals; ++item)
      {
        const int64_t k = item / c_blocks, c0 = (item % c_blocks) * L;
        bw_output(s, M0 + k * p.c_pad + c0, p.k_pad * p.c_pad, b.thread_floats, used, k, c0,
                  a.grad_weight, tmp);
      }
    }
    return;
  }
  float* V = a.workspace;
  float* Z = V + b.v_floats;
  float* M = Z + b.z_floats;
  float* scratch = M + shared_m_floats(b);
  const int64_t wide = (p.c_pad + 2 * L - 1) / (2 * L);  // GEMM column blocks of 2L
  // Tiles [t0, t0 + nt) into V and Z (all threads; ends with a barrier).
  // (Channel-blocked planes, as in the private schedule, measured slower
  // here: with 64+ channels the extra pass over the batch costs more than
  // the gathers it saves.)
  auto transform_chunk = [&](int64_t t0, int64_t nt, float* tmp) {
#pragma omp for schedule(dynamic, 4)
    for (int64_t j = 0; j < nt; ++j) {
      input_tile(s, p, a.input, t0 + j, V, (nt + 1) * p.c_pad, j, tmp);
      grad_tile(s, p, a.grad_output, t0 + j, Z, nt + 1, j, tmp);
    }
  };
  if (single_pass(b)) {
    // Few tiles, all in one chunk: no M at all. Items are (2L input channels,
    // NT2 output channels) blocks; each runs its 36 GEMMs over all tiles into
    // a small local block and transforms that straight into gw. Items of
    // one column block are consecutive, so its V slice stays in L2.
    const int64_t nt = p.tiles;
    const int64_t k_blocks = (p.k_pad + NT2 - 1) / NT2;
#pragma omp parallel num_threads(threads)
    {
      float* tmp = scratch + omp_get_thread_num() * b.thread_floats;
      float* local = tmp + round_up(64 * L, 16);
      transform_chunk(0, nt, tmp);
#pragma omp for schedule(static)
      for (int64_t item = 0; item < wide * k_blocks; ++item) {
        const int64_t c0 = (item / k_blocks) * 2 * L, k0 = (item % k_blocks) * NT2;
        const int64_t kn = (p.k_pad - k0) < NT2 ? (p.k_pad - k0) : NT2;
        const int64_t cw = (p.c_pad - c0) >= 2 * L ? 2 * L : L;
        const int64_t e_stride = kn * cw;
        for (int e = 0; e < 36; ++e) {
          const float* z = Z + e * (nt + 1) * p.k_pad + k0;
          const float* v = V + e * (nt + 1) * p.c_pad + c0;
          if (cw == 2 * L)
            bw_rows_t<2, NT2>(kn, z, p.k_pad, v, p.c_pad, nt, local + e * e_stride, cw, false);
          else
            bw_rows_t<1, NT1>(kn, z, p.k_pad, v, p.c_pad, nt, local + e * e_stride, cw, false);
        }
        for (int64_t i = 0; i < kn && k0 + i < s.out_channels; ++i)
          for (int64_t h = 0; h < cw; h += L)
            bw_output(s, local + i * cw + h, e_stride, 0, 1, k0 + i, c0 + h, a.grad_weight, tmp);
      }
    }
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    float* tmp = scratch + omp_get_thread_num() * b.thread_floats;
    // (the first chunk's GEMMs write M, the later ones add to it: no zeroing pass)
    for (int64_t t0 = 0; t0 < p.tiles; t0 += b.chunk) {
      const int64_t nt = (p.tiles - t0) < b.chunk ? (p.tiles - t0) : b.chunk;
      transform_chunk(t0, nt, tmp);
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < 36 * wide; ++item) {
        const int64_t e = item / wide, c0 = (item % wide) * 2 * L;
        bw_gemm_block(p, nt, Z + e * (nt + 1) * p.k_pad, V + e * (nt + 1) * p.c_pad, c0,
                      (p.c_pad - c0) >= 2 * L ? 2 * L : L, M + e * p.k_pad * p.c_pad, t0 > 0);
      }
    }
#pragma omp for schedule(static)
    for (int64_t item = 0; item < finals; ++item)
    {
      const int64_t k = item / c_blocks, c0 = (item % c_blocks) * L;
      bw_output(s, M + k * p.c_pad + c0, p.k_pad * p.c_pad, 0, 1, k, c0, a.grad_weight, tmp);
    }
  }
}

int64_t workspace(ConvPass pass, const Conv2dShape& s, int threads) {
  if (!is_winograd_shape(s)) return -1;
  if (pass == ConvPass::backward_weight)
    return bw_workspace_floats(make_bw_plan(s, threads), threads);
  const Conv2dShape f = pass == ConvPass::forward ? s : backward_data_as_forward(s);
  if (use_tile_lanes(f)) {
    const TlPlan tp = make_tl_plan(f);
    return round_up(tp.u_floats, 16) + threads * tp.thread_floats;
  }
  return workspace_floats(make_plan(f), threads);
}

// The tile-lane schedule: weights as U[e][c][k]. Packed weights of a single
// output-channel block already have that layout (rows of KB, elements of
// c_pad rows); otherwise they are transformed into the workspace here.
void run_tile_lanes(const Conv2dArgs& a, const Conv2dShape& f, bool bwd, const float* x,
                    float* y, const float* bias, bool relu, const float* residual) {
  const TlPlan tp = make_tl_plan(f);
  const int64_t C = f.in_channels, K = f.out_channels;
  const int64_t KB = k_block(K);
  float* ws = a.workspace;
  const float* u = a.packed_weight;
  int64_t ldu = KB, u_e_stride = round_up(C, L) * KB;
  if (!u || KB != round_up(K, L)) {
    ldu = tp.ldu;
    u_e_stride = C * ldu;
    const int64_t c_chunks = (C + kPackC - 1) / kPackC;
#pragma omp parallel for num_threads(a.num_threads) schedule(dynamic, 1)
    for (int64_t i = 0; i < c_chunks; ++i) {
      const int64_t c0 = i * kPackC, count = std::min(kPackC, C - c0);
      transform_weights(a.shape, a.weight, bwd, ldu, 0, c0, count, ws + c0 * ldu, u_e_stride);
    }
    u = ws;
  }
  ws += round_up(tp.u_floats, 16);
  tl_convolve(f, tp, x, u, ldu, u_e_stride, bias, relu, a.relu_max, y, residual, ws,
              a.num_threads);
}

void run(ConvPass pass, const Conv2dArgs& a) {
  if (pass == ConvPass::backward_weight) {
    backward_weight(a);
    return;
  }
  const bool bwd = pass == ConvPass::backward_data;
  const Conv2dShape f = bwd ? backward_data_as_forward(a.shape) : a.shape;
  const float* x = bwd ? a.grad_output : a.input;
  float* y = bwd ? a.grad_input : a.output;
  const float* bias = bwd ? nullptr : a.bias;
  const bool relu = bwd ? false : a.relu;
  const float* residual = bwd ? nullptr : a.residual;
  if (use_tile_lanes(f)) {
    run_tile_lanes(a, f, bwd, x, y, bias, relu, residual);
    return;
  }
  const Plan p = make_plan(f);
  const float* u = a.packed_weight;
  float* ws = a.workspace;
  if (p.u_in_workspace) {
    if (!u) {
      pack_weights(a.shape, a.weight, ws, bwd, a.num_threads);
      u = ws;
    }
    ws += round_up(p.u_floats, 16);
  }
  convolve_staged(f, p, x, u, a.shape, a.weight, bwd, bias, relu, a.relu_max, y, residual, ws,
                  a.num_threads);
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(conv2d_winograd_workspace, &workspace);
  register_kernel(conv2d_winograd_run, &run);
  register_kernel(conv2d_winograd_pack, &pack_weights);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
