// AVX-512 quantize_i8: absmax with vmaxps over |x| (16 lanes), then 16 values per step:
// multiply, clamp to [-127, 127], vcvtps2dq (rounds half to even, the default MXCSR mode, like
// the ref's nearbyint) and vpmovsdb (saturating, exact here) to int8. Tails are masked loads /
// stores, so no scalar loop and nothing read or written past the row.
// Bit-identical to ref, NaN and infinity included: vmaxps returns its second operand when
// either is NaN, so max(|x|, m) skips a NaN like the ref's std::max(m, |x|), and
// max(v, -127) turns a NaN product into -127 like std::max(-127.f, NaN). Clamping before or
// after rounding gives the same integer because the bounds are integers; the scale is the same
// float expression as in ref.
#include <immintrin.h>

#include <algorithm>

#include "onebit/kernels.h"

namespace onebit::avx512 {

void quantize_i8(const float* x, std::int64_t rows, std::int64_t k, std::int8_t* q, float* scale) {
  const __m512 hi = _mm512_set1_ps(kQuantI8Max), lo = _mm512_set1_ps(-kQuantI8Max);
  auto live = [k](std::int64_t i) {
    const std::int64_t left = k - i;
    return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
  };
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * k;
    std::int8_t* dst = q + r * k;
    __m512 vmax = _mm512_setzero_ps();
    for (std::int64_t i = 0; i < k; i += 16) {  // masked-off lanes load 0.0, which changes no max
      vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(live(i), row + i)), vmax);
    }
    const float amax = _mm512_reduce_max_ps(vmax);  // no NaN left in vmax
    const float s = kQuantI8Max / std::max(amax, kQuantI8Eps);
    scale[r] = s;
    const __m512 vs = _mm512_set1_ps(s);
    for (std::int64_t i = 0; i < k; i += 16) {
      const __mmask16 m = live(i);
      const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, row + i), vs), lo), hi);
      _mm512_mask_cvtsepi32_storeu_epi8(dst + i, m, _mm512_cvtps_epi32(v));
    }
  }
}

}  // namespace onebit::avx512
