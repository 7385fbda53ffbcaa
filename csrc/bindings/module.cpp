// pyvision_engine._C: one pybind11 module, one bind_<area>.cpp per area.
#include <pybind11/pybind11.h>

#include "core/dispatch.h"
#include "core/memory.h"

namespace py = pybind11;

namespace pve {
void bind_core(py::module_& m);
void bind_gemm(py::module_& m);
void bind_conv(py::module_& m);
void bind_conv_blocked(py::module_& m);
void bind_pool(py::module_& m);
void bind_eltwise(py::module_& m);
void bind_norm(py::module_& m);
void bind_loss(py::module_& m);
void bind_optim(py::module_& m);
}  // namespace pve

PYBIND11_MODULE(_C, m) {
  m.doc() = "pyvision_engine native kernels (SIMD + OpenMP)";
  // Registers kernels for the ISAs this CPU supports and applies PVE_ISA;
  // a bad PVE_ISA raises ValueError from the import.
  pve::initialize_dispatch();
  // Large arrays stay in the heap between training steps (see core/memory.h).
  m.attr("heap_tuning") = pve::tune_heap_for_large_arrays();
  pve::bind_core(m);
  pve::bind_gemm(m);
  pve::bind_conv(m);
  pve::bind_conv_blocked(m);
  pve::bind_pool(m);
  pve::bind_eltwise(m);
  pve::bind_norm(m);
  pve::bind_loss(m);
  pve::bind_optim(m);
}
