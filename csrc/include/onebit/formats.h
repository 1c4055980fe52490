// onebit packed formats: declared once, used by every kernel, the converter and the runtime.
//
// Bitpacked activations and binary weights (same convention as Larq Compute Engine):
//   * channels-last (NHWC / [rows, K]); bits are packed along the last axis (channels);
//   * words are uint32, little-endian bit order: value k lives in word k / 32, bit k % 32;
//   * x >= 0  -> +1 -> bit 0;   x < 0 -> -1 -> bit 1   (so -0.0 and NaN pack to bit 0);
//   * the padding bits of the last word are 0 (i.e. +1), and the true depth K is always
//     carried next to the data, never inferred from the word count;
//   * binary dot product of K values:  sum_k a_k * b_k = K - 2 * popcount(a XOR b).
#pragma once
#include <cstddef>
#include <cstdint>

namespace onebit {

using bword_t = std::uint32_t;                 // one word of packed bits
constexpr int kBitsPerWord = 32;
static_assert(sizeof(bword_t) * 8 == kBitsPerWord, "bword_t must hold kBitsPerWord bits");

// Number of words holding k packed values.
constexpr std::int64_t packed_words(std::int64_t k) {
  return (k + kBitsPerWord - 1) / kBitsPerWord;
}

// Mask of the valid bits of the last word of a row of k values (all ones if k % 32 == 0).
constexpr bword_t last_word_mask(std::int64_t k) {
  return (k % kBitsPerWord) == 0 ? ~bword_t{0} : ((bword_t{1} << (k % kBitsPerWord)) - 1);
}

}  // namespace onebit
