// Scalar reference for quantize_i8 (per-token absmax int8, formats.h): the oracle.
#include <algorithm>
#include <cmath>

#include "onebit/kernels.h"

namespace onebit::ref {

void quantize_i8(const float* x, std::int64_t rows, std::int64_t k, std::int8_t* q, float* scale) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * k;
    float amax = 0.0f;
    for (std::int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(row[i]));
    // s = 127 / max(amax, eps); every step in float32, as numpy / torch float32 would do it.
    const float s = kQuantI8Max / std::max(amax, kQuantI8Eps);
    scale[r] = s;
    for (std::int64_t i = 0; i < k; ++i) {
      // nearbyint rounds half to even in the default rounding mode (like torch.round, np.rint).
      const float v = std::nearbyint(row[i] * s);
      q[r * k + i] = static_cast<std::int8_t>(std::min(kQuantI8Max, std::max(-kQuantI8Max, v)));
    }
  }
}

}  // namespace onebit::ref
