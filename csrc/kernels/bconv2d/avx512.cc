// AVX-512 binary convolution: the im2col driver (im2col.cc) on top of the AVX-512 BGEMM
// (bgemm/avx512.cc, which holds the VPOPCNTQ micro-kernels and the fused output transform).
#include "onebit/kernels.h"

namespace onebit::avx512 {

void bconv2d(const BConv2dArgs& args, std::int64_t pos_begin, std::int64_t pos_end) {
  bconv2d_im2col(args, pos_begin, pos_end, &bgemm);
}

}  // namespace onebit::avx512
