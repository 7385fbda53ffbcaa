// Normalisation building blocks. BatchNorm, GroupNorm and LayerNorm are all
// "statistics per channel of x viewed as (n, c, l)" followed by "a per-channel
// affine map", so three kernels serve all of them (see nn/normalization.py):
//
//   channel_stats       mean[c], biased var[c] over n*l elements; one pass
//                       (sums of x - x[first], in float per lane, double per row)
//   channel_affine      out = a[c] * u + b[c] * v + d[c] (+ ReLU), v optional;
//                       BatchNorm forward (scale/shift) and every backward
//   channel_grad_sums   sum gy and sum gy * (x - center[c]) per channel
//
// Training BatchNorm fuses them per channel (batch_norm_train_forward /
// _backward): statistics, then the affine map, while the channel is in L2.
//
// LayerNorm normalises rows and applies a per-column affine, so it has its own
// forward and backward.
#pragma once

#include <cstdint>

#include "core/dispatch.h"

namespace pve {

using ChannelStatsFn = void (*)(const float* x, int64_t n, int64_t c, int64_t l, float* mean,
                                float* var, int num_threads);
// out may alias u or v. b and v are ignored when v is null; d may be null (0).
// With relu the result is clamped to [0, relu_max] (inf: ReLU, 6: ReLU6).
using ChannelAffineFn = void (*)(const float* u, const float* v, float* out, int64_t n, int64_t c,
                                 int64_t l, const float* a, const float* b, const float* d,
                                 bool relu, float relu_max, int num_threads);
using ChannelGradSumsFn = void (*)(const float* x, const float* gy, int64_t n, int64_t c,
                                   int64_t l, const float* center, float* sum_gy,
                                   float* sum_gy_xc, int num_threads);
// Training forward: mean, biased var per channel; y = x * scale + shift (+ReLU
// clamped to [0, relu_max]) with scale = w / sqrt(var + eps), shift = b - mean *
// scale (w, b may be null).
using BatchNormTrainForwardFn = void (*)(const float* x, float* y, int64_t n, int64_t c,
                                         int64_t l, const float* w, const float* b, double eps,
                                         bool relu, float relu_max, float* mean, float* var,
                                         int num_threads);
// Training backward through the batch statistics (mean, var from the forward):
// writes sum_gy, sum_gy_xc (sum gy * (x - mean)) and, when gx is not null, gx.
// With relu, gy is the gradient of the forward's ReLU output (relu=true there,
// same w, b, relu_max): it is zeroed where x * scale + shift <= 0 (relu_max
// inf: ReLU's rule, NaN passes) or outside (0, relu_max) (ReLU6's, NaN
// dropped) before anything else.
using BatchNormTrainBackwardFn = void (*)(const float* x, const float* gy, float* gx, int64_t n,
                                          int64_t c, int64_t l, const float* mean,
                                          const float* var, const float* w, const float* b,
                                          double eps, bool relu, float relu_max, float* sum_gy,
                                          float* sum_gy_xc, int num_threads);
// y = (x - mean) * rstd * w + b per row of `len`; w, b may be null; writes mean, rstd.
using LayerNormForwardFn = void (*)(const float* x, float* y, int64_t rows, int64_t len,
                                    const float* w, const float* b, float eps, float* mean,
                                    float* rstd, int num_threads);
// gx (may be null), gw and gb (len floats, overwritten, may be null).
using LayerNormBackwardFn = void (*)(const float* x, const float* gy, int64_t rows, int64_t len,
                                     const float* mean, const float* rstd, const float* w,
                                     float* gx, float* gw, float* gb, int num_threads);

PVE_DECLARE_KERNEL(channel_stats, ChannelStatsFn);
PVE_DECLARE_KERNEL(channel_affine, ChannelAffineFn);
PVE_DECLARE_KERNEL(channel_grad_sums, ChannelGradSumsFn);
PVE_DECLARE_KERNEL(batch_norm_train_forward, BatchNormTrainForwardFn);
PVE_DECLARE_KERNEL(batch_norm_train_backward, BatchNormTrainBackwardFn);
PVE_DECLARE_KERNEL(layer_norm_forward, LayerNormForwardFn);
PVE_DECLARE_KERNEL(layer_norm_backward, LayerNormBackwardFn);

}  // namespace pve
