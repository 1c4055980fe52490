"""Loads the compiled extension ``onebit._C`` with an error that says how to build it."""

from __future__ import annotations

from onebit.errors import NativeExtensionError

try:
    from onebit import _C  # noqa: F401  (re-exported)
except ImportError as exc:  # pragma: no cover - only without a build
    raise NativeExtensionError(
        "onebit's native extension onebit._C could not be imported "
        f"({exc}). Build it with `make install` (or `pip install -e .` in a virtualenv with a C++17 "
        "compiler and CMake), then import onebit again."
    ) from exc

__all__ = ["_C"]
