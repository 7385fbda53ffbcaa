// GEMM driver shared by every ISA: routing, cache blocking, threads, GEMV.
//
// Included by each ISA's micro-kernel source (gemm_f32_<MR>x<NR>_<isa>.cpp)
// inside that ISA's namespace and instantiated with its Config:
//
//   struct Config {
//     static constexpr int MR, NR;          // register tile
//     static constexpr int64_t KC, MC, NC;  // cache blocks (see the kernel file)
//     static void ukernel(int64_t kc, const float* a_panel, const float* b_panel,
//                         float* c, int64_t ldc, int mr, int nr, const TileEpilogue&);
//   };
//
// Loop nest (BLIS order), for C = op(A) op(B):
//   jc over N in NC  : B block KC x NC packed once, shared by all threads (L3)
//    pc over K in KC : (first pc applies beta, last pc applies bias + ReLU)
//     ic over M in MC: each thread packs its own A block MC x KC (its L2)
//      jr over NR    : one B micro-panel KC x NR stays in L1 ...
//       ir over MR   : ... while A micro-panels stream from L2 past it
// Threads form a tm x tn grid over C (rows in whole MR panels, columns in
// whole NR panels of each NC block), chosen per call so both halves get equal
// tile counts; M = 1 or N = 1 goes to a bandwidth-bound GEMV instead.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

#include "kernels/gemm/gemm.h"
#include "kernels/gemm/gemm_pack.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace gemm {

// What the micro-kernel does with its tile when storing it.
struct TileEpilogue {
  float beta;              // C = acc + beta * C; 0: C is not read; 1 on K blocks after the first
  const float* bias_row;   // bias for the tile's first row (last K block, per-row bias) or null
  const float* bias_col;   // bias for the tile's first column (last K block, per-col bias) or null
  bool relu;               // last K block only
  float relu_max;          // with relu: upper clamp (INFINITY for plain ReLU)
};

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using FloatBuffer = std::unique_ptr<float, FreeDeleter>;

// 64-byte aligned scratch, owned by one call (no global state).
inline FloatBuffer alloc_floats(int64_t count) {
  const size_t bytes = (static_cast<size_t>(count) * sizeof(float) + 63) & ~size_t{63};
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (!p) throw std::bad_alloc();
  return FloatBuffer(static_cast<float*>(p));
}

// min(max(x, 0), cap) with NaN passed through, as torch's relu / relu6.
inline float relu_clamp(float x, float cap) {
  if (x < 0.0f) x = 0.0f;
  if (x > cap) x = cap;
  return x;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Threads worth waking for `work` multiply-adds: about 2^18 each (~2 us), so
// tiny products do not pay for a fork/join and barriers.
inline int useful_threads(double work, int num_threads) {
  const double t = work / 262144.0;
  if (t < 2.0) return 1;
  return t >= num_threads ? std::max(num_threads, 1) : static_cast<int>(t);
}

// ---------------------------------------------------------------------------
// Epilogue without a product (k == 0 or alpha == 0): C = act(beta * C + bias).
// ---------------------------------------------------------------------------
inline void scale_bias_act(int64_t m, int64_t n, float beta, float* c, int64_t ldc,
                           const GemmEpilogue& ep, int num_threads) {
  const int threads = useful_threads(static_cast<double>(m) * n / 16.0, num_threads);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    const float brow = ep.bias_axis == BiasAxis::per_row ? ep.bias[i] : 0.0f;
    const float* bcol = ep.bias_axis == BiasAxis::per_col ? ep.bias : nullptr;
    for (int64_t j = 0; j < n; ++j) {
      float x = beta == 0.0f ? 0.0f : beta * row[j];
      x += brow;
      if (bcol) x += bcol[j];
      if (ep.relu) x = relu_clamp(x, ep.relu_max);
      row[j] = x;
    }
  }
}

// ---------------------------------------------------------------------------
// GEMV (M == 1 or N == 1): no packing, every matrix element read once.
// ---------------------------------------------------------------------------
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX2__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef float VecF __attribute__((vector_size(kLanes * sizeof(float))));

inline VecF load_vec(const float* p) {
  VecF v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline float sum_lanes(VecF v) {
  float s = 0.0f;
  for (int l = 0; l < kLanes; ++l) s += v[l];
  return s;
}

// y[r] = sum_p x[r * ldx + p] * v[p] for r < rows: 8 rows share each load of
// v, and 8 independent accumulators cover the FMA latency.
inline void gemv_dot_rows(const float* x, int64_t ldx, int64_t rows, int64_t k, const float* v,
                          float* y, int num_threads) {
  constexpr int kRows = 8;
  const int64_t groups = ceil_div(rows, kRows);
  // Memory-bound: a second thread pays off from about 64 K matrix elements.
  const int threads = useful_threads(static_cast<double>(rows) * k * 4.0, num_threads);
  const int64_t k_vec = k - k % kLanes;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t r0 = g * kRows;
    const int nr = static_cast<int>(std::min<int64_t>(kRows, rows - r0));
    const float* xr[kRows];
    for (int i = 0; i < kRows; ++i) xr[i] = x + (r0 + std::min(i, nr - 1)) * ldx;
    VecF s[kRows] = {};
    for (int64_t p = 0; p < k_vec; p += kLanes) {
      const VecF vp = load_vec(v + p);
#pragma GCC unroll 8
      for (int i = 0; i < kRows; ++i) s[i] += load_vec(xr[i] + p) * vp;
    }
    for (int i = 0; i < nr; ++i) {
      float t = sum_lanes(s[i]);
      for (int64_t p = k_vec; p < k; ++p) t += xr[i][p] * v[p];
      y[r0 + i] = t;
    }
  }
}

// y[j] = sum_p v[p] * x[p * ldx + j] for j < cols: column chunks of y stay in
// L1 while rows of x stream past, four at a time.
inline void gemv_axpy_rows(const float* x, int64_t ldx, int64_t k, int64_t cols, const float* v,
                           float* y, int num_threads) {
  constexpr int64_t kChunk = 512;
  const int64_t chunks = ceil_div(cols, kChunk);
  const int threads = useful_threads(static_cast<double>(cols) * k * 4.0, num_threads);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t j0 = ch * kChunk, j1 = std::min(cols, j0 + kChunk);
    float* __restrict yc = y + j0;
    const int64_t w = j1 - j0;
    for (int64_t j = 0; j < w; ++j) yc[j] = 0.0f;
    int64_t p = 0;
    for (; p + 4 <= k; p += 4) {
      const float* __restrict x0 = x + p * ldx + j0;
      const float* __restrict x1 = x0 + ldx;
      const float* __restrict x2 = x1 + ldx;
      const float* __restrict x3 = x2 + ldx;
      const float v0 = v[p], v1 = v[p + 1], v2 = v[p + 2], v3 = v[p + 3];
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) yc[j] += v0 * x0[j] + v1 * x1[j] + v2 * x2[j] + v3 * x3[j];
    }
    for (; p < k; ++p) {
      const float* __restrict x0 = x + p * ldx + j0;
      const float v0 = v[p];
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) yc[j] += v0 * x0[j];
    }
  }
}

// C for M == 1 (a row of C) or N == 1 (a column of C, stride ldc).
inline void gemv(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc, const GemmEpilogue& ep, int num_threads) {
  const bool row_out = m == 1;  // y is C's only row (else C's only column)
  const int64_t len = row_out ? n : m;
  FloatBuffer y = alloc_floats(len);
  FloatBuffer vbuf;
  // The vector operand, gathered into contiguous memory if it is strided.
  const float* vsrc = row_out ? a : b;
  const int64_t vstride = row_out ? (trans_a ? lda : 1) : (trans_b ? 1 : ldb);
  const float* v = vsrc;
  if (vstride != 1 && k > 1) {
    vbuf = alloc_floats(k);
    for (int64_t p = 0; p < k; ++p) vbuf.get()[p] = vsrc[p * vstride];
    v = vbuf.get();
  }
  if (row_out) {
    if (trans_b) gemv_dot_rows(b, ldb, n, k, v, y.get(), num_threads);   // B is n x k
    else gemv_axpy_rows(b, ldb, k, n, v, y.get(), num_threads);          // B is k x n
  } else {
    if (trans_a) gemv_axpy_rows(a, lda, k, m, v, y.get(), num_threads);  // A is k x m
    else gemv_dot_rows(a, lda, m, k, v, y.get(), num_threads);           // A is m x k
  }
  const int64_t cstride = row_out ? 1 : ldc;
  const bool bias_along = (ep.bias_axis == BiasAxis::per_col) == row_out;
  for (int64_t i = 0; i < len; ++i) {
    float x = alpha * y.get()[i];
    float* ci = c + i * cstride;
    if (beta != 0.0f) x += beta * *ci;
    if (ep.bias_axis != BiasAxis::none) x += ep.bias[bias_along ? i : 0];
    if (ep.relu) x = relu_clamp(x, ep.relu_max);
    *ci = x;
  }
}

// ---------------------------------------------------------------------------
// Packed, blocked GEMM.
// ---------------------------------------------------------------------------

// Picks the tm x tn thread grid with the fewest tiles on the busiest thread;
// ties go to splitting M (threads then share B and each keeps its own A in L2).
inline void thread_grid(int threads, int64_t m_panels, int64_t n_panels, int* tm, int* tn) {
  int64_t best = -1;
  for (int t_m = threads; t_m >= 1; --t_m) {
    if (threads % t_m) continue;
    const int t_n = threads / t_m;
    const int64_t cost = ceil_div(m_panels, t_m) * ceil_div(n_panels, t_n);
    if (best < 0 || cost < best) {
      best = cost;
      *tm = t_m;
      *tn = t_n;
    }
  }
}

template <class Config>
void gemm_packed(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc, const GemmEpilogue& ep, int num_threads) {
  constexpr int MR = Config::MR, NR = Config::NR;
  constexpr int64_t KC = Config::KC, MC = Config::MC, NC = Config::NC;
  static_assert(MC % MR == 0 && NC % NR == 0, "cache blocks must hold whole panels");

  const int64_t kc_max = std::min(KC, k);
  const int64_t nc_max = std::min(NC, round_up(n, NR));
  const int64_t mc_max = std::min(MC, round_up(m, MR));
  const int threads = useful_threads(static_cast<double>(m) * n * k, num_threads);
  const int64_t a_stride = round_up(mc_max * kc_max, 16);  // keeps each thread's A 64-byte aligned
  FloatBuffer b_pack = alloc_floats(kc_max * nc_max);
  FloatBuffer a_pack = alloc_floats(a_stride * threads);
  const int64_t m_panels = ceil_div(m, MR);

#pragma omp parallel num_threads(threads)
  {
    // The team may be smaller than asked for; partition by its real size.
    const int team = omp_get_num_threads();
    const int tid = omp_get_thread_num();
    int tm = 1, tn = 1;
    thread_grid(team, m_panels, ceil_div(std::min(n, NC), NR), &tm, &tn);
    const int ti = tid / tn, tj = tid % tn;
    const int64_t m_lo = std::min(m, m_panels * ti / tm * MR);
    const int64_t m_hi = std::min(m, m_panels * (ti + 1) / tm * MR);
    // Equal A blocks of whole panels, at most MC rows: a short last block
    // would reuse each B micro-panel it pulls into L1 only a few times.
    const int64_t my_panels = ceil_div(m_hi - m_lo, MR);
    const int64_t mc_step =
        ceil_div(my_panels, std::max<int64_t>(1, ceil_div(my_panels, MC / MR))) * MR;
    float* a_mine = a_pack.get() + a_stride * tid;
    float* bp = b_pack.get();

    for (int64_t jc = 0; jc < n; jc += NC) {
      const int64_t nc = std::min(NC, n - jc);
      const int64_t n_panels = ceil_div(nc, NR);
      const int64_t jr_lo = n_panels * tj / tn, jr_hi = n_panels * (tj + 1) / tn;
      for (int64_t pc = 0; pc < k; pc += KC) {
        const int64_t kc = std::min(KC, k - pc);
        // All threads pack this B block together (implicit barrier at the end).
#pragma omp for schedule(static)
        for (int64_t jr = 0; jr < n_panels; ++jr) {
          const int64_t j = jc + jr * NR;
          const float* src = trans_b ? b + j * ldb + pc : b + pc * ldb + j;
          pack_b_panel<NR>(trans_b, src, ldb, static_cast<int>(std::min<int64_t>(NR, n - j)), kc,
                           bp + jr * NR * kc);
        }
        TileEpilogue te;
        te.beta = pc == 0 ? beta : 1.0f;
        const bool last = pc + kc == k;
        te.relu = last && ep.relu;
        te.relu_max = ep.relu_max;
        for (int64_t ic = m_lo; ic < m_hi; ic += mc_step) {
          const int64_t mc = std::min(mc_step, m_hi - ic);
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t i = ic + ir;
            const float* src = trans_a ? a + pc * lda + i : a + i * lda + pc;
            pack_a_panel<MR>(trans_a, src, lda, static_cast<int>(std::min<int64_t>(MR, m - i)),
                             kc, alpha, a_mine + ir * kc);
          }
          for (int64_t jr = jr_lo; jr < jr_hi; ++jr) {
            const int64_t j = jc + jr * NR;
            const int nr = static_cast<int>(std::min<int64_t>(NR, n - j));
            te.bias_col = last && ep.bias_axis == BiasAxis::per_col ? ep.bias + j : nullptr;
            for (int64_t ir = 0; ir < mc; ir += MR) {
              const int64_t i = ic + ir;
              te.bias_row = last && ep.bias_axis == BiasAxis::per_row ? ep.bias + i : nullptr;
              Config::ukernel(kc, a_mine + ir * kc, bp + jr * NR * kc, c + i * ldc + j, ldc,
                              static_cast<int>(std::min<int64_t>(MR, m - i)), nr, te);
            }
          }
        }
        // B is repacked next round: wait until every thread is done with it.
#pragma omp barrier
      }
    }
  }
}

// The GemmF32Fn entry point for one ISA.
template <class Config>
void gemm_f32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
              int64_t ldc, const GemmEpilogue& ep, int num_threads) {
  if (m <= 0 || n <= 0) return;
  if (num_threads < 1) num_threads = 1;
  if (k == 0 || alpha == 0.0f) {
    scale_bias_act(m, n, beta, c, ldc, ep, num_threads);
  } else if (m == 1 || n == 1) {
    gemv(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ep, num_threads);
  } else {
    gemm_packed<Config>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ep,
                        num_threads);
  }
}

}  // namespace gemm
}  // namespace PVE_KERNEL_NS
}  // namespace pve
