// AVX2 bitpack / unpack. Full 32-value words use vector compares + movemask; the tail word of a
// row (k % 32 != 0) is packed element by element so no load ever reads past the row.
#include <immintrin.h>

#include <cstring>

#include "onebit/kernels.h"
#include "tail_word.h"

namespace onebit::avx2 {

using detail::tail_word;

void bitpack_f32(const float* x, std::int64_t rows, std::int64_t k, bword_t* out) {
  const std::int64_t words = packed_words(k), full = k / kBitsPerWord;
  const __m256 zero = _mm256_setzero_ps();
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * k;
    bword_t* dst = out + r * words;
    for (std::int64_t w = 0; w < full; ++w) {
      const float* p = row + w * kBitsPerWord;
      // x < 0 (ordered: NaN and -0.0 give 0), 8 lanes -> 8 bits each.
      const bword_t b0 = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + 0), zero, _CMP_LT_OQ));
      const bword_t b1 = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + 8), zero, _CMP_LT_OQ));
      const bword_t b2 = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + 16), zero, _CMP_LT_OQ));
      const bword_t b3 = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + 24), zero, _CMP_LT_OQ));
      dst[w] = b0 | (b1 << 8) | (b2 << 16) | (b3 << 24);
    }
    if (full < words) dst[full] = tail_word(row + full * kBitsPerWord, k - full * kBitsPerWord);
  }
}

void bitpack_i8(const std::int8_t* x, std::int64_t rows, std::int64_t k, bword_t* out) {
  const std::int64_t words = packed_words(k), full = k / kBitsPerWord;
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int8_t* row = x + r * k;
    bword_t* dst = out + r * words;
    for (std::int64_t w = 0; w < full; ++w) {
      // The sign bit of each int8 is exactly "x < 0": movemask collects the 32 sign bits.
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + w * kBitsPerWord));
      dst[w] = static_cast<bword_t>(_mm256_movemask_epi8(v));
    }
    if (full < words) dst[full] = tail_word(row + full * kBitsPerWord, k - full * kBitsPerWord);
  }
}

void unpack_f32(const bword_t* p, std::int64_t rows, std::int64_t k, float* out) {
  const std::int64_t words = packed_words(k), full = k / kBitsPerWord;
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    const bword_t* src = p + r * words;
    float* row = out + r * k;
    for (std::int64_t w = 0; w < full; ++w) {
      for (int q = 0; q < 4; ++q) {
        const __m256i byte = _mm256_set1_epi32(static_cast<int>((src[w] >> (8 * q)) & 0xFFu));
        const __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(byte, lane_bits), lane_bits);
        // bit 1 -> flip the sign of +1.0
        const __m256 v = _mm256_xor_ps(one, _mm256_and_ps(_mm256_castsi256_ps(set), sign));
        _mm256_storeu_ps(row + w * kBitsPerWord + 8 * q, v);
      }
    }
    for (std::int64_t i = full * kBitsPerWord; i < k; ++i) {
      row[i] = ((src[i / kBitsPerWord] >> (i % kBitsPerWord)) & 1u) ? -1.0f : 1.0f;
    }
  }
}

}  // namespace onebit::avx2
