// Cross-entropy fused as log-softmax + NLL over rows of logits (rows, classes).
//
// Forward, per row i (w_c = weight[c] or 1; rows whose target == ignore_index
// give zeros):
//   lse[i]    = log sum_c exp(x_ic)                           (saved for backward)
//   nll[i]    = -w_y logp_iy               class-index targets
//             = -sum_c w_c t_ic logp_ic    probability targets
//   smooth[i] = -sum_c w_c logp_ic          (the label-smoothing term)
// Python combines nll/smooth with label_smoothing and the reduction. Returns
// the number of class-index targets outside [0, classes) (and not ignored);
// such rows are skipped, never read out of bounds.
//
// Backward: grad_ic = coef_nll[i] * d(nll_i)/dx_ic + coef_smooth[i] * d(smooth_i)/dx_ic
//   d nll/dx    = w_y (p_c - [c == y])   or  (sum_k w_k t_k) p_c - w_c t_c
//   d smooth/dx = (sum_k w_k) p_c - w_c,  with p = exp(x - lse).
#pragma once

#include <cstdint>

#include "core/dispatch.h"

namespace pve {

// Exactly one of target (int64, rows) and target_probs (float, rows x classes) is set.
using CrossEntropyForwardFn = int64_t (*)(const float* logits, int64_t rows, int64_t classes,
                                          const int64_t* target, const float* target_probs,
                                          const float* weight, int64_t ignore_index, float* lse,
                                          float* nll, float* smooth, int num_threads);
using CrossEntropyBackwardFn = void (*)(const float* logits, const float* lse, int64_t rows,
                                        int64_t classes, const int64_t* target,
                                        const float* target_probs, const float* weight,
                                        int64_t ignore_index, const float* coef_nll,
                                        const float* coef_smooth, float* grad, int num_threads);

PVE_DECLARE_KERNEL(cross_entropy_forward, CrossEntropyForwardFn);
PVE_DECLARE_KERNEL(cross_entropy_backward, CrossEntropyBackwardFn);

}  // namespace pve
