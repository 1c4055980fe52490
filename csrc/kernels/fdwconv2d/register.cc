// Registers the depthwise float conv implementations in the dispatch table.
#include "onebit/dispatch.h"
#include "onebit/kernels.h"

ONEBIT_REGISTER_KERNEL("fdwconv2d", ref, onebit::ref::fdwconv2d);
#if defined(ONEBIT_HAVE_X86)
ONEBIT_REGISTER_KERNEL("fdwconv2d", avx2, onebit::avx2::fdwconv2d);
#endif
