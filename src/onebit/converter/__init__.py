"""onebit converter: PyTorch model -> ``.onebit`` file.

``convert(model, example_input, path=None)`` runs the pipeline of :mod:`onebit.converter.pipeline`
(capture, lower, passes in :mod:`onebit.converter.passes`, emit) and :func:`write_model`.
"""

from __future__ import annotations

from onebit.converter.writer import make_provenance, write_model

__all__ = ["convert", "write_model", "make_provenance"]


def __getattr__(name: str):
    # convert needs torch; the writer does not (numpy only), so import it lazily.
    if name == "convert":
        from onebit.converter.pipeline import convert

        return convert
    raise AttributeError(f"module 'onebit.converter' has no attribute {name!r}")
