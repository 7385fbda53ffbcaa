// Element-wise activations, PReLU and softmax / log-softmax, forward and backward.
//
// Element-wise ops work on flat float32 buffers of n elements; y may alias x
// and gx may alias gy (in-place ReLU etc.). Backward takes the array named
// by act_backward_uses() for that op: the forward *output* for relu, sigmoid
// and tanh (so in-place forms still differentiate), the *input* otherwise.
// Softmax views the tensor as (outer, dim, inner) and normalises over dim.
#pragma once

#include <cstdint>

#include "core/dispatch.h"

namespace pve {

enum class Act : int {
  relu = 0,
  relu6 = 1,
  leaky_relu = 2,   // alpha = negative_slope
  sigmoid = 3,
  tanh = 4,
  gelu = 5,         // 0.5 x (1 + erf(x / sqrt 2))
  gelu_tanh = 6,    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  silu = 7,
  hardswish = 8,
  hardsigmoid = 9,
  identity = 10,    // y = x: add_act_forward as a plain threaded sum
};
constexpr int kNumActs = 11;

// True when backward wants the forward output rather than the input.
inline bool act_backward_uses_output(Act op) {
  return op == Act::relu || op == Act::sigmoid || op == Act::tanh;
}

using ActForwardFn = void (*)(int op, const float* x, float* y, int64_t n, float alpha,
                              int num_threads);
// y = act(a + b); y may alias a or b.
using AddActForwardFn = void (*)(int op, const float* a, const float* b, float* y, int64_t n,
                                 float alpha, int num_threads);
// gx = gy * act'(.) where `saved` is the input or output (see above).
using ActBackwardFn = void (*)(int op, const float* saved, const float* gy, float* gx,
                               int64_t n, float alpha, int num_threads);

// PReLU over (outer, channels, inner) with one slope per channel.
using PreluForwardFn = void (*)(const float* x, const float* weight, float* y, int64_t outer,
                                int64_t channels, int64_t inner, int num_threads);
// gx (may be null) and gweight (channels floats, overwritten; may be null).
using PreluBackwardFn = void (*)(const float* x, const float* weight, const float* gy,
                                 float* gx, float* gweight, int64_t outer, int64_t channels,
                                 int64_t inner, int num_threads);

// y = softmax or log_softmax of x over the middle axis of (outer, dim, inner).
using SoftmaxForwardFn = void (*)(const float* x, float* y, int64_t outer, int64_t dim,
                                  int64_t inner, bool log, int num_threads);
// From the forward output y: softmax gx = y (gy - sum(gy y)),
// log_softmax gx = gy - exp(y) sum(gy).
using SoftmaxBackwardFn = void (*)(const float* y, const float* gy, float* gx, int64_t outer,
                                   int64_t dim, int64_t inner, bool log, int num_threads);

PVE_DECLARE_KERNEL(act_forward, ActForwardFn);
PVE_DECLARE_KERNEL(add_act_forward, AddActForwardFn);
PVE_DECLARE_KERNEL(act_backward, ActBackwardFn);
PVE_DECLARE_KERNEL(prelu_forward, PreluForwardFn);
PVE_DECLARE_KERNEL(prelu_backward, PreluBackwardFn);
PVE_DECLARE_KERNEL(softmax_forward, SoftmaxForwardFn);
PVE_DECLARE_KERNEL(softmax_backward, SoftmaxBackwardFn);

}  // namespace pve
