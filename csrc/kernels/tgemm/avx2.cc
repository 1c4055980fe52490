// AVX2 tgemv / tgemm: tq2 ternary weights (formats.h) x int8 activations, exact int32 sums.
//
// Arithmetic (llama.cpp TQ2_0 trick): the packed field is q = t + 1 in {0, 1, 2}, an unsigned
// byte, so _mm256_maddubs_epi16(q, x) multiplies it with the signed activation without any sign
// handling, and
//     sum_k t[k] * x[k] = sum_k q[k] * x[k] - sum_k x[k]          (row sum of x, once per row).
// Numeric invariants:
//   * maddubs never saturates: each int16 lane is q0*x0 + q1*x1 in [2*2*(-128), 2*2*127] =
//     [-512, 508] (q >= 0, so the sign of each product is the sign of x);
//   * maddubs results are summed in int16 lanes for at most 64 products per lane:
//     [64*(-512), 64*508] = [-32768, 32512] fits int16 exactly (wrapping adds never wrap), then
//     they are widened with _mm256_madd_epi16(., 1) into int32. This holds for every int8
//     activation, -128 included (quantize_i8 itself only produces [-127, 127]);
//   * int32 sums are exact for K < 2^22 (|acc| <= 4 * 128 * K with tgemv's pre-scaled groups),
//     i.e. the ref's integer result exactly;
//   * the float output is float(acc) * (w_scale / x_scale[i]), the same two float operations as
//     in ref (a product, not contracted into an FMA), so float outputs are also bit-identical.
// Padding: fields past K hold t = 0, and activations are always read from zero-padded copies
// (tgemv: one row; tgemm: repacked tiles), so no load ever reads past a caller's buffer.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "onebit/kernels.h"
#include "scratch.h"

namespace onebit::avx2 {
namespace {

constexpr int kBlockBytes = static_cast<int>(sizeof(tq2_block));  // 32 bytes = 128 weights
constexpr int kFlushProducts = 64;  // maddubs results summed per int16 lane before widening

inline __m256i load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

inline std::int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// sum of n int8 values (n a multiple of 32).
std::int32_t row_sum(const std::int8_t* x, std::int64_t n) {
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  __m256i acc = _mm256_setzero_si256();
  for (std::int64_t i = 0; i < n; i += 32) {
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, load(x + i)), ones16));
  }
  return hsum_epi32(acc);
}

using detail::Scratch;

// Copies m rows of k int8 (stride k) into rows of `padded` >= k bytes, zero tail.
Scratch<std::int8_t> pad_rows(const std::int8_t* x, std::int64_t m, std::int64_t k, std::int64_t padded) {
  Scratch<std::int8_t> out(m * padded);
  for (std::int64_t i = 0; i < m; ++i) std::memcpy(out.data() + i * padded, x + i * k, static_cast<size_t>(k));
  return out;
}

inline void store_result(std::int32_t acc, std::int64_t i, std::int64_t j, float mult, float* out,
                         std::int32_t* acc_out, std::int64_t ldo) {
  if (out) out[i * ldo + j] = static_cast<float>(acc) * mult;
  if (acc_out) acc_out[i * ldo + j] = acc;
}

// ---- tgemv: R packed weight rows . one zero-padded activation row, streaming the weights -----
// Per 32-byte block v (128 weights) one shift: with v4 = v >> 4 (16-bit lanes; the bits that
// cross into a byte are masked off), the four 32-weight groups are
//     q0 = v & 3,  q2 = v4 & 3   (taken as is)   and   4*q1 = v & 12,  4*q3 = v4 & 12,
// the last two pre-scaled by 4 and summed in their own accumulators, divided by 4 at the end
// (exact: every term is a multiple of 4). int16 bounds per lane: a maddubs of 4q (<= 8) with
// int8 is in [2*8*(-128), 2*8*127] = [-2048, 2032]; 2 per block and accumulator, flushed every
// 8 blocks: [-32768, 32512], exact in int16.
template <int R>
void gemv_rows(const std::uint8_t* w, std::int64_t row_bytes, const std::int8_t* xp, std::int64_t blocks,
               std::int32_t* res) {
  const __m256i lo = _mm256_set1_epi8(3), hi = _mm256_set1_epi8(12), ones16 = _mm256_set1_epi16(1);
  __m256i acc_a32[R], acc_b32[R];
  for (int r = 0; r < R; ++r) acc_a32[r] = acc_b32[r] = _mm256_setzero_si256();
  constexpr std::int64_t kFlushBlocks = 8;
  for (std::int64_t b0 = 0; b0 < blocks; b0 += kFlushBlocks) {
    const std::int64_t b1 = std::min(b0 + kFlushBlocks, blocks);
    __m256i acc_a[R], acc_b[R];
    for (int r = 0; r < R; ++r) acc_a[r] = acc_b[r] = _mm256_setzero_si256();
    for (std::int64_t b = b0; b < b1; ++b) {
      const std::int8_t* xb = xp + b * kTq2BlockValues;
      const __m256i x0 = load(xb), x1 = load(xb + 32), x2 = load(xb + 64), x3 = load(xb + 96);
      for (int r = 0; r < R; ++r) {
        // The rows of the next group start R rows further: prefetch them at the same offset so
        // that short rows (1-4 KiB) do not wait for the hardware prefetcher to train on them.
        _mm_prefetch(reinterpret_cast<const char*>(w + (R + r) * row_bytes + b * kBlockBytes), _MM_HINT_T0);
        const __m256i v = load(w + r * row_bytes + b * kBlockBytes), v4 = _mm256_srli_epi16(v, 4);
        const __m256i a = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v, lo), x0),
                                           _mm256_maddubs_epi16(_mm256_and_si256(v4, lo), x2));
        const __m256i c = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v, hi), x1),
                                           _mm256_maddubs_epi16(_mm256_and_si256(v4, hi), x3));
        acc_a[r] = _mm256_add_epi16(acc_a[r], a);
        acc_b[r] = _mm256_add_epi16(acc_b[r], c);
      }
    }
    for (int r = 0; r < R; ++r) {
      acc_a32[r] = _mm256_add_epi32(acc_a32[r], _mm256_madd_epi16(acc_a[r], ones16));
      acc_b32[r] = _mm256_add_epi32(acc_b32[r], _mm256_madd_epi16(acc_b[r], ones16));
    }
  }
  for (int r = 0; r < R; ++r) res[r] = hsum_epi32(acc_a32[r]) + hsum_epi32(acc_b32[r]) / 4;
}

// ---- tgemm: packed tiles and the 4 x 3 micro-kernel -----------------------------------------
// Both operands are repacked so that the micro-kernel reads two contiguous streams:
//   activations, tiles of kMR = 4 rows:  xt[((it * S + s) * 4 + i) * 32 + c] = x[4 it + i, 32 s + c]
//   weights, tiles of kNR = 3 rows:      wt[((jt * S + s) * 3 + j) * 32 + c] = q[3 jt + j, 32 s + c]
// with S = 4 * ceil(K / 128) steps of 32 values; rows past M or N and values past K are 0 (an
// activation 0 adds nothing, and a weight q = 0 only feeds outputs that are never stored).
// Contiguous tiles keep the hardware prefetchers on one stream each and never map 7 rows onto
// one L1 set, which row-strided operands did (a stride that is a multiple of 4 KiB).
constexpr int kMR = 4, kNR = 3;  // a 3 x 3 tile with the activations in a register measured the same
constexpr std::int64_t kXTile = kMR * 32, kWTile = kNR * 32;  // bytes per step

// Adds to c[i * 3 + j] (i < 4, j < 3) the sums over `steps` steps of q[j] . x[i]. The 12 int16
// accumulators, the 3 weight vectors (ymm12-14) and one temporary (ymm15) use all 16
// registers; activations are memory operands. In inline assembly because GCC 12 hoists the 12
// maddubs of a step above their adds and spills 8 accumulators (about 2x slower).
void micro_4x3(const std::uint8_t* pw, const std::int8_t* px, std::int64_t steps, std::int32_t* c) {
  const __m256i ones16 = _mm256_set1_epi16(1);
  __m256i acc32[kMR * kNR];
  for (auto& v : acc32) v = _mm256_setzero_si256();
  for (std::int64_t s0 = 0; s0 < steps; s0 += kFlushProducts) {
    const std::int64_t s1 = std::min<std::int64_t>(s0 + kFlushProducts, steps);
    __m256i a00 = _mm256_setzero_si256(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00, a20 = a00,
            a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    for (std::int64_t s = s0; s < s1; ++s, pw += kWTile, px += kXTile) {
#define ONEBIT_ROW(xi, c0, c1, c2)                                                      \
  "vpmaddubsw " xi "(%[px]), %%ymm12, %%ymm15\n\t vpaddw %%ymm15, " c0 ", " c0 "\n\t" \
  "vpmaddubsw " xi "(%[px]), %%ymm13, %%ymm15\n\t vpaddw %%ymm15, " c1 ", " c1 "\n\t" \
  "vpmaddubsw " xi "(%[px]), %%ymm14, %%ymm15\n\t vpaddw %%ymm15, " c2 ", " c2 "\n\t"
      __asm__(
          "vmovdqu (%[pw]), %%ymm12\n\t"
          "vmovdqu 32(%[pw]), %%ymm13\n\t"
          "vmovdqu 64(%[pw]), %%ymm14\n\t"
          ONEBIT_ROW("", "%[a00]", "%[a01]", "%[a02]")
          ONEBIT_ROW("32", "%[a10]", "%[a11]", "%[a12]")
          ONEBIT_ROW("64", "%[a20]", "%[a21]", "%[a22]")
          ONEBIT_ROW("96", "%[a30]", "%[a31]", "%[a32]")
          : [a00] "+x"(a00), [a01] "+x"(a01), [a02] "+x"(a02), [a10] "+x"(a10), [a11] "+x"(a11),
            [a12] "+x"(a12), [a20] "+x"(a20), [a21] "+x"(a21), [a22] "+x"(a22), [a30] "+x"(a30),
            [a31] "+x"(a31), [a32] "+x"(a32)
          : [pw] "r"(pw), [px] "r"(px)
          : "xmm12", "xmm13", "xmm14", "xmm15", "memory");
#undef ONEBIT_ROW
    }
    const __m256i a[kMR * kNR] = {a00, a01, a02, a10, a11, a12, a20, a21, a22, a30, a31, a32};
    for (int t = 0; t < kMR * kNR; ++t) acc32[t] = _mm256_add_epi32(acc32[t], _mm256_madd_epi16(a[t], ones16));
  }
  for (int t = 0; t < kMR * kNR; ++t) c[t] += hsum_epi32(acc32[t]);
}

// Packs m activation rows (stride k) into 4-row tiles of S steps (zero padded) and returns
// their row sums in xsum[0..m).
void pack_activations(const std::int8_t* x, std::int64_t m, std::int64_t k, std::int64_t S, std::int8_t* xt,
                      std::int32_t* xsum) {
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  for (std::int64_t r = 0; r < m; ++r) {
    std::int8_t* dst = xt + (r / kMR) * S * kXTile + (r % kMR) * 32;
    const std::int8_t* src = x + r * k;
    __m256i sum = _mm256_setzero_si256();
    for (std::int64_t s = 0; s * 32 < k; ++s) {
      __m256i v;
      if (k - s * 32 >= 32) {
        v = load(src + s * 32);
      } else {
        alignas(32) std::int8_t tail[32] = {};
        std::memcpy(tail, src + s * 32, static_cast<size_t>(k - s * 32));
        v = load(tail);
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + s * kXTile), v);
      sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, v), ones16));
    }
    xsum[r] = hsum_epi32(sum);
  }
}

// Expands `rows` <= 3 packed weight rows into one 3-row tile of S = 4 * blocks steps (q = t + 1;
// the missing rows of a partial tile are zeroed).
void expand_tile(const std::uint8_t* w, std::int64_t rows, std::int64_t row_bytes, std::int64_t blocks,
                 std::uint8_t* dst) {
  const __m256i mask = _mm256_set1_epi8(3);
  for (std::int64_t j = 0; j < kNR; ++j) {
    for (std::int64_t b = 0; b < blocks; ++b) {
      std::uint8_t* d = dst + 4 * b * kWTile + j * 32;
      if (j >= rows) {
        for (int l = 0; l < 4; ++l) {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + l * kWTile), _mm256_setzero_si256());
        }
        continue;
      }
      const __m256i v = load(w + j * row_bytes + b * kBlockBytes);
      for (int l = 0; l < 4; ++l) {
        // (v >> 2l) & 3 are the weights 128 b + 32 l + c: step 4 b + l of the tile
        const __m256i q = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * l)), mask);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + l * kWTile), q);
      }
    }
  }
}

}  // namespace

void tgemv(const std::uint8_t* w, std::int64_t n, std::int64_t k, float w_scale, const std::int8_t* x,
           const float* x_scale, std::int64_t m, float* out, std::int32_t* acc_out, std::int64_t ldo) {
  const std::int64_t blocks = tq2_blocks(k), row_bytes = tq2_row_bytes(k);
  constexpr int R = 4;  // rows per pass over the activations (2 and 3 measured no better)
  for (std::int64_t i = 0; i < m; ++i) {
    const Scratch<std::int8_t> xp = pad_rows(x + i * k, 1, k, blocks * kTq2BlockValues);
    const std::int32_t xsum = row_sum(xp.data(), blocks * kTq2BlockValues);
    const float mult = w_scale / x_scale[i];
    std::int32_t res[R];
    std::int64_t j = 0;
    for (; j + R <= n; j += R) {
      gemv_rows<R>(w + j * row_bytes, row_bytes, xp.data(), blocks, res);
      for (int r = 0; r < R; ++r) store_result(res[r] - xsum, i, j + r, mult, out, acc_out, ldo);
    }
    for (; j < n; ++j) {
      gemv_rows<1>(w + j * row_bytes, row_bytes, xp.data(), blocks, res);
      store_result(res[0] - xsum, i, j, mult, out, acc_out, ldo);
    }
  }
}

void tgemm(const std::uint8_t* w, std::int64_t n, std::int64_t k, float w_scale, const std::int8_t* x,
           const float* x_scale, std::int64_t m, float* out, std::int32_t* acc_out, std::int64_t ldo) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // empty sums
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) store_result(0, i, j, w_scale / x_scale[i], out, acc_out, ldo);
    return;
  }
  const std::int64_t blocks = tq2_blocks(k), row_bytes = tq2_row_bytes(k), S = 4 * blocks;
  const std::int64_t m_tiles = (m + kMR - 1) / kMR, n_tiles = (n + kNR - 1) / kNR;
  Scratch<std::int8_t> xt(m_tiles * S * kXTile);
  std::vector<std::int32_t> xsum(static_cast<size_t>(m));
  pack_activations(x, m, k, S, xt.data(), xsum.data());
  std::vector<float> mult(static_cast<size_t>(m));
  for (std::int64_t i = 0; i < m; ++i) mult[i] = w_scale / x_scale[i];
  // Blocking: up to ~256 KiB of expanded weight tiles at once (L2-resident), reused by every
  // activation tile; K in chunks of kKC steps so one activation tile (16 KiB) and one weight
  // tile (12 KiB) stay in L1 while the weight tiles of the block go by.
  constexpr std::int64_t kKC = 128;  // 32, 64 and unblocked measured slower, 256 the same
  const std::int64_t block_tiles = std::max<std::int64_t>(1, 256 * 1024 / (S * kWTile));
  Scratch<std::uint8_t> wt(std::min(block_tiles, n_tiles) * S * kWTile);
  std::vector<std::int32_t> ctile(static_cast<size_t>(block_tiles * kMR * kNR));
  for (std::int64_t jt0 = 0; jt0 < n_tiles; jt0 += block_tiles) {
    const std::int64_t tiles = std::min(block_tiles, n_tiles - jt0);
    for (std::int64_t t = 0; t < tiles; ++t) {
      const std::int64_t j = (jt0 + t) * kNR;
      expand_tile(w + j * row_bytes, std::min<std::int64_t>(kNR, n - j), row_bytes, blocks, wt.data() + t * S * kWTile);
    }
    for (std::int64_t it = 0; it < m_tiles; ++it) {
      std::fill(ctile.begin(), ctile.end(), 0);
      const std::int8_t* px = xt.data() + it * S * kXTile;
      for (std::int64_t s0 = 0; s0 < S; s0 += kKC) {
        const std::int64_t len = std::min(kKC, S - s0);
        for (std::int64_t t = 0; t < tiles; ++t) {
          micro_4x3(wt.data() + (t * S + s0) * kWTile, px + s0 * kXTile, len, ctile.data() + t * kMR * kNR);
        }
      }
      for (std::int64_t t = 0; t < tiles; ++t) {
        for (std::int64_t i = it * kMR; i < std::min(m, (it + 1) * kMR); ++i) {
          for (std::int64_t j = (jt0 + t) * kNR; j < std::min(n, (jt0 + t + 1) * kNR); ++j) {
            const std::int32_t q_dot_x = ctile[t * kMR * kNR + (i % kMR) * kNR + j % kNR];
            store_result(q_dot_x - xsum[i], i, j, mult[i], out, acc_out, ldo);
          }
        }
      }
    }
  }
}

}  // namespace onebit::avx2
