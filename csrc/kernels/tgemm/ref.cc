// Scalar reference for tgemv / tgemm (tq2 ternary weights x int8 activations): the oracle.
// Reads the packed format field by field, exactly as formats.h describes it.
#include "onebit/kernels.h"

namespace onebit::ref {
namespace {

// Ternary weight k of a packed row: field q = t + 1 of byte (k % 128) % 32 of block k / 128,
// bits 2 * ((k % 128) / 32).
inline int ternary_at(const std::uint8_t* row, std::int64_t k) {
  const std::int64_t b = k / kTq2BlockValues, r = k % kTq2BlockValues;
  const int q = (row[b * 32 + r % 32] >> (2 * (r / 32))) & 3;
  return q - 1;
}

void tgemm_ref(const std::uint8_t* w, std::int64_t n, std::int64_t k, float w_scale, const std::int8_t* x,
               const float* x_scale, std::int64_t m, float* out, std::int32_t* acc_out, std::int64_t ldo) {
  const std::int64_t row_bytes = tq2_row_bytes(k);
  for (std::int64_t i = 0; i < m; ++i) {
    const float mult = w_scale / x_scale[i];
    for (std::int64_t j = 0; j < n; ++j) {
      std::int32_t acc = 0;
      for (std::int64_t kk = 0; kk < k; ++kk) acc += ternary_at(w + j * row_bytes, kk) * x[i * k + kk];
      if (out) out[i * ldo + j] = static_cast<float>(acc) * mult;
      if (acc_out) acc_out[i * ldo + j] = acc;
    }
  }
}

}  // namespace

void tgemv(const std::uint8_t* w, std::int64_t n, std::int64_t k, float w_scale, const std::int8_t* x,
           const float* x_scale, std::int64_t m, float* out, std::int32_t* acc_out, std::int64_t ldo) {
  tgemm_ref(w, n, k, w_scale, x, x_scale, m, out, acc_out, ldo);
}

void tgemm(const std::uint8_t* w, std::int64_t n, std::int64_t k, float w_scale, const std::int8_t* x,
           const float* x_scale, std::int64_t m, float* out, std::int32_t* acc_out, std::int64_t ldo) {
  tgemm_ref(w, n, k, w_scale, x, x_scale, m, out, acc_out, ldo);
}

}  // namespace onebit::ref
