// Bindings of the nChw16c inference kernels (kernels/conv/conv2d_blocked.h).
// A blocked activation travels through Python as a 1-D float32 array plus its
// logical (N, C, H, W); every size a kernel relies on is checked here against
// that shape, so a wrong pairing raises instead of reading out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "bindings/checks.h"
#include "core/threads.h"
#include "kernels/conv/conv2d_blocked.h"

namespace py = pybind11;

namespace pve {

PVE_DEFINE_KERNEL(conv2d_blocked_reorder, BlockedReorderFn);
PVE_DEFINE_KERNEL(conv2d_blocked_dense_nchw, BlockedDenseFn);
PVE_DEFINE_KERNEL(conv2d_blocked_pointwise, BlockedPointwiseFn);
PVE_DEFINE_KERNEL(conv2d_blocked_depthwise, BlockedDepthwiseFn);
PVE_DEFINE_KERNEL(conv2d_blocked_inverted_residual, BlockedInvertedResidualFn);

namespace {

using Pair = std::tuple<int64_t, int64_t>;
constexpr double kMaxFloats = double(int64_t(1) << 34);  // 64 GiB

BlockedShape make_shape(const std::vector<int64_t>& shape, const char* op) {
  if (shape.size() != 4)
    throw py::value_error(std::string(op) + ": shape must be (N, C, H, W), got " + shape_str(shape));
  for (int64_t d : shape)
    if (d < 1) throw py::value_error(std::string(op) + ": empty shape " + shape_str(shape));
  BlockedShape s;
  s.batch = shape[0];
  s.channels = shape[1];
  s.height = shape[2];
  s.width = shape[3];
  if (static_cast<double>(s.batch) * (s.blocks() * kChannelBlock) * s.height * s.width > kMaxFloats)
    throw py::value_error(std::string(op) + ": shape " + shape_str(shape) + " is too large");
  return s;
}

// Blocked buffers start on a cache line: every pixel's 16 channels are then
// one aligned 64-byte line, never a split load.
py::array_t<float> new_blocked(const BlockedShape& s) { return aligned_f32_array(s.floats()); }

void check_blocked(const py::array& a, const BlockedShape& s, const char* op, const char* arg) {
  check_f32(a, op, arg, 1);
  if (a.shape(0) != s.floats())
    throw py::value_error(std::string(op) + ": " + arg + " has " + std::to_string(a.shape(0)) +
                          " floats, a blocked (" + std::to_string(s.batch) + ", " +
                          std::to_string(s.channels) + ", " + std::to_string(s.height) + ", " +
                          std::to_string(s.width) + ") activation has " +
                          std::to_string(s.floats()));
}

void check_relu_max(float relu_max, const char* op) {
  if (!(relu_max >= 0.0f))
    throw py::value_error(std::string(op) + ": relu_max must be >= 0, got " +
                          std::to_string(relu_max));
}

// Each op's arguments checked against its input's logical shape (every size
// the kernel relies on); the single-op bindings and the sequence share them.
void finish_output(float* y, const BlockedShape& o) {
  std::fill(y + o.floats() - kBlockedSlack, y + o.floats(), 0.0f);
}

// Packed weights, bias and the ReLU clamp (same field names in every op's arguments).
template <typename Args>
void set_weights(Args& a, const py::array& w, const py::array& bias, bool relu, float relu_max) {
  a.weight = f32_data(w);
  a.bias = f32_data(bias);
  a.relu = relu;
  a.relu_max = relu_max;
}

// Stride, padding (top, left), dilation and output size of a depthwise or dense op
// (same field names in both argument structs). Any output size is memory-safe
// (every tap outside the input is skipped); the caller computes it as torch does.
template <typename Args>
void set_geometry(Args& a, Pair stride, Pair padding, Pair dilation, Pair out, const char* op) {
  std::tie(a.stride_h, a.stride_w) = stride;
  std::tie(a.pad_top, a.pad_left) = padding;
  std::tie(a.dilation_h, a.dilation_w) = dilation;
  std::tie(a.out_h, a.out_w) = out;
  if (a.stride_h < 1 || a.stride_w < 1 || a.dilation_h < 1 || a.dilation_w < 1 || a.pad_top < 0 ||
      a.pad_left < 0)
    throw py::value_error(std::string(op) + ": stride and dilation must be positive, padding "
                          "non-negative");
  if (a.out_h < 1 || a.out_w < 1)
    throw py::value_error(std::string(op) + ": output size must be positive");
}

BlockedPointwiseArgs pointwise_args(const BlockedShape& in, const py::array& w,
                                    const py::array& bias, int64_t out_channels, bool relu,
                                    float relu_max) {
  const char* op = "conv2d_blocked_pointwise";
  check_relu_max(relu_max, op);
  if (out_channels < 1) throw py::value_error(std::string(op) + ": out_channels must be positive");
  BlockedShape o = in;
  o.channels = out_channels;
  check_f32(w, op, "packed weight", 3);
  expect_shape(w, {o.blocks(), in.blocks() * kChannelBlock, kChannelBlock}, op, "packed weight");
  check_f32(bias, op, "packed bias", 1);
  expect_shape(bias, {o.blocks() * kChannelBlock}, op, "packed bias");
  BlockedPointwiseArgs a;
  a.input = in;
  a.out_channels = out_channels;
  set_weights(a, w, bias, relu, relu_max);
  return a;
}

BlockedShape pointwise_output(const BlockedPointwiseArgs& a) {
  BlockedShape o = a.input;
  o.channels = a.out_channels;
  return o;
}

BlockedDepthwiseArgs depthwise_args(const BlockedShape& in, const py::array& w,
                                    const py::array& bias, Pair stride, Pair padding,
                                    Pair dilation, Pair out, bool relu, float relu_max) {
  const char* op = "conv2d_blocked_depthwise";
  check_relu_max(relu_max, op);
  check_f32(w, op, "packed weight", 4);  // (C blocks, kernel_h, kernel_w, 16)
  if (w.shape(0) != in.blocks() || w.shape(3) != kChannelBlock || w.shape(1) < 1 || w.shape(2) < 1)
    throw py::value_error(std::string(op) + ": packed weight must have shape (" +
                          std::to_string(in.blocks()) + ", kernel_h, kernel_w, 16), got " +
                          shape_str(shape_of(w)));
  check_f32(bias, op, "packed bias", 1);
  expect_shape(bias, {in.blocks() * kChannelBlock}, op, "packed bias");
  BlockedDepthwiseArgs a;
  a.input = in;
  a.kernel_h = w.shape(1);
  a.kernel_w = w.shape(2);
  set_geometry(a, stride, padding, dilation, out, op);
  make_shape({in.batch, in.channels, a.out_h, a.out_w}, op);  // size limit
  set_weights(a, w, bias, relu, relu_max);
  return a;
}

BlockedShape depthwise_output(const BlockedDepthwiseArgs& a) {
  BlockedShape o = a.input;
  o.height = a.out_h;
  o.width = a.out_w;
  return o;
}

// Dense NCHW -> blocked: weight (K/16, C, kh, kw, 16).
BlockedDenseArgs dense_args(const BlockedShape& in, const py::array& w, const py::array& bias,
                            int64_t out_channels, Pair stride, Pair padding, Pair dilation,
                            Pair out, bool relu, float relu_max) {
  const char* op = "conv2d_blocked_dense_nchw";
  check_relu_max(relu_max, op);
  if (out_channels < 1) throw py::value_error(std::string(op) + ": out_channels must be positive");
  BlockedShape o = in;
  o.channels = out_channels;
  check_f32(w, op, "packed weight", 5);
  if (w.shape(0) != o.blocks() || w.shape(1) != in.channels || w.shape(2) < 1 ||
      w.shape(3) < 1 || w.shape(4) != kChannelBlock)
    throw py::value_error(std::string(op) + ": packed weight must have shape (" +
                          std::to_string(o.blocks()) + ", " + std::to_string(in.channels) +
                          ", kernel_h, kernel_w, 16), got " + shape_str(shape_of(w)));
  check_f32(bias, op, "packed bias", 1);
  expect_shape(bias, {o.blocks() * kChannelBlock}, op, "packed bias");
  BlockedDenseArgs a;
  a.input = in;
  a.out_channels = out_channels;
  a.kernel_h = w.shape(2);
  a.kernel_w = w.shape(3);
  set_geometry(a, stride, padding, dilation, out, op);
  make_shape({in.batch, out_channels, a.out_h, a.out_w}, op);  // size limit
  set_weights(a, w, bias, relu, relu_max);
  return a;
}

BlockedShape dense_output(const BlockedDenseArgs& a) {
  return {a.input.batch, a.out_channels, a.out_h, a.out_w};
}

// --------------------------------------------------------- single-op calls

py::array to_blocked(const py::array& x) {
  check_f32(x, "conv2d_blocked_from_nchw", "input", 4);
  const BlockedShape s = make_shape(shape_of(x), "conv2d_blocked_from_nchw");
  py::array_t<float> out = new_blocked(s);
  const float* src = f32_data(x);
  float* dst = out.mutable_data();
  const int threads = num_threads();
  py::gil_scoped_release release;
  conv2d_blocked_reorder.get()(s, src, dst, true, threads);
  finish_output(dst, s);
  return out;
}

py::array from_blocked(const py::array& xb, const std::vector<int64_t>& shape) {
  const BlockedShape s = make_shape(shape, "conv2d_blocked_to_nchw");
  check_blocked(xb, s, "conv2d_blocked_to_nchw", "input");
  py::array_t<float> out(shape);
  const float* src = f32_data(xb);
  float* dst = out.mutable_data();
  const int threads = num_threads();
  py::gil_scoped_release release;
  conv2d_blocked_reorder.get()(s, src, dst, false, threads);
  return out;
}

// One kernel call on `a` (inputs set) into a new blocked array of shape `o`.
template <typename Args, typename Fn>
py::array run_into_new(Args a, const BlockedShape& o, const KernelStub<Fn>& stub) {
  py::array_t<float> y = new_blocked(o);
  a.y = y.mutable_data();
  a.num_threads = num_threads();
  Fn run = stub.get();
  py::gil_scoped_release release;
  run(a);
  finish_output(a.y, o);
  return y;
}

py::array pointwise(const py::array& xb, const std::vector<int64_t>& shape, const py::array& w,
                    const py::array& bias, int64_t out_channels,
                    std::optional<py::array> residual, bool relu, float relu_max) {
  const char* op = "conv2d_blocked_pointwise";
  const BlockedShape s = make_shape(shape, op);
  check_blocked(xb, s, op, "input");
  BlockedPointwiseArgs a = pointwise_args(s, w, bias, out_channels, relu, relu_max);
  const BlockedShape o = pointwise_output(a);
  if (residual) {
    check_blocked(*residual, o, op, "residual");
    a.residual = f32_data(*residual);
  }
  a.x = f32_data(xb);
  return run_into_new(a, o, conv2d_blocked_pointwise);
}

py::array depthwise(const py::array& xb, const std::vector<int64_t>& shape, const py::array& w,
                    const py::array& bias, Pair stride, Pair padding, Pair dilation, Pair out,
                    bool relu, float relu_max) {
  const char* op = "conv2d_blocked_depthwise";
  const BlockedShape s = make_shape(shape, op);
  check_blocked(xb, s, op, "input");
  BlockedDepthwiseArgs a = depthwise_args(s, w, bias, stride, padding, dilation, out, relu,
                                          relu_max);
  const BlockedShape o = depthwise_output(a);
  a.x = f32_data(xb);
  return run_into_new(a, o, conv2d_blocked_depthwise);
}

py::array dense_nchw(const py::array& x, const py::array& w, const py::array& bias,
                     int64_t out_channels, Pair stride, Pair padding, Pair dilation, Pair out,
                     bool relu, float relu_max) {
  check_f32(x, "conv2d_blocked_dense_nchw", "input", 4);
  BlockedDenseArgs a = dense_args(make_shape(shape_of(x), "conv2d_blocked_dense_nchw"), w, bias,
                                  out_channels, stride, padding, dilation, out, relu, relu_max);
  a.x = f32_data(x);
  return run_into_new(a, dense_output(a), conv2d_blocked_dense_nchw);
}

// ------------------------------------------------------------- a whole run
// conv2d_blocked_sequence runs a list of blocked ops in one call: the Python
// per-layer overhead (argument parsing, result objects) is paid once, and the
// intermediate activations live in a per-thread pool of buffers that are
// reused from call to call, so they are warm in cache instead of fresh pages.

// Buffers with reference counts: the current activation holds one, a saved
// residual input another; a buffer whose count drops to 0 is free for reuse.
class BufferPool {
 public:
  ~BufferPool() {
    for (Buffer& b : buffers_) std::free(b.data);
  }
  int acquire(int64_t floats) {
    int best = -1;
    for (int i = 0; i < static_cast<int>(buffers_.size()); ++i)
      if (buffers_[i].refs == 0 && buffers_[i].capacity >= floats &&
          (best < 0 || buffers_[i].capacity < buffers_[best].capacity))
        best = i;
    if (best < 0) {  // grow a free one, or add one
      for (int i = 0; i < static_cast<int>(buffers_.size()); ++i)
        if (buffers_[i].refs == 0) best = i;
      if (best < 0) {
        buffers_.push_back(Buffer());
        best = static_cast<int>(buffers_.size()) - 1;
      }
      Buffer& b = buffers_[best];
      std::free(b.data);
      b.data = nullptr;
      b.capacity = 0;
      const size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
      b.data = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!b.data) throw std::bad_alloc();
      b.capacity = floats;
    }
    buffers_[best].refs = 1;
    return best;
  }
  float* data(int i) { return buffers_[i].data; }
  void retain(int i) { ++buffers_[i].refs; }
  void release(int i) { --buffers_[i].refs; }
  void release_all() {
    for (Buffer& b : buffers_) b.refs = 0;
  }

 private:
  struct Buffer {
    float* data = nullptr;
    int64_t capacity = 0;
    int refs = 0;
  };
  std::vector<Buffer> buffers_;
};

thread_local BufferPool tls_pool;

struct SequenceOp {
  enum class Kind { save, add_saved, dense_nchw, pointwise, depthwise, inverted_residual } kind;
  BlockedShape in, out;
  // The kernel arguments, all but the activation pointers and threads.
  BlockedDenseArgs dense;
  BlockedPointwiseArgs pointwise;  // also an inverted residual's expansion (run unfused)
  BlockedDepthwiseArgs depthwise;
  BlockedPointwiseArgs project;    // an inverted residual's projection (run unfused)
  BlockedInvertedResidualArgs block;
  bool residual = false;           // pointwise / project: add the innermost saved input
  bool expand = false, fused = false;
};

template <typename T>
T item(const py::tuple& t, size_t i) {
  return t[i].cast<T>();
}

py::array array_of(const py::tuple& t, size_t i, std::vector<py::array>* keep) {
  py::array a = t[i].cast<py::array>();
  keep->push_back(a);  // `ops` holds it too; this keeps it for sure while the kernels run
  return a;
}

// Output rows per band of a fused inverted residual. The expanded input rows of
// a band fill up to 768 KiB (this CPU has 1 MiB of L2 per core): at batch 16,
// 384 KiB bands measured 3-5% slower on MobileNetV2 (more halo rows computed
// twice, shorter GEMM spans) and 1.5 MiB no better. With too few (image, band)
// items for 2 per thread, bands shrink toward 192 KiB to make more (MobileNetV2
// at batch 1 on 2 threads: 2.4 -> 2.25 ms). Fusing pays when there are at least
// 2 items per thread and the expanded activation would not stay in L2 between
// unfused ops (over kFuseAboveBytes). Otherwise the three ops run one by one,
// each split over channels and pixels: at batch 1 the 14x14 and 7x7 blocks
// (0.2-0.45 MB expanded) then skip recomputing their bands' halo rows (2 of
// every 7-9 rows), which made them 5-10% faster (MobileNetV2 batch 1: 1 thread
// 3.7 -> 3.4 ms, 2 threads 2.1 -> 1.85; batch 16, where bands hold whole
// images and recompute nothing, fuses everywhere as before).
constexpr int64_t kFuseAboveBytes = 512 << 10;

int64_t rows_for_bytes(const BlockedShape& hidden, const BlockedDepthwiseArgs& d, int64_t bytes) {
  const int64_t row_bytes = hidden.blocks() * hidden.width * kChannelBlock * 4;
  const int64_t in_rows = std::max<int64_t>(bytes / row_bytes, d.kernel_h);
  const int64_t rows = (in_rows - (d.kernel_h - 1) * d.dilation_h - 1) / d.stride_h + 1;
  return std::max<int64_t>(1, std::min(rows, d.out_h));
}

int64_t band_rows(const BlockedShape& hidden, const BlockedDepthwiseArgs& d, int threads) {
  const int64_t most = rows_for_bytes(hidden, d, 768 << 10);
  const int64_t least = rows_for_bytes(hidden, d, 192 << 10);
  const int64_t bands_per_image = (2 * threads + hidden.batch - 1) / hidden.batch;
  const int64_t enough = (d.out_h + bands_per_image - 1) / bands_per_image;  // rows for that
  return std::max(least, std::min(most, enough));
}

// One op checked against the running shape; returns it with its output shape.
SequenceOp parse_op(const py::tuple& t, const BlockedShape& in, bool first,
                    std::vector<BlockedShape>* saved, std::vector<py::array>* keep, int threads) {
  const std::string kind = item<std::string>(t, 0);
  SequenceOp op;
  op.in = in;
  op.out = in;
  auto array = [&](size_t i) { return array_of(t, i, keep); };
  auto pop_saved = [&](const BlockedShape& expect) {
    if (saved->empty()) throw py::value_error("conv2d_blocked_sequence: a residual without save");
    const BlockedShape r = saved->back();
    saved->pop_back();
    if (r.batch != expect.batch || r.channels != expect.channels || r.height != expect.height ||
        r.width != expect.width)
      throw py::value_error("conv2d_blocked_sequence: residual shape differs from the output's");
  };
  if (kind == "save") {
    op.kind = SequenceOp::Kind::save;
    saved->push_back(in);
  } else if (kind == "add_saved") {
    op.kind = SequenceOp::Kind::add_saved;
    pop_saved(in);
  } else if (kind == "dense_nchw") {
    // (kind, weight, bias, out_channels, stride, padding, dilation, out_size, relu, relu_max)
    if (!first) throw py::value_error("conv2d_blocked_sequence: dense_nchw must be the first op");
    op.kind = SequenceOp::Kind::dense_nchw;
    op.dense = dense_args(in, array(1), array(2), item<int64_t>(t, 3), item<Pair>(t, 4),
                          item<Pair>(t, 5), item<Pair>(t, 6), item<Pair>(t, 7),
                          item<bool>(t, 8), item<float>(t, 9));
    op.out = dense_output(op.dense);
  } else if (kind == "pointwise") {  // (kind, weight, bias, out_channels, relu, relu_max, residual)
    op.kind = SequenceOp::Kind::pointwise;
    op.pointwise = pointwise_args(in, array(1), array(2), item<int64_t>(t, 3), item<bool>(t, 4),
                                  item<float>(t, 5));
    op.out = pointwise_output(op.pointwise);
    op.residual = item<bool>(t, 6);
    if (op.residual) pop_saved(op.out);
  } else if (kind == "depthwise") {
    // (kind, weight, bias, stride, padding, dilation, out_size, relu, relu_max)
    op.kind = SequenceOp::Kind::depthwise;
    op.depthwise = depthwise_args(in, array(1), array(2), item<Pair>(t, 3), item<Pair>(t, 4),
                                  item<Pair>(t, 5), item<Pair>(t, 6), item<bool>(t, 7),
                                  item<float>(t, 8));
    op.out = depthwise_output(op.depthwise);
  } else if (kind == "inverted_residual") {
    // (kind, expand op or None, depthwise op, project op, residual) with the
    // three convolutions as their own op tuples (project without residual).
    op.kind = SequenceOp::Kind::inverted_residual;
    BlockedShape hidden = in;
    op.expand = !t[1].is_none();
    if (op.expand) {
      const py::tuple e = t[1].cast<py::tuple>();
      op.pointwise = pointwise_args(in, array_of(e, 1, keep), array_of(e, 2, keep),
                                    item<int64_t>(e, 3), item<bool>(e, 4), item<float>(e, 5));
      hidden = pointwise_output(op.pointwise);
    }
    const py::tuple d = t[2].cast<py::tuple>();
    op.depthwise = depthwise_args(hidden, array_of(d, 1, keep), array_of(d, 2, keep),
                                  item<Pair>(d, 3), item<Pair>(d, 4), item<Pair>(d, 5),
                                  item<Pair>(d, 6), item<bool>(d, 7), item<float>(d, 8));
    const py::tuple p = t[3].cast<py::tuple>();
    op.project = pointwise_args(depthwise_output(op.depthwise), array_of(p, 1, keep),
                                array_of(p, 2, keep), item<int64_t>(p, 3), item<bool>(p, 4),
                                item<float>(p, 5));
    op.out = pointwise_output(op.project);
    op.residual = item<bool>(t, 4);
    if (op.residual && (op.out.batch != in.batch || op.out.channels != in.channels ||
                        op.out.height != in.height || op.out.width != in.width))
      throw py::value_error("conv2d_blocked_sequence: residual shape differs from the output's");
    BlockedInvertedResidualArgs& b = op.block;
    b.input = in;
    b.hidden = hidden.channels;
    b.out_channels = op.out.channels;
    b.depthwise = op.depthwise;
    if (op.expand) {
      b.expand_weight = op.pointwise.weight;
      b.expand_bias = op.pointwise.bias;
      b.expand_relu = op.pointwise.relu;
      b.expand_relu_max = op.pointwise.relu_max;
    }
    b.project_weight = op.project.weight;
    b.project_bias = op.project.bias;
    b.project_relu = op.project.relu;
    b.project_relu_max = op.project.relu_max;
    b.residual = op.residual;
    b.band_rows = band_rows(hidden, op.depthwise, threads);
    const int64_t bands = (op.out.height + b.band_rows - 1) / b.band_rows;
    op.fused = in.batch * bands >= 2 * static_cast<int64_t>(threads) &&
               hidden.floats() * 4 > kFuseAboveBytes;
  } else {
    throw py::value_error("conv2d_blocked_sequence: unknown op '" + kind + "'");
  }
  return op;
}

py::array sequence(const py::array& x, const py::list& ops) {
  const char* op_name = "conv2d_blocked_sequence";
  check_f32(x, op_name, "input", 4);
  const BlockedShape in = make_shape(shape_of(x), op_name);
  const int threads = num_threads();
  std::vector<SequenceOp> plan;
  std::vector<BlockedShape> saved;
  std::vector<py::array> keep;
  BlockedShape shape = in;
  int64_t scratch = 0;  // floats for the fused blocks' bands
  for (const py::handle& h : ops) {
    plan.push_back(parse_op(h.cast<py::tuple>(), shape, plan.empty(), &saved, &keep, threads));
    shape = plan.back().out;
    if (plan.back().fused)
      scratch = std::max(scratch, blocked_inverted_residual_workspace(plan.back().block, threads));
  }
  if (!saved.empty()) throw py::value_error("conv2d_blocked_sequence: save without its use");
  py::array_t<float> y(std::vector<int64_t>{shape.batch, shape.channels, shape.height, shape.width});
  const float* src = f32_data(x);
  float* dst = y.mutable_data();
  py::gil_scoped_release release;
  BufferPool& pool = tls_pool;
  pool.release_all();  // a previous call that threw left nothing in use
  auto fresh = [&](const BlockedShape& s) {
    const int b = pool.acquire(s.floats());
    finish_output(pool.data(b), s);
    return b;
  };
  const int scratch_buffer = scratch > 0 ? pool.acquire(scratch) : -1;
  std::vector<int> saved_buffers;
  auto run_pointwise = [&](BlockedPointwiseArgs a, const float* input, const float* residual,
                           float* out) {
    a.x = input;
    a.residual = residual;
    a.y = out;
    a.num_threads = threads;
    conv2d_blocked_pointwise.get()(a);
  };
  auto run_depthwise = [&](BlockedDepthwiseArgs a, const float* input, float* out) {
    a.x = input;
    a.y = out;
    a.num_threads = threads;
    conv2d_blocked_depthwise.get()(a);
  };
  int cur = -1;
  for (size_t i = 0; i < plan.size(); ++i) {
    const SequenceOp& op = plan[i];
    if (i == 0 && op.kind != SequenceOp::Kind::dense_nchw) {
      cur = fresh(in);  // the first op reads a blocked copy of the input
      conv2d_blocked_reorder.get()(in, src, pool.data(cur), true, threads);
    }
    switch (op.kind) {
      case SequenceOp::Kind::save:
        pool.retain(cur);
        saved_buffers.push_back(cur);
        continue;
      case SequenceOp::Kind::add_saved: {
        const int r = saved_buffers.back();
        saved_buffers.pop_back();
        float* out = pool.data(cur);
        const float* res = pool.data(r);
        const int64_t n = op.in.floats() - kBlockedSlack;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t k = 0; k < n; ++k) out[k] += res[k];
        pool.release(r);
        continue;
      }
      default:
        break;
    }
    const int next = fresh(op.out);
    float* out = pool.data(next);
    int residual = -1;
    if (op.residual && op.kind == SequenceOp::Kind::pointwise) {
      residual = saved_buffers.back();
      saved_buffers.pop_back();
    }
    switch (op.kind) {
      case SequenceOp::Kind::dense_nchw: {  // reads the NCHW input itself
        BlockedDenseArgs a = op.dense;
        a.x = src;
        a.y = out;
        a.num_threads = threads;
        conv2d_blocked_dense_nchw.get()(a);
        break;
      }
      case SequenceOp::Kind::pointwise:
        run_pointwise(op.pointwise, pool.data(cur), residual >= 0 ? pool.data(residual) : nullptr,
                      out);
        break;
      case SequenceOp::Kind::depthwise:
        run_depthwise(op.depthwise, pool.data(cur), out);
        break;
      case SequenceOp::Kind::inverted_residual:
        if (op.fused) {
          BlockedInvertedResidualArgs a = op.block;
          a.x = pool.data(cur);
          a.y = out;
          a.workspace = pool.data(scratch_buffer);
          a.num_threads = threads;
          conv2d_blocked_inverted_residual.get()(a);
        } else {  // one op at a time, through two intermediate buffers
          const float* hidden = pool.data(cur);
          int expanded = -1;
          if (op.expand) {
            expanded = fresh(pointwise_output(op.pointwise));
            run_pointwise(op.pointwise, pool.data(cur), nullptr, pool.data(expanded));
            hidden = pool.data(expanded);
          }
          const int band = fresh(depthwise_output(op.depthwise));
          run_depthwise(op.depthwise, hidden, pool.data(band));
          if (expanded >= 0) pool.release(expanded);
          run_pointwise(op.project, pool.data(band), op.residual ? pool.data(cur) : nullptr, out);
          pool.release(band);
        }
        break;
      default:
        break;
    }
    if (residual >= 0) pool.release(residual);
    if (cur >= 0) pool.release(cur);
    cur = next;
  }
  conv2d_blocked_reorder.get()(shape, pool.data(cur), dst, false, threads);
  pool.release_all();
  return y;
}

}  // namespace

void bind_conv_blocked(py::module_& m) {
  m.def("conv2d_blocked_from_nchw", &to_blocked, py::arg("input"),
        "An (N, C, H, W) float32 array in the nChw16c layout (1-D, channels padded with zeros).");
  m.def("conv2d_blocked_to_nchw", &from_blocked, py::arg("input"), py::arg("shape"),
        "A blocked activation of logical shape (N, C, H, W) back in NCHW.");
  m.def("conv2d_blocked_pointwise", &pointwise, py::arg("input"), py::arg("shape"),
        py::arg("weight"), py::arg("bias"), py::arg("out_channels"),
        py::arg("residual") = py::none(), py::arg("relu") = false, py::arg("relu_max") = INFINITY,
        "1x1 convolution of a blocked activation: weight (K/16, C16, 16), bias (K16,); "
        "optional blocked residual added before the ReLU clamp.");
  m.def("conv2d_blocked_depthwise", &depthwise, py::arg("input"), py::arg("shape"),
        py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("out_size"), py::arg("relu") = false,
        py::arg("relu_max") = INFINITY,
        "Depthwise convolution of a blocked activation: weight (C/16, kh, kw, 16), bias (C16,); "
        "padding is (top, left), out_size (H, W).");
  m.def("conv2d_blocked_dense_nchw", &dense_nchw, py::arg("input"), py::arg("weight"),
        py::arg("bias"), py::arg("out_channels"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("out_size"), py::arg("relu") = false,
        py::arg("relu_max") = INFINITY,
        "Dense (groups 1) convolution of an NCHW input into a blocked output: weight "
        "(K/16, C, kh, kw, 16), bias (K16,); padding is (top, left), out_size (H, W).");
  m.def("conv2d_blocked_sequence", &sequence, py::arg("input"), py::arg("ops"),
        "Runs blocked ops on an NCHW input and returns the NCHW result. Ops: first optionally "
        "('dense_nchw', weight, bias, out_channels, stride, padding, dilation, out_size, relu, "
        "relu_max); then ('save',), ('add_saved',), ('pointwise', weight, bias, out_channels, "
        "relu, relu_max, residual), ('depthwise', weight, bias, stride, padding, dilation, "
        "out_size, relu, relu_max), ('inverted_residual', expand pointwise op or None, "
        "depthwise op, project pointwise op, residual).");
}

}  // namespace pve
