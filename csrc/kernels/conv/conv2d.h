// 2-D convolution (NCHW, OIHW weights, float32): shapes, arguments and the
// kernel families.
//
//   y[n, k, oh, ow] = act(bias[k] + sum_{c in group(k), r, s}
//                         w[k, c, r, s] * x[n, c, oh*sh - pt + r*dh, ow*sw - pl + s*dw])
//
// Padding is given as top/left plus the output size, so asymmetric padding
// (torch's 'same' with even kernels) needs nothing special: bottom/right
// padding is whatever the output size implies. Positions outside the input
// read as zero.
//
// Families (one kernel source each, compiled per ISA):
//   conv2d_gemm_*       im2col (chunked, never the full buffer) + GEMM, and
//                       pointwise 1x1 as GEMM straight on the input;
//   conv2d_depthwise_*  direct SIMD kernel for groups == in_channels (any
//                       kernel size, stride, dilation, channel multiplier);
//   conv2d_winograd_*   F(4x4, 3x3) for 3x3 stride-1 convolutions, channels
//                       blocked by the vector width inside the kernel; all
//                       three passes (backward-weight: 36 GEMMs reducing
//                       over tiles, then G^T M G per channel pair);
//   conv2d_winograd_f2_* F(2x2, 3x3), forward and backward-data, for 3x3 stride-1 layers
//                       with few output pixels and many channel pairs (its
//                       transformed weights are 16/9 of the plain ones, not 4x);
//   conv2d_direct_*     backward-weight of stride-1 convolutions as register-
//                       blocked dot products over padded planes (no im2col);
//   conv2d_winograd_s2_* F(3x3, 4x4) over the four stride phases of stride-2
//                       convolutions with kernels of up to 8x8 (the 7x7 RGB
//                       stem), forward and backward-weight (the transposed
//                       algorithm: a GEMM over tiles, output channels in lanes);
//   conv2d_phase_*      strided (3x3 stride-2) convolutions as register-tiled
//                       implicit GEMMs over the input's stride phases (no
//                       im2col, no col2im): forward, weights packed per
//                       output block; backward-data as one stride-1
//                       correlation per input phase with the sub-kernel of
//                       its taps (stride 1: the flipped kernel); backward-
//                       weight over the channel-minor phases.
// Each family has a `run` entry point (one of three passes) and a
// `workspace` query (floats of scratch the caller must provide); both
// Winograds (F(4x4) and F(2x2): transformed), phase (blocked) and pointwise
// (1x1 groups 1: output-channel panels) also pack weights so eval-mode
// inference can cache them.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/dispatch.h"
#include "kernels/gemm/gemm.h"

namespace pve {

struct Conv2dShape {
  int64_t batch = 0, in_channels = 0, in_h = 0, in_w = 0;
  int64_t out_channels = 0, kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0;  // may exceed the kernel; bottom/right follow from out_h/out_w
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  int64_t out_h = 0, out_w = 0;
};

enum class ConvPass : int { forward = 0, backward_data = 1, backward_weight = 2 };

struct Conv2dArgs {
  Conv2dShape shape;
  // forward: input, weight, bias (nullable), relu -> output
  // backward_data: grad_output, weight -> grad_input (overwritten)
  // backward_weight: input, grad_output -> grad_weight (overwritten), grad_bias (nullable)
  const float* input = nullptr;
  const float* weight = nullptr;
  const float* bias = nullptr;
  const float* grad_output = nullptr;
  // Weights already in the family's packed layout (Winograd, both tile
  // sizes: transformed; phase: output-channel blocks; pointwise, 1x1
  // groups 1: panels of the micro-kernel's output-channel rows);
  // null means "pack them yourself into the workspace".
  const float* packed_weight = nullptr;
  bool relu = false;
  float relu_max = INFINITY;  // with relu, outputs clamp to [0, relu_max] (6: ReLU6)
  // forward: y = act(conv + bias + residual), residual laid out as the output
  // (NCHW, contiguous; never the output itself). Read only by the families
  // that add it in their epilogue while the tile is in registers (pointwise
  // on its driver, phase, both Winograds: the family table in bind_conv.cpp); for
  // the others the caller runs the convolution without activation and then
  // conv2d_add_residual.
  const float* residual = nullptr;
  // Non-temporal output stores (pointwise forward and the stem, where rows
  // are whole aligned vectors): -1 by output size, 0 never, 1 always (tests).
  int stream_outputs = -1;
  float* output = nullptr;
  // Forward: a family that checks its own results for NaN / inf while they are
  // in registers (winograd_s2) sets *non_finite to 1 if it found one, else 0,
  // and the caller skips its pass over the output; others leave it alone.
  int* non_finite = nullptr;
  float* grad_input = nullptr;
  float* grad_weight = nullptr;
  float* grad_bias = nullptr;
  // Scratch of at least workspace(pass, shape, num_threads) floats, 64-byte aligned.
  float* workspace = nullptr;
  int num_threads = 1;
  GemmF32Fn gemm = nullptr;  // the GEMM the lowered families call (the dispatched one)
};

// Whether a forward's outputs (out_floats of them) are stored non-temporally,
// where its kernel can (whole aligned vectors): by a.stream_outputs, else when
// they are over 16 MiB, much more than the last-level cache keeps for the next
// layer (see the pointwise driver in conv2d_gemm.cpp and the stem family).
constexpr int64_t kStreamOutFloats = int64_t(4) << 20;
inline bool use_streamed_outputs(const Conv2dArgs& a, int64_t out_floats) {
  return a.stream_outputs < 0 ? out_floats >= kStreamOutFloats : a.stream_outputs > 0;
}

// Floats of scratch a pass needs; -1 when the family cannot run this shape.
using Conv2dWorkspaceFn = int64_t (*)(ConvPass pass, const Conv2dShape& shape, int num_threads);
using Conv2dRunFn = void (*)(ConvPass pass, const Conv2dArgs& args);
// Writes the packed weights (for the forward pass; `for_backward_data` packs
// the flipped, transposed weights backward-data convolves with) and returns
// their size in floats; with packed == nullptr only returns the size (-1:
// the family does not pack this shape).
using Conv2dPackFn = int64_t (*)(const Conv2dShape& shape, const float* weight, float* packed,
                                 bool for_backward_data, int num_threads);

// y = act(y + residual) over n floats in place (act: ReLU clamped to
// [0, relu_max] when relu, else none): the residual pass for families whose
// epilogue does not take it, with the same clamp as the epilogues.
using Conv2dAddResidualFn = void (*)(float* y, const float* residual, int64_t n, bool relu,
                                     float relu_max, int num_threads);

// A stride-1 unpadded 1x1 layer whose output is the input's size: the input
// itself is the pointwise GEMM's column matrix.
inline bool is_direct_pointwise(const Conv2dShape& s) {
  return s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 &&
         s.pad_top == 0 && s.pad_left == 0 && s.out_h == s.in_h && s.out_w == s.in_w;
}

// Strided 1x1 layers with plain (unpacked) weights, as in training, run the
// driver on plain weight rows up to this many weights; larger ones go through
// im2col and its packed GEMM, which reuses its packing over many pixels.
// Measured (AVX-512, medians of interleaved runs, 2 threads; 1 thread),
// im2col -> driver: 64->128 s2 @56 b8 0.69 -> 0.65 ms; 1.24 -> 1.10,
// 128->256 @28 b8 1.21x; 1.22x, 256->512 @14 b8 1.29x; 1.09x, 16->32 @32
// b128 1.32x; 1.32x; but 256->512 @56 b16 0.99x; 0.96x, 512->1024 @28 b16
// 0.94x; 0.84x.
constexpr int64_t kPointwisePlainStridedMaxWeights = int64_t(64) << 10;

// Pointwise forward runs its register-tiled driver (which takes the
// residual) for stride-1 unpadded 1x1 layers, and for strided 1x1 layers with
// groups 1 and packed weights or few plain ones; other shapes go through
// im2col's forward.
inline bool conv2d_pointwise_on_driver(const Conv2dShape& s, bool packed_weights) {
  return is_direct_pointwise(s) ||
         (s.groups == 1 && (packed_weights || s.out_channels * s.in_channels <=
                                                  kPointwisePlainStridedMaxWeights));
}

PVE_DECLARE_KERNEL(conv2d_add_residual, Conv2dAddResidualFn);
PVE_DECLARE_KERNEL(conv2d_im2col_workspace, Conv2dWorkspaceFn);
PVE_DECLARE_KERNEL(conv2d_im2col_run, Conv2dRunFn);
PVE_DECLARE_KERNEL(conv2d_pointwise_workspace, Conv2dWorkspaceFn);
PVE_DECLARE_KERNEL(conv2d_pointwise_run, Conv2dRunFn);
PVE_DECLARE_KERNEL(conv2d_pointwise_pack, Conv2dPackFn);
PVE_DECLARE_KERNEL(conv2d_depthwise_workspace, Conv2dWorkspaceFn);
PVE_DECLARE_KERNEL(conv2d_depthwise_run, Conv2dRunFn);
PVE_DECLARE_KERNEL(conv2d_winograd_workspace, Conv2dWorkspaceFn);
PVE_DECLARE_KERNEL(conv2d_winograd_run, Conv2dRunFn);
PVE_DECLARE_KERNEL(conv2d_winograd_pack, Conv2dPackFn);
PVE_DECLARE_KERNEL(conv2d_winograd_f2_workspace, Conv2dWorkspaceFn);
PVE_DECLARE_KERNEL(conv2d_winograd_f2_run, Conv2dRunFn);
PVE_DECLARE_KERNEL(conv2d_winograd_f2_pack, Conv2dPackFn);
PVE_DECLARE_KERNEL(conv2d_direct_workspace, Conv2dWorkspaceFn);
PVE_DECLARE_KERNEL(conv2d_direct_run, Conv2dRunFn);
PVE_DECLARE_KERNEL(conv2d_phase_workspace, Conv2dWorkspaceFn);
PVE_DECLARE_KERNEL(conv2d_phase_run, Conv2dRunFn);
PVE_DECLARE_KERNEL(conv2d_phase_pack, Conv2dPackFn);
PVE_DECLARE_KERNEL(conv2d_stem_workspace, Conv2dWorkspaceFn);
PVE_DECLARE_KERNEL(conv2d_stem_run, Conv2dRunFn);
PVE_DECLARE_KERNEL(conv2d_stem_pack, Conv2dPackFn);
PVE_DECLARE_KERNEL(conv2d_winograd_s2_workspace, Conv2dWorkspaceFn);
PVE_DECLARE_KERNEL(conv2d_winograd_s2_run, Conv2dRunFn);
PVE_DECLARE_KERNEL(conv2d_winograd_s2_pack, Conv2dPackFn);

}  // namespace pve
