// GEMM binding: shapes and dtypes checked here, GIL released around the kernel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <pybind11/stl.h>

#include <optional>

#include "bindings/checks.h"
#include "core/threads.h"
#include "kernels/gemm/gemm.h"

namespace py = pybind11;

namespace pve {

PVE_DEFINE_KERNEL(gemm_f32, GemmF32Fn);

namespace {

// out = act(alpha * op(a) @ op(b) + beta * out + bias); returns out.
py::array gemm(const py::array& a, const py::array& b, std::optional<py::array> out,
               bool trans_a, bool trans_b, float alpha, float beta,
               std::optional<py::array> bias, const std::string& bias_axis, bool relu) {
  static const char* op = "gemm";
  check_f32(a, op, "a", 2);
  check_f32(b, op, "b", 2);
  const int64_t m = trans_a ? a.shape(1) : a.shape(0);
  const int64_t k = trans_a ? a.shape(0) : a.shape(1);
  const int64_t kb = trans_b ? b.shape(1) : b.shape(0);
  const int64_t n = trans_b ? b.shape(0) : b.shape(1);
  if (k != kb) {
    throw py::value_error("gemm: inner dimensions differ: op(a) is " + shape_str({m, k}) +
                          ", op(b) is " + shape_str({kb, n}));
  }
  py::array c;
  if (out) {
    c = *out;
    check_f32(c, op, "out", 2, /*writable=*/true);
    expect_shape(c, {m, n}, op, "out");
    if (c.data() == a.data() || c.data() == b.data())
      throw py::value_error("gemm: out must not alias a or b");
  } else {
    if (beta != 0.0f) throw py::value_error("gemm: beta != 0 needs an out array to accumulate into");
    c = py::array_t<float>({m, n});
  }
  GemmEpilogue ep;
  py::array bias_array;
  if (bias) {
    bias_array = *bias;
    check_f32(bias_array, op, "bias", 1);
    if (bias_axis == "row") {
      expect_shape(bias_array, {m}, op, "bias (per row)");
      ep.bias_axis = BiasAxis::per_row;
    } else if (bias_axis == "col") {
      expect_shape(bias_array, {n}, op, "bias (per column)");
      ep.bias_axis = BiasAxis::per_col;
    } else {
      throw py::value_error("gemm: bias_axis must be 'row' or 'col', got '" + bias_axis + "'");
    }
    ep.bias = f32_data(bias_array);
  }
  ep.relu = relu;
  const float* pa = f32_data(a);
  const float* pb = f32_data(b);
  float* pc = f32_mutable_data(c);
  const int64_t lda = a.shape(1), ldb = b.shape(1), ldc = n;
  const int threads = num_threads();
  GemmF32Fn kernel = gemm_f32.get();
  {
    py::gil_scoped_release release;
    if (m > 0 && n > 0) {
      kernel(trans_a, trans_b, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc, ep, threads);
    }
  }
  return c;
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::arg("out") = py::none(),
        py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("alpha") = 1.0f,
        py::arg("beta") = 0.0f, py::arg("bias") = py::none(), py::arg("bias_axis") = "col",
        py::arg("relu") = false,
        "out = act(alpha * op(a) @ op(b) + beta * out + bias), float32, row-major.");
}

}  // namespace pve
