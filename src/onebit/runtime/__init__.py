"""onebit runtime: read and validate ``.onebit`` model files (numpy only, never torch).

``load_model(path_or_bytes)`` returns a :class:`ModelFile` (graph + zero-copy tensors) after
validating every byte of the file (docs/format.md); a bad file raises :class:`FormatError`.
``Interpreter(path_or_bytes_or_ModelFile, num_threads=1)`` runs it: ``.run(x)``, ``.profile(x)``.
"""

from __future__ import annotations

from onebit.errors import FormatError
from onebit.runtime.format import FORMAT_VERSION, MAGIC
from onebit.runtime.interpreter import Interpreter
from onebit.runtime.profile import Profile
from onebit.runtime.reader import ModelFile, load_model
from onebit.runtime.schema import OPS

__all__ = ["FormatError", "ModelFile", "load_model", "Interpreter", "Profile", "OPS", "FORMAT_VERSION", "MAGIC"]
