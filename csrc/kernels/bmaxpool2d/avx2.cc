// AVX2 bmaxpool2d: the window AND of ref, 8 packed words (256 channels) per vector; the last
// (words % 8) words of a pixel are done word by word, so no load passes the end of a pixel.
#include <immintrin.h>

#include "onebit/kernels.h"
#include "window.h"

namespace onebit::avx2 {

void bmaxpool2d(const bword_t* in, const BMaxPool2dShape& s, std::int64_t row_begin, std::int64_t row_end,
                bword_t* out) {
  const auto load8 = [](const bword_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
  const auto and8 = [](__m256i a, __m256i b) { return _mm256_and_si256(a, b); };
  detail::for_each_window(in, s, row_begin, row_end, out, [&](const detail::PoolWindow& win, bword_t* dst) {
    std::int64_t c = 0;
    for (; c + 8 <= win.words; c += 8) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c),
                          detail::window_and(win, c, _mm256_set1_epi32(-1), load8, and8));
    }
    for (; c < win.words; ++c) dst[c] = detail::window_and_word(win, c);
  });
}

}  // namespace onebit::avx2
