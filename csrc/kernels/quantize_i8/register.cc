// Registers the quantize_i8 implementations in the dispatch table.
#include "onebit/dispatch.h"
#include "onebit/kernels.h"

ONEBIT_REGISTER_KERNEL("quantize_i8", ref, onebit::ref::quantize_i8);
#if defined(ONEBIT_HAVE_X86)
ONEBIT_REGISTER_KERNEL("quantize_i8", avx2, onebit::avx2::quantize_i8);
ONEBIT_REGISTER_KERNEL("quantize_i8", avx512, onebit::avx512::quantize_i8);
#endif
#if defined(ONEBIT_HAVE_NEON)
ONEBIT_REGISTER_KERNEL("quantize_i8", neon, onebit::neon::quantize_i8);
#endif
