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

// Blocked buffers start on a cache line (numpy only promises 16 bytes): every
// pixel's 16 channels are then one aligned 64-byte line, never a split load.
py::array_t<float> new_blocked(const BlockedShape& s) {
  const size_t bytes = (static_cast<size_t>(s.floats()) * sizeof(float) + 63) / 64 * 64;
  void* data = std::aligned_alloc(64, bytes);
  if (!data) throw std::bad_alloc();
  py::capsule owner(data, [](void* p) { std::free(p); });
  return py::array_t<float>({s.floats()}, {static_cast<int64_t>(sizeof(float))},
                            static_cast<float*>(data), owner);
}

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

py::array to_blocked(const py::array& x) {
  check_f32(x, "conv2d_blocked_from_nchw", "input", 4);
  const BlockedShape s = make_shape(shape_of(x), "conv2d_blocked_from_nchw");
  py::array_t<float> out = new_blocked(s);
  const float* src = f32_data(x);
  float* dst = out.mutable_data();
  const int threads = num_threads();
  py::gil_scoped_release release;
  conv2d_blocked_reorder.get()(s, src, dst, true, threads);
  std::fill(dst + s.floats() - kBlockedSlack, dst + s.floats(), 0.0f);
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

py::array pointwise(const py::array& xb, const std::vector<int64_t>& shape, const py::array& w,
                    const py::array& bias, int64_t out_channels,
                    std::optional<py::array> residual, bool relu, float relu_max) {
  const char* op = "conv2d_blocked_pointwise";
  const BlockedShape s = make_shape(shape, op);
  check_blocked(xb, s, op, "input");
  check_relu_max(relu_max, op);
  if (out_channels < 1) throw py::value_error(std::string(op) + ": out_channels must be positive");
  BlockedShape o = s;
  o.channels = out_channels;
  const int64_t in_padded = s.blocks() * kChannelBlock;
  check_f32(w, op, "packed weight", 3);
  expect_shape(w, {o.blocks(), in_padded, kChannelBlock}, op, "packed weight");
  check_f32(bias, op, "packed bias", 1);
  expect_shape(bias, {o.blocks() * kChannelBlock}, op, "packed bias");
  BlockedPointwiseArgs a;
  a.input = s;
  a.out_channels = out_channels;
  if (residual) {
    check_blocked(*residual, o, op, "residual");
    a.residual = f32_data(*residual);
  }
  a.x = f32_data(xb);
  a.weight = f32_data(w);
  a.bias = f32_data(bias);
  a.relu = relu;
  a.relu_max = relu_max;
  py::array_t<float> y = new_blocked(o);
  a.y = y.mutable_data();
  a.num_threads = num_threads();
  BlockedPointwiseFn run = conv2d_blocked_pointwise.get();
  py::gil_scoped_release release;
  run(a);
  std::fill(a.y + o.floats() - kBlockedSlack, a.y + o.floats(), 0.0f);
  return y;
}

py::array depthwise(const py::array& xb, const std::vector<int64_t>& shape, const py::array& w,
                    const py::array& bias, Pair stride, Pair padding, Pair dilation, Pair out,
                    bool relu, float relu_max) {
  const char* op = "conv2d_blocked_depthwise";
  const BlockedShape s = make_shape(shape, op);
  check_blocked(xb, s, op, "input");
  check_relu_max(relu_max, op);
  check_f32(w, op, "packed weight", 4);  // (C blocks, kernel_h, kernel_w, 16)
  if (w.shape(0) != s.blocks() || w.shape(3) != kChannelBlock || w.shape(1) < 1 || w.shape(2) < 1)
    throw py::value_error(std::string(op) + ": packed weight must have shape (" +
                          std::to_string(s.blocks()) + ", kernel_h, kernel_w, 16), got " +
                          shape_str(shape_of(w)));
  check_f32(bias, op, "packed bias", 1);
  expect_shape(bias, {s.blocks() * kChannelBlock}, op, "packed bias");
  BlockedDepthwiseArgs a;
  a.input = s;
  a.kernel_h = w.shape(1);
  a.kernel_w = w.shape(2);
  std::tie(a.stride_h, a.stride_w) = stride;
  std::tie(a.pad_top, a.pad_left) = padding;
  std::tie(a.dilation_h, a.dilation_w) = dilation;
  std::tie(a.out_h, a.out_w) = out;
  if (a.stride_h < 1 || a.stride_w < 1 || a.dilation_h < 1 || a.dilation_w < 1 || a.pad_top < 0 ||
      a.pad_left < 0)
    throw py::value_error(std::string(op) + ": stride and dilation must be positive, padding "
                          "non-negative");
  // Any output size is memory-safe (every tap outside the input is skipped);
  // the caller computes it as torch does.
  if (a.out_h < 1 || a.out_w < 1)
    throw py::value_error(std::string(op) + ": output size must be positive");
  const BlockedShape o = make_shape({s.batch, s.channels, a.out_h, a.out_w}, op);
  a.x = f32_data(xb);
  a.weight = f32_data(w);
  a.bias = f32_data(bias);
  a.relu = relu;
  a.relu_max = relu_max;
  py::array_t<float> y = new_blocked(o);
  a.y = y.mutable_data();
  a.num_threads = num_threads();
  BlockedDepthwiseFn run = conv2d_blocked_depthwise.get();
  py::gil_scoped_release release;
  run(a);
  std::fill(a.y + o.floats() - kBlockedSlack, a.y + o.floats(), 0.0f);
  return y;
}

// Geometry of a dense NCHW -> blocked convolution, checked: weight (K/16, C, kh, kw, 16).
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
  std::tie(a.stride_h, a.stride_w) = stride;
  std::tie(a.pad_top, a.pad_left) = padding;
  std::tie(a.dilation_h, a.dilation_w) = dilation;
  std::tie(a.out_h, a.out_w) = out;
  if (a.stride_h < 1 || a.stride_w < 1 || a.dilation_h < 1 || a.dilation_w < 1 || a.pad_top < 0 ||
      a.pad_left < 0 || a.out_h < 1 || a.out_w < 1)
    throw py::value_error(std::string(op) + ": stride, dilation and output size must be "
                          "positive, padding non-negative");
  make_shape({in.batch, out_channels, a.out_h, a.out_w}, op);  // size limit
  a.weight = f32_data(w);
  a.bias = f32_data(bias);
  a.relu = relu;
  a.relu_max = relu_max;
  return a;
}

py::array dense_nchw(const py::array& x, const py::array& w, const py::array& bias,
                     int64_t out_channels, Pair stride, Pair padding, Pair dilation, Pair out,
                     bool relu, float relu_max) {
  check_f32(x, "conv2d_blocked_dense_nchw", "input", 4);
  BlockedDenseArgs a = dense_args(make_shape(shape_of(x), "conv2d_blocked_dense_nchw"), w, bias,
                                  out_channels, stride, padding, dilation, out, relu, relu_max);
  BlockedShape o = a.input;
  o.channels = out_channels;
  o.height = a.out_h;
  o.width = a.out_w;
  py::array_t<float> y = new_blocked(o);
  a.x = f32_data(x);
  a.y = y.mutable_data();
  a.num_threads = num_threads();
  BlockedDenseFn run = conv2d_blocked_dense_nchw.get();
  py::gil_scoped_release release;
  run(a);
  std::fill(a.y + o.floats() - kBlockedSlack, a.y + o.floats(), 0.0f);
  return y;
}

// ------------------------------------------------------------- a whole run
// conv2d_blocked_sequence runs a list of blocked ops in one call: the Python
// per-layer overhead (argument parsing, result objects) is paid once, and the
// intermediate activations live in a per-thread pool of buffers that are
// reused from call to call, so they are warm in cache instead of fresh pages.

struct SequenceOp {
  enum class Kind { save, pointwise, depthwise, add_saved, dense_nchw } kind;
  BlockedDenseArgs dense;  // dense_nchw (the first op only): all but the pointers
  BlockedShape in, out;
  const float* weight = nullptr;
  const float* bias = nullptr;
  bool relu = false, residual = false;
  float relu_max = INFINITY;
  int64_t stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0, dilation_h = 1,
          dilation_w = 1, kernel_h = 1, kernel_w = 1;
};

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
    if (best < 0) {  // grow the largest free one, or add one
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

template <typename T>
T item(const py::tuple& t, size_t i) {
  return t[i].cast<T>();
}

// Checks one op against the running shape (every size a kernel relies on) and
// returns it with its output shape.
SequenceOp parse_op(const py::tuple& t, const BlockedShape& in, bool first,
                    std::vector<BlockedShape>* saved, std::vector<py::array>* keep) {
  const char* op_name = "conv2d_blocked_sequence";
  const std::string kind = item<std::string>(t, 0);
  SequenceOp op;
  op.in = in;
  op.out = in;
  auto array = [&](size_t i, int ndim, const char* what) {
    py::array a = t[i].cast<py::array>();
    check_f32(a, op_name, what, ndim);
    keep->push_back(a);
    return a;
  };
  if (kind == "dense_nchw") {
    // (kind, weight, bias, out_channels, stride, padding, dilation, out_size, relu, relu_max)
    if (!first) throw py::value_error("conv2d_blocked_sequence: dense_nchw must be the first op");
    op.kind = SequenceOp::Kind::dense_nchw;
    py::array w = array(1, 5, "packed weight"), b = array(2, 1, "packed bias");
    op.dense = dense_args(in, w, b, item<int64_t>(t, 3), item<Pair>(t, 4), item<Pair>(t, 5),
                          item<Pair>(t, 6), item<Pair>(t, 7), item<bool>(t, 8),
                          item<float>(t, 9));
    op.out.channels = op.dense.out_channels;
    op.out.height = op.dense.out_h;
    op.out.width = op.dense.out_w;
  } else if (kind == "save") {
    op.kind = SequenceOp::Kind::save;
    saved->push_back(in);
  } else if (kind == "add_saved") {
    op.kind = SequenceOp::Kind::add_saved;
    if (saved->empty()) throw py::value_error("conv2d_blocked_sequence: add_saved without save");
    const BlockedShape r = saved->back();
    saved->pop_back();
    if (r.floats() != in.floats() || r.channels != in.channels)
      throw py::value_error("conv2d_blocked_sequence: residual shape differs from the output's");
  } else if (kind == "pointwise") {  // (kind, weight, bias, out_channels, relu, relu_max, residual)
    op.kind = SequenceOp::Kind::pointwise;
    op.out.channels = item<int64_t>(t, 3);
    if (op.out.channels < 1) throw py::value_error("conv2d_blocked_sequence: out_channels < 1");
    py::array w = array(1, 3, "packed weight"), b = array(2, 1, "packed bias");
    expect_shape(w, {op.out.blocks(), in.blocks() * kChannelBlock, kChannelBlock}, op_name,
                 "packed weight");
    expect_shape(b, {op.out.blocks() * kChannelBlock}, op_name, "packed bias");
    op.weight = f32_data(w);
    op.bias = f32_data(b);
    op.relu = item<bool>(t, 4);
    op.relu_max = item<float>(t, 5);
    op.residual = item<bool>(t, 6);
    if (op.residual) {
      if (saved->empty()) throw py::value_error("conv2d_blocked_sequence: residual without save");
      const BlockedShape r = saved->back();
      saved->pop_back();
      if (r.batch != op.out.batch || r.channels != op.out.channels || r.height != op.out.height ||
          r.width != op.out.width)
        throw py::value_error("conv2d_blocked_sequence: residual shape differs from the output's");
    }
  } else if (kind == "depthwise") {
    // (kind, weight, bias, stride, padding, dilation, out_size, relu, relu_max)
    op.kind = SequenceOp::Kind::depthwise;
    py::array w = array(1, 4, "packed weight"), b = array(2, 1, "packed bias");
    if (w.shape(0) != in.blocks() || w.shape(3) != kChannelBlock)
      throw py::value_error("conv2d_blocked_sequence: depthwise packed weight must have shape (" +
                            std::to_string(in.blocks()) + ", kernel_h, kernel_w, 16), got " +
                            shape_str(shape_of(w)));
    expect_shape(b, {in.blocks() * kChannelBlock}, op_name, "packed bias");
    op.weight = f32_data(w);
    op.bias = f32_data(b);
    op.kernel_h = w.shape(1);
    op.kernel_w = w.shape(2);
    std::tie(op.stride_h, op.stride_w) = item<Pair>(t, 3);
    std::tie(op.pad_top, op.pad_left) = item<Pair>(t, 4);
    std::tie(op.dilation_h, op.dilation_w) = item<Pair>(t, 5);
    Pair out = item<Pair>(t, 6);
    if (op.stride_h < 1 || op.stride_w < 1 || op.dilation_h < 1 || op.dilation_w < 1 ||
        op.pad_top < 0 || op.pad_left < 0)
      throw py::value_error("conv2d_blocked_sequence: bad depthwise geometry");
    op.out = make_shape({in.batch, in.channels, std::get<0>(out), std::get<1>(out)}, op_name);
    op.relu = item<bool>(t, 7);
    op.relu_max = item<float>(t, 8);
  } else {
    throw py::value_error("conv2d_blocked_sequence: unknown op '" + kind + "'");
  }
  if (op.relu) check_relu_max(op.relu_max, op_name);
  return op;
}

py::array sequence(const py::array& x, const py::list& ops) {
  const char* op_name = "conv2d_blocked_sequence";
  check_f32(x, op_name, "input", 4);
  const BlockedShape in = make_shape(shape_of(x), op_name);
  std::vector<SequenceOp> plan;
  std::vector<BlockedShape> saved;
  std::vector<py::array> keep;  // the packed arrays stay referenced by `ops` meanwhile
  BlockedShape shape = in;
  for (const py::handle& h : ops) {
    plan.push_back(parse_op(h.cast<py::tuple>(), shape, plan.empty(), &saved, &keep));
    shape = plan.back().out;
  }
  if (!saved.empty()) throw py::value_error("conv2d_blocked_sequence: save without its use");
  py::array_t<float> y(std::vector<int64_t>{shape.batch, shape.channels, shape.height, shape.width});
  const float* src = f32_data(x);
  float* dst = y.mutable_data();
  const int threads = num_threads();
  py::gil_scoped_release release;
  BufferPool& pool = tls_pool;
  pool.release_all();  // a previous call that threw left nothing in use
  auto fresh = [&](const BlockedShape& s) {
    const int b = pool.acquire(s.floats());
    std::fill(pool.data(b) + s.floats() - kBlockedSlack, pool.data(b) + s.floats(), 0.0f);
    return b;
  };
  int cur;
  size_t first = 0;
  if (!plan.empty() && plan[0].kind == SequenceOp::Kind::dense_nchw) {
    cur = fresh(plan[0].out);  // the first convolution reads the NCHW input itself
    BlockedDenseArgs a = plan[0].dense;
    a.x = src;
    a.y = pool.data(cur);
    a.num_threads = threads;
    conv2d_blocked_dense_nchw.get()(a);
    first = 1;
  } else {
    cur = fresh(in);
    conv2d_blocked_reorder.get()(in, src, pool.data(cur), true, threads);
  }
  std::vector<int> saved_buffers;
  for (size_t i = first; i < plan.size(); ++i) {
    const SequenceOp& op = plan[i];
    if (op.kind == SequenceOp::Kind::save) {
      pool.retain(cur);
      saved_buffers.push_back(cur);
      continue;
    }
    if (op.kind == SequenceOp::Kind::add_saved) {
      const int r = saved_buffers.back();
      saved_buffers.pop_back();
      float* out = pool.data(cur);
      const float* res = pool.data(r);
      const int64_t n = op.in.floats() - kBlockedSlack;
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t i = 0; i < n; ++i) out[i] += res[i];
      pool.release(r);
      continue;
    }
    const int next = fresh(op.out);
    if (op.kind == SequenceOp::Kind::pointwise) {
      BlockedPointwiseArgs a;
      a.input = op.in;
      a.out_channels = op.out.channels;
      a.x = pool.data(cur);
      a.weight = op.weight;
      a.bias = op.bias;
      int r = -1;
      if (op.residual) {
        r = saved_buffers.back();
        saved_buffers.pop_back();
        a.residual = pool.data(r);
      }
      a.relu = op.relu;
      a.relu_max = op.relu_max;
      a.y = pool.data(next);
      a.num_threads = threads;
      conv2d_blocked_pointwise.get()(a);
      if (r >= 0) pool.release(r);
    } else {
      BlockedDepthwiseArgs a;
      a.input = op.in;
      a.out_h = op.out.height;
      a.out_w = op.out.width;
      a.kernel_h = op.kernel_h;
      a.kernel_w = op.kernel_w;
      a.stride_h = op.stride_h;
      a.stride_w = op.stride_w;
      a.pad_top = op.pad_top;
      a.pad_left = op.pad_left;
      a.dilation_h = op.dilation_h;
      a.dilation_w = op.dilation_w;
      a.x = pool.data(cur);
      a.weight = op.weight;
      a.bias = op.bias;
      a.relu = op.relu;
      a.relu_max = op.relu_max;
      a.y = pool.data(next);
      a.num_threads = threads;
      conv2d_blocked_depthwise.get()(a);
    }
    pool.release(cur);
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
        "Runs blocked ops on an NCHW input and returns the NCHW result: first optionally "
        "('dense_nchw', weight, bias, out_channels, stride, padding, dilation, out_size, relu, "
        "relu_max), then ('save',), "
        "('add_saved',), ('pointwise', weight, bias, out_channels, relu, relu_max, residual) "
        "and ('depthwise', weight, bias, stride, padding, dilation, out_size, relu, relu_max).");
}

}  // namespace pve
