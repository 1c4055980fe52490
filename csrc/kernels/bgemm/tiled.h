// The blocking shared by the SIMD binary GEMMs (avx2.cc, avx512.cc, neon.cc): column blocks of
// B that stay in L2, row ranges of a call, and the driver of the small-tile kernels. A path
// supplies only its micro-kernel (`tile`) and its output stage (`finish`).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "onebit/kernels.h"
#include "output_transform.h"

namespace onebit::detail {

// Columns per block: B rows of kw words take at most `l2_bytes`, rounded down to a multiple of
// 32 columns (so bitpacked output words stay whole), at least 32.
inline std::int64_t column_block(std::int64_t kw, std::int64_t l2_bytes) {
  const std::int64_t row_bytes = std::max<std::int64_t>(1, kw * 4);
  return std::max<std::int64_t>(32, (l2_bytes / row_bytes) / 32 * 32);
}

// The same GEMM restricted to rows [r0, r1) of A (and of the output and row corrections).
inline BgemmArgs row_range(const BgemmArgs& g, std::int64_t r0, std::int64_t r1) {
  BgemmArgs p = g;
  p.a = g.a + r0 * g.lda;
  p.m = r1 - r0;
  p.row_correction = g.row_correction != nullptr ? g.row_correction + r0 : nullptr;
  p.out = out_row(*g.transform, g.out, r0, g.ldo);
  return p;
}

// Rows [0, g.m) through tiles of up to MR x NR (row, column) pairs, nb columns at a time:
//   tile(a, b, mr, nr, acc, ldc): acc[i * ldc + j] = accumulator of rows a + i * lda and
//                                 b + j * ldb (i < mr, j < nr);
//   finish(acc, corr, col0, n, row): correction and output transform of n accumulators of one
//                                 row (output columns col0 .. col0 + n - 1) into output row `row`.
template <int MR, int NR, class Tile, class Finish>
void bgemm_tiled(const BgemmArgs& g, std::int64_t nb, Tile&& tile, Finish&& finish) {
  const BOutputTransform& t = *g.transform;
  thread_local std::vector<std::int32_t> accbuf;
  if (static_cast<std::int64_t>(accbuf.size()) < MR * nb) accbuf.resize(MR * nb);
  for (std::int64_t n0 = 0; n0 < g.n; n0 += nb) {
    const std::int64_t n1 = std::min(g.n, n0 + nb), width = n1 - n0;
    for (std::int64_t r0 = 0; r0 < g.m; r0 += MR) {
      const int mr = static_cast<int>(std::min<std::int64_t>(MR, g.m - r0));
      for (std::int64_t j0 = n0; j0 < n1; j0 += NR) {
        const int nr = static_cast<int>(std::min<std::int64_t>(NR, n1 - j0));
        tile(g.a + r0 * g.lda, g.b + j0 * g.ldb, mr, nr, accbuf.data() + (j0 - n0), width);
      }
      for (int i = 0; i < mr; ++i) {
        const std::int64_t r = r0 + i;
        const std::int32_t* corr = g.row_correction != nullptr ? g.row_correction[r] : nullptr;
        finish(accbuf.data() + i * width, corr, g.col0 + n0, width, out_row(t, g.out, r, g.ldo));
      }
    }
  }
}

}  // namespace onebit::detail
