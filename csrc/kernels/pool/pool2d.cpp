// Pooling kernels, written once against Vec. Planes are split across threads.
// Max and average pooling vectorise across output columns whose window lies
// wholly inside the input row (strided loads: stride 1 plain, 2 deinterleaved,
// larger gathered); the border columns use the scalar window loop, which is
// also the reference for every column in the scalar build.
#include "kernels/pool/pool2d.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <omp.h>

#include "simd/prefetch.h"
#include "simd/vec_math.h"

namespace pve {
namespace PVE_KERNEL_NS {
namespace {

constexpr int W = Vec::kWidth;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }  // a >= 0, b > 0

inline int planes_threads(int64_t planes, int64_t work, int threads) {
  return (work < (1 << 15) || planes < 2) ? 1 : threads;
}

// Output columns [lo, hi) whose windows need no clipping.
inline void interior_columns(const Pool2dShape& s, int64_t* lo, int64_t* hi) {
  const int64_t span = static_cast<int64_t>(s.kernel_w - 1) * s.dilation_w;
  int64_t l = ceil_div(s.pad_w, s.stride_w);
  const int64_t num = s.in_w - 1 - span + s.pad_w;
  int64_t h = num >= 0 ? num / s.stride_w + 1 : 0;
  l = std::min(l, s.out_w);
  h = std::max(std::min(h, s.out_w), l);
  *lo = l;
  *hi = h;
}

// ------------------------------------------------------------------ max pool
// One window, scalar, in torch's order: the reference for the vector paths
// (first maximum in scan order; a NaN always wins, so the last NaN is kept).
inline void max_window(const float* x, const Pool2dShape& s, int64_t oh, int64_t ow, float* val,
                       int64_t* idx) {
  const int64_t H = s.in_h, IW = s.in_w;
  const int kh = s.kernel_h, kw = s.kernel_w, dh = s.dilation_h, dw = s.dilation_w;
  const int64_t hstart = oh * s.stride_h - s.pad_h, wstart = ow * s.stride_w - s.pad_w;
  const int r0 = hstart < 0 ? static_cast<int>(ceil_div(-hstart, dh)) : 0;
  const int r1 = static_cast<int>(std::min<int64_t>(kh, H > hstart ? ceil_div(H - hstart, dh) : 0));
  const int c0 = wstart < 0 ? static_cast<int>(ceil_div(-wstart, dw)) : 0;
  const int c1 = static_cast<int>(std::min<int64_t>(kw, IW > wstart ? ceil_div(IW - wstart, dw) : 0));
  float best = kNegInf;
  int64_t bi = (hstart + static_cast<int64_t>(r0) * dh) * IW + wstart + static_cast<int64_t>(c0) * dw;
  for (int r = r0; r < r1; ++r) {
    const int64_t ih = hstart + static_cast<int64_t>(r) * dh;
    for (int c = c0; c < c1; ++c) {
      const int64_t iw = wstart + static_cast<int64_t>(c) * dw;
      const float v = x[ih * IW + iw];
      const bool take = v > best || v != v;
      best = take ? v : best;
      bi = take ? ih * IW + iw : bi;
    }
  }
  *val = best;
  *idx = bi;
}

template <bool kIndex>
void max_pool_plane(const float* x, float* y, int64_t* ind, const Pool2dShape& s) {
  const int64_t H = s.in_h, IW = s.in_w, OW = s.out_w;
  const int kh = s.kernel_h, kw = s.kernel_w, dh = s.dilation_h, dw = s.dilation_w, sw = s.stride_w;
  int64_t lo, hi;
  interior_columns(s, &lo, &hi);
  // Flat offset of window tap t (scan order) from the window's top-left corner.
  auto tap_offset = [&](int t) {
    return static_cast<int64_t>(t / kw) * dh * IW + static_cast<int64_t>(t % kw) * dw;
  };
  for (int64_t oh = 0; oh < s.out_h; ++oh) {
    const int64_t hstart = oh * s.stride_h - s.pad_h;
    const int r0 = hstart < 0 ? static_cast<int>(ceil_div(-hstart, dh)) : 0;
    const int r1 = static_cast<int>(std::min<int64_t>(kh, H > hstart ? ceil_div(H - hstart, dh) : 0));
    float* yrow = y + oh * OW;
    int64_t* irow = kIndex ? ind + oh * OW : nullptr;
    auto scalar_window = [&](int64_t ow) {  // border columns
      int64_t unused;
      max_window(x, s, oh, ow, yrow + ow, kIndex ? irow + ow : &unused);
    };
    auto vector_block = [&](int64_t ow) {
      Vec best = Vec::set1(kNegInf);
      Vec tap = Vec::set1(static_cast<float>(r0 * kw));
      for (int r = r0; r < r1; ++r) {
        const float* row = x + (hstart + static_cast<int64_t>(r) * dh) * IW + ow * sw - s.pad_w;
        for (int c = 0; c < kw; ++c) {
          Vec v = load_strided(row + static_cast<int64_t>(c) * dw, sw);
          Mask m = mask_or(cmp_gt(v, best), is_nan(v));
          best = select(m, v, best);
          if (kIndex) tap = select(m, Vec::set1(static_cast<float>(r * kw + c)), tap);
        }
      }
      best.store(yrow + ow);
      if (kIndex) {
        float taps[W];
        tap.store(taps);
        const int64_t base = hstart * IW + ow * sw - s.pad_w;
        for (int l = 0; l < W; ++l)
          irow[ow + l] = base + l * sw + tap_offset(static_cast<int>(taps[l]));
      }
    };
    for (int64_t ow = 0; ow < lo; ++ow) scalar_window(ow);
    int64_t ow = lo;
    for (; ow + W <= hi; ow += W) vector_block(ow);
    // Remainder of the interior: one more block overlapping the previous one
    // (recomputing a few outputs is cheaper than the scalar loop).
    if (ow < hi && hi - lo >= W) {
      vector_block(hi - W);
      ow = hi;
    }
    for (; ow < OW; ++ow) scalar_window(ow);
  }
}

// Max that propagates NaN from either side (x86 max alone drops one of them).
inline Vec nan_max(Vec acc, Vec v) { return select(is_nan(acc), acc, max(acc, v)); }

// Values only (inference): separable. Per output row, the max over the valid
// window rows is taken for every input column (contiguous, full vectors) into
// `colmax`, then the max over window columns is read from it. Max is
// associative, so values equal the direct scan's; NaN propagates.
constexpr int64_t kColmaxRows = 8;  // output rows per vertical pass

void max_pool_plane_values(const float* x, float* y, const Pool2dShape& s, float* colmax) {
  const int64_t H = s.in_h, IW = s.in_w, OW = s.out_w;
  const int kh = s.kernel_h, kw = s.kernel_w, dh = s.dilation_h, dw = s.dilation_w, sw = s.stride_w;
  int64_t lo, hi;
  interior_columns(s, &lo, &hi);
  for (int64_t oh0 = 0; oh0 < s.out_h; oh0 += kColmaxRows) {
    const int64_t oh1 = std::min(s.out_h, oh0 + kColmaxRows);
    // Vertical pass for a block of output rows first, the horizontal pass
    // after: the strided loads then never wait on stores still in flight
    // (a load spanning two recent stores cannot be forwarded and stalls).
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const int64_t hstart = oh * s.stride_h - s.pad_h;
      const int r0 = hstart < 0 ? static_cast<int>(ceil_div(-hstart, dh)) : 0;
      const int r1 = static_cast<int>(std::min<int64_t>(kh, H > hstart ? ceil_div(H - hstart, dh) : 0));
      float* cm = colmax + (oh - oh0) * IW;
      int64_t i = 0;
      auto column_block = [&](int64_t i0, int n) {
        Vec acc = Vec::set1(kNegInf);
        for (int r = r0; r < r1; ++r)
          acc = nan_max(acc, Vec::load_partial(x + (hstart + static_cast<int64_t>(r) * dh) * IW + i0, n));
        acc.store_partial(cm + i0, n);
      };
      for (; i + W <= IW; i += W) column_block(i, W);
      if (i < IW) column_block(i, static_cast<int>(IW - i));
    }
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const float* cm = colmax + (oh - oh0) * IW;
      float* yrow = y + oh * OW;
      auto scalar_window = [&](int64_t ow) {
        const int64_t wstart = ow * sw - s.pad_w;
        const int c0 = wstart < 0 ? static_cast<int>(ceil_div(-wstart, dw)) : 0;
        const int c1 = static_cast<int>(std::min<int64_t>(kw, IW > wstart ? ceil_div(IW - wstart, dw) : 0));
        float best = kNegInf;
        for (int c = c0; c < c1; ++c) {
          const float v = cm[wstart + static_cast<int64_t>(c) * dw];
          best = (v > best || v != v) ? v : best;
        }
        yrow[ow] = best;
      };
      auto vector_block = [&](int64_t ow) {
        const float* base = cm + ow * sw - s.pad_w;
        Vec acc = Vec::set1(kNegInf);
        for (int c = 0; c < kw; ++c) acc = nan_max(acc, load_strided(base + static_cast<int64_t>(c) * dw, sw));
        acc.store(yrow + ow);
      };
      for (int64_t ow = 0; ow < lo; ++ow) scalar_window(ow);
      int64_t ow = lo;
      for (; ow + W <= hi; ow += W) vector_block(ow);
      if (ow < hi && hi - lo >= W) {
        vector_block(hi - W);
        ow = hi;
      }
      for (; ow < OW; ++ow) scalar_window(ow);
    }
  }
}

// Values only, width-2 windows at stride 2 (3 wide with pad 1: the ResNet
// stem; 2 wide with pad 0): per block of W outputs, the column maxima over the
// window rows for the 2W input columns under it stay in two registers and are
// split into even and odd columns; output j is max(odd[j-1], even[j], odd[j])
// (or max(even[j], odd[j])). No buffer, and each input row is loaded once per
// output row that uses it (the shared row comes from L1 the second time).
inline bool stride2_columns(const Pool2dShape& s) {
  return s.stride_w == 2 && s.dilation_w == 1 &&
         ((s.kernel_w == 3 && s.pad_w == 1) || (s.kernel_w == 2 && s.pad_w == 0));
}

// x86 max drops a NaN in its first operand; kExact uses the NaN-propagating
// one. Blocks with no NaN input (checked with one compare per two loads) take
// the plain max, which is all that runs on ordinary data.
template <bool kExact>
inline Vec pool_max(Vec a, Vec b) {
  return kExact ? max_propagate_nan(a, b) : max(a, b);
}

// W outputs from input columns c0 .. c0 + 2W - 1 of rows top, top + step, ...
// (nrows of them; nlo / nhi valid lanes per half, -inf past the row).
// *odd carries the odd columns to the next block (its column c0 - 1).
template <bool kExact>
inline Vec stride2_block(const float* top, int64_t step, int nrows, int nlo, int nhi, bool three,
                         Vec* odd, Mask* nan) {
  Vec lo = load_fill(top, nlo, kNegInf), hi = load_fill(top + W, nhi, kNegInf);
  if (!kExact) *nan = unordered(lo, hi);
  for (int r = 1; r < nrows; ++r) {
    const Vec u = load_fill(top + r * step, nlo, kNegInf), v = load_fill(top + r * step + W, nhi, kNegInf);
    if (!kExact) *nan = mask_or(*nan, unordered(u, v));
    lo = pool_max<kExact>(lo, u);
    hi = pool_max<kExact>(hi, v);
  }
  Vec even, o;
  deinterleave(lo, hi, &even, &o);
  Vec out = pool_max<kExact>(even, o);
  if (three) out = pool_max<kExact>(shift_in(*odd, o), out);
  *odd = o;
  return out;
}

void max_pool_plane_stride2(const float* x, float* y, const Pool2dShape& s) {
  const int64_t H = s.in_h, IW = s.in_w, OW = s.out_w;
  const int kh = s.kernel_h, dh = s.dilation_h;
  const bool three = s.kernel_w == 3;
  for (int64_t oh = 0; oh < s.out_h; ++oh) {
    const int64_t hstart = oh * s.stride_h - s.pad_h;
    const int r0 = hstart < 0 ? static_cast<int>(ceil_div(-hstart, dh)) : 0;
    const int r1 = static_cast<int>(std::min<int64_t>(kh, H > hstart ? ceil_div(H - hstart, dh) : 0));
    const float* top = x + (hstart + static_cast<int64_t>(r0) * dh) * IW;
    const int64_t step = static_cast<int64_t>(dh) * IW;
    float* yrow = y + oh * OW;
    Vec prev_odd = Vec::set1(kNegInf);  // column -1: padding
    bool prev_nan = false;              // prev_odd may hold a NaN
    for (int64_t j0 = 0; j0 < OW; j0 += W) {
      const int64_t c0 = 2 * j0;
      const int nlo = static_cast<int>(std::clamp<int64_t>(IW - c0, 0, W));
      const int nhi = static_cast<int>(std::clamp<int64_t>(IW - c0 - W, 0, W));
      const Vec carried = prev_odd;
      Mask nan;
      Vec out = stride2_block<false>(top + c0, step, r1 - r0, nlo, nhi, three, &prev_odd, &nan);
      const bool has_nan = any_lane(nan);
      if (has_nan || prev_nan) {  // rare: redo the block propagating NaN
        prev_odd = carried;
        out = stride2_block<true>(top + c0, step, r1 - r0, nlo, nhi, three, &prev_odd, &nan);
      }
      prev_nan = has_nan;
      const int64_t n = OW - j0;
      if (n >= W) {
        out.store(yrow + j0);
      } else {
        out.store_partial(yrow + j0, static_cast<int>(n));
      }
    }
  }
}

// Values only, the same windows when they are square and stride 2 down as well
// (3x3 pad 1, 2x2 pad 0; dilation 1). Output row i takes the elementwise max
// of its 2 or 3 input rows first, in full vectors, and only then splits that
// into even and odd columns (output j = max(odd[j-1], even[j], odd[j])): two
// permutes per W outputs, against two per window row when the columns come
// first. Plain max (it drops a NaN in its first operand); every loaded vector
// is checked for NaN (one masked compare per two loads), and a plane holding
// one is redone by max_pool_plane_stride2, which propagates it.
inline bool stride2_rows(const Pool2dShape& s) {
  return stride2_columns(s) && s.stride_h == 2 && s.dilation_h == 1 &&
         s.kernel_h == s.kernel_w && s.pad_h == s.pad_w;
}

// One output row from kRows input rows starting at `a` (IW apart). The rows
// are checked for NaN into *ok, the first one only when check_first (a row
// already checked as the last row of the previous output row is not checked
// again). The row loads are spelled out per kRows: a loop over the rows inside
// a lambda ran ~25% slower hot.
template <int kRows, bool kThree>
inline void stride2_rows_row(const float* a, int64_t IW, int64_t OW, bool check_first, float* yrow,
                             Mask* ok) {
  const float* b = a + IW;
  const float* c = b + IW;
  Mask m = *ok;
  Vec prev_odd = Vec::set1(kNegInf);  // column -1: padding
  auto out = [&](Vec lo, Vec hi, int64_t j0, int n) {
    Vec e, o;
    deinterleave(lo, hi, &e, &o);
    Vec r = max(e, o);
    if (kThree) r = max(shift_in(prev_odd, o), r);
    prev_odd = o;
    if (n >= W) {
      r.store(yrow + j0);
    } else {
      r.store_partial(yrow + j0, n);
    }
  };
  // Blocks whose 2W input columns and W outputs all exist: plain loads and stores.
  const int64_t full = std::min(OW / W, IW / (2 * W));
  int64_t j0 = 0;
  for (int64_t k = 0; k < full; ++k, j0 += W) {
    const int64_t c0 = 2 * j0;
    Vec lo = Vec::load(a + c0), hi = Vec::load(a + c0 + W);
    if (kRows == 1 || check_first) m = and_ordered(m, lo, hi);
    if (kRows >= 2) {
      const Vec u = Vec::load(b + c0), v = Vec::load(b + c0 + W);
      m = and_ordered(m, u, v);
      lo = max(lo, u);
      hi = max(hi, v);
    }
    if (kRows >= 3) {
      const Vec u = Vec::load(c + c0), v = Vec::load(c + c0 + W);
      m = and_ordered(m, u, v);
      lo = max(lo, u);
      hi = max(hi, v);
    }
    out(lo, hi, j0, W);
  }
  for (; j0 < OW; j0 += W) {
    const int64_t c0 = 2 * j0;
    const int nlo = static_cast<int>(std::clamp<int64_t>(IW - c0, 0, W));
    const int nhi = static_cast<int>(std::clamp<int64_t>(IW - c0 - W, 0, W));
    Vec lo = load_fill(a + c0, nlo, kNegInf), hi = load_fill(a + c0 + W, nhi, kNegInf);
    if (kRows == 1 || check_first) m = and_ordered(m, lo, hi);
    if (kRows >= 2) {
      const Vec u = load_fill(b + c0, nlo, kNegInf), v = load_fill(b + c0 + W, nhi, kNegInf);
      m = and_ordered(m, u, v);
      lo = max(lo, u);
      hi = max(hi, v);
    }
    if (kRows >= 3) {
      const Vec u = load_fill(c + c0, nlo, kNegInf), v = load_fill(c + c0 + W, nhi, kNegInf);
      m = and_ordered(m, u, v);
      lo = max(lo, u);
      hi = max(hi, v);
    }
    out(lo, hi, j0, static_cast<int>(std::min<int64_t>(W, OW - j0)));
  }
  *ok = m;
}

// Above this many bytes of output, the stride2_rows paths write it with
// non-temporal stores: plain stores would first read every output line from
// DRAM. Smaller outputs keep plain stores so that the next layer can read them
// from the last-level cache, the 1x1 driver's threshold (conv2d_gemm.cpp):
// ResNet-50's 12.8 MB max-pool output at batch 16 feeds two convolutions, and
// streaming it cost the model 1-3% (batch 16: 1 thread 449 vs 462 ms, 2
// threads 238 vs 245). Alone, with caches flushed, streaming is faster
// (bench_layers' 6.4 MB pool, 1 thread: values 0.87 -> 0.78 ms; with indices,
// streamed when they start on a line, 1.14-1.19 -> 1.05-1.08 ms).
constexpr int64_t kPoolStreamBytes = 16 << 20;
// Indices are read only by the backward pass, much later: streamed from 4 MiB.
constexpr int64_t kIndexStreamBytes = 4 << 20;

// A plane computed row by row into a scratch buffer (L1) goes out to dst with
// non-temporal stores, each 64-byte line as soon as the rows filling it are
// done, so the stores drain while the next rows are read (copied out at the
// end of the plane, they stalled the reads instead and gained nothing). The
// lines dst shares with its neighbours (before its first line boundary, after
// its last) get plain stores.
class PlaneStreamer {
 public:
  // count floats; scratch holds count + W.
  void begin(float* dst, const float* scratch, int64_t count) {
    dst_ = dst;
    src_ = scratch;
    n_ = count;
    const uintptr_t mis = reinterpret_cast<uintptr_t>(dst) % kLineBytes;
    head_ = mis == 0 || mis % sizeof(float) != 0
                ? (mis == 0 ? 0 : count)  // a dst not float-aligned is never streamed
                : std::min<int64_t>(count, static_cast<int64_t>((kLineBytes - mis) / sizeof(float)));
    done_ = head_;
  }
  // Floats [0, upto) of the scratch are final.
  void advance(int64_t upto) {
    const int64_t end = std::min(upto, n_);
    for (; done_ + W <= end; done_ += W) Vec::load(src_ + done_).stream(dst_ + done_);
  }
  // The scratch was rewritten (a plane redone for NaN): write it all again.
  void restart() { done_ = head_; }
  void finish() {
    advance(n_);
    std::memcpy(dst_, src_, sizeof(float) * head_);
    std::memcpy(dst_ + done_, src_ + done_, sizeof(float) * (n_ - done_));
  }

 private:
  float* dst_ = nullptr;
  const float* src_ = nullptr;
  int64_t n_ = 0, head_ = 0, done_ = 0;
};

// Bytes of input requested ahead of the rows being read (a software prefetch
// one line per line read). In bench_layers' 3x3 stride-2 pool on 1 thread
// this took the values path from ~1.4 to ~0.9 ms: the hardware prefetcher
// alone left the loop waiting on memory. 4-16 KiB all did about as well.
constexpr int64_t kPoolPrefetchBytes = 8 << 10;

// out: y is its scratch, streamed out as rows complete (or null: y is the output).
void max_pool_plane_stride2_rows(const float* x, float* y, const Pool2dShape& s,
                                 LinePrefetcher* pf, PlaneStreamer* out) {
  const int64_t H = s.in_h, IW = s.in_w, OW = s.out_w;
  const bool three = s.kernel_w == 3;
  Mask ok = all_true();
  for (int64_t oh = 0; oh < s.out_h; ++oh) {
    const int64_t r = 2 * oh;  // window rows: r - 1 (3x3, not for oh = 0), r, r + 1
    pf->ahead(x + (r + 2) * IW);
    float* yrow = y + oh * OW;
    const int rows = static_cast<int>(std::min<int64_t>(2, std::max<int64_t>(H - r, 0)));
    if (three && oh > 0) {  // row r - 1 was checked as the last row of output row oh - 1
      const float* a = x + (r - 1) * IW;
      if (rows == 2) stride2_rows_row<3, true>(a, IW, OW, false, yrow, &ok);
      else if (rows == 1) stride2_rows_row<2, true>(a, IW, OW, false, yrow, &ok);
      else stride2_rows_row<1, true>(a, IW, OW, false, yrow, &ok);
    } else if (three) {
      if (rows == 2) stride2_rows_row<2, true>(x + r * IW, IW, OW, true, yrow, &ok);
      else stride2_rows_row<1, true>(x + r * IW, IW, OW, true, yrow, &ok);
    } else {
      if (rows == 2) stride2_rows_row<2, false>(x + r * IW, IW, OW, true, yrow, &ok);
      else stride2_rows_row<1, false>(x + r * IW, IW, OW, true, yrow, &ok);
    }
    if (out) out->advance((oh + 1) * OW);
  }
  if (!all_lanes(ok)) {
    max_pool_plane_stride2(x, y, s);
    if (out) out->restart();
  }
}


// With indices (training), width-2 windows at stride 2 as max_pool_plane_stride2:
// per block of W outputs and per window row, the 2W input columns are loaded
// once and split into even / odd columns; the taps of a row are then odd[j-1]
// (carried from the previous block, per row), even[j], odd[j], visited in
// torch's scan order (rows, then columns) with a strict compare, so ties keep
// the first maximum. The winning tap is tracked as a float code (its offset
// from the window's top-left corner, exact below 2^24) with one blend per tap,
// and turned into int64 flat indices at the store. Blocks whose loads hold a
// NaN (or whose carried column may) are redone by the scalar window loop.
constexpr int kStride2IndexMaxRows = 8;

inline bool stride2_index_ok(const Pool2dShape& s) {
  return stride2_columns(s) && s.kernel_h <= kStride2IndexMaxRows &&
         static_cast<int64_t>(s.kernel_h) * s.dilation_h * s.in_w + 4 * W + 4 < (int64_t{1} << 24);
}

// One block of W outputs over kRows window rows (kRows > 0: unrolled, the
// carried columns stay in registers; 0: nrows at run time). The maximum B is
// taken first (a max tree), then the winning tap as the smallest code among
// the taps equal to B: codes grow in scan order over real taps, so that is
// torch's first maximum, and no compare waits on the previous one (a running
// strict-compare-and-blend over the 9 taps is one long dependency chain, and
// ran 2.5x slower than the values-only loop; an overwrite chain of blends in
// reverse scan order instead of the min tree was slower still). Taps equal to
// B are all real unless B is -inf (padding and lanes past the row are -inf);
// such lanes keep *code_io, the first real tap, as torch does.
template <int kRows, bool kThree>
inline void stride2_index_block(const float* top, int64_t step, int nrows, int nlo, int nhi,
                                Vec* carry, const Vec (*code_of)[3], Vec* best_out, Vec* code_io,
                                Mask* nan_out) {
  constexpr int kTaps = kThree ? 3 : 2;
  const int rows = kRows > 0 ? kRows : nrows;
  Vec tap[kRows > 0 ? kRows : kStride2IndexMaxRows][3];
  Vec best = Vec::set1(kNegInf);
  Mask nan = unordered(best, best);  // all false
  for (int r = 0; r < rows; ++r) {
    const float* row = top + r * step;
    const Vec lo = load_fill(row, nlo, kNegInf), hi = load_fill(row + W, nhi, kNegInf);
    nan = mask_or(nan, unordered(lo, hi));
    Vec even, odd;
    deinterleave(lo, hi, &even, &odd);
    if (kThree) {
      tap[r][0] = shift_in(carry[r], odd);
      tap[r][1] = even;
      tap[r][2] = odd;
      best = max(best, max(tap[r][0], max(even, odd)));
    } else {
      tap[r][0] = even;
      tap[r][1] = odd;
      best = max(best, max(even, odd));
    }
    carry[r] = odd;
  }
  // Taps in reverse scan order, each equal one overwriting: the first wins.
  const Vec none = Vec::set1(static_cast<float>(1 << 24));
  Vec code = none;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < kTaps; ++c)
      code = min(code, select(cmp_eq(tap[r][c], best), code_of[r][c], none));
  *code_io = select(cmp_gt(best, Vec::set1(kNegInf)), code, *code_io);
  *best_out = best;
  *nan_out = nan;
}

template <int kRows, bool kThree>
void stride2_index_row(const float* x, const Pool2dShape& s, int64_t oh, const float* top,
                       int64_t top_row, int nrows, const Vec (*code_of)[3], float* yrow,
                       int64_t* irow) {
  const int64_t IW = s.in_w, OW = s.out_w, step = static_cast<int64_t>(s.dilation_h) * IW;
  const Vec lane2 = lane_iota() * Vec::set1(2.0f);
  Vec carry[kRows > 0 ? kRows : kStride2IndexMaxRows];
  for (int r = 0; r < (kRows > 0 ? kRows : nrows); ++r) carry[r] = Vec::set1(kNegInf);  // column -1
  bool prev_nan = false;
  for (int64_t j0 = 0; j0 < OW; j0 += W) {
    const int64_t c0 = 2 * j0;
    const int nlo = static_cast<int>(std::clamp<int64_t>(IW - c0, 0, W));
    const int nhi = static_cast<int>(std::clamp<int64_t>(IW - c0 - W, 0, W));
    // The first output's window starts in the padding: its first real tap is c = 1.
    Vec code = (kThree && j0 == 0) ? shift_in(Vec::set1(1.0f), Vec::zero()) : Vec::zero();
    Vec best;
    Mask nan;
    stride2_index_block<kRows, kThree>(top + c0, step, nrows, nlo, nhi, carry, code_of, &best, &code, &nan);
    const int n = static_cast<int>(std::min<int64_t>(W, OW - j0));
    const bool has_nan = any_lane(nan);
    if (has_nan || prev_nan) {  // rare: torch's NaN rule, window by window
      for (int l = 0; l < n; ++l) max_window(x, s, oh, j0 + l, yrow + j0 + l, irow + j0 + l);
    } else {
      best.store_partial(yrow + j0, n);
      store_index(irow + j0, top_row * IW + c0 - s.pad_w, code + lane2, n);
    }
    prev_nan = has_nan;
  }
}

template <bool kThree>
void max_pool_plane_stride2_index(const float* x, float* y, int64_t* ind, const Pool2dShape& s) {
  const int64_t H = s.in_h, IW = s.in_w, OW = s.out_w;
  const int kh = s.kernel_h, dh = s.dilation_h;
  const int64_t step = static_cast<int64_t>(dh) * IW;
  // Tap codes: row r (counted from the first valid row), column c of the
  // window -> r * step + c.
  Vec code_of[kStride2IndexMaxRows][3];
  for (int r = 0; r < kh; ++r)
    for (int c = 0; c < 3; ++c) code_of[r][c] = Vec::set1(static_cast<float>(r * step + c));
  for (int64_t oh = 0; oh < s.out_h; ++oh) {
    const int64_t hstart = oh * s.stride_h - s.pad_h;
    const int r0 = hstart < 0 ? static_cast<int>(ceil_div(-hstart, dh)) : 0;
    const int r1 = static_cast<int>(std::min<int64_t>(kh, H > hstart ? ceil_div(H - hstart, dh) : 0));
    const int nrows = r1 - r0;
    const int64_t top_row = hstart + static_cast<int64_t>(r0) * dh;
    const float* top = x + top_row * IW;
    float* yrow = y + oh * OW;
    int64_t* irow = ind + oh * OW;
    switch (nrows) {
      case 1: stride2_index_row<1, kThree>(x, s, oh, top, top_row, 1, code_of, yrow, irow); break;
      case 2: stride2_index_row<2, kThree>(x, s, oh, top, top_row, 2, code_of, yrow, irow); break;
      case 3: stride2_index_row<3, kThree>(x, s, oh, top, top_row, 3, code_of, yrow, irow); break;
      default: stride2_index_row<0, kThree>(x, s, oh, top, top_row, nrows, code_of, yrow, irow); break;
    }
  }
}

// With indices, the square windows of stride2_rows: each input row is read
// once. Its horizontal first maxima (value and column, one per output column)
// are taken once, in torch's scan order within the row (odd[j-1], even[j],
// odd[j], a strict compare so ties keep the first); the rows of a window are
// then combined in order with a strict compare as well, so the first maximum
// in scan order wins: the row first, then the column within it. For 3x3, row
// 2i + 1 serves output rows i and i + 1 through a carried row of (value,
// code). Codes are flat positions in the plane kept as exact floats (the plane
// is below 2^24 elements). A plane whose loads hold a NaN is redone by
// max_pool_plane_stride2_index, which follows torch's NaN rule.
inline bool stride2_rows_index_ok(const Pool2dShape& s) {
  return stride2_rows(s) && s.in_h * s.in_w + 4 * W < (int64_t{1} << 24);
}

// First maximum of taps odd[j-1], even[j], odd[j] of one input row (or even[j],
// odd[j]) for the W outputs from j0; col holds the columns of even[j].
template <bool kThree>
inline void row_first_max(const float* row, int64_t IW, int64_t j0, Vec col, Vec* prev_odd,
                          Vec* val, Vec* code, Mask* ok) {
  const int64_t c0 = 2 * j0;
  const int nlo = static_cast<int>(std::clamp<int64_t>(IW - c0, 0, W));
  const int nhi = static_cast<int>(std::clamp<int64_t>(IW - c0 - W, 0, W));
  const Vec lo = nlo >= W ? Vec::load(row + c0) : load_fill(row + c0, nlo, kNegInf);
  const Vec hi = nhi >= W ? Vec::load(row + c0 + W) : load_fill(row + c0 + W, nhi, kNegInf);
  *ok = and_ordered(*ok, lo, hi);
  Vec e, o;
  deinterleave(lo, hi, &e, &o);
  const Vec one = Vec::set1(1.0f);
  if (kThree) {
    Vec m, c;
    if (j0 == 0) {
      // Output 0's first tap is the padding: start from column 0 instead
      // (the same value as its second tap), so a row of -inf keeps column 0.
      m = shift_in(Vec::set1(row[0]), o);
      c = select(cmp_eq(lane_iota(), Vec::zero()), col, col - one);
    } else {
      m = shift_in(*prev_odd, o);
      c = col - one;
    }
    *prev_odd = o;
    Mask k = cmp_gt(e, m);
    m = select(k, e, m);
    c = select(k, col, c);
    k = cmp_gt(o, m);
    *val = select(k, o, m);
    *code = select(k, col + one, c);
  } else {
    const Mask k = cmp_gt(o, e);
    *val = select(k, o, e);
    *code = select(k, col + one, col);
  }
}

// carry_val / carry_code: OW + W floats each (the maxima of the shared row).
// stream_idx: ind and every row of it start on a 64-byte line; the indices are
// then written with non-temporal stores. out: as for max_pool_plane_stride2_rows.
template <bool kThree>
void max_pool_plane_stride2_rows_index(const float* x, float* y, int64_t* ind, const Pool2dShape& s,
                                       float* carry_val, float* carry_code, LinePrefetcher* pf,
                                       bool stream_idx, PlaneStreamer* out) {
  const int64_t H = s.in_h, IW = s.in_w, OW = s.out_w;
  const Vec lane2 = lane_iota() * Vec::set1(2.0f);
  Mask ok = all_true();
  for (int64_t oh = 0; oh < s.out_h; ++oh) {
    const int64_t r = 2 * oh;  // window rows: r - 1 (3x3, carried), r, r + 1
    pf->ahead(x + (r + 2) * IW);
    const bool have_a = kThree && oh > 0, have_b = r < H, have_c = r + 1 < H;
    const float* rb = x + r * IW;
    const float* rc = rb + IW;
    const Vec boff = Vec::set1(static_cast<float>(r * IW));
    const Vec coff = Vec::set1(static_cast<float>((r + 1) * IW));
    Vec odd_b = Vec::set1(kNegInf), odd_c = odd_b;
    float* yrow = y + oh * OW;
    int64_t* irow = ind + oh * OW;
    for (int64_t j0 = 0; j0 < OW; j0 += W) {
      const Vec col = lane2 + Vec::set1(static_cast<float>(2 * j0));
      Vec v, c;
      if (have_b) {
        row_first_max<kThree>(rb, IW, j0, col, &odd_b, &v, &c, &ok);
        c = c + boff;
        if (have_a) {  // the earlier row wins ties
          const Vec va = Vec::load(carry_val + j0), ca = Vec::load(carry_code + j0);
          const Mask k = cmp_gt(v, va);
          v = select(k, v, va);
          c = select(k, c, ca);
        }
      } else {  // ceil_mode: a last window holding only the carried row
        v = Vec::load(carry_val + j0);
        c = Vec::load(carry_code + j0);
      }
      if (have_c) {
        Vec vc, cc;
        row_first_max<kThree>(rc, IW, j0, col, &odd_c, &vc, &cc, &ok);
        cc = cc + coff;
        if (kThree) {
          vc.store(carry_val + j0);
          cc.store(carry_code + j0);
        }
        const Mask k = cmp_gt(vc, v);
        v = select(k, vc, v);
        c = select(k, cc, c);
      }
      const int n = static_cast<int>(std::min<int64_t>(W, OW - j0));
      if (n >= W) {
        v.store(yrow + j0);
      } else {
        v.store_partial(yrow + j0, n);
      }
      if (stream_idx) {
        stream_index(irow + j0, c, n);
      } else {
        store_index(irow + j0, 0, c, n);
      }
    }
    if (out) out->advance((oh + 1) * OW);
  }
  if (!all_lanes(ok)) {
    max_pool_plane_stride2_index<kThree>(x, y, ind, s);
    if (out) out->restart();
  }
}

// Called inside a parallel region: the planes in chunks of consecutive planes,
// each read as one stream with its own prefetch cursor. With more than one
// thread, kPoolChunksPerThread chunks per thread are handed out dynamically,
// so a thread slowed by another process on its core does not hold the others
// up (on the 2-core bench machine one usually is); one thread takes all planes
// as one chunk.
constexpr int kPoolChunksPerThread = 4;

template <typename ChunkFn>
void for_plane_chunks(const void* x, int64_t planes, int64_t plane_bytes, ChunkFn chunk) {
  const int nt = omp_get_num_threads();
  const int64_t chunks = nt == 1 ? 1 : std::min<int64_t>(planes, int64_t{nt} * kPoolChunksPerThread);
  const char* base = static_cast<const char*>(x);
#pragma omp for schedule(dynamic, 1)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t p0 = planes * k / chunks, p1 = planes * (k + 1) / chunks;
    LinePrefetcher pf(base + p0 * plane_bytes, base + p1 * plane_bytes, kPoolPrefetchBytes);
    chunk(p0, p1, &pf);
  }
}

void max_pool2d_forward_impl(const float* x, float* y, int64_t* indices, const Pool2dShape& s,
                             int threads) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  const int t = planes_threads(s.planes, s.planes * in_plane, threads);
  const bool stream_y = s.planes * out_plane * static_cast<int64_t>(sizeof(float)) > kPoolStreamBytes;
  if (indices && stride2_rows_index_ok(s)) {
    const bool stream_idx = s.planes * out_plane * static_cast<int64_t>(sizeof(int64_t)) >
                                kIndexStreamBytes &&
                            reinterpret_cast<uintptr_t>(indices) % kLineBytes == 0 &&
                            s.out_w * static_cast<int64_t>(sizeof(int64_t)) % kLineBytes == 0 &&
                            W * static_cast<int64_t>(sizeof(int64_t)) % kLineBytes == 0;
#pragma omp parallel num_threads(t)
    {
      const size_t n = static_cast<size_t>(s.out_w + W);
      std::vector<float> carry_val(n), carry_code(n), scratch(stream_y ? out_plane + W : 0);
      PlaneStreamer out;
      for_plane_chunks(x, s.planes, in_plane * static_cast<int64_t>(sizeof(float)),
                       [&](int64_t p0, int64_t p1, LinePrefetcher* pf) {
        for (int64_t p = p0; p < p1; ++p) {
          if (stream_y) out.begin(y + p * out_plane, scratch.data(), out_plane);
          float* dst = stream_y ? scratch.data() : y + p * out_plane;
          PlaneStreamer* po = stream_y ? &out : nullptr;
          if (s.kernel_w == 3)
            max_pool_plane_stride2_rows_index<true>(x + p * in_plane, dst, indices + p * out_plane, s,
                                                    carry_val.data(), carry_code.data(), pf, stream_idx, po);
          else
            max_pool_plane_stride2_rows_index<false>(x + p * in_plane, dst, indices + p * out_plane, s,
                                                     carry_val.data(), carry_code.data(), pf, stream_idx, po);
          if (stream_y) out.finish();
        }
      });
      if (stream_y || stream_idx) stream_fence();
    }
    return;
  }
  if (indices && stride2_index_ok(s)) {
#pragma omp parallel for num_threads(t) schedule(dynamic, 2)
    for (int64_t p = 0; p < s.planes; ++p) {
      if (s.kernel_w == 3)
        max_pool_plane_stride2_index<true>(x + p * in_plane, y + p * out_plane, indices + p * out_plane, s);
      else
        max_pool_plane_stride2_index<false>(x + p * in_plane, y + p * out_plane, indices + p * out_plane, s);
    }
    return;
  }
  if (indices) {
#pragma omp parallel for num_threads(t) schedule(dynamic, 2)
    for (int64_t p = 0; p < s.planes; ++p)
      max_pool_plane<true>(x + p * in_plane, y + p * out_plane, indices + p * out_plane, s);
    return;
  }
  if (stride2_rows(s)) {
#pragma omp parallel num_threads(t)
    {
      std::vector<float> scratch(stream_y ? out_plane + W : 0);
      PlaneStreamer out;
      for_plane_chunks(x, s.planes, in_plane * static_cast<int64_t>(sizeof(float)),
                       [&](int64_t p0, int64_t p1, LinePrefetcher* pf) {
        for (int64_t p = p0; p < p1; ++p) {
          if (!stream_y) {
            max_pool_plane_stride2_rows(x + p * in_plane, y + p * out_plane, s, pf, nullptr);
            continue;
          }
          out.begin(y + p * out_plane, scratch.data(), out_plane);
          max_pool_plane_stride2_rows(x + p * in_plane, scratch.data(), s, pf, &out);
          out.finish();
        }
      });
      if (stream_y) stream_fence();
    }
    return;
  }
  if (stride2_columns(s)) {
#pragma omp parallel for num_threads(t) schedule(dynamic, 2)
    for (int64_t p = 0; p < s.planes; ++p)
      max_pool_plane_stride2(x + p * in_plane, y + p * out_plane, s);
    return;
  }
#pragma omp parallel num_threads(t)
  {
    std::vector<float> colmax(static_cast<size_t>(std::max<int64_t>(s.in_w, 1) * kColmaxRows));
#pragma omp for schedule(dynamic, 2)
    for (int64_t p = 0; p < s.planes; ++p)
      max_pool_plane_values(x + p * in_plane, y + p * out_plane, s, colmax.data());
  }
}

// Each plane: zeroed, then gx[idx] += gy in output order (torch's order of
// the adds where windows share a position). Planes in chunks of consecutive
// planes (for_plane_chunks), and gy and the indices are requested 8 KiB
// (indices) / 4 KiB (gy) ahead of the scatter: without that the scalar scatter did not overlap its
// DRAM reads (bench_layers' 3x3 stride-2 backward, 1 thread: 2.5 -> 1.6 ms).
// Building each plane in a scratch plane and writing it out with streaming
// stores (in one go per plane, or interleaved with the next plane's scatter)
// was no faster than this in-place scatter, with or without the prefetch.
void scatter_plane(float* g, const float* go, const int64_t* id, int64_t in_hw, int64_t out_hw,
                   LinePrefetcher* pf_gy, LinePrefetcher* pf_id) {
  std::memset(g, 0, sizeof(float) * in_hw);
  constexpr int64_t kStep = 64;  // outputs between prefetch calls
  for (int64_t o0 = 0; o0 < out_hw; o0 += kStep) {
    pf_gy->ahead(go + o0);
    pf_id->ahead(id + o0);
    const int64_t o1 = std::min(out_hw, o0 + kStep);
    for (int64_t o = o0; o < o1; ++o) {
      const int64_t i = id[o];
      if (static_cast<uint64_t>(i) < static_cast<uint64_t>(in_hw)) g[i] += go[o];
    }
  }
}

void max_pool2d_backward_impl(const float* gy, const int64_t* indices, float* gx, int64_t planes,
                              int64_t in_hw, int64_t out_hw, int threads) {
  const int t = planes_threads(planes, planes * in_hw, threads);
#pragma omp parallel num_threads(t)
  for_plane_chunks(indices, planes, out_hw * static_cast<int64_t>(sizeof(int64_t)),
                   [&](int64_t p0, int64_t p1, LinePrefetcher* pf_id) {
    LinePrefetcher pf_gy(gy + p0 * out_hw, gy + p1 * out_hw, kPoolPrefetchBytes / 2);
    for (int64_t p = p0; p < p1; ++p)
      scatter_plane(gx + p * in_hw, gy + p * out_hw, indices + p * out_hw, in_hw, out_hw, &pf_gy, pf_id);
  });
}

// ------------------------------------------------------------------ avg pool
struct AvgWindow {
  int64_t start, end;  // clipped to the input
  int64_t size;        // including padding, as torch counts it
};

inline AvgWindow avg_window(int64_t o, int stride, int pad, int k, int64_t in) {
  int64_t start = o * stride - pad;
  int64_t end = std::min<int64_t>(start + k, in + pad);
  const int64_t size = end - start;
  start = std::max<int64_t>(start, 0);
  end = std::min<int64_t>(end, in);
  return {start, end, size};
}

inline float avg_divisor(const AvgWindow& h, const AvgWindow& w, bool include_pad, int64_t over) {
  if (over > 0) return static_cast<float>(over);
  if (include_pad) return static_cast<float>(h.size * w.size);
  return static_cast<float>((h.end - h.start) * (w.end - w.start));
}

void avg_pool_plane(const float* x, float* y, const Pool2dShape& s, bool include_pad, int64_t over) {
  const int64_t IW = s.in_w, OW = s.out_w;
  const int sw = s.stride_w, kw = s.kernel_w;
  int64_t lo, hi;
  interior_columns(s, &lo, &hi);
  for (int64_t oh = 0; oh < s.out_h; ++oh) {
    const AvgWindow hwin = avg_window(oh, s.stride_h, s.pad_h, s.kernel_h, s.in_h);
    float* yrow = y + oh * OW;
    auto scalar_window = [&](int64_t ow) {
      const AvgWindow wwin = avg_window(ow, sw, s.pad_w, kw, IW);
      if (hwin.start >= hwin.end || wwin.start >= wwin.end) {
        yrow[ow] = 0.0f;
        return;
      }
      float sum = 0.0f;
      for (int64_t ih = hwin.start; ih < hwin.end; ++ih)
        for (int64_t iw = wwin.start; iw < wwin.end; ++iw) sum += x[ih * IW + iw];
      yrow[ow] = sum / avg_divisor(hwin, wwin, include_pad, over);
    };
    for (int64_t ow = 0; ow < lo; ++ow) scalar_window(ow);
    int64_t ow = lo;
    if (hwin.start < hwin.end) {
      // Interior columns share one divisor: full kernel width, same rows.
      const AvgWindow full{0, kw, kw};
      const Vec inv = Vec::set1(1.0f / avg_divisor(hwin, full, include_pad, over));
      auto vector_block = [&](int64_t o) {
        Vec sum = Vec::zero();
        for (int64_t ih = hwin.start; ih < hwin.end; ++ih) {
          const float* row = x + ih * IW + o * sw - s.pad_w;
          for (int c = 0; c < kw; ++c) sum = sum + load_strided(row + c, sw);
        }
        (sum * inv).store(yrow + o);
      };
      for (; ow + W <= hi; ow += W) vector_block(ow);
      if (ow < hi && hi - lo >= W) {
        vector_block(hi - W);
        ow = hi;
      }
    }
    for (; ow < OW; ++ow) scalar_window(ow);
  }
}

void avg_pool2d_forward_impl(const float* x, float* y, const Pool2dShape& s, bool include_pad,
                             int64_t over, int threads) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  const int t = planes_threads(s.planes, s.planes * in_plane, threads);
#pragma omp parallel for num_threads(t) schedule(dynamic, 2)
  for (int64_t p = 0; p < s.planes; ++p)
    avg_pool_plane(x + p * in_plane, y + p * out_plane, s, include_pad, over);
}

void avg_pool2d_backward_impl(const float* gy, float* gx, const Pool2dShape& s, bool include_pad,
                              int64_t over, int threads) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  const int t = planes_threads(s.planes, s.planes * in_plane, threads);
#pragma omp parallel for num_threads(t) schedule(dynamic, 2)
  for (int64_t p = 0; p < s.planes; ++p) {
    float* g = gx + p * in_plane;
    std::memset(g, 0, sizeof(float) * in_plane);
    const float* go = gy + p * out_plane;
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      const AvgWindow hwin = avg_window(oh, s.stride_h, s.pad_h, s.kernel_h, s.in_h);
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        const AvgWindow wwin = avg_window(ow, s.stride_w, s.pad_w, s.kernel_w, s.in_w);
        if (hwin.start >= hwin.end || wwin.start >= wwin.end) continue;
        const float v = go[oh * s.out_w + ow] / avg_divisor(hwin, wwin, include_pad, over);
        for (int64_t ih = hwin.start; ih < hwin.end; ++ih)
          for (int64_t iw = wwin.start; iw < wwin.end; ++iw) g[ih * s.in_w + iw] += v;
      }
    }
  }
}

// ------------------------------------------------------------- adaptive pool
inline int64_t adaptive_start(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
inline int64_t adaptive_end(int64_t o, int64_t in, int64_t out) {
  return ((o + 1) * in + out - 1) / out;
}

void adaptive_max_pool2d_impl(const float* x, float* y, int64_t* indices, int64_t planes,
                              int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                              int threads) {
  const int t = planes_threads(planes, planes * in_h * in_w, threads);
#pragma omp parallel for num_threads(t) schedule(dynamic, 2)
  for (int64_t p = 0; p < planes; ++p) {
    const float* xp = x + p * in_h * in_w;
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const int64_t h0 = adaptive_start(oh, in_h, out_h), h1 = adaptive_end(oh, in_h, out_h);
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t w0 = adaptive_start(ow, in_w, out_w), w1 = adaptive_end(ow, in_w, out_w);
        float best = kNegInf;
        int64_t bi = h0 * in_w + w0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) {
            const float v = xp[ih * in_w + iw];
            if (v > best || std::isnan(v)) {
              best = v;
              bi = ih * in_w + iw;
            }
          }
        const int64_t o = p * out_h * out_w + oh * out_w + ow;
        y[o] = best;
        if (indices) indices[o] = bi;
      }
    }
  }
}

void adaptive_avg_pool2d_impl(const float* x, float* y, int64_t planes, int64_t in_h, int64_t in_w,
                              int64_t out_h, int64_t out_w, int threads) {
  const int t = planes_threads(planes, planes * in_h * in_w, threads);
#pragma omp parallel for num_threads(t) schedule(dynamic, 2)
  for (int64_t p = 0; p < planes; ++p) {
    const float* xp = x + p * in_h * in_w;
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const int64_t h0 = adaptive_start(oh, in_h, out_h), h1 = adaptive_end(oh, in_h, out_h);
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t w0 = adaptive_start(ow, in_w, out_w), w1 = adaptive_end(ow, in_w, out_w);
        float sum = 0.0f;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) sum += xp[ih * in_w + iw];
        y[p * out_h * out_w + oh * out_w + ow] = sum / static_cast<float>((h1 - h0) * (w1 - w0));
      }
    }
  }
}

void adaptive_avg_pool2d_backward_impl(const float* gy, float* gx, int64_t planes, int64_t in_h,
                                       int64_t in_w, int64_t out_h, int64_t out_w, int threads) {
  const int t = planes_threads(planes, planes * in_h * in_w, threads);
#pragma omp parallel for num_threads(t) schedule(dynamic, 2)
  for (int64_t p = 0; p < planes; ++p) {
    float* g = gx + p * in_h * in_w;
    std::memset(g, 0, sizeof(float) * in_h * in_w);
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const int64_t h0 = adaptive_start(oh, in_h, out_h), h1 = adaptive_end(oh, in_h, out_h);
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t w0 = adaptive_start(ow, in_w, out_w), w1 = adaptive_end(ow, in_w, out_w);
        const float v = gy[p * out_h * out_w + oh * out_w + ow] /
                        static_cast<float>((h1 - h0) * (w1 - w0));
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) g[ih * in_w + iw] += v;
      }
    }
  }
}

// ------------------------------------------------------- global average pool
// Partial sums of one plane in one vector (the caller reduces the lanes).
inline Vec plane_partial(const float* xp, int64_t hw) {
  Vec a0 = Vec::zero(), a1 = Vec::zero();
  int64_t i = 0;
  for (; i + 2 * W <= hw; i += 2 * W) {
    a0 = a0 + Vec::load(xp + i);
    a1 = a1 + Vec::load(xp + i + W);
  }
  if (i + W <= hw) {
    a0 = a0 + Vec::load(xp + i);
    i += W;
  }
  if (i < hw) a1 = a1 + Vec::load_partial(xp + i, static_cast<int>(hw - i));  // 0 past the plane
  return a0 + a1;
}

// Below this many bytes one thread finishes before a sleeping second one
// (OMP_WAIT_POLICY=PASSIVE) would be woken and scheduled; measured on the
// bench machine (bench/README.md, "Layers").
constexpr int64_t kGapParallelBytes = 4 << 20;
constexpr int kGapStreams = 4;

void global_avg_pool_impl(const float* x, float* y, int64_t planes, int64_t hw, int threads) {
  const int t = planes * hw * static_cast<int64_t>(sizeof(float)) < kGapParallelBytes ? 1 : threads;
  const Vec inv = Vec::set1(1.0f / static_cast<float>(hw));
  // W planes per step: one partial vector each, then one shuffle tree turns
  // the W partials into W sums (small planes, e.g. 7x7 = 49 floats, would
  // otherwise spend as long on horizontal sums as on loading).
  const int64_t groups = ceil_div(planes, W);
  auto group = [&](int64_t g) {
    const int64_t p0 = g * W;
    const int n = static_cast<int>(std::min<int64_t>(W, planes - p0));
    Vec part[W];
    for (int j = 0; j < n; ++j) part[j] = plane_partial(x + (p0 + j) * hw, hw);
    for (int j = n; j < W; ++j) part[j] = Vec::zero();
    (reduce_add_lanes(part) * inv).store_partial(y + p0, n);
  };
  // Each thread's range of groups is read as kGapStreams interleaved
  // sub-ranges, a group of each in turn: the hardware prefetchers follow
  // every stream, so more lines are in flight than one stream gets. On the
  // Zen 2 bench machine one core read 13 GB/s as one stream and 20 as four
  // (a prefetch cursor ahead of one stream: 14); bench_layers' 32x2048x7x7
  // from DRAM, medians of 3 interleaved runs: 1.17 -> 0.88 ms on 1 thread,
  // 0.75 -> 0.55 on 2. (On the Intel Xeon of session 23 the cursor was the
  // better of the two. Max pooling did not gain from the same interleave, 4
  // planes a band of rows each in turn: 2.25 -> 2.9 ms without its cursor,
  // 2.26 with one cursor per plane.)
#pragma omp parallel num_threads(t)
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t g0 = groups * id / nt, g1 = groups * (id + 1) / nt;
    int64_t next[kGapStreams], end[kGapStreams];
    for (int k = 0; k < kGapStreams; ++k) {
      next[k] = g0 + (g1 - g0) * k / kGapStreams;
      end[k] = g0 + (g1 - g0) * (k + 1) / kGapStreams;
    }
    // The last sub-range is the longest (sizes differ by at most one).
    while (next[kGapStreams - 1] < end[kGapStreams - 1])
      for (int k = 0; k < kGapStreams; ++k)
        if (next[k] < end[k]) group(next[k]++);
  }
}

void global_avg_pool_backward_impl(const float* gy, float* gx, int64_t planes, int64_t hw,
                                   int threads) {
  const int t = planes_threads(planes, planes * hw, threads);
  const float inv = 1.0f / static_cast<float>(hw);
#pragma omp parallel for num_threads(t) schedule(dynamic, 64)
  for (int64_t p = 0; p < planes; ++p) {
    const Vec v = Vec::set1(gy[p] * inv);
    float* g = gx + p * hw;
    for (int64_t i = 0; i < hw; i += W) v.store_partial(g + i, static_cast<int>(std::min<int64_t>(W, hw - i)));
  }
}

}  // namespace

PVE_REGISTER_KERNELS {
  register_kernel(max_pool2d_forward, &max_pool2d_forward_impl);
  register_kernel(max_pool2d_backward, &max_pool2d_backward_impl);
  register_kernel(avg_pool2d_forward, &avg_pool2d_forward_impl);
  register_kernel(avg_pool2d_backward, &avg_pool2d_backward_impl);
  register_kernel(adaptive_max_pool2d_forward, &adaptive_max_pool2d_impl);
  register_kernel(adaptive_avg_pool2d_forward, &adaptive_avg_pool2d_impl);
  register_kernel(adaptive_avg_pool2d_backward, &adaptive_avg_pool2d_backward_impl);
  register_kernel(global_avg_pool_forward, &global_avg_pool_impl);
  register_kernel(global_avg_pool_backward, &global_avg_pool_backward_impl);
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
