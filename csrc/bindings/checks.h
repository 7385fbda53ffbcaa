// Argument checks shared by the bindings: every array a kernel touches is
// checked here (dtype, rank, contiguity, shape) so kernels can trust it; and
// the cache-line-aligned arrays some bindings hand back.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

namespace pve {
namespace py = pybind11;

// "(2, 3)", "(5,)": numpy's spelling. (std::to_string, not a stream: no
// locale machinery on a path every call of some bindings takes.)
inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

inline std::vector<int64_t> shape_of(const py::array& a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

// A float32, C-contiguous array of the given rank; `writable` for outputs.
inline void check_f32(const py::array& a, const char* op, const char* arg, int ndim,
                      bool writable = false) {
  if (!py::isinstance<py::array_t<float>>(a) || a.dtype().kind() != 'f' ||
      a.dtype().itemsize() != 4) {
    throw py::type_error(std::string(op) + ": " + arg + " must be a float32 array, got dtype " +
                         std::string(py::str(a.dtype())));
  }
  if (ndim >= 0 && a.ndim() != ndim) {
    throw py::value_error(std::string(op) + ": " + arg + " must have " + std::to_string(ndim) +
                          " dimensions, got shape " + shape_str(shape_of(a)));
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(op) + ": " + arg + " must be C-contiguous");
  }
  if (writable && !a.writeable()) {
    throw py::value_error(std::string(op) + ": " + arg + " must be writable");
  }
}

inline void expect_shape(const py::array& a, const std::vector<int64_t>& expected,
                         const char* op, const char* arg) {
  if (shape_of(a) != expected) {
    throw py::value_error(std::string(op) + ": " + arg + " must have shape " +
                          shape_str(expected) + ", got " + shape_str(shape_of(a)));
  }
}

// A 1-D float32 array starting on a cache line (numpy only promises 16
// bytes), freed with the array: kernels that load whole 64-byte vectors from
// it (blocked activations, packed weights) never split a load across lines.
inline py::array_t<float> aligned_f32_array(int64_t floats) {
  const size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
  void* data = std::aligned_alloc(64, bytes > 0 ? bytes : 64);
  if (!data) throw std::bad_alloc();
  py::capsule owner(data, [](void* p) { std::free(p); });
  return py::array_t<float>({floats}, {static_cast<int64_t>(sizeof(float))},
                            static_cast<float*>(data), owner);
}

inline const float* f32_data(const py::array& a) { return static_cast<const float*>(a.data()); }
inline float* f32_mutable_data(py::array& a) { return static_cast<float*>(a.mutable_data()); }

}  // namespace pve
