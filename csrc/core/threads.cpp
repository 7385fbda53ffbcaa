#include "core/threads.h"

#include <omp.h>

#include <atomic>

namespace pve {
namespace {
std::atomic<int> g_num_threads{0};  // 0: follow the OpenMP default
}

int num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
}

void set_num_threads(int n) {
  g_num_threads.store(n, std::memory_order_relaxed);
  omp_set_num_threads(n);
}

const char* openmp_runtime_name() {
#if defined(__GNUC__) && !defined(__clang__)
  return "libgomp";
#elif defined(__clang__)
  return "libomp";
#else
  return "unknown";
#endif
}

}  // namespace pve
