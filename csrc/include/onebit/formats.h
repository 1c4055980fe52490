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

namespace onebit {

// ---- ternary weights (BitNet b1.58), block format "tq2" ------------------------------------
// A row of K ternary weights t in {-1, 0, +1} is stored as ceil(K / 128) blocks of 32 bytes,
// 2 bits per weight (exactly 2.0 bits/weight; plus one float32 scale per tensor):
//   * field value q = t + 1 in {0, 1, 2} (3 is never written);
//   * byte j (0..31) of block b holds the weights k = 128*b + 32*l + j for l = 0..3,
//     weight l in bits [2l, 2l+1]  (the interleaving of llama.cpp's TQ2_0 `qs`, 128-value blocks):
//     one 32-byte load v expands to 128 weights, (v >> 2l) & 3 giving the 32 consecutive
//     weights 32l..32l+31 in natural order (tgemv needs a single shift, see tgemm/avx2.cc);
//   * the tail of the last block (k >= K) holds q = 1, i.e. t = 0, so it adds nothing.
// Rows are contiguous: packed tensor [N, tq2_row_bytes(K)] uint8 for a weight matrix [N, K].
// The per-tensor scale is gamma = mean|W| (bitnet eq. 3): W ~= gamma * t.
// Hugging Face BitNet checkpoints (uint8 [N/4, K], 4 row blocks per byte) use another
// interleaving; the converter repacks them into this one.
constexpr std::int64_t kTq2BlockValues = 128;
struct tq2_block {
  std::uint8_t qs[kTq2BlockValues / 4];  // 4 fields of 2 bits per byte
};
static_assert(sizeof(tq2_block) == 32, "tq2_block: 128 weights at 2 bits = 32 bytes");

constexpr std::int64_t tq2_blocks(std::int64_t k) { return (k + kTq2BlockValues - 1) / kTq2BlockValues; }
constexpr std::int64_t tq2_row_bytes(std::int64_t k) {
  return tq2_blocks(k) * static_cast<std::int64_t>(sizeof(tq2_block));
}

// ---- int8 activations, per-token (row) absmax scale (BitNet b1.58 / BitNet eq.) -------------
//   s[m]     = 127 / max(max_k |x[m, k]|, 1e-5)          (the "x_scale" of every ternary op)
//   x_q[m,k] = clamp(round_half_even(x[m, k] * s[m]), -127, 127)      (float32 arithmetic)
// and a ternary product is rescaled as  y[m, n] = acc[m, n] * (gamma / s[m]),
//   acc[m, n] = sum_k t[n, k] * x_q[m, k]  (exact int32),
// which is bitnet's  y = acc * gamma * max|x| / 127.
constexpr float kQuantI8Max = 127.0f;
constexpr float kQuantI8Eps = 1e-5f;

}  // namespace onebit
