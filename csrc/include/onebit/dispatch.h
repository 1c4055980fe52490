// Run-time ISA dispatch: one table of kernel function pointers, filled once.
//
// Every op registers one implementation per ISA it has (csrc/kernels/<op>/register.cc).
// The table picks, for each op, the best registered implementation that the *active* ISA
// allows: avx512 allows {avx512, avx2, ref}, avx2 allows {avx2, ref}, neon allows {neon, ref},
// ref allows {ref}. The active ISA is the best one the CPU supports, or the one forced by the
// environment variable ONEBIT_ISA=ref|avx2|avx512|neon. Forcing an ISA the CPU (or this build)
// lacks is an error, never a silent downgrade. `onebit info` prints the choice for every op.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace onebit {

enum class Isa : int { ref = 0, avx2 = 1, avx512 = 2, neon = 3 };

const char* isa_name(Isa isa);
// Parses "ref" / "avx2" / "avx512" / "neon"; throws std::invalid_argument otherwise.
Isa parse_isa(const std::string& name);
// True if this build contains code for `isa` and the CPU can execute it.
bool isa_supported(Isa isa);
std::vector<Isa> supported_isas();
Isa best_isa();
Isa active_isa();
// Re-selects every op for `isa` (used by tests to exercise each path). Not thread-safe with
// respect to kernels running at the same moment.
void set_active_isa(Isa isa);

namespace dispatch {

void register_kernel(const char* op, Isa isa, void* fn);
// Index of `op` in the table; throws std::out_of_range if no kernel registered that name.
int op_index(const char* op);
void* resolved(int index);
// (op name, ISA of the implementation in use) for every registered op, sorted by name.
std::vector<std::pair<std::string, Isa>> table_summary();

struct Registrar {
  Registrar(const char* op, Isa isa, void* fn) { register_kernel(op, isa, fn); }
};

}  // namespace dispatch

// Typed handle on one op of the table:  static Kernel<bitpack_f32_fn> k("bitpack_f32"); k()(...)
template <class Fn>
class Kernel {
 public:
  explicit Kernel(const char* op) : index_(dispatch::op_index(op)) {}
  Fn operator()() const { return reinterpret_cast<Fn>(dispatch::resolved(index_)); }

 private:
  int index_;
};

}  // namespace onebit

#define ONEBIT_CONCAT_INNER(a, b) a##b
#define ONEBIT_CONCAT(a, b) ONEBIT_CONCAT_INNER(a, b)
// Registers `fn` as the `isa` implementation of `op` (use in csrc/kernels/<op>/register.cc).
#define ONEBIT_REGISTER_KERNEL(op, isa, fn)                                         \
  static ::onebit::dispatch::Registrar ONEBIT_CONCAT(onebit_registrar_, __LINE__)( \
      op, ::onebit::Isa::isa, reinterpret_cast<void*>(&fn))
