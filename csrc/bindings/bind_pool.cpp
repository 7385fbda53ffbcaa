// Pooling bindings. Inputs arrive as (planes, H, W) float32 (Python folds N*C);
// geometry is re-checked here so a kernel never reads or writes out of bounds.
#include <algorithm>
#include <cstdlib>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/layer_checks.h"
#include "core/threads.h"
#include "kernels/pool/pool2d.h"

namespace py = pybind11;

namespace pve {

PVE_DEFINE_KERNEL(max_pool2d_forward, MaxPool2dForwardFn);
PVE_DEFINE_KERNEL(max_pool2d_backward, MaxPool2dBackwardFn);
PVE_DEFINE_KERNEL(avg_pool2d_forward, AvgPool2dForwardFn);
PVE_DEFINE_KERNEL(avg_pool2d_backward, AvgPool2dBackwardFn);
PVE_DEFINE_KERNEL(adaptive_max_pool2d_forward, AdaptiveMaxPool2dFn);
PVE_DEFINE_KERNEL(adaptive_avg_pool2d_forward, AdaptiveAvgPool2dFn);
PVE_DEFINE_KERNEL(adaptive_avg_pool2d_backward, AdaptiveAvgPool2dBackwardFn);
PVE_DEFINE_KERNEL(global_avg_pool_forward, GlobalAvgPoolFn);
PVE_DEFINE_KERNEL(global_avg_pool_backward, GlobalAvgPoolBackwardFn);

namespace {

using Pair = std::pair<int, int>;

Pool2dShape make_shape(const char* op, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                       int64_t out_w, Pair k, Pair s, Pair p, Pair d) {
  check_positive(k.first, op, "kernel_size");
  check_positive(k.second, op, "kernel_size");
  check_positive(s.first, op, "stride");
  check_positive(s.second, op, "stride");
  check_positive(d.first, op, "dilation");
  check_positive(d.second, op, "dilation");
  check_positive(out_h, op, "output height");
  check_positive(out_w, op, "output width");
  if (p.first < 0 || p.second < 0)
    throw py::value_error(std::string(op) + ": padding must be non-negative");
  return Pool2dShape{planes, in_h, in_w, out_h, out_w, k.first, k.second, s.first, s.second,
                     p.first, p.second, d.first, d.second};
}

// int64 indices (planes, oh, ow) starting on a 64-byte line (numpy promises
// 16 bytes): the forward kernel then writes rows that fill whole lines with
// non-temporal stores.
py::array_t<int64_t> new_index_array(int64_t planes, int64_t out_h, int64_t out_w) {
  const size_t count = static_cast<size_t>(planes * out_h * out_w);
  const size_t bytes = std::max<size_t>((count * sizeof(int64_t) + 63) / 64 * 64, 64);
  void* data = std::aligned_alloc(64, bytes);
  if (!data) throw std::bad_alloc();
  py::capsule owner(data, [](void* p) { std::free(p); });
  return py::array_t<int64_t>({planes, out_h, out_w}, static_cast<int64_t*>(data), owner);
}

py::tuple max_pool_fwd(const py::array& x, Pair k, Pair s, Pair p, Pair d, int64_t out_h,
                       int64_t out_w, bool with_indices) {
  static const char* op = "max_pool2d";
  check_f32(x, op, "input (planes, H, W)", 3);
  const Pool2dShape sh = make_shape(op, x.shape(0), x.shape(1), x.shape(2), out_h, out_w, k, s, p, d);
  py::array_t<float> y({sh.planes, out_h, out_w});
  py::object ind = py::none();
  int64_t* pi = nullptr;
  if (with_indices) {
    py::array_t<int64_t> a = new_index_array(sh.planes, out_h, out_w);
    pi = a.mutable_data();
    ind = a;
  }
  const float* px = f32_data(x);
  float* py_ = y.mutable_data();
  auto fn = max_pool2d_forward.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(px, py_, pi, sh, t);
  }
  return py::make_tuple(y, ind);
}

// Shared by max and adaptive max pooling.
// out: optional float32 C-contiguous array of planes * in_h * in_w elements
// (any shape) to write into, so the caller can get grad_input in the input's
// own shape without a view or a copy.
py::array max_pool_bwd(const py::array& gy, const py::array& indices, int64_t in_h, int64_t in_w,
                       const py::object& out) {
  static const char* op = "max_pool2d backward";
  check_f32(gy, op, "grad_output (planes, oh, ow)", 3);
  const int64_t planes = gy.shape(0), out_hw = gy.shape(1) * gy.shape(2);
  const int64_t* pi = i64_arg(indices, gy.size(), op, "indices");
  if (in_h < 0 || in_w < 0) throw py::value_error("max_pool2d backward: bad input size");
  py::array gx;
  float* pgx;
  if (out.is_none()) {
    py::array_t<float> a({planes, in_h, in_w});
    pgx = a.mutable_data();
    gx = a;
  } else {
    gx = py::reinterpret_borrow<py::array>(out);
    pgx = f32_out_arg(gx, planes * in_h * in_w, op, "out");
  }
  const float* pg = f32_data(gy);
  auto fn = max_pool2d_backward.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(pg, pi, pgx, planes, in_h * in_w, out_hw, t);
  }
  return gx;
}

py::array avg_pool_fwd(const py::array& x, Pair k, Pair s, Pair p, int64_t out_h, int64_t out_w,
                       bool count_include_pad, int64_t divisor_override) {
  static const char* op = "avg_pool2d";
  check_f32(x, op, "input (planes, H, W)", 3);
  const Pool2dShape sh = make_shape(op, x.shape(0), x.shape(1), x.shape(2), out_h, out_w, k, s, p, {1, 1});
  py::array_t<float> y({sh.planes, out_h, out_w});
  const float* px = f32_data(x);
  float* py_ = y.mutable_data();
  auto fn = avg_pool2d_forward.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(px, py_, sh, count_include_pad, divisor_override, t);
  }
  return y;
}

py::array avg_pool_bwd(const py::array& gy, int64_t in_h, int64_t in_w, Pair k, Pair s, Pair p,
                       bool count_include_pad, int64_t divisor_override) {
  static const char* op = "avg_pool2d backward";
  check_f32(gy, op, "grad_output (planes, oh, ow)", 3);
  const Pool2dShape sh = make_shape(op, gy.shape(0), in_h, in_w, gy.shape(1), gy.shape(2), k, s, p, {1, 1});
  py::array_t<float> gx({sh.planes, in_h, in_w});
  const float* pg = f32_data(gy);
  float* pgx = gx.mutable_data();
  auto fn = avg_pool2d_backward.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(pg, pgx, sh, count_include_pad, divisor_override, t);
  }
  return gx;
}

py::tuple adaptive_max_fwd(const py::array& x, int64_t out_h, int64_t out_w, bool with_indices) {
  static const char* op = "adaptive_max_pool2d";
  check_f32(x, op, "input (planes, H, W)", 3);
  check_positive(out_h, op, "output height");
  check_positive(out_w, op, "output width");
  const int64_t planes = x.shape(0), in_h = x.shape(1), in_w = x.shape(2);
  check_positive(in_h, op, "input height");
  check_positive(in_w, op, "input width");
  py::array_t<float> y({planes, out_h, out_w});
  py::array_t<int64_t> ind({planes, out_h, out_w});
  const float* px = f32_data(x);
  float* py_ = y.mutable_data();
  int64_t* pi = ind.mutable_data();
  auto fn = adaptive_max_pool2d_forward.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(px, py_, pi, planes, in_h, in_w, out_h, out_w, t);
  }
  return py::make_tuple(y, with_indices ? py::object(ind) : py::object(ind));
}

py::array adaptive_avg_fwd(const py::array& x, int64_t out_h, int64_t out_w) {
  static const char* op = "adaptive_avg_pool2d";
  check_f32(x, op, "input (planes, H, W)", 3);
  check_positive(out_h, op, "output height");
  check_positive(out_w, op, "output width");
  const int64_t planes = x.shape(0), in_h = x.shape(1), in_w = x.shape(2);
  check_positive(in_h, op, "input height");
  check_positive(in_w, op, "input width");
  py::array_t<float> y({planes, out_h, out_w});
  const float* px = f32_data(x);
  float* py_ = y.mutable_data();
  const int t = num_threads();
  if (out_h == 1 && out_w == 1) {  // global average pooling: the fast special case
    auto fn = global_avg_pool_forward.get();
    py::gil_scoped_release release;
    fn(px, py_, planes, in_h * in_w, t);
  } else {
    auto fn = adaptive_avg_pool2d_forward.get();
    py::gil_scoped_release release;
    fn(px, py_, planes, in_h, in_w, out_h, out_w, t);
  }
  return y;
}

py::array adaptive_avg_bwd(const py::array& gy, int64_t in_h, int64_t in_w) {
  static const char* op = "adaptive_avg_pool2d backward";
  check_f32(gy, op, "grad_output (planes, oh, ow)", 3);
  check_positive(in_h, op, "input height");
  check_positive(in_w, op, "input width");
  const int64_t planes = gy.shape(0), out_h = gy.shape(1), out_w = gy.shape(2);
  py::array_t<float> gx({planes, in_h, in_w});
  const float* pg = f32_data(gy);
  float* pgx = gx.mutable_data();
  const int t = num_threads();
  if (out_h == 1 && out_w == 1) {
    auto fn = global_avg_pool_backward.get();
    py::gil_scoped_release release;
    fn(pg, pgx, planes, in_h * in_w, t);
  } else {
    auto fn = adaptive_avg_pool2d_backward.get();
    py::gil_scoped_release release;
    fn(pg, pgx, planes, in_h, in_w, out_h, out_w, t);
  }
  return gx;
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def("max_pool2d_forward", &max_pool_fwd, py::arg("input"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("out_h"),
        py::arg("out_w"), py::arg("with_indices") = false,
        "(output, indices or None); input (planes, H, W), indices flat per plane.");
  m.def("max_pool2d_backward", &max_pool_bwd, py::arg("grad_output"), py::arg("indices"),
        py::arg("in_h"), py::arg("in_w"), py::arg("out") = py::none());
  m.def("avg_pool2d_forward", &avg_pool_fwd, py::arg("input"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("out_h"), py::arg("out_w"),
        py::arg("count_include_pad") = true, py::arg("divisor_override") = 0);
  m.def("avg_pool2d_backward", &avg_pool_bwd, py::arg("grad_output"), py::arg("in_h"),
        py::arg("in_w"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("count_include_pad") = true, py::arg("divisor_override") = 0);
  m.def("adaptive_max_pool2d_forward", &adaptive_max_fwd, py::arg("input"), py::arg("out_h"),
        py::arg("out_w"), py::arg("with_indices") = true);
  m.def("adaptive_avg_pool2d_forward", &adaptive_avg_fwd, py::arg("input"), py::arg("out_h"),
        py::arg("out_w"));
  m.def("adaptive_avg_pool2d_backward", &adaptive_avg_bwd, py::arg("grad_output"),
        py::arg("in_h"), py::arg("in_w"));
}

}  // namespace pve
