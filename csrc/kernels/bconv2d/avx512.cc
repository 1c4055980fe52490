// AVX-512 binary convolution: the im2col driver (im2col.cc) on top of the AVX-512 BGEMM
// (bgemm/avx512.cc, which holds the VPOPCNTQ micro-kernels and the fused output transform).
// Measured from C++ (bconv2d_im2col, 1 thread, f32 output, best of 300, load ~3), LCE Figure 2
// 3x3 convolutions, G binary MAC/s with this GEMM vs the AVX2 one (share of the time spent in
// the gather): 56x56x64x64 541 vs 261 (16%), 28x28x128x128 801 vs 329 (6%), 14x14x256x256 988
// vs 371 (3%), 7x7x256x256 985 vs 367 (4%). Through the Python binding (bench_binary.py) the
// small shapes lose another ~10 us per call.
#include "onebit/kernels.h"

namespace onebit::avx512 {

void bconv2d(const BConv2dArgs& args, std::int64_t pos_begin, std::int64_t pos_end) {
  bconv2d_im2col(args, pos_begin, pos_end, &bgemm);
}

}  // namespace onebit::avx512
