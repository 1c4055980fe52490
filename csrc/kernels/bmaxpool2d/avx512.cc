// AVX-512 bmaxpool2d: the window AND of ref, 16 packed words (512 channels) per vector. The
// last (words % 16) words of a pixel go as 256-bit steps: 8 words with plain loads (a masked
// 512-bit step was ~1.4x slower at 8 words), then 1..7 words with masked loads and a masked
// store (masked-off words are neither read nor written), so no access passes the end of a
// pixel and there is no scalar tail.
// Memory-bound; against avx2.cc (same run, 1 thread, 3x3 stride 2, 1 image): 112x112x64 37 vs
// 48 us, 56x56x96 14 vs 22 us (masked vectors instead of word-by-word tails), 56x56x256 and
// 28x28x512 within noise (12 vs 12 us, 8.2 vs 8.7 us).
#include <immintrin.h>

#include "onebit/kernels.h"
#include "window.h"

namespace onebit::avx512 {

void bmaxpool2d(const bword_t* in, const BMaxPool2dShape& s, std::int64_t row_begin, std::int64_t row_end,
                bword_t* out) {
  const auto load16 = [](const bword_t* p) { return _mm512_loadu_si512(p); };
  const auto and16 = [](__m512i a, __m512i b) { return _mm512_and_si512(a, b); };
  const auto load8 = [](const bword_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
  const auto and8 = [](__m256i a, __m256i b) { return _mm256_and_si256(a, b); };
  detail::for_each_window(in, s, row_begin, row_end, out, [&](const detail::PoolWindow& win, bword_t* dst) {
    const std::int64_t words = win.words;
    std::int64_t c = 0;
    for (; c + 16 <= words; c += 16) {
      _mm512_storeu_si512(dst + c, detail::window_and(win, c, _mm512_set1_epi32(-1), load16, and16));
    }
    // 1..15 words left: 8 unmasked, then 1..7 masked (masked loads cost more than plain ones)
    if (c + 8 <= words) {
      const __m256i acc = detail::window_and(win, c, _mm256_set1_epi32(-1), load8, and8);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c), acc);
      c += 8;
    }
    if (c < words) {
      const __mmask8 mask = static_cast<__mmask8>((1u << (words - c)) - 1);
      const auto load_masked = [mask](const bword_t* p) { return _mm256_maskz_loadu_epi32(mask, p); };
      _mm256_mask_storeu_epi32(dst + c, mask, detail::window_and(win, c, _mm256_set1_epi32(-1), load_masked, and8));
    }
  });
}

}  // namespace onebit::avx512
