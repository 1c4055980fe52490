// Registers the binary GEMM implementations in the dispatch table.
#include "onebit/dispatch.h"
#include "onebit/kernels.h"

ONEBIT_REGISTER_KERNEL("bgemm", ref, onebit::ref::bgemm);
#if defined(ONEBIT_HAVE_X86)
ONEBIT_REGISTER_KERNEL("bgemm", avx2, onebit::avx2::bgemm);
ONEBIT_REGISTER_KERNEL("bgemm", avx512, onebit::avx512::bgemm);
#endif
#if defined(ONEBIT_HAVE_NEON)
ONEBIT_REGISTER_KERNEL("bgemm", neon, onebit::neon::bgemm);
#endif
