// AVX-512 binary GEMM (VPOPCNTDQ + BW + VL; the AVX-512 binary convolution, bconv2d/avx512.cc,
// is im2col + this GEMM). Same contract, invariants and output transform as bgemm/avx2.cc.
//
// Popcount: one VPOPCNTQ per 512 bit-products (64 bits of 8 (row, column) pairs in the rows
// kernel, 512 bits of one pair in the tiles), accumulated in 64-bit lanes:
//   cnt += popcnt64(a XOR b)          (3 vector ops; no byte counters, so no flush: a lane
//                                      total is < K < 2^24, and acc = K - 2 * total)
// Register-only peak of one core (benchmarks/peak/binary_peak.cc, this Zen 5 with a second job
// on the other core, load ~3): ~1,220 G binary MAC/s for zmm (DESIGN.md: ~1,880 unloaded),
// ~990-1,200 for the same loop on ymm, ~320-460 for the AVX2 VPSHUFB/hybrid loops.
//
// Micro-kernels:
// * rows (the bulk): blocks of R = 16 rows (then 8; a last block of m % 8 >= kPadRows rows runs
//   on zero rows) are transposed into 64-bit elements, at[w][r] = A[r][2w] | A[r][2w+1] << 32
//   (transpose_rows: 8 x 8 blocks of 64-bit lanes in registers), so one zmm holds 64 bits of 8
//   rows; each 64-bit word of a B row is broadcast. A step covers 64 bits x R rows x 8 columns
//   (16 counters + 2 A vectors + 1 broadcast for R = 16); K advances 64 bits at a time, so
//   short depths waste nothing and no masked tail is needed (an odd last word is broadcast
//   zero-extended, so no load passes the end of a B row); the counter lanes already are the
//   rows' totals (no horizontal reduction): 8 x 8 blocks are converted and transposed to rows
//   in registers (VPMOVQD + 24 shuffles). An "odd word first" order keeps GCC from copying every
//   counter each iteration (it did with the odd step after the loop).
// * tiles (m % 8 < kPadRows leftover rows, e.g. m = 1 for a dense layer at batch 1): kMR x kNR
//   pairs, one zmm counter each over 512-bit steps of K (16 words); the K tail (kw % 16 words)
//   is one more step with masked loads (_mm512_maskz_loadu_epi32: masked-off words read 0 and
//   never fault), so there is no scalar tail; counters are reduced 8 at a time to one vector of
//   8 totals (reduce8: 21 ops).
// Output: int32 totals go to a row buffer, then the output transform (onebit/kernels.h) runs 16
// columns per step with one FMA per element, exactly like the scalar std::fma of
// output_transform.h (masked tails for int32/f32/i8, scalar tail for bitpacked), so every
// output type is bit-identical to ref. Columns are blocked (kColBlockBytes of B stay in L2).
//
// Measured (GEMM only, f32 output, 1 thread, L2-resident operands, best of 3 x ~0.4 s, load ~3,
// same run as the peaks above; G binary MAC/s, avx512 vs avx2.cc):
//   196 x 256 x 2304: 1,017 vs 375 (83% of the zmm peak)   196 x 256 x 4096: 1,094 vs 392
//    49 x 256 x 2304:   946 vs 374     784 x 128 x 1152: 766 vs 339    3136 x 64 x 576: 648 vs 284
//   196 x 256 x  288:   440 vs 209       3 x 256 x 2304: 520 vs 349    1 x 1000 x 4096: 887 vs 382
// Short depths pay a fixed cost per 16 x 8 tile: time(K) fits ~50 ns + K * 0.17 ns per tile
// (3136 x 64 x K, K = 576..4608: 648, 844, 987, 1,084 G/s); of the ~50 ns, the f32 transform is
// ~8% of the K = 576 time and the register transpose ~4% (int32 output without transpose: 730
// G/s); keeping the counters off the stack around the loop (GCC leaves the counter array in
// memory outside it; tried a compile-time odd-K flag and a larger SRA limit) changed nothing.
// Variants tried (196 x 256 x 2304 unless stated; differences under ~3% are noise on this
// shared machine):
//   tiles only, 512-bit steps + masked tail: 3x8 ~530, 2x8 ~520, 4x4 ~510, 6x4 ~500, 8x2 ~495,
//     4x8 ~490 (the reductions and the masked last step cost; rows kernel ~1,000): 3x8 kept;
//   rows kernel 8 rows x 8/12/16/24 columns and 16 x 4/6/8/12: within noise except 24 columns
//     (-3%); 24 rows x 8 columns: within noise; 16 x 8 kept (+5% over 8 x 8 at K = 2304);
//   scalar scatter of the counters into the row buffer instead of the register transpose: -7%
//     at K = 2304, -11% at K = 576; element-wise A transpose: -6% at K = 576, -20% at n = 8;
//   a 64-bit-pair merge + VPERMT2Q epilogue (32 instead of ~80 ops per 8 x 8 block): no gain;
//   zero-padded 8-row block vs tiles for m % 8 leftover rows: tiles win at 1-2 rows, padded
//     from 5 rows at K = 2304 and from 3 rows at K = 576: kPadRows = 4;
//   256-bit VPOPCNTQ: not kept, its register-only peak is at best equal to zmm's and the rows
//     kernel has no K waste at short depths for it to save.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12 flags the _mm512_undefined_*() inside its own avx512fintrin.h (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "onebit/kernels.h"
#include "output_transform.h"
#include "tiled.h"

namespace onebit::avx512 {
namespace {

#ifndef ONEBIT_BGEMM512_MR
#define ONEBIT_BGEMM512_MR 3
#define ONEBIT_BGEMM512_NR 8
#endif
constexpr int kMR = ONEBIT_BGEMM512_MR, kNR = ONEBIT_BGEMM512_NR;
#ifndef ONEBIT_BGEMM512_PAD_ROWS
#define ONEBIT_BGEMM512_PAD_ROWS 4
#endif
constexpr int kPadRows = ONEBIT_BGEMM512_PAD_ROWS;  // m % 8 from which a padded 8-row block wins
constexpr int kCols = 8;  // columns per pass of the row kernels (one 8 x 8 transpose per 8 rows)
constexpr std::int64_t kColBlockBytes = 384 * 1024;  // B block kept in L2 (1 MiB on Zen 5)

inline std::uint64_t load64(const bword_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// [sum c0, ..., sum c7] (sums of the 8 lanes of each input), as 8 uint64 lanes.
inline __m512i reduce8(const __m512i c[8]) {
  // pairs: lanes (2i, 2i+1) of block b hold (c_even, c_odd) partial sums of block b
  const __m512i s01 = _mm512_add_epi64(_mm512_unpacklo_epi64(c[0], c[1]), _mm512_unpackhi_epi64(c[0], c[1]));
  const __m512i s23 = _mm512_add_epi64(_mm512_unpacklo_epi64(c[2], c[3]), _mm512_unpackhi_epi64(c[2], c[3]));
  const __m512i s45 = _mm512_add_epi64(_mm512_unpacklo_epi64(c[4], c[5]), _mm512_unpackhi_epi64(c[4], c[5]));
  const __m512i s67 = _mm512_add_epi64(_mm512_unpacklo_epi64(c[6], c[7]), _mm512_unpackhi_epi64(c[6], c[7]));
  // 128-bit blocks: [x.b0, x.b2, y.b0, y.b2] + [x.b1, x.b3, y.b1, y.b3]
  const __m512i v = _mm512_add_epi64(_mm512_shuffle_i64x2(s01, s23, 0x88), _mm512_shuffle_i64x2(s01, s23, 0xDD));
  const __m512i w = _mm512_add_epi64(_mm512_shuffle_i64x2(s45, s67, 0x88), _mm512_shuffle_i64x2(s45, s67, 0xDD));
  return _mm512_add_epi64(_mm512_shuffle_i64x2(v, w, 0x88), _mm512_shuffle_i64x2(v, w, 0xDD));
}

// acc[i * ldc + j] = k - 2 * popcount(A[i] XOR B[j]) over kw words, for MR x NR pairs.
template <int MR, int NR>
inline void tile(const bword_t* a, std::int64_t lda, const bword_t* b, std::int64_t ldb, std::int64_t kw,
                 std::int64_t k, std::int32_t* acc, std::int64_t ldc) {
  constexpr int kPairs = MR * NR, kGroups = (kPairs + 7) / 8;
  __m512i cnt[kGroups * 8];
  for (int p = 0; p < kGroups * 8; ++p) cnt[p] = _mm512_setzero_si512();
  const std::int64_t full = kw / 16 * 16;
  auto step = [&](std::int64_t w, __mmask16 mask) {
    __m512i av[MR];
    for (int i = 0; i < MR; ++i) av[i] = _mm512_maskz_loadu_epi32(mask, a + i * lda + w);
    for (int j = 0; j < NR; ++j) {
      const __m512i bv = _mm512_maskz_loadu_epi32(mask, b + j * ldb + w);
      for (int i = 0; i < MR; ++i) {
        cnt[i * NR + j] = _mm512_add_epi64(cnt[i * NR + j], _mm512_popcnt_epi64(_mm512_xor_si512(av[i], bv)));
      }
    }
  };
  for (std::int64_t w = 0; w < full; w += 16) step(w, __mmask16(0xFFFF));
  if (full < kw) step(full, static_cast<__mmask16>((1u << (kw - full)) - 1));
  alignas(64) std::int64_t tot[kGroups * 8];
  for (int g = 0; g < kGroups; ++g) _mm512_store_si512(tot + 8 * g, reduce8(cnt + 8 * g));
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i * ldc + j] = static_cast<std::int32_t>(k - 2 * tot[i * NR + j]);
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

// In-register transpose of an 8 x 8 int32 block: x[i] lane j -> x[j] lane i (24 shuffles).
inline void transpose8x8(__m256i x[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(x[i], x[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(x[i], x[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    x[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
    x[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
  }
}

// at[w * R + v * 8 + r] = 64-bit element w (words 2w, 2w + 1; a missing odd last word reads
// 0) of row 8v + r of A, for w < round_up(ceil(kw / 2), 8): 8 rows x 8 elements at a time with
// one 8 x 8 transpose of 64-bit lanes (8 unpacks + 16 128-bit-block shuffles), the row ends
// through masked loads (no read past a row). ~3x fewer ops than element-by-element copies,
// which cost as much as the popcounts themselves when n = 8.
template <int RV>
void transpose_rows(const bword_t* a, std::int64_t lda, std::int64_t kw, std::uint64_t* at) {
  constexpr int R = 8 * RV;
  for (std::int64_t w0 = 0; 2 * w0 < kw; w0 += 8) {  // 8 elements = 16 words per row
    const std::int64_t left = kw - 2 * w0;
    const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    for (int v = 0; v < RV; ++v) {
      __m512i x[8], t[8], u[8];
      for (int r = 0; r < 8; ++r) x[r] = _mm512_maskz_loadu_epi32(mask, a + (8 * v + r) * lda + 2 * w0);
      for (int r = 0; r < 8; r += 2) {
        t[r] = _mm512_unpacklo_epi64(x[r], x[r + 1]);      // blocks: (r, r+1) x elements 0, 2, 4, 6
        t[r + 1] = _mm512_unpackhi_epi64(x[r], x[r + 1]);  //                     elements 1, 3, 5, 7
      }
      for (int h = 0; h < 8; h += 4)
        for (int o = 0; o < 2; ++o) {
          u[h + 2 * o] = _mm512_shuffle_i64x2(t[h + o], t[h + o + 2], 0x88);      // elements 0,4 | 1,5
          u[h + 2 * o + 1] = _mm512_shuffle_i64x2(t[h + o], t[h + o + 2], 0xDD);  // elements 2,6 | 3,7
        }
      // u[q] (q < 4) holds rows 0-3, u[q + 4] rows 4-7, of elements {0,4}, {2,6}, {1,5}, {3,7}
      constexpr int elem[4] = {0, 2, 1, 3};
      for (int q = 0; q < 4; ++q) {
        _mm512_store_si512(at + (w0 + elem[q]) * R + 8 * v, _mm512_shuffle_i64x2(u[q], u[q + 4], 0x88));
        _mm512_store_si512(at + (w0 + elem[q] + 4) * R + 8 * v, _mm512_shuffle_i64x2(u[q], u[q + 4], 0xDD));
      }
    }
  }
}

// For R = 8 * RV rows and kCols columns j < nc: dst[r * ldd + j] = k - 2 * popcount over kw
// words of (row r of `at`) XOR B[j]. `at` holds ceil(kw / 2) 64-bit elements per row,
// transposed: at[w * R + r]. Columns nc..kCols-1 repeat B row nc-1 and are not stored.
template <int RV>
inline void rows_tile(const std::uint64_t* at, std::int64_t kw, const bword_t* b, std::int64_t ldb, int nc,
                      std::int64_t k, std::int32_t* dst, std::int64_t ldd) {
  constexpr int R = 8 * RV, NC = kCols;
  const bword_t* bj[NC];
  for (int j = 0; j < NC; ++j) bj[j] = b + std::min(j, nc - 1) * ldb;
  __m512i cnt[NC][RV];
  for (int j = 0; j < NC; ++j)
    for (int v = 0; v < RV; ++v) cnt[j][v] = _mm512_setzero_si512();
  // One step: 64 bits of R rows x NC columns. The last word of an odd kw is read alone,
  // zero-extended (A's element has its high half 0 too), so no load passes the end of a B row.
  auto step = [&](std::int64_t w, bool half) {
    __m512i av[RV];
    for (int v = 0; v < RV; ++v) av[v] = _mm512_load_si512(at + w * R + 8 * v);
    for (int j = 0; j < NC; ++j) {
      const std::uint64_t bw = half ? std::uint64_t{bj[j][2 * w]} : load64(bj[j] + 2 * w);
      const __m512i bv = _mm512_set1_epi64(static_cast<long long>(bw));
      for (int v = 0; v < RV; ++v)
        cnt[j][v] = _mm512_add_epi64(cnt[j][v], _mm512_popcnt_epi64(_mm512_xor_si512(av[v], bv)));
    }
  };
  // (The odd word first: with it after the loop, GCC copies every counter each iteration.)
  if (kw % 2 != 0) step(kw / 2, true);
  for (std::int64_t w = 0; w < kw / 2; ++w) step(w, false);
  // Counters hold columns x rows; transpose each 8 x 8 block to rows x columns in registers.
  const __m256i kv = _mm256_set1_epi32(static_cast<int>(k));
  const __mmask8 cols = static_cast<__mmask8>((1u << nc) - 1);
  for (int v = 0; v < RV; ++v) {
    __m256i x[8];
    for (int j = 0; j < NC; ++j)  // totals < 2^24
      x[j] = _mm256_sub_epi32(kv, _mm256_slli_epi32(_mm512_cvtepi64_epi32(cnt[j][v]), 1));
    transpose8x8(x);
    for (int r = 0; r < 8; ++r) _mm256_mask_storeu_epi32(dst + (8 * v + r) * ldd, cols, x[r]);
  }
}

// Applies the optional correction and the output transform to n accumulators of one row
// (output columns col0 .. col0 + n - 1), 16 columns per step.
void transform_row(const BOutputTransform& t, const std::int32_t* acc, const std::int32_t* corr, std::int64_t col0,
                   std::int64_t n, void* row) {
  for (std::int64_t j = 0; j < n; j += 16) {
    const std::int64_t c = col0 + j;
    const int len = static_cast<int>(std::min<std::int64_t>(16, n - j));
    const __mmask16 mask = len == 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << len) - 1);
    if (t.type == BOutType::bitpacked && (len < 16 || c % 8 != 0)) {
      for (int u = 0; u < len; ++u) detail::store_one(t, c + u, acc[j + u] - (corr != nullptr ? corr[c + u] : 0), row);
      continue;
    }
    __m512i v = _mm512_maskz_loadu_epi32(mask, acc + j);
    if (corr != nullptr) v = _mm512_sub_epi32(v, _mm512_maskz_loadu_epi32(mask, corr + c));
    switch (t.type) {
      case BOutType::int32:
        _mm512_mask_storeu_epi32(static_cast<std::int32_t*>(row) + c, mask, v);
        break;
      case BOutType::f32:
      case BOutType::i8: {
        __m512 y = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, t.multiplier + c), _mm512_cvtepi32_ps(v),
                                   _mm512_maskz_loadu_ps(mask, t.bias + c));
        y = _mm512_max_ps(y, _mm512_set1_ps(t.clamp_min));  // NaN y -> clamp_min, as the scalar code
        y = _mm512_min_ps(y, _mm512_set1_ps(t.clamp_max));
        if (t.type == BOutType::f32) {
          _mm512_mask_storeu_ps(static_cast<float*>(row) + c, mask, y);
        } else {
          y = _mm512_max_ps(y, _mm512_set1_ps(-128.0f));
          y = _mm512_min_ps(y, _mm512_set1_ps(127.0f));
          const __m512i q = _mm512_cvtps_epi32(y);  // MXCSR default: round half to even
          _mm512_mask_cvtsepi32_storeu_epi8(static_cast<std::int8_t*>(row) + c, mask, q);
        }
        break;
      }
      case BOutType::bitpacked: {  // 16 whole columns starting at a byte boundary
        const __m512i thr = _mm512_loadu_si512(t.threshold + c);
        const __m128i fl = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t.flip + c));
        const __mmask16 bits = _mm512_cmpgt_epi32_mask(thr, v) ^ _mm_test_epi8_mask(fl, fl);  // (acc < thr) != flip
        const std::uint16_t b16 = bits;
        std::memcpy(reinterpret_cast<std::uint8_t*>(row) + c / 8, &b16, 2);
        break;
      }
    }
  }
}

// Rows [0, m), all columns, through rows_tile<RV> (see above); a last block of fewer than
// 8 * RV rows is computed on zero rows and only its own rows are written.
template <int RV>
void bgemm_rows(const BgemmArgs& g, std::int64_t nb) {
  constexpr int R = 8 * RV, NC = kCols;
  const BOutputTransform& t = *g.transform;
  const std::int64_t kw2 = (g.kw + 1) / 2;
  thread_local std::vector<std::int32_t> rowbuf;
  thread_local std::vector<std::uint64_t> at_store;
  thread_local std::vector<bword_t> pad;
  if (static_cast<std::int64_t>(rowbuf.size()) < R * nb) rowbuf.resize(R * nb);
  const std::int64_t at_size = R * ((kw2 + 7) / 8 * 8) + 8;
  if (static_cast<std::int64_t>(at_store.size()) < at_size) at_store.resize(at_size);
  std::uint64_t* at = at_store.data();
  at += (8 - (reinterpret_cast<std::uintptr_t>(at) / 8) % 8) % 8;  // 64-byte aligned
  for (std::int64_t n0 = 0; n0 < g.n; n0 += nb) {
    const std::int64_t n1 = std::min(g.n, n0 + nb), width = n1 - n0;
    for (std::int64_t r0 = 0; r0 < g.m; r0 += R) {
      const int valid = static_cast<int>(std::min<std::int64_t>(R, g.m - r0));
      if (valid == R) {
        transpose_rows<RV>(g.a + r0 * g.lda, g.lda, g.kw, at);
      } else {  // a last, partial block: its rows copied into zero rows (no read past A)
        pad.assign(R * g.kw, 0);
        for (int r = 0; r < valid; ++r) std::memcpy(pad.data() + r * g.kw, g.a + (r0 + r) * g.lda, g.kw * 4);
        transpose_rows<RV>(pad.data(), g.kw, g.kw, at);
      }
      for (std::int64_t j0 = n0; j0 < n1; j0 += NC) {
        const int nc = static_cast<int>(std::min<std::int64_t>(NC, n1 - j0));
        rows_tile<RV>(at, g.kw, g.b + j0 * g.ldb, g.ldb, nc, g.k, rowbuf.data() + (j0 - n0), width);
      }
      for (int r = 0; r < valid; ++r) {
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

}  // namespace

void bgemm(const BgemmArgs& g) {
  const std::int64_t nb = detail::column_block(g.kw, kColBlockBytes);
  // Blocks of 16 rows, then one of 8, then the last m % 8 rows: kPadRows or more as one
  // zero-padded 8-row block (B is read once, no reductions), fewer through the tiles.
#ifdef ONEBIT_BGEMM512_TILES_ONLY
  const std::int64_t m16 = 0, m8 = 0;
#else
  const std::int64_t m16 = g.m / 16 * 16, m8 = g.m % 8 >= kPadRows ? g.m : g.m / 8 * 8;
#endif
  auto part = [&](std::int64_t r0, std::int64_t r1, void (*fn)(const BgemmArgs&, std::int64_t)) {
    if (r1 > r0) fn(detail::row_range(g, r0, r1), nb);
  };
  part(0, m16, &bgemm_rows<2>);
  part(m16, m8, &bgemm_rows<1>);
  part(m8, g.m, &bgemm_tiles);
}

}  // namespace onebit::avx512
