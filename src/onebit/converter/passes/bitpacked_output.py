"""Binary convs/dense layers whose output only feeds binary layers write bitpacked output.

LCE sec. 3.1: "the direct accumulator output of the first convolution can be thresholded
against pre-computed values to yield the binary input to the second convolution". A
``bconv2d``/``bdense`` with float output ``y = clamp(m*acc + b, lo, hi)`` read only by
``quantize`` ops (bit = ``y < 0``) becomes ``output="bitpacked"`` with per-channel integer
thresholds, ``bit = (acc < threshold) != flip`` (``onebit.kernels.binary_output_thresholds``,
exact: no float rounding). The clamp only matters through its sign:

* ``lo >= 0``: ``y >= 0`` always, bit 0 (multiplier 0, bias +1 give a constant threshold);
* ``hi < 0``: ``y < 0`` always, bit 1 (multiplier 0, bias -1);
* otherwise ``clamp(z) < 0  <=>  z < 0``.
"""

from __future__ import annotations

import numpy as np

from onebit.converter.ir import Graph
from onebit.kernels.binary import binary_output_thresholds

__all__ = ["run"]


def run(graph: Graph) -> int:
    """Switch every eligible binary op to bitpacked output; return how many."""
    done = 0
    for node in list(graph.nodes):
        if node.type not in ("bconv2d", "bdense") or node.attrs.get("output", "float32") != "float32":
            continue
        out = node.outputs[0]
        readers = graph.consumers(out)
        if graph.is_output(out) or not readers or any(r.type != "quantize" for r in readers):
            continue
        m, b = node.params.pop("multiplier"), node.params.pop("bias")
        lo, hi = node.attrs.pop("clamp_min", None), node.attrs.pop("clamp_max", None)
        if lo is not None and lo >= 0:
            m, b = np.zeros_like(m), np.ones_like(b)
        elif hi is not None and hi < 0:
            m, b = np.zeros_like(m), -np.ones_like(b)
        th = binary_output_thresholds(m, b)
        node.params["threshold"], node.params["flip"] = th.threshold, th.flip
        node.attrs["output"] = "bitpacked"
        node.outputs = [readers[0].outputs[0]]
        for r in readers:
            graph.remove(r)
            if r.outputs[0] != node.outputs[0]:
                graph.replace_uses(r.outputs[0], node.outputs[0])
        done += 1
    return done
