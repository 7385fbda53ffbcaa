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
}

}  // namespace pve
