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
