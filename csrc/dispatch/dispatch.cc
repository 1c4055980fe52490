// CPU feature probe (once), kernel registry and the dispatch table. See onebit/dispatch.h.
#include "onebit/dispatch.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>

namespace onebit {
namespace {

bool cpu_has(Isa isa) {
  switch (isa) {
    case Isa::ref:
      return true;
#if defined(ONEBIT_HAVE_X86)
    case Isa::avx2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
    case Isa::avx512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512vnni") &&
             __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("bmi2");
#endif
#if defined(ONEBIT_HAVE_NEON)
    case Isa::neon:
      return true;  // Advanced SIMD is mandatory on AArch64.
#endif
    default:
      return false;
  }
}

// Which implementations an active ISA may use, best first.
std::vector<Isa> allowed(Isa active) {
  switch (active) {
    case Isa::avx512: return {Isa::avx512, Isa::avx2, Isa::ref};
    case Isa::avx2: return {Isa::avx2, Isa::ref};
    case Isa::neon: return {Isa::neon, Isa::ref};
    default: return {Isa::ref};
  }
}

struct Registry {
  std::mutex mu;
  std::map<std::string, std::map<Isa, void*>> impls;  // op -> isa -> fn
  std::vector<std::string> names;                     // op index -> name
  std::vector<std::atomic<void*>> table;              // op index -> chosen fn
  std::vector<Isa> chosen;
  bool built = false;
  Isa active = Isa::ref;
};

Registry& registry() {
  static Registry r;  // constructed on first use, before any static registrar runs
  return r;
}

Isa initial_isa() {
  const char* env = std::getenv("ONEBIT_ISA");
  if (env == nullptr || *env == '\0') return best_isa();
  Isa isa = parse_isa(env);
  if (!isa_supported(isa)) {
    throw std::runtime_error(std::string("ONEBIT_ISA=") + env +
                             " is not supported on this CPU/build; supported here: " +
                             [] {
                               std::string s;
                               for (Isa i : supported_isas()) s += std::string(s.empty() ? "" : ", ") + isa_name(i);
                               return s;
                             }() +
                             ". Unset ONEBIT_ISA or pick one of those.");
  }
  return isa;
}

// Fills the table for `active`; caller holds the registry mutex.
void fill(Registry& r, Isa active) {
  if (!r.built) {
    for (auto& kv : r.impls) r.names.push_back(kv.first);  // std::map: sorted by name
    r.table = std::vector<std::atomic<void*>>(r.names.size());
    r.chosen.assign(r.names.size(), Isa::ref);
    r.built = true;
  }
  for (size_t i = 0; i < r.names.size(); ++i) {
    const auto& impls = r.impls[r.names[i]];
    void* fn = nullptr;
    for (Isa isa : allowed(active)) {
      auto it = impls.find(isa);
      if (it != impls.end()) {
        fn = it->second;
        r.chosen[i] = isa;
        break;
      }
    }
    if (fn == nullptr) {
      throw std::logic_error("kernel '" + r.names[i] + "' has no ref implementation registered");
    }
    r.table[i].store(fn, std::memory_order_release);
  }
  r.active = active;
}

Registry& built_registry() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (!r.built) fill(r, initial_isa());
  return r;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::ref: return "ref";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
  }
  return "?";
}

Isa parse_isa(const std::string& name) {
  for (Isa isa : {Isa::ref, Isa::avx2, Isa::avx512, Isa::neon}) {
    if (name == isa_name(isa)) return isa;
  }
  throw std::invalid_argument("unknown ISA '" + name + "': expected one of ref, avx2, avx512, neon");
}

bool isa_supported(Isa isa) { return cpu_has(isa); }

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::ref, Isa::avx2, Isa::avx512, Isa::neon}) {
    if (cpu_has(isa)) out.push_back(isa);
  }
  return out;
}

Isa best_isa() { return supported_isas().back(); }

Isa active_isa() { return built_registry().active; }

void set_active_isa(Isa isa) {
  if (!isa_supported(isa)) {
    throw std::invalid_argument(std::string("ISA '") + isa_name(isa) +
                                "' is not supported on this CPU/build");
  }
  Registry& r = built_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  fill(r, isa);
}

namespace dispatch {

void register_kernel(const char* op, Isa isa, void* fn) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.built) throw std::logic_error(std::string("kernel '") + op + "' registered after the table was built");
  r.impls[op][isa] = fn;
}

int op_index(const char* op) {
  Registry& r = built_registry();
  auto it = std::find(r.names.begin(), r.names.end(), op);
  if (it == r.names.end()) throw std::out_of_range(std::string("no kernel named '") + op + "'");
  return static_cast<int>(it - r.names.begin());
}

void* resolved(int index) { return registry().table[index].load(std::memory_order_acquire); }

std::vector<std::pair<std::string, Isa>> table_summary() {
  Registry& r = built_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::pair<std::string, Isa>> out;
  for (size_t i = 0; i < r.names.size(); ++i) out.emplace_back(r.names[i], r.chosen[i]);
  return out;
}

}  // namespace dispatch
}  // namespace onebit
