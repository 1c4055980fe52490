// NEON (AArch64 Advanced SIMD) binary GEMM.
//
// Popcount: VCNT (vcntq_u8) gives per-byte counts of t = a XOR b; UADALP (vpadalq_u8) folds
// pairs of them into 16-bit lane counters. Per 128 bits (4 words) of one (row, column) pair:
//   cnt16 += pairwise(vcnt(a ^ b))                                (3 vector ops)
// Numeric invariants: a step adds at most 16 to a 16-bit lane, so counters are flushed into
// 32-bit totals (vpadalq_u16) every kFlush = 4095 steps (4095 * 16 = 65520 < 65536); totals
// stay < K < 2^24.
// Register blocking: kMR x kNR = 4 x 4 pairs per tile (16 counters + 4 A + 1 B vectors of the 32
// AArch64 vector registers). Edge tiles are 1 x 1. K words that do not fill a 128-bit step
// (kw % 4) are counted with the scalar popcount (AArch64 has no scalar POPCNT before FEAT_CSSC;
// the compiler uses CNT on a D register).
// Output: the int32 accumulators of a row block go to a small buffer, then the scalar output
// transform of output_transform.h (the very code ref runs), so every output type is
// bit-identical to ref. Columns are processed in blocks of kColBlockBytes of B, as in avx2.cc.
// Tested under qemu-user against ref (tests/kernels/test_neon_qemu.py); not timed on ARM
// hardware (this project's machines are x86).
#include <arm_neon.h>

#include <algorithm>

#include "onebit/kernels.h"
#include "output_transform.h"
#include "tiled.h"

namespace onebit::neon {
namespace {

constexpr int kMR = 4, kNR = 4;
constexpr std::int64_t kFlush = 4095;                // 128-bit steps before a 16-bit lane could overflow
constexpr std::int64_t kColBlockBytes = 256 * 1024;  // B block kept in L2

// acc[i * ldc + j] = k - 2 * popcount(A[i] XOR B[j]) over kw words, for MR x NR pairs.
template <int MR, int NR>
inline void tile(const bword_t* a, std::int64_t lda, const bword_t* b, std::int64_t ldb, std::int64_t kw,
                 std::int64_t k, std::int32_t* acc, std::int64_t ldc) {
  const std::int64_t steps = kw / 4;
  uint32x4_t tot[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) tot[i][j] = vdupq_n_u32(0);
  for (std::int64_t s = 0; s < steps;) {
    const std::int64_t end = std::min(steps, s + kFlush);
    uint16x8_t cnt[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) cnt[i][j] = vdupq_n_u16(0);
    for (; s < end; ++s) {
      uint8x16_t av[MR];
      for (int i = 0; i < MR; ++i) av[i] = vreinterpretq_u8_u32(vld1q_u32(a + i * lda + 4 * s));
      for (int j = 0; j < NR; ++j) {
        const uint8x16_t bv = vreinterpretq_u8_u32(vld1q_u32(b + j * ldb + 4 * s));
        for (int i = 0; i < MR; ++i) cnt[i][j] = vpadalq_u8(cnt[i][j], vcntq_u8(veorq_u8(av[i], bv)));
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) tot[i][j] = vpadalq_u16(tot[i][j], cnt[i][j]);
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      std::int64_t pop = vaddvq_u32(tot[i][j]);
      for (std::int64_t w = steps * 4; w < kw; ++w) pop += __builtin_popcount(a[i * lda + w] ^ b[j * ldb + w]);
      acc[i * ldc + j] = static_cast<std::int32_t>(k - 2 * pop);
    }
  }
}

}  // namespace

void bgemm(const BgemmArgs& g) {
  const BOutputTransform& t = *g.transform;
  detail::bgemm_tiled<kMR, kNR>(
      g, detail::column_block(g.kw, kColBlockBytes),
      [&](const bword_t* a, const bword_t* b, int mr, int nr, std::int32_t* acc, std::int64_t ldc) {
        if (mr == kMR && nr == kNR) {
          tile<kMR, kNR>(a, g.lda, b, g.ldb, g.kw, g.k, acc, ldc);
        } else {
          for (int i = 0; i < mr; ++i) {
            for (int j = 0; j < nr; ++j) {
              tile<1, 1>(a + i * g.lda, g.lda, b + j * g.ldb, g.ldb, g.kw, g.k, acc + i * ldc + j, ldc);
            }
          }
        }
      },
      [&](const std::int32_t* acc, const std::int32_t* corr, std::int64_t col0, std::int64_t n, void* row) {
        for (std::int64_t j = 0; j < n; ++j) {
          detail::store_one(t, col0 + j, acc[j] - (corr != nullptr ? corr[col0 + j] : 0), row);
        }
      });
}

}  // namespace onebit::neon
