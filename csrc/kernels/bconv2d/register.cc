// Registers the binary convolution implementations in the dispatch table.
#include "onebit/dispatch.h"
#include "onebit/kernels.h"

ONEBIT_REGISTER_KERNEL("bconv2d", ref, onebit::ref::bconv2d);
#if defined(ONEBIT_HAVE_X86)
ONEBIT_REGISTER_KERNEL("bconv2d", avx2, onebit::avx2::bconv2d);
ONEBIT_REGISTER_KERNEL("bconv2d", avx512, onebit::avx512::bconv2d);
#endif
#if defined(ONEBIT_HAVE_NEON)
ONEBIT_REGISTER_KERNEL("bconv2d", neon, onebit::neon::bconv2d);
#endif
