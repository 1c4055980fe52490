"""Native kernels, numpy in and numpy out (no torch needed).

Packed layout (``csrc/include/onebit/formats.h``, same as Larq Compute Engine): values are
packed along the last axis (channels, NHWC) into ``uint32`` words, little-endian bit order
(value ``k`` is bit ``k % 32`` of word ``k // 32``); ``x >= 0`` is +1 (bit 0) and ``x < 0`` is
-1 (bit 1); padding bits are 0 and the true depth ``K`` is carried beside the data.

Every function takes ``num_threads``; results are bit-identical for any thread count. The
implementation of each op is picked once per process from the best ISA the CPU supports, or
the one forced with ``ONEBIT_ISA=ref|avx2|avx512``; :func:`use_isa` switches it temporarily
(tests use it to compare every path against ``ref``).
"""

from __future__ import annotations

from onebit.kernels._common import (
    BITS_PER_WORD,
    active_isa,
    kernel_table,
    packed_words,
    supported_isas,
    use_isa,
)
from onebit.kernels.binary import (
    OutputThresholds,
    bconv2d,
    bgemm,
    binary_output_thresholds,
)
from onebit.kernels.bitpack import bitpack, unpack
from onebit.kernels.float_ops import channel_affine, conv2d_direct, depthwise_conv2d
from onebit.kernels.pool import bmaxpool2d, pool_padding
from onebit.kernels.ternary import (
    TERNARY_BLOCK,
    pack_ternary,
    quantize_i8,
    ternary_linear,
    ternary_row_bytes,
    tgemm,
    tgemv,
    unpack_ternary,
)

__all__ = [
    "BITS_PER_WORD",
    "packed_words",
    "bitpack",
    "unpack",
    "bgemm",
    "bconv2d",
    "binary_output_thresholds",
    "OutputThresholds",
    "supported_isas",
    "active_isa",
    "use_isa",
    "kernel_table",
    "bmaxpool2d",
    "pool_padding",
    "TERNARY_BLOCK",
    "ternary_row_bytes",
    "pack_ternary",
    "unpack_ternary",
    "quantize_i8",
    "tgemv",
    "tgemm",
    "ternary_linear",
    "conv2d_direct",
    "depthwise_conv2d",
    "channel_affine",
]
