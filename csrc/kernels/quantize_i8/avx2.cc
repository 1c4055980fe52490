// AVX2 quantize_i8: absmax with vmaxps over |x|, then 32 values per step: multiply, clamp to
// [-127, 127], vcvtps2dq (rounds half to even, the default MXCSR mode, like the ref's
// nearbyint) and pack to int8. Clamping before or after rounding gives the same integer because
// the bounds are integers, so the result equals ref bit-exactly; the scale is the same float
// expression as in ref. NaN as in ref too: vmaxps returns its second operand when either is
// NaN, so max(|x|, m) skips a NaN like std::max(m, |x|) and max(v, -127) maps NaN to -127.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "onebit/kernels.h"

namespace onebit::avx2 {

void quantize_i8(const float* x, std::int64_t rows, std::int64_t k, std::int8_t* q, float* scale) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i lane_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const std::int64_t k8 = k / 8 * 8, k32 = k / 32 * 32;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * k;
    std::int8_t* dst = q + r * k;
    __m256 vmax = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < k8; i += 8) {
      vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(row + i), abs_mask), vmax);  // NaN: keeps vmax
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vmax);
    float amax = 0.0f;
    for (float v : lanes) amax = std::max(amax, v);
    for (std::int64_t i = k8; i < k; ++i) amax = std::max(amax, std::fabs(row[i]));
    const float s = kQuantI8Max / std::max(amax, kQuantI8Eps);
    scale[r] = s;
    const __m256 vs = _mm256_set1_ps(s), hi = _mm256_set1_ps(kQuantI8Max), lo = _mm256_set1_ps(-kQuantI8Max);
    auto convert = [&](std::int64_t i) {
      const __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(row + i), vs), lo), hi);
      return _mm256_cvtps_epi32(v);
    };
    for (std::int64_t i = 0; i < k32; i += 32) {
      // |values| <= 127, so the saturating packs are exact.
      const __m256i a = _mm256_packs_epi32(convert(i), convert(i + 8));        // lanes: a0 b0 | a1 b1
      const __m256i b = _mm256_packs_epi32(convert(i + 16), convert(i + 24));  // lanes: c0 d0 | c1 d1
      const __m256i p = _mm256_packs_epi16(a, b);  // dwords: a0 b0 c0 d0 | a1 b1 c1 d1
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_permutevar8x32_epi32(p, lane_order));
    }
    for (std::int64_t i = k32; i < k; ++i) {
      const float v = std::nearbyint(row[i] * s);
      dst[i] = static_cast<std::int8_t>(std::min(kQuantI8Max, std::max(-kQuantI8Max, v)));
    }
  }
}

}  // namespace onebit::avx2
