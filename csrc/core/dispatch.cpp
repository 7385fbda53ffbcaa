#include "core/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>

namespace pve {
namespace {

std::atomic<int> g_active_isa{static_cast<int>(Isa::scalar)};

struct Registry {
  std::mutex mutex;
  std::map<std::string, KernelTable*> tables;
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

Isa active_isa() { return static_cast<Isa>(g_active_isa.load(std::memory_order_relaxed)); }

void set_active_isa(Isa isa) {
  const Isa best = best_supported_isa();
  if (static_cast<int>(isa) > static_cast<int>(best)) {
    throw std::invalid_argument(std::string("ISA level '") + isa_name(isa) +
                                "' is not supported by this CPU/OS (best supported: '" +
                                isa_name(best) + "')");
  }
  g_active_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

void initialize_dispatch() {
  const Isa best = best_supported_isa();
  register_all_kernels(best);
  Isa chosen = best;
  const char* requested = std::getenv("PVE_ISA");
  if (requested && *requested) {
    if (!parse_isa(requested, &chosen)) {
      throw std::invalid_argument(std::string("PVE_ISA='") + requested +
                                  "' is not a known ISA level; use scalar, avx2 or avx512");
    }
    if (static_cast<int>(chosen) > static_cast<int>(best)) {
      throw std::invalid_argument(std::string("PVE_ISA='") + requested +
                                  "' is not supported by this CPU/OS (best supported: '" +
                                  isa_name(best) + "')");
    }
  }
  g_active_isa.store(static_cast<int>(chosen), std::memory_order_relaxed);
}

void register_kernel_slot(KernelTable& table, Isa isa, void* fn) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  table.slots[static_cast<int>(isa)] = fn;
  r.tables[table.name] = &table;
}

std::vector<std::string> kernel_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& kv : r.tables) names.push_back(kv.first);
  return names;
}

std::vector<Isa> kernel_isas(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<Isa> isas;
  auto it = r.tables.find(name);
  if (it == r.tables.end()) return isas;
  for (int i = 0; i < kNumIsas; ++i) {
    if (it->second->slots[i]) isas.push_back(static_cast<Isa>(i));
  }
  return isas;
}

}  // namespace pve
