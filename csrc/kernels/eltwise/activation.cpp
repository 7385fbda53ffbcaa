// Element-wise activations, PReLU, softmax and the convolutions' residual pass
// (conv2d_add_residual), written once against Vec and
// compiled per ISA. Work is split into 64 KiB chunks handed out dynamically
// (a thread descheduled on a shared machine then delays one chunk, not half
// the op); outputs
// of large out-of-place calls use non-temporal stores (no read-for-ownership
// of the destination: the op moves 2 bytes of memory per byte of output, not 3).
#include "kernels/eltwise/activation.h"

#include <algorithm>
#include <cmath>

#include "kernels/conv/conv2d.h"
#include "simd/vec_math.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int W = Vec::kWidth;
constexpr int64_t kChunk = 1 << 14;            // elements per parallel task
constexpr int64_t kStreamBytes = 4 << 20;      // stream outputs larger than this

// Applies `body(offset, count)` to chunks of [0, n) across threads.
template <typename Body>
void parallel_chunks(int64_t n, int threads, Body body) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks <= 1 || threads <= 1) {
    body(0, n);
    return;
  }
  const int t = static_cast<int>(std::min<int64_t>(threads, chunks));
#pragma omp parallel num_threads(t)
  {
#pragma omp for schedule(dynamic, 8)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t begin = c * kChunk;
      body(begin, std::min(kChunk, n - begin));
    }
    stream_fence();  // make this thread's streaming stores visible before the barrier
  }
}

// y[i] = f(x[i]) over one chunk; streams full, aligned vectors when asked.
template <typename F>
inline void map_chunk(const float* x, float* y, int64_t n, bool stream, F f) {
  int64_t i = 0;
  if (stream) {
    // Peel until y is aligned to the vector width for stream().
    while (i < n && (reinterpret_cast<uintptr_t>(y + i) % (W * sizeof(float))) != 0) {
      const int k = static_cast<int>(std::min<int64_t>(n - i, 1));
      f(Vec::load_partial(x + i, k)).store_partial(y + i, k);
      i += k;
    }
    for (; i + W <= n; i += W) f(Vec::load(x + i)).stream(y + i);
  }
  for (; i + W <= n; i += W) f(Vec::load(x + i)).store(y + i);
  if (i < n) {
    const int k = static_cast<int>(n - i);
    f(Vec::load_partial(x + i, k)).store_partial(y + i, k);
  }
}

template <typename F>
inline void map2_chunk(const float* a, const float* b, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + W <= n; i += W) f(Vec::load(a + i), Vec::load(b + i)).store(y + i);
  if (i < n) {
    const int k = static_cast<int>(n - i);
    f(Vec::load_partial(a + i, k), Vec::load_partial(b + i, k)).store_partial(y + i, k);
  }
}

template <typename F>
void map(const float* x, float* y, int64_t n, int threads, F f) {
  const bool stream = x != y && n * static_cast<int64_t>(sizeof(float)) > kStreamBytes;
  parallel_chunks(n, threads, [&](int64_t b, int64_t c) { map_chunk(x + b, y + b, c, stream, f); });
}

template <typename F>
void map2(const float* a, const float* g, float* y, int64_t n, int threads, F f) {
  parallel_chunks(n, threads, [&](int64_t b, int64_t c) { map2_chunk(a + b, g + b, y + b, c, f); });
}

const float kSqrtHalf = 0.70710678118654752f;
const float kInvSqrt2Pi = 0.39894228040143268f;
const float kSqrt2OverPi = 0.79788456080286536f;
const float kGeluCoeff = 0.044715f;

// Calls apply(f) with f the op's Vec -> Vec function.
template <typename Apply>
void with_act(int op, float alpha, Apply apply) {
  const Vec zero = Vec::zero(), one = Vec::set1(1.0f), half = Vec::set1(0.5f);
  const Vec three = Vec::set1(3.0f), six = Vec::set1(6.0f);
  // max(0, x) / min(6, x): x in the second operand so NaN propagates (x86 rule).
  switch (static_cast<Act>(op)) {
    case Act::relu:
      return apply([&](Vec v) { return max(zero, v); });
    case Act::relu6:
      return apply([&](Vec v) { return min(six, max(zero, v)); });
    case Act::leaky_relu: {
      const Vec a = Vec::set1(alpha);
      return apply([&](Vec v) { return select(cmp_gt(v, zero), v, v * a); });
    }
    case Act::sigmoid:
      return apply([&](Vec v) { return sigmoid(v); });
    case Act::tanh:
      return apply([&](Vec v) { return tanh(v); });
    case Act::gelu: {
      const Vec r = Vec::set1(kSqrtHalf);
      return apply([&](Vec v) { return half * v * (one + erf(v * r)); });
    }
    case Act::gelu_tanh: {
      const Vec k = Vec::set1(kSqrt2OverPi), c = Vec::set1(kGeluCoeff);
      return apply([&](Vec v) {
        Vec inner = k * fmadd(c * v, v * v, v);
        return half * v * (one + tanh(inner));
      });
    }
    case Act::silu:
      return apply([&](Vec v) { return v * sigmoid(v); });
    // Divided by 6 (not times 1/6): torch divides, and the two round differently
    // (hardswish(3.0000002) is 3.0000002 in torch, 3.0000005 times 1/6).
    case Act::hardswish:
      return apply([&](Vec v) { return v * min(six, max(zero, v + three)) / six; });
    case Act::hardsigmoid:
      return apply([&](Vec v) { return min(six, max(zero, v + three)) / six; });
    case Act::identity:
      return apply([](Vec v) { return v; });
  }
}

void act_forward_impl(int op, const float* x, float* y, int64_t n, float alpha, int threads) {
  with_act(op, alpha, [&](auto f) { map(x, y, n, threads, f); });
}

// y = act(a + b) in one pass (a residual connection and the activation after it).
void add_act_forward_impl(int op, const float* a, const float* b, float* y, int64_t n,
                          float alpha, int threads) {
  with_act(op, alpha, [&](auto f) {
    map2(a, b, y, n, threads, [&](Vec u, Vec v) { return f(u + v); });
  });
}

// y = act(y + residual) in place: conv2d_add_residual, the residual pass for
// convolution families whose epilogue does not take the residual (im2col,
// depthwise, pointwise off its driver). The caller has run the convolution
// without activation; the sum and clamp here are the epilogues' own
// (relu_clamp), so a fused and an unfused layer round and clamp alike.
void conv2d_add_residual_impl(float* y, const float* r, int64_t n, bool relu, float relu_max,
                              int threads) {
  const Vec cap = Vec::set1(relu_max);
  map2(y, r, y, n, threads, [&](Vec u, Vec v) { return relu ? relu_clamp(u + v, cap) : u + v; });
}

void act_backward_impl(int op, const float* s, const float* gy, float* gx, int64_t n, float alpha,
                       int threads) {
  const Vec zero = Vec::zero(), one = Vec::set1(1.0f), half = Vec::set1(0.5f);
  const Vec three = Vec::set1(3.0f), six = Vec::set1(6.0f);
  switch (static_cast<Act>(op)) {
    // NaN inputs follow torch's vectorized kernels: relu (threshold_backward,
    // zero where y <= 0) passes the gradient, relu6 (hardtanh_backward, g where
    // 0 < x < 6) drops it.
    case Act::relu:  // s = output
      return map2(s, gy, gx, n, threads, [&](Vec y, Vec g) { return select(cmp_le(y, zero), zero, g); });
    case Act::relu6:
      return map2(s, gy, gx, n, threads, [&](Vec v, Vec g) {
        return select(mask_and(cmp_gt(v, zero), cmp_lt(v, six)), g, zero);
      });
    case Act::leaky_relu: {
      const Vec a = Vec::set1(alpha);
      return map2(s, gy, gx, n, threads, [&](Vec v, Vec g) { return select(cmp_gt(v, zero), g, g * a); });
    }
    case Act::sigmoid:  // s = output
      return map2(s, gy, gx, n, threads, [&](Vec y, Vec g) { return g * y * (one - y); });
    case Act::tanh:  // s = output
      return map2(s, gy, gx, n, threads, [&](Vec y, Vec g) { return g * fnmadd(y, y, one); });
    case Act::gelu: {
      const Vec r = Vec::set1(kSqrtHalf), k = Vec::set1(kInvSqrt2Pi);
      return map2(s, gy, gx, n, threads, [&](Vec v, Vec g) {
        Vec cdf = half * (one + erf(v * r));
        Vec pdf = k * exp(-half * v * v);
        return g * fmadd(v, pdf, cdf);
      });
    }
    case Act::gelu_tanh: {
      const Vec k = Vec::set1(kSqrt2OverPi), c = Vec::set1(kGeluCoeff), c3 = Vec::set1(3.0f * kGeluCoeff);
      return map2(s, gy, gx, n, threads, [&](Vec v, Vec g) {
        Vec v2 = v * v;
        Vec t = tanh(k * fmadd(c * v, v2, v));
        Vec dinner = k * fmadd(c3, v2, one);
        Vec d = half * (one + t) + half * v * fnmadd(t, t, one) * dinner;
        return g * d;
      });
    }
    case Act::silu:
      return map2(s, gy, gx, n, threads, [&](Vec v, Vec g) {
        Vec sg = sigmoid(v);
        return g * sg * fmadd(v, one - sg, one);
      });
    case Act::hardswish: {
      const Vec m3 = Vec::set1(-3.0f);
      return map2(s, gy, gx, n, threads, [&](Vec v, Vec g) {
        // torch 2.x: 0 for x <= -3, g for x >= 3 (the kinks take the outer slopes),
        // NaN for NaN (its vectorized kernel's blend order).
        Vec mid = g * (v / three + half);  // as torch rounds it (no FMA, a division)
        return select(cmp_le(v, m3), zero, select(cmp_ge(v, three), g, mid));
      });
    }
    case Act::hardsigmoid: {
      const Vec m3 = Vec::set1(-3.0f), sixth = Vec::set1(1.0f / 6.0f);
      return map2(s, gy, gx, n, threads, [&](Vec v, Vec g) {
        return select(mask_and(cmp_gt(v, m3), cmp_lt(v, three)), g * sixth, zero);
      });
    }
    case Act::identity:
      return map2(s, gy, gx, n, threads, [](Vec, Vec g) { return g; });
  }
}

// --------------------------------------------------------------------- PReLU
void prelu_forward_impl(const float* x, const float* weight, float* y, int64_t outer,
                        int64_t channels, int64_t inner, int threads) {
  const int64_t planes = outer * channels;
  const int t = planes * inner > kChunk ? threads : 1;
#pragma omp parallel for num_threads(t) schedule(dynamic, 4)
  for (int64_t p = 0; p < planes; ++p) {
    const Vec a = Vec::set1(weight[p % channels]), zero = Vec::zero();
    map_chunk(x + p * inner, y + p * inner, inner, false,
              [&](Vec v) { return select(cmp_gt(v, zero), v, v * a); });
  }
}

void prelu_backward_impl(const float* x, const float* weight, const float* gy, float* gx,
                         float* gweight, int64_t outer, int64_t channels, int64_t inner,
                         int threads) {
  const int t = outer * channels * inner > kChunk ? threads : 1;
  // Parallel over channels, so each slope's gradient has one owner.
#pragma omp parallel for num_threads(t) schedule(dynamic, 1)
  for (int64_t c = 0; c < channels; ++c) {
    const Vec a = Vec::set1(weight[c]), zero = Vec::zero();
    double acc = 0.0;
    for (int64_t o = 0; o < outer; ++o) {
      const int64_t off = (o * channels + c) * inner;
      const float* xp = x + off;
      const float* gp = gy + off;
      Vec sum = Vec::zero();
      int64_t i = 0;
      for (; i < inner; i += W) {
        const int k = static_cast<int>(std::min<int64_t>(W, inner - i));
        Vec v = Vec::load_partial(xp + i, k), g = Vec::load_partial(gp + i, k);
        Mask pos = cmp_gt(v, zero);
        if (gx) select(pos, g, g * a).store_partial(gx + off + i, k);
        sum = sum + select(pos, zero, v * g);
      }
      acc += reduce_add(sum);
    }
    if (gweight) gweight[c] = static_cast<float>(acc);
  }
}

// ------------------------------------------------------------------- softmax
// exp_nonpositive: x - max and log-softmax outputs are <= 0 (lanes past a
// row's end may not be, and are neither stored nor summed).
// One contiguous row (inner == 1).
void softmax_row(const float* x, float* y, int64_t d, bool log) {
  Vec m = Vec::set1(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + W <= d; i += W) m = max(Vec::load(x + i), m);
  float mx = reduce_max(m);
  for (; i < d; ++i) mx = std::max(x[i], mx);
  const Vec vm = Vec::set1(mx);
  Vec sum = Vec::zero();
  float tail_sum = 0.0f;
  for (i = 0; i + W <= d; i += W) {
    Vec e = exp_nonpositive(Vec::load(x + i) - vm);
    if (!log) e.store(y + i);
    sum = sum + e;
  }
  if (i < d) {
    const int k = static_cast<int>(d - i);
    Vec e = exp_nonpositive(Vec::load_partial(x + i, k) - vm);
    if (!log) e.store_partial(y + i, k);
    // Masked-off lanes hold exp(0 - mx); add only the k real ones.
    float tmp[W];
    e.store(tmp);
    for (int j = 0; j < k; ++j) tail_sum += tmp[j];
  }
  const float s = reduce_add(sum) + tail_sum;
  if (log) {
    // (x - max) - log(sum): subtracting in two steps keeps the precision
    // of x - max when |max| is large.
    const Vec logsum = Vec::set1(std::log(s));
    for (i = 0; i + W <= d; i += W) ((Vec::load(x + i) - vm) - logsum).store(y + i);
    if (i < d) {
      const int k = static_cast<int>(d - i);
      ((Vec::load_partial(x + i, k) - vm) - logsum).store_partial(y + i, k);
    }
  } else {
    const Vec inv = Vec::set1(1.0f / s);
    for (i = 0; i + W <= d; i += W) (Vec::load(y + i) * inv).store(y + i);
    if (i < d) {
      const int k = static_cast<int>(d - i);
      (Vec::load_partial(y + i, k) * inv).store_partial(y + i, k);
    }
  }
}

// `k` adjacent columns (k <= W) of a (d, inner) slab, vectorised across columns.
void softmax_columns(const float* x, float* y, int64_t d, int64_t inner, int k, bool log) {
  Vec m = Vec::set1(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < d; ++j) m = max(Vec::load_partial(x + j * inner, k), m);
  Vec sum = Vec::zero();
  for (int64_t j = 0; j < d; ++j) {
    Vec e = exp_nonpositive(Vec::load_partial(x + j * inner, k) - m);
    if (!log) e.store_partial(y + j * inner, k);
    sum = sum + e;
  }
  if (log) {
    float sm[W], mm[W];
    sum.store(sm);
    m.store(mm);
    for (int l = 0; l < k; ++l) sm[l] = std::log(sm[l]);
    const Vec logsum = Vec::load_partial(sm, k);
    for (int64_t j = 0; j < d; ++j)
      ((Vec::load_partial(x + j * inner, k) - m) - logsum).store_partial(y + j * inner, k);
  } else {
    const Vec inv = Vec::set1(1.0f) / sum;
    for (int64_t j = 0; j < d; ++j)
      (Vec::load_partial(y + j * inner, k) * inv).store_partial(y + j * inner, k);
  }
}

void softmax_forward_impl(const float* x, float* y, int64_t outer, int64_t d, int64_t inner,
                          bool log, int threads) {
  const int t = outer * d * inner > kChunk ? threads : 1;
  if (inner == 1) {
#pragma omp parallel for num_threads(t) schedule(dynamic, 8)
    for (int64_t o = 0; o < outer; ++o) softmax_row(x + o * d, y + o * d, d, log);
    return;
  }
  const int64_t blocks = (inner + W - 1) / W;
#pragma omp parallel for num_threads(t) schedule(dynamic, 8)
  for (int64_t ob = 0; ob < outer * blocks; ++ob) {
    const int64_t o = ob / blocks, b = (ob % blocks) * W;
    const int k = static_cast<int>(std::min<int64_t>(W, inner - b));
    softmax_columns(x + o * d * inner + b, y + o * d * inner + b, d, inner, k, log);
  }
}

void softmax_backward_impl(const float* y, const float* gy, float* gx, int64_t outer, int64_t d,
                           int64_t inner, bool log, int threads) {
  const int t = outer * d * inner > kChunk ? threads : 1;
  const int64_t blocks = (inner + W - 1) / W;
  if (inner == 1) {
#pragma omp parallel for num_threads(t) schedule(dynamic, 8)
    for (int64_t o = 0; o < outer; ++o) {
      const float* yp = y + o * d;
      const float* gp = gy + o * d;
      float* out = gx + o * d;
      Vec acc = Vec::zero();
      for (int64_t i = 0; i < d; i += W) {
        const int k = static_cast<int>(std::min<int64_t>(W, d - i));
        Vec g = Vec::load_partial(gp + i, k);
        acc = log ? acc + g : fmadd(g, Vec::load_partial(yp + i, k), acc);
      }
      const Vec s = Vec::set1(reduce_add(acc));
      for (int64_t i = 0; i < d; i += W) {
        const int k = static_cast<int>(std::min<int64_t>(W, d - i));
        Vec g = Vec::load_partial(gp + i, k), v = Vec::load_partial(yp + i, k);
        (log ? fnmadd(exp_nonpositive(v), s, g) : v * (g - s)).store_partial(out + i, k);
      }
    }
    return;
  }
#pragma omp parallel for num_threads(t) schedule(dynamic, 8)
  for (int64_t ob = 0; ob < outer * blocks; ++ob) {
    const int64_t o = ob / blocks, b = (ob % blocks) * W;
    const int k = static_cast<int>(std::min<int64_t>(W, inner - b));
    const int64_t base = o * d * inner + b;
    Vec s = Vec::zero();
    for (int64_t j = 0; j < d; ++j) {
      Vec g = Vec::load_partial(gy + base + j * inner, k);
      s = log ? s + g : fmadd(g, Vec::load_partial(y + base + j * inner, k), s);
    }
    for (int64_t j = 0; j < d; ++j) {
      const int64_t off = base + j * inner;
      Vec g = Vec::load_partial(gy + off, k), v = Vec::load_partial(y + off, k);
      (log ? fnmadd(exp_nonpositive(v), s, g) : v * (g - s)).store_partial(gx + off, k);
    }
  }
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(act_forward, &act_forward_impl);
  register_kernel(add_act_forward, &add_act_forward_impl);
  register_kernel(conv2d_add_residual, &conv2d_add_residual_impl);
  register_kernel(act_backward, &act_backward_impl);
  register_kernel(prelu_forward, &prelu_forward_impl);
  register_kernel(prelu_backward, &prelu_backward_impl);
  register_kernel(softmax_forward, &softmax_forward_impl);
  register_kernel(softmax_backward, &softmax_backward_impl);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
