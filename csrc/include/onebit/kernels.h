// One signature per op. Implementations live in csrc/kernels/<op>/{ref,avx2,avx512}.cc under
// namespaces onebit::ref / onebit::avx2 / onebit::avx512 and are registered in
// csrc/kernels/<op>/register.cc. Callers go through the dispatch table (onebit/dispatch.h).
// Kernels are single-threaded over the row range they are given; threading is done by the
// caller with onebit::parallel_for, so results never depend on the thread count.
#pragma once
#include <cstdint>
#include <vector>

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
ONEBIT_DECLARE_BITPACK(neon)
#undef ONEBIT_DECLARE_BITPACK

// ---- binary GEMM / convolution with fused output transforms (LCE section 3.2) -------------
// Accumulator of a binary dot product of K values (formats.h):  acc = K - 2 * popcount(a XOR b),
// an exact int32 in [-K, K] (K < 2^24 so that float(acc) is exact too).
// Output transform applied to acc of output column n (channel), fused in the kernel:
//   int32     : out = acc (raw accumulator; for tests and for callers that post-process)
//   f32       : y = fmaf(multiplier[n], float(acc), bias[n]) (one rounding), then
//               out = min(max(y, clamp_min), clamp_max)   (ReLU: clamp_min = 0)
//   i8        : y as for f32 (clamped), z = min(max(y, -128), 127), out = nearbyint(z) with the
//               default rounding mode: round half to even (2.5 -> 2, -0.5 -> -0, 3.5 -> 4)
//   bitpacked : bit n of the output row (formats.h order) = (acc < threshold[n]) != flip[n].
//               This equals "fmaf(multiplier[n], acc, bias[n]) < 0" (sign of the exact value
//               m*acc + b, since a correctly rounded result has the sign of the exact one) when
//               threshold/flip come from onebit.kernels.binary_output_thresholds:
//                 m > 0:  m*acc + b < 0  <=>  acc < -b/m      <=>  acc < ceil(-b/m)           flip 0
//                 m < 0:  m*acc + b < 0  <=>  acc > -b/m      <=>  !(acc < floor(-b/m) + 1)   flip 1
//                 m = 0:  constant b < 0: threshold INT32_MIN (acc < it never holds), flip = b<0
//               (thresholds clipped to the int32 range, which |acc| <= K < 2^31 - 1 never reaches).
//               Padding bits of the last output word are written 0.
enum class BOutType : std::int32_t { int32 = 0, f32 = 1, i8 = 2, bitpacked = 3 };

struct BOutputTransform {
  BOutType type = BOutType::int32;
  const float* multiplier = nullptr;       // [n_total] (f32, i8)
  const float* bias = nullptr;             // [n_total] (f32, i8)
  float clamp_min = 0.0f, clamp_max = 0.0f;  // (f32, i8); use +-infinity for "no clamp"
  const std::int32_t* threshold = nullptr; // [n_total] (bitpacked)
  const std::uint8_t* flip = nullptr;      // [n_total] 0 or 1 (bitpacked)
};

// One binary GEMM call: rows [0, m) of A against rows [0, n) of B (both packed along K, kw words
// per row read), writing output columns [col0, col0 + n) of rows [0, m) of `out`.
struct BgemmArgs {
  const bword_t* a = nullptr;  // row r at a + r * lda
  std::int64_t lda = 0;        // in words
  const bword_t* b = nullptr;  // row j at b + j * ldb (output column col0 + j)
  std::int64_t ldb = 0;
  std::int64_t m = 0, n = 0;
  std::int64_t kw = 0;         // words per row taking part (padding bits must be 0 in A and B)
  std::int64_t k = 0;          // true depth K of acc = K - 2 popcount
  // Optional (nullptr = none): per row r, nullptr or an int32 array indexed by output column,
  // subtracted from acc before the transform (the zero-padding correction of bconv2d).
  const std::int32_t* const* row_correction = nullptr;
  const BOutputTransform* transform = nullptr;  // parameters indexed by output column
  std::int64_t col0 = 0;
  // Output row r starts at out + r * ldo elements (int32/f32/i8) or words (bitpacked);
  // column c is element c (bit c for bitpacked). Bitpacked writes only its own bits, so
  // callers that split columns across threads must split at multiples of 32.
  void* out = nullptr;
  std::int64_t ldo = 0;
};
using bgemm_fn = void (*)(const BgemmArgs& args);

// Geometry of a binary 2D convolution. Input NHWC bitpacked along C: [batch, in_h, in_w, in_cw],
// in_cw = packed_words(channels). Weights OHWI bitpacked along the input channels of a group:
// [out_c, kh, kw, cw_g], cw_g = packed_words(channels / groups). Output NHWC [batch, out_h,
// out_w, out_c] (out_c elements, or packed_words(out_c) words when bitpacked).
// groups > 1 requires (channels / groups) % 32 == 0 (word-aligned groups, as LCE).
struct BConv2dGeometry {
  std::int64_t batch = 0, in_h = 0, in_w = 0, channels = 0, in_cw = 0;
  std::int64_t out_c = 0, kh = 1, kw = 1;
  std::int64_t stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  std::int64_t pad_top = 0, pad_left = 0;  // bottom/right padding is implied by out_h/out_w
  std::int64_t out_h = 0, out_w = 0;
  std::int64_t groups = 1;
  bool zero_padding = false;  // false: one-padding (padded taps are +1, bit 0)
};

// Zero-padding correction (see bconv2d/zero_padding.cc): per output position, nullptr
// (no padded tap) or an int32[out_c] to subtract from the one-padded accumulator.
struct BConv2dZeroPad {
  std::int64_t n_v = 0, n_h = 0;
  std::vector<std::int64_t> v_id, h_id;  // [out_h], [out_w] -> interval id, -1 = interior
  std::vector<std::int32_t> table;       // [n_v + 1][n_h + 1][out_c]
  const std::int32_t* at(std::int64_t oh, std::int64_t ow) const;
};
BConv2dZeroPad bconv2d_zero_pad_plan(const BConv2dGeometry& g, const bword_t* weights);

struct BConv2dArgs {
  BConv2dGeometry g;
  const bword_t* input = nullptr;
  const bword_t* weights = nullptr;
  const BOutputTransform* transform = nullptr;
  void* out = nullptr;                      // row p = output position (n, oh, ow) flattened
  std::int64_t ldo = 0;                     // elements (or words) per output position
  const BConv2dZeroPad* zero_pad = nullptr; // required by fast paths when g.zero_padding
};
// Computes output positions [pos_begin, pos_end) of the flattened (batch, out_h, out_w) grid.
using bconv2d_fn = void (*)(const BConv2dArgs& args, std::int64_t pos_begin, std::int64_t pos_end);

// im2col + BGEMM driver shared by the fast paths (bconv2d/im2col.cc): blocks of output
// positions are gathered into rows of kh*kw*cw_g words (padded taps = 0 words = +1) and
// multiplied with the weights by `gemm`; 1x1 / stride 1 / no padding reads the input directly.
void bconv2d_im2col(const BConv2dArgs& args, std::int64_t pos_begin, std::int64_t pos_end, bgemm_fn gemm);

#define ONEBIT_DECLARE_BINARY(ns)                                                          \
  namespace ns {                                                                           \
  void bgemm(const BgemmArgs& args);                                                       \
  void bconv2d(const BConv2dArgs& args, std::int64_t pos_begin, std::int64_t pos_end);     \
  }
ONEBIT_DECLARE_BINARY(ref)
ONEBIT_DECLARE_BINARY(avx2)
ONEBIT_DECLARE_BINARY(avx512)
ONEBIT_DECLARE_BINARY(neon)
#undef ONEBIT_DECLARE_BINARY

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
ONEBIT_DECLARE_TERNARY(avx512)
ONEBIT_DECLARE_TERNARY(neon)
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
ONEBIT_DECLARE_BMAXPOOL2D(avx512)
ONEBIT_DECLARE_BMAXPOOL2D(neon)
#undef ONEBIT_DECLARE_BMAXPOOL2D

// ---- float32 ops of the runtime (NHWC): direct conv, depthwise conv, per-channel affine ------
// Shared geometry of the float convolutions: zero padding, output
//   OH = (in_h + pad_top + pad_bottom - dilation_h*(kernel_h-1) - 1) / stride_h + 1 (same for W);
// input [batch, in_h, in_w, channels], output [batch, out_h, out_w, out_channels].
// Both kernels fuse the epilogue y = min(max(acc + bias[o], clamp_min), clamp_max) (bias may
// be null; +-infinity for no clamp) and compute output rows [row_begin, row_end) of the
// batch * out_h rows. Accumulation order: bias first, then taps (i, j) row-major, then input
// channels in order, one fmaf per product in every ISA path (so ref and avx2 agree to the
// last bit except where the compiler contracts differently; tests use a float tolerance).
struct FConv2dShape {
  std::int64_t batch, in_h, in_w, channels;      // input
  std::int64_t out_h, out_w, out_channels;       // output
  int kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
};
// Direct conv (groups = 1) for few input channels (the first conv of an image model, C = 3,
// where an im2col GEMM has a depth too short for BLAS): weights HWIO [kh, kw, C, O].
using fconv2d_direct_fn = void (*)(const float* in, const float* w_hwio, const float* bias, float clamp_min,
                                   float clamp_max, const FConv2dShape& s, std::int64_t row_begin,
                                   std::int64_t row_end, float* out);
// Depthwise conv (groups = C = O, multiplier 1): weights HWC [kh, kw, C].
using fdwconv2d_fn = void (*)(const float* in, const float* w_hwc, const float* bias, float clamp_min,
                              float clamp_max, const FConv2dShape& s, std::int64_t row_begin,
                              std::int64_t row_end, float* out);
// Per-channel affine + activation on `rows` rows of `channels` floats (the last axis):
//   y = x * scale[c] + bias[c]   (scale / bias may be null: 1 / 0; one fmaf when both are given)
//   y = y < 0 ? alpha[c] * y : y (PReLU; alpha may be null: none)
//   out = min(max(y, clamp_min), clamp_max)
// `out` may equal `x` (in place). Covers scale_bias (a folded BatchNorm), prelu, relu, clamp and
// the bias + clamp epilogue of dense / conv.
using channel_affine_fn = void (*)(const float* x, const float* scale, const float* bias, const float* alpha,
                                   float clamp_min, float clamp_max, std::int64_t rows, std::int64_t channels,
                                   float* out);

#define ONEBIT_DECLARE_FLOAT_OPS(ns)                                                                        \
  namespace ns {                                                                                            \
  void fconv2d_direct(const float* in, const float* w_hwio, const float* bias, float clamp_min, float clamp_max, \
                      const FConv2dShape& s, std::int64_t row_begin, std::int64_t row_end, float* out);     \
  void fdwconv2d(const float* in, const float* w_hwc, const float* bias, float clamp_min, float clamp_max,   \
                 const FConv2dShape& s, std::int64_t row_begin, std::int64_t row_end, float* out);          \
  void channel_affine(const float* x, const float* scale, const float* bias, const float* alpha,            \
                      float clamp_min, float clamp_max, std::int64_t rows, std::int64_t channels, float* out); \
  }
ONEBIT_DECLARE_FLOAT_OPS(ref)
ONEBIT_DECLARE_FLOAT_OPS(avx2)
#undef ONEBIT_DECLARE_FLOAT_OPS

}  // namespace onebit
