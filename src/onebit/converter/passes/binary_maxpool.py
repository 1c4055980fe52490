"""Rewrite ``quantize(maxpool2d(x))`` into ``bmaxpool2d(quantize(x))`` (LCE sec. 3.2, LceBMaxPool2d).

``sign(max(window)) = max(sign(window))`` since sign is non-decreasing; on bits (1 = -1) the
max of signs is the AND of the window's words. Padded positions: the float pool pads with
``-inf`` (never the max of a window that holds one real value), ``bmaxpool2d`` ignores them:
the same. The pool then moves 32x less data, and a binary conv before it can write bits
(``bitpacked_output``). Applied when every reader of the pool is a ``quantize``.
"""

from __future__ import annotations

from onebit.converter.ir import Graph, Node

__all__ = ["run"]


def run(graph: Graph) -> int:
    """Rewrite every max-pool read only by ``quantize`` ops; return how many."""
    done = 0
    for pool in list(graph.nodes):
        if pool.type != "maxpool2d" or graph.is_output(pool.outputs[0]):
            continue
        readers = graph.consumers(pool.outputs[0])
        if not readers or any(r.type != "quantize" for r in readers):
            continue
        keep = readers[0]
        bits = graph.fresh(f"{pool.inputs[0]}.bits")
        q = Node("quantize", graph.fresh(f"{keep.name}.pre"), [pool.inputs[0]], [bits], {}, {},
                 {"source": keep.source})
        bpool = Node("bmaxpool2d", pool.name, [bits], [keep.outputs[0]], dict(pool.attrs), {},
                     {"source": pool.source})
        i = graph.nodes.index(pool)
        graph.nodes[i:i + 1] = [q, bpool]
        for r in readers:
            graph.remove(r)
            if r is not keep:
                graph.replace_uses(r.outputs[0], keep.outputs[0])
        done += 1
    return done
