"""Thread count of numpy's BLAS (OpenBLAS), which the engine sets before each run.

numpy's wheels ship OpenBLAS (``scipy_openblas``), which by default uses every core. The
interpreter calls :func:`set_blas_threads` before a run (with 1: see interpreter.py), through the
library's own ``*_set_num_threads`` entry point found with ctypes among the libraries loaded in
this process (the approach of threadpoolctl, without the dependency). Where no OpenBLAS is
found (another BLAS, another OS), it does nothing and :func:`blas_threads` returns None.
The setting is process-wide, as in OpenBLAS itself.
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np  # noqa: F401  (loads numpy's BLAS before the search)

__all__ = ["set_blas_threads", "blas_threads"]

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
            "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads64_",
            "openblas_get_num_threads")
_lock = threading.Lock()
_api: tuple | None = None
_current: int | None = None


def _find() -> tuple:
    """(setter, getter) ctypes functions of the loaded OpenBLAS, or (None, None)."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return None, None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
        getter = next((getattr(lib, s) for s in _GETTERS if hasattr(lib, s)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            return setter, getter
    return None, None


def _functions() -> tuple:
    global _api
    if _api is None:
        with _lock:
            if _api is None:
                _api = _find()
    return _api


def blas_threads() -> int | None:
    """Threads numpy's OpenBLAS uses now (None if it cannot be found)."""
    getter = _functions()[1]
    return None if getter is None else int(getter())


def set_blas_threads(n: int) -> None:
    """Make numpy's OpenBLAS use ``n`` threads (no-op without OpenBLAS; cheap when unchanged)."""
    global _current
    if _current == n:
        return
    setter = _functions()[0]
    if setter is not None:
        setter(int(n))
    _current = n
