// Bindings of quantize_i8 / tgemv / tgemm: shape checks, GIL release, threading.
// Outputs are passed in by the caller (onebit.kernels.ternary allocates them unless the user
// gives `out=`), so tests can hand in guard-page arrays for the outputs too.
#include <string>

#include "common.h"
#include "onebit/dispatch.h"
#include "onebit/kernels.h"
#include "onebit/parallel.h"

namespace onebit::bindings {
namespace {

template <class T>
using OutArray = nb::ndarray<T, nb::c_contig, nb::device::cpu>;

std::string shape_str(size_t ndim, const int64_t* shape) {
  std::string s = "(";
  for (size_t i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (ndim == 1 ? ",)" : ")");
}

template <class A>
void expect_shape(const A& a, std::initializer_list<int64_t> want, const char* what) {
  bool ok = a.ndim() == want.size();
  size_t d = 0;
  for (int64_t w : want) ok = ok && d < a.ndim() && static_cast<int64_t>(a.shape(d++)) == w;
  if (!ok) {
    std::vector<int64_t> ws(want);
    throw std::invalid_argument(std::string(what) + ": expected shape " + shape_str(ws.size(), ws.data()) +
                                ", got " + shape_str(a.ndim(), a.shape_ptr()));
  }
}

void quantize_i8(const CArray<const float>& x, OutArray<std::int8_t> q, OutArray<float> scale, int num_threads) {
  check_threads(num_threads);
  if (x.ndim() != 2) throw std::invalid_argument("quantize_i8: expected x of shape (M, K)");
  const int64_t m = x.shape(0), k = x.shape(1);
  expect_shape(q, {m, k}, "quantize_i8 q");
  expect_shape(scale, {m}, "quantize_i8 scale");
  static Kernel<quantize_i8_fn> kernel("quantize_i8");
  const float* src = x.data();
  std::int8_t* dq = q.data();
  float* ds = scale.data();
  nb::gil_scoped_release release;
  quantize_i8_fn fn = kernel();
  parallel_for(m, num_threads, [&](int64_t b, int64_t e) { fn(src + b * k, e - b, k, dq + b * k, ds + b); });
}

template <class T>
void ternary_matmul(const char* op, const CArray<const std::uint8_t>& w, float w_scale,
                    const CArray<const std::int8_t>& x, const CArray<const float>& x_scale, OutArray<T> out,
                    int num_threads) {
  check_threads(num_threads);
  if (x.ndim() != 2) throw std::invalid_argument(std::string(op) + ": expected x of shape (M, K)");
  const int64_t m = x.shape(0), k = x.shape(1);
  if (w.ndim() != 2 || static_cast<int64_t>(w.shape(1)) != tq2_row_bytes(k)) {
    throw std::invalid_argument(std::string(op) + ": K=" + std::to_string(k) + " needs packed weights of shape (N, " +
                                std::to_string(tq2_row_bytes(k)) + "), got " + shape_str(w.ndim(), w.shape_ptr()));
  }
  const int64_t n = w.shape(0);
  expect_shape(x_scale, {m}, op);
  expect_shape(out, {m, n}, op);
  static Kernel<tgemm_fn> gemv("tgemv");
  static Kernel<tgemm_fn> gemm("tgemm");
  const std::uint8_t* pw = w.data();
  const std::int8_t* px = x.data();
  const float* ps = x_scale.data();
  T* po = out.data();
  const int64_t row_bytes = tq2_row_bytes(k);
  const bool is_gemv = std::string(op) == "tgemv";
  nb::gil_scoped_release release;
  tgemm_fn fn = is_gemv ? gemv() : gemm();
  parallel_for_grain(n, is_gemv ? 4 : 12, num_threads, [&](int64_t b, int64_t e) {
    if constexpr (std::is_same_v<T, float>) {
      fn(pw + b * row_bytes, e - b, k, w_scale, px, ps, m, po + b, nullptr, n);
    } else {
      fn(pw + b * row_bytes, e - b, k, w_scale, px, ps, m, nullptr, po + b, n);
    }
  });
}

void bind(nb::module_& m) {
  m.def("quantize_i8", &quantize_i8, nb::arg("x"), nb::arg("q"), nb::arg("scale"), nb::arg("num_threads") = 1);
  for (const char* op : {"tgemv", "tgemm"}) {
    const std::string name(op);
    m.def(
        (name + "_f32").c_str(),
        [op](const CArray<const std::uint8_t>& w, float w_scale, const CArray<const std::int8_t>& x,
             const CArray<const float>& x_scale, OutArray<float> out, int num_threads) {
          ternary_matmul<float>(op, w, w_scale, x, x_scale, out, num_threads);
        },
        nb::arg("w"), nb::arg("w_scale"), nb::arg("x"), nb::arg("x_scale"), nb::arg("out"),
        nb::arg("num_threads") = 1);
    m.def(
        (name + "_i32").c_str(),
        [op](const CArray<const std::uint8_t>& w, float w_scale, const CArray<const std::int8_t>& x,
             const CArray<const float>& x_scale, OutArray<std::int32_t> out, int num_threads) {
          ternary_matmul<std::int32_t>(op, w, w_scale, x, x_scale, out, num_threads);
        },
        nb::arg("w"), nb::arg("w_scale"), nb::arg("x"), nb::arg("x_scale"), nb::arg("out"),
        nb::arg("num_threads") = 1);
  }
}

}  // namespace

ONEBIT_REGISTER_BINDINGS(bind);

}  // namespace onebit::bindings
