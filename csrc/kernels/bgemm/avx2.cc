// AVX2 binary GEMM (the AVX2 binary convolution, bconv2d/avx2.cc, is im2col + this GEMM).
//
// Popcount: VPSHUFB nibble lookup into byte counters (Mula's method). Register-only loops on
// this Zen 3 core (benchmarks/peak/binary_peak.cc): ~345 G binary MAC/s for this method versus
// ~212 G for scalar 64-bit POPCNT. Per 256 bits of one (row, column) pair:
//   t = a XOR b; cnt += lut[t & 15] + lut[(t >> 4) & 15]       (8 vector ops)
// Numeric invariants: a step adds at most 4 + 4 = 8 to a byte counter, so counters are
// flushed every kFlush = 31 steps (31 * 8 = 248 < 256); a flush (reduce4) turns 4 pairs'
// counters into 4 int32 totals with VPSADBW (partial sums <= 31 * 8 * 8 = 1984 < 2^16 per
// 64-bit lane); totals stay < K < 2^24.
// Register blocking: kMR x kNR = 3 x 4 pairs per tile (12 counters + 3 A vectors + 1 B vector
// + 2 constants: a few counters spill to L1). Tiles tried on this shared, noisy core: 1x4,
// 1x8, 2x3, 2x4, 2x6, 3x2, 3x3, 3x4, 4x2, 4x3, 4x4; 2x4, 3x3 and 3x4 were best and within
// noise of each other (~280-300 G/s on 196 x 256 x 2304); 3x4 was kept for the conv shapes and
// because NR = 4 lets one row's 4 totals be reduced and stored as one vector.
// Also measured and rejected: operands pre-split into nibbles (6 instead of 8 ops per step:
// ~266 G/s in the register-only loop, slower) and a hybrid tile counting one extra 64-bit word
// per pair and step with scalar POPCNT on the integer pipes (-7%..+3% for K = 576..4096).
// GEMM-only throughput with L2-resident operands (1 thread): ~317 G/s at K = 4096, ~297 G/s
// at K = 2304, ~160 G/s at K = 576, ~130 G/s at K = 256: short depths pay a fixed per-pair
// cost (reduction, tail, stores) of ~2 ns.
// K words that do not fill a 256-bit step (kw % 8) are counted with scalar 64-bit POPCNT on
// the integer pipes. Columns are processed in blocks of kColBlockBytes of B so the block stays
// in L2 while the rows stream past it.
// Output: the int32 accumulators of a tile row block go to a small buffer, then the output
// transform (onebit/kernels.h) is applied 8 columns at a time; float maths uses one FMA per
// element, exactly like the scalar std::fma of output_transform.h, so every output type is
// bit-identical to ref.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "onebit/kernels.h"
#include "output_transform.h"
#include "tiled.h"

namespace onebit::avx2 {
namespace {

#ifndef ONEBIT_BGEMM_MR
#define ONEBIT_BGEMM_MR 3
#define ONEBIT_BGEMM_NR 4
#endif
constexpr int kMR = ONEBIT_BGEMM_MR, kNR = ONEBIT_BGEMM_NR;
constexpr std::int64_t kFlush = 31;  // steps before byte counters could overflow (31 * 8 = 248)
constexpr std::int64_t kColBlockBytes = 192 * 1024;  // B block kept in L2 (512 KiB on Zen 3)

inline std::uint64_t load64(const bword_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Sums of the 32 byte counters of c0..c3 as 4 int32 [sum c0, sum c1, sum c2, sum c3], all in
// vector registers (13 ops for 4 pairs): VPSADBW leaves 4 partial sums < 2^16 in the low
// halves of 64-bit lanes; pairs are interleaved into 32-bit lanes and added across lanes.
inline __m128i reduce4(__m256i c0, __m256i c1, __m256i c2, __m256i c3) {
  const __m256i z = _mm256_setzero_si256();
  const __m256i u01 = _mm256_or_si256(_mm256_sad_epu8(c0, z), _mm256_slli_epi64(_mm256_sad_epu8(c1, z), 32));
  const __m256i u23 = _mm256_or_si256(_mm256_sad_epu8(c2, z), _mm256_slli_epi64(_mm256_sad_epu8(c3, z), 32));
  const __m256i h = _mm256_add_epi32(_mm256_unpacklo_epi64(u01, u23), _mm256_unpackhi_epi64(u01, u23));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// acc[i][j] = k - 2 * popcount(A[i] XOR B[j]) over kw words, for MR x NR pairs, written to
// acc[i * ldc + j].
template <int MR, int NR>
inline void tile(const bword_t* a, std::int64_t lda, const bword_t* b, std::int64_t ldb, std::int64_t kw,
                 std::int64_t k, std::int32_t* acc, std::int64_t ldc) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const std::int64_t steps = kw / 8;
  // NR == 4: per-row totals as 4 int32 in a register (reduce4); otherwise scalar sums.
  __m128i tot4[MR];
  std::uint64_t sum[MR][NR] = {};
  for (int i = 0; i < MR; ++i) tot4[i] = _mm_setzero_si128();
  for (std::int64_t s = 0; s < steps;) {
    const std::int64_t end = std::min(steps, s + kFlush);
    __m256i cnt[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) cnt[i][j] = _mm256_setzero_si256();
    for (; s < end; ++s) {
      __m256i av[MR];
      for (int i = 0; i < MR; ++i) av[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i * lda + 8 * s));
      for (int j = 0; j < NR; ++j) {
        const __m256i bv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + j * ldb + 8 * s));
        for (int i = 0; i < MR; ++i) {
          const __m256i t = _mm256_xor_si256(av[i], bv);
          const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(t, low));
          const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(t, 4), low));
          cnt[i][j] = _mm256_add_epi8(cnt[i][j], _mm256_add_epi8(lo, hi));
        }
      }
    }
    if constexpr (NR == 4) {
      for (int i = 0; i < MR; ++i) tot4[i] = _mm_add_epi32(tot4[i], reduce4(cnt[i][0], cnt[i][1], cnt[i][2], cnt[i][3]));
    } else {
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) {
          const __m128i r = reduce4(cnt[i][j], _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256());
          sum[i][j] += static_cast<std::uint32_t>(_mm_cvtsi128_si32(r));
        }
    }
  }
  // Tail words (kw % 8): scalar POPCNT, 64 bits at a time.
  for (std::int64_t w = steps * 8; w < kw; w += 2) {
    for (int i = 0; i < MR; ++i) {
      for (int j = 0; j < NR; ++j) {
        const bword_t* ap = a + i * lda + w;
        const bword_t* bp = b + j * ldb + w;
        sum[i][j] += w + 1 < kw ? _mm_popcnt_u64(load64(ap) ^ load64(bp)) : _mm_popcnt_u32(ap[0] ^ bp[0]);
      }
    }
  }
  if constexpr (NR == 4) {
    const __m128i kv = _mm_set1_epi32(static_cast<std::int32_t>(k));
    for (int i = 0; i < MR; ++i) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(acc + i * ldc), _mm_sub_epi32(kv, _mm_slli_epi32(tot4[i], 1)));
    }
    // Tail counts are subtracted in integer registers (building a vector from 4 GPRs would
    // take shuffle-port slots, the kernel's bottleneck).
    if (steps * 8 < kw) {
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i * ldc + j] -= static_cast<std::int32_t>(2 * sum[i][j]);
    }
  } else {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i * ldc + j] = static_cast<std::int32_t>(k - 2 * static_cast<std::int64_t>(sum[i][j]));
  }
}

// Runtime (mr, nr) -> compile-time tile<MR, NR> for the edge tiles of the block.
template <int MR, int NR>
inline void tile_cols(const bword_t* a, std::int64_t lda, const bword_t* b, std::int64_t ldb, std::int64_t kw,
                      std::int64_t k, int nr, std::int32_t* acc, std::int64_t ldc) {
  if constexpr (NR > 0) {
    if (nr == NR) {
      tile<MR, NR>(a, lda, b, ldb, kw, k, acc, ldc);
    } else {
      tile_cols<MR, NR - 1>(a, lda, b, ldb, kw, k, nr, acc, ldc);
    }
  }
}

template <int MR>
inline void tile_any(const bword_t* a, std::int64_t lda, const bword_t* b, std::int64_t ldb, std::int64_t kw,
                     std::int64_t k, int mr, int nr, std::int32_t* acc, std::int64_t ldc) {
  if constexpr (MR > 0) {
    if (mr == MR) {
      tile_cols<MR, kNR>(a, lda, b, ldb, kw, k, nr, acc, ldc);
    } else {
      tile_any<MR - 1>(a, lda, b, ldb, kw, k, mr, nr, acc, ldc);
    }
  }
}

// ---- main kernel: 8 rows per vector ------------------------------------------------------
// A block of 8 rows is transposed word by word (at[w][r] = A[r][w]); each 32-bit B word of a
// channel is broadcast, so one 256-bit step covers 32 bits of 8 (row, channel) pairs. Every K
// word is a full step (no scalar tail), and the per-row totals are per-lane sums of 4 byte
// counters (VPMADDUBSW + VPMADDWD: 2 ops per 8 pairs, against a horizontal reduction per pair
// in the tile kernel above), flushed every kFlush words (8 per word: 31 * 8 = 248 < 256;
// VPMADDUBSW pair sums <= 496 fit int16). 8 channels x 1 row block = 8 counters in registers.
// Measured against the 3 x 4 tiles (GEMM only, 1 thread): K = 288: ~163 vs ~95 G MAC/s,
// K = 576: ~228 vs ~167, K = 1152: ~271 vs ~218, K = 2304: ~312 vs ~302, K = 4096: ~330 vs
// ~325. The tiles remain for the last m % 8 rows (and m < 8, e.g. a dense layer at batch 1).
// Channels per pass (tuning knob; 4, 6, 7 and 8 measured within noise of each other).
#ifndef ONEBIT_BGEMM_COLS8
#define ONEBIT_BGEMM_COLS8 8
#endif
constexpr int kShortRows = 8, kShortCols = ONEBIT_BGEMM_COLS8;

// acc8[j][r] = k - 2 * popcount over kw words of (row r of `at`) XOR B[min(j, nc-1)], j < 8.
inline void short_tile(const bword_t* at, std::int64_t kw, const bword_t* b, std::int64_t ldb, int nc,
                       std::int64_t k, std::int32_t acc8[kShortCols][kShortRows]) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const bword_t* bj[kShortCols];
  for (int j = 0; j < kShortCols; ++j) bj[j] = b + std::min(j, nc - 1) * ldb;  // extra columns: discarded
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  const __m256i kv = _mm256_set1_epi32(static_cast<int>(k));
  for (int j = 0; j < kShortCols; ++j) _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc8[j]), kv);
  for (std::int64_t w = 0; w < kw;) {  // rounds of <= kFlush words (byte counters <= 248)
    const std::int64_t end = std::min(kw, w + kFlush);
    __m256i cnt[kShortCols];
    for (int j = 0; j < kShortCols; ++j) cnt[j] = _mm256_setzero_si256();
    for (; w < end; ++w) {
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + w * kShortRows));
      for (int j = 0; j < kShortCols; ++j) {
        const __m256i t = _mm256_xor_si256(av, _mm256_set1_epi32(static_cast<int>(bj[j][w])));
        const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(t, low));
        const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(t, 4), low));
        cnt[j] = _mm256_add_epi8(cnt[j], _mm256_add_epi8(lo, hi));
      }
    }
    for (int j = 0; j < kShortCols; ++j) {
      // per 32-bit lane (one row): sum of its 4 byte counters, <= 4 * 248
      const __m256i pop = _mm256_madd_epi16(_mm256_maddubs_epi16(cnt[j], ones8), ones16);
      __m256i* dst = reinterpret_cast<__m256i*>(acc8[j]);
      _mm256_storeu_si256(dst, _mm256_sub_epi32(_mm256_loadu_si256(dst), _mm256_slli_epi32(pop, 1)));
    }
  }
}

// Applies the optional correction and the output transform to n accumulators of one row
// (output columns col0 .. col0 + n - 1), 8 columns per step, scalar tail.
void transform_row(const BOutputTransform& t, const std::int32_t* acc, const std::int32_t* corr, std::int64_t col0,
                   std::int64_t n, void* row) {
  std::int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const std::int64_t c = col0 + j;
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j));
    if (corr != nullptr) v = _mm256_sub_epi32(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr + c)));
    switch (t.type) {
      case BOutType::int32:
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<std::int32_t*>(row) + c), v);
        break;
      case BOutType::f32:
      case BOutType::i8: {
        __m256 y = _mm256_fmadd_ps(_mm256_loadu_ps(t.multiplier + c), _mm256_cvtepi32_ps(v), _mm256_loadu_ps(t.bias + c));
        y = _mm256_max_ps(y, _mm256_set1_ps(t.clamp_min));
        y = _mm256_min_ps(y, _mm256_set1_ps(t.clamp_max));
        if (t.type == BOutType::f32) {
          _mm256_storeu_ps(static_cast<float*>(row) + c, y);
        } else {
          y = _mm256_max_ps(y, _mm256_set1_ps(-128.0f));
          y = _mm256_min_ps(y, _mm256_set1_ps(127.0f));
          const __m256i q = _mm256_cvtps_epi32(y);  // MXCSR default: round half to even
          const __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
          _mm_storel_epi64(reinterpret_cast<__m128i*>(static_cast<std::int8_t*>(row) + c), _mm_packs_epi16(q16, q16));
        }
        break;
      }
      case BOutType::bitpacked: {
        if (c % 8 != 0) {
          for (int u = 0; u < 8; ++u) {
            std::int32_t a = acc[j + u] - (corr != nullptr ? corr[c + u] : 0);
            detail::store_one(t, c + u, a, row);
          }
          break;
        }
        const __m256i thr = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.threshold + c));
        std::uint64_t flip8;
        std::memcpy(&flip8, t.flip + c, 8);
        const __m256i flip = _mm256_cmpgt_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(flip8))),
                                                _mm256_setzero_si256());
        const __m256i bits = _mm256_xor_si256(_mm256_cmpgt_epi32(thr, v), flip);  // (acc < thr) != flip
        reinterpret_cast<std::uint8_t*>(row)[c / 8] =
            static_cast<std::uint8_t>(_mm256_movemask_ps(_mm256_castsi256_ps(bits)));
        break;
      }
    }
  }
  for (; j < n; ++j) {
    const std::int64_t c = col0 + j;
    detail::store_one(t, c, acc[j] - (corr != nullptr ? corr[c] : 0), row);
  }
}

}  // namespace

// Rows [0, m) with m a multiple of 8, all columns, through short_tile (see above).
void bgemm_rows8(const BgemmArgs& g, std::int64_t nb) {
  const BOutputTransform& t = *g.transform;
  thread_local std::vector<std::int32_t> rowbuf;
  thread_local std::vector<bword_t> at;
  if (static_cast<std::int64_t>(rowbuf.size()) < kShortRows * nb) rowbuf.resize(kShortRows * nb);
  if (static_cast<std::int64_t>(at.size()) < kShortRows * g.kw) at.resize(kShortRows * g.kw);
  alignas(32) std::int32_t acc8[kShortCols][kShortRows];
  for (std::int64_t n0 = 0; n0 < g.n; n0 += nb) {
    const std::int64_t n1 = std::min(g.n, n0 + nb), width = n1 - n0;
    for (std::int64_t r0 = 0; r0 < g.m; r0 += kShortRows) {
      for (std::int64_t w = 0; w < g.kw; ++w)  // transpose the 8 rows word by word
        for (int r = 0; r < kShortRows; ++r) at[w * kShortRows + r] = g.a[(r0 + r) * g.lda + w];
      for (std::int64_t j0 = n0; j0 < n1; j0 += kShortCols) {
        const int nc = static_cast<int>(std::min<std::int64_t>(kShortCols, n1 - j0));
        short_tile(at.data(), g.kw, g.b + j0 * g.ldb, g.ldb, nc, g.k, acc8);
        for (int j = 0; j < nc; ++j)
          for (int r = 0; r < kShortRows; ++r) rowbuf[r * width + (j0 - n0) + j] = acc8[j][r];
      }
      for (int r = 0; r < kShortRows; ++r) {
        const std::int32_t* corr = g.row_correction != nullptr ? g.row_correction[r0 + r] : nullptr;
        transform_row(t, rowbuf.data() + r * width, corr, g.col0 + n0, width,
                      detail::out_row(t, g.out, r0 + r, g.ldo));
      }
    }
  }
}

// Rows [0, m), any m, through the kMR x kNR tiles.
void bgemm_tiles(const BgemmArgs& g, std::int64_t nb) {
  detail::bgemm_tiled<kMR, kNR>(
      g, nb,
      [&](const bword_t* a, const bword_t* b, int mr, int nr, std::int32_t* acc, std::int64_t ldc) {
        tile_any<kMR>(a, g.lda, b, g.ldb, g.kw, g.k, mr, nr, acc, ldc);
      },
      [&](const std::int32_t* acc, const std::int32_t* corr, std::int64_t col0, std::int64_t n, void* row) {
        transform_row(*g.transform, acc, corr, col0, n, row);
      });
}

void bgemm(const BgemmArgs& g) {
  const std::int64_t nb = detail::column_block(g.kw, kColBlockBytes);
  const std::int64_t m8 = g.m / kShortRows * kShortRows;
  if (m8 > 0) bgemm_rows8(detail::row_range(g, 0, m8), nb);
  if (m8 < g.m) bgemm_tiles(detail::row_range(g, m8, g.m), nb);  // the last m % 8 rows
}

}  // namespace onebit::avx2
