// Binding of bgemm: shape/dtype checks, GIL release, threading over rows (or over columns in
// multiples of 32 when there are few rows), dispatch. Writes into a caller-given `out`.
#include <nanobind/stl/string.h>

#include "binary_transform.h"
#include "onebit/dispatch.h"
#include "onebit/parallel.h"

namespace onebit::bindings {
namespace {

void bgemm(const CArray<const bword_t>& a, const CArray<const bword_t>& b, int64_t k, const std::string& output,
           const CArray<const float>& multiplier, const CArray<const float>& bias, float clamp_min, float clamp_max,
           const CArray<const std::int32_t>& threshold, const CArray<const std::uint8_t>& flip, AnyArray out,
           int num_threads) {
  check_threads(num_threads);
  if (a.ndim() != 2 || b.ndim() != 2) {
    throw std::invalid_argument("bgemm expects a of shape (M, Kw) and b of shape (N, Kw)");
  }
  if (k < 0 || k >= (int64_t{1} << 24)) throw std::invalid_argument("bgemm: k must be in [0, 2^24), got " + std::to_string(k));
  const int64_t m = a.shape(0), n = b.shape(0), kw = packed_words(k);
  if (static_cast<int64_t>(a.shape(1)) != kw || static_cast<int64_t>(b.shape(1)) != kw) {
    throw std::invalid_argument("bgemm: K=" + std::to_string(k) + " needs " + std::to_string(kw) +
                                " words per row, got a.shape[1]=" + std::to_string(a.shape(1)) +
                                ", b.shape[1]=" + std::to_string(b.shape(1)));
  }
  const BOutType type = parse_out_type(output);
  const BOutputTransform t = make_transform(type, n, multiplier, bias, clamp_min, clamp_max, threshold, flip);
  const int64_t ldo = check_out(out, type, {m, type == BOutType::bitpacked ? packed_words(n) : n});
  if (type == BOutType::bitpacked && out.size() > 0) std::memset(out.data(), 0, out.size() * sizeof(bword_t));
  static Kernel<bgemm_fn> kernel("bgemm");
  const bword_t* ap = a.data();
  const bword_t* bp = b.data();
  void* op = out.data();
  {
    nb::gil_scoped_release release;
    bgemm_fn fn = kernel();
    auto base = [&] {
      BgemmArgs g;
      g.a = ap, g.lda = kw, g.b = bp, g.ldb = kw, g.m = m, g.n = n, g.kw = kw, g.k = k;
      g.transform = &t, g.out = op, g.ldo = ldo;
      return g;
    };
    if (m >= 4 * num_threads || n < 64) {
      parallel_for_grain(m, 3, num_threads, [&](int64_t begin, int64_t end) {  // 3 = AVX2 tile height
        BgemmArgs g = base();
        g.a = ap + begin * kw;
        g.m = end - begin;
        g.out = static_cast<char*>(op) + begin * ldo * static_cast<int64_t>(out.itemsize());
        fn(g);
      });
    } else {
      // Few rows (e.g. a dense layer at batch 1): split the output columns at multiples of 32
      // so that bitpacked output words are never shared between threads.
      parallel_for_grain(n, 32, num_threads, [&](int64_t begin, int64_t end) {
        BgemmArgs g = base();
        g.b = bp + begin * kw;
        g.n = end - begin;
        g.col0 = begin;
        fn(g);
      });
    }
  }
}

void bind(nb::module_& m) {
  m.def("bgemm", &bgemm, nb::arg("a"), nb::arg("b"), nb::arg("k"), nb::arg("output"), nb::arg("multiplier"),
        nb::arg("bias"), nb::arg("clamp_min"), nb::arg("clamp_max"), nb::arg("threshold"), nb::arg("flip"),
        nb::arg("out"), nb::arg("num_threads") = 1,
        "Binary GEMM with fused output transform into `out` (see onebit.kernels.bgemm).");
}

}  // namespace

ONEBIT_REGISTER_BINDINGS(bind);

}  // namespace onebit::bindings
