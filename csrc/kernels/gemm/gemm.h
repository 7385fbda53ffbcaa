// Single-precision GEMM, the engine under Linear and convolution.
//
//   C = act(alpha * op(A) @ op(B) + beta * C + bias)
//
// op(A) is M x K (A is stored K x M when trans_a), op(B) is K x N (N x K when
// trans_b); all matrices row-major with leading dimensions lda/ldb/ldc.
// When beta == 0, C is only written, never read (NaN in C does not leak).
// When k == 0 or alpha == 0, A and B are not read (as in BLAS).
// The epilogue (bias per row or per column, then ReLU, optionally capped:
// ReLU6 is relu with relu_max = 6) is applied to each
// C tile while it is still in registers/cache; convolution reuses it.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/dispatch.h"

namespace pve {

enum class BiasAxis : int { none = 0, per_row = 1, per_col = 2 };

struct GemmEpilogue {
  const float* bias = nullptr;  // length M (per_row) or N (per_col)
  BiasAxis bias_axis = BiasAxis::none;
  bool relu = false;
  float relu_max = INFINITY;  // with relu: clamp to [0, relu_max]; NaN stays NaN
};

using GemmF32Fn = void (*)(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                           float alpha, const float* a, int64_t lda, const float* b,
                           int64_t ldb, float beta, float* c, int64_t ldc,
                           const GemmEpilogue& epilogue, int num_threads);

PVE_DECLARE_KERNEL(gemm_f32, GemmF32Fn);

}  // namespace pve
