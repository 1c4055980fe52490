"""Move a per-channel affine with positive scales in front of a max-pool.

``maxpool(x) -> scale_bias(s, t)`` equals ``scale_bias(s, t) -> maxpool`` when every ``s > 0``:
``y -> s*y + t`` is non-decreasing, in exact and in rounded float arithmetic (rounding is
monotone), so it commutes with ``max`` exactly; padded positions (``-inf``) stay ``-inf``.
BinaryAlexNet is ``BConv -> MaxPool -> BN``: after the swap the BN folds into the conv's output
transform (``fold_batchnorm``) and the pool can run on bits (``binary_maxpool``).
A channel with ``s <= 0`` would turn max into min: such a pair is left as it is.
"""

from __future__ import annotations

import numpy as np

from onebit.converter.ir import Graph

__all__ = ["run"]


def run(graph: Graph) -> int:
    """Swap every ``maxpool2d -> scale_bias`` pair whose pool output is read only by the affine
    and whose scales are all > 0; return the number of swaps."""
    done = 0
    for pool in list(graph.nodes):
        if pool.type != "maxpool2d":
            continue
        aff = graph.only_consumer(pool.outputs[0])
        if aff is None or aff.type != "scale_bias" or not np.all(aff.params["scale"] > 0):
            continue
        x, pooled, y = pool.inputs[0], pool.outputs[0], aff.outputs[0]
        # x -> aff -> pool -> y  (names: the affine now writes `pooled`, the pool writes `y`)
        aff.inputs, aff.outputs = [x], [pooled]
        pool.inputs, pool.outputs = [pooled], [y]
        i, j = graph.nodes.index(pool), graph.nodes.index(aff)
        graph.nodes[i], graph.nodes[j] = aff, pool
        done += 1
    return done
