// The pooling-window walk shared by every bmaxpool2d path: which input pixels an output pixel
// covers (padded positions skipped) and where its words are. A path only supplies how it ANDs
// the words of one channel range over a window (window_and with its vector type).
#pragma once
#include <algorithm>
#include <cstdint>

#include "onebit/kernels.h"

namespace onebit::detail {

// The in-range input pixels of one output pixel's window: rows x cols pixels starting at `first`.
struct PoolWindow {
  const bword_t* first;     // word 0 of the top-left in-range input pixel
  std::int64_t rows, cols;  // in-range extent (>= 1: pads < kernel size)
  std::int64_t row_stride;  // words between two input rows
  std::int64_t words;       // words per pixel
  const bword_t* at(std::int64_t i, std::int64_t j, std::int64_t c) const {
    return first + i * row_stride + j * words + c;
  }
};

// acc AND-ed with load(word c of every pixel of the window); V is a word or a vector of words.
template <class V, class Load, class And>
inline V window_and(const PoolWindow& win, std::int64_t c, V acc, Load load, And op) {
  for (std::int64_t i = 0; i < win.rows; ++i) {
    for (std::int64_t j = 0; j < win.cols; ++j) acc = op(acc, load(win.at(i, j, c)));
  }
  return acc;
}

// The AND of word c over the window, one word at a time (ref, and the tails of the SIMD paths).
inline bword_t window_and_word(const PoolWindow& win, std::int64_t c) {
  return window_and(
      win, c, ~bword_t{0}, [](const bword_t* p) { return *p; }, [](bword_t a, bword_t b) { return a & b; });
}

// Calls f(window, dst) for every output pixel of output rows [row_begin, row_end) of the
// batch * out_h rows (dst: its packed_words(channels) output words), then clears the output
// padding bits (channels >= s.channels) of dst.
template <class F>
inline void for_each_window(const bword_t* in, const BMaxPool2dShape& s, std::int64_t row_begin,
                            std::int64_t row_end, bword_t* out, F&& f) {
  const std::int64_t words = packed_words(s.channels);
  const bword_t tail_mask = last_word_mask(s.channels);
  for (std::int64_t row = row_begin; row < row_end; ++row) {
    const std::int64_t b = row / s.out_h, oh = row % s.out_h;
    const std::int64_t h0 = oh * s.stride_h - s.pad_top;
    const std::int64_t hb = std::max<std::int64_t>(h0, 0), he = std::min<std::int64_t>(h0 + s.kernel_h, s.in_h);
    for (std::int64_t ow = 0; ow < s.out_w; ++ow) {
      const std::int64_t w0 = ow * s.stride_w - s.pad_left;
      const std::int64_t wb = std::max<std::int64_t>(w0, 0), we = std::min<std::int64_t>(w0 + s.kernel_w, s.in_w);
      const PoolWindow win{in + ((b * s.in_h + hb) * s.in_w + wb) * words, he - hb, we - wb, s.in_w * words, words};
      bword_t* dst = out + ((b * s.out_h + oh) * s.out_w + ow) * words;
      f(win, dst);
      dst[words - 1] &= tail_mask;  // keep the output padding bits 0
    }
  }
}

}  // namespace onebit::detail
