// Registers the bmaxpool2d implementations in the dispatch table.
#include "onebit/dispatch.h"
#include "onebit/kernels.h"

ONEBIT_REGISTER_KERNEL("bmaxpool2d", ref, onebit::ref::bmaxpool2d);
#if defined(ONEBIT_HAVE_X86)
ONEBIT_REGISTER_KERNEL("bmaxpool2d", avx2, onebit::avx2::bmaxpool2d);
ONEBIT_REGISTER_KERNEL("bmaxpool2d", avx512, onebit::avx512::bmaxpool2d);
#endif
#if defined(ONEBIT_HAVE_NEON)
ONEBIT_REGISTER_KERNEL("bmaxpool2d", neon, onebit::neon::bmaxpool2d);
#endif
