// NEON bmaxpool2d: the window AND of ref, 4 packed words (128 channels) per vector; the last
// (words % 4) words of a pixel are done word by word, so no load passes the end of a pixel.
#include <arm_neon.h>

#include "onebit/kernels.h"
#include "window.h"

namespace onebit::neon {

void bmaxpool2d(const bword_t* in, const BMaxPool2dShape& s, std::int64_t row_begin, std::int64_t row_end,
                bword_t* out) {
  const auto load4 = [](const bword_t* p) { return vld1q_u32(p); };
  const auto and4 = [](uint32x4_t a, uint32x4_t b) { return vandq_u32(a, b); };
  detail::for_each_window(in, s, row_begin, row_end, out, [&](const detail::PoolWindow& win, bword_t* dst) {
    std::int64_t c = 0;
    for (; c + 4 <= win.words; c += 4) vst1q_u32(dst + c, detail::window_and(win, c, vdupq_n_u32(~0u), load4, and4));
    for (; c < win.words; ++c) dst[c] = detail::window_and_word(win, c);
  });
}

}  // namespace onebit::neon
