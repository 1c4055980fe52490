"""The converter's intermediate representation: a list of schema ops on named values.

A :class:`Graph` is what the passes rewrite: ``nodes`` in execution order, each a schema op
(``onebit.runtime.schema.OPS``) whose *activation* inputs are value names and whose *weight*
inputs (ports marked ᵂ in docs/format.md) are numpy arrays in ``Node.params`` keyed by port
name. Values are in the engine layout (channels-last, docs/format.md "Layouts"). Binary weights
stay float ±1 OHWI arrays until the ``pack_weights`` pass packs them (so a pass may still flip
or permute them); ``Node.meta`` carries what a later pass needs (``"source"``: the torch module
or node the op came from, used in messages and probes).

numpy only: every pass works on this, never on torch objects.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onebit.errors import ConversionError, FormatError
from onebit.runtime import schema
from onebit.runtime.schema import Value

__all__ = ["Node", "GraphIO", "Graph", "sanitize"]

_BAD = re.compile(r"[^A-Za-z0-9_.:/\-\[\]]")


def sanitize(name: str) -> str:
    """A torch name (``features.0.conv``, ``add_1``) as a valid ``.onebit`` name (``[A-Za-z0-9_.:/-[]]``,
    not starting with ``__``, at most 200 characters)."""
    s = _BAD.sub("_", name) or "v"
    if s.startswith("__"):
        s = "m" + s
    return s[:200]


@dataclass
class Node:
    """One op: ``type`` (schema op), activation ``inputs`` (value names, ``""`` = absent optional
    activation port), ``outputs``, ``attrs`` (defaults filled at emission) and ``params`` (weight
    ports -> arrays; a missing weight port is absent)."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The torch module path / fx node this op comes from."""
        return str(self.meta.get("source", self.name))


@dataclass
class GraphIO:
    """A graph input or output: name, dtype, user shape (``"batch"`` on axis 0) and layout."""

    name: str
    dtype: str
    shape: list
    layout: str


@dataclass
class Graph:
    """Nodes in execution order plus graph inputs/outputs; :meth:`infer` gives every value's type."""

    inputs: list[GraphIO]
    outputs: list[GraphIO]
    nodes: list[Node] = field(default_factory=list)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    """Stored tensors read as activation inputs (``add``/``mul`` operand ``b``), by name."""
    _ids: Any = field(default_factory=lambda: itertools.count(), repr=False)

    # -- naming -------------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        """A value/op name not used yet, derived from ``base``."""
        used = self._names()
        base = sanitize(base)
        if base not in used:
            return base
        while True:
            cand = f"{base}:{next(self._ids)}"
            if cand not in used:
                return cand

    def _names(self) -> set[str]:
        names = {io.name for io in self.inputs} | set(self.constants)
        for n in self.nodes:
            names.add(n.name)
            names.update(n.outputs)
        return names

    # -- queries ------------------------------------------------------------------------------
    def producer(self, value: str) -> Node | None:
        """The node that outputs ``value`` (None for a graph input)."""
        for n in self.nodes:
            if value in n.outputs:
                return n
        return None

    def consumers(self, value: str) -> list[Node]:
        """Nodes reading ``value``, in order."""
        return [n for n in self.nodes if value in n.inputs]

    def is_output(self, value: str) -> bool:
        return any(o.name == value for o in self.outputs)

    def only_consumer(self, value: str) -> Node | None:
        """The single node reading ``value`` if it is read exactly once and is not a graph output."""
        cons = self.consumers(value)
        if len(cons) != 1 or self.is_output(value) or cons[0].inputs.count(value) != 1:
            return None
        return cons[0]

    def infer(self) -> dict[str, Value]:
        """Dtype and engine shape of every value (schema rules), checking every op on the way.

        Raises:
            ConversionError: an op's inputs break its schema rule (a converter bug or an
                unsupported pattern); the message names the op and its torch source.
        """
        values: dict[str, Value] = {}
        for io in self.inputs:
            shape = list(io.shape)
            if io.layout == "NCHW":
                shape = [shape[0], shape[2], shape[3], shape[1]]
            values[io.name] = Value(io.dtype, tuple(shape))
        for name, arr in self.constants.items():
            values[name] = Value(_dtype_name(arr), tuple(arr.shape))
        for n in self.nodes:
            sch = schema.OPS[n.type]
            attrs = schema.complete_attrs(sch, _plain_attrs(n.attrs))
            ins: list[Value | None] = []
            acts = iter(n.inputs)
            for port in sch.inputs:
                if port.weight:
                    arr = n.params.get(port.name)
                    ins.append(None if arr is None else _weight_value(n.type, port.name, arr))
                elif port.variadic:
                    ins.extend(values[v] for v in acts)
                else:
                    v = next(acts, "")
                    if v and v not in values:
                        raise ConversionError(f"op {n.name} ({n.source}): input {v!r} is not defined before it")
                    ins.append(values[v] if v else None)
            try:
                schema.check_attrs(sch, attrs, n.name)
                outs = schema.infer_outputs(sch, ins, attrs)
            except FormatError as e:
                raise ConversionError(f"op {n.name} ({n.type}, from {n.source}): {e}") from None
            for name, v in zip(n.outputs, outs):
                values[name] = v
        return values

    # -- edits --------------------------------------------------------------------------------
    def replace_uses(self, old: str, new: str) -> None:
        """Every read of ``old`` (op inputs and graph outputs) reads ``new`` instead."""
        for n in self.nodes:
            n.inputs = [new if v == old else v for v in n.inputs]
        for o in self.outputs:
            if o.name == old:
                raise ConversionError(f"internal: cannot redirect graph output {old!r}")

    def remove(self, node: Node) -> None:
        self.nodes = [n for n in self.nodes if n is not node]

    def insert_after(self, anchor: Node, node: Node) -> None:
        i = next(i for i, n in enumerate(self.nodes) if n is anchor)
        self.nodes.insert(i + 1, node)

    def prune(self) -> int:
        """Remove nodes none of whose outputs is read or is a graph output; return how many."""
        removed = 0
        while True:
            live = {o.name for o in self.outputs}
            for n in self.nodes:
                live.update(v for v in n.inputs if v)
            dead = [n for n in self.nodes if not any(v in live for v in n.outputs)]
            if not dead:
                for c in set(self.constants) - live:
                    del self.constants[c]
                return removed
            for n in dead:
                self.remove(n)
            removed += len(dead)

    def count(self, op_type: str) -> int:
        """How many ops of ``op_type`` the graph has."""
        return sum(n.type == op_type for n in self.nodes)


def _dtype_name(arr: np.ndarray) -> str:
    return np.dtype(arr.dtype).name


def _weight_value(op_type: str, port: str, arr: np.ndarray) -> Value:
    """The stored value a weight will be: binary weights still float ±1 count as packed uint32
    ``(..., ceil(C/32))``, ternary weights still int8 codes as tq2 ``uint8 (N, 32*ceil(K/128))``."""
    shape = tuple(arr.shape)
    if port == "weights" and arr.dtype != np.uint32 and op_type in ("bconv2d", "bdense"):
        return Value("uint32", shape[:-1] + (schema.packed_words(shape[-1]),))
    if port == "weights" and arr.dtype == np.int8 and op_type == "ternary_linear":
        return Value("uint8", (shape[0], schema.ternary_row_bytes(shape[1])))
    return Value(_dtype_name(arr), shape)


def _plain_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, tuple):
            v = list(v)
        if isinstance(v, (np.floating,)):
            v = float(v)
        if isinstance(v, list):
            v = [int(x) if isinstance(x, np.integer) else x for x in v]
        out[k] = v
    return out
