// im2col + BGEMM driver of the fast binary convolution paths (ISA-independent; the ISA-specific
// part is the `gemm` it is given). Output positions are processed in blocks of kBlock: the
// receptive field of each position is gathered into one row of kh*kw*cw_g words (tap-major,
// the layout of one OHWI weight row, so the weights are the B operand as they are), padded
// taps as zero words (+1, one-padding), then one BGEMM per group writes the block's outputs.
// Packed words are 32 activations each, so the gather moves 32x less data than a float im2col.
// A 1x1, stride-1, unpadded convolution is a plain BGEMM on the input (no gather).
#include <algorithm>
#include <vector>

#include "onebit/kernels.h"

namespace onebit {
namespace {

constexpr std::int64_t kBlock = 64;  // output positions per gathered block (fits L1 for K <= 4096)

}  // namespace

void bconv2d_im2col(const BConv2dArgs& args, std::int64_t pos_begin, std::int64_t pos_end, bgemm_fn gemm) {
  const BConv2dGeometry& g = args.g;
  const std::int64_t c_g = g.channels / g.groups, cw_g = packed_words(c_g), o_g = g.out_c / g.groups;
  const std::int64_t krow = g.kh * g.kw * cw_g;
  const bool direct = g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 &&
                      g.pad_left == 0 && g.out_h == g.in_h && g.out_w == g.in_w;
  const bool correct = g.zero_padding && args.zero_pad != nullptr;
  const std::int64_t out_bytes = args.transform->type == BOutType::i8 ? 1 : 4;

  const bool contiguous_rows = g.groups == 1 && g.dil_w == 1;
  const std::int64_t row_words = g.kw * cw_g;
  std::vector<bword_t> buf(direct ? 0 : kBlock * krow);
  std::vector<const std::int32_t*> corr(kBlock, nullptr);
  for (std::int64_t p0 = pos_begin; p0 < pos_end; p0 += kBlock) {
    const std::int64_t nb = std::min(kBlock, pos_end - p0);
    bool any_corr = false;
    if (correct) {
      for (std::int64_t r = 0; r < nb; ++r) {
        const std::int64_t p = p0 + r, ow = p % g.out_w, oh = (p / g.out_w) % g.out_h;
        corr[r] = args.zero_pad->at(oh, ow);
        any_corr |= corr[r] != nullptr;
      }
    }
    for (std::int64_t grp = 0; grp < g.groups; ++grp) {
      const bword_t* a;
      std::int64_t lda;
      if (direct) {
        a = args.input + p0 * g.in_cw + grp * cw_g;
        lda = g.in_cw;
      } else {
        for (std::int64_t r = 0; r < nb; ++r) {
          const std::int64_t p = p0 + r, ow = p % g.out_w, oh = (p / g.out_w) % g.out_h,
                             n = p / (g.out_w * g.out_h);
          bword_t* dst = buf.data() + r * krow;
          const std::int64_t ih0 = oh * g.stride_h - g.pad_top, iw0 = ow * g.stride_w - g.pad_left;
          if (contiguous_rows && ih0 >= 0 && ih0 + (g.kh - 1) * g.dil_h < g.in_h && iw0 >= 0 && iw0 + g.kw <= g.in_w) {
            // Interior position, horizontal dilation 1, one group: the kw taps of a kernel row
            // are kw adjacent pixels, i.e. kw * in_cw contiguous words.
            for (std::int64_t i = 0; i < g.kh; ++i, dst += row_words) {
              const bword_t* src = args.input + ((n * g.in_h + ih0 + i * g.dil_h) * g.in_w + iw0) * g.in_cw;
              for (std::int64_t c = 0; c < row_words; ++c) dst[c] = src[c];
            }
            continue;
          }
          for (std::int64_t i = 0; i < g.kh; ++i) {
            const std::int64_t ih = oh * g.stride_h - g.pad_top + i * g.dil_h;
            for (std::int64_t j = 0; j < g.kw; ++j, dst += cw_g) {
              const std::int64_t iw = ow * g.stride_w - g.pad_left + j * g.dil_w;
              // A few words per tap: an inline loop beats a memcpy call.
              if (ih < 0 || ih >= g.in_h || iw < 0 || iw >= g.in_w) {
                for (std::int64_t c = 0; c < cw_g; ++c) dst[c] = 0;
              } else {
                const bword_t* src = args.input + ((n * g.in_h + ih) * g.in_w + iw) * g.in_cw + grp * cw_g;
                for (std::int64_t c = 0; c < cw_g; ++c) dst[c] = src[c];
              }
            }
          }
        }
        a = buf.data();
        lda = krow;
      }
      BgemmArgs ga;
      ga.a = a;
      ga.lda = lda;
      ga.b = args.weights + grp * o_g * krow;
      ga.ldb = krow;
      ga.m = nb;
      ga.n = o_g;
      ga.kw = krow;
      ga.k = g.kh * g.kw * c_g;
      ga.row_correction = any_corr ? corr.data() : nullptr;
      ga.transform = args.transform;
      ga.col0 = grp * o_g;
      ga.out = static_cast<char*>(args.out) + p0 * args.ldo * out_bytes;
      ga.ldo = args.ldo;
      gemm(ga);
    }
  }
}

}  // namespace onebit
