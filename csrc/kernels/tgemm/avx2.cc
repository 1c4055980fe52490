// AVX2 tgemv / tgemm: tq2 ternary weights (formats.h) x int8 activations, exact int32 sums.
//
// Arithmetic (llama.cpp TQ2_0 trick): the packed field is q = t + 1 in {0, 1, 2}, an unsigned
// byte, so _mm256_maddubs_epi16(q, x) multiplies it with the signed activation without any sign
// handling, and
//     sum_k t[k] * x[k] = sum_k q[k] * x[k] - sum_k x[k]          (row sum of x, once per row).
// Numeric invariants:
//   * maddubs never saturates: each int16 lane is q0*x0 + q1*x1 with |.| <= 2*2*128 = 512;
//   * maddubs results are summed in int16 lanes for at most 32 products per lane
//     (|.| <= 32*512 = 16384 < 32767), then widened with _mm256_madd_epi16(., 1) into int32;
//   * int32 sums are exact for K < 2^24 (|acc| <= 128 * K), the ref's integer result exactly;
//   * the float output is float(acc) * (w_scale / x_scale[i]), the same two float operations as
//     in ref (a product, not contracted into an FMA), so float outputs are also bit-identical.
// Padding: fields past K hold t = 0 and the activations are read from a zero-padded copy
// wherever K is not a multiple of the step, so no load ever reads past a caller's buffer.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "onebit/kernels.h"

namespace onebit::avx2 {
namespace {

constexpr int kBlockBytes = static_cast<int>(sizeof(tq2_block));  // 32 bytes = 128 weights
constexpr int kFlushProducts = 32;  // maddubs results summed per int16 lane before widening

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

// Copies m rows of k int8 (stride k) into rows of `padded` >= k bytes, zero tail.
std::vector<std::int8_t> pad_rows(const std::int8_t* x, std::int64_t m, std::int64_t k, std::int64_t padded) {
  std::vector<std::int8_t> out(static_cast<size_t>(m * padded), 0);
  for (std::int64_t i = 0; i < m; ++i) std::memcpy(out.data() + i * padded, x + i * k, static_cast<size_t>(k));
  return out;
}

inline void store_result(std::int32_t acc, std::int64_t i, std::int64_t j, float mult, float* out,
                         std::int32_t* acc_out, std::int64_t ldo) {
  if (out) out[i * ldo + j] = static_cast<float>(acc) * mult;
  if (acc_out) acc_out[i * ldo + j] = acc;
}

// ---- tgemv: R packed weight rows . one zero-padded activation row, streaming the weights -----
// Per 32-byte block: one load gives 128 weights; (v >> 2l) & 3 are the 32 weights k = 32l + j.
template <int R>
void gemv_rows(const std::uint8_t* w, std::int64_t row_bytes, const std::int8_t* xp, std::int64_t blocks,
               std::int32_t* res) {
  const __m256i mask = _mm256_set1_epi8(3), ones16 = _mm256_set1_epi16(1);
  __m256i acc32[R];
  for (int r = 0; r < R; ++r) acc32[r] = _mm256_setzero_si256();
  // 4 maddubs per block and lane: flush every kFlushProducts / 4 blocks.
  constexpr std::int64_t kFlushBlocks = kFlushProducts / 4;
  for (std::int64_t b0 = 0; b0 < blocks; b0 += kFlushBlocks) {
    const std::int64_t b1 = std::min(b0 + kFlushBlocks, blocks);
    __m256i acc16[R];
    for (int r = 0; r < R; ++r) acc16[r] = _mm256_setzero_si256();
    for (std::int64_t b = b0; b < b1; ++b) {
      const std::int8_t* xb = xp + b * kTq2BlockValues;
      const __m256i x0 = load(xb), x1 = load(xb + 32), x2 = load(xb + 64), x3 = load(xb + 96);
      for (int r = 0; r < R; ++r) {
        const __m256i v = load(w + r * row_bytes + b * kBlockBytes);
        __m256i s = _mm256_maddubs_epi16(_mm256_and_si256(v, mask), x0);
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 2), mask), x1));
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), mask), x2));
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 6), mask), x3));
        acc16[r] = _mm256_add_epi16(acc16[r], s);
      }
    }
    for (int r = 0; r < R; ++r) acc32[r] = _mm256_add_epi32(acc32[r], _mm256_madd_epi16(acc16[r], ones16));
  }
  for (int r = 0; r < R; ++r) res[r] = hsum_epi32(acc32[r]);
}

// ---- tgemm micro-kernel: MR activation rows x NR expanded weight rows, `steps` x 32 bytes ----
// Weights are bytes q = t + 1 (row stride ldw), activations int8 (row stride ldx); c[i*NR+j]
// receives sum_k q[j, k] * x[i, k]. MR*NR int16 accumulators + NR weight vectors + 1 temporary
// fit the 16 ymm registers for 4 x 3.
template <int MR, int NR>
void micro(const std::uint8_t* w, std::int64_t ldw, const std::int8_t* x, std::int64_t ldx, std::int64_t steps,
           std::int32_t* c) {
  const __m256i ones16 = _mm256_set1_epi16(1);
  __m256i acc32[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc32[i][j] = _mm256_setzero_si256();
  for (std::int64_t s0 = 0; s0 < steps; s0 += kFlushProducts) {
    const std::int64_t s1 = std::min<std::int64_t>(s0 + kFlushProducts, steps);
    __m256i acc16[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc16[i][j] = _mm256_setzero_si256();
    for (std::int64_t s = s0; s < s1; ++s) {
      __m256i wv[NR];
      for (int j = 0; j < NR; ++j) wv[j] = load(w + j * ldw + 32 * s);
      for (int i = 0; i < MR; ++i) {
        const __m256i xv = load(x + i * ldx + 32 * s);
        for (int j = 0; j < NR; ++j) acc16[i][j] = _mm256_add_epi16(acc16[i][j], _mm256_maddubs_epi16(wv[j], xv));
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc32[i][j] = _mm256_add_epi32(acc32[i][j], _mm256_madd_epi16(acc16[i][j], ones16));
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) c[i * NR + j] = hsum_epi32(acc32[i][j]);
}

constexpr int kMR = 4, kNR = 3;
using MicroFn = void (*)(const std::uint8_t*, std::int64_t, const std::int8_t*, std::int64_t, std::int64_t,
                         std::int32_t*);
template <int MR>
constexpr MicroFn micro_for(int nr) {
  return nr == 1 ? &micro<MR, 1> : nr == 2 ? &micro<MR, 2> : &micro<MR, 3>;
}
MicroFn micro_table(int mr, int nr) {
  switch (mr) {
    case 1: return micro_for<1>(nr);
    case 2: return micro_for<2>(nr);
    case 3: return micro_for<3>(nr);
    default: return micro_for<4>(nr);
  }
}

// Expands one packed row to bytes q = t + 1 in natural k order (blocks * 128 bytes).
void expand_row(const std::uint8_t* src, std::int64_t blocks, std::uint8_t* dst) {
  const __m256i mask = _mm256_set1_epi8(3);
  for (std::int64_t b = 0; b < blocks; ++b) {
    const __m256i v = load(src + b * kBlockBytes);
    std::uint8_t* d = dst + b * kTq2BlockValues;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), _mm256_and_si256(v, mask));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 32), _mm256_and_si256(_mm256_srli_epi16(v, 2), mask));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 64), _mm256_and_si256(_mm256_srli_epi16(v, 4), mask));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 96), _mm256_and_si256(_mm256_srli_epi16(v, 6), mask));
  }
}

}  // namespace

void tgemv(const std::uint8_t* w, std::int64_t n, std::int64_t k, float w_scale, const std::int8_t* x,
           const float* x_scale, std::int64_t m, float* out, std::int32_t* acc_out, std::int64_t ldo) {
  const std::int64_t blocks = tq2_blocks(k), row_bytes = tq2_row_bytes(k);
  constexpr int R = 4;
  for (std::int64_t i = 0; i < m; ++i) {
    const std::vector<std::int8_t> xp = pad_rows(x + i * k, 1, k, blocks * kTq2BlockValues);
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
  const std::int64_t blocks = tq2_blocks(k), row_bytes = tq2_row_bytes(k);
  const std::int64_t kp = blocks * kTq2BlockValues;  // expanded row stride
  const std::int64_t k32 = (k + 31) / 32 * 32, steps = k32 / 32;
  // Activations: used in place when K is a multiple of 32, else from a zero-padded copy.
  std::vector<std::int8_t> xpad;
  const std::int8_t* xs = x;
  std::int64_t ldx = k;
  if (k32 != k) {
    xpad = pad_rows(x, m, k, k32);
    xs = xpad.data();
    ldx = k32;
  }
  std::vector<std::int32_t> xsum(static_cast<size_t>(m));
  std::vector<float> mult(static_cast<size_t>(m));
  for (std::int64_t i = 0; i < m; ++i) {
    xsum[i] = row_sum(xs + i * ldx, k32);
    mult[i] = w_scale / x_scale[i];
  }
  // Block of weight rows expanded at once: ~256 KiB (L2-resident), a multiple of kNR rows.
  const std::int64_t nb_max = std::max<std::int64_t>(kNR, (256 * 1024 / kp) / kNR * kNR);
  std::vector<std::uint8_t> wexp(static_cast<size_t>(std::min(nb_max, n) * kp));
  std::int32_t c[kMR * kNR];
  for (std::int64_t j0 = 0; j0 < n; j0 += nb_max) {
    const std::int64_t nb = std::min(nb_max, n - j0);
    for (std::int64_t r = 0; r < nb; ++r) expand_row(w + (j0 + r) * row_bytes, blocks, wexp.data() + r * kp);
    for (std::int64_t i0 = 0; i0 < m; i0 += kMR) {
      const int mr = static_cast<int>(std::min<std::int64_t>(kMR, m - i0));
      for (std::int64_t jj = 0; jj < nb; jj += kNR) {
        const int nr = static_cast<int>(std::min<std::int64_t>(kNR, nb - jj));
        micro_table(mr, nr)(wexp.data() + jj * kp, kp, xs + i0 * ldx, ldx, steps, c);
        for (int i = 0; i < mr; ++i)
          for (int j = 0; j < nr; ++j)
            store_result(c[i * nr + j] - xsum[i0 + i], i0 + i, j0 + jj + j, mult[i0 + i], out, acc_out, ldo);
      }
    }
  }
}

}  // namespace onebit::avx2
