// Registers the channel_affine implementations in the dispatch table.
#include "onebit/dispatch.h"
#include "onebit/kernels.h"

ONEBIT_REGISTER_KERNEL("channel_affine", ref, onebit::ref::channel_affine);
#if defined(ONEBIT_HAVE_X86)
ONEBIT_REGISTER_KERNEL("channel_affine", avx2, onebit::avx2::channel_affine);
#endif
