// Bias gradient shared by the convolution kernel families (kernel sources only:
// it uses the ISA's Vec, so it lives in that ISA's namespace).
#pragma once

#include "kernels/conv/conv2d.h"
#include "simd/vec.h"

namespace pve {
namespace PVE_KERNEL_NS {

// d(loss)/d(bias[k]): grad_output summed over the batch and the output plane,
// vector lanes within a plane, then double across planes (many terms).
inline float conv2d_bias_gradient(const Conv2dArgs& a, int64_t k) {
  const Conv2dShape& s = a.shape;
  const int64_t pixels = s.out_h * s.out_w;
  constexpr int L = Vec::kWidth;
  double sum = 0.0;
  for (int64_t n = 0; n < s.batch; ++n) {
    const float* gy = a.grad_output + (n * s.out_channels + k) * pixels;
    Vec acc = Vec::zero();
    int64_t i = 0;
    for (; i + L <= pixels; i += L) acc = acc + Vec::load(gy + i);
    float part = reduce_add(acc);
    for (; i < pixels; ++i) part += gy[i];
    sum += part;
  }
  return static_cast<float>(sum);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
