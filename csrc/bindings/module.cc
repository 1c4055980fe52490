// The onebit._C extension module: runtime/ISA information plus every op's bindings.
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "common.h"
#include "onebit/dispatch.h"
#include "onebit/parallel.h"

namespace onebit::bindings {

std::vector<BindFn>& binders() {
  static std::vector<BindFn> fns;
  return fns;
}

namespace {

std::vector<std::string> isa_names(const std::vector<Isa>& isas) {
  std::vector<std::string> out;
  for (Isa isa : isas) out.emplace_back(isa_name(isa));
  return out;
}

}  // namespace
}  // namespace onebit::bindings

NB_MODULE(_C, m) {
  using namespace onebit;
  using namespace onebit::bindings;
  m.doc() = "onebit native kernels (C++17). Use the Python wrappers in onebit.kernels.";
  m.def("supported_isas", [] { return isa_names(supported_isas()); },
        "ISA paths this build contains and this CPU can run, worst to best.");
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); },
        "ISA the dispatch table was filled for (ONEBIT_ISA or the best supported).");
  m.def("set_isa", [](const std::string& name) { set_active_isa(parse_isa(name)); }, nb::arg("name"),
        "Refill the dispatch table for ISA `name` (ref|avx2|avx512|neon). For tests and benchmarks.");
  m.def("kernel_table", [] {
        std::vector<std::pair<std::string, std::string>> out;
        for (auto& [op, isa] : dispatch::table_summary()) out.emplace_back(op, isa_name(isa));
        return out;
      },
      "(op, implementation in use) for every registered kernel.");
  m.def("hardware_threads", &hardware_threads);
  for (BindFn fn : binders()) fn(m);
}
