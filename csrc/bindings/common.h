// Shared helpers of the nanobind module: registration of per-op binding files, array checks and
// output allocation. Each csrc/bindings/<op>.cc registers a function that adds its functions
// to the module, so op bindings never touch a shared file.
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace onebit::bindings {

namespace nb = nanobind;

using BindFn = void (*)(nb::module_&);
std::vector<BindFn>& binders();

struct BindingRegistrar {
  explicit BindingRegistrar(BindFn fn) { binders().push_back(fn); }
};

template <class T>
using CArray = nb::ndarray<T, nb::c_contig, nb::device::cpu>;
template <class T>
using NumpyArray = nb::ndarray<nb::numpy, T>;

// A new C-contiguous numpy array owning `count` elements of T (uninitialized).
template <class T>
NumpyArray<T> new_array(const std::vector<size_t>& shape) {
  size_t count = 1;
  for (size_t s : shape) count *= s;
  T* data = new T[count > 0 ? count : 1];
  nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
  return NumpyArray<T>(data, shape.size(), shape.data(), owner);
}

inline std::vector<size_t> shape_of(size_t ndim, const int64_t* shape) {
  std::vector<size_t> out;
  for (size_t i = 0; i < ndim; ++i) out.push_back(static_cast<size_t>(shape[i]));
  return out;
}

inline void check_threads(int num_threads) {
  if (num_threads < 1) {
    throw std::invalid_argument("num_threads must be >= 1, got " + std::to_string(num_threads));
  }
}

}  // namespace onebit::bindings

#define ONEBIT_CONCAT_B_INNER(a, b) a##b
#define ONEBIT_CONCAT_B(a, b) ONEBIT_CONCAT_B_INNER(a, b)
#define ONEBIT_REGISTER_BINDINGS(fn) \
  static ::onebit::bindings::BindingRegistrar ONEBIT_CONCAT_B(onebit_bind_, __LINE__)(fn)
