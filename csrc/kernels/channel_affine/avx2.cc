// AVX2 + FMA channel_affine (same maths as ref.cc, lane for lane): 8 channels per vector, the
// channel tail masked. Without per-channel operands (relu, clamp) the rows are one flat run.
// PReLU as a blend: y < 0 ? alpha*y : y. Clamps as max(lo, y) / min(hi, y): NaN passes through.
#include <immintrin.h>

#include <cstdint>

#include "onebit/kernels.h"

namespace onebit::avx2 {
namespace {

inline __m256i tail_mask(std::int64_t n) {  // lanes [0, n) set, n in [1, 8]
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

struct Ops {
  const float *scale, *bias, *alpha;
  __m256 lo, hi;

  inline __m256 apply(__m256 y, std::int64_t c, bool masked, __m256i m) const {
    auto load = [&](const float* p) { return masked ? _mm256_maskload_ps(p + c, m) : _mm256_loadu_ps(p + c); };
    if (scale && bias) {
      y = _mm256_fmadd_ps(y, load(scale), load(bias));
    } else if (scale) {
      y = _mm256_mul_ps(y, load(scale));
    } else if (bias) {
      y = _mm256_add_ps(y, load(bias));
    }
    if (alpha) {
      const __m256 neg = _mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_LT_OQ);
      y = _mm256_blendv_ps(y, _mm256_mul_ps(load(alpha), y), neg);
    }
    return _mm256_min_ps(hi, _mm256_max_ps(lo, y));
  }
};

}  // namespace

void channel_affine(const float* x, const float* scale, const float* bias, const float* alpha, float clamp_min,
                    float clamp_max, std::int64_t rows, std::int64_t channels, float* out) {
  const Ops ops{scale, bias, alpha, _mm256_set1_ps(clamp_min), _mm256_set1_ps(clamp_max)};
  if (!scale && !bias && !alpha) {  // element-wise only: one flat run
    channels *= rows;
    rows = 1;
  }
  const std::int64_t full = channels / 8 * 8;
  const __m256i all = _mm256_set1_epi32(-1);
  const __m256i last = channels > full ? tail_mask(channels - full) : all;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * channels;
    float* yr = out + r * channels;
    std::int64_t c = 0;
    for (; c + 32 <= full; c += 32) {  // 4 independent vectors per iteration
      const __m256 y0 = ops.apply(_mm256_loadu_ps(xr + c), c, false, all);
      const __m256 y1 = ops.apply(_mm256_loadu_ps(xr + c + 8), c + 8, false, all);
      const __m256 y2 = ops.apply(_mm256_loadu_ps(xr + c + 16), c + 16, false, all);
      const __m256 y3 = ops.apply(_mm256_loadu_ps(xr + c + 24), c + 24, false, all);
      _mm256_storeu_ps(yr + c, y0);
      _mm256_storeu_ps(yr + c + 8, y1);
      _mm256_storeu_ps(yr + c + 16, y2);
      _mm256_storeu_ps(yr + c + 24, y3);
    }
    for (; c < full; c += 8) _mm256_storeu_ps(yr + c, ops.apply(_mm256_loadu_ps(xr + c), c, false, all));
    if (c < channels) _mm256_maskstore_ps(yr + c, last, ops.apply(_mm256_maskload_ps(xr + c, last), c, true, last));
  }
}

}  // namespace onebit::avx2
