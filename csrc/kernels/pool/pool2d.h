// 2-D pooling over NCHW planes: max, average, adaptive max/average, global
// average. Every kernel treats the input as `planes` = N*C independent
// in_h x in_w planes; parameters are checked by the binding (bind_pool.cpp).
//
// Semantics are torch's: max-pool ties keep the first position in window scan
// order (rows, then columns), NaN wins and propagates; indices are flat per
// plane (h * in_w + w). Windows are clipped to the input; average pooling's
// divisor follows count_include_pad / divisor_override as in torch.
#pragma once

#include <cstdint>

#include "core/dispatch.h"

namespace pve {

struct Pool2dShape {
  int64_t planes, in_h, in_w, out_h, out_w;
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
};

// indices may be null (inference).
using MaxPool2dForwardFn = void (*)(const float* x, float* y, int64_t* indices,
                                    const Pool2dShape& s, int num_threads);
// gx (planes x in_h x in_w) is overwritten: gx[idx] += gy for each output.
// Also serves adaptive max pooling. Out-of-range indices are skipped.
using MaxPool2dBackwardFn = void (*)(const float* gy, const int64_t* indices, float* gx,
                                     int64_t planes, int64_t in_hw, int64_t out_hw,
                                     int num_threads);
// divisor_override <= 0 means none.
using AvgPool2dForwardFn = void (*)(const float* x, float* y, const Pool2dShape& s,
                                    bool count_include_pad, int64_t divisor_override,
                                    int num_threads);
using AvgPool2dBackwardFn = void (*)(const float* gy, float* gx, const Pool2dShape& s,
                                     bool count_include_pad, int64_t divisor_override,
                                     int num_threads);
// Adaptive windows: rows floor(i*in/out) .. ceil((i+1)*in/out).
using AdaptiveMaxPool2dFn = void (*)(const float* x, float* y, int64_t* indices, int64_t planes,
                                     int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                                     int num_threads);
using AdaptiveAvgPool2dFn = void (*)(const float* x, float* y, int64_t planes, int64_t in_h,
                                     int64_t in_w, int64_t out_h, int64_t out_w, int num_threads);
using AdaptiveAvgPool2dBackwardFn = void (*)(const float* gy, float* gx, int64_t planes,
                                             int64_t in_h, int64_t in_w, int64_t out_h,
                                             int64_t out_w, int num_threads);
// y[p] = mean of plane p (hw elements); and its backward gx = gy[p] / hw.
using GlobalAvgPoolFn = void (*)(const float* x, float* y, int64_t planes, int64_t hw,
                                 int num_threads);
using GlobalAvgPoolBackwardFn = void (*)(const float* gy, float* gx, int64_t planes, int64_t hw,
                                         int num_threads);

PVE_DECLARE_KERNEL(max_pool2d_forward, MaxPool2dForwardFn);
PVE_DECLARE_KERNEL(max_pool2d_backward, MaxPool2dBackwardFn);
PVE_DECLARE_KERNEL(avg_pool2d_forward, AvgPool2dForwardFn);
PVE_DECLARE_KERNEL(avg_pool2d_backward, AvgPool2dBackwardFn);
PVE_DECLARE_KERNEL(adaptive_max_pool2d_forward, AdaptiveMaxPool2dFn);
PVE_DECLARE_KERNEL(adaptive_avg_pool2d_forward, AdaptiveAvgPool2dFn);
PVE_DECLARE_KERNEL(adaptive_avg_pool2d_backward, AdaptiveAvgPool2dBackwardFn);
PVE_DECLARE_KERNEL(global_avg_pool_forward, GlobalAvgPoolFn);
PVE_DECLARE_KERNEL(global_avg_pool_backward, GlobalAvgPoolBackwardFn);

}  // namespace pve
