// AVX2 + FMA depthwise float conv (groups = C = O, weights HWC), NHWC. Channels are the vector
// lanes: per output pixel, blocks of 4 vectors (32 channels) accumulate over the window's taps
// that fall inside the input (the tap range is computed once per pixel, so no per-tap branch on
// padding in the inner loop); the channel tail (C % 8) is masked. Same accumulation order as
// ref.cc (bias, then taps row-major; one FMA per product), so both paths agree exactly.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "onebit/kernels.h"

namespace onebit::avx2 {
namespace {

inline __m256i tail_mask(std::int64_t n) {  // lanes [0, n) set, n in [1, 8]
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

// First tap index k in [0, kernel) with 0 <= base + k*dil < size, and one past the last.
inline void tap_range(std::int64_t base, int kernel, int dil, std::int64_t size, int* k0, int* k1) {
  int a = 0, e = kernel;
  while (a < kernel && base + static_cast<std::int64_t>(a) * dil < 0) ++a;
  while (e > a && base + static_cast<std::int64_t>(e - 1) * dil >= size) --e;
  *k0 = a;
  *k1 = e;
}

template <int NV>
inline void channels(const float* in_px, const float* w_hwc, const float* bias, __m256 lo, __m256 hi,
                     const FConv2dShape& s, int i0, int i1, int j0, int j1, std::int64_t c0, __m256i last,
                     bool masked, float* dst) {
  const std::int64_t ch = s.channels;
  const std::int64_t row_stride = s.in_w * ch * s.dilation_h, col_stride = ch * s.dilation_w;
  __m256 acc[NV];
  for (int v = 0; v < NV; ++v) {
    const bool m = masked && v == NV - 1;
    acc[v] = bias ? (m ? _mm256_maskload_ps(bias + c0 + 8 * v, last) : _mm256_loadu_ps(bias + c0 + 8 * v))
                  : _mm256_setzero_ps();
  }
  for (int i = i0; i < i1; ++i) {
    const float* xr = in_px + i * row_stride + c0;
    const float* wr = w_hwc + static_cast<std::int64_t>(i) * s.kernel_w * ch + c0;
    for (int j = j0; j < j1; ++j) {
      const float* xp = xr + j * col_stride;
      const float* wp = wr + static_cast<std::int64_t>(j) * ch;
      for (int v = 0; v < NV; ++v) {
        if (masked && v == NV - 1) {
          acc[v] = _mm256_fmadd_ps(_mm256_maskload_ps(xp + 8 * v, last), _mm256_maskload_ps(wp + 8 * v, last),
                                   acc[v]);
        } else {
          acc[v] = _mm256_fmadd_ps(_mm256_loadu_ps(xp + 8 * v), _mm256_loadu_ps(wp + 8 * v), acc[v]);
        }
      }
    }
  }
  for (int v = 0; v < NV; ++v) {
    const __m256 y = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[v]));  // NaN passes (second operand)
    if (masked && v == NV - 1) {
      _mm256_maskstore_ps(dst + c0 + 8 * v, last, y);
    } else {
      _mm256_storeu_ps(dst + c0 + 8 * v, y);
    }
  }
}

}  // namespace

void fdwconv2d(const float* in, const float* w_hwc, const float* bias, float clamp_min, float clamp_max,
               const FConv2dShape& s, std::int64_t row_begin, std::int64_t row_end, float* out) {
  const std::int64_t ch = s.channels;
  const __m256 lo = _mm256_set1_ps(clamp_min), hi = _mm256_set1_ps(clamp_max);
  const std::int64_t full = ch / 32 * 32;
  const std::int64_t rest = ch - full;  // 0..31 channels after the full 32-channel blocks
  const int rest_nv = static_cast<int>((rest + 7) / 8);
  const __m256i last = rest ? tail_mask(rest - 8 * (rest_nv - 1)) : _mm256_set1_epi32(-1);
  const bool masked = rest % 8 != 0;
  for (std::int64_t row = row_begin; row < row_end; ++row) {
    const std::int64_t b = row / s.out_h, oh = row % s.out_h;
    const std::int64_t h0 = oh * s.stride_h - s.pad_top;
    int i0, i1;
    tap_range(h0, s.kernel_h, s.dilation_h, s.in_h, &i0, &i1);
    for (std::int64_t ow = 0; ow < s.out_w; ++ow) {
      const std::int64_t w0 = ow * s.stride_w - s.pad_left;
      int j0, j1;
      tap_range(w0, s.kernel_w, s.dilation_w, s.in_w, &j0, &j1);
      // pointer to the (virtual) window origin; only in-range taps are dereferenced
      const float* in_px = in + ((b * s.in_h + h0) * s.in_w + w0) * ch;
      float* dst = out + ((b * s.out_h + oh) * s.out_w + ow) * ch;
      for (std::int64_t c0 = 0; c0 < full; c0 += 32) {
        channels<4>(in_px, w_hwc, bias, lo, hi, s, i0, i1, j0, j1, c0, last, false, dst);
      }
      switch (rest_nv) {
        case 4: channels<4>(in_px, w_hwc, bias, lo, hi, s, i0, i1, j0, j1, full, last, masked, dst); break;
        case 3: channels<3>(in_px, w_hwc, bias, lo, hi, s, i0, i1, j0, j1, full, last, masked, dst); break;
        case 2: channels<2>(in_px, w_hwc, bias, lo, hi, s, i0, i1, j0, j1, full, last, masked, dst); break;
        case 1: channels<1>(in_px, w_hwc, bias, lo, hi, s, i0, i1, j0, j1, full, last, masked, dst); break;
        default: break;
      }
    }
  }
}

}  // namespace onebit::avx2
