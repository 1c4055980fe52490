"""onebit: train, convert and run 1-bit (binary) and 1.58-bit (ternary) neural networks.

``import onebit`` needs numpy alone, and so do ``onebit.kernels`` and ``onebit.runtime``
(the deployment side). The training side (``onebit.quantizers``, ``onebit.nn``,
``onebit.summary``, ``onebit.optim``, ``onebit.models``, ``onebit.train``, ``onebit.converter``)
imports torch on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from onebit._version import __version__
from onebit.errors import DatasetError, DTypeError, FormatError, OnebitError, ShapeError

__all__ = [
    "__version__",
    "OnebitError",
    "ShapeError",
    "DTypeError",
    "DatasetError",
    "FormatError",
    "info",
    "kernels",
    "quantizers",
    "nn",
    "optim",
    "summary",
    "data",
    "models",
    "create_model",
    "list_models",
    "train",
    "runtime",
    "converter",
    "convert",
]

# Submodules (and functions of them) loaded on first access, so that `import onebit` does not
# import torch.
_LAZY = {
    "kernels": ("onebit.kernels", None),
    "quantizers": ("onebit.quantizers", None),
    "nn": ("onebit.nn", None),
    "optim": ("onebit.optim", None),
    "data": ("onebit.data", None),
    "models": ("onebit.models", None),
    "create_model": ("onebit.models", "create_model"),
    "list_models": ("onebit.models", "list_models"),
    "train": ("onebit.train", None),
    "runtime": ("onebit.runtime", None),
    "converter": ("onebit.converter", None),
    "convert": ("onebit.converter", "convert"),
    "summary": ("onebit.model_summary", "summary"),
    "info": ("onebit.info", "info"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'onebit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
