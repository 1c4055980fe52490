"""Op implementations of the interpreter, one builder per op type of :mod:`onebit.runtime.schema`.

A builder turns one op of a graph, with every shape known (symbols bound for one input shape),
into a :class:`Step`: a closure ``run(ins, outs) -> outputs`` that computes the op's outputs.
``ins`` holds the input arrays (``None`` for an absent optional input), ``outs`` the buffers the
planner preallocated for the outputs a step asks for (``Step.planned``), ``None`` for the others.
Builders do all per-shape work once (weight layouts, padded scratch buffers, index maps), so
``run`` only calls kernels and numpy ufuncs with ``out=``.

Arrays are in engine layout (channels-last). A ``bitpacked`` value of logical shape ``(..., C)``
is a uint32 array ``(..., ceil(C/32))`` (docs/format.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from onebit.runtime.format import BITPACKED
from onebit.runtime.schema import OpSchema, packed_words

__all__ = ["Node", "Step", "BUILDERS", "register", "physical", "apply_clamp", "scratch"]

RunFn = Callable[[list, list], list]


@dataclass
class Node:
    """One op with concrete shapes: what a builder sees.

    Attributes:
        name, type, attrs: from the graph document (attrs complete).
        schema: the op's :class:`OpSchema`.
        weights: per input position, the stored tensor (read-only) or ``None`` (computed value
            or absent input).
        inputs: per input position, ``(dtype, logical shape)`` with ints only, or ``None``.
        outputs: per output, ``(dtype, logical shape)``.
        num_threads: threads the kernels may use.
        cache: per-op dict shared by every plan of an interpreter (prepared weights).
    """

    name: str
    type: str
    attrs: dict[str, Any]
    schema: OpSchema
    weights: list[np.ndarray | None]
    inputs: list[tuple[str, tuple[int, ...]] | None]
    outputs: list[tuple[str, tuple[int, ...]]]
    num_threads: int = 1
    cache: dict = field(default_factory=dict)

    def weight(self, port: str) -> np.ndarray | None:
        """The stored tensor given for input port ``port`` (``None`` when absent)."""
        for i, p in enumerate(self.schema.inputs):
            if p.name == port:
                return self.weights[i] if i < len(self.weights) else None
        raise KeyError(port)

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per interpreter (weight preparation shared by all plans)."""
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


@dataclass
class Step:
    """What the planner schedules for one op.

    Attributes:
        run: ``run(ins, outs) -> list of output arrays``.
        planned: per output, True if the planner must pass a preallocated buffer of the
            output's physical dtype/shape in ``outs`` (False: the step returns its own array).
        alias: index of the input that output 0 is a view of (reshape, flatten), else None:
            the planner keeps that input's buffer alive as long as the view.
    """

    run: RunFn
    planned: tuple[bool, ...]
    alias: int | None = None


BUILDERS: dict[str, Callable[[Node], Step]] = {}


def register(*types: str):
    """Decorator: ``@register("relu", "sigmoid")`` makes the function the builder of those ops."""

    def deco(fn):
        for t in types:
            BUILDERS[t] = fn
        return fn

    return deco


def physical(dtype: str, shape: tuple[int, ...]) -> tuple[np.dtype, tuple[int, ...]]:
    """Storage dtype and shape of a value: ``bitpacked (..., C)`` -> ``uint32 (..., ceil(C/32))``."""
    if dtype == BITPACKED:
        return np.dtype(np.uint32), tuple(shape[:-1]) + (packed_words(shape[-1]),)
    return np.dtype(dtype), tuple(shape)


def apply_clamp(y: np.ndarray, lo: float | None, hi: float | None) -> None:
    """``y = clamp(y, lo, hi)`` in place; ``None`` is an open bound (ReLU: ``lo = 0``)."""
    if lo is not None and hi is not None:
        np.clip(y, lo, hi, out=y)
    elif lo is not None:
        np.maximum(y, np.float32(lo), out=y)
    elif hi is not None:
        np.minimum(y, np.float32(hi), out=y)


def scratch(shape: tuple[int, ...], dtype=np.float32, fill: float | None = None) -> np.ndarray:
    """A per-plan scratch array (64-byte aligned), optionally filled."""
    dtype = np.dtype(dtype)
    nbytes = max(math.prod(shape) * dtype.itemsize, 1)
    raw = np.empty(nbytes + 64, dtype=np.uint8)
    off = -raw.ctypes.data % 64
    arr = raw[off:off + math.prod(shape) * dtype.itemsize].view(dtype).reshape(shape)
    if fill is not None:
        arr.fill(fill)
    return arr


# Import the op families so that they register themselves.
from onebit.runtime.ops import binary, elementwise, float_conv, llm, pool, shape  # noqa: E402,F401
