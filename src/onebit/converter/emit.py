"""Last step: the IR graph -> the ``.onebit`` graph document and its tensors (docs/format.md).

Each op's weight ports become stored tensors named ``<op name>.<port>`` (``""`` for an absent
optional port), activation ports keep their value names, and stored constants
(``graph.constants``) are written as they are. The writer (``write_model``) then validates the
whole document with the reader's rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onebit.converter.ir import Graph
from onebit.errors import ConversionError
from onebit.runtime import schema

__all__ = ["emit"]


def emit(graph: Graph) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Return ``(graph document, tensors)`` ready for :func:`onebit.converter.write_model`."""
    tensors: dict[str, np.ndarray] = dict(graph.constants)
    used = {io.name for io in graph.inputs} | set(tensors)
    for n in graph.nodes:
        used.add(n.name)
        used.update(n.outputs)
    ops = []
    for n in graph.nodes:
        sch = schema.OPS[n.type]
        inputs: list[str] = []
        acts = iter(n.inputs)
        for port in sch.inputs:
            if port.weight:
                arr = n.params.get(port.name)
                if arr is None:
                    inputs.append("")
                    continue
                name = f"{n.name}.{port.name}"
                if name in used:
                    raise ConversionError(f"internal: tensor name {name!r} collides with a value name")
                used.add(name)
                tensors[name] = np.ascontiguousarray(arr)
                inputs.append(name)
            elif port.variadic:
                inputs.extend(acts)
            else:
                inputs.append(next(acts, ""))
        ops.append({"type": n.type, "name": n.name, "inputs": inputs, "outputs": list(n.outputs),
                    "attrs": dict(n.attrs)})
    doc = {
        "inputs": [{"name": io.name, "dtype": io.dtype, "shape": list(io.shape), "layout": io.layout}
                   for io in graph.inputs],
        "outputs": [{"name": io.name, "dtype": io.dtype, "shape": list(io.shape), "layout": io.layout}
                    for io in graph.outputs],
        "ops": ops,
    }
    return doc, tensors
