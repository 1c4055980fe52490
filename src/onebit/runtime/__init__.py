"""onebit runtime: read and validate ``.onebit`` model files (numpy only, never torch).

``load_model(path_or_bytes)`` returns a :class:`ModelFile` (graph + zero-copy tensors) after
validating every byte of the file (docs/format.md); a bad file raises :class:`FormatError`.
"""

from __future__ import annotations

from onebit.errors import FormatError
from onebit.runtime.format import FORMAT_VERSION, MAGIC
from onebit.runtime.reader import ModelFile, load_model
from onebit.runtime.schema import OPS

__all__ = ["FormatError", "ModelFile", "load_model", "OPS", "FORMAT_VERSION", "MAGIC"]
