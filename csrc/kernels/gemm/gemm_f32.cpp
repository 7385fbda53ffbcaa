// Placeholder GEMM: a cache-friendly loop nest (i, k, j) that the compiler
// vectorizes for each ISA. The packed, register-blocked version replaces it.
#include <algorithm>

#include "kernels/gemm/gemm.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

void gemm_f32_impl(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                   float* c, int64_t ldc, const GemmEpilogue& ep, int num_threads) {
#pragma omp parallel for num_threads(num_threads) schedule(static)
  for (int64_t i = 0; i < m; ++i) {
    float* c_row = c + i * ldc;
    if (beta == 0.0f) {
      for (int64_t j = 0; j < n; ++j) c_row[j] = 0.0f;
    } else if (beta != 1.0f) {
      for (int64_t j = 0; j < n; ++j) c_row[j] *= beta;
    }
    for (int64_t p = 0; p < k; ++p) {
      const float a_ip = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);
      if (trans_b) {
        for (int64_t j = 0; j < n; ++j) c_row[j] += a_ip * b[j * ldb + p];
      } else {
        const float* b_row = b + p * ldb;
        for (int64_t j = 0; j < n; ++j) c_row[j] += a_ip * b_row[j];
      }
    }
    if (ep.bias_axis == BiasAxis::per_row) {
      for (int64_t j = 0; j < n; ++j) c_row[j] += ep.bias[i];
    } else if (ep.bias_axis == BiasAxis::per_col) {
      for (int64_t j = 0; j < n; ++j) c_row[j] += ep.bias[j];
    }
    if (ep.relu) {
      for (int64_t j = 0; j < n; ++j) c_row[j] = std::max(c_row[j], 0.0f);
    }
  }
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(gemm_f32, &gemm_f32_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
