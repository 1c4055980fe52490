// Registers the bitpack / unpack implementations in the dispatch table.
#include "onebit/dispatch.h"
#include "onebit/kernels.h"

ONEBIT_REGISTER_KERNEL("bitpack_f32", ref, onebit::ref::bitpack_f32);
ONEBIT_REGISTER_KERNEL("bitpack_i8", ref, onebit::ref::bitpack_i8);
ONEBIT_REGISTER_KERNEL("unpack_f32", ref, onebit::ref::unpack_f32);
#if defined(ONEBIT_HAVE_X86)
ONEBIT_REGISTER_KERNEL("bitpack_f32", avx2, onebit::avx2::bitpack_f32);
ONEBIT_REGISTER_KERNEL("bitpack_i8", avx2, onebit::avx2::bitpack_i8);
ONEBIT_REGISTER_KERNEL("unpack_f32", avx2, onebit::avx2::unpack_f32);
ONEBIT_REGISTER_KERNEL("bitpack_f32", avx512, onebit::avx512::bitpack_f32);
ONEBIT_REGISTER_KERNEL("bitpack_i8", avx512, onebit::avx512::bitpack_i8);
ONEBIT_REGISTER_KERNEL("unpack_f32", avx512, onebit::avx512::unpack_f32);
#endif
#if defined(ONEBIT_HAVE_NEON)
ONEBIT_REGISTER_KERNEL("bitpack_f32", neon, onebit::neon::bitpack_f32);
ONEBIT_REGISTER_KERNEL("bitpack_i8", neon, onebit::neon::bitpack_i8);
ONEBIT_REGISTER_KERNEL("unpack_f32", neon, onebit::neon::unpack_f32);
#endif
