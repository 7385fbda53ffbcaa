// Normalisation bindings: channel statistics, per-channel affine maps and
// gradient sums (BatchNorm / GroupNorm), LayerNorm forward and backward.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>

#include "bindings/layer_checks.h"
#include "core/threads.h"
#include "kernels/norm/norm.h"

namespace py = pybind11;

namespace pve {

PVE_DEFINE_KERNEL(channel_stats, ChannelStatsFn);
PVE_DEFINE_KERNEL(channel_affine, ChannelAffineFn);
PVE_DEFINE_KERNEL(channel_grad_sums, ChannelGradSumsFn);
PVE_DEFINE_KERNEL(batch_norm_train_forward, BatchNormTrainForwardFn);
PVE_DEFINE_KERNEL(batch_norm_train_backward, BatchNormTrainBackwardFn);
PVE_DEFINE_KERNEL(layer_norm_forward, LayerNormForwardFn);
PVE_DEFINE_KERNEL(layer_norm_backward, LayerNormBackwardFn);

namespace {

void check_layout(const char* op, int64_t n, int64_t c, int64_t l) {
  if (n < 0 || c < 0 || l < 0)
    throw py::value_error(std::string(op) + ": layout sizes must be non-negative");
}

py::tuple stats(const py::array& x, int64_t n, int64_t c, int64_t l) {
  static const char* op = "channel_stats";
  check_layout(op, n, c, l);
  const float* px = f32_arg(x, n * c * l, op, "input");
  py::array_t<float> mean(c), var(c);
  float* pm = mean.mutable_data();
  float* pv = var.mutable_data();
  auto fn = channel_stats.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(px, n, c, l, pm, pv, t);
  }
  return py::make_tuple(mean, var);
}

py::array affine(const py::array& u, std::optional<py::array> v, std::optional<py::array> out,
                 int64_t n, int64_t c, int64_t l, const py::array& a,
                 std::optional<py::array> b, std::optional<py::array> d, bool relu,
                 float relu_max) {
  static const char* op = "channel_affine";
  check_layout(op, n, c, l);
  const int64_t total = n * c * l;
  const float* pu = f32_arg(u, total, op, "u");
  const float* pv = f32_opt_arg(v, total, op, "v");
  const float* pa = f32_arg(a, c, op, "a");
  const float* pb = f32_opt_arg(b, c, op, "b");
  const float* pd = f32_opt_arg(d, c, op, "d");
  if (pv && !pb) throw py::value_error("channel_affine: v needs coefficients b");
  py::array result;
  if (out) {
    result = *out;
  } else {
    result = py::array_t<float>(shape_of(u));
  }
  float* po = f32_out_arg(result, total, op, "out");
  auto fn = channel_affine.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(pu, pv, po, n, c, l, pa, pb, pd, relu, relu_max, t);
  }
  return result;
}

py::tuple grad_sums(const py::array& x, const py::array& gy, int64_t n, int64_t c, int64_t l,
                    const py::array& center) {
  static const char* op = "channel_grad_sums";
  check_layout(op, n, c, l);
  const float* px = f32_arg(x, n * c * l, op, "input");
  const float* pg = f32_arg(gy, n * c * l, op, "grad_output");
  const float* pc = f32_arg(center, c, op, "center");
  py::array_t<float> s1(c), s2(c);
  float* p1 = s1.mutable_data();
  float* p2 = s2.mutable_data();
  auto fn = channel_grad_sums.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(px, pg, n, c, l, pc, p1, p2, t);
  }
  return py::make_tuple(s1, s2);
}

// torch's running-statistics update after a training step, in its arithmetic
// (ATen's batch_norm_cpu_update_stats_template): in float64, one rounding to
// float32 at the end, r = momentum * s + (1 - momentum) * r, s the batch mean
// or the unbiased batch variance (the biased one times m / (m - 1); m = 1
// keeps it biased).
void update_running_stats(const float* mean, const float* var, int64_t c, int64_t m,
                          double momentum, float* running_mean, float* running_var) {
  const double bessel = m > 1 ? static_cast<double>(m) / static_cast<double>(m - 1) : 1.0;
  for (int64_t i = 0; i < c; ++i) {
    const double unbiased = static_cast<double>(var[i]) * bessel;
    running_mean[i] = static_cast<float>(momentum * static_cast<double>(mean[i]) +
                                         (1 - momentum) * static_cast<double>(running_mean[i]));
    running_var[i] = static_cast<float>(momentum * unbiased +
                                        (1 - momentum) * static_cast<double>(running_var[i]));
  }
}

py::tuple bn_train_forward(const py::array& x, int64_t n, int64_t c, int64_t l,
                           std::optional<py::array> w, std::optional<py::array> b, double eps,
                           bool relu, float relu_max, std::optional<py::array> running_mean,
                           std::optional<py::array> running_var, double momentum) {
  static const char* op = "batch_norm_train_forward";
  check_layout(op, n, c, l);
  const float* px = f32_arg(x, n * c * l, op, "input");
  const float* pw = f32_opt_arg(w, c, op, "weight");
  const float* pb = f32_opt_arg(b, c, op, "bias");
  if (running_mean.has_value() != running_var.has_value())
    throw py::value_error(std::string(op) + ": running_mean and running_var go together");
  float* prm = running_mean ? f32_out_arg(*running_mean, c, op, "running_mean") : nullptr;
  float* prv = running_var ? f32_out_arg(*running_var, c, op, "running_var") : nullptr;
  py::array_t<float> y(shape_of(x)), mean(c), var(c);
  float* py_ = y.mutable_data();
  float* pm = mean.mutable_data();
  float* pv = var.mutable_data();
  auto fn = batch_norm_train_forward.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(px, py_, n, c, l, pw, pb, eps, relu, relu_max, pm, pv, t);
  }
  // (with the GIL held, as numpy's in-place update was: the buffers are the module's)
  if (prm) update_running_stats(pm, pv, c, n * l, momentum, prm, prv);
  return py::make_tuple(y, mean, var);
}

py::tuple bn_train_backward(const py::array& x, const py::array& gy, int64_t n, int64_t c,
                            int64_t l, const py::array& mean, const py::array& var,
                            std::optional<py::array> w, double eps, bool need_input,
                            std::optional<py::array> b, bool relu, float relu_max,
                            bool affine_grads) {
  static const char* op = "batch_norm_train_backward";
  check_layout(op, n, c, l);
  const float* px = f32_arg(x, n * c * l, op, "input");
  const float* pg = f32_arg(gy, n * c * l, op, "grad_output");
  const float* pm = f32_arg(mean, c, op, "mean");
  const float* pv = f32_arg(var, c, op, "var");
  const float* pw = f32_opt_arg(w, c, op, "weight");
  const float* pb = f32_opt_arg(b, c, op, "bias");
  py::object gx = py::none();
  float* pgx = nullptr;
  if (need_input) {
    py::array_t<float> a(shape_of(x));
    pgx = a.mutable_data();
    gx = a;
  }
  py::array_t<float> s1(c), s2(c);
  float* p1 = s1.mutable_data();
  float* p2 = s2.mutable_data();
  auto fn = batch_norm_train_backward.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(px, pg, pgx, n, c, l, pm, pv, pw, pb, eps, relu, relu_max, p1, p2, t);
    if (affine_grads) {  // s2 becomes grad_weight = sum gy * x_hat, in float64 as numpy had it
      for (int64_t i = 0; i < c; ++i)
        p2[i] = static_cast<float>(static_cast<double>(p2[i]) *
                                   (1.0 / std::sqrt(static_cast<double>(pv[i]) + eps)));
    }
  }
  return py::make_tuple(gx, s1, s2);
}

py::tuple ln_forward(const py::array& x, int64_t rows, int64_t len, std::optional<py::array> w,
                     std::optional<py::array> b, float eps) {
  static const char* op = "layer_norm";
  check_layout(op, rows, 1, len);
  const float* px = f32_arg(x, rows * len, op, "input");
  const float* pw = f32_opt_arg(w, len, op, "weight");
  const float* pb = f32_opt_arg(b, len, op, "bias");
  py::array_t<float> y(shape_of(x)), mean(rows), rstd(rows);
  float* py_ = y.mutable_data();
  float* pm = mean.mutable_data();
  float* pr = rstd.mutable_data();
  auto fn = layer_norm_forward.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(px, py_, rows, len, pw, pb, eps, pm, pr, t);
  }
  return py::make_tuple(y, mean, rstd);
}

py::tuple ln_backward(const py::array& x, const py::array& gy, int64_t rows, int64_t len,
                      const py::array& mean, const py::array& rstd, std::optional<py::array> w,
                      bool need_input, bool need_affine) {
  static const char* op = "layer_norm backward";
  check_layout(op, rows, 1, len);
  const float* px = f32_arg(x, rows * len, op, "input");
  const float* pg = f32_arg(gy, rows * len, op, "grad_output");
  const float* pm = f32_arg(mean, rows, op, "mean");
  const float* pr = f32_arg(rstd, rows, op, "rstd");
  const float* pw = f32_opt_arg(w, len, op, "weight");
  py::object gx = py::none(), gw = py::none(), gb = py::none();
  float *pgx = nullptr, *pgw = nullptr, *pgb = nullptr;
  if (need_input) {
    py::array_t<float> a(shape_of(x));
    pgx = a.mutable_data();
    gx = a;
  }
  if (need_affine) {
    py::array_t<float> a(len), bb(len);
    pgw = a.mutable_data();
    pgb = bb.mutable_data();
    gw = a;
    gb = bb;
  }
  auto fn = layer_norm_backward.get();
  const int t = num_threads();
  {
    py::gil_scoped_release release;
    fn(px, pg, rows, len, pm, pr, pw, pgx, pgw, pgb, t);
  }
  return py::make_tuple(gx, gw, gb);
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def("channel_stats", &stats, py::arg("input"), py::arg("n"), py::arg("c"), py::arg("l"),
        "(mean, biased var) per channel of input viewed as (n, c, l).");
  m.def("channel_affine", &affine, py::arg("u"), py::arg("v") = py::none(),
        py::arg("out") = py::none(), py::arg("n"), py::arg("c"), py::arg("l"), py::arg("a"),
        py::arg("b") = py::none(), py::arg("d") = py::none(), py::arg("relu") = false,
        py::arg("relu_max") = INFINITY,
        "out = a[c]*u + b[c]*v + d[c] (+ReLU, clamped to relu_max) over (n, c, l); out may "
        "alias u.");
  m.def("channel_grad_sums", &grad_sums, py::arg("input"), py::arg("grad_output"), py::arg("n"),
        py::arg("c"), py::arg("l"), py::arg("center"),
        "(sum gy, sum gy*(x - center[c])) per channel.");
  m.def("batch_norm_train_forward", &bn_train_forward, py::arg("input"), py::arg("n"),
        py::arg("c"), py::arg("l"), py::arg("weight") = py::none(), py::arg("bias") = py::none(),
        py::arg("eps") = 1e-5, py::arg("relu") = false, py::arg("relu_max") = INFINITY,
        py::arg("running_mean") = py::none(), py::arg("running_var") = py::none(),
        py::arg("momentum") = 0.1,
        "(y, mean, biased var): training BatchNorm over input viewed as (n, c, l), with relu "
        "clamped to [0, relu_max]; running_mean and running_var (float32, c), when given, "
        "are updated in place as torch's: r = (1 - momentum) r + momentum s, with the "
        "unbiased batch variance.");
  m.def("batch_norm_train_backward", &bn_train_backward, py::arg("input"),
        py::arg("grad_output"), py::arg("n"), py::arg("c"), py::arg("l"), py::arg("mean"),
        py::arg("var"), py::arg("weight") = py::none(), py::arg("eps") = 1e-5,
        py::arg("need_input") = true, py::arg("bias") = py::none(), py::arg("relu") = false,
        py::arg("relu_max") = INFINITY, py::arg("affine_grads") = false,
        "(grad_input or None, sum gy, sum gy*(x - mean)) through the batch statistics; with "
        "affine_grads, (grad_input or None, grad_bias = sum gy, grad_weight = sum gy*(x - "
        "mean)/sqrt(var + eps)). With relu, grad_output is that of the forward's "
        "clamp(batch_norm(input), 0, relu_max) (the forward's weight and bias).");
  m.def("layer_norm_forward", &ln_forward, py::arg("input"), py::arg("rows"), py::arg("len"),
        py::arg("weight") = py::none(), py::arg("bias") = py::none(), py::arg("eps") = 1e-5f);
  m.def("layer_norm_backward", &ln_backward, py::arg("input"), py::arg("grad_output"),
        py::arg("rows"), py::arg("len"), py::arg("mean"), py::arg("rstd"),
        py::arg("weight") = py::none(), py::arg("need_input") = true,
        py::arg("need_affine") = true);
}

}  // namespace pve
