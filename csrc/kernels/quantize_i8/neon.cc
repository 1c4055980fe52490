// NEON quantize_i8 (per-token absmax int8, formats.h), bit-identical to ref: the same float32
// operations (|x| max, 127 / max(amax, eps), x * s, round half to even with FRINTN, clamp to
// +-127 written as ref's std::max / std::min comparisons).
#include <arm_neon.h>

#include <algorithm>
#include <cmath>

#include "onebit/kernels.h"

namespace onebit::neon {

void quantize_i8(const float* x, std::int64_t rows, std::int64_t k, std::int8_t* q, float* scale) {
  const float32x4_t lo = vdupq_n_f32(-kQuantI8Max), hi = vdupq_n_f32(kQuantI8Max);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * k;
    std::int8_t* dst = q + r * k;
    float32x4_t m4 = vdupq_n_f32(0.0f);
    std::int64_t i = 0;
    for (; i + 4 <= k; i += 4) m4 = vmaxnmq_f32(m4, vabsq_f32(vld1q_f32(row + i)));
    float amax = vmaxnmvq_f32(m4);
    for (; i < k; ++i) amax = std::max(amax, std::fabs(row[i]));
    const float s = kQuantI8Max / std::max(amax, kQuantI8Eps);
    scale[r] = s;
    const float32x4_t sv = vdupq_n_f32(s);
    for (i = 0; i + 8 <= k; i += 8) {
      int32x4_t v[2];
      for (int h = 0; h < 2; ++h) {
        float32x4_t y = vrndnq_f32(vmulq_f32(vld1q_f32(row + i + 4 * h), sv));
        y = vbslq_f32(vcltq_f32(lo, y), y, lo);  // std::max(-127, y)
        y = vbslq_f32(vcltq_f32(y, hi), y, hi);  // std::min(127, y)
        v[h] = vcvtq_s32_f32(y);
      }
      const int16x8_t v16 = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
      vst1_s8(dst + i, vmovn_s16(v16));
    }
    for (; i < k; ++i) {
      const float v = std::nearbyint(row[i] * s);
      dst[i] = static_cast<std::int8_t>(std::min(kQuantI8Max, std::max(-kQuantI8Max, v)));
    }
  }
}

}  // namespace onebit::neon
