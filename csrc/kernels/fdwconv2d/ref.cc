// Scalar reference of the depthwise float conv (groups = C = O, weights HWC): the oracle of avx2.cc.
//   acc = bias[c];  for taps (i, j) inside the input: acc = fmaf(x[h, w, c], w[i, j, c], acc)
//   out = min(max(acc, clamp_min), clamp_max)
// Taps falling into the zero padding are skipped (they add 0).
#include <cmath>

#include "onebit/kernels.h"

namespace onebit::ref {

void fdwconv2d(const float* in, const float* w_hwc, const float* bias, float clamp_min, float clamp_max,
               const FConv2dShape& s, std::int64_t row_begin, std::int64_t row_end, float* out) {
  const std::int64_t ch = s.channels;
  for (std::int64_t row = row_begin; row < row_end; ++row) {
    const std::int64_t b = row / s.out_h, oh = row % s.out_h;
    for (std::int64_t ow = 0; ow < s.out_w; ++ow) {
      float* dst = out + ((b * s.out_h + oh) * s.out_w + ow) * ch;
      for (std::int64_t c = 0; c < ch; ++c) {
        float acc = bias ? bias[c] : 0.0f;
        for (int i = 0; i < s.kernel_h; ++i) {
          const std::int64_t h = oh * s.stride_h - s.pad_top + static_cast<std::int64_t>(i) * s.dilation_h;
          if (h < 0 || h >= s.in_h) continue;
          for (int j = 0; j < s.kernel_w; ++j) {
            const std::int64_t w = ow * s.stride_w - s.pad_left + static_cast<std::int64_t>(j) * s.dilation_w;
            if (w < 0 || w >= s.in_w) continue;
            acc = std::fmaf(in[((b * s.in_h + h) * s.in_w + w) * ch + c],
                            w_hwc[(static_cast<std::int64_t>(i) * s.kernel_w + j) * ch + c], acc);
          }
        }
        const float y = clamp_min > acc ? clamp_min : acc;  // NaN passes through, as in avx2.cc
        dst[c] = clamp_max < y ? clamp_max : y;
      }
    }
  }
}

}  // namespace onebit::ref
