// Depthwise convolution (groups == in_channels, any channel multiplier),
// direct: one output plane at a time, SIMD along the output row.
//
// Each input plane is first copied into a zero-padded scratch plane whose
// rows are split into `stride_w` phases (column j goes to phase j % stride_w
// at index j / stride_w). Then for every stride and dilation the pixels one
// kernel tap needs for consecutive outputs are consecutive in one phase, so
// every tap is a plain vector load + FMA; padding needs no branches.
// Backward-data scatters into the same phase layout and copies back;
// backward-weight reduces vector dot products per tap.
#include <cstring>

#include <omp.h>

#include "kernels/conv/conv2d.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int64_t L = Vec::kWidth;

struct PhasePlane {
  int64_t rows;        // padded input rows the output reaches
  int64_t cols;        // padded input columns the output reaches
  int64_t phase_len;   // floats per phase (room for whole-vector loads past out_w)
  int64_t row_stride;  // stride_w * phase_len
  int64_t floats() const { return rows * row_stride; }
};

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

bool is_depthwise(const Conv2dShape& s) {
  return s.groups == s.in_channels && s.groups >= 1 && s.out_channels % s.in_channels == 0;
}

PhasePlane phase_plane(const Conv2dShape& s) {
  PhasePlane p;
  p.rows = (s.out_h - 1) * s.stride_h + (s.kernel_h - 1) * s.dilation_h + 1;
  p.cols = (s.out_w - 1) * s.stride_w + (s.kernel_w - 1) * s.dilation_w + 1;
  const int64_t max_offset = ((s.kernel_w - 1) * s.dilation_w) / s.stride_w;
  p.phase_len = round_up(round_up(s.out_w, L) + max_offset + 1, L);
  p.row_stride = s.stride_w * p.phase_len;
  return p;
}

// Padded, phase-split copy of one input plane (zeros outside the input and
// past the columns any output reads, so masked-off lanes only ever see 0).
void fill_phases(const Conv2dShape& s, const PhasePlane& p, const float* plane, float* buf) {
  for (int64_t i = 0; i < p.rows; ++i) {
    const int64_t ih = i - s.pad_top;
    float* row = buf + i * p.row_stride;
    if (ih < 0 || ih >= s.in_h) {
      std::memset(row, 0, sizeof(float) * p.row_stride);
      continue;
    }
    const float* src = plane + ih * s.in_w;
    for (int64_t q = 0; q < s.stride_w; ++q) {
      float* phase = row + q * p.phase_len;
      for (int64_t j = 0; j < p.phase_len; ++j) {
        const int64_t col = j * s.stride_w + q;
        const int64_t iw = col - s.pad_left;
        phase[j] = (col < p.cols && iw >= 0 && iw < s.in_w) ? src[iw] : 0.0f;
      }
    }
  }
}

// Address of tap (r, q) for output (oh, ow = 0) in a phase plane.
inline const float* tap(const Conv2dShape& s, const PhasePlane& p, const float* buf, int64_t oh,
                        int64_t r, int64_t q) {
  const int64_t row = oh * s.stride_h + r * s.dilation_h;
  const int64_t col = q * s.dilation_w;
  return buf + row * p.row_stride + (col % s.stride_w) * p.phase_len + col / s.stride_w;
}

void forward_plane(const Conv2dShape& s, const PhasePlane& p, const float* buf, const float* w,
                   float bias, bool relu, float* y) {
  const int64_t taps = s.kernel_h * s.kernel_w;
  const Vec vbias = Vec::set1(bias), vzero = Vec::zero();
  for (int64_t oh = 0; oh < s.out_h; ++oh) {
    float* yrow = y + oh * s.out_w;
    int64_t ow = 0;
    for (; ow + 4 * L <= s.out_w; ow += 4 * L) {  // 4 independent accumulators
      Vec a0 = vbias, a1 = vbias, a2 = vbias, a3 = vbias;
      for (int64_t t = 0; t < taps; ++t) {
        const float* src = tap(s, p, buf, oh, t / s.kernel_w, t % s.kernel_w) + ow;
        const Vec wv = Vec::set1(w[t]);
        a0 = fmadd(wv, Vec::load(src), a0);
        a1 = fmadd(wv, Vec::load(src + L), a1);
        a2 = fmadd(wv, Vec::load(src + 2 * L), a2);
        a3 = fmadd(wv, Vec::load(src + 3 * L), a3);
      }
      if (relu) {
        a0 = max(a0, vzero); a1 = max(a1, vzero); a2 = max(a2, vzero); a3 = max(a3, vzero);
      }
      a0.store(yrow + ow);
      a1.store(yrow + ow + L);
      a2.store(yrow + ow + 2 * L);
      a3.store(yrow + ow + 3 * L);
    }
    for (; ow < s.out_w; ow += L) {
      Vec a = vbias;
      for (int64_t t = 0; t < taps; ++t) {
        const float* src = tap(s, p, buf, oh, t / s.kernel_w, t % s.kernel_w) + ow;
        a = fmadd(Vec::set1(w[t]), Vec::load(src), a);
      }
      if (relu) a = max(a, vzero);
      const int64_t n = s.out_w - ow;
      if (n >= L) a.store(yrow + ow); else a.store_partial(yrow + ow, static_cast<int>(n));
    }
  }
}

void forward(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const PhasePlane p = phase_plane(s);
  const int64_t mult = s.out_channels / s.in_channels;
  const int64_t taps = s.kernel_h * s.kernel_w;
  const int64_t items = s.batch * s.in_channels;
#pragma omp parallel for num_threads(a.num_threads) schedule(static)
  for (int64_t it = 0; it < items; ++it) {
    const int64_t n = it / s.in_channels, c = it % s.in_channels;
    float* buf = a.workspace + omp_get_thread_num() * p.floats();
    fill_phases(s, p, a.input + (n * s.in_channels + c) * s.in_h * s.in_w, buf);
    for (int64_t m = 0; m < mult; ++m) {
      const int64_t k = c * mult + m;
      forward_plane(s, p, buf, a.weight + k * taps, a.bias ? a.bias[k] : 0.0f, a.relu,
                    a.output + (n * s.out_channels + k) * s.out_h * s.out_w);
    }
  }
}

void backward_data(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const PhasePlane p = phase_plane(s);
  const int64_t mult = s.out_channels / s.in_channels;
  const int64_t taps = s.kernel_h * s.kernel_w;
  const int64_t items = s.batch * s.in_channels;
#pragma omp parallel for num_threads(a.num_threads) schedule(static)
  for (int64_t it = 0; it < items; ++it) {
    const int64_t n = it / s.in_channels, c = it % s.in_channels;
    float* buf = a.workspace + omp_get_thread_num() * p.floats();
    std::memset(buf, 0, sizeof(float) * p.floats());
    for (int64_t m = 0; m < mult; ++m) {
      const int64_t k = c * mult + m;
      const float* w = a.weight + k * taps;
      const float* gy = a.grad_output + (n * s.out_channels + k) * s.out_h * s.out_w;
      for (int64_t oh = 0; oh < s.out_h; ++oh) {
        for (int64_t t = 0; t < taps; ++t) {
          float* dst = const_cast<float*>(tap(s, p, buf, oh, t / s.kernel_w, t % s.kernel_w));
          const Vec wv = Vec::set1(w[t]);
          const float* grow = gy + oh * s.out_w;
          int64_t ow = 0;
          for (; ow + L <= s.out_w; ow += L)
            fmadd(wv, Vec::load(grow + ow), Vec::load(dst + ow)).store(dst + ow);
          if (ow < s.out_w) {  // zeros past out_w land in the plane's slack
            const Vec g = Vec::load_partial(grow + ow, static_cast<int>(s.out_w - ow));
            fmadd(wv, g, Vec::load(dst + ow)).store(dst + ow);
          }
        }
      }
    }
    float* gx = a.grad_input + (n * s.in_channels + c) * s.in_h * s.in_w;
    for (int64_t ih = 0; ih < s.in_h; ++ih) {
      float* dst = gx + ih * s.in_w;
      const int64_t i = ih + s.pad_top;
      if (i >= p.rows) {
        std::memset(dst, 0, sizeof(float) * s.in_w);
        continue;
      }
      const float* row = buf + i * p.row_stride;
      for (int64_t iw = 0; iw < s.in_w; ++iw) {
        const int64_t col = iw + s.pad_left;
        dst[iw] = col < p.cols ? row[(col % s.stride_w) * p.phase_len + col / s.stride_w] : 0.0f;
      }
    }
  }
}

void backward_weight(const Conv2dArgs& a) {
  const Conv2dShape& s = a.shape;
  const PhasePlane p = phase_plane(s);
  const int64_t mult = s.out_channels / s.in_channels;
  const int64_t taps = s.kernel_h * s.kernel_w;
  const int64_t pixels = s.out_h * s.out_w;
  // Parallel over output channels: each thread owns its channels' gradients.
#pragma omp parallel for num_threads(a.num_threads) schedule(static)
  for (int64_t k = 0; k < s.out_channels; ++k) {
    const int64_t c = k / mult;
    float* buf = a.workspace + omp_get_thread_num() * p.floats();
    float* gw = a.grad_weight + k * taps;
    for (int64_t t = 0; t < taps; ++t) gw[t] = 0.0f;
    double bias_sum = 0.0;
    for (int64_t n = 0; n < s.batch; ++n) {
      fill_phases(s, p, a.input + (n * s.in_channels + c) * s.in_h * s.in_w, buf);
      const float* gy = a.grad_output + (n * s.out_channels + k) * pixels;
      for (int64_t t = 0; t < taps; ++t) {
        Vec acc0 = Vec::zero(), acc1 = Vec::zero();
        for (int64_t oh = 0; oh < s.out_h; ++oh) {
          const float* src = tap(s, p, buf, oh, t / s.kernel_w, t % s.kernel_w);
          const float* grow = gy + oh * s.out_w;
          int64_t ow = 0;
          for (; ow + 2 * L <= s.out_w; ow += 2 * L) {
            acc0 = fmadd(Vec::load(grow + ow), Vec::load(src + ow), acc0);
            acc1 = fmadd(Vec::load(grow + ow + L), Vec::load(src + ow + L), acc1);
          }
          for (; ow < s.out_w; ow += L) {
            const int64_t rest = s.out_w - ow;
            const Vec g = rest >= L ? Vec::load(grow + ow)
                                    : Vec::load_partial(grow + ow, static_cast<int>(rest));
            acc0 = fmadd(g, Vec::load(src + ow), acc0);
          }
        }
        gw[t] += reduce_add(acc0 + acc1);
      }
      if (a.grad_bias) {
        float part = 0.0f;
        for (int64_t i = 0; i < pixels; ++i) part += gy[i];
        bias_sum += part;
      }
    }
    if (a.grad_bias) a.grad_bias[k] = static_cast<float>(bias_sum);
  }
}

int64_t workspace(ConvPass pass, const Conv2dShape& s, int threads) {
  if (!is_depthwise(s)) return -1;
  return threads * phase_plane(s).floats();
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
  register_kernel(conv2d_depthwise_workspace, &workspace);
  register_kernel(conv2d_depthwise_run, &run);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
