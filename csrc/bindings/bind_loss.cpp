// Loss bindings: fused cross-entropy (log-softmax + NLL) forward and backward.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "bindings/layer_checks.h"
#include "core/threads.h"
#include "kernels/loss/cross_entropy.h"

namespace py = pybind11;

namespace pve {

PVE_DEFINE_KERNEL(cross_entropy_forward, CrossEntropyForwardFn);
PVE_DEFINE_KERNEL(cross_entropy_backward, CrossEntropyBackwardFn);

namespace {

struct Targets {
  const int64_t* index = nullptr;
  const float* probs = nullptr;
};

Targets target_arg(const py::array& target, int64_t rows, int64_t classes, const char* op) {
  Targets t;
  if (is_i64(target)) {
    t.index = i64_arg(target, rows, op, "target (class indices)");
  } else {
    t.probs = f32_arg(target, rows * classes, op, "target (probabilities)");
  }
  return t;
}

py::tuple ce_forward(const py::array& logits, const py::array& target,
                     std::optional<py::array> weight, int64_t ignore_index) {
  static const char* op = "cross_entropy";
  check_f32(logits, op, "input (rows, classes)", 2);
  const int64_t rows = logits.shape(0), classes = logits.shape(1);
  check_positive(classes, op, "number of classes");
  const Targets t = target_arg(target, rows, classes, op);
  const float* pw = f32_opt_arg(weight, classes, op, "weight");
  py::array_t<float> lse(rows), nll(rows), smooth(rows);
  const float* px = f32_data(logits);
  float *pl = lse.mutable_data(), *pn = nll.mutable_data(), *ps = smooth.mutable_data();
  auto fn = cross_entropy_forward.get();
  const int threads = num_threads();
  int64_t bad = 0;
  {
    py::gil_scoped_release release;
    bad = fn(px, rows, classes, t.index, t.probs, pw, ignore_index, pl, pn, ps, threads);
  }
  if (bad > 0) {
    throw py::value_error("cross_entropy: " + std::to_string(bad) +
                          " target(s) outside the class range [0, " + std::to_string(classes) +
                          ")");
  }
  // The sums a 'mean' or 'sum' reduction needs, in double, so that Python
  // does not spend a numpy call on each (their cost shows when caches are cold).
  double nll_sum = 0.0, smooth_sum = 0.0, weight_sum = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    nll_sum += pn[r];
    smooth_sum += ps[r];
  }
  if (t.index) {  // the mean's divisor: the weights of the targets not ignored
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t y = t.index[r];
      if (y != ignore_index) weight_sum += pw ? pw[y] : 1.0;
    }
  } else {
    weight_sum = static_cast<double>(rows);
  }
  return py::make_tuple(lse, nll, smooth, nll_sum, smooth_sum, weight_sum);
}

py::array ce_backward(const py::array& logits, const py::array& lse, const py::array& target,
                      std::optional<py::array> weight, int64_t ignore_index,
                      const py::array& coef_nll, const py::array& coef_smooth) {
  static const char* op = "cross_entropy backward";
  check_f32(logits, op, "input (rows, classes)", 2);
  const int64_t rows = logits.shape(0), classes = logits.shape(1);
  check_positive(classes, op, "number of classes");
  const Targets t = target_arg(target, rows, classes, op);
  const float* pw = f32_opt_arg(weight, classes, op, "weight");
  const float* pl = f32_arg(lse, rows, op, "lse");
  const float* pcn = f32_arg(coef_nll, rows, op, "coef_nll");
  const float* pcs = f32_arg(coef_smooth, rows, op, "coef_smooth");
  py::array_t<float> grad({rows, classes});
  const float* px = f32_data(logits);
  float* pg = grad.mutable_data();
  auto fn = cross_entropy_backward.get();
  const int threads = num_threads();
  {
    py::gil_scoped_release release;
    fn(px, pl, rows, classes, t.index, t.probs, pw, ignore_index, pcn, pcs, pg, threads);
  }
  return grad;
}

}  // namespace

void bind_loss(py::module_& m) {
  m.def("cross_entropy_forward", &ce_forward, py::arg("input"), py::arg("target"),
        py::arg("weight") = py::none(), py::arg("ignore_index") = -100,
        "(lse, nll, smooth) per row, then sum(nll), sum(smooth) and the 'mean' divisor (the\n"
        "weights of the targets not ignored; rows for probabilities); target int64 class\n"
        "indices or float32 probabilities.");
  m.def("cross_entropy_backward", &ce_backward, py::arg("input"), py::arg("lse"),
        py::arg("target"), py::arg("weight") = py::none(), py::arg("ignore_index") = -100,
        py::arg("coef_nll"), py::arg("coef_smooth"));
}

}  // namespace pve
