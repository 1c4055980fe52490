"""Shared helpers of the kernel wrappers: input checks and ISA selection."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from onebit._native import _C
from onebit.errors import DTypeError

BITS_PER_WORD = 32


def packed_words(k: int) -> int:
    """Number of uint32 words that hold ``k`` packed values: ``ceil(k / 32)``."""
    return (int(k) + BITS_PER_WORD - 1) // BITS_PER_WORD


def as_array(x: object, name: str) -> np.ndarray:
    """numpy arrays pass through; torch tensors are viewed as numpy (no copy on CPU)."""
    if hasattr(x, "detach") and hasattr(x, "numpy"):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.generic):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise DTypeError(f"{name} must be a numpy array (or torch tensor), got {type(x).__name__}")
    return x


def check_threads(num_threads: int) -> int:
    if not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"num_threads must be an integer >= 1, got {num_threads!r}")
    return int(num_threads)


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
