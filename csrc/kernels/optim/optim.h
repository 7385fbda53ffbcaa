// Fused optimizer update kernels: one streaming pass per step that reads the
// parameter, its gradient and the rule's state, and writes parameter and state.
//
// Every kernel works on `n` contiguous floats: a whole parameter arena (one
// call per parameter group) or one tensor. Scalars that depend on the step
// count (bias corrections, step sizes) are computed once per group in Python,
// in double precision as torch does, and arrive here already cast to float.
// The arithmetic of each rule follows torch 2.13's `_single_tensor_<rule>`
// operation by operation (see shared/research/optim_spec.md).
#pragma once

#include <cstdint>

#include "core/dispatch.h"

namespace pve {

// ---------------------------------------------------------------- SGD
struct SgdArgs {
  float lr;            // θ ← θ − lr·g
  float momentum;      // μ; buf unused when 0
  float one_minus_dampening;
  float weight_decay;  // L2: g ← g + λθ
  bool nesterov;
  bool maximize;
  bool first_step;     // buf ← g (no dampening) instead of μ·buf + (1−τ)·g
};
using SgdFn = void (*)(float* param, const float* grad, float* momentum_buffer, int64_t n,
                       const SgdArgs& a, int num_threads);

// ---------------------------------------------------------------- Adam / AdamW
struct AdamArgs {
  float lerp_weight;      // 1 − β1 (exp_avg.lerp_(g, 1 − β1))
  float beta2;
  float one_minus_beta2;
  float weight_decay;     // L2 when !decoupled
  float decay_factor;     // 1 − lr·λ when decoupled
  float neg_step_size;    // −lr / (1 − β1^t)
  float bias_correction2_sqrt;
  float eps;
  bool maximize;
  bool decoupled;
  bool amsgrad;           // max_exp_avg_sq must then be non-null
};
using AdamFn = void (*)(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                        float* max_exp_avg_sq, int64_t n, const AdamArgs& a, int num_threads);

// ---------------------------------------------------------------- Adamax
struct AdamaxArgs {
  float lerp_weight, beta2, eps, weight_decay;
  float neg_clr;  // −lr / (1 − β1^t)
  bool maximize;
};
using AdamaxFn = void (*)(float* param, const float* grad, float* exp_avg, float* exp_inf,
                          int64_t n, const AdamaxArgs& a, int num_threads);

// ---------------------------------------------------------------- NAdam
struct NadamArgs {
  float lerp_weight, beta2, one_minus_beta2, weight_decay, decay_factor;
  float bias_correction2;
  float eps;
  float grad_coef;     // −lr(1 − μ_t)/(1 − Π_t)
  float exp_avg_coef;  // −lr·μ_{t+1}/(1 − Π_t·μ_{t+1})
  bool maximize, decoupled;
};
using NadamFn = void (*)(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                         int64_t n, const NadamArgs& a, int num_threads);

// ---------------------------------------------------------------- RAdam
struct RadamArgs {
  float lerp_weight, beta2, one_minus_beta2, weight_decay, decay_factor;
  float bias_correction1;
  float lr;
  float bias_correction2_sqrt;
  float eps;
  float rect;      // r, used when rectified
  bool rectified;  // ρ_t > 5
  bool maximize, decoupled;
};
using RadamFn = void (*)(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                         int64_t n, const RadamArgs& a, int num_threads);

// ---------------------------------------------------------------- RMSprop
struct RmspropArgs {
  float alpha, one_minus_alpha, eps, weight_decay, momentum;
  float neg_lr;
  bool centered, maximize;
};
using RmspropFn = void (*)(float* param, const float* grad, float* square_avg, float* grad_avg,
                           float* momentum_buffer, int64_t n, const RmspropArgs& a,
                           int num_threads);

// ---------------------------------------------------------------- Adagrad
struct AdagradArgs {
  float neg_clr;  // −lr / (1 + (t − 1)·lr_decay)
  float eps, weight_decay;
  bool maximize;
};
using AdagradFn = void (*)(float* param, const float* grad, float* sum, int64_t n,
                           const AdagradArgs& a, int num_threads);

// ---------------------------------------------------------------- Adadelta
struct AdadeltaArgs {
  float rho, one_minus_rho, eps, weight_decay;
  float neg_lr;
  bool maximize;
};
using AdadeltaFn = void (*)(float* param, const float* grad, float* square_avg, float* acc_delta,
                            int64_t n, const AdadeltaArgs& a, int num_threads);

// ---------------------------------------------------------------- Rprop
struct RpropArgs {
  float etaminus, etaplus;            // step-size factors (as float32, as torch compares them)
  float step_size_min, step_size_max;
  bool maximize;
};
using RpropFn = void (*)(float* param, const float* grad, float* prev, float* step_size,
                         int64_t n, const RpropArgs& a, int num_threads);

// ---------------------------------------------------------------- ASGD
struct AsgdArgs {
  float weight_decay;
  float decay;    // 1 − lambd·η (η: the step's stored eta)
  float neg_eta;  // −η
  float mu;       // the step's stored mu
  bool average;   // μ ≠ 1: ax ← ax + (θ − ax)·μ; else ax ← θ
  bool maximize;
};
using AsgdFn = void (*)(float* param, const float* grad, float* ax, int64_t n, const AsgdArgs& a,
                        int num_threads);

// ---------------------------------------------------------------- Adafactor
// One tensor per call. Factored (rows > 0): the tensor is (batch, rows, cols),
// row_var (batch, rows) and col_var (batch, cols); else variance has n floats.
struct AdafactorArgs {
  int64_t batch, rows, cols;
  float lerp_weight;  // 1 − β2ₜ = t^beta2_decay, the moments' lerp weight
  float eps1;         // clamp of mean(row_var)
  float eps1_sq;      // clamp of the variance estimate
  float decay;        // 1 − lr·λ, applied when decay_on
  bool decay_on, maximize;
  double eps2, rho, d;  // α = max(eps2, RMS(θ))·rho; clipping threshold d
};
using AdafactorFn = void (*)(float* param, const float* grad, float* row_var, float* col_var,
                             float* variance, int64_t n, const AdafactorArgs& a, int num_threads);

// ---------------------------------------------------------------- Lookahead
// slow ← slow + α·(fast − slow); fast ← slow.
using LookaheadSyncFn = void (*)(float* fast, float* slow, int64_t n, float alpha,
                                 int num_threads);

// ---------------------------------------------------------------- gradient clipping
// Σ|g|^p for p = 1, 2 or any other finite p (in double), or max|g| for p = inf
// (kind 0: p-sum, kind 1: max). NaN anywhere gives NaN.
using GradNormPartFn = double (*)(const float* grad, int64_t n, double p, int kind,
                                  int num_threads);
// g ← g·scale.
using ScaleFn = void (*)(float* grad, int64_t n, float scale, int num_threads);
// g ← clamp(g, −c, c), NaN kept.
using ClampFn = void (*)(float* grad, int64_t n, float clip_value, int num_threads);

PVE_DECLARE_KERNEL(optim_sgd, SgdFn);
PVE_DECLARE_KERNEL(optim_adam, AdamFn);
PVE_DECLARE_KERNEL(optim_adamax, AdamaxFn);
PVE_DECLARE_KERNEL(optim_nadam, NadamFn);
PVE_DECLARE_KERNEL(optim_radam, RadamFn);
PVE_DECLARE_KERNEL(optim_rmsprop, RmspropFn);
PVE_DECLARE_KERNEL(optim_adagrad, AdagradFn);
PVE_DECLARE_KERNEL(optim_adadelta, AdadeltaFn);
PVE_DECLARE_KERNEL(optim_rprop, RpropFn);
PVE_DECLARE_KERNEL(optim_asgd, AsgdFn);
PVE_DECLARE_KERNEL(optim_adafactor, AdafactorFn);
PVE_DECLARE_KERNEL(optim_lookahead_sync, LookaheadSyncFn);
PVE_DECLARE_KERNEL(grad_norm_part, GradNormPartFn);
PVE_DECLARE_KERNEL(grad_scale, ScaleFn);
PVE_DECLARE_KERNEL(grad_clamp, ClampFn);

}  // namespace pve
