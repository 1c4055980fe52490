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

import contextlib
from collections.abc import Iterator

import numpy as np

from onebit._native import _C
from onebit.errors import DTypeError, ShapeError

__all__ = [
    "BITS_PER_WORD",
    "packed_words",
    "bitpack",
    "unpack",
    "supported_isas",
    "active_isa",
    "use_isa",
    "kernel_table",
]

BITS_PER_WORD = 32


def packed_words(k: int) -> int:
    """Number of uint32 words that hold ``k`` packed values: ``ceil(k / 32)``."""
    return (int(k) + BITS_PER_WORD - 1) // BITS_PER_WORD


def _as_array(x: object, name: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "numpy"):  # a torch tensor: share memory, no copy
        x = x.detach().cpu().numpy()
    if isinstance(x, np.generic):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise DTypeError(f"{name} must be a numpy array (or torch tensor), got {type(x).__name__}")
    return x


def _check_threads(num_threads: int) -> int:
    if not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"num_threads must be an integer >= 1, got {num_threads!r}")
    return int(num_threads)


def bitpack(x: np.ndarray, *, num_threads: int = 1) -> np.ndarray:
    """Pack the signs of ``x`` (shape ``(..., K)``, float32 or int8) into ``uint32 (..., ceil(K/32))``.

    ``bit = 1 if x < 0 else 0`` (so ``-0.0`` and NaN pack as +1, like LCE's LceQuantize).
    """
    x = _as_array(x, "x")
    if x.ndim < 1:
        raise ShapeError("bitpack expects an array of shape (..., K) with at least one axis, got a scalar")
    if x.dtype == np.float32:
        return _C.bitpack_f32(np.ascontiguousarray(x), _check_threads(num_threads))
    if x.dtype == np.int8:
        return _C.bitpack_i8(np.ascontiguousarray(x), _check_threads(num_threads))
    raise DTypeError(
        f"bitpack expects float32 or int8 input, got {x.dtype}; convert with x.astype(np.float32)"
    )


def unpack(packed: np.ndarray, k: int, *, num_threads: int = 1) -> np.ndarray:
    """Expand ``uint32 (..., ceil(K/32))`` back to float32 ``(..., K)`` of +1.0 / -1.0."""
    packed = _as_array(packed, "packed")
    if packed.dtype != np.uint32:
        raise DTypeError(f"unpack expects uint32 packed words, got {packed.dtype}")
    if packed.ndim < 1:
        raise ShapeError("unpack expects an array of shape (..., W), got a scalar")
    if k < 0 or packed.shape[-1] != packed_words(k):
        raise ShapeError(
            f"unpack: K={k} needs {packed_words(k) if k >= 0 else '?'} words on the last axis, "
            f"got shape {packed.shape}; pass the true channel count K that was packed"
        )
    return _C.unpack_f32(np.ascontiguousarray(packed), int(k), _check_threads(num_threads))


def supported_isas() -> list[str]:
    """ISA paths this build has and this CPU runs, worst to best (``ref`` is always first)."""
    return list(_C.supported_isas())


def active_isa() -> str:
    """The ISA the dispatch table currently uses."""
    return str(_C.active_isa())


def kernel_table() -> dict[str, str]:
    """``{op: isa of the implementation in use}`` for every native op."""
    return dict(_C.kernel_table())


@contextlib.contextmanager
def use_isa(isa: str) -> Iterator[str]:
    """Temporarily refill the dispatch table for ``isa`` (``ref``, ``avx2``, ``avx512``).

    Raises ``ValueError`` if this CPU or build cannot run it. Not thread-safe: meant for tests
    and benchmarks that compare paths.
    """
    if isa not in supported_isas():
        raise ValueError(f"ISA {isa!r} is not supported here; supported: {supported_isas()}")
    previous = active_isa()
    _C.set_isa(isa)
    try:
        yield isa
    finally:
        _C.set_isa(previous)
