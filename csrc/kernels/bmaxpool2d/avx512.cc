// AVX-512 bmaxpool2d: the window AND of ref, 16 packed words (512 channels) per vector. The
// last (words % 16) words of a pixel go as 256-bit steps: 8 words with plain loads (a masked
// 512-bit step was ~1.4x slower at 8 words), then 1..7 words with masked loads and a masked
// store (masked-off words are neither read nor written), so no access passes the end of a
// pixel and there is no scalar tail.
// Memory-bound; against avx2.cc (same run, 1 thread, 3x3 stride 2, 1 image): 112x112x64 37 vs
// 48 us, 56x56x96 14 vs 22 us (masked vectors instead of word-by-word tails), 56x56x256 and
// 28x28x512 within noise (12 vs 12 us, 8.2 vs 8.7 us).
#include <immintrin.h>

#include <algorithm>

#include "onebit/kernels.h"

namespace onebit::avx512 {

void bmaxpool2d(const bword_t* in, const BMaxPool2dShape& s, std::int64_t row_begin, std::int64_t row_end,
                bword_t* out) {
  const std::int64_t words = packed_words(s.channels);
  const bword_t tail_mask = last_word_mask(s.channels);
  for (std::int64_t row = row_begin; row < row_end; ++row) {
    const std::int64_t b = row / s.out_h, oh = row % s.out_h;
    const std::int64_t h0 = oh * s.stride_h - s.pad_top;
    const std::int64_t hb = std::max<std::int64_t>(h0, 0), he = std::min<std::int64_t>(h0 + s.kernel_h, s.in_h);
    for (std::int64_t ow = 0; ow < s.out_w; ++ow) {
      const std::int64_t w0 = ow * s.stride_w - s.pad_left;
      const std::int64_t wb = std::max<std::int64_t>(w0, 0), we = std::min<std::int64_t>(w0 + s.kernel_w, s.in_w);
      bword_t* dst = out + ((b * s.out_h + oh) * s.out_w + ow) * words;
      std::int64_t c = 0;
      for (; c + 16 <= words; c += 16) {
        __m512i acc = _mm512_set1_epi32(-1);
        for (std::int64_t h = hb; h < he; ++h) {
          const bword_t* src = in + ((b * s.in_h + h) * s.in_w) * words + c;
          for (std::int64_t w = wb; w < we; ++w) {
            acc = _mm512_and_si512(acc, _mm512_loadu_si512(src + w * words));
          }
        }
        _mm512_storeu_si512(dst + c, acc);
      }
      // 1..15 words left: 8 unmasked, then 1..7 masked (masked loads cost more than plain ones)
      if (c + 8 <= words) {
        __m256i acc = _mm256_set1_epi32(-1);
        for (std::int64_t h = hb; h < he; ++h) {
          const bword_t* src = in + ((b * s.in_h + h) * s.in_w) * words + c;
          for (std::int64_t w = wb; w < we; ++w) {
            acc = _mm256_and_si256(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + w * words)));
          }
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c), acc);
        c += 8;
      }
      if (c < words) {
        const __mmask8 mask = static_cast<__mmask8>((1u << (words - c)) - 1);
        __m256i acc = _mm256_set1_epi32(-1);
        for (std::int64_t h = hb; h < he; ++h) {
          const bword_t* src = in + ((b * s.in_h + h) * s.in_w) * words + c;
          for (std::int64_t w = wb; w < we; ++w) {
            acc = _mm256_and_si256(acc, _mm256_maskz_loadu_epi32(mask, src + w * words));
          }
        }
        _mm256_mask_storeu_epi32(dst + c, mask, acc);
      }
      dst[words - 1] &= tail_mask;  // keep the output padding bits 0
    }
  }
}

}  // namespace onebit::avx512
