"""Datasets and batching.

``load_cifar10`` / ``find_cifar10`` and the IDX readers (``load_mnist``, ``load_fashion_mnist``,
``read_idx``) need numpy alone. ``ArrayLoader`` (``onebit.data.loader``) and
the transforms (``onebit.data.transforms``) use torch and are imported on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from onebit.data.cifar10 import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    find_cifar10,
    load_cifar10,
)
from onebit.data.idx import load_fashion_mnist, load_mnist, read_idx

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "find_cifar10",
    "load_cifar10",
    "load_mnist",
    "load_fashion_mnist",
    "read_idx",
    "ArrayLoader",
    "transforms",
]

_LAZY = {"ArrayLoader": ("onebit.data.loader", "ArrayLoader"),
         "transforms": ("onebit.data.transforms", None)}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'onebit.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
