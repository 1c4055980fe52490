// AVX2 binary convolution: the im2col driver (im2col.cc) on top of the AVX2 BGEMM
// (bgemm/avx2.cc, which holds the popcount micro-kernel and the fused output transform).
#include "onebit/kernels.h"

namespace onebit::avx2 {

void bconv2d(const BConv2dArgs& args, std::int64_t pos_begin, std::int64_t pos_end) {
  bconv2d_im2col(args, pos_begin, pos_end, &bgemm);
}

}  // namespace onebit::avx2
