// Scalar reference of channel_affine: per element of a row of `channels` values,
//   y = x*scale[c] + bias[c] (one fmaf when both are given), y = y < 0 ? alpha[c]*y : y,
//   out = min(max(y, clamp_min), clamp_max) with NaN passing through (as AVX max/min with the
//   value as second operand).
#include <cmath>

#include "onebit/kernels.h"

namespace onebit::ref {

void channel_affine(const float* x, const float* scale, const float* bias, const float* alpha, float clamp_min,
                    float clamp_max, std::int64_t rows, std::int64_t channels, float* out) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * channels;
    float* yr = out + r * channels;
    for (std::int64_t c = 0; c < channels; ++c) {
      float y = xr[c];
      if (scale && bias) {
        y = std::fmaf(y, scale[c], bias[c]);
      } else if (scale) {
        y = y * scale[c];
      } else if (bias) {
        y = y + bias[c];
      }
      if (alpha && y < 0.0f) y = alpha[c] * y;
      y = clamp_min > y ? clamp_min : y;
      yr[c] = clamp_max < y ? clamp_max : y;
    }
  }
}

}  // namespace onebit::ref
