// NEON binary convolution: the im2col driver (im2col.cc) on top of the NEON BGEMM
// (bgemm/neon.cc, which holds the popcount micro-kernel).
#include "onebit/kernels.h"

namespace onebit::neon {

void bconv2d(const BConv2dArgs& args, std::int64_t pos_begin, std::int64_t pos_end) {
  bconv2d_im2col(args, pos_begin, pos_end, &bgemm);
}

}  // namespace onebit::neon
