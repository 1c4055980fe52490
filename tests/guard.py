"""Arrays that end exactly at a page followed by an inaccessible guard page.

A kernel that reads or writes even one byte past the end of such an array crashes the test
process (SIGSEGV) instead of silently passing: the guard-page form of llama.cpp's sentinels.
"""

from __future__ import annotations

import ctypes
import mmap

import numpy as np

_PAGE = mmap.PAGESIZE
_PROT_NONE = 0
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def guarded_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialized C-contiguous array whose last byte is followed by a PROT_NONE page."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    data_pages = max(1, -(-nbytes // _PAGE))
    buf = mmap.mmap(-1, (data_pages + 1) * _PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    guard = base + data_pages * _PAGE
    if _libc.mprotect(guard, _PAGE, _PROT_NONE) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")
    offset = data_pages * _PAGE - nbytes
    # The array's base (a buffer export of `buf`) keeps the mapping alive exactly as long as
    # some view of it exists; then it is unmapped (the process has a limited number of maps).
    return np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=offset).view(dtype).reshape(shape)


def guarded_copy(x: np.ndarray) -> np.ndarray:
    out = guarded_empty(x.shape, x.dtype)
    out[...] = x
    return out
