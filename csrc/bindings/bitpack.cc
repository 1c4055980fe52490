// Bindings of bitpack / unpack: shape checks, GIL release, threading over rows.
#include "common.h"
#include "onebit/dispatch.h"
#include "onebit/kernels.h"
#include "onebit/parallel.h"

namespace onebit::bindings {
namespace {

template <class T, class Fn>
NumpyArray<bword_t> pack(const CArray<const T>& x, int num_threads, const char* op) {
  check_threads(num_threads);
  if (x.ndim() < 1) throw std::invalid_argument("bitpack expects an array of shape (..., K), got a scalar");
  const int64_t k = x.shape(x.ndim() - 1);
  const int64_t rows = k == 0 ? 0 : static_cast<int64_t>(x.size()) / k;
  std::vector<size_t> shape = shape_of(x.ndim(), x.shape_ptr());
  shape.back() = static_cast<size_t>(packed_words(k));
  auto out = new_array<bword_t>(shape);
  static Kernel<Fn> kernel(op);
  const T* src = x.data();
  bword_t* dst = out.data();
  const int64_t words = packed_words(k);
  {
    nb::gil_scoped_release release;
    Fn fn = kernel();
    parallel_for_grain(rows, 16, num_threads, [&](int64_t begin, int64_t end) {
      fn(src + begin * k, end - begin, k, dst + begin * words);
    });
  }
  return out;
}

NumpyArray<float> unpack(const CArray<const bword_t>& p, int64_t k, int num_threads) {
  check_threads(num_threads);
  if (p.ndim() < 1) throw std::invalid_argument("unpack expects an array of shape (..., W), got a scalar");
  if (k < 0) throw std::invalid_argument("unpack: k must be >= 0, got " + std::to_string(k));
  const int64_t words = p.shape(p.ndim() - 1);
  if (words != packed_words(k)) {
    throw std::invalid_argument("unpack: k=" + std::to_string(k) + " needs " + std::to_string(packed_words(k)) +
                                " words per row, got last axis of " + std::to_string(words));
  }
  const int64_t rows = words == 0 ? 0 : static_cast<int64_t>(p.size()) / words;
  std::vector<size_t> shape = shape_of(p.ndim(), p.shape_ptr());
  shape.back() = static_cast<size_t>(k);
  auto out = new_array<float>(shape);
  static Kernel<unpack_f32_fn> kernel("unpack_f32");
  const bword_t* src = p.data();
  float* dst = out.data();
  {
    nb::gil_scoped_release release;
    unpack_f32_fn fn = kernel();
    parallel_for_grain(rows, 16, num_threads, [&](int64_t begin, int64_t end) {
      fn(src + begin * words, end - begin, k, dst + begin * k);
    });
  }
  return out;
}

void bind(nb::module_& m) {
  m.def(
      "bitpack_f32",
      [](const CArray<const float>& x, int num_threads) {
        return pack<float, bitpack_f32_fn>(x, num_threads, "bitpack_f32");
      },
      nb::arg("x"), nb::arg("num_threads") = 1);
  m.def(
      "bitpack_i8",
      [](const CArray<const std::int8_t>& x, int num_threads) {
        return pack<std::int8_t, bitpack_i8_fn>(x, num_threads, "bitpack_i8");
      },
      nb::arg("x"), nb::arg("num_threads") = 1);
  m.def("unpack_f32", &unpack, nb::arg("packed"), nb::arg("k"), nb::arg("num_threads") = 1);
}

}  // namespace

ONEBIT_REGISTER_BINDINGS(bind);

}  // namespace onebit::bindings
