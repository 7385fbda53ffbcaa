#include "core/cpu_features.h"

#include <cpuid.h>
#include <cstdint>
#include <cstring>

namespace pve {
namespace {

struct Regs { unsigned eax = 0, ebx = 0, ecx = 0, edx = 0; };

Regs cpuid(unsigned leaf, unsigned subleaf) {
  Regs r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

// XGETBV(0) reads XCR0: which register files the OS saves on a context switch.
// Without OS support the instructions fault even if CPUID lists them.
uint64_t read_xcr0() {
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 1) return f;
  const Regs l1 = cpuid(1, 0);
  const bool osxsave = (l1.ecx >> 27) & 1;
  f.avx = (l1.ecx >> 28) & 1;
  f.fma = (l1.ecx >> 12) & 1;
  f.f16c = (l1.ecx >> 29) & 1;
  if (osxsave) {
    const uint64_t xcr0 = read_xcr0();
    f.os_saves_ymm = (xcr0 & 0x6) == 0x6;
    f.os_saves_zmm = (xcr0 & 0xE6) == 0xE6;
  }
  if (max_leaf >= 7) {
    const Regs l7 = cpuid(7, 0);
    f.avx2 = (l7.ebx >> 5) & 1;
    f.avx512f = (l7.ebx >> 16) & 1;
    f.avx512dq = (l7.ebx >> 17) & 1;
    f.avx512cd = (l7.ebx >> 28) & 1;
    f.avx512bw = (l7.ebx >> 30) & 1;
    f.avx512vl = (l7.ebx >> 31) & 1;
    f.avx512_vnni = (l7.ecx >> 11) & 1;
    const Regs l7_1 = cpuid(7, 1);
    f.avx_vnni = (l7_1.eax >> 4) & 1;
    f.avx512_bf16 = (l7_1.eax >> 5) & 1;
  }
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

Isa best_supported_isa() {
  const CpuFeatures& f = cpu_features();
  const bool avx2_level = f.os_saves_ymm && f.avx && f.avx2 && f.fma && f.f16c;
  const bool avx512_level = avx2_level && f.os_saves_zmm && f.avx512f && f.avx512cd &&
                            f.avx512bw && f.avx512dq && f.avx512vl;
  if (avx512_level) return Isa::avx512;
  if (avx2_level) return Isa::avx2;
  return Isa::scalar;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "unknown";
}

bool parse_isa(const char* text, Isa* out) {
  for (int i = 0; i < kNumIsas; ++i) {
    const Isa isa = static_cast<Isa>(i);
    if (std::strcmp(text, isa_name(isa)) == 0) {
      *out = isa;
      return true;
    }
  }
  return false;
}

}  // namespace pve
