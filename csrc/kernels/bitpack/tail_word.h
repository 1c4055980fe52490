// The last, partial word of a packed row (k % 32 != 0), element by element, so that the SIMD
// paths that pack full words with vector loads never read past the end of a row.
#pragma once
#include <cstdint>

#include "onebit/formats.h"

namespace onebit::detail {

// Packs n < 32 values: bit b = (x[b] < 0), padding bits 0 (formats.h).
template <class T>
bword_t tail_word(const T* x, std::int64_t n) {
  bword_t word = 0;
  for (std::int64_t b = 0; b < n; ++b) word |= static_cast<bword_t>(x[b] < T(0)) << b;
  return word;
}

}  // namespace onebit::detail
