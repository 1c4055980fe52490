// NEON bmaxpool2d: the window AND of ref, 4 packed words (128 channels) per vector; the last
// (words % 4) words of a pixel are done word by word, so no load passes the end of a pixel.
#include <arm_neon.h>

#include <algorithm>

#include "onebit/kernels.h"

namespace onebit::neon {

void bmaxpool2d(const bword_t* in, const BMaxPool2dShape& s, std::int64_t row_begin, std::int64_t row_end,
                bword_t* out) {
  const std::int64_t words = packed_words(s.channels), full = words / 4 * 4;
  const bword_t tail_mask = last_word_mask(s.channels);
  for (std::int64_t row = row_begin; row < row_end; ++row) {
    const std::int64_t b = row / s.out_h, oh = row % s.out_h;
    const std::int64_t h0 = oh * s.stride_h - s.pad_top;
    const std::int64_t hb = std::max<std::int64_t>(h0, 0), he = std::min<std::int64_t>(h0 + s.kernel_h, s.in_h);
    for (std::int64_t ow = 0; ow < s.out_w; ++ow) {
      const std::int64_t w0 = ow * s.stride_w - s.pad_left;
      const std::int64_t wb = std::max<std::int64_t>(w0, 0), we = std::min<std::int64_t>(w0 + s.kernel_w, s.in_w);
      bword_t* dst = out + ((b * s.out_h + oh) * s.out_w + ow) * words;
      for (std::int64_t c = 0; c < full; c += 4) {
        uint32x4_t acc = vdupq_n_u32(~0u);
        for (std::int64_t h = hb; h < he; ++h) {
          const bword_t* src = in + ((b * s.in_h + h) * s.in_w) * words + c;
          for (std::int64_t w = wb; w < we; ++w) {
            acc = vandq_u32(acc, vld1q_u32(src + w * words));
          }
        }
        vst1q_u32(dst + c, acc);
      }
      for (std::int64_t c = full; c < words; ++c) {
        bword_t acc = ~bword_t{0};
        for (std::int64_t h = hb; h < he; ++h) {
          for (std::int64_t w = wb; w < we; ++w) acc &= in[((b * s.in_h + h) * s.in_w + w) * words + c];
        }
        dst[c] = acc;
      }
      dst[words - 1] &= tail_mask;  // keep the output padding bits 0
    }
  }
}

}  // namespace onebit::neon
