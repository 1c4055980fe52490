// NEON tgemv / tgemm: tq2 ternary weights (formats.h) x int8 activations, exact int32 sums.
//
// Each packed byte holds 4 fields q = t + 1; one 32-byte chunk of a block expands with
// (v >> 2l) & 3 to the 32 weights 32l..32l+31 (formats.h), turned into t = q - 1 in {-1, 0, 1}
// as int8. Products t * x are accumulated with SMLAL / SMLAL2 (int8 x int8 -> int16 lanes).
// Numeric invariants: |t * x| <= 128, and a lane receives 8 products per 128-weight block, so
// int16 lanes are widened into int32 (SADALP) every kFlushBlocks = 16 blocks
// (16 * 8 * 128 = 16384 < 32767): exact for every int8 activation, -128 included; int32 sums
// are exact for K < 2^24. The float output is float(acc) * (w_scale / x_scale[i]), the two
// float operations of ref, so float outputs are bit-identical too.
// tgemv decodes each weight block once per activation row, straight from the packed stream;
// tgemm decodes kRows weight rows to int8 once into a scratch tile and reuses it for every
// activation row. Activations are read from zero-padded copies (K rounded up to 128), so no
// load passes a caller's buffer. Tested under qemu-user against ref
// (tests/kernels/test_neon_qemu.py); not timed on ARM hardware.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "onebit/kernels.h"

namespace onebit::neon {
namespace {

constexpr std::int64_t kFlushBlocks = 16;
constexpr std::int64_t kRows = 16;  // weight rows decoded per tgemm tile

// The 128 ternary weights of one packed block as int8, in natural order.
inline void decode_block(const std::uint8_t* blk, int8x16_t t[8]) {
  const uint8x16_t v0 = vld1q_u8(blk), v1 = vld1q_u8(blk + 16), three = vdupq_n_u8(3), one = vdupq_n_u8(1);
  for (int l = 0; l < 4; ++l) {
    const int8x16_t s = vdupq_n_s8(static_cast<std::int8_t>(-2 * l));  // right shift by 2l
    t[2 * l] = vreinterpretq_s8_u8(vsubq_u8(vandq_u8(vshlq_u8(v0, s), three), one));
    t[2 * l + 1] = vreinterpretq_s8_u8(vsubq_u8(vandq_u8(vshlq_u8(v1, s), three), one));
  }
}

// acc16 += t * x over 128 weights (8 chunks of 16), two int16 accumulators.
inline void mla_block(const int8x16_t t[8], const std::int8_t* x, int16x8_t& a0, int16x8_t& a1) {
  for (int c = 0; c < 8; ++c) {
    const int8x16_t xv = vld1q_s8(x + 16 * c);
    a0 = vmlal_s8(a0, vget_low_s8(t[c]), vget_low_s8(xv));
    a1 = vmlal_high_s8(a1, t[c], xv);
  }
}

// Dot product of one packed weight row with one zero-padded activation row of nb blocks.
std::int32_t dot_packed(const std::uint8_t* w, const std::int8_t* x, std::int64_t nb) {
  int32x4_t acc = vdupq_n_s32(0);
  for (std::int64_t b = 0; b < nb;) {
    const std::int64_t end = std::min(nb, b + kFlushBlocks);
    int16x8_t a0 = vdupq_n_s16(0), a1 = vdupq_n_s16(0);
    for (; b < end; ++b) {
      int8x16_t t[8];
      decode_block(w + b * 32, t);
      mla_block(t, x + b * kTq2BlockValues, a0, a1);
    }
    acc = vpadalq_s16(vpadalq_s16(acc, a0), a1);
  }
  return vaddvq_s32(acc);
}

// Dot product of two int8 rows of nb * 128 values (decoded weights, padded activations).
std::int32_t dot_i8(const std::int8_t* t, const std::int8_t* x, std::int64_t nb) {
  int32x4_t acc = vdupq_n_s32(0);
  for (std::int64_t b = 0; b < nb;) {
    const std::int64_t end = std::min(nb, b + kFlushBlocks);
    int16x8_t a0 = vdupq_n_s16(0), a1 = vdupq_n_s16(0);
    for (; b < end; ++b) {
      int8x16_t tv[8];
      for (int c = 0; c < 8; ++c) tv[c] = vld1q_s8(t + b * kTq2BlockValues + 16 * c);
      mla_block(tv, x + b * kTq2BlockValues, a0, a1);
    }
    acc = vpadalq_s16(vpadalq_s16(acc, a0), a1);
  }
  return vaddvq_s32(acc);
}

// Zero-padded copy of m activation rows of k values, rows of nb * 128.
const std::int8_t* padded(const std::int8_t* x, std::int64_t m, std::int64_t k, std::int64_t nb,
                          std::vector<std::int8_t>& buf) {
  const std::int64_t kp = nb * kTq2BlockValues;
  buf.assign(static_cast<size_t>(m * kp), 0);
  for (std::int64_t i = 0; i < m; ++i) std::memcpy(buf.data() + i * kp, x + i * k, static_cast<size_t>(k));
  return buf.data();
}

inline void store(std::int32_t acc, float mult, std::int64_t at, float* out, std::int32_t* acc_out) {
  if (out) out[at] = static_cast<float>(acc) * mult;
  if (acc_out) acc_out[at] = acc;
}

}  // namespace

void tgemv(const std::uint8_t* w, std::int64_t n, std::int64_t k, float w_scale, const std::int8_t* x,
           const float* x_scale, std::int64_t m, float* out, std::int32_t* acc_out, std::int64_t ldo) {
  const std::int64_t nb = tq2_blocks(k), row_bytes = tq2_row_bytes(k), kp = nb * kTq2BlockValues;
  thread_local std::vector<std::int8_t> xbuf;
  const std::int8_t* xp = padded(x, m, k, nb, xbuf);
  for (std::int64_t i = 0; i < m; ++i) {
    const float mult = w_scale / x_scale[i];
    for (std::int64_t j = 0; j < n; ++j) store(dot_packed(w + j * row_bytes, xp + i * kp, nb), mult, i * ldo + j, out, acc_out);
  }
}

void tgemm(const std::uint8_t* w, std::int64_t n, std::int64_t k, float w_scale, const std::int8_t* x,
           const float* x_scale, std::int64_t m, float* out, std::int32_t* acc_out, std::int64_t ldo) {
  const std::int64_t nb = tq2_blocks(k), row_bytes = tq2_row_bytes(k), kp = nb * kTq2BlockValues;
  thread_local std::vector<std::int8_t> xbuf, tile;
  const std::int8_t* xp = padded(x, m, k, nb, xbuf);
  tile.resize(static_cast<size_t>(kRows * kp));
  for (std::int64_t j0 = 0; j0 < n; j0 += kRows) {
    const std::int64_t rows = std::min(kRows, n - j0);
    for (std::int64_t r = 0; r < rows; ++r) {  // decode the tile's weight rows once
      for (std::int64_t b = 0; b < nb; ++b) {
        int8x16_t t[8];
        decode_block(w + (j0 + r) * row_bytes + b * 32, t);
        for (int c = 0; c < 8; ++c) vst1q_s8(tile.data() + r * kp + b * kTq2BlockValues + 16 * c, t[c]);
      }
    }
    for (std::int64_t i = 0; i < m; ++i) {
      const float mult = w_scale / x_scale[i];
      for (std::int64_t r = 0; r < rows; ++r) {
        store(dot_i8(tile.data() + r * kp, xp + i * kp, nb), mult, i * ldo + j0 + r, out, acc_out);
      }
    }
  }
}

}  // namespace onebit::neon
