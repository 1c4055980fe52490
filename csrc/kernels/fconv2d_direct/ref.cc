// Scalar reference of the direct float conv (groups = 1, weights HWIO): the oracle of avx2.cc.
//   acc[o] = bias[o];  for taps (i, j) in the input: for c: acc[o] = fmaf(x[h, w, c], w[i, j, c, o], acc[o])
//   out[o] = min(max(acc[o], clamp_min), clamp_max)
// Taps falling into the zero padding are skipped (they add 0).
#include <cmath>
#include <vector>

#include "onebit/kernels.h"

namespace onebit::ref {

void fconv2d_direct(const float* in, const float* w_hwio, const float* bias, float clamp_min, float clamp_max,
                    const FConv2dShape& s, std::int64_t row_begin, std::int64_t row_end, float* out) {
  const std::int64_t c_in = s.channels, c_out = s.out_channels;
  std::vector<float> acc(static_cast<size_t>(c_out));
  for (std::int64_t row = row_begin; row < row_end; ++row) {
    const std::int64_t b = row / s.out_h, oh = row % s.out_h;
    for (std::int64_t ow = 0; ow < s.out_w; ++ow) {
      for (std::int64_t o = 0; o < c_out; ++o) acc[o] = bias ? bias[o] : 0.0f;
      for (int i = 0; i < s.kernel_h; ++i) {
        const std::int64_t h = oh * s.stride_h - s.pad_top + static_cast<std::int64_t>(i) * s.dilation_h;
        if (h < 0 || h >= s.in_h) continue;
        for (int j = 0; j < s.kernel_w; ++j) {
          const std::int64_t w = ow * s.stride_w - s.pad_left + static_cast<std::int64_t>(j) * s.dilation_w;
          if (w < 0 || w >= s.in_w) continue;
          const float* px = in + ((b * s.in_h + h) * s.in_w + w) * c_in;
          const float* wt = w_hwio + (static_cast<std::int64_t>(i) * s.kernel_w + j) * c_in * c_out;
          for (std::int64_t c = 0; c < c_in; ++c) {
            for (std::int64_t o = 0; o < c_out; ++o) acc[o] = std::fmaf(px[c], wt[c * c_out + o], acc[o]);
          }
        }
      }
      float* dst = out + ((b * s.out_h + oh) * s.out_w + ow) * c_out;
      for (std::int64_t o = 0; o < c_out; ++o) {
        float y = clamp_min > acc[o] ? clamp_min : acc[o];  // NaN passes through, as in avx2.cc
        dst[o] = clamp_max < y ? clamp_max : y;
      }
    }
  }
}

}  // namespace onebit::ref
