// Scalar reference binary convolution: a direct loop over output positions, channels and taps,
// independent of the im2col/BGEMM machinery of the fast paths (it shares only the output
// transform). Padded taps: one-padding adds the weights' own +-1 sum (input +1), zero-padding
// skips the tap (input 0), so no correction term is involved here.
#include "../bgemm/output_transform.h"
#include "onebit/kernels.h"

namespace onebit::ref {
namespace {

int popcount32(bword_t x) {
  int n = 0;
  for (; x != 0; x &= x - 1) ++n;
  return n;
}

}  // namespace

void bconv2d(const BConv2dArgs& args, std::int64_t pos_begin, std::int64_t pos_end) {
  const BConv2dGeometry& g = args.g;
  const BOutputTransform& t = *args.transform;
  const std::int64_t c_g = g.channels / g.groups, cw_g = packed_words(c_g), o_g = g.out_c / g.groups;
  for (std::int64_t p = pos_begin; p < pos_end; ++p) {
    const std::int64_t ow = p % g.out_w, oh = (p / g.out_w) % g.out_h, nb = p / (g.out_w * g.out_h);
    void* row = detail::out_row(t, args.out, p, args.ldo);
    for (std::int64_t o = 0; o < g.out_c; ++o) {
      const std::int64_t grp = o / o_g;
      std::int64_t acc = 0;
      for (std::int64_t i = 0; i < g.kh; ++i) {
        for (std::int64_t j = 0; j < g.kw; ++j) {
          const bword_t* w = args.weights + ((o * g.kh + i) * g.kw + j) * cw_g;
          const std::int64_t ih = oh * g.stride_h - g.pad_top + i * g.dil_h;
          const std::int64_t iw = ow * g.stride_w - g.pad_left + j * g.dil_w;
          const bool inside = ih >= 0 && ih < g.in_h && iw >= 0 && iw < g.in_w;
          if (!inside && g.zero_padding) continue;  // input 0: contributes nothing
          // Sum over the c_g true channels of x*w = c_g - 2 * popcount(x XOR w); a padded tap
          // (one-padding) has x = +1 everywhere, i.e. all-zero words.
          std::int64_t pop = 0;
          for (std::int64_t c = 0; c < cw_g; ++c) {
            const bword_t x = inside ? args.input[((nb * g.in_h + ih) * g.in_w + iw) * g.in_cw + grp * cw_g + c] : 0u;
            pop += popcount32(x ^ w[c]);
          }
          acc += c_g - 2 * pop;
        }
      }
      detail::store_one(t, o, static_cast<std::int32_t>(acc), row);
    }
  }
}

}  // namespace onebit::ref
