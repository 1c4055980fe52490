"""onebit converter: PyTorch model -> ``.onebit`` file."""

from __future__ import annotations

from onebit.converter.writer import make_provenance, write_model

__all__ = ["write_model", "make_provenance"]
