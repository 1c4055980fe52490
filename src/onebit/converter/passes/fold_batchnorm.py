"""Fold a per-channel affine (an eval-mode BatchNorm, lowered to ``scale_bias``) into the op before it.

With ``z = conv(x)`` and the affine ``y = s*z + t`` per output channel (LCE sec. 3.1-3.2):

* float ``conv2d`` / ``dense``: ``W'[o] = s[o] * W[o]``, ``b'[o] = s[o] * b[o] + t[o]``
  (LCE: "the multiplier values can be directly folded into the convolution weights and bias");
* binary ``bconv2d`` / ``bdense`` (float output ``m*acc + b``): ``m' = s*m``, ``b' = s*b + t``,
  the fused multiplier and bias of the output transform.

Only when the op's output is read by the affine alone and the op has no clamp yet (an affine
after a ReLU does not commute with it). Products are formed in float64 and rounded once.
"""

from __future__ import annotations

import numpy as np

from onebit.converter.ir import Graph, Node

__all__ = ["run"]

_FOLDABLE = ("conv2d", "dense", "bconv2d", "bdense")


def _clamped(node: Node) -> bool:
    return node.attrs.get("clamp_min") is not None or node.attrs.get("clamp_max") is not None


def fold(node: Node, scale: np.ndarray, shift: np.ndarray) -> None:
    """Apply ``y = scale * node(x) + shift`` (per output channel) to ``node``'s parameters."""
    s, t = scale.astype(np.float64), shift.astype(np.float64)
    if node.type in ("conv2d", "dense"):
        w = node.params["weights"].astype(np.float64)
        node.params["weights"] = (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
        b = node.params.get("bias")
        b = np.zeros_like(s) if b is None else b.astype(np.float64)
        node.params["bias"] = (s * b + t).astype(np.float32)
    else:
        m = node.params["multiplier"].astype(np.float64)
        b = node.params["bias"].astype(np.float64)
        node.params["multiplier"] = (s * m).astype(np.float32)
        node.params["bias"] = (s * b + t).astype(np.float32)


def run(graph: Graph) -> int:
    """Fold every foldable ``scale_bias`` into its producer; return how many were folded."""
    done = 0
    for aff in list(graph.nodes):
        if aff.type != "scale_bias":
            continue
        prod = graph.producer(aff.inputs[0])
        if (prod is None or prod.type not in _FOLDABLE or _clamped(prod)
                or prod.attrs.get("output", "float32") != "float32"
                or graph.only_consumer(prod.outputs[0]) is not aff):
            continue
        fold(prod, aff.params["scale"], aff.params["bias"])
        prod.outputs = [aff.outputs[0]]
        graph.remove(aff)
        done += 1
    return done
