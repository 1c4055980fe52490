"""Fuse ReLU and clamps (ReLU6, Hardtanh, clamp) into the output transform of the op before them.

``conv2d``, ``dense``, ``bconv2d`` and ``bdense`` (float output) end in
``y = clamp(z, clamp_min, clamp_max)`` (LCE sec. 3.2: fused activations run on the accumulator
before it is written). ``relu`` is ``clamp(0, inf)``; a clamp after a clamp is their
intersection, ``clamp(clamp(z, a, b), c, d) = clamp(z, max(a, c), min(b, d))`` when the
intervals overlap. A ``clamp`` op after a ``relu``/``clamp`` op merges the same way. PReLU has
no slot in the transform and stays a ``prelu`` op.
"""

from __future__ import annotations

from onebit.converter.ir import Graph, Node

__all__ = ["run"]

_FUSABLE = ("conv2d", "dense", "bconv2d", "bdense", "clamp")


def _bounds(act: Node) -> tuple[float | None, float | None]:
    if act.type == "relu":
        return 0.0, None
    return act.attrs.get("min"), act.attrs.get("max")


def _intersect(lo1, hi1, lo2, hi2):
    lo = lo1 if lo2 is None else lo2 if lo1 is None else max(lo1, lo2)
    hi = hi1 if hi2 is None else hi2 if hi1 is None else min(hi1, hi2)
    return lo, hi


def run(graph: Graph) -> int:
    """Fuse every ``relu``/``clamp`` whose producer has a clamp slot and no other reader."""
    done = 0
    for act in list(graph.nodes):
        if act.type not in ("relu", "clamp"):
            continue
        prod = graph.producer(act.inputs[0])
        if (prod is None or prod.type not in _FUSABLE or prod.attrs.get("output", "float32") != "float32"
                or graph.only_consumer(prod.outputs[0]) is not act):
            continue
        keys = ("min", "max") if prod.type == "clamp" else ("clamp_min", "clamp_max")
        lo, hi = _intersect(prod.attrs.get(keys[0]), prod.attrs.get(keys[1]), *_bounds(act))
        if lo is not None and hi is not None and lo > hi:
            continue  # disjoint intervals: a constant; leave both ops
        prod.attrs[keys[0]], prod.attrs[keys[1]] = lo, hi
        prod.outputs = [act.outputs[0]]
        graph.remove(act)
        done += 1
    return done
