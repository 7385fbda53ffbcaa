// Convolution bindings: geometry checked here, scratch taken from the calling
// thread's arena, the GIL released around the kernel. Python (nn/functional.py
// and backends/conv.py) validates arguments with torch's messages and picks the
// algorithm; this layer re-checks everything a kernel relies on for memory
// safety, and falls back to im2col when the requested family refuses a shape.
// A residual (y = act(conv + bias + residual)) goes to the families that add
// it in their epilogue; for the others the convolution runs without its
// activation and one add + activation pass follows (conv2d_add_residual),
// inside the same GIL release.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "bindings/checks.h"
#include "core/threads.h"
#include "kernels/conv/conv2d.h"
#include "kernels/eltwise/finite.h"

namespace py = pybind11;

namespace pve {

PVE_DEFINE_KERNEL(conv2d_add_residual, Conv2dAddResidualFn);
PVE_DEFINE_KERNEL(conv2d_im2col_workspace, Conv2dWorkspaceFn);
PVE_DEFINE_KERNEL(conv2d_im2col_run, Conv2dRunFn);
PVE_DEFINE_KERNEL(conv2d_pointwise_workspace, Conv2dWorkspaceFn);
PVE_DEFINE_KERNEL(conv2d_pointwise_run, Conv2dRunFn);
PVE_DEFINE_KERNEL(conv2d_pointwise_pack, Conv2dPackFn);
PVE_DEFINE_KERNEL(all_finite, AllFiniteFn);
PVE_DEFINE_KERNEL(conv2d_depthwise_workspace, Conv2dWorkspaceFn);
PVE_DEFINE_KERNEL(conv2d_depthwise_run, Conv2dRunFn);
PVE_DEFINE_KERNEL(conv2d_winograd_workspace, Conv2dWorkspaceFn);
PVE_DEFINE_KERNEL(conv2d_winograd_run, Conv2dRunFn);
PVE_DEFINE_KERNEL(conv2d_winograd_pack, Conv2dPackFn);
PVE_DEFINE_KERNEL(conv2d_winograd_f2_workspace, Conv2dWorkspaceFn);
PVE_DEFINE_KERNEL(conv2d_winograd_f2_run, Conv2dRunFn);
PVE_DEFINE_KERNEL(conv2d_winograd_f2_pack, Conv2dPackFn);
PVE_DEFINE_KERNEL(conv2d_direct_workspace, Conv2dWorkspaceFn);
PVE_DEFINE_KERNEL(conv2d_direct_run, Conv2dRunFn);
PVE_DEFINE_KERNEL(conv2d_phase_workspace, Conv2dWorkspaceFn);
PVE_DEFINE_KERNEL(conv2d_phase_run, Conv2dRunFn);
PVE_DEFINE_KERNEL(conv2d_phase_pack, Conv2dPackFn);
PVE_DEFINE_KERNEL(conv2d_stem_workspace, Conv2dWorkspaceFn);
PVE_DEFINE_KERNEL(conv2d_stem_run, Conv2dRunFn);
PVE_DEFINE_KERNEL(conv2d_stem_pack, Conv2dPackFn);
PVE_DEFINE_KERNEL(conv2d_winograd_s2_workspace, Conv2dWorkspaceFn);
PVE_DEFINE_KERNEL(conv2d_winograd_s2_run, Conv2dRunFn);
PVE_DEFINE_KERNEL(conv2d_winograd_s2_pack, Conv2dPackFn);

namespace {

// Refuse scratch or outputs beyond this, rather than let the OS overcommit.
constexpr int64_t kMaxBytes = int64_t(1) << 36;  // 64 GiB

// Per-thread reusable scratch: grows to the largest request a Python thread
// has made and is reused, so steady-state calls never allocate. Being
// thread_local, concurrent Python threads never share it.
class ScratchArena {
 public:
  ~ScratchArena() { std::free(data_); }
  float* get(int64_t floats) {
    if (floats > capacity_) {
      std::free(data_);
      data_ = nullptr;
      capacity_ = 0;
      const size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data_) throw std::bad_alloc();
      capacity_ = floats;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  int64_t capacity_ = 0;
};

thread_local ScratchArena tls_arena;

using FusesResidualFn = bool (*)(const Conv2dShape& shape, bool packed_weights);

bool always(const Conv2dShape&, bool) { return true; }

struct Family {
  const char* name;
  KernelStub<Conv2dWorkspaceFn>* workspace;
  KernelStub<Conv2dRunFn>* run;
  KernelStub<Conv2dPackFn>* pack;  // null: forward takes no packed weights
  // Whether forward adds Conv2dArgs::residual in its epilogue for this shape
  // (null: never; the binding then runs conv2d_add_residual after it).
  FusesResidualFn fuses_residual;
  // Winograd's transforms mix each tile's values, so one NaN or inf input
  // makes a whole tile's results NaN (torch: only the ones that read it, inf
  // kept). Such a family's results are checked, and a non-finite one is
  // computed again by im2col.
  bool spreads_non_finite = false;
};

const std::vector<Family>& families() {
  static const std::vector<Family> f = {
      {"im2col", &conv2d_im2col_workspace, &conv2d_im2col_run, nullptr, nullptr},
      {"pointwise", &conv2d_pointwise_workspace, &conv2d_pointwise_run,
       &conv2d_pointwise_pack, &conv2d_pointwise_on_driver},
      {"depthwise", &conv2d_depthwise_workspace, &conv2d_depthwise_run, nullptr, nullptr},
      {"winograd", &conv2d_winograd_workspace, &conv2d_winograd_run, &conv2d_winograd_pack,
       &always, true},
      {"direct", &conv2d_direct_workspace, &conv2d_direct_run, nullptr, nullptr},
      {"phase", &conv2d_phase_workspace, &conv2d_phase_run, &conv2d_phase_pack, &always},
      {"winograd_f2", &conv2d_winograd_f2_workspace, &conv2d_winograd_f2_run,
       &conv2d_winograd_f2_pack, &always, true},
      {"stem", &conv2d_stem_workspace, &conv2d_stem_run, &conv2d_stem_pack, nullptr},
      {"winograd_s2", &conv2d_winograd_s2_workspace, &conv2d_winograd_s2_run,
       &conv2d_winograd_s2_pack, nullptr, true},
  };
  return f;
}

const Family& family(const std::string& name) {
  for (const Family& f : families())
    if (name == f.name) return f;
  std::string names;  // the table's, so that a new family is listed too
  for (const Family& f : families()) names += (names.empty() ? "" : ", ") + std::string(f.name);
  throw py::value_error("conv2d: unknown algorithm '" + name + "'; choose from " + names);
}

using Pair = std::tuple<int64_t, int64_t>;

Conv2dShape make_shape(const std::vector<int64_t>& x, const std::vector<int64_t>& w, Pair stride,
                       Pair padding, Pair dilation, int64_t groups, Pair out) {
  Conv2dShape s;
  s.batch = x[0];
  s.in_channels = x[1];
  s.in_h = x[2];
  s.in_w = x[3];
  s.out_channels = w[0];
  s.kernel_h = w[2];
  s.kernel_w = w[3];
  std::tie(s.stride_h, s.stride_w) = stride;
  std::tie(s.pad_top, s.pad_left) = padding;
  std::tie(s.dilation_h, s.dilation_w) = dilation;
  s.groups = groups;
  std::tie(s.out_h, s.out_w) = out;
  // (built only for an error message: every convolution call passes here)
  auto shapes = [&] { return "input " + shape_str(x) + ", weight " + shape_str(w); };
  if (s.stride_h < 1 || s.stride_w < 1 || s.dilation_h < 1 || s.dilation_w < 1)
    throw py::value_error("conv2d: stride and dilation must be positive (" + shapes() + ")");
  if (s.pad_top < 0 || s.pad_left < 0)
    throw py::value_error("conv2d: padding must be non-negative (" + shapes() + ")");
  if (groups < 1 || s.in_channels % groups != 0 || s.out_channels % groups != 0 ||
      w[1] * groups != s.in_channels)
    throw py::value_error("conv2d: channels do not match groups=" + std::to_string(groups) +
                          " (" + shapes() + ")");
  if (s.kernel_h < 1 || s.kernel_w < 1 || s.out_h < 0 || s.out_w < 0)
    throw py::value_error("conv2d: empty kernel or negative output size (" + shapes() + ")");
  return s;
}

void check_bytes(double floats, const char* what) {
  if (floats * 4.0 > static_cast<double>(kMaxBytes))
    throw py::value_error(std::string("conv2d: ") + what + " would need " +
                          std::to_string(floats * 4.0 / (1 << 30)) +
                          " GiB, more than the 64 GiB limit");
}

// The family that runs (the requested one, or im2col when it refuses) and
// its scratch.
const Family& resolve(const std::string& algorithm, ConvPass pass, const Conv2dShape& s,
                      int threads, int64_t* workspace_floats) {
  const Family* f = &family(algorithm);
  int64_t ws = f->workspace->get()(pass, s, threads);
  if (ws < 0) {
    f = &family("im2col");
    ws = f->workspace->get()(pass, s, threads);
  }
  check_bytes(static_cast<double>(ws), "scratch");
  *workspace_floats = ws;
  return *f;
}

py::array_t<float> new_array(const std::vector<int64_t>& shape) {
  double n = 1;
  for (int64_t d : shape) n *= static_cast<double>(d);
  check_bytes(n, "the result");
  return py::array_t<float>(shape);
}

// A C-contiguous float32 array whose data starts on a cache line (the
// pointwise kernel stores large outputs non-temporally in whole lines): a
// view into a slightly larger numpy buffer, so numpy's own allocation
// (huge pages for large arrays) is kept.
py::array_t<float> new_aligned_array(const std::vector<int64_t>& shape) {
  double n = 1;
  for (int64_t d : shape) n *= static_cast<double>(d);
  check_bytes(n + 16, "the result");
  constexpr int64_t kLineFloats = 16;
  py::array_t<float> buffer(static_cast<py::ssize_t>(n) + kLineFloats);
  float* data = buffer.mutable_data();
  const int64_t skip = (kLineFloats - static_cast<int64_t>(
                           reinterpret_cast<uintptr_t>(data) / sizeof(float) % kLineFloats)) %
                       kLineFloats;
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t stride = sizeof(float);
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= static_cast<py::ssize_t>(shape[i]);
  }
  return py::array_t<float>(std::vector<py::ssize_t>(shape.begin(), shape.end()), strides,
                            data + skip, buffer);
}

py::array conv2d_forward(const py::array& x, const py::array& w, std::optional<py::array> bias,
                         Pair stride, Pair padding, Pair dilation, int64_t groups, Pair out,
                         const std::string& algorithm, bool relu,
                         std::optional<py::array> packed, float relu_max,
                         std::optional<bool> stream_outputs, std::optional<py::array> residual) {
  check_f32(x, "conv2d", "input", 4);
  if (!(relu_max >= 0.0f))
    throw py::value_error("conv2d: relu_max must be >= 0 (+inf for ReLU, 6 for ReLU6), got " +
                          std::to_string(relu_max));
  check_f32(w, "conv2d", "weight", 4);
  Conv2dShape s = make_shape(shape_of(x), shape_of(w), stride, padding, dilation, groups, out);
  py::array_t<float> y = new_aligned_array({s.batch, s.out_channels, s.out_h, s.out_w});
  Conv2dArgs a;
  a.shape = s;
  a.input = f32_data(x);
  a.weight = f32_data(w);
  a.relu = relu;
  a.relu_max = relu_max;
  if (stream_outputs) a.stream_outputs = *stream_outputs ? 1 : 0;
  if (bias) {
    check_f32(*bias, "conv2d", "bias", 1);
    expect_shape(*bias, {s.out_channels}, "conv2d", "bias");
    a.bias = f32_data(*bias);
  }
  if (residual) {  // (y is new: the residual can never be the output itself)
    check_f32(*residual, "conv2d", "residual", 4);
    expect_shape(*residual, {s.batch, s.out_channels, s.out_h, s.out_w}, "conv2d", "residual");
  }
  if (y.size() == 0) return y;  // before resolve: no workspace query on empty shapes
  const int threads = num_threads();
  int64_t ws = 0;
  const Family& f = resolve(algorithm, ConvPass::forward, s, threads, &ws);
  if (packed) {
    if (f.pack == nullptr)
      throw py::value_error(std::string("conv2d: packed weights are only used by winograd, "
                                        "winograd_f2, phase, pointwise and stem, not ") + f.name);
    check_f32(*packed, "conv2d", "packed weight", 1);
    const int64_t need = f.pack->get()(s, nullptr, nullptr, false, threads);
    if (need < 0)
      throw py::value_error(std::string("conv2d: ") + f.name +
                            " takes no packed weights for input " + shape_str(shape_of(x)) +
                            ", weight " + shape_str(shape_of(w)) + " and groups=" +
                            std::to_string(groups));
    if (packed->shape(0) != need)
      throw py::value_error("conv2d: packed weight has " + std::to_string(packed->shape(0)) +
                            " floats, expected " + std::to_string(need) +
                            " (packed at another ISA level or for another shape?)");
    a.packed_weight = f32_data(*packed);
  }
  a.output = y.mutable_data();
  a.num_threads = threads;
  a.gemm = gemm_f32.get();
  Conv2dRunFn run = f.run->get();
  // A residual the family does not fuse: the convolution without its
  // activation, then act(y + residual) in one pass.
  Conv2dAddResidualFn add_after = nullptr;
  const float* res = residual ? f32_data(*residual) : nullptr;
  const int64_t outputs = y.size();
  if (res && f.fuses_residual && f.fuses_residual(s, a.packed_weight != nullptr)) {
    a.residual = res;
  } else if (res) {
    add_after = conv2d_add_residual.get();
    a.relu = false;
  }
  bool spread = false;
  int non_finite = -1;  // (-1: the family did not check)
  a.non_finite = &non_finite;
  {
    py::gil_scoped_release release;
    a.workspace = tls_arena.get(ws);
    run(ConvPass::forward, a);
    if (add_after) add_after(a.output, res, outputs, relu, relu_max, threads);
    // (a residual added after the convolution spreads nothing: its own check is enough)
    if (f.spreads_non_finite)
      spread = non_finite >= 0 ? non_finite == 1 : !all_finite.get()(a.output, outputs, threads);
  }
  if (spread)  // exact NaN / inf placement: the direct sum
    return conv2d_forward(x, w, bias, stride, padding, dilation, groups, out, "im2col", relu,
                          std::nullopt, relu_max, stream_outputs, residual);
  return y;
}

py::array conv2d_backward_data(const py::array& gy, const py::array& w,
                               std::vector<int64_t> input_shape, Pair stride, Pair padding,
                               Pair dilation, int64_t groups, const std::string& algorithm) {
  check_f32(gy, "conv2d_backward_data", "grad_output", 4);
  check_f32(w, "conv2d_backward_data", "weight", 4);
  if (input_shape.size() != 4) throw py::value_error("conv2d_backward_data: input_shape must be 4-D");
  Conv2dShape s = make_shape(input_shape, shape_of(w), stride, padding, dilation, groups,
                             Pair(gy.shape(2), gy.shape(3)));
  expect_shape(gy, {s.batch, s.out_channels, s.out_h, s.out_w}, "conv2d_backward_data",
               "grad_output");
  py::array_t<float> gx = new_aligned_array(input_shape);  // threads split it by pixel blocks
  Conv2dArgs a;
  a.shape = s;
  a.grad_output = f32_data(gy);
  a.weight = f32_data(w);
  a.grad_input = gx.mutable_data();
  if (gx.size() == 0) return gx;
  if (gy.size() == 0 || w.size() == 0) {  // before resolve: no workspace query on empty shapes
    std::memset(a.grad_input, 0, sizeof(float) * gx.size());
    return gx;
  }
  const int threads = num_threads();
  int64_t ws = 0;
  const Family& f = resolve(algorithm, ConvPass::backward_data, s, threads, &ws);
  a.num_threads = threads;
  a.gemm = gemm_f32.get();
  Conv2dRunFn run = f.run->get();
  bool spread = false;
  {
    py::gil_scoped_release release;
    a.workspace = tls_arena.get(ws);
    run(ConvPass::backward_data, a);
    spread = f.spreads_non_finite && !all_finite.get()(a.grad_input, gx.size(), threads);
  }
  if (spread)
    return conv2d_backward_data(gy, w, input_shape, stride, padding, dilation, groups, "im2col");
  return gx;
}

py::tuple conv2d_backward_weight(const py::array& x, const py::array& gy,
                                 std::vector<int64_t> weight_shape, Pair stride, Pair padding,
                                 Pair dilation, int64_t groups, const std::string& algorithm,
                                 bool with_bias) {
  check_f32(x, "conv2d_backward_weight", "input", 4);
  check_f32(gy, "conv2d_backward_weight", "grad_output", 4);
  if (weight_shape.size() != 4)
    throw py::value_error("conv2d_backward_weight: weight_shape must be 4-D");
  Conv2dShape s = make_shape(shape_of(x), weight_shape, stride, padding, dilation, groups,
                             Pair(gy.shape(2), gy.shape(3)));
  expect_shape(gy, {s.batch, s.out_channels, s.out_h, s.out_w}, "conv2d_backward_weight",
               "grad_output");
  py::array_t<float> gw = new_array(weight_shape);
  py::object gb_obj = py::none();
  Conv2dArgs a;
  a.shape = s;
  a.input = f32_data(x);
  a.grad_output = f32_data(gy);
  a.grad_weight = gw.mutable_data();
  if (with_bias) {
    py::array_t<float> gb = new_array({s.out_channels});
    a.grad_bias = gb.mutable_data();
    gb_obj = gb;
  }
  if (gy.size() == 0 || x.size() == 0 || gw.size() == 0) {
    // Nothing to sum over (an empty batch, say): zero gradients, and no family's
    // workspace query sees the empty shape (some divide by the batch).
    std::memset(a.grad_weight, 0, sizeof(float) * gw.size());
    if (a.grad_bias) std::memset(a.grad_bias, 0, sizeof(float) * s.out_channels);
    return py::make_tuple(gw, gb_obj);
  }
  const int threads = num_threads();
  int64_t ws = 0;
  const Family& f = resolve(algorithm, ConvPass::backward_weight, s, threads, &ws);
  a.num_threads = threads;
  a.gemm = gemm_f32.get();
  Conv2dRunFn run = f.run->get();
  bool spread = false;
  {
    py::gil_scoped_release release;
    a.workspace = tls_arena.get(ws);
    run(ConvPass::backward_weight, a);
    spread = f.spreads_non_finite && !all_finite.get()(a.grad_weight, gw.size(), threads);
  }
  if (spread)  // (as the forward: torch's NaN / inf placement is the direct sum's)
    return conv2d_backward_weight(x, gy, weight_shape, stride, padding, dilation, groups,
                                  "im2col", with_bias);
  return py::make_tuple(gw, gb_obj);
}

// Weights packed for a family at the active ISA (the layout depends on the
// vector width), for eval-mode caching: winograd and winograd_f2
// (transformed; winograd_f2 forward only), phase (output-channel blocks;
// groups 1) or pointwise (row panels; 1x1, groups 1).
py::array conv2d_pack_weight(const py::array& w, bool for_backward_data,
                             const std::string& algorithm) {
  check_f32(w, "conv2d_pack_weight", "weight", 4);
  const Family& f = family(algorithm);
  if (f.pack == nullptr)
    throw py::value_error("conv2d_pack_weight: " + algorithm + " takes no packed weights");
  if ((algorithm == "winograd" || algorithm == "winograd_f2") &&
      (w.shape(2) != 3 || w.shape(3) != 3))
    throw py::value_error("conv2d_pack_weight: " + algorithm + " packs 3x3 weights, got shape " +
                          shape_str(shape_of(w)));
  Conv2dShape s;
  s.out_channels = w.shape(0);
  s.in_channels = w.shape(1);
  s.kernel_h = w.shape(2);
  s.kernel_w = w.shape(3);
  const int threads = num_threads();
  Conv2dPackFn pack = f.pack->get();
  const int64_t n = pack(s, nullptr, nullptr, for_backward_data, threads);
  if (n < 0)
    throw py::value_error("conv2d_pack_weight: " + algorithm + " cannot pack weights of shape " +
                          shape_str(shape_of(w)) +
                          (for_backward_data ? " for backward-data" : ""));
  check_bytes(static_cast<double>(n), "the packed weights");
  py::array_t<float> packed = aligned_f32_array(n);  // whole weight vectors per cache line
  const float* pw = f32_data(w);
  float* out = packed.mutable_data();
  py::gil_scoped_release release;
  pack(s, pw, out, for_backward_data, threads);
  return packed;
}

// Which family would run (after refusals) and its scratch in floats, for
// the Python debug view and tests.
py::tuple conv2d_plan(const std::string& pass_name, const std::string& algorithm,
                      std::vector<int64_t> x_shape, std::vector<int64_t> w_shape, Pair stride,
                      Pair padding, Pair dilation, int64_t groups, Pair out) {
  if (x_shape.size() != 4 || w_shape.size() != 4)
    throw py::value_error("conv2d_plan: shapes must be 4-D");
  ConvPass pass;
  if (pass_name == "forward") pass = ConvPass::forward;
  else if (pass_name == "backward_data") pass = ConvPass::backward_data;
  else if (pass_name == "backward_weight") pass = ConvPass::backward_weight;
  else throw py::value_error("conv2d_plan: unknown pass '" + pass_name + "'");
  Conv2dShape s = make_shape(x_shape, w_shape, stride, padding, dilation, groups, out);
  int64_t ws = 0;
  const Family& f = resolve(algorithm, pass, s, num_threads(), &ws);
  return py::make_tuple(std::string(f.name), ws);
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv2d_forward", &conv2d_forward, py::arg("input"), py::arg("weight"),
        py::arg("bias"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"), py::arg("out_size"), py::arg("algorithm"), py::arg("relu") = false,
        py::arg("packed_weight") = py::none(), py::arg("relu_max") = INFINITY,
        py::arg("stream_outputs") = py::none(), py::arg("residual") = py::none(),
        "y = act(conv2d(input, weight) + bias + residual); act is ReLU clamped to "
        "[0, relu_max] when relu (ReLU6: relu_max=6); residual (optional, float32, "
        "C-contiguous, the output's shape) is added before the activation, in the epilogue "
        "where the family can (pointwise on its driver, phase, winograd, winograd_f2), else "
        "in one pass after the convolution; padding is (top, left), out_size (H, W). "
        "stream_outputs (tests): None lets the kernel choose non-temporal output stores by "
        "size, True/False forces them on (where rows are whole aligned vectors) or off.");
  m.def("conv2d_backward_data", &conv2d_backward_data, py::arg("grad_output"),
        py::arg("weight"), py::arg("input_shape"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("algorithm"),
        "Gradient of conv2d with respect to its input.");
  m.def("conv2d_backward_weight", &conv2d_backward_weight, py::arg("input"),
        py::arg("grad_output"), py::arg("weight_shape"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("algorithm"), py::arg("bias"),
        "Gradients of conv2d with respect to weight and bias: (grad_weight, grad_bias or None).");
  m.def("conv2d_pack_weight", &conv2d_pack_weight, py::arg("weight"),
        py::arg("for_backward_data") = false, py::arg("algorithm") = "winograd",
        "Weights packed for `algorithm` at the active ISA (1-D float32): winograd's "
        "F(4x4,3x3) transform, winograd_f2's F(2x2,3x3) transform (forward only), phase's "
        "output-channel blocks, or pointwise's row panels (1x1, groups 1).");
  m.def("conv2d_plan", &conv2d_plan, py::arg("pass"), py::arg("algorithm"),
        py::arg("input_shape"), py::arg("weight_shape"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("out_size"),
        "(family that would run, scratch floats) for a pass and requested algorithm.");
}

}  // namespace pve
