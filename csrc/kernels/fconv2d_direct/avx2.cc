// AVX2 + FMA direct float conv (groups = 1, weights HWIO), for few input channels (C = 3 of a
// first conv). Output channels in blocks of 4 vectors (32 floats) held in registers; each input
// value is broadcast once per block and multiplied into the 4 weight vectors (the weights of a
// 3x3x3x32 first conv, 3.4 KB, stay in L1). Interior pixels go two at a time (block2), border
// pixels (windows cut by the padding) one at a time (block). Same
// accumulation order as ref.cc (bias, taps row-major, channels in order; one FMA per product),
// so both paths give identical results. The last vector of a block is masked only when O % 8 != 0
// (masked loads are slower). 224x224x3 -> 32, 3x3/2, 1 thread: 1.18 ms numpy im2col + BLAS, 0.79 ms one
// pixel at a time, 0.53 ms with pixel pairs (PyTorch fp32: 0.54 ms), benchmarks/bench_runtime_ops.py.
#include <immintrin.h>

#include <cstdint>

#include "onebit/kernels.h"

namespace onebit::avx2 {
namespace {

inline __m256i tail_mask(std::int64_t n) {  // lanes [0, n) set, n in [1, 8]
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

template <int NV, bool MASKED>
void block(const float* in, const float* w_hwio, const float* bias, __m256 lo, __m256 hi, const FConv2dShape& s,
           std::int64_t b, std::int64_t oh, std::int64_t ow, std::int64_t o0, __m256i last, float* dst) {
  const std::int64_t c_in = s.channels, c_out = s.out_channels;
  const __m256i full = _mm256_set1_epi32(-1);
  __m256 acc[NV];
  for (int v = 0; v < NV; ++v) {
    const __m256i m = MASKED && v == NV - 1 ? last : full;
    acc[v] = bias ? _mm256_maskload_ps(bias + o0 + 8 * v, m) : _mm256_setzero_ps();
  }
  for (int i = 0; i < s.kernel_h; ++i) {
    const std::int64_t h = oh * s.stride_h - s.pad_top + static_cast<std::int64_t>(i) * s.dilation_h;
    if (h < 0 || h >= s.in_h) continue;
    for (int j = 0; j < s.kernel_w; ++j) {
      const std::int64_t w = ow * s.stride_w - s.pad_left + static_cast<std::int64_t>(j) * s.dilation_w;
      if (w < 0 || w >= s.in_w) continue;
      const float* px = in + ((b * s.in_h + h) * s.in_w + w) * c_in;
      const float* wt = w_hwio + (static_cast<std::int64_t>(i) * s.kernel_w + j) * c_in * c_out + o0;
      for (std::int64_t c = 0; c < c_in; ++c) {
        const __m256 xv = _mm256_broadcast_ss(px + c);
        const float* wc = wt + c * c_out;
        for (int v = 0; v < NV; ++v) {
          const __m256 wv =
              MASKED && v == NV - 1 ? _mm256_maskload_ps(wc + 8 * v, last) : _mm256_loadu_ps(wc + 8 * v);
          acc[v] = _mm256_fmadd_ps(xv, wv, acc[v]);
        }
      }
    }
  }
  for (int v = 0; v < NV; ++v) {
    const __m256 y = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[v]));  // NaN passes (second operand)
    if (MASKED && v == NV - 1) {
      _mm256_maskstore_ps(dst + o0 + 8 * v, last, y);
    } else {
      _mm256_storeu_ps(dst + o0 + 8 * v, y);
    }
  }
}

// Two horizontally adjacent output pixels (ow, ow + 1) whose windows lie inside the input along
// W: each weight vector is loaded once for both (8 FMAs per 4 weight loads + 2 broadcasts, so
// the loop is FMA-bound rather than load-bound). Same per-output order as block().
template <int NV, bool MASKED>
void block2(const float* in, const float* w_hwio, const float* bias, __m256 lo, __m256 hi, const FConv2dShape& s,
            std::int64_t b, std::int64_t oh, std::int64_t ow, std::int64_t o0, __m256i last, float* dst) {
  const std::int64_t c_in = s.channels, c_out = s.out_channels;
  const __m256i full = _mm256_set1_epi32(-1);
  __m256 acc0[NV], acc1[NV];
  for (int v = 0; v < NV; ++v) {
    const __m256i m = MASKED && v == NV - 1 ? last : full;
    acc0[v] = bias ? _mm256_maskload_ps(bias + o0 + 8 * v, m) : _mm256_setzero_ps();
    acc1[v] = acc0[v];
  }
  const std::int64_t px_step = s.stride_w * c_in;  // from pixel ow's window to pixel ow+1's
  for (int i = 0; i < s.kernel_h; ++i) {
    const std::int64_t h = oh * s.stride_h - s.pad_top + static_cast<std::int64_t>(i) * s.dilation_h;
    if (h < 0 || h >= s.in_h) continue;
    for (int j = 0; j < s.kernel_w; ++j) {
      const std::int64_t w = ow * s.stride_w - s.pad_left + static_cast<std::int64_t>(j) * s.dilation_w;
      const float* px = in + ((b * s.in_h + h) * s.in_w + w) * c_in;
      const float* wt = w_hwio + (static_cast<std::int64_t>(i) * s.kernel_w + j) * c_in * c_out + o0;
      for (std::int64_t c = 0; c < c_in; ++c) {
        const __m256 x0 = _mm256_broadcast_ss(px + c);
        const __m256 x1 = _mm256_broadcast_ss(px + px_step + c);
        const float* wc = wt + c * c_out;
        for (int v = 0; v < NV; ++v) {
          const __m256 wv =
              MASKED && v == NV - 1 ? _mm256_maskload_ps(wc + 8 * v, last) : _mm256_loadu_ps(wc + 8 * v);
          acc0[v] = _mm256_fmadd_ps(x0, wv, acc0[v]);
          acc1[v] = _mm256_fmadd_ps(x1, wv, acc1[v]);
        }
      }
    }
  }
  float* d0 = dst + o0;
  float* d1 = dst + c_out + o0;
  for (int v = 0; v < NV; ++v) {
    const __m256 y0 = _mm256_min_ps(hi, _mm256_max_ps(lo, acc0[v]));
    const __m256 y1 = _mm256_min_ps(hi, _mm256_max_ps(lo, acc1[v]));
    if (MASKED && v == NV - 1) {
      _mm256_maskstore_ps(d0 + 8 * v, last, y0);
      _mm256_maskstore_ps(d1 + 8 * v, last, y1);
    } else {
      _mm256_storeu_ps(d0 + 8 * v, y0);
      _mm256_storeu_ps(d1 + 8 * v, y1);
    }
  }
}

// True if every tap of output column ow lies inside the input along W.
inline bool w_inside(const FConv2dShape& s, std::int64_t ow) {
  const std::int64_t w0 = ow * s.stride_w - s.pad_left;
  return w0 >= 0 && w0 + static_cast<std::int64_t>(s.kernel_w - 1) * s.dilation_w < s.in_w;
}

}  // namespace

void fconv2d_direct(const float* in, const float* w_hwio, const float* bias, float clamp_min, float clamp_max,
                    const FConv2dShape& s, std::int64_t row_begin, std::int64_t row_end, float* out) {
  const std::int64_t c_out = s.out_channels;
  const __m256 lo = _mm256_set1_ps(clamp_min), hi = _mm256_set1_ps(clamp_max);
  for (std::int64_t row = row_begin; row < row_end; ++row) {
    const std::int64_t b = row / s.out_h, oh = row % s.out_h;
    for (std::int64_t ow = 0; ow < s.out_w;) {
      float* dst = out + ((b * s.out_h + oh) * s.out_w + ow) * c_out;
      const bool pair = ow + 1 < s.out_w && w_inside(s, ow) && w_inside(s, ow + 1);
      for (std::int64_t o0 = 0; o0 < c_out; o0 += 32) {
        const std::int64_t n = c_out - o0 < 32 ? c_out - o0 : 32;
        const int nv = static_cast<int>((n + 7) / 8);
        const __m256i last = tail_mask(n - 8 * (nv - 1));
        const bool masked = n % 8 != 0;
#define ONEBIT_BLOCK(F, NV)                                                   \
  (masked ? F<NV, true>(in, w_hwio, bias, lo, hi, s, b, oh, ow, o0, last, dst) \
          : F<NV, false>(in, w_hwio, bias, lo, hi, s, b, oh, ow, o0, last, dst))
        if (pair) {
          switch (nv) {
            case 4: ONEBIT_BLOCK(block2, 4); break;
            case 3: ONEBIT_BLOCK(block2, 3); break;
            case 2: ONEBIT_BLOCK(block2, 2); break;
            default: ONEBIT_BLOCK(block2, 1); break;
          }
        } else {
          switch (nv) {
            case 4: ONEBIT_BLOCK(block, 4); break;
            case 3: ONEBIT_BLOCK(block, 3); break;
            case 2: ONEBIT_BLOCK(block, 2); break;
            default: ONEBIT_BLOCK(block, 1); break;
          }
        }
#undef ONEBIT_BLOCK
      }
      ow += pair ? 2 : 1;
    }
  }
}

}  // namespace onebit::avx2
