// Channel-blocked (nChw16c) inference kernels: the layout inside a run of
// pointwise and depthwise convolutions (MobileNet-style blocks).
//
// A blocked activation of logical shape (N, C, H, W) stores
//     x[n][c / 16][h][w][c % 16]
// with C rounded up to a multiple of 16; the padded channels hold zeros, and
// every kernel below keeps them zero (their weights and bias are zero). The
// buffer ends with kBlockedSlack floats of slack: the pointwise kernel reads
// whole pixel tiles, past the last pixel of a plane (those rows are never
// stored). Sixteen channels are one AVX-512 vector, two AVX2 vectors, or
// sixteen scalars, so the layout is the same at every ISA level.
//
// Why: with NCHW planes a depthwise convolution works on rows of 7-56 pixels
// (a fraction of a vector, plus per-plane padding copies) and every plane is
// a separate stream; blocked, each tap is one aligned vector per pixel for
// any stride, and a pointwise convolution is a GEMM whose A operand is read
// in place (one broadcast per pixel and input channel).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/dispatch.h"

namespace pve {

constexpr int64_t kChannelBlock = 16;
constexpr int64_t kBlockedSlack = 512;  // >= the widest pointwise pixel tile * 16

struct BlockedShape {
  int64_t batch = 0, channels = 0, height = 0, width = 0;
  int64_t blocks() const { return (channels + kChannelBlock - 1) / kChannelBlock; }
  int64_t plane() const { return height * width * kChannelBlock; }  // floats per block
  int64_t floats() const { return batch * blocks() * plane() + kBlockedSlack; }
};

// NCHW <-> blocked copies (to_blocked zero-fills the padded channels).
using BlockedReorderFn = void (*)(const BlockedShape& shape, const float* src, float* dst,
                                  bool to_blocked, int num_threads);

// y[k] = act(bias[k] + sum_c w[k][c] x[c] (+ residual[k])), per pixel.
struct BlockedPointwiseArgs {
  BlockedShape input;          // output: same batch and pixels, out_channels channels
  int64_t out_channels = 0;
  const float* x = nullptr;
  const float* weight = nullptr;    // [K blocks][C rounded up][16], zeros past K and C
  const float* bias = nullptr;      // [K rounded up], zeros past K
  const float* residual = nullptr;  // nullable, blocked like the output
  bool relu = false;
  float relu_max = INFINITY;
  float* y = nullptr;
  int num_threads = 1;
};
using BlockedPointwiseFn = void (*)(const BlockedPointwiseArgs& args);

// Depthwise (groups == channels, multiplier 1), any kernel, stride, padding
// and dilation; padding given as top/left plus the output size.
struct BlockedDepthwiseArgs {
  BlockedShape input;
  int64_t out_h = 0, out_w = 0;
  int64_t kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, dilation_h = 1, dilation_w = 1;
  const float* x = nullptr;
  const float* weight = nullptr;  // [C blocks][kernel_h * kernel_w][16], zeros past C
  const float* bias = nullptr;    // [C rounded up], zeros past C
  bool relu = false;
  float relu_max = INFINITY;
  float* y = nullptr;
  int num_threads = 1;
};
using BlockedDepthwiseFn = void (*)(const BlockedDepthwiseArgs& args);

// A dense convolution (groups 1) from an NCHW input with few channels (the
// RGB stem) straight into the blocked layout: the run's first layer, so the
// input needs no reorder. Same geometry fields as the depthwise op.
struct BlockedDenseArgs {
  BlockedShape input;  // NCHW, not blocked
  int64_t out_channels = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, dilation_h = 1, dilation_w = 1;
  const float* x = nullptr;
  const float* weight = nullptr;  // [K blocks][C][kernel_h][kernel_w][16], zeros past K
  const float* bias = nullptr;    // [K rounded up], zeros past K
  bool relu = false;
  float relu_max = INFINITY;
  float* y = nullptr;             // blocked (N, K, out_h, out_w), or NCHW with nchw_out
  // NCHW output planes (N, K, out_h, out_w): the "stem" family of the NCHW
  // conv2d (conv2d.h), which runs this kernel between NCHW tensors.
  bool nchw_out = false;
  // With nchw_out: one output row's scratch per thread (the stem family's
  // workspace), and whether whole output vectors are stored non-temporally
  // (then aligned).
  float* row_buffers = nullptr;
  bool stream_out = false;
  int num_threads = 1;
};
using BlockedDenseFn = void (*)(const BlockedDenseArgs& args);

// MobileNetV2's inverted residual block as one pass over row bands:
//   y = project(depthwise(expand(x))) (+ x)
// each convolution with its bias and optional ReLU clamp. A thread takes
// (image, band of output rows) items: it expands the input rows the band's
// depthwise needs into scratch, runs the depthwise into a second scratch band
// and projects that into the output, so the expanded activations (6x the
// block's input) stay in L2 instead of going through memory.
struct BlockedInvertedResidualArgs {
  BlockedShape input;             // blocked (N, C_in, H, W)
  int64_t hidden = 0, out_channels = 0;
  // The depthwise convolution: geometry, weights, bias and clamp (its
  // input/x/y fields are unused); its out_h x out_w is the block's.
  BlockedDepthwiseArgs depthwise;
  const float* expand_weight = nullptr;  // null: no expansion (hidden == C_in)
  const float* expand_bias = nullptr;
  bool expand_relu = false;
  float expand_relu_max = INFINITY;
  const float* project_weight = nullptr;
  const float* project_bias = nullptr;
  bool project_relu = false;
  float project_relu_max = INFINITY;
  bool residual = false;          // needs stride 1 and out_channels == C_in
  const float* x = nullptr;
  float* y = nullptr;             // blocked (N, out_channels, out_h, out_w)
  int64_t band_rows = 1;          // output rows per item
  float* workspace = nullptr;     // inverted_residual_workspace floats, 64-byte aligned
  int num_threads = 1;
};
using BlockedInvertedResidualFn = void (*)(const BlockedInvertedResidualArgs& args);

// Floats of scratch for `threads` threads (two bands each, with slack).
inline int64_t blocked_inverted_residual_workspace(const BlockedInvertedResidualArgs& a,
                                                   int threads) {
  const BlockedDepthwiseArgs& d = a.depthwise;
  const int64_t blocks = (a.hidden + kChannelBlock - 1) / kChannelBlock;
  const int64_t in_rows = (a.band_rows - 1) * d.stride_h + (d.kernel_h - 1) * d.dilation_h + 1;
  const int64_t expanded = blocks * in_rows * a.input.width * kChannelBlock + kBlockedSlack;
  const int64_t band = blocks * a.band_rows * d.out_w * kChannelBlock + kBlockedSlack;
  return threads * ((expanded + band + 15) / 16 * 16);
}

PVE_DECLARE_KERNEL(conv2d_blocked_reorder, BlockedReorderFn);
PVE_DECLARE_KERNEL(conv2d_blocked_inverted_residual, BlockedInvertedResidualFn);
PVE_DECLARE_KERNEL(conv2d_blocked_dense_nchw, BlockedDenseFn);
PVE_DECLARE_KERNEL(conv2d_blocked_pointwise, BlockedPointwiseFn);
PVE_DECLARE_KERNEL(conv2d_blocked_depthwise, BlockedDepthwiseFn);

}  // namespace pve
