// AVX-512 (F + BW) bitpack / unpack. Compares write mask registers directly; partial tail
// words use masked loads, so no load reads past the row and no scalar loop is needed.
#include <immintrin.h>

#include "onebit/kernels.h"

namespace onebit::avx512 {

void bitpack_f32(const float* x, std::int64_t rows, std::int64_t k, bword_t* out) {
  const std::int64_t words = packed_words(k);
  const __m512 zero = _mm512_setzero_ps();
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * k;
    bword_t* dst = out + r * words;
    for (std::int64_t w = 0; w < words; ++w) {
      const std::int64_t base = w * kBitsPerWord, left = k - base;
      // Lanes beyond the row are masked off: they load 0.0, which packs to bit 0 (padding).
      const __mmask16 m0 = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      const __mmask16 m1 = left >= 32 ? __mmask16(0xFFFF)
                           : left <= 16 ? __mmask16(0) : __mmask16((1u << (left - 16)) - 1);
      const __m512 a = _mm512_maskz_loadu_ps(m0, row + base);
      const __m512 b = _mm512_maskz_loadu_ps(m1, row + base + 16);
      const bword_t lo = _mm512_cmp_ps_mask(a, zero, _CMP_LT_OQ);
      const bword_t hi = _mm512_cmp_ps_mask(b, zero, _CMP_LT_OQ);
      dst[w] = lo | (hi << 16);
    }
  }
}

void bitpack_i8(const std::int8_t* x, std::int64_t rows, std::int64_t k, bword_t* out) {
  const std::int64_t words = packed_words(k);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int8_t* row = x + r * k;
    bword_t* dst = out + r * words;
    for (std::int64_t w = 0; w < words; ++w) {
      const std::int64_t base = w * kBitsPerWord, left = k - base;
      const __mmask32 m = left >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((1u << left) - 1);
      const __m256i v = _mm256_maskz_loadu_epi8(m, row + base);
      dst[w] = static_cast<bword_t>(_mm256_movepi8_mask(v));  // sign bits == (x < 0)
    }
  }
}

void unpack_f32(const bword_t* p, std::int64_t rows, std::int64_t k, float* out) {
  const std::int64_t words = packed_words(k);
  const __m512 one = _mm512_set1_ps(1.0f), minus_one = _mm512_set1_ps(-1.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    const bword_t* src = p + r * words;
    float* row = out + r * k;
    for (std::int64_t w = 0; w < words; ++w) {
      const std::int64_t base = w * kBitsPerWord, left = k - base;
      const __mmask16 m0 = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      const __mmask16 m1 = left >= 32 ? __mmask16(0xFFFF)
                           : left <= 16 ? __mmask16(0) : __mmask16((1u << (left - 16)) - 1);
      const bword_t word = src[w];
      _mm512_mask_storeu_ps(row + base, m0, _mm512_mask_blend_ps(__mmask16(word), one, minus_one));
      _mm512_mask_storeu_ps(row + base + 16, m1, _mm512_mask_blend_ps(__mmask16(word >> 16), one, minus_one));
    }
  }
}

}  // namespace onebit::avx512
