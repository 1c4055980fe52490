// Binding-side parsing and checking of the fused output transform of bgemm / bconv2d
// (onebit/kernels.h, BOutputTransform), shared by bindings/bgemm.cc and bindings/bconv2d.cc.
#pragma once
#include <cstring>
#include <string>

#include "common.h"
#include "onebit/kernels.h"

namespace onebit::bindings {

using AnyArray = nb::ndarray<nb::c_contig, nb::device::cpu>;

inline BOutType parse_out_type(const std::string& s) {
  if (s == "int32") return BOutType::int32;
  if (s == "float32") return BOutType::f32;
  if (s == "int8") return BOutType::i8;
  if (s == "bitpacked") return BOutType::bitpacked;
  throw std::invalid_argument("output must be one of int32, float32, int8, bitpacked; got '" + s + "'");
}

template <class T>
void check_channel_vector(const CArray<const T>& v, int64_t n, const char* name) {
  if (v.ndim() != 1 || static_cast<int64_t>(v.shape(0)) != n) {
    throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(n) +
                                ",) (one value per output channel), got ndim " + std::to_string(v.ndim()) +
                                (v.ndim() == 1 ? ", length " + std::to_string(v.shape(0)) : std::string()));
  }
}

// Fills `t` from the arrays (only those the output type uses are checked and read).
inline BOutputTransform make_transform(BOutType type, int64_t n, const CArray<const float>& multiplier,
                                       const CArray<const float>& bias, float clamp_min, float clamp_max,
                                       const CArray<const std::int32_t>& threshold,
                                       const CArray<const std::uint8_t>& flip) {
  BOutputTransform t;
  t.type = type;
  if (type == BOutType::f32 || type == BOutType::i8) {
    check_channel_vector(multiplier, n, "multiplier");
    check_channel_vector(bias, n, "bias");
    t.multiplier = multiplier.data();
    t.bias = bias.data();
    t.clamp_min = clamp_min;
    t.clamp_max = clamp_max;
  } else if (type == BOutType::bitpacked) {
    check_channel_vector(threshold, n, "threshold");
    check_channel_vector(flip, n, "flip");
    t.threshold = threshold.data();
    t.flip = flip.data();
  }
  return t;
}

// Checks that `out` is a C-contiguous array of the output type's dtype and the given shape;
// returns the number of elements (words when bitpacked) per output row.
inline int64_t check_out(const AnyArray& out, BOutType type, const std::vector<int64_t>& shape) {
  bool dtype_ok = false;
  const char* want = "";
  switch (type) {
    case BOutType::int32: dtype_ok = out.dtype() == nb::dtype<std::int32_t>(); want = "int32"; break;
    case BOutType::f32: dtype_ok = out.dtype() == nb::dtype<float>(); want = "float32"; break;
    case BOutType::i8: dtype_ok = out.dtype() == nb::dtype<std::int8_t>(); want = "int8"; break;
    case BOutType::bitpacked: dtype_ok = out.dtype() == nb::dtype<std::uint32_t>(); want = "uint32"; break;
  }
  if (!dtype_ok) throw std::invalid_argument(std::string("out must have dtype ") + want + " for this output type");
  bool shape_ok = out.ndim() == shape.size();
  for (size_t i = 0; shape_ok && i < shape.size(); ++i) shape_ok = static_cast<int64_t>(out.shape(i)) == shape[i];
  if (!shape_ok) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += std::to_string(shape[i]) + (i + 1 < shape.size() ? ", " : "");
    throw std::invalid_argument("out must have shape " + s + "), got another shape");
  }
  return shape.back();
}

}  // namespace onebit::bindings
