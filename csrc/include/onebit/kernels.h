// One signature per op. Implementations live in csrc/kernels/<op>/{ref,avx2,avx512}.cc under
// namespaces onebit::ref / onebit::avx2 / onebit::avx512 and are registered in
// csrc/kernels/<op>/register.cc. Callers go through the dispatch table (onebit/dispatch.h).
// Kernels are single-threaded over the row range they are given; threading is done by the
// caller with onebit::parallel_for, so results never depend on the thread count.
#pragma once
#include <cstdint>

#include "onebit/formats.h"

namespace onebit {

// ---- bitpack / unpack ---------------------------------------------------------------------
// Packs `rows` rows of `k` values (contiguous, row length k) into rows of packed_words(k)
// words (formats.h bit order; padding bits 0).
using bitpack_f32_fn = void (*)(const float* x, std::int64_t rows, std::int64_t k, bword_t* out);
using bitpack_i8_fn = void (*)(const std::int8_t* x, std::int64_t rows, std::int64_t k, bword_t* out);
// Expands `rows` packed rows back to +1.0 / -1.0 (bit 0 / bit 1); padding bits are ignored.
using unpack_f32_fn = void (*)(const bword_t* p, std::int64_t rows, std::int64_t k, float* out);

#define ONEBIT_DECLARE_BITPACK(ns)                                                   \
  namespace ns {                                                                     \
  void bitpack_f32(const float* x, std::int64_t rows, std::int64_t k, bword_t* out); \
  void bitpack_i8(const std::int8_t* x, std::int64_t rows, std::int64_t k, bword_t* out); \
  void unpack_f32(const bword_t* p, std::int64_t rows, std::int64_t k, float* out);  \
  }
ONEBIT_DECLARE_BITPACK(ref)
ONEBIT_DECLARE_BITPACK(avx2)
ONEBIT_DECLARE_BITPACK(avx512)
#undef ONEBIT_DECLARE_BITPACK

}  // namespace onebit

namespace onebit {

// ---- quantize_i8: per-token int8 activations (formats.h, "int8 activations") ---------------
// For each of `rows` rows of k floats: scale[r] = 127 / max(max|x|, 1e-5) and
// q[r, k] = clamp(round_half_even(x * scale[r]), -127, 127).
using quantize_i8_fn = void (*)(const float* x, std::int64_t rows, std::int64_t k, std::int8_t* q,
                                float* scale);

// ---- tgemv / tgemm: ternary weights (tq2) x int8 activations ---------------------------------
// w: n packed rows of tq2_row_bytes(k) bytes (formats.h); x: m rows of k int8 (row stride k);
// for i < m, j < n:   acc = sum_k t[j, k] * x[i, k]   (exact int32)
//   if out != nullptr:  out[i * ldo + j] = float(acc) * (w_scale / x_scale[i])
//   if acc_out != nullptr: acc_out[i * ldo + j] = acc
// `tgemv` streams the packed weights once per activation row (decode, m = 1); `tgemm` expands
// blocks of weight rows to bytes once and reuses them for every activation row (prefill).
// Threads split n (the caller offsets w, out and acc_out).
using tgemm_fn = void (*)(const std::uint8_t* w, std::int64_t n, std::int64_t k, float w_scale,
                          const std::int8_t* x, const float* x_scale, std::int64_t m, float* out,
                          std::int32_t* acc_out, std::int64_t ldo);

#define ONEBIT_DECLARE_TERNARY(ns)                                                             \
  namespace ns {                                                                               \
  void quantize_i8(const float* x, std::int64_t rows, std::int64_t k, std::int8_t* q, float* scale); \
  void tgemv(const std::uint8_t* w, std::int64_t n, std::int64_t k, float w_scale,             \
             const std::int8_t* x, const float* x_scale, std::int64_t m, float* out,           \
             std::int32_t* acc_out, std::int64_t ldo);                                         \
  void tgemm(const std::uint8_t* w, std::int64_t n, std::int64_t k, float w_scale,             \
             const std::int8_t* x, const float* x_scale, std::int64_t m, float* out,           \
             std::int32_t* acc_out, std::int64_t ldo);                                         \
  }
ONEBIT_DECLARE_TERNARY(ref)
ONEBIT_DECLARE_TERNARY(avx2)
#undef ONEBIT_DECLARE_TERNARY

// ---- bmaxpool2d: binary max-pool on bitpacked NHWC (LCE LceBMaxPool2d) -----------------------
// max over a window of signs = sign of the max: the output is +1 (bit 0) if any input in the
// window is +1, i.e. the output word is the AND of the window's words (bit 1 = -1).
// Padded positions are skipped (neither +1 nor -1); pads < kernel size, so no window is empty.
// Output padding bits (channels >= c) are 0.
struct BMaxPool2dShape {
  std::int64_t batch, in_h, in_w, channels;  // input [batch, in_h, in_w, packed_words(channels)]
  std::int64_t out_h, out_w;                 // output [batch, out_h, out_w, packed_words(channels)]
  int kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
};
// Computes output rows [row_begin, row_end) of the batch * out_h rows.
using bmaxpool2d_fn = void (*)(const bword_t* in, const BMaxPool2dShape& s, std::int64_t row_begin,
                               std::int64_t row_end, bword_t* out);

#define ONEBIT_DECLARE_BMAXPOOL2D(ns)                                                          \
  namespace ns {                                                                               \
  void bmaxpool2d(const bword_t* in, const BMaxPool2dShape& s, std::int64_t row_begin,          \
                  std::int64_t row_end, bword_t* out);                                         \
  }
ONEBIT_DECLARE_BMAXPOOL2D(ref)
ONEBIT_DECLARE_BMAXPOOL2D(avx2)
#undef ONEBIT_DECLARE_BMAXPOOL2D

}  // namespace onebit
