"""Pack weights into their storage formats (LCE sec. 3.1: "binary weight compression").

* ``bconv2d`` / ``bdense``: ±1 float weights (OHWI / (N, K)) -> uint32 words packed along the
  last axis, bit 1 = -1 (``onebit.kernels.bitpack``): 32x smaller than float32.
* ``ternary_linear``: int8 codes in {-1, 0, 1} -> tq2 ``uint8 (N, 32*ceil(K/128))``
  (``onebit.kernels.pack_ternary``), 2 bits per weight, ``w_scale = gamma`` kept.
"""

from __future__ import annotations

import numpy as np

from onebit.converter.ir import Graph
from onebit.errors import ConversionError
from onebit.kernels.bitpack import bitpack
from onebit.kernels.ternary import pack_ternary

__all__ = ["run"]


def run(graph: Graph) -> int:
    """Pack every not yet packed binary/ternary weight; return how many tensors were packed."""
    done = 0
    for node in graph.nodes:
        w = node.params.get("weights")
        if node.type in ("bconv2d", "bdense") and w is not None and w.dtype != np.uint32:
            if not np.all(np.abs(w) == 1):
                raise ConversionError(f"{node.source}: binary weights must be +-1 before packing")
            node.params["weights"] = bitpack(np.ascontiguousarray(w, dtype=np.float32))
            done += 1
        elif node.type == "ternary_linear" and w is not None and w.dtype == np.int8:
            packed, _ = pack_ternary(w, scale=float(node.params["w_scale"][0]))
            node.params["weights"] = packed
            done += 1
    return done
