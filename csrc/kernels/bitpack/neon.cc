// NEON bitpack / unpack (formats.h bit order). Full 32-value words: lane compares, lane masks
// weighted by their bit, and a horizontal add (the bits are distinct, so the add is an OR);
// the tail word of a row (k % 32 != 0) is packed element by element so no load passes the row.
#include <arm_neon.h>

#include "onebit/kernels.h"
#include "tail_word.h"

namespace onebit::neon {

using detail::tail_word;

void bitpack_f32(const float* x, std::int64_t rows, std::int64_t k, bword_t* out) {
  const std::int64_t words = packed_words(k), full = k / kBitsPerWord;
  const uint32x4_t weight = {1u, 2u, 4u, 8u};
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * k;
    bword_t* dst = out + r * words;
    for (std::int64_t w = 0; w < full; ++w) {
      const float* p = row + w * kBitsPerWord;
      uint32x4_t bits = vdupq_n_u32(0);
      for (int q = 0; q < 8; ++q) {  // x < 0 (ordered: NaN and -0.0 give 0)
        const uint32x4_t neg = vcltq_f32(vld1q_f32(p + 4 * q), vdupq_n_f32(0.0f));
        bits = vorrq_u32(bits, vandq_u32(neg, vshlq_u32(weight, vdupq_n_s32(4 * q))));
      }
      dst[w] = vaddvq_u32(bits);
    }
    if (full < words) dst[full] = tail_word(row + full * kBitsPerWord, k - full * kBitsPerWord);
  }
}

void bitpack_i8(const std::int8_t* x, std::int64_t rows, std::int64_t k, bword_t* out) {
  const std::int64_t words = packed_words(k), full = k / kBitsPerWord;
  const uint8x16_t weight = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int8_t* row = x + r * k;
    bword_t* dst = out + r * words;
    for (std::int64_t w = 0; w < full; ++w) {
      const std::int8_t* p = row + w * kBitsPerWord;
      const uint8x16_t m0 = vandq_u8(vcltzq_s8(vld1q_s8(p)), weight);
      const uint8x16_t m1 = vandq_u8(vcltzq_s8(vld1q_s8(p + 16)), weight);
      // three pairwise adds: byte q of the result sums the 8 weighted masks of bits 8q..8q+7
      uint8x16_t s = vpaddq_u8(m0, m1);
      s = vpaddq_u8(s, s);
      s = vpaddq_u8(s, s);
      dst[w] = vgetq_lane_u32(vreinterpretq_u32_u8(s), 0);
    }
    if (full < words) dst[full] = tail_word(row + full * kBitsPerWord, k - full * kBitsPerWord);
  }
}

void unpack_f32(const bword_t* p, std::int64_t rows, std::int64_t k, float* out) {
  const std::int64_t words = packed_words(k), full = k / kBitsPerWord;
  const uint32x4_t weight = {1u, 2u, 4u, 8u};
  const uint32x4_t one = vreinterpretq_u32_f32(vdupq_n_f32(1.0f)), sign = vdupq_n_u32(0x80000000u);
  for (std::int64_t r = 0; r < rows; ++r) {
    const bword_t* src = p + r * words;
    float* row = out + r * k;
    for (std::int64_t w = 0; w < full; ++w) {
      const uint32x4_t word = vdupq_n_u32(src[w]);
      for (int q = 0; q < 8; ++q) {
        const uint32x4_t set = vtstq_u32(word, vshlq_u32(weight, vdupq_n_s32(4 * q)));
        // bit 1 -> flip the sign of +1.0
        vst1q_f32(row + w * kBitsPerWord + 4 * q, vreinterpretq_f32_u32(veorq_u32(one, vandq_u32(set, sign))));
      }
    }
    for (std::int64_t i = full * kBitsPerWord; i < k; ++i) {
      row[i] = ((src[i / kBitsPerWord] >> (i % kBitsPerWord)) & 1u) ? -1.0f : 1.0f;
    }
  }
}

}  // namespace onebit::neon
