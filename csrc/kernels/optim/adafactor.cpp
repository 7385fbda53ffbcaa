// Adafactor (torch.optim.Adafactor) for one parameter tensor, in three passes.
//
// Every element's update depends on whole-tensor reductions, so one pass
// cannot do it: ‖θ‖ (the relative step size α), the row and column sums of
// g² (the factored second moment), and ‖u‖ (the clipping denominator), which
// needs the finished variance estimate.
//   1. ‖θ‖² and the row / column sums of g² (factored), or the variance's
//      lerp towards g² (not factored);
//   2. u = g / sqrt(max(v̂, eps1²)) into a buffer (torch's `update`), and ‖u‖²;
//   3. θ ← θ·(1 − lr·λ) + (−α/denom)·u.
// Sums are taken in double, each thread over its own contiguous range and the
// partials added in thread order (deterministic for a given thread count);
// the per-element float32 arithmetic is torch's, operation by operation.
#include <cmath>
#include <memory>
#include <vector>

#include "kernels/optim/common.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {
using namespace optim_detail;

// torch.clamp(x, min=lo): NaN stays NaN.
inline float clamp_min(float x, float lo) { return x < lo ? lo : x; }

// m.lerp_(target, w) as ATen's lerp: one rounding of m + w·(t − m) (|w| <
// 0.5) or t + (w − 1)·(t − m), the product of two floats exact in double.
inline float lerp(float m, float target, float w) {
  const float diff = target - m;
  return std::fabs(w) < 0.5f
             ? static_cast<float>(static_cast<double>(m) + static_cast<double>(w) * diff)
             : static_cast<float>(static_cast<double>(target) +
                                  static_cast<double>(w - 1.0f) * diff);
}

// Static split of [0, n) for thread `id` of `nt`.
inline void thread_range(int64_t n, int id, int nt, int64_t* begin, int64_t* end) {
  *begin = n * id / nt;
  *end = n * (id + 1) / nt;
}

inline int threads_for(int64_t n, int num_threads) {
  return static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(num_threads, n / kMinPerThread)));
}

// Σ x² in double over [begin, end).
inline double sum_squares(const float* x, int64_t begin, int64_t end) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = begin; i < end; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

// Adds the per-thread partials in thread order.
inline double ordered_total(const std::vector<double>& parts) {
  double s = 0.0;
  for (double p : parts) s += p;
  return s;
}

// Elements per chunk of pass 2: the factored estimate's operands are spread
// into per-element buffers of this size (on the stack), then the arithmetic
// runs in vectors.
constexpr int64_t kChunk = 512;

// u = g / sqrt(max(v̂, eps1²)) of elements [begin, end) of the tensor, written
// to out[begin, end). v̂ is the variance (not factored) or, factored, row_var
// ⊗ col_var divided by max(mean(row_var), eps1), as torch forms it: one float
// product and one division per element.
struct UpdateWriter {
  const float* grad;
  const float* row_var;   // (batch, rows), factored
  const float* col_var;   // (batch, cols), factored
  const float* divisor;   // (batch), factored
  const float* variance;  // (n), not factored
  int64_t rows, cols;     // factored: the tensor is (batch, rows, cols)
  float eps1_sq;
  bool factored, maximize;

  void write(int64_t begin, int64_t end, float* out) const {
    const Vec eps = Vec::set1(eps1_sq), one = Vec::set1(1.0f);
    alignas(64) float row_buf[kChunk], col_buf[kChunk], div_buf[kChunk];
    const int64_t per = rows * cols;
    // Position of `begin` in (matrix, row, column); advanced element by element.
    int64_t b = factored ? begin / per : 0, r = factored ? begin % per / cols : 0,
            c = factored ? begin % cols : 0;
    for (int64_t c0 = begin; c0 < end; c0 += kChunk) {
      const int64_t len = std::min(kChunk, end - c0);
      if (factored) {
        for (int64_t k = 0; k < len; ++k) {
          row_buf[k] = row_var[b * rows + r];
          col_buf[k] = col_var[b * cols + c];
          div_buf[k] = divisor[b];
          if (++c == cols) {
            c = 0;
            if (++r == rows) {
              r = 0;
              ++b;
            }
          }
        }
      }
      vec_range(0, len, [&](int64_t k, int w) {
        const Vec v = factored ? ld(row_buf + k, w) * ld(col_buf + k, w) / ld(div_buf + k, w)
                               : ld(variance + c0 + k, w);
        Vec g = ld(grad + c0 + k, w);
        if (maximize) g = -g;
        // rsqrt as 1/sqrt (two roundings, as ATen's CPU kernel); max keeps NaN.
        st(one / sqrt(max(eps, v)) * g, out + c0 + k, w);
      });
    }
  }
};

// Row sums of g² of `rows` rows of `cols` floats, in double, written to
// row_sum; each row's squares also added to col_sum (cols entries).
void add_row_and_column_sums(const float* g, int64_t rows, int64_t cols, double* row_sum,
                             double* col_sum) {
  for (int64_t r = 0; r < rows; ++r, g += cols) {
    double rs = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
      const double sq = static_cast<double>(g[c]) * g[c];
      rs += sq;
      col_sum[c] += sq;
    }
    row_sum[r] = rs;
  }
}

// The factored moments of one matrix from g²'s row and column sums: the mean
// of g² along each axis (‖·‖² / size, the norm rounded to float first, as
// torch squares a float norm) lerped in; returns mean(row_var) clamped to
// eps1, the divisor of the variance estimate.
float finish_moments(const double* row_sum, const double* col_sum, float* row_var,
                     float* col_var, int64_t rows, int64_t cols, const AdafactorArgs& a) {
  double mean = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float norm = static_cast<float>(std::sqrt(row_sum[r]));
    row_var[r] = lerp(row_var[r], norm * norm / static_cast<float>(cols), a.lerp_weight);
    mean += row_var[r];
  }
  for (int64_t c = 0; c < cols; ++c) {
    const float norm = static_cast<float>(std::sqrt(col_sum[c]));
    col_var[c] = lerp(col_var[c], norm * norm / static_cast<float>(rows), a.lerp_weight);
  }
  return clamp_min(static_cast<float>(mean / static_cast<double>(rows)), a.eps1);
}

void adafactor_impl(float* param, const float* grad, float* row_var, float* col_var,
                    float* variance, int64_t n, const AdafactorArgs& a, int num_threads) {
  if (n == 0) return;
  const int threads = threads_for(n, num_threads);
  const bool factored = a.rows > 0;
  const int64_t batch = a.batch, rows = a.rows, cols = a.cols;

  // Pass 1: ‖θ‖², and the factored moments or the variance's lerp.
  std::vector<double> parts(threads, 0.0);
  std::vector<float> divisor(factored ? batch : 0);
  // Many small matrices (a conv weight's kh x kw): whole matrices per thread.
  // A few big ones (a Linear weight): rows split across threads, each with
  // its own column sums, added in thread order afterwards.
  const bool split_rows = factored && batch < threads;
  std::vector<double> row_sum(split_rows ? batch * rows : 0);
  std::vector<double> col_parts(split_rows ? threads * batch * cols : 0, 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    int64_t begin, end;
    thread_range(n, id, nt, &begin, &end);
    parts[id] = sum_squares(param, begin, end);
    if (!factored) {
      for (int64_t i = begin; i < end; ++i) {
        const float g = grad[i];
        variance[i] = lerp(variance[i], g * g, a.lerp_weight);
      }
    } else if (!split_rows) {
      int64_t b0, b1;
      thread_range(batch, id, nt, &b0, &b1);
      std::vector<double> rs(rows), cs(cols);
      for (int64_t b = b0; b < b1; ++b) {
        std::fill(cs.begin(), cs.end(), 0.0);
        add_row_and_column_sums(grad + b * rows * cols, rows, cols, rs.data(), cs.data());
        divisor[b] = finish_moments(rs.data(), cs.data(), row_var + b * rows, col_var + b * cols,
                                    rows, cols, a);
      }
    } else {
      int64_t r0, r1;
      thread_range(batch * rows, id, nt, &r0, &r1);
      double* cs = col_parts.data() + id * batch * cols;
      for (int64_t br = r0; br < r1; ++br)
        add_row_and_column_sums(grad + br * cols, 1, cols, &row_sum[br], cs + (br / rows) * cols);
    }
  }
  if (split_rows) {
    std::vector<double> col_sum(batch * cols, 0.0);
    for (int t = 0; t < threads; ++t)
      for (int64_t j = 0; j < batch * cols; ++j) col_sum[j] += col_parts[t * batch * cols + j];
    for (int64_t b = 0; b < batch; ++b)
      divisor[b] = finish_moments(row_sum.data() + b * rows, col_sum.data() + b * cols,
                                  row_var + b * rows, col_var + b * cols, rows, cols, a);
  }
  const double param_norm = static_cast<float>(std::sqrt(ordered_total(parts)));
  const double alpha = std::max(a.eps2, param_norm / std::sqrt(static_cast<double>(n))) * a.rho;

  const UpdateWriter writer{grad, row_var, col_var, divisor.data(), variance, rows, cols,
                            a.eps1_sq, factored, a.maximize};

  // Pass 2: u into a buffer of its own (as torch's `update`), and ‖u‖² in
  // double like the other sums.
  std::unique_ptr<float[]> update(new float[n]);
  float* u = update.get();
#pragma omp parallel num_threads(threads)
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    int64_t begin, end;
    thread_range(n, id, nt, &begin, &end);
    double s = 0.0;
    for (int64_t c0 = begin; c0 < end; c0 += 8 * kChunk) {  // summed while in L1
      const int64_t c1 = std::min(end, c0 + 8 * kChunk);
      writer.write(c0, c1, u);
      s += sum_squares(u, c0, c1);
    }
    parts[id] = s;
  }
  const double update_norm = static_cast<float>(std::sqrt(ordered_total(parts)));
  const double denom = std::max(1.0, update_norm / (std::sqrt(static_cast<double>(n)) * a.d));
  const Vec coeff = Vec::set1(static_cast<float>(-alpha / denom));

  // Pass 3: decoupled weight decay, then θ + coeff·u in one rounding (an FMA, as torch).
  const Vec decay = Vec::set1(a.decay);
  const bool decay_on = a.decay_on;
  parallel_vec_for(n, threads, [=](int64_t i, int w) {
    Vec p = ld(param + i, w);
    if (decay_on) p = p * decay;
    st(fmadd_exact(coeff, ld(u + i, w), p), param + i, w);
  });
}

}  // namespace

PVE_REGISTER_KERNELS { register_kernel(optim_adafactor, &adafactor_impl); }

}  // namespace PVE_KERNEL_NS
}  // namespace pve
