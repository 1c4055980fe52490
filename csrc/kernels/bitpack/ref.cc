// Scalar reference for bitpack / unpack: the oracle every SIMD path is compared against.
// Bit order and sign convention: onebit/formats.h.
#include "onebit/kernels.h"

namespace onebit::ref {
namespace {

template <class T>
void pack_rows(const T* x, std::int64_t rows, std::int64_t k, bword_t* out) {
  const std::int64_t words = packed_words(k);
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * k;
    bword_t* dst = out + r * words;
    for (std::int64_t w = 0; w < words; ++w) {
      bword_t word = 0;
      const std::int64_t base = w * kBitsPerWord;
      for (int b = 0; b < kBitsPerWord && base + b < k; ++b) {
        word |= static_cast<bword_t>(row[base + b] < T(0)) << b;
      }
      dst[w] = word;
    }
  }
}

}  // namespace

void bitpack_f32(const float* x, std::int64_t rows, std::int64_t k, bword_t* out) {
  pack_rows(x, rows, k, out);
}

void bitpack_i8(const std::int8_t* x, std::int64_t rows, std::int64_t k, bword_t* out) {
  pack_rows(x, rows, k, out);
}

void unpack_f32(const bword_t* p, std::int64_t rows, std::int64_t k, float* out) {
  const std::int64_t words = packed_words(k);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t i = 0; i < k; ++i) {
      const bword_t bit = (p[r * words + i / kBitsPerWord] >> (i % kBitsPerWord)) & 1u;
      out[r * k + i] = bit ? -1.0f : 1.0f;
    }
  }
}

}  // namespace onebit::ref
