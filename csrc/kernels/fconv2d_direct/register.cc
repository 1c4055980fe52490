// Registers the direct float conv implementations in the dispatch table.
#include "onebit/dispatch.h"
#include "onebit/kernels.h"

ONEBIT_REGISTER_KERNEL("fconv2d_direct", ref, onebit::ref::fconv2d_direct);
#if defined(ONEBIT_HAVE_X86)
ONEBIT_REGISTER_KERNEL("fconv2d_direct", avx2, onebit::avx2::fconv2d_direct);
#endif
