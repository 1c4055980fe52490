"""Typed exceptions. Every message says what was expected, what was found and what to do."""

from __future__ import annotations


class OnebitError(Exception):
    """Base class of every error onebit raises on purpose."""


class ShapeError(OnebitError, ValueError):
    """An array or tensor has the wrong shape."""


class DTypeError(OnebitError, TypeError):
    """An array or tensor has the wrong dtype."""


class DatasetError(OnebitError, FileNotFoundError):
    """A dataset is missing or not in a layout onebit can read."""


class NativeExtensionError(OnebitError, ImportError):
    """The compiled extension ``onebit._C`` is missing or was built for another Python."""


class FormatError(OnebitError, ValueError):
    """A model file (``.onebit``) is corrupt, truncated, hostile or from an unsupported version."""


class ConversionError(OnebitError, ValueError):
    """A PyTorch model (a module, function or pattern in it) cannot be converted to ``.onebit``."""
