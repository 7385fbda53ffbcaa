// Engine state and introspection: ISA levels, kernels, threads, peak probe.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "core/cpu_features.h"
#include "core/dispatch.h"
#include "core/threads.h"
#include "kernels/probe/fma_peak.h"

namespace py = pybind11;

namespace pve {

PVE_DEFINE_KERNEL(fma_peak, FmaPeakFn);

namespace {

Isa isa_from_name(const std::string& name) {
  Isa isa;
  if (!parse_isa(name.c_str(), &isa)) {
    throw py::value_error("unknown ISA level '" + name + "'; use scalar, avx2 or avx512");
  }
  return isa;
}

py::dict cpu_feature_dict() {
  const CpuFeatures& f = cpu_features();
  py::dict d;
  d["avx"] = f.avx;
  d["avx2"] = f.avx2;
  d["fma"] = f.fma;
  d["f16c"] = f.f16c;
  d["avx512f"] = f.avx512f;
  d["avx512cd"] = f.avx512cd;
  d["avx512bw"] = f.avx512bw;
  d["avx512dq"] = f.avx512dq;
  d["avx512vl"] = f.avx512vl;
  d["avx512_vnni"] = f.avx512_vnni;
  d["avx512_bf16"] = f.avx512_bf16;
  d["avx_vnni"] = f.avx_vnni;
  d["os_saves_ymm"] = f.os_saves_ymm;
  d["os_saves_zmm"] = f.os_saves_zmm;
  return d;
}

}  // namespace

void bind_core(py::module_& m) {
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); },
        "The SIMD level kernels run at now.");
  m.def("supported_isas", [] {
    std::vector<std::string> names;
    for (int i = 0; i <= static_cast<int>(best_supported_isa()); ++i)
      names.push_back(isa_name(static_cast<Isa>(i)));
    return names;
  }, "Levels this CPU and OS can run, lowest first.");
  m.def("set_isa", [](const std::string& name) { set_active_isa(isa_from_name(name)); },
        py::arg("isa"),
        "Switch the SIMD level (for tests and kernel comparisons); raises ValueError "
        "for a level this CPU cannot run.");
  m.def("cpu_features", &cpu_feature_dict);
  m.def("kernel_names", &kernel_names);
  m.def("kernel_isas", [](const std::string& name) {
    std::vector<std::string> names;
    for (Isa isa : kernel_isas(name)) names.push_back(isa_name(isa));
    return names;
  }, py::arg("name"), "ISA slots filled for a kernel.");
  m.def("get_num_threads", &num_threads);
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("set_num_threads: expected a positive count, got " +
                                     std::to_string(n));
    set_num_threads(n);
  }, py::arg("n"));
  m.def("openmp_runtime", [] { return std::string(openmp_runtime_name()); });
  m.def("fma_peak_flops", [](const std::string& isa, int64_t iterations, int threads) {
    if (iterations < 1 || threads < 1)
      throw py::value_error("fma_peak_flops: iterations and threads must be positive");
    const Isa level = isa_from_name(isa);
    if (static_cast<int>(level) > static_cast<int>(best_supported_isa()))
      throw py::value_error("fma_peak_flops: ISA '" + isa + "' is not supported here");
    FmaPeakFn fn = fma_peak.get(level);
    py::gil_scoped_release release;
    return fn(iterations, threads);
  }, py::arg("isa"), py::arg("iterations"), py::arg("threads"),
     "Runs the FMA peak probe; returns the number of flops done (time it outside).");
}

}  // namespace pve
