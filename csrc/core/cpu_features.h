// CPU feature detection: what the processor has (CPUID) and what the OS has
// enabled the registers for (XGETBV). Compiled for baseline x86-64.
#pragma once

namespace pve {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };
constexpr int kNumIsas = 3;

struct CpuFeatures {
  bool avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512cd = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_vnni = false, avx512_bf16 = false, avx_vnni = false;
  bool os_saves_ymm = false;  // XCR0 bits 1,2: SSE and AVX state
  bool os_saves_zmm = false;  // XCR0 bits 5,6,7: opmask and ZMM state
};

const CpuFeatures& cpu_features();   // detected once
Isa best_supported_isa();            // highest level both CPU and OS allow
const char* isa_name(Isa isa);
bool parse_isa(const char* text, Isa* out);  // false for an unknown name

}  // namespace pve
