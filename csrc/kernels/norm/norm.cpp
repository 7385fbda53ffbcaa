// Normalisation kernels (see norm.h), written once against Vec.
#include "kernels/norm/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "simd/vec_math.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int W = Vec::kWidth;
constexpr int64_t kStreamBytes = 4 << 20;


inline int work_threads(int64_t work, int threads) { return work < (1 << 15) ? 1 : threads; }

// Sum of (x - k) and (x - k)^2 over one contiguous row, in float lanes.
inline void shifted_sums(const float* x, int64_t len, float k, double* s1, double* s2) {
  const Vec vk = Vec::set1(k);
  Vec a1 = Vec::zero(), a2 = Vec::zero(), b1 = Vec::zero(), b2 = Vec::zero();
  int64_t i = 0;
  for (; i + 2 * W <= len; i += 2 * W) {
    Vec d0 = Vec::load(x + i) - vk, d1 = Vec::load(x + i + W) - vk;
    a1 = a1 + d0;
    a2 = fmadd(d0, d0, a2);
    b1 = b1 + d1;
    b2 = fmadd(d1, d1, b2);
  }
  for (; i < len; i += W) {
    const int n = static_cast<int>(std::min<int64_t>(W, len - i));
    // Zero the lanes past the row so they add nothing.
    float tmp[W];
    (Vec::load_partial(x + i, n) - vk).store(tmp);
    for (int j = n; j < W; ++j) tmp[j] = 0.0f;
    const Vec d = Vec::load(tmp);
    a1 = a1 + d;
    a2 = fmadd(d, d, a2);
  }
  *s1 += reduce_add(a1 + b1);
  *s2 += reduce_add(a2 + b2);
}

// Mean and biased variance of one channel (n rows of l floats, `stride` apart),
// shifted by its first element: sums of squares stay small relative to the
// mean, so one pass is as accurate as two.
inline void channel_moments(const float* x0, int64_t n, int64_t l, int64_t stride, float* mean,
                            float* var) {
  const float k = (n > 0 && l > 0) ? x0[0] : 0.0f;
  double s1 = 0.0, s2 = 0.0;
  for (int64_t b = 0; b < n; ++b) shifted_sums(x0 + b * stride, l, k, &s1, &s2);
  const double m = static_cast<double>(n * l);
  const double mu = s1 / m;
  *mean = static_cast<float>(k + mu);
  *var = static_cast<float>(std::max(s2 / m - mu * mu, 0.0));
  if (std::isnan(s2)) *var = static_cast<float>(s2);
}

void channel_stats_impl(const float* x, int64_t n, int64_t c, int64_t l, float* mean, float* var,
                        int threads) {
  const int t = work_threads(n * c * l, threads);
#pragma omp parallel for num_threads(t) schedule(dynamic, 1)
  for (int64_t ch = 0; ch < c; ++ch) channel_moments(x + ch * l, n, l, c * l, &mean[ch], &var[ch]);
}

inline void fence() {
#if defined(__AVX512F__) || defined(__AVX2__)
  _mm_sfence();
#endif
}

// out = a*u + b*v + d (+ReLU) over one row of l floats; v may be null. With
// `stream`, the 64-byte-aligned part is written with non-temporal stores.
inline void affine_row(const float* up, const float* vp, float* op, int64_t l, Vec va, Vec vb,
                       Vec vd, bool relu, bool stream, const float* pf0 = nullptr,
                       const float* pf1 = nullptr) {
  const Vec zero = Vec::zero();
  auto f = [&](int64_t i, int k) {
    // Fused BatchNorm: fetch the next channel's rows while this one is written,
    // so DRAM reads overlap the stores instead of waiting for the next pass.
    if (pf0) __builtin_prefetch(pf0 + i, 0, 3);
    if (pf1) __builtin_prefetch(pf1 + i, 0, 3);
    Vec r = fmadd(va, Vec::load_partial(up + i, k), vd);
    if (vp) r = fmadd(vb, Vec::load_partial(vp + i, k), r);
    return relu ? max(zero, r) : r;
  };
  int64_t i = 0;
  if (stream) {
    while (i < l && reinterpret_cast<uintptr_t>(op + i) % (W * sizeof(float)) != 0) {
      f(i, 1).store_partial(op + i, 1);
      ++i;
    }
    for (; i + W <= l; i += W) f(i, W).stream(op + i);
  }
  for (; i + W <= l; i += W) f(i, W).store(op + i);
  if (i < l) f(i, static_cast<int>(l - i)).store_partial(op + i, static_cast<int>(l - i));
}

void channel_affine_impl(const float* u, const float* v, float* out, int64_t n, int64_t c,
                         int64_t l, const float* a, const float* b, const float* d, bool relu,
                         int threads) {
  const int64_t planes = n * c;
  const int t = work_threads(planes * l, threads);
  const bool stream = out != u && out != v &&
                      planes * l * static_cast<int64_t>(sizeof(float)) > kStreamBytes;
#pragma omp parallel num_threads(t)
  {
#pragma omp for schedule(dynamic, 4)
    for (int64_t p = 0; p < planes; ++p) {
      const int64_t ch = p % c;
      affine_row(u + p * l, v ? v + p * l : nullptr, out + p * l, l, Vec::set1(a[ch]),
                 Vec::set1(v ? b[ch] : 0.0f), Vec::set1(d ? d[ch] : 0.0f), relu, stream);
    }
    fence();
  }
}

// Adds sum gy and sum gy * (x - k) over one row of l floats to s1, s2.
inline void grad_row_sums(const float* xp, const float* gp, int64_t l, Vec k, double* s1,
                          double* s2) {
  Vec a1 = Vec::zero(), a2 = Vec::zero(), b1 = Vec::zero(), b2 = Vec::zero();
  int64_t i = 0;
  for (; i + 2 * W <= l; i += 2 * W) {
    Vec g0 = Vec::load(gp + i), g1 = Vec::load(gp + i + W);
    a1 = a1 + g0;
    b1 = b1 + g1;
    a2 = fmadd(g0, Vec::load(xp + i) - k, a2);
    b2 = fmadd(g1, Vec::load(xp + i + W) - k, b2);
  }
  for (; i < l; i += W) {
    const int m = static_cast<int>(std::min<int64_t>(W, l - i));
    Vec g = Vec::load_partial(gp + i, m);  // 0 in masked lanes
    a1 = a1 + g;
    a2 = fmadd(g, Vec::load_partial(xp + i, m) - k, a2);
  }
  *s1 += reduce_add(a1 + b1);
  *s2 += reduce_add(a2 + b2);
}

void channel_grad_sums_impl(const float* x, const float* gy, int64_t n, int64_t c, int64_t l,
                            const float* center, float* sum_gy, float* sum_gy_xc, int threads) {
  const int t = work_threads(n * c * l, threads);
#pragma omp parallel for num_threads(t) schedule(dynamic, 1)
  for (int64_t ch = 0; ch < c; ++ch) {
    const Vec k = Vec::set1(center[ch]);
    double s1 = 0.0, s2 = 0.0;
    for (int64_t b = 0; b < n; ++b) {
      const int64_t off = (b * c + ch) * l;
      grad_row_sums(x + off, gy + off, l, k, &s1, &s2);
    }
    sum_gy[ch] = static_cast<float>(s1);
    sum_gy_xc[ch] = static_cast<float>(s2);
  }
}

// ------------------------------------------------- BatchNorm training, fused
// One channel at a time, both passes back to back: its n rows (n * l floats,
// 200 KB for 16x64x56x56) are read from DRAM by the first pass and are still
// in L2 for the second, so each direction reads its inputs from memory once.
// The per-channel coefficients are computed in double exactly as
// nn/_f_norm.py computed them for the unfused kernels.

// Fused only with enough channels to share among the threads; otherwise the
// separate kernels, which also split the rows of a channel.
inline bool use_fused(int64_t c, int t) { return c >= 4 * static_cast<int64_t>(t); }

void batch_norm_train_forward_impl(const float* x, float* y, int64_t n, int64_t c, int64_t l,
                                   const float* w, const float* b, double eps, bool relu,
                                   float* mean, float* var, int threads) {
  const int t = work_threads(n * c * l, threads);
  auto coefficients = [&](int64_t ch, float* scale, float* shift) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
    const double sc = invstd * (w ? static_cast<double>(w[ch]) : 1.0);
    *scale = static_cast<float>(sc);
    *shift = static_cast<float>(-static_cast<double>(mean[ch]) * sc + (b ? static_cast<double>(b[ch]) : 0.0));
  };
  if (!use_fused(c, t)) {
    channel_stats_impl(x, n, c, l, mean, var, t);
    std::vector<float> scale(c), shift(c);
    for (int64_t ch = 0; ch < c; ++ch) coefficients(ch, &scale[ch], &shift[ch]);
    channel_affine_impl(x, nullptr, y, n, c, l, scale.data(), nullptr, shift.data(), relu, t);
    return;
  }
  const bool stream = n * c * l * static_cast<int64_t>(sizeof(float)) > kStreamBytes;
#pragma omp parallel num_threads(t)
  {
#pragma omp for schedule(static)
    for (int64_t ch = 0; ch < c; ++ch) {
      channel_moments(x + ch * l, n, l, c * l, &mean[ch], &var[ch]);
      float scale, shift;
      coefficients(ch, &scale, &shift);
      const Vec va = Vec::set1(scale), vd = Vec::set1(shift);
      // Static schedule: this thread's next channel is ch + 1.
      const bool next = ch + 1 < c;
      for (int64_t bi = 0; bi < n; ++bi) {
        const int64_t off = (bi * c + ch) * l;
        affine_row(x + off, nullptr, y + off, l, va, Vec::zero(), vd, relu, stream,
                   next ? x + off + l : nullptr);
      }
    }
    fence();
  }
}

void batch_norm_train_backward_impl(const float* x, const float* gy, float* gx, int64_t n,
                                    int64_t c, int64_t l, const float* mean, const float* var,
                                    const float* w, double eps, float* sum_gy, float* sum_gy_xc,
                                    int threads) {
  const int t = work_threads(n * c * l, threads);
  const double m = static_cast<double>(n * l);
  // gx = k*gy + bcoef*x + dcoef, from the channel's (float-rounded) sums.
  auto coefficients = [&](int64_t ch, float* k, float* bcoef, float* dcoef) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
    const double kk = (w ? static_cast<double>(w[ch]) : 1.0) * invstd;
    const double s1 = sum_gy[ch], s2 = sum_gy_xc[ch];
    const double bc = -kk * invstd * invstd * s2 / m;
    *k = static_cast<float>(kk);
    *bcoef = static_cast<float>(bc);
    *dcoef = static_cast<float>(-kk * s1 / m - bc * static_cast<double>(mean[ch]));
  };
  if (!use_fused(c, t)) {
    channel_grad_sums_impl(x, gy, n, c, l, mean, sum_gy, sum_gy_xc, t);
    if (!gx) return;
    std::vector<float> k(c), bc(c), dc(c);
    for (int64_t ch = 0; ch < c; ++ch) coefficients(ch, &k[ch], &bc[ch], &dc[ch]);
    channel_affine_impl(gy, x, gx, n, c, l, k.data(), bc.data(), dc.data(), false, t);
    return;
  }
  const bool stream = n * c * l * static_cast<int64_t>(sizeof(float)) > kStreamBytes;
#pragma omp parallel num_threads(t)
  {
#pragma omp for schedule(static)
    for (int64_t ch = 0; ch < c; ++ch) {
      const Vec center = Vec::set1(mean[ch]);
      double s1 = 0.0, s2 = 0.0;
      for (int64_t bi = 0; bi < n; ++bi) {
        const int64_t off = (bi * c + ch) * l;
        grad_row_sums(x + off, gy + off, l, center, &s1, &s2);
      }
      sum_gy[ch] = static_cast<float>(s1);
      sum_gy_xc[ch] = static_cast<float>(s2);
      if (!gx) continue;
      float k, bc, dc;
      coefficients(ch, &k, &bc, &dc);
      const Vec vk = Vec::set1(k), vb = Vec::set1(bc), vd = Vec::set1(dc);
      const bool next = ch + 1 < c;
      for (int64_t bi = 0; bi < n; ++bi) {
        const int64_t off = (bi * c + ch) * l;
        affine_row(gy + off, x + off, gx + off, l, vk, vb, vd, false, stream,
                   next ? gy + off + l : nullptr, next ? x + off + l : nullptr);
      }
    }
    fence();
  }
}

void layer_norm_forward_impl(const float* x, float* y, int64_t rows, int64_t len, const float* w,
                             const float* b, float eps, float* mean, float* rstd, int threads) {
  const int t = work_threads(rows * len, threads);
#pragma omp parallel for num_threads(t) schedule(dynamic, 8)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xp = x + r * len;
    float* yp = y + r * len;
    const float k = len > 0 ? xp[0] : 0.0f;
    double s1 = 0.0, s2 = 0.0;
    shifted_sums(xp, len, k, &s1, &s2);
    const double mu = s1 / len;
    double var = std::max(s2 / len - mu * mu, 0.0);
    if (std::isnan(s2)) var = s2;
    const float m = static_cast<float>(k + mu);
    const float rs = static_cast<float>(1.0 / std::sqrt(var + eps));
    mean[r] = m;
    rstd[r] = rs;
    const Vec vm = Vec::set1(m), vr = Vec::set1(rs);
    for (int64_t i = 0; i < len; i += W) {
      const int n = static_cast<int>(std::min<int64_t>(W, len - i));
      Vec h = (Vec::load_partial(xp + i, n) - vm) * vr;
      if (w) h = h * Vec::load_partial(w + i, n);
      if (b) h = h + Vec::load_partial(b + i, n);
      h.store_partial(yp + i, n);
    }
  }
}

void layer_norm_backward_impl(const float* x, const float* gy, int64_t rows, int64_t len,
                              const float* mean, const float* rstd, const float* w, float* gx,
                              float* gw, float* gb, int threads) {
  const int t = work_threads(rows * len, threads);
  // Per-thread partial sums for gw / gb (rows are split across threads).
  std::vector<double> partial(static_cast<size_t>(t) * 2 * len, 0.0);
#pragma omp parallel num_threads(t)
  {
#ifdef _OPENMP
    const int tid = omp_get_thread_num();
#else
    const int tid = 0;
#endif
    double* pw = partial.data() + static_cast<size_t>(tid) * 2 * len;
    double* pb = pw + len;
    std::vector<float> hat(len);
#pragma omp for schedule(dynamic, 8)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xp = x + r * len;
      const float* gp = gy + r * len;
      const float m = mean[r], rs = rstd[r];
      double sum_g = 0.0, sum_gh = 0.0;  // of gy*w and gy*w*xhat
      for (int64_t i = 0; i < len; ++i) {
        const float h = (xp[i] - m) * rs;
        const float gwv = gp[i] * (w ? w[i] : 1.0f);
        hat[i] = h;
        sum_g += gwv;
        sum_gh += gwv * h;
        pw[i] += gp[i] * h;
        pb[i] += gp[i];
      }
      if (gx) {
        const float mg = static_cast<float>(sum_g / len), mgh = static_cast<float>(sum_gh / len);
        float* out = gx + r * len;
        for (int64_t i = 0; i < len; ++i)
          out[i] = rs * (gp[i] * (w ? w[i] : 1.0f) - mg - hat[i] * mgh);
      }
    }
  }
  for (int64_t i = 0; i < len; ++i) {
    double sw = 0.0, sb = 0.0;
    for (int th = 0; th < t; ++th) {
      sw += partial[static_cast<size_t>(th) * 2 * len + i];
      sb += partial[static_cast<size_t>(th) * 2 * len + len + i];
    }
    if (gw) gw[i] = static_cast<float>(sw);
    if (gb) gb[i] = static_cast<float>(sb);
  }
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(channel_stats, &channel_stats_impl);
  register_kernel(channel_affine, &channel_affine_impl);
  register_kernel(channel_grad_sums, &channel_grad_sums_impl);
  register_kernel(batch_norm_train_forward, &batch_norm_train_forward_impl);
  register_kernel(batch_norm_train_backward, &batch_norm_train_backward_impl);
  register_kernel(layer_norm_forward, &layer_norm_forward_impl);
  register_kernel(layer_norm_backward, &layer_norm_backward_impl);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
