// Normalisation kernels (see norm.h), written once against Vec.
#include "kernels/norm/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "simd/prefetch.h"
#include "simd/vec_math.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int W = Vec::kWidth;
constexpr int64_t kStreamBytes = 4 << 20;


inline int work_threads(int64_t work, int threads) { return work < (1 << 15) ? 1 : threads; }

// Sum of (x - k) and (x - k)^2 over one contiguous row, in float lanes: W
// columns of each 2W into a1/a2, the other W into b1/b2, the tail into a1/a2.
// pair() and tail() let a loop that does other work in between (the fused
// BatchNorm below) accumulate a row exactly as shifted_sums does.
struct MomentSums {
  Vec k, a1 = Vec::zero(), a2 = Vec::zero(), b1 = Vec::zero(), b2 = Vec::zero();
  explicit MomentSums(float shift) : k(Vec::set1(shift)) {}
  void pair(const float* p) {  // columns [0, 2W) at p
    const Vec d0 = Vec::load(p) - k, d1 = Vec::load(p + W) - k;
    a1 = a1 + d0;
    a2 = fmadd(d0, d0, a2);
    b1 = b1 + d1;
    b2 = fmadd(d1, d1, b2);
  }
  void tail(const float* x, int64_t i, int64_t len, double* s1, double* s2) {  // [i, len), then add
    for (; i < len; i += W) {
      const int n = static_cast<int>(std::min<int64_t>(W, len - i));
      // Zero the lanes past the row so they add nothing.
      float tmp[W];
      (Vec::load_partial(x + i, n) - k).store(tmp);
      for (int j = n; j < W; ++j) tmp[j] = 0.0f;
      const Vec d = Vec::load(tmp);
      a1 = a1 + d;
      a2 = fmadd(d, d, a2);
    }
    *s1 += reduce_add(a1 + b1);
    *s2 += reduce_add(a2 + b2);
  }
};

// The gradient through a ReLU that followed y = x·scale + shift, recomputed
// from x with the forward's own coefficients and instruction (affine_row's
// fmadd), so it is exactly the forward's test. ReLU (cap inf): zero where that
// pre-activation z <= 0, NaN passes (torch's threshold_backward); ReLU6 (cap
// 6): g only where 0 < z < cap, NaN dropped (as activation_backward's relu6).
struct ReluGate {
  bool on = false, capped = false;
  Vec scale = Vec::zero(), shift = Vec::zero(), cap = Vec::zero();
  Vec operator()(Vec g, Vec x) const {
    if (!on) return g;
    const Vec z = fmadd(scale, x, shift), zero = Vec::zero();
    return capped ? select(mask_and(cmp_gt(z, zero), cmp_lt(z, cap)), g, zero)
                  : select(cmp_le(z, zero), zero, g);
  }
};

// Sum gy and sum gy * (x - k) over one row, laid out like MomentSums; gy
// through `gate` first.
struct GradSums {
  Vec k, a1 = Vec::zero(), a2 = Vec::zero(), b1 = Vec::zero(), b2 = Vec::zero();
  ReluGate gate;
  explicit GradSums(float center, const ReluGate& relu = ReluGate())
      : k(Vec::set1(center)), gate(relu) {}
  void pair(const float* xp, const float* gp) {
    const Vec x0 = Vec::load(xp), x1 = Vec::load(xp + W);
    const Vec g0 = gate(Vec::load(gp), x0), g1 = gate(Vec::load(gp + W), x1);
    a1 = a1 + g0;
    b1 = b1 + g1;
    a2 = fmadd(g0, x0 - k, a2);
    b2 = fmadd(g1, x1 - k, b2);
  }
  void tail(const float* xp, const float* gp, int64_t i, int64_t l, double* s1, double* s2) {
    for (; i < l; i += W) {
      const int m = static_cast<int>(std::min<int64_t>(W, l - i));
      const Vec x = Vec::load_partial(xp + i, m);
      const Vec g = gate(Vec::load_partial(gp + i, m), x);  // 0 in masked lanes
      a1 = a1 + g;
      a2 = fmadd(g, x - k, a2);
    }
    *s1 += reduce_add(a1 + b1);
    *s2 += reduce_add(a2 + b2);
  }
};

// BatchNorm's per-channel y = x·scale + shift, from the batch statistics in
// double (as nn/_f_norm.py computed them for the unfused kernels): the
// forward's coefficients, and the backward's ReLU gate.
inline void bn_affine(const float* mean, const float* var, const float* w, const float* b,
                      double eps, int64_t ch, float* scale, float* shift) {
  const double invstd = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
  const double sc = invstd * (w ? static_cast<double>(w[ch]) : 1.0);
  *scale = static_cast<float>(sc);
  const double bias = b ? static_cast<double>(b[ch]) : 0.0;
  *shift = static_cast<float>(-static_cast<double>(mean[ch]) * sc + bias);
}

inline void shifted_sums(const float* x, int64_t len, float k, double* s1, double* s2) {
  MomentSums sums(k);
  int64_t i = 0;
  for (; i + 2 * W <= len; i += 2 * W) sums.pair(x + i);
  sums.tail(x, i, len, s1, s2);
}

// mean = k + s1 / m, biased var = s2 / m - (s1 / m)^2 (NaN when s2 is).
inline void finish_moments(float k, double s1, double s2, double m, float* mean, float* var) {
  const double mu = s1 / m;
  *mean = static_cast<float>(k + mu);
  *var = static_cast<float>(std::max(s2 / m - mu * mu, 0.0));
  if (std::isnan(s2)) *var = static_cast<float>(s2);
}

// Mean and biased variance of one channel (n rows of l floats, `stride` apart),
// shifted by its first element: sums of squares stay small relative to the
// mean, so one pass is as accurate as two.
inline void channel_moments(const float* x0, int64_t n, int64_t l, int64_t stride, float* mean,
                            float* var) {
  const float k = (n > 0 && l > 0) ? x0[0] : 0.0f;
  double s1 = 0.0, s2 = 0.0;
  for (int64_t b = 0; b < n; ++b) shifted_sums(x0 + b * stride, l, k, &s1, &s2);
  finish_moments(k, s1, s2, static_cast<double>(n * l), mean, var);
}

void channel_stats_impl(const float* x, int64_t n, int64_t c, int64_t l, float* mean, float* var,
                        int threads) {
  const int t = work_threads(n * c * l, threads);
#pragma omp parallel for num_threads(t) schedule(dynamic, 1)
  for (int64_t ch = 0; ch < c; ++ch) channel_moments(x + ch * l, n, l, c * l, &mean[ch], &var[ch]);
}

// out = a*u + b*v + d (+ReLU) over one row of l floats; v may be null. With
// `stream`, the 64-byte-aligned part is written with non-temporal stores.
// Between vectors it calls pair(i) for i = 0, 2W, 4W, ... while i + 2W <= l,
// then tail(i) once: the fused BatchNorm sums another row of the same length
// there, so its loads go out to memory while this row's stores drain.
template <typename Pair, typename Tail>
inline void affine_row_and(const float* up, const float* vp, float* op, int64_t l, Vec va, Vec vb,
                           Vec vd, bool relu, float relu_max, bool stream, Pair pair, Tail tail,
                           const ReluGate& gate = ReluGate()) {
  const Vec cap = Vec::set1(relu_max);
  auto f = [&](int64_t i, int k) {
    const Vec u = Vec::load_partial(up + i, k);
    Vec r;
    if (vp) {  // (the gate reads v: the backward's x)
      const Vec v = Vec::load_partial(vp + i, k);
      r = fmadd(vb, v, fmadd(va, gate(u, v), vd));
    } else {
      r = fmadd(va, u, vd);
    }
    return relu ? relu_clamp(r, cap) : r;
  };
  auto put = [&](Vec r, int64_t j) {
    if (stream) {
      r.stream(op + j);
    } else {
      r.store(op + j);
    }
  };
  int64_t j = 0;
  if (stream) {
    while (j < l && reinterpret_cast<uintptr_t>(op + j) % (W * sizeof(float)) != 0) {
      f(j, 1).store_partial(op + j, 1);
      ++j;
    }
  }
  int64_t i = 0;
  for (; i + 2 * W <= l && j + 2 * W <= l; i += 2 * W, j += 2 * W) {
    pair(i);
    put(f(j, W), j);
    put(f(j + W, W), j + W);
  }
  for (; i + 2 * W <= l; i += 2 * W) pair(i);
  tail(i);
  for (; j + W <= l; j += W) put(f(j, W), j);
  if (j < l) f(j, static_cast<int>(l - j)).store_partial(op + j, static_cast<int>(l - j));
}

inline void affine_row(const float* up, const float* vp, float* op, int64_t l, Vec va, Vec vb,
                       Vec vd, bool relu, float relu_max, bool stream,
                       const ReluGate& gate = ReluGate()) {
  affine_row_and(up, vp, op, l, va, vb, vd, relu, relu_max, stream, [](int64_t) {},
                 [](int64_t) {}, gate);
}

void channel_affine_impl(const float* u, const float* v, float* out, int64_t n, int64_t c,
                         int64_t l, const float* a, const float* b, const float* d, bool relu,
                         float relu_max, int threads) {
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
                 Vec::set1(v ? b[ch] : 0.0f), Vec::set1(d ? d[ch] : 0.0f), relu, relu_max, stream);
    }
    stream_fence();
  }
}

// Adds sum gy and sum gy * (x - k) over one row of l floats to s1, s2.
inline void grad_row_sums(const float* xp, const float* gp, int64_t l, float k, double* s1,
                          double* s2) {
  GradSums sums(k);
  int64_t i = 0;
  for (; i + 2 * W <= l; i += 2 * W) sums.pair(xp + i, gp + i);
  sums.tail(xp, gp, i, l, s1, s2);
}

void channel_grad_sums_impl(const float* x, const float* gy, int64_t n, int64_t c, int64_t l,
                            const float* center, float* sum_gy, float* sum_gy_xc, int threads) {
  const int t = work_threads(n * c * l, threads);
#pragma omp parallel for num_threads(t) schedule(dynamic, 1)
  for (int64_t ch = 0; ch < c; ++ch) {
    double s1 = 0.0, s2 = 0.0;
    for (int64_t b = 0; b < n; ++b) {
      const int64_t off = (b * c + ch) * l;
      grad_row_sums(x + off, gy + off, l, center[ch], &s1, &s2);
    }
    sum_gy[ch] = static_cast<float>(s1);
    sum_gy_xc[ch] = static_cast<float>(s2);
  }
}

// ------------------------------------------------- BatchNorm training, fused
// One contiguous range of channels per thread; each channel's n rows (n * l
// floats, 200 KB for 16x64x56x56) are summed, then mapped while they are
// still in L2, so each direction reads its inputs from memory once. The
// sums of channel ch + 1 are taken inside the loop that maps channel ch (row
// bi of the one beside row bi of the other, see affine_row_and), so the next
// channel's reads from DRAM overlap this channel's streaming stores instead
// of waiting for them, and a software prefetch cursor runs kBnPrefetchBytes
// ahead of those reads through the rows of this thread's channels (each row is
// a separate 12.5 KB stream here, too short for the hardware prefetcher). On
// bench_layers' shape, 1 thread: forward ~0.85 -> ~0.67 ms, backward ~1.36 ->
// ~1.2 ms (kernels alone). The per-channel coefficients are computed in double
// exactly as nn/_f_norm.py computed them for the unfused kernels, and the
// sums in the same order as channel_stats / channel_grad_sums.
constexpr int64_t kBnPrefetchBytes = 16 << 10;

// Fused only with non-empty rows (l floats) and enough channels to share
// among the threads; otherwise the separate kernels, which also split the
// rows of a channel.
inline bool use_fused(int64_t c, int64_t l, int t) {
  return c >= 4 * static_cast<int64_t>(t) && l != 0;
}

// This thread's channels [c0, c1) of c.
inline void thread_channels(int64_t c, int64_t* c0, int64_t* c1) {
#ifdef _OPENMP
  const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
#else
  const int64_t nt = 1, id = 0;
#endif
  *c0 = c * id / nt;
  *c1 = c * (id + 1) / nt;
}

void batch_norm_train_forward_impl(const float* x, float* y, int64_t n, int64_t c, int64_t l,
                                   const float* w, const float* b, double eps, bool relu,
                                   float relu_max, float* mean, float* var, int threads) {
  const int t = work_threads(n * c * l, threads);
  if (!use_fused(c, l, t)) {
    channel_stats_impl(x, n, c, l, mean, var, t);
    std::vector<float> scale(c), shift(c);
    for (int64_t ch = 0; ch < c; ++ch) bn_affine(mean, var, w, b, eps, ch, &scale[ch], &shift[ch]);
    channel_affine_impl(x, nullptr, y, n, c, l, scale.data(), nullptr, shift.data(), relu, relu_max,
                        t);
    return;
  }
  const bool stream = n * c * l * static_cast<int64_t>(sizeof(float)) > kStreamBytes;
  const int64_t row_bytes = l * static_cast<int64_t>(sizeof(float));
  const double m = static_cast<double>(n * l);
#pragma omp parallel num_threads(t)
  {
    int64_t c0, c1;
    thread_channels(c, &c0, &c1);
    // This thread's reads in order: channel c0's n rows, then c0 + 1's, ...
    RowsPrefetcher pf(x + c0 * l, (c1 - c0) * n, row_bytes, n, c * row_bytes, row_bytes);
    auto row_pos = [&](int64_t ch, int64_t bi) { return ((ch - c0) * n + bi) * row_bytes + kBnPrefetchBytes; };
    if (c0 < c1) {  // the first channel's sums on their own
      const float k = n > 0 ? x[c0 * l] : 0.0f;
      double s1 = 0.0, s2 = 0.0;
      for (int64_t bi = 0; bi < n; ++bi) {
        const float* row = x + (bi * c + c0) * l;
        MomentSums sums(k);
        int64_t i = 0;
        for (; i + 2 * W <= l; i += 2 * W) {
          pf.upto(row_pos(c0, bi) + i * static_cast<int64_t>(sizeof(float)));
          sums.pair(row + i);
        }
        sums.tail(row, i, l, &s1, &s2);
      }
      finish_moments(k, s1, s2, m, &mean[c0], &var[c0]);
    }
    for (int64_t ch = c0; ch < c1; ++ch) {
      float scale, shift;
      bn_affine(mean, var, w, b, eps, ch, &scale, &shift);
      const Vec va = Vec::set1(scale), vd = Vec::set1(shift);
      const bool next = ch + 1 < c1;
      const float k = next && n > 0 ? x[(ch + 1) * l] : 0.0f;
      double s1 = 0.0, s2 = 0.0;
      for (int64_t bi = 0; bi < n; ++bi) {
        const int64_t off = (bi * c + ch) * l;
        if (!next) {
          affine_row(x + off, nullptr, y + off, l, va, Vec::zero(), vd, relu, relu_max, stream);
          continue;
        }
        const float* row = x + off + l;  // row bi of channel ch + 1
        const int64_t pos = row_pos(ch + 1, bi);
        MomentSums sums(k);
        affine_row_and(x + off, nullptr, y + off, l, va, Vec::zero(), vd, relu, relu_max, stream,
                       [&](int64_t i) {
                         pf.upto(pos + i * static_cast<int64_t>(sizeof(float)));
                         sums.pair(row + i);
                       },
                       [&](int64_t i) { sums.tail(row, i, l, &s1, &s2); });
      }
      if (next) finish_moments(k, s1, s2, m, &mean[ch + 1], &var[ch + 1]);
    }
    stream_fence();
  }
}

void batch_norm_train_backward_impl(const float* x, const float* gy, float* gx, int64_t n,
                                    int64_t c, int64_t l, const float* mean, const float* var,
                                    const float* w, const float* b, double eps, bool relu,
                                    float relu_max, float* sum_gy, float* sum_gy_xc, int threads) {
  const int t = work_threads(n * c * l, threads);
  const double m = static_cast<double>(n * l);
  // With relu, gy is the gradient of ReLU(BatchNorm(x)): through the ReLU gate first.
  auto gate_of = [&](int64_t ch) {
    ReluGate gate;
    if (relu) {
      float scale, shift;
      bn_affine(mean, var, w, b, eps, ch, &scale, &shift);
      gate = ReluGate{true, std::isfinite(relu_max), Vec::set1(scale), Vec::set1(shift),
                      Vec::set1(relu_max)};
    }
    return gate;
  };
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
  if (!use_fused(c, l, t)) {
    std::vector<float> gated;
    if (relu) {  // few channels: the gated gradient as an array of its own
      gated.resize(static_cast<size_t>(n * c * l));
      float* out = gated.data();
#pragma omp parallel for num_threads(t) schedule(static)
      for (int64_t p = 0; p < n * c; ++p) {
        const ReluGate gate = gate_of(p % c);
        const float *xp = x + p * l, *gp = gy + p * l;
        for (int64_t i = 0; i < l; i += W) {
          const int k = static_cast<int>(std::min<int64_t>(W, l - i));
          const Vec g = gate(Vec::load_partial(gp + i, k), Vec::load_partial(xp + i, k));
          g.store_partial(out + p * l + i, k);
        }
      }
      gy = out;
    }
    channel_grad_sums_impl(x, gy, n, c, l, mean, sum_gy, sum_gy_xc, t);
    if (!gx) return;
    std::vector<float> k(c), bc(c), dc(c);
    for (int64_t ch = 0; ch < c; ++ch) coefficients(ch, &k[ch], &bc[ch], &dc[ch]);
    channel_affine_impl(gy, x, gx, n, c, l, k.data(), bc.data(), dc.data(), false, 0.0f, t);
    return;
  }
  const bool stream = n * c * l * static_cast<int64_t>(sizeof(float)) > kStreamBytes;
  const int64_t row_bytes = l * static_cast<int64_t>(sizeof(float));
#pragma omp parallel num_threads(t)
  {
    int64_t c0, c1;
    thread_channels(c, &c0, &c1);
    RowsPrefetcher pf_x(x + c0 * l, (c1 - c0) * n, row_bytes, n, c * row_bytes, row_bytes);
    RowsPrefetcher pf_g(gy + c0 * l, (c1 - c0) * n, row_bytes, n, c * row_bytes, row_bytes);
    auto row_pos = [&](int64_t ch, int64_t bi) { return ((ch - c0) * n + bi) * row_bytes + kBnPrefetchBytes; };
    auto prefetch = [&](int64_t pos) {
      pf_x.upto(pos);
      pf_g.upto(pos);
    };
    // Sums of channel ch alone (the first one; every one without gx).
    auto sums_alone = [&](int64_t ch) {
      double s1 = 0.0, s2 = 0.0;
      const ReluGate gate = gate_of(ch);
      for (int64_t bi = 0; bi < n; ++bi) {
        const int64_t off = (bi * c + ch) * l;
        GradSums sums(mean[ch], gate);
        int64_t i = 0;
        for (; i + 2 * W <= l; i += 2 * W) {
          prefetch(row_pos(ch, bi) + i * static_cast<int64_t>(sizeof(float)));
          sums.pair(x + off + i, gy + off + i);
        }
        sums.tail(x + off, gy + off, i, l, &s1, &s2);
      }
      sum_gy[ch] = static_cast<float>(s1);
      sum_gy_xc[ch] = static_cast<float>(s2);
    };
    if (!gx) {
      for (int64_t ch = c0; ch < c1; ++ch) sums_alone(ch);
    } else {
      if (c0 < c1) sums_alone(c0);
      for (int64_t ch = c0; ch < c1; ++ch) {
        float k, bc, dc;
        coefficients(ch, &k, &bc, &dc);
        const Vec vk = Vec::set1(k), vb = Vec::set1(bc), vd = Vec::set1(dc);
        const bool next = ch + 1 < c1;
        const ReluGate gate = gate_of(ch), gate_next = next ? gate_of(ch + 1) : ReluGate();
        double s1 = 0.0, s2 = 0.0;
        for (int64_t bi = 0; bi < n; ++bi) {
          const int64_t off = (bi * c + ch) * l;
          if (!next) {
            affine_row(gy + off, x + off, gx + off, l, vk, vb, vd, false, 0.0f, stream, gate);
            continue;
          }
          const float* xn = x + off + l;  // row bi of channel ch + 1
          const float* gn = gy + off + l;
          const int64_t pos = row_pos(ch + 1, bi);
          GradSums sums(mean[ch + 1], gate_next);
          affine_row_and(gy + off, x + off, gx + off, l, vk, vb, vd, false, 0.0f, stream,
                         [&](int64_t i) {
                           prefetch(pos + i * static_cast<int64_t>(sizeof(float)));
                           sums.pair(xn + i, gn + i);
                         },
                         [&](int64_t i) { sums.tail(xn, gn, i, l, &s1, &s2); }, gate);
        }
        if (next) {
          sum_gy[ch + 1] = static_cast<float>(s1);
          sum_gy_xc[ch + 1] = static_cast<float>(s2);
        }
      }
    }
    stream_fence();
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
