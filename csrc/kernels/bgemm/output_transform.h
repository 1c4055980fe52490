// Scalar output transform of a binary accumulator (formulas: onebit/kernels.h, BOutputTransform).
// Shared by every path: ref uses it for every element, SIMD paths for their tail columns, so
// all paths apply literally the same per-element arithmetic. min/max are written as
// `y > lo ? y : lo` / `y < hi ? y : hi`, which is what _mm256_max_ps(y, lo) / _mm256_min_ps(y, hi)
// compute (NaN y -> lo / hi), so the SIMD and scalar results agree bit for bit.
#pragma once
#include <cmath>
#include <cstdint>

#include "onebit/kernels.h"

namespace onebit::detail {

inline float transform_f32(const BOutputTransform& t, std::int64_t col, std::int32_t acc) {
  float y = std::fma(t.multiplier[col], static_cast<float>(acc), t.bias[col]);
  y = y > t.clamp_min ? y : t.clamp_min;
  y = y < t.clamp_max ? y : t.clamp_max;
  return y;
}

inline std::int8_t transform_i8(const BOutputTransform& t, std::int64_t col, std::int32_t acc) {
  float z = transform_f32(t, col, acc);
  z = z > -128.0f ? z : -128.0f;
  z = z < 127.0f ? z : 127.0f;
  return static_cast<std::int8_t>(std::nearbyint(z));  // round half to even (default mode)
}

inline bool transform_bit(const BOutputTransform& t, std::int64_t col, std::int32_t acc) {
  return (acc < t.threshold[col]) != (t.flip[col] != 0);
}

// Writes the transformed acc of output column `col` into output row `row`.
inline void store_one(const BOutputTransform& t, std::int64_t col, std::int32_t acc, void* row) {
  switch (t.type) {
    case BOutType::int32:
      static_cast<std::int32_t*>(row)[col] = acc;
      break;
    case BOutType::f32:
      static_cast<float*>(row)[col] = transform_f32(t, col, acc);
      break;
    case BOutType::i8:
      static_cast<std::int8_t*>(row)[col] = transform_i8(t, col, acc);
      break;
    case BOutType::bitpacked: {
      bword_t& w = static_cast<bword_t*>(row)[col / kBitsPerWord];
      const bword_t bit = bword_t{1} << (col % kBitsPerWord);
      w = transform_bit(t, col, acc) ? (w | bit) : (w & ~bit);
      break;
    }
  }
}

// Byte size of one output element (bitpacked: handled by word, returns 0).
inline std::int64_t out_elem_bytes(BOutType type) {
  switch (type) {
    case BOutType::int32: return 4;
    case BOutType::f32: return 4;
    case BOutType::i8: return 1;
    case BOutType::bitpacked: return 0;
  }
  return 0;
}

// Address of output row r (ldo in elements, or words when bitpacked).
inline void* out_row(const BOutputTransform& t, void* out, std::int64_t r, std::int64_t ldo) {
  const std::int64_t bytes = t.type == BOutType::bitpacked ? 4 : out_elem_bytes(t.type);
  return static_cast<char*>(out) + r * ldo * bytes;
}

}  // namespace onebit::detail
