// Backward-weight for stride-1 convolutions (any kernel size and dilation,
// any groups), direct, without im2col:
//
//   gw[k, c, r, s] = sum_{n, oh, ow} gy[n, k, oh, ow] * x[n, c, oh - pt + r*dh, ow - pl + s*dw]
//
// Input planes are copied zero-padded to Hp x Wp and gradient planes to
// out_h x Wp (zeros past out_w). Then for every tap (r, s) the input pixels
// under all outputs are one contiguous run starting at r*dh*Wp + s*dw, and
// each weight gradient is a plain dot product of two contiguous vectors
// (about Wp/out_w extra multiply-adds with zeros, a few percent).
// A register block of KR output x CR input channels keeps KR*CR vector
// accumulators (AVX-512: 4 x 6 of 32 zmm), loading KR + CR vectors per
// KR*CR FMAs; the span is walked in chunks whose planes stay in L1 across
// all taps, and horizontal sums wait until a block is done.
//
// Threads split (group, output-channel block, input-channel block) pairs,
// so each gradient element has one owner and needs no reduction; images are
// padded a group at a time into a shared buffer (all threads fill it).
#include <cstring>

#include <omp.h>

#include "kernels/conv/conv2d.h"
#include "kernels/conv/conv2d_bias_gradient.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int64_t L = Vec::kWidth;
#if defined(__AVX512F__)
constexpr int KR = 4, CR = 6;
#elif defined(__AVX2__)
constexpr int KR = 2, CR = 4;
#else
constexpr int KR = 2, CR = 2;
#endif
constexpr int64_t kSpanChunk = 512;
constexpr int64_t kTapOuterBytes = int64_t(256) << 10;  // block data of images kept in L2
constexpr int64_t kTapOuterMaxSpan = 256;  // measured: longer spans do better image by image  // floats of each plane per L1 pass (multiple of L)
constexpr int64_t kPaddedBudgetFloats = int64_t(1) << 24;  // 64 MiB of padded planes per group

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

struct Geometry {
  int64_t wp, hp;          // padded input width/height the outputs reach
  int64_t x_plane, g_plane;  // floats per padded input / gradient plane (with slack)
  int64_t span;            // out_h * wp: the dot-product length
  int64_t images;          // images padded per group
};

bool supported(const Conv2dShape& s) { return s.stride_h == 1 && s.stride_w == 1; }

Geometry geometry(const Conv2dShape& s) {
  Geometry g;
  g.wp = s.out_w + (s.kernel_w - 1) * s.dilation_w;
  g.hp = s.out_h + (s.kernel_h - 1) * s.dilation_h;
  g.span = s.out_h * g.wp;
  // Whole-vector reads run up to L - 1 floats past the last tap's span.
  g.x_plane = round_up(g.hp * g.wp + L, 16);
  g.g_plane = round_up(g.span + L, 16);
  const int64_t per_image = s.in_channels * g.x_plane + s.out_channels * g.g_plane;
  g.images = kPaddedBudgetFloats / (per_image > 0 ? per_image : 1);
  if (g.images < 1) g.images = 1;
  if (g.images > s.batch) g.images = s.batch;
  return g;
}

void pad_input_plane(const Conv2dShape& s, const Geometry& g, const float* src, float* dst) {
  std::memset(dst, 0, sizeof(float) * g.x_plane);
  for (int64_t ih = 0; ih < s.in_h; ++ih) {
    const int64_t i = ih + s.pad_top;
    if (i < 0 || i >= g.hp) continue;
    // columns j = iw + pad_left within [0, wp)
    int64_t lo = s.pad_left < 0 ? -s.pad_left : 0;
    int64_t hi = s.in_w;
    if (hi + s.pad_left > g.wp) hi = g.wp - s.pad_left;
    if (hi > lo) std::memcpy(dst + i * g.wp + lo + s.pad_left, src + ih * s.in_w + lo,
                             sizeof(float) * (hi - lo));
  }
}

void pad_grad_plane(const Conv2dShape& s, const Geometry& g, const float* src, float* dst) {
  for (int64_t oh = 0; oh < s.out_h; ++oh) {
    std::memcpy(dst + oh * g.wp, src + oh * s.out_w, sizeof(float) * s.out_w);
    std::memset(dst + oh * g.wp + s.out_w, 0, sizeof(float) * (g.wp - s.out_w));
  }
  std::memset(dst + g.span, 0, sizeof(float) * (g.g_plane - g.span));
}

// vsum[i][j] += lanes of sum_{n < images} sum_{p < span} gy_i[n*gs + p] * x_j[n*xs + p + shift]
// (the horizontal sums wait until the block is done).
void dot_block(const float* const* gy, const float* const* x, int64_t images, int64_t gs,
               int64_t xs, int64_t shift, int64_t span, Vec* vsum) {
  Vec acc[KR][CR];
#pragma GCC unroll 32
  for (int i = 0; i < KR; ++i)
#pragma GCC unroll 32
    for (int j = 0; j < CR; ++j) acc[i][j] = Vec::zero();
  for (int64_t n = 0; n < images; ++n) {
    const float* g[KR];
    const float* xv[CR];
    for (int i = 0; i < KR; ++i) g[i] = gy[i] + n * gs;
    for (int j = 0; j < CR; ++j) xv[j] = x[j] + n * xs + shift;
    int64_t p = 0;
    for (; p + L <= span; p += L) {
      Vec gv[KR];
#pragma GCC unroll 32
      for (int i = 0; i < KR; ++i) gv[i] = Vec::load(g[i] + p);
#pragma GCC unroll 32
      for (int j = 0; j < CR; ++j) {
        const Vec v = Vec::load(xv[j] + p);
#pragma GCC unroll 32
        for (int i = 0; i < KR; ++i) acc[i][j] = fmadd(gv[i], v, acc[i][j]);
      }
    }
    if (p < span) {  // masked gradient: lanes past the span contribute 0
      const int m = static_cast<int>(span - p);
      Vec gv[KR];
      for (int i = 0; i < KR; ++i) gv[i] = Vec::load_partial(g[i] + p, m);
      for (int j = 0; j < CR; ++j) {
        const Vec v = Vec::load(xv[j] + p);
        for (int i = 0; i < KR; ++i) acc[i][j] = fmadd(gv[i], v, acc[i][j]);
      }
    }
  }
#pragma GCC unroll 32
  for (int i = 0; i < KR; ++i)
#pragma GCC unroll 32
    for (int j = 0; j < CR; ++j) vsum[i * CR + j] = vsum[i * CR + j] + acc[i][j];
}

void backward_weight(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const Geometry g = geometry(s);
  const int64_t groups = s.groups, cg = s.in_channels / groups, kg = s.out_channels / groups;
  const int64_t taps = s.kernel_h * s.kernel_w;
  const int64_t k_blocks = (kg + KR - 1) / KR, c_blocks = (cg + CR - 1) / CR;
  const int64_t blocks = groups * k_blocks * c_blocks;
  const bool tap_blocked = 2 * cg <= CR;
  const int64_t q_blocks = (s.kernel_w + CR - 1) / CR;
  const int64_t tap_items = groups * k_blocks * cg * s.kernel_h * q_blocks;
  const int64_t weight_floats = s.out_channels * cg * taps;
  float* xpad = a.workspace;
  float* gpad = xpad + g.images * s.in_channels * g.x_plane;
  const int64_t pixels = s.out_h * s.out_w;
  // Per-thread vector sums of a block: taps x KR x CR vectors.
  const int64_t sum_floats = round_up(taps * KR * CR * L, 16);
  float* sums = gpad + g.images * s.out_channels * g.g_plane;
#pragma omp parallel num_threads(a.num_threads)
  {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < weight_floats; ++i) a.grad_weight[i] = 0.0f;
    if (a.grad_bias) {
#pragma omp for schedule(static)
      for (int64_t k = 0; k < s.out_channels; ++k) a.grad_bias[k] = conv2d_bias_gradient(a, k);
    }
    for (int64_t n0 = 0; n0 < s.batch; n0 += g.images) {
      const int64_t nb = (s.batch - n0) < g.images ? (s.batch - n0) : g.images;
#pragma omp for schedule(static)
      for (int64_t i = 0; i < nb * s.in_channels; ++i)
        pad_input_plane(s, g, a.input + (n0 * s.in_channels + i) * s.in_h * s.in_w,
                        xpad + i * g.x_plane);
#pragma omp for schedule(static)
      for (int64_t i = 0; i < nb * s.out_channels; ++i)
        pad_grad_plane(s, g, a.grad_output + (n0 * s.out_channels + i) * pixels,
                       gpad + i * g.g_plane);
      // implicit barrier: the padded group is complete
      if (tap_blocked) {
        // Few input channels (a grayscale first layer): the CR accumulator
        // columns take CR taps of one kernel row of one input channel (the
        // same plane at CR column offsets) instead of CR input channels.
        const int64_t gs = s.out_channels * g.g_plane, xs = s.in_channels * g.x_plane;
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < tap_items; ++b) {
          int64_t rest = b;
          const int64_t qb = rest % q_blocks;
          rest /= q_blocks;
          const int64_t r = rest % s.kernel_h;
          rest /= s.kernel_h;
          const int64_t c = rest % cg;
          rest /= cg;
          const int64_t kb = rest % k_blocks, grp = rest / k_blocks;
          const int64_t k0 = grp * kg + kb * KR, q0 = qb * CR;
          const int64_t kn = (grp * kg + kg - k0) < KR ? (grp * kg + kg - k0) : KR;
          const int64_t qn = (s.kernel_w - q0) < CR ? (s.kernel_w - q0) : CR;
          Vec* vsum = reinterpret_cast<Vec*>(sums + omp_get_thread_num() * sum_floats);
          for (int i = 0; i < KR * CR; ++i) vsum[i] = Vec::zero();
          const float* gy[KR];
          const float* x[CR];
          for (int i = 0; i < KR; ++i)  // rows past the block's edge repeat the last one
            gy[i] = gpad + (k0 + (i < kn ? i : kn - 1)) * g.g_plane;
          for (int j = 0; j < CR; ++j)
            x[j] = xpad + (grp * cg + c) * g.x_plane + (q0 + (j < qn ? j : qn - 1)) * s.dilation_w;
          dot_block(gy, x, nb, gs, xs, r * s.dilation_h * g.wp, g.span, vsum);
          for (int64_t i = 0; i < kn; ++i)
            for (int64_t j = 0; j < qn; ++j)
              a.grad_weight[((k0 + i) * cg + c) * taps + r * s.kernel_w + q0 + j] +=
                  reduce_add(vsum[i * CR + j]);
        }
        continue;
      }
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t grp = b / (k_blocks * c_blocks);
        const int64_t k0 = grp * kg + ((b / c_blocks) % k_blocks) * KR;
        const int64_t c0 = (b % c_blocks) * CR;  // within the group
        const int64_t kn = (grp * kg + kg - k0) < KR ? (grp * kg + kg - k0) : KR;
        const int64_t cn = (cg - c0) < CR ? (cg - c0) : CR;
        Vec* vsum = reinterpret_cast<Vec*>(sums + omp_get_thread_num() * sum_floats);
        for (int64_t i = 0; i < taps * KR * CR; ++i) vsum[i] = Vec::zero();
        const float* gy[KR];
        const float* x[CR];
        // Rows past the block's edge repeat its last row; their sums are dropped.
        for (int i = 0; i < KR; ++i)
          gy[i] = gpad + (k0 + (i < kn ? i : kn - 1)) * g.g_plane;
        for (int j = 0; j < CR; ++j)
          x[j] = xpad + (grp * cg + c0 + (j < cn ? j : cn - 1)) * g.x_plane;
        const int64_t gs = s.out_channels * g.g_plane, xs = s.in_channels * g.x_plane;
        const int64_t sub = kTapOuterBytes / ((KR + CR) * g.span * 4);
        if (sub >= 2 && g.span < kTapOuterMaxSpan) {
          // Small planes: `sub` images of the block fit in L2 together, so
          // taps go outside and the accumulators run over those images.
          for (int64_t n0 = 0; n0 < nb; n0 += sub) {
            const int64_t cnt = (nb - n0) < sub ? (nb - n0) : sub;
            const float* gyn[KR];
            const float* xn[CR];
            for (int i = 0; i < KR; ++i) gyn[i] = gy[i] + n0 * gs;
            for (int j = 0; j < CR; ++j) xn[j] = x[j] + n0 * xs;
            for (int64_t t = 0; t < taps; ++t) {
              const int64_t r = t / s.kernel_w, q = t % s.kernel_w;
              const int64_t shift = r * s.dilation_h * g.wp + q * s.dilation_w;
              dot_block(gyn, xn, cnt, gs, xs, shift, g.span, vsum + t * KR * CR);
            }
          }
        } else {
          // Large planes: image outer, span chunks small enough that the
          // block's planes stay in L1 across all taps.
          for (int64_t n = 0; n < nb; ++n) {
            for (int64_t p0 = 0; p0 < g.span; p0 += kSpanChunk) {
              const int64_t len = (g.span - p0) < kSpanChunk ? (g.span - p0) : kSpanChunk;
              const float* gyc[KR];
              const float* xc[CR];
              for (int i = 0; i < KR; ++i) gyc[i] = gy[i] + n * gs + p0;
              for (int j = 0; j < CR; ++j) xc[j] = x[j] + n * xs + p0;
              for (int64_t t = 0; t < taps; ++t) {
                const int64_t r = t / s.kernel_w, q = t % s.kernel_w;
                const int64_t shift = r * s.dilation_h * g.wp + q * s.dilation_w;
                dot_block(gyc, xc, 1, 0, 0, shift, len, vsum + t * KR * CR);
              }
            }
          }
        }
        for (int64_t t = 0; t < taps; ++t)
          for (int64_t i = 0; i < kn; ++i)
            for (int64_t j = 0; j < cn; ++j)
              a.grad_weight[((k0 + i) * cg + c0 + j) * taps + t] +=
                  reduce_add(vsum[(t * KR + i) * CR + j]);
      }
    }
  }
}

int64_t workspace(ConvPass pass, const Conv2dShape& s, int threads) {
  if (pass != ConvPass::backward_weight || !supported(s)) return -1;
  const Geometry g = geometry(s);
  const int64_t taps = s.kernel_h * s.kernel_w;
  return g.images * (s.in_channels * g.x_plane + s.out_channels * g.g_plane) +
         threads * round_up(taps * KR * CR * L, 16);
}

void run(ConvPass pass, const Conv2dArgs& a) {
  if (pass == ConvPass::backward_weight) backward_weight(a);
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(conv2d_direct_workspace, &workspace);
  register_kernel(conv2d_direct_run, &run);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
