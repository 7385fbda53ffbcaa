// Checks shared by the layer bindings (pool, eltwise, norm, loss), on top of
// bindings/checks.h: element counts, int64 arrays, optional arrays.
#pragma once

#include <optional>
#include <string>

#include "bindings/checks.h"

namespace pve {

inline void check_size(const py::array& a, int64_t expected, const char* op, const char* arg) {
  if (a.size() != expected) {
    throw py::value_error(std::string(op) + ": " + arg + " must have " + std::to_string(expected) +
                          " elements, got shape " + shape_str(shape_of(a)));
  }
}

// A float32 C-contiguous array of any rank with exactly `expected` elements.
inline const float* f32_arg(const py::array& a, int64_t expected, const char* op, const char* arg) {
  check_f32(a, op, arg, -1);
  check_size(a, expected, op, arg);
  return f32_data(a);
}

inline float* f32_out_arg(py::array& a, int64_t expected, const char* op, const char* arg) {
  check_f32(a, op, arg, -1, /*writable=*/true);
  check_size(a, expected, op, arg);
  return f32_mutable_data(a);
}

inline const float* f32_opt_arg(const std::optional<py::array>& a, int64_t expected,
                                const char* op, const char* arg) {
  return a ? f32_arg(*a, expected, op, arg) : nullptr;
}

inline bool is_i64(const py::array& a) {
  return a.dtype().kind() == 'i' && a.dtype().itemsize() == 8;
}

inline const int64_t* i64_arg(const py::array& a, int64_t expected, const char* op, const char* arg) {
  if (!is_i64(a)) {
    throw py::type_error(std::string(op) + ": " + arg + " must be an int64 array, got dtype " +
                         std::string(py::str(a.dtype())));
  }
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(op) + ": " + arg + " must be C-contiguous");
  check_size(a, expected, op, arg);
  return static_cast<const int64_t*>(a.data());
}

inline void check_positive(int64_t v, const char* op, const char* what) {
  if (v <= 0) {
    throw py::value_error(std::string(op) + ": " + what + " must be positive, got " +
                          std::to_string(v));
  }
}

}  // namespace pve
