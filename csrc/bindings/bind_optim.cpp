// Optimizer, gradient-clipping and bandwidth-probe bindings. Every array is
// checked (float32, C-contiguous, writable where written, same element count
// as the parameter) before the GIL is released around the kernel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "bindings/checks.h"
#include "core/threads.h"
#include "kernels/optim/optim.h"
#include "kernels/probe/triad.h"

namespace py = pybind11;

namespace pve {

PVE_DEFINE_KERNEL(optim_sgd, SgdFn);
PVE_DEFINE_KERNEL(optim_adam, AdamFn);
PVE_DEFINE_KERNEL(optim_adamax, AdamaxFn);
PVE_DEFINE_KERNEL(optim_nadam, NadamFn);
PVE_DEFINE_KERNEL(optim_radam, RadamFn);
PVE_DEFINE_KERNEL(optim_rmsprop, RmspropFn);
PVE_DEFINE_KERNEL(optim_adagrad, AdagradFn);
PVE_DEFINE_KERNEL(optim_adadelta, AdadeltaFn);
PVE_DEFINE_KERNEL(optim_rprop, RpropFn);
PVE_DEFINE_KERNEL(optim_asgd, AsgdFn);
PVE_DEFINE_KERNEL(optim_adafactor, AdafactorFn);
PVE_DEFINE_KERNEL(optim_lookahead_sync, LookaheadSyncFn);
PVE_DEFINE_KERNEL(grad_norm_part, GradNormPartFn);
PVE_DEFINE_KERNEL(grad_scale, ScaleFn);
PVE_DEFINE_KERNEL(grad_clamp, ClampFn);
PVE_DEFINE_KERNEL(triad, TriadFn);

namespace {

using OptArray = std::optional<py::array>;

// A float32 C-contiguous array of exactly n elements (any shape).
float* checked(py::array& a, const char* op, const char* name, int64_t n, bool writable) {
  check_f32(a, op, name, -1, writable);
  if (static_cast<int64_t>(a.size()) != n) {
    throw py::value_error(std::string(op) + ": " + name + " has " + std::to_string(a.size()) +
                          " elements, expected " + std::to_string(n) + " (the parameter's)");
  }
  return f32_mutable_data(a);
}

float* checked_opt(OptArray& a, bool needed, const char* op, const char* name, int64_t n) {
  if (!needed) return nullptr;
  if (!a) throw py::value_error(std::string(op) + ": " + name + " is required with these options");
  return checked(*a, op, name, n, true);
}

struct Common {
  float* param;
  const float* grad;
  int64_t n;
};

Common common(py::array& param, py::array& grad, const char* op) {
  check_f32(param, op, "param", -1, true);
  const int64_t n = static_cast<int64_t>(param.size());
  return {f32_mutable_data(param), checked(grad, op, "grad", n, false), n};
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("optim_sgd", [](py::array param, py::array grad, OptArray momentum_buffer, double lr,
                        double momentum, double dampening, double weight_decay, bool nesterov,
                        bool maximize, bool first_step) {
    const char* op = "optim_sgd";
    Common c = common(param, grad, op);
    float* buf = checked_opt(momentum_buffer, momentum != 0.0, op, "momentum_buffer", c.n);
    SgdArgs a{float(lr), float(momentum), float(1.0 - dampening), float(weight_decay),
              nesterov, maximize, first_step};
    SgdFn fn = optim_sgd.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(c.param, c.grad, buf, c.n, a, threads);
  }, py::arg("param"), py::arg("grad"), py::arg("momentum_buffer"), py::arg("lr"),
     py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"),
     py::arg("maximize"), py::arg("first_step"),
     "SGD step over one buffer, in place (torch.optim.SGD arithmetic).");

  m.def("optim_adam", [](py::array param, py::array grad, py::array exp_avg, py::array exp_avg_sq,
                         OptArray max_exp_avg_sq, double lerp_weight, double beta2,
                         double one_minus_beta2, double weight_decay, double decay_factor,
                         double neg_step_size, double bias_correction2_sqrt, double eps,
                         bool maximize, bool decoupled, bool amsgrad) {
    const char* op = "optim_adam";
    Common c = common(param, grad, op);
    float* m1 = checked(exp_avg, op, "exp_avg", c.n, true);
    float* m2 = checked(exp_avg_sq, op, "exp_avg_sq", c.n, true);
    float* mx = checked_opt(max_exp_avg_sq, amsgrad, op, "max_exp_avg_sq", c.n);
    AdamArgs a{float(lerp_weight), float(beta2), float(one_minus_beta2), float(weight_decay),
               float(decay_factor), float(neg_step_size), float(bias_correction2_sqrt),
               float(eps), maximize, decoupled, amsgrad};
    AdamFn fn = optim_adam.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(c.param, c.grad, m1, m2, mx, c.n, a, threads);
  }, py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"),
     py::arg("max_exp_avg_sq"), py::arg("lerp_weight"), py::arg("beta2"),
     py::arg("one_minus_beta2"), py::arg("weight_decay"), py::arg("decay_factor"),
     py::arg("neg_step_size"), py::arg("bias_correction2_sqrt"), py::arg("eps"),
     py::arg("maximize"), py::arg("decoupled"), py::arg("amsgrad"),
     "Adam / AdamW step over one buffer, in place.");

  m.def("optim_adamax", [](py::array param, py::array grad, py::array exp_avg, py::array exp_inf,
                           double lerp_weight, double beta2, double eps, double weight_decay,
                           double neg_clr, bool maximize) {
    const char* op = "optim_adamax";
    Common c = common(param, grad, op);
    float* m1 = checked(exp_avg, op, "exp_avg", c.n, true);
    float* u = checked(exp_inf, op, "exp_inf", c.n, true);
    AdamaxArgs a{float(lerp_weight), float(beta2), float(eps), float(weight_decay),
                 float(neg_clr), maximize};
    AdamaxFn fn = optim_adamax.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(c.param, c.grad, m1, u, c.n, a, threads);
  }, py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_inf"),
     py::arg("lerp_weight"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
     py::arg("neg_clr"), py::arg("maximize"), "Adamax step over one buffer, in place.");

  m.def("optim_nadam", [](py::array param, py::array grad, py::array exp_avg,
                          py::array exp_avg_sq, double lerp_weight, double beta2,
                          double one_minus_beta2, double weight_decay, double decay_factor,
                          double bias_correction2, double eps, double grad_coef,
                          double exp_avg_coef, bool maximize, bool decoupled) {
    const char* op = "optim_nadam";
    Common c = common(param, grad, op);
    float* m1 = checked(exp_avg, op, "exp_avg", c.n, true);
    float* m2 = checked(exp_avg_sq, op, "exp_avg_sq", c.n, true);
    NadamArgs a{float(lerp_weight), float(beta2), float(one_minus_beta2), float(weight_decay),
                float(decay_factor), float(bias_correction2), float(eps), float(grad_coef),
                float(exp_avg_coef), maximize, decoupled};
    NadamFn fn = optim_nadam.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(c.param, c.grad, m1, m2, c.n, a, threads);
  }, py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"),
     py::arg("lerp_weight"), py::arg("beta2"), py::arg("one_minus_beta2"),
     py::arg("weight_decay"), py::arg("decay_factor"), py::arg("bias_correction2"),
     py::arg("eps"), py::arg("grad_coef"), py::arg("exp_avg_coef"), py::arg("maximize"),
     py::arg("decoupled"), "NAdam step over one buffer, in place.");

  m.def("optim_radam", [](py::array param, py::array grad, py::array exp_avg,
                          py::array exp_avg_sq, double lerp_weight, double beta2,
                          double one_minus_beta2, double weight_decay, double decay_factor,
                          double bias_correction1, double lr, double bias_correction2_sqrt,
                          double eps, double rect, bool rectified, bool maximize,
                          bool decoupled) {
    const char* op = "optim_radam";
    Common c = common(param, grad, op);
    float* m1 = checked(exp_avg, op, "exp_avg", c.n, true);
    float* m2 = checked(exp_avg_sq, op, "exp_avg_sq", c.n, true);
    RadamArgs a{float(lerp_weight), float(beta2), float(one_minus_beta2), float(weight_decay),
                float(decay_factor), float(bias_correction1), float(lr),
                float(bias_correction2_sqrt), float(eps), float(rect), rectified, maximize,
                decoupled};
    RadamFn fn = optim_radam.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(c.param, c.grad, m1, m2, c.n, a, threads);
  }, py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"),
     py::arg("lerp_weight"), py::arg("beta2"), py::arg("one_minus_beta2"),
     py::arg("weight_decay"), py::arg("decay_factor"), py::arg("bias_correction1"),
     py::arg("lr"), py::arg("bias_correction2_sqrt"), py::arg("eps"), py::arg("rect"),
     py::arg("rectified"), py::arg("maximize"), py::arg("decoupled"),
     "RAdam step over one buffer, in place.");

  m.def("optim_rmsprop", [](py::array param, py::array grad, py::array square_avg,
                            OptArray grad_avg, OptArray momentum_buffer, double alpha,
                            double one_minus_alpha, double eps, double weight_decay,
                            double momentum, double neg_lr, bool centered, bool maximize) {
    const char* op = "optim_rmsprop";
    Common c = common(param, grad, op);
    float* s = checked(square_avg, op, "square_avg", c.n, true);
    float* ga = checked_opt(grad_avg, centered, op, "grad_avg", c.n);
    float* buf = checked_opt(momentum_buffer, momentum > 0.0, op, "momentum_buffer", c.n);
    RmspropArgs a{float(alpha), float(one_minus_alpha), float(eps), float(weight_decay),
                  float(momentum), float(neg_lr), centered, maximize};
    RmspropFn fn = optim_rmsprop.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(c.param, c.grad, s, ga, buf, c.n, a, threads);
  }, py::arg("param"), py::arg("grad"), py::arg("square_avg"), py::arg("grad_avg"),
     py::arg("momentum_buffer"), py::arg("alpha"), py::arg("one_minus_alpha"), py::arg("eps"),
     py::arg("weight_decay"), py::arg("momentum"), py::arg("neg_lr"), py::arg("centered"),
     py::arg("maximize"), "RMSprop step over one buffer, in place.");

  m.def("optim_adagrad", [](py::array param, py::array grad, py::array sum, double neg_clr,
                            double eps, double weight_decay, bool maximize) {
    const char* op = "optim_adagrad";
    Common c = common(param, grad, op);
    float* s = checked(sum, op, "sum", c.n, true);
    AdagradArgs a{float(neg_clr), float(eps), float(weight_decay), maximize};
    AdagradFn fn = optim_adagrad.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(c.param, c.grad, s, c.n, a, threads);
  }, py::arg("param"), py::arg("grad"), py::arg("sum"), py::arg("neg_clr"), py::arg("eps"),
     py::arg("weight_decay"), py::arg("maximize"), "Adagrad step over one buffer, in place.");

  m.def("optim_adadelta", [](py::array param, py::array grad, py::array square_avg,
                             py::array acc_delta, double rho, double one_minus_rho, double eps,
                             double weight_decay, double neg_lr, bool maximize) {
    const char* op = "optim_adadelta";
    Common c = common(param, grad, op);
    float* s = checked(square_avg, op, "square_avg", c.n, true);
    float* acc = checked(acc_delta, op, "acc_delta", c.n, true);
    AdadeltaArgs a{float(rho), float(one_minus_rho), float(eps), float(weight_decay),
                   float(neg_lr), maximize};
    AdadeltaFn fn = optim_adadelta.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(c.param, c.grad, s, acc, c.n, a, threads);
  }, py::arg("param"), py::arg("grad"), py::arg("square_avg"), py::arg("acc_delta"),
     py::arg("rho"), py::arg("one_minus_rho"), py::arg("eps"), py::arg("weight_decay"),
     py::arg("neg_lr"), py::arg("maximize"), "Adadelta step over one buffer, in place.");

  m.def("optim_rprop", [](py::array param, py::array grad, py::array prev, py::array step_size,
                          double etaminus, double etaplus, double step_size_min,
                          double step_size_max, bool maximize) {
    const char* op = "optim_rprop";
    Common c = common(param, grad, op);
    float* pv = checked(prev, op, "prev", c.n, true);
    float* ss = checked(step_size, op, "step_size", c.n, true);
    RpropArgs a{float(etaminus), float(etaplus), float(step_size_min), float(step_size_max),
                maximize};
    RpropFn fn = optim_rprop.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(c.param, c.grad, pv, ss, c.n, a, threads);
  }, py::arg("param"), py::arg("grad"), py::arg("prev"), py::arg("step_size"),
     py::arg("etaminus"), py::arg("etaplus"), py::arg("step_size_min"), py::arg("step_size_max"),
     py::arg("maximize"), "Rprop step over one buffer, in place.");

  m.def("optim_asgd", [](py::array param, py::array grad, py::array ax, double weight_decay,
                         double decay, double neg_eta, double mu, bool average, bool maximize) {
    const char* op = "optim_asgd";
    Common c = common(param, grad, op);
    float* x = checked(ax, op, "ax", c.n, true);
    AsgdArgs a{float(weight_decay), float(decay), float(neg_eta), float(mu), average, maximize};
    AsgdFn fn = optim_asgd.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(c.param, c.grad, x, c.n, a, threads);
  }, py::arg("param"), py::arg("grad"), py::arg("ax"), py::arg("weight_decay"), py::arg("decay"),
     py::arg("neg_eta"), py::arg("mu"), py::arg("average"), py::arg("maximize"),
     "ASGD step over one buffer, in place (eta, mu: the values stored at the previous step).");

  m.def("optim_adafactor", [](py::array param, py::array grad, OptArray row_var,
                              OptArray col_var, OptArray variance, double lerp_weight, double eps1,
                              double eps1_sq, double decay, bool decay_on, bool maximize,
                              double eps2, double rho, double d) {
    const char* op = "optim_adafactor";
    Common c = common(param, grad, op);
    if (param.ndim() != grad.ndim()) {
      throw py::value_error(std::string(op) + ": grad has " + std::to_string(grad.ndim()) +
                            " dimensions, the parameter " + std::to_string(param.ndim()));
    }
    // Factored over the last two dimensions when the parameter has two or more.
    AdafactorArgs a{1, 0, 0, float(lerp_weight), float(eps1), float(eps1_sq), float(decay),
                    decay_on, maximize, eps2, rho, d};
    float *rv = nullptr, *cv = nullptr, *var = nullptr;
    if (param.ndim() > 1) {
      const int nd = static_cast<int>(param.ndim());
      for (int i = 0; i < nd - 2; ++i) a.batch *= param.shape(i);
      a.rows = param.shape(nd - 2);
      a.cols = param.shape(nd - 1);
      rv = checked_opt(row_var, true, op, "row_var", a.batch * a.rows);
      cv = checked_opt(col_var, true, op, "col_var", a.batch * a.cols);
    } else {
      var = checked_opt(variance, true, op, "variance", c.n);
    }
    AdafactorFn fn = optim_adafactor.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(c.param, c.grad, rv, cv, var, c.n, a, threads);
  }, py::arg("param"), py::arg("grad"), py::arg("row_var"), py::arg("col_var"),
     py::arg("variance"), py::arg("lerp_weight"), py::arg("eps1"), py::arg("eps1_sq"),
     py::arg("decay"), py::arg("decay_on"), py::arg("maximize"), py::arg("eps2"), py::arg("rho"),
     py::arg("d"),
     "Adafactor step of one tensor, in place: factored moments (row_var, col_var) over the "
     "last two dimensions when it has two or more, else the full variance.");

  m.def("optim_lookahead_sync", [](py::array fast, py::array slow, double alpha) {
    const char* op = "optim_lookahead_sync";
    check_f32(fast, op, "fast", -1, true);
    const int64_t n = static_cast<int64_t>(fast.size());
    float* f = f32_mutable_data(fast);
    float* s = checked(slow, op, "slow", n, true);
    LookaheadSyncFn fn = optim_lookahead_sync.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(f, s, n, float(alpha), threads);
  }, py::arg("fast"), py::arg("slow"), py::arg("alpha"),
     "slow += alpha * (fast - slow); fast = slow.");

  m.def("grad_norm_part", [](py::array grad, double norm_type) {
    const char* op = "grad_norm_part";
    check_f32(grad, op, "grad", -1, false);
    const bool inf = norm_type == std::numeric_limits<double>::infinity();
    GradNormPartFn fn = grad_norm_part.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    return fn(f32_data(grad), static_cast<int64_t>(grad.size()), norm_type, inf ? 1 : 0,
              threads);
  }, py::arg("grad"), py::arg("norm_type"),
     "sum(|g|**p) in double, or max|g| for p = inf (NaN if any element is NaN).");

  m.def("grad_scale", [](py::array grad, double scale) {
    check_f32(grad, "grad_scale", "grad", -1, true);
    ScaleFn fn = grad_scale.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(f32_mutable_data(grad), static_cast<int64_t>(grad.size()), float(scale), threads);
  }, py::arg("grad"), py::arg("scale"), "grad *= scale, in place.");

  m.def("grad_clamp", [](py::array grad, double clip_value) {
    check_f32(grad, "grad_clamp", "grad", -1, true);
    ClampFn fn = grad_clamp.get();
    const int threads = num_threads();
    py::gil_scoped_release release;
    fn(f32_mutable_data(grad), static_cast<int64_t>(grad.size()), float(clip_value), threads);
  }, py::arg("grad"), py::arg("clip_value"), "grad = clamp(grad, -c, c), in place.");

  m.def("triad", [](py::array a, py::array b, py::array c, double s, bool nontemporal,
                    int threads) {
    const char* op = "triad";
    check_f32(a, op, "a", 1, true);
    const int64_t n = static_cast<int64_t>(a.size());
    const float* bp = checked(b, op, "b", n, false);
    const float* cp = checked(c, op, "c", n, false);
    if (threads < 1) throw py::value_error("triad: threads must be positive");
    if (nontemporal && reinterpret_cast<uintptr_t>(a.data()) % 64 != 0)
      throw py::value_error("triad: a must be 64-byte aligned for non-temporal stores");
    TriadFn fn = triad.get();
    float* ap = f32_mutable_data(a);
    py::gil_scoped_release release;
    fn(ap, bp, cp, float(s), n, nontemporal, threads);
  }, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("s"), py::arg("nontemporal"),
     py::arg("threads"), "STREAM triad a = b + s*c (time it outside).");
}

}  // namespace pve
