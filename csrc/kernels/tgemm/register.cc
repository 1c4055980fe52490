// Registers the tgemv / tgemm implementations in the dispatch table.
#include "onebit/dispatch.h"
#include "onebit/kernels.h"

ONEBIT_REGISTER_KERNEL("tgemv", ref, onebit::ref::tgemv);
ONEBIT_REGISTER_KERNEL("tgemm", ref, onebit::ref::tgemm);
#if defined(ONEBIT_HAVE_X86)
ONEBIT_REGISTER_KERNEL("tgemv", avx2, onebit::avx2::tgemv);
ONEBIT_REGISTER_KERNEL("tgemm", avx2, onebit::avx2::tgemm);
ONEBIT_REGISTER_KERNEL("tgemv", avx512, onebit::avx512::tgemv);
ONEBIT_REGISTER_KERNEL("tgemm", avx512, onebit::avx512::tgemm);
#endif
#if defined(ONEBIT_HAVE_NEON)
ONEBIT_REGISTER_KERNEL("tgemv", neon, onebit::neon::tgemv);
ONEBIT_REGISTER_KERNEL("tgemm", neon, onebit::neon::tgemm);
#endif
