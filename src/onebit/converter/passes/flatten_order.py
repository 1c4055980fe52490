"""Flatten in the engine's order when only dense layers read the flattened vector.

torch flattens ``(N, C, H, W)`` in ``(C, H, W)`` order; the engine's value is ``(N, H, W, C)``,
so the lowering emits ``transpose(0, 3, 1, 2)`` before ``flatten``. When every reader of the
flattened vector is a ``dense``/``bdense``/``ternary_linear`` (directly, or through a
``quantize`` whose readers are all ``bdense``), the transpose is dropped and each reader's
weight columns are permuted instead: column ``c*H*W + h*W + w`` moves to ``(h*W + w)*C + c``.
Nothing is computed differently; a copy per inference is saved.
"""

from __future__ import annotations

import numpy as np

from onebit.converter.ir import Graph, Node

__all__ = ["run"]

_DENSE = ("dense", "bdense", "ternary_linear")


def _dense_readers(graph: Graph, value: str) -> list[Node] | None:
    if graph.is_output(value):
        return None
    found = []
    for r in graph.consumers(value):
        if r.type in _DENSE and r.inputs[0] == value:
            found.append(r)
        elif r.type == "quantize":
            sub = _dense_readers(graph, r.outputs[0])
            if sub is None or any(s.type != "bdense" for s in sub):
                return None
            found += sub
        else:
            return None
    return found


def run(graph: Graph) -> int:
    """Drop every removable transpose-before-flatten; return how many."""
    values = graph.infer()
    done = 0
    for tr in list(graph.nodes):
        if tr.type != "transpose" or list(tr.attrs.get("perm", ())) != [0, 3, 1, 2]:
            continue
        flat = graph.only_consumer(tr.outputs[0])
        if flat is None or flat.type != "flatten":
            continue
        readers = _dense_readers(graph, flat.outputs[0])
        if not readers or any(r.type == "ternary_linear" for r in readers):
            continue  # ternary weights are int8 codes; permute them too would be the same, kept simple
        _, h, w, c = values[tr.inputs[0]].shape
        # engine column j = (h*W + w)*C + c reads torch column c*H*W + h*W + w
        hh, ww, cc = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
        src = (cc * h * w + hh * w + ww).reshape(-1)
        for r in readers:
            r.params["weights"] = np.ascontiguousarray(r.params["weights"][:, src])
            r.meta["input_order"] = src  # engine feature j is torch feature src[j] (for probes)
        flat.inputs = [tr.inputs[0]]
        graph.remove(tr)
        done += 1
    return done
