// Fused log-softmax + NLL (see cross_entropy.h), vectorised along classes,
// rows split across threads. Logits are read twice per row in forward (max,
// then exp-sum and the weighted sums) and twice in backward.
#include "kernels/loss/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "simd/vec_math.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int W = Vec::kWidth;

inline int row_threads(int64_t rows, int64_t classes, int threads) {
  return (rows * classes < (1 << 14) || rows < 2) ? 1 : threads;
}

inline float row_max(const float* x, int64_t c) {
  Vec m = Vec::set1(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + W <= c; i += W) m = max(Vec::load(x + i), m);
  float r = reduce_max(m);
  for (; i < c; ++i) r = std::max(x[i], r);
  // x86 max may drop a NaN here; it still reaches lse through exp(NaN - r).
  return r;
}

// sum over lanes < n of v (masked tail lanes zeroed).
inline Vec zero_tail(Vec v, int n) {
  float tmp[W];
  v.store(tmp);
  for (int j = n; j < W; ++j) tmp[j] = 0.0f;
  return Vec::load(tmp);
}

int64_t cross_entropy_forward_impl(const float* x, int64_t rows, int64_t classes,
                                   const int64_t* target, const float* probs, const float* weight,
                                   int64_t ignore_index, float* lse, float* nll, float* smooth,
                                   int threads) {
  int64_t bad = 0;
  const int t = row_threads(rows, classes, threads);
#pragma omp parallel for num_threads(t) schedule(dynamic, 8) reduction(+ : bad)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * classes;
    const float m = row_max(xr, classes);
    const Vec vm = Vec::set1(m);
    Vec se = Vec::zero(), swx = Vec::zero(), sw = Vec::zero(), stx = Vec::zero(), st = Vec::zero();
    const float* pr = probs ? probs + r * classes : nullptr;
    // Full vectors, then one masked tail (masked lanes load 0, and exp of
    // them is zeroed so it adds nothing).
    auto accumulate = [&](int64_t i, int n, bool tail) {
      Vec v = Vec::load_partial(xr + i, n);
      Vec e = exp_nonpositive(v - vm);
      se = se + (tail ? zero_tail(e, n) : e);
      if (!weight && !pr) {  // every w_c = 1: sum x_c (tail lanes load 0); sum w_c = classes
        swx = swx + v;
        return;
      }
      Vec w = weight ? Vec::load_partial(weight + i, n)
                     : (tail ? zero_tail(Vec::set1(1.0f), n) : Vec::set1(1.0f));
      swx = fmadd(w, v, swx);  // sum w_c x_c
      sw = sw + w;             // sum w_c
      if (pr) {
        Vec wt = w * Vec::load_partial(pr + i, n);
        stx = fmadd(wt, v, stx);  // sum w_c t_c x_c
        st = st + wt;             // sum w_c t_c
      }
    };
    int64_t i = 0;
    for (; i + W <= classes; i += W) accumulate(i, W, false);
    if (i < classes) accumulate(i, static_cast<int>(classes - i), true);
    const float l = m + std::log(reduce_add(se));
    lse[r] = l;
    // -sum w_c logp_c = (sum w_c) lse - sum w_c x_c
    if (pr) {
      nll[r] = reduce_add(st) * l - reduce_add(stx);
      smooth[r] = reduce_add(sw) * l - reduce_add(swx);
      continue;
    }
    const int64_t y = target[r];
    if (y == ignore_index) {
      nll[r] = 0.0f;
      smooth[r] = 0.0f;
      continue;
    }
    if (y < 0 || y >= classes) {
      ++bad;
      nll[r] = 0.0f;
      smooth[r] = 0.0f;
      continue;
    }
    const float wy = weight ? weight[y] : 1.0f;
    nll[r] = wy * (l - xr[y]);
    smooth[r] = (weight ? reduce_add(sw) : static_cast<float>(classes)) * l - reduce_add(swx);
  }
  return bad;
}

void cross_entropy_backward_impl(const float* x, const float* lse, int64_t rows, int64_t classes,
                                 const int64_t* target, const float* probs, const float* weight,
                                 int64_t ignore_index, const float* coef_nll,
                                 const float* coef_smooth, float* grad, int threads) {
  const int t = row_threads(rows, classes, threads);
  double wsum_all = 0.0;
  if (weight) {
    for (int64_t c = 0; c < classes; ++c) wsum_all += weight[c];
  } else {
    wsum_all = static_cast<double>(classes);
  }
  const float wsum = static_cast<float>(wsum_all);
#pragma omp parallel for num_threads(t) schedule(dynamic, 8)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * classes;
    float* gr = grad + r * classes;
    const float* pr = probs ? probs + r * classes : nullptr;
    int64_t y = -1;
    if (!pr) {
      y = target[r];
      if (y == ignore_index || y < 0 || y >= classes) {
        for (int64_t i = 0; i < classes; i += W)
          Vec::zero().store_partial(gr + i, static_cast<int>(std::min<int64_t>(W, classes - i)));
        continue;
      }
    }
    const float cn = coef_nll[r], cs = coef_smooth[r];
    // grad = A p_c - cn * (w_c t_c  or  w_y [c==y]) - cs * w_c
    float wt_sum = 0.0f;
    if (pr) {
      Vec acc = Vec::zero();
      for (int64_t i = 0; i < classes; i += W) {
        const int n = static_cast<int>(std::min<int64_t>(W, classes - i));
        Vec w = weight ? Vec::load_partial(weight + i, n) : Vec::set1(1.0f);
        acc = fmadd(w, Vec::load_partial(pr + i, n), acc);  // probs tail loads 0
      }
      wt_sum = reduce_add(acc);
    } else {
      wt_sum = weight ? weight[y] : 1.0f;
    }
    const Vec a = Vec::set1(cn * wt_sum + cs * wsum), l = Vec::set1(lse[r]);
    const Vec vcn = Vec::set1(cn), vcs = Vec::set1(cs);
    for (int64_t i = 0; i < classes; i += W) {
      const int n = static_cast<int>(std::min<int64_t>(W, classes - i));
      Vec p = exp_nonpositive(Vec::load_partial(xr + i, n) - l);  // x <= lse
      Vec w = weight ? Vec::load_partial(weight + i, n) : Vec::set1(1.0f);
      Vec g = fnmadd(vcs, w, a * p);
      if (pr) g = fnmadd(vcn * w, Vec::load_partial(pr + i, n), g);
      g.store_partial(gr + i, n);
    }
    if (!pr) gr[y] -= cn * wt_sum;
  }
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(cross_entropy_forward, &cross_entropy_forward_impl);
  register_kernel(cross_entropy_backward, &cross_entropy_backward_impl);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
