// Activation / softmax bindings (and the memory-bandwidth probe the layer
// benchmarks compare against). Every array is checked, the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "bindings/layer_checks.h"
#include "core/threads.h"
#include "kernels/eltwise/activation.h"

namespace py = pybind11;

namespace pve {

PVE_DEFINE_KERNEL(act_forward, ActForwardFn);
PVE_DEFINE_KERNEL(add_act_forward, AddActForwardFn);
PVE_DEFINE_KERNEL(act_backward, ActBackwardFn);
PVE_DEFINE_KERNEL(prelu_forward, PreluForwardFn);
PVE_DEFINE_KERNEL(prelu_backward, PreluBackwardFn);
PVE_DEFINE_KERNEL(softmax_forward, SoftmaxForwardFn);
PVE_DEFINE_KERNEL(softmax_backward, SoftmaxBackwardFn);

namespace {

void check_op(int op, const char* name) {
  if (op < 0 || op >= kNumActs)
    throw py::value_error(std::string(name) + ": unknown activation code " + std::to_string(op));
}

// out = act(x); out may be x itself (in place).
void activation_forward(int op, const py::array& x, py::array out, float alpha) {
  static const char* name = "activation";
  check_op(op, name);
  check_f32(x, name, "input", -1);
  const int64_t n = x.size();
  float* po = f32_out_arg(out, n, name, "out");
  const float* px = f32_data(x);
  auto fn = act_forward.get();
  const int t = num_threads();
  py::gil_scoped_release release;
  fn(op, px, po, n, alpha, t);
}

// out = f(a, b) elementwise for the activation kernels of two operands (same
// signature): add + activation, and backward.
template <typename Fn>
void run_binary(Fn fn, int op, const py::array& a, const py::array& b, py::array out,
                float alpha, const char* name, const char* a_name, const char* b_name,
                const char* out_name) {
  check_op(op, name);
  check_f32(a, name, a_name, -1);
  const int64_t n = a.size();
  const float* pb = f32_arg(b, n, name, b_name);
  float* po = f32_out_arg(out, n, name, out_name);
  const float* pa = f32_data(a);
  const int t = num_threads();
  py::gil_scoped_release release;
  fn(op, pa, pb, po, n, alpha, t);
}

// out = act(a + b); out may be a or b (a residual sum into the branch's own buffer).
void add_activation_forward(int op, const py::array& a, const py::array& b, py::array out,
                            float alpha) {
  run_binary(add_act_forward.get(), op, a, b, out, alpha, "add + activation", "a", "b", "out");
}

void activation_backward(int op, const py::array& saved, const py::array& gy, py::array gx,
                         float alpha) {
  run_binary(act_backward.get(), op, saved, gy, gx, alpha, "activation backward", "saved",
             "grad_output", "grad_input");
}

py::array prelu_fwd(const py::array& x, const py::array& weight, int64_t outer, int64_t channels,
                    int64_t inner) {
  static const char* name = "prelu";
  if (outer < 0 || channels < 1 || inner < 0) throw py::value_error("prelu: bad layout");
  const float* px = f32_arg(x, outer * channels * inner, name, "input");
  const float* pw = f32_arg(weight, channels, name, "weight");
  py::array_t<float> y(shape_of(x));
  float* py_ = static_cast<float*>(y.mutable_data());
  auto fn = prelu_forward.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(px, pw, py_, outer, channels, inner, t);
  }
  return y;
}

py::tuple prelu_bwd(const py::array& x, const py::array& weight, const py::array& gy,
                    int64_t outer, int64_t channels, int64_t inner, bool need_input,
                    bool need_weight) {
  static const char* name = "prelu backward";
  if (outer < 0 || channels < 1 || inner < 0) throw py::value_error("prelu: bad layout");
  const int64_t n = outer * channels * inner;
  const float* px = f32_arg(x, n, name, "input");
  const float* pw = f32_arg(weight, channels, name, "weight");
  const float* pg = f32_arg(gy, n, name, "grad_output");
  py::object gx = py::none(), gw = py::none();
  float* pgx = nullptr;
  float* pgw = nullptr;
  if (need_input) {
    py::array_t<float> a(shape_of(x));
    pgx = static_cast<float*>(a.mutable_data());
    gx = a;
  }
  if (need_weight) {
    py::array_t<float> a(shape_of(weight));
    pgw = static_cast<float*>(a.mutable_data());
    gw = a;
  }
  auto fn = prelu_backward.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(px, pw, pg, pgx, pgw, outer, channels, inner, t);
  }
  return py::make_tuple(gx, gw);
}

py::array softmax_fwd(const py::array& x, int64_t outer, int64_t dim, int64_t inner, bool log) {
  static const char* name = "softmax";
  if (outer < 0 || dim < 0 || inner < 0) throw py::value_error("softmax: bad layout");
  const float* px = f32_arg(x, outer * dim * inner, name, "input");
  py::array_t<float> y(shape_of(x));
  float* py_ = static_cast<float*>(y.mutable_data());
  auto fn = softmax_forward.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    if (dim > 0) fn(px, py_, outer, dim, inner, log, t);
  }
  return y;
}

py::array softmax_bwd(const py::array& y, const py::array& gy, int64_t outer, int64_t dim,
                      int64_t inner, bool log) {
  static const char* name = "softmax backward";
  if (outer < 0 || dim < 0 || inner < 0) throw py::value_error("softmax: bad layout");
  const int64_t n = outer * dim * inner;
  const float* pyv = f32_arg(y, n, name, "output");
  const float* pg = f32_arg(gy, n, name, "grad_output");
  py::array_t<float> gx(shape_of(y));
  float* pgx = static_cast<float*>(gx.mutable_data());
  auto fn = softmax_backward.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    if (dim > 0) fn(pyv, pg, pgx, outer, dim, inner, log, t);
  }
  return gx;
}

}  // namespace

void bind_eltwise(py::module_& m) {
  m.def("activation_forward", &activation_forward, py::arg("op"), py::arg("input"), py::arg("out"),
        py::arg("alpha") = 0.0f, "out = act(input) (out may be input: in place).");
  m.def("add_activation_forward", &add_activation_forward, py::arg("op"), py::arg("a"),
        py::arg("b"), py::arg("out"), py::arg("alpha") = 0.0f,
        "out = act(a + b) in one pass (out may be a or b).");
  m.def("activation_backward", &activation_backward, py::arg("op"), py::arg("saved"),
        py::arg("grad_output"), py::arg("grad_input"), py::arg("alpha") = 0.0f,
        "grad_input = grad_output * act'(saved); saved is the output for relu, sigmoid, "
        "tanh and the input otherwise.");
  m.def("activation_backward_uses_output", [](int op) {
    check_op(op, "activation");
    return act_backward_uses_output(static_cast<Act>(op));
  });
  m.def("prelu_forward", &prelu_fwd, py::arg("input"), py::arg("weight"), py::arg("outer"),
        py::arg("channels"), py::arg("inner"));
  m.def("prelu_backward", &prelu_bwd, py::arg("input"), py::arg("weight"), py::arg("grad_output"),
        py::arg("outer"), py::arg("channels"), py::arg("inner"), py::arg("need_input") = true,
        py::arg("need_weight") = true);
  m.def("softmax_forward", &softmax_fwd, py::arg("input"), py::arg("outer"), py::arg("dim"),
        py::arg("inner"), py::arg("log") = false);
  m.def("softmax_backward", &softmax_bwd, py::arg("output"), py::arg("grad_output"),
        py::arg("outer"), py::arg("dim"), py::arg("inner"), py::arg("log") = false);
}

}  // namespace pve
