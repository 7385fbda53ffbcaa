#include "core/memory.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace pve {

std::string tune_heap_for_large_arrays() {
  const char* env = std::getenv("PVE_MALLOC_TUNING");
  if (env && std::strcmp(env, "0") == 0) return "default (PVE_MALLOC_TUNING=0)";
#if defined(__GLIBC__)
  // Arrays up to 1 GiB come from the heap (not a fresh mmap per allocation),
  // and up to 1 GiB of free memory at the heap's top is kept for reuse.
  constexpr int kOneGiB = 1 << 30;
  const bool ok =
      mallopt(M_MMAP_THRESHOLD, kOneGiB) == 1 && mallopt(M_TRIM_THRESHOLD, kOneGiB) == 1;
  return ok ? "tuned" : "default (mallopt refused)";
#else
  return "default (not glibc)";
#endif
}

}  // namespace pve
