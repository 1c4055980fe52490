"""bitpack / unpack: signs of float32 or int8 NHWC data packed along channels into uint32 words."""

from __future__ import annotations

import numpy as np

from onebit._native import _C
from onebit.errors import DTypeError, ShapeError
from onebit.kernels._common import as_array, check_threads, packed_words

__all__ = ["bitpack", "unpack"]


def bitpack(x: np.ndarray, *, num_threads: int = 1) -> np.ndarray:
    """Pack the signs of ``x`` (shape ``(..., K)``, float32 or int8) into ``uint32 (..., ceil(K/32))``.

    ``bit = 1 if x < 0 else 0`` (so ``-0.0`` and NaN pack as +1, like LCE's LceQuantize).
    """
    x = as_array(x, "x")
    if x.ndim < 1:
        raise ShapeError("bitpack expects an array of shape (..., K) with at least one axis, got a scalar")
    if x.dtype == np.float32:
        return _C.bitpack_f32(np.ascontiguousarray(x), check_threads(num_threads))
    if x.dtype == np.int8:
        return _C.bitpack_i8(np.ascontiguousarray(x), check_threads(num_threads))
    raise DTypeError(
        f"bitpack expects float32 or int8 input, got {x.dtype}; convert with x.astype(np.float32)"
    )


def unpack(packed: np.ndarray, k: int, *, num_threads: int = 1) -> np.ndarray:
    """Expand ``uint32 (..., ceil(K/32))`` back to float32 ``(..., K)`` of +1.0 / -1.0."""
    packed = as_array(packed, "packed")
    if packed.dtype != np.uint32:
        raise DTypeError(f"unpack expects uint32 packed words, got {packed.dtype}")
    if packed.ndim < 1:
        raise ShapeError("unpack expects an array of shape (..., W), got a scalar")
    if k < 0 or packed.shape[-1] != packed_words(k):
        raise ShapeError(
            f"unpack: K={k} needs {packed_words(k) if k >= 0 else '?'} words on the last axis, "
            f"got shape {packed.shape}; pass the true channel count K that was packed"
        )
    return _C.unpack_f32(np.ascontiguousarray(packed), int(k), check_threads(num_threads))
