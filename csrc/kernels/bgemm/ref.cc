// Scalar reference binary GEMM: the oracle every SIMD path is compared against.
//   acc[r][j] = K - 2 * sum_w popcount(A[r][w] XOR B[j][w])   (formats.h: padding bits are 0
// in both operands, so they never count), minus the optional row correction, then the output
// transform of onebit/kernels.h (output_transform.h).
#include "onebit/kernels.h"
#include "output_transform.h"

namespace onebit::ref {
namespace {

int popcount32(bword_t x) {
  int n = 0;
  for (; x != 0; x &= x - 1) ++n;
  return n;
}

}  // namespace

void bgemm(const BgemmArgs& g) {
  const BOutputTransform& t = *g.transform;
  for (std::int64_t r = 0; r < g.m; ++r) {
    const bword_t* a = g.a + r * g.lda;
    const std::int32_t* corr = g.row_correction != nullptr ? g.row_correction[r] : nullptr;
    void* row = detail::out_row(t, g.out, r, g.ldo);
    for (std::int64_t j = 0; j < g.n; ++j) {
      const bword_t* b = g.b + j * g.ldb;
      std::int64_t pop = 0;
      for (std::int64_t w = 0; w < g.kw; ++w) pop += popcount32(a[w] ^ b[w]);
      std::int32_t acc = static_cast<std::int32_t>(g.k - 2 * pop);
      const std::int64_t col = g.col0 + j;
      if (corr != nullptr) acc -= corr[col];
      detail::store_one(t, col, acc, row);
    }
  }
}

}  // namespace onebit::ref
