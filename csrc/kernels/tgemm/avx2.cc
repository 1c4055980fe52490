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

// A zero-initialized scratch buffer whose data() is 64-byte aligned, so that 32-byte loads
// never straddle two cache lines (a straddling load costs two L1 accesses).
template <class T>
class Scratch {
 public:
  explicit Scratch(std::int64_t count) : storage_(static_cast<size_t>(count) * sizeof(T) + 64, 0) {
    const auto addr = reinterpret_cast<std::uintptr_t>(storage_.data());
    data_ = reinterpret_cast<T*>(storage_.data() + ((64 - addr % 64) % 64));
  }
  Scratch(Scratch&&) = default;  // the vector's buffer moves with it, so data_ stays valid
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* data() { return data_; }
  const T* data() const { return data_; }

 private:
  std::vector<unsigned char> storage_;
  T* data_;
};

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
// int8 is <= 2*8*128 = 2048; 2 per block, flushed every 4 blocks: <= 16384 < 32767.
template <int R>
void gemv_rows(const std::uint8_t* w, std::int64_t row_bytes, const std::int8_t* xp, std::int64_t blocks,
               std::int32_t* res) {
  const __m256i lo = _mm256_set1_epi8(3), hi = _mm256_set1_epi8(12), ones16 = _mm256_set1_epi16(1);
  __m256i acc_a32[R], acc_b32[R];
  for (int r = 0; r < R; ++r) acc_a32[r] = acc_b32[r] = _mm256_setzero_si256();
  constexpr std::int64_t kFlushBlocks = 4;
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

// ---- tgemm micro-kernel: MR activation rows x NR expanded weight rows, `steps` x 32 bytes ----
// Weights are bytes q = t + 1 (row stride ldw), activations int8 (row stride ldx); c[i*NR+j]
// receives sum_k q[j, k] * x[i, k]. The int16 accumulators of one chunk of <= kFlushProducts
// steps (MR*NR of them, 12 for 4 x 3) stay in registers with the NR weight vectors; the int32
// sums live in memory and are touched once per chunk.
template <int MR, int NR>
inline __attribute__((always_inline)) void micro_chunk(const std::uint8_t* w, std::int64_t ldw, const std::int8_t* x,
                                                       std::int64_t ldx, std::int64_t s0, std::int64_t s1,
                                                       __m256i* acc32) {
  __m256i acc16[MR * NR];
#pragma GCC unroll 16
  for (int a = 0; a < MR * NR; ++a) acc16[a] = _mm256_setzero_si256();
  for (std::int64_t s = s0; s < s1; ++s) {
    __m256i wv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) wv[j] = load(w + j * ldw + 32 * s);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const std::int8_t* xi = x + i * ldx + 32 * s;
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc16[i * NR + j] = _mm256_add_epi16(acc16[i * NR + j], _mm256_maddubs_epi16(wv[j], load(xi)));
    }
  }
  const __m256i ones16 = _mm256_set1_epi16(1);
#pragma GCC unroll 16
  for (int a = 0; a < MR * NR; ++a) acc32[a] = _mm256_add_epi32(acc32[a], _mm256_madd_epi16(acc16[a], ones16));
}

// The 4 x 3 chunk in inline assembly: GCC 12 hoists all 12 maddubs of a step before their adds
// and spills 8 of the 12 int16 accumulators (~2x slower). Here the 12 accumulators, the 3
// weight vectors (ymm12-14) and one temporary (ymm15) use all 16 registers; activations are
// memory operands (12 L1 loads + 3 weight loads per 12 maddubs).
template <>
inline __attribute__((always_inline)) void micro_chunk<4, 3>(const std::uint8_t* w, std::int64_t ldw,
                                                             const std::int8_t* x, std::int64_t ldx,
                                                             std::int64_t s0, std::int64_t s1, __m256i* acc32) {
  __m256i a00 = _mm256_setzero_si256(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00, a20 = a00,
          a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
  for (std::int64_t s = s0; s < s1; ++s) {
    const std::uint8_t* pw = w + 32 * s;
    const std::int8_t* px = x + 32 * s;
#define ONEBIT_ROW(xi, c0, c1, c2)                                        \
  "vpmaddubsw " xi ", %%ymm12, %%ymm15\n\t vpaddw %%ymm15, " c0 ", " c0 "\n\t" \
  "vpmaddubsw " xi ", %%ymm13, %%ymm15\n\t vpaddw %%ymm15, " c1 ", " c1 "\n\t" \
  "vpmaddubsw " xi ", %%ymm14, %%ymm15\n\t vpaddw %%ymm15, " c2 ", " c2 "\n\t"
    const std::int8_t* px2 = px + 2 * ldx;
    __asm__(
        "vmovdqu (%[pw]), %%ymm12\n\t"
        "vmovdqu (%[pw],%[ldw],1), %%ymm13\n\t"
        "vmovdqu (%[pw],%[ldw],2), %%ymm14\n\t"
        ONEBIT_ROW("(%[px])", "%[a00]", "%[a01]", "%[a02]")
        ONEBIT_ROW("(%[px],%[ldx],1)", "%[a10]", "%[a11]", "%[a12]")
        ONEBIT_ROW("(%[px2])", "%[a20]", "%[a21]", "%[a22]")
        ONEBIT_ROW("(%[px2],%[ldx],1)", "%[a30]", "%[a31]", "%[a32]")
        : [a00] "+x"(a00), [a01] "+x"(a01), [a02] "+x"(a02), [a10] "+x"(a10), [a11] "+x"(a11), [a12] "+x"(a12),
          [a20] "+x"(a20), [a21] "+x"(a21), [a22] "+x"(a22), [a30] "+x"(a30), [a31] "+x"(a31), [a32] "+x"(a32)
        : [pw] "r"(pw), [ldw] "r"(ldw), [px] "r"(px), [px2] "r"(px2), [ldx] "r"(ldx)
        : "xmm12", "xmm13", "xmm14", "xmm15", "memory");
#undef ONEBIT_ROW
  }
  const __m256i ones16 = _mm256_set1_epi16(1);
  const __m256i a[12] = {a00, a01, a02, a10, a11, a12, a20, a21, a22, a30, a31, a32};
  for (int i = 0; i < 12; ++i) acc32[i] = _mm256_add_epi32(acc32[i], _mm256_madd_epi16(a[i], ones16));
}

// The 3 x 3 chunk in inline assembly: 9 accumulators, 3 weight vectors (ymm12-14), the
// activation vector (ymm11) and a temporary (ymm15): 6 loads per 9 maddubs.
template <>
inline __attribute__((always_inline)) void micro_chunk<3, 3>(const std::uint8_t* w, std::int64_t ldw,
                                                             const std::int8_t* x, std::int64_t ldx,
                                                             std::int64_t s0, std::int64_t s1, __m256i* acc32) {
  __m256i a00 = _mm256_setzero_si256(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00, a20 = a00,
          a21 = a00, a22 = a00;
  for (std::int64_t s = s0; s < s1; ++s) {
    const std::uint8_t* pw = w + 32 * s;
    const std::int8_t* px = x + 32 * s;
#define ONEBIT_ROW(xi, c0, c1, c2)                                        \
  "vmovdqu " xi ", %%ymm11\n\t"                                          \
  "vpmaddubsw %%ymm11, %%ymm12, %%ymm15\n\t vpaddw %%ymm15, " c0 ", " c0 "\n\t" \
  "vpmaddubsw %%ymm11, %%ymm13, %%ymm15\n\t vpaddw %%ymm15, " c1 ", " c1 "\n\t" \
  "vpmaddubsw %%ymm11, %%ymm14, %%ymm15\n\t vpaddw %%ymm15, " c2 ", " c2 "\n\t"
    __asm__(
        "vmovdqu (%[pw]), %%ymm12\n\t"
        "vmovdqu (%[pw],%[ldw],1), %%ymm13\n\t"
        "vmovdqu (%[pw],%[ldw],2), %%ymm14\n\t"
        ONEBIT_ROW("(%[px])", "%[a00]", "%[a01]", "%[a02]")
        ONEBIT_ROW("(%[px],%[ldx],1)", "%[a10]", "%[a11]", "%[a12]")
        ONEBIT_ROW("(%[px],%[ldx],2)", "%[a20]", "%[a21]", "%[a22]")
        : [a00] "+x"(a00), [a01] "+x"(a01), [a02] "+x"(a02), [a10] "+x"(a10), [a11] "+x"(a11), [a12] "+x"(a12),
          [a20] "+x"(a20), [a21] "+x"(a21), [a22] "+x"(a22)
        : [pw] "r"(pw), [ldw] "r"(ldw), [px] "r"(px), [ldx] "r"(ldx)
        : "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory");
#undef ONEBIT_ROW
  }
  const __m256i ones16 = _mm256_set1_epi16(1);
  const __m256i a[9] = {a00, a01, a02, a10, a11, a12, a20, a21, a22};
  for (int i = 0; i < 9; ++i) acc32[i] = _mm256_add_epi32(acc32[i], _mm256_madd_epi16(a[i], ones16));
}

template <int MR, int NR>
void micro(const std::uint8_t* w, std::int64_t ldw, const std::int8_t* x, std::int64_t ldx, std::int64_t s_begin,
           std::int64_t s_end, std::int32_t* c) {
  alignas(32) __m256i acc32[MR * NR];
  for (int a = 0; a < MR * NR; ++a) acc32[a] = _mm256_setzero_si256();
  for (std::int64_t s0 = s_begin; s0 < s_end; s0 += kFlushProducts) {
    micro_chunk<MR, NR>(w, ldw, x, ldx, s0, std::min<std::int64_t>(s0 + kFlushProducts, s_end), acc32);
  }
  for (int a = 0; a < MR * NR; ++a) c[a] += hsum_epi32(acc32[a]);
}

// Tile 4 x 3 (measured against 3 x 3 here: ~100 vs ~90 G MAC/s at batch 512).
constexpr int kMR = 4, kNR = 3;
using MicroFn = void (*)(const std::uint8_t*, std::int64_t, const std::int8_t*, std::int64_t, std::int64_t,
                         std::int64_t, std::int32_t*);
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
  const std::int64_t blocks = tq2_blocks(k), row_bytes = tq2_row_bytes(k);
  const std::int64_t k32 = (k + 31) / 32 * 32, steps = k32 / 32;
  // Row strides of the expanded weights and of the activation copy: 64 bytes more than a
  // multiple of 128, so the 7 rows a micro-kernel streams never share one L1 set (a stride
  // that is a multiple of 4 KiB would put them all in the same set).
  const std::int64_t ldw = blocks * kTq2BlockValues + 64, ldx = k32 + 64;
  const Scratch<std::int8_t> xpad = pad_rows(x, m, k, ldx);
  const std::int8_t* xs = xpad.data();
  std::vector<std::int32_t> xsum(static_cast<size_t>(m));
  std::vector<float> mult(static_cast<size_t>(m));
  for (std::int64_t i = 0; i < m; ++i) {
    xsum[i] = row_sum(xs + i * ldx, k32);
    mult[i] = w_scale / x_scale[i];
  }
  // Blocking: nb weight rows expanded at once (~256 KiB, L2-resident, a multiple of kNR);
  // K in chunks of kKC steps (4 KiB per row) so the kMR activation rows and kNR weight rows a
  // micro-kernel reads (7 x 4 KiB) stay in L1 while the tile loops over the chunk.
  constexpr std::int64_t kKC = 128;  // 64 / 256 / unblocked measured 2-10% slower
  const std::int64_t nb_max = std::max<std::int64_t>(kNR, (256 * 1024 / ldw) / kNR * kNR);
  Scratch<std::uint8_t> wexp(std::min(nb_max, n) * ldw);
  std::vector<std::int32_t> ctile(static_cast<size_t>(kMR * nb_max));
  for (std::int64_t j0 = 0; j0 < n; j0 += nb_max) {
    const std::int64_t nb = std::min(nb_max, n - j0);
    for (std::int64_t r = 0; r < nb; ++r) expand_row(w + (j0 + r) * row_bytes, blocks, wexp.data() + r * ldw);
    for (std::int64_t i0 = 0; i0 < m; i0 += kMR) {
      const int mr = static_cast<int>(std::min<std::int64_t>(kMR, m - i0));
      std::fill(ctile.begin(), ctile.end(), 0);
      for (std::int64_t s0 = 0; s0 < steps; s0 += kKC) {
        const std::int64_t s1 = std::min(s0 + kKC, steps);
        for (std::int64_t jj = 0; jj < nb; jj += kNR) {
          const int nr = static_cast<int>(std::min<std::int64_t>(kNR, nb - jj));
          micro_table(mr, nr)(wexp.data() + jj * ldw, ldw, xs + i0 * ldx, ldx, s0, s1, ctile.data() + jj * kMR);
        }
      }
      for (std::int64_t jj = 0; jj < nb; jj += kNR) {
        const int nr = static_cast<int>(std::min<std::int64_t>(kNR, nb - jj));
        const std::int32_t* c = ctile.data() + jj * kMR;  // [mr][nr] of this tile
        for (int i = 0; i < mr; ++i)
          for (int j = 0; j < nr; ++j)
            store_result(c[i * nr + j] - xsum[i0 + i], i0 + i, j0 + jj + j, mult[i0 + i], out, acc_out, ldo);
      }
    }
  }
}

}  // namespace onebit::avx2
