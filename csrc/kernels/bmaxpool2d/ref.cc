// Scalar reference for bmaxpool2d (binary max-pool on bitpacked NHWC): the oracle.
// Output word = AND of the window's words (bit 1 = -1, so the AND is 1 only if every input is
// -1, i.e. max of signs = sign of max); padded positions are skipped (window.h).
#include "onebit/kernels.h"
#include "window.h"

namespace onebit::ref {

void bmaxpool2d(const bword_t* in, const BMaxPool2dShape& s, std::int64_t row_begin, std::int64_t row_end,
                bword_t* out) {
  detail::for_each_window(in, s, row_begin, row_end, out, [](const detail::PoolWindow& win, bword_t* dst) {
    for (std::int64_t c = 0; c < win.words; ++c) dst[c] = detail::window_and_word(win, c);
  });
}

}  // namespace onebit::ref
