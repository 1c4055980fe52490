"""Float pools on NHWC float32: maxpool2d, avgpool2d, global_avgpool.

``maxpool2d``: ``y[n, oh, ow, c] = max_{i<kh, j<kw} xp[n, oh*sh + i, ow*sw + j, c]`` with padded
positions ``-inf`` (so they never win; pads are smaller than the window, no window is all pad).
``avgpool2d``: the window sum over in-bounds positions divided by ``kh*kw``
(``count_include_pad``) or by the number of in-bounds positions. ``global_avgpool``: the mean
over H and W.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from onebit.runtime.ops import Node, Step, register, scratch


def _geometry(node: Node):
    a = node.attrs
    n, h, w, c = node.inputs[0][1]
    _, oh, ow, _ = node.outputs[0][1]
    return n, h, w, c, oh, ow, tuple(a["kernel"]), tuple(a["stride"]), tuple(a["padding"])


def _padded_source(n, h, w, c, pads, fill):
    """(function copying x into a padded scratch and returning it, or the identity)."""
    top, bottom, left, right = pads
    if pads == (0, 0, 0, 0):
        return lambda x: x
    xp = scratch((n, h + top + bottom, w + left + right, c), fill=fill)
    interior = xp[:, top:top + h, left:left + w, :]

    def source(x):
        np.copyto(interior, x)
        return xp

    return source


def _tap(xp: np.ndarray, i: int, j: int, oh: int, ow: int, stride) -> np.ndarray:
    """View ``xp[:, i::sh, j::sw, :]`` cut to ``(N, OH, OW, C)``."""
    sn, sh, sw, sc = xp.strides
    base = xp[:, i:, j:, :]
    return as_strided(base, (xp.shape[0], oh, ow, xp.shape[3]), (sn, sh * stride[0], sw * stride[1], sc),
                      writeable=False)


@register("maxpool2d")
def build_maxpool2d(node: Node) -> Step:
    """Float max-pool, padded positions -inf."""
    n, h, w, c, oh, ow, (kh, kw), stride, pads = _geometry(node)
    source = _padded_source(n, h, w, c, pads, -np.inf)

    def run(ins, outs):
        y = outs[0]
        xp = source(ins[0])
        np.copyto(y, _tap(xp, 0, 0, oh, ow, stride))
        for i in range(kh):
            for j in range(kw):
                if i or j:
                    np.maximum(y, _tap(xp, i, j, oh, ow, stride), out=y)
        return outs

    return Step(run, (True,))


def _inverse_counts(h, w, oh, ow, kernel, stride, pads) -> np.ndarray:
    """(OH, OW, 1) float32 of 1 / (in-bounds positions of each window)."""
    top, _, left, _ = pads
    rows = np.arange(oh) * stride[0] - top
    cols = np.arange(ow) * stride[1] - left
    ch = np.minimum(rows + kernel[0], h) - np.maximum(rows, 0)
    cw = np.minimum(cols + kernel[1], w) - np.maximum(cols, 0)
    return (1.0 / (ch[:, None] * cw[None, :]).astype(np.float32))[:, :, None].astype(np.float32)


@register("avgpool2d")
def build_avgpool2d(node: Node) -> Step:
    """Float average pool (zero padding; divisor kh*kw or the in-bounds count)."""
    n, h, w, c, oh, ow, (kh, kw), stride, pads = _geometry(node)
    source = _padded_source(n, h, w, c, pads, 0.0)
    if node.attrs["count_include_pad"] or pads == (0, 0, 0, 0):
        scale = np.float32(1.0 / (kh * kw))
    else:
        scale = _inverse_counts(h, w, oh, ow, (kh, kw), stride, pads)

    def run(ins, outs):
        y = outs[0]
        xp = source(ins[0])
        np.copyto(y, _tap(xp, 0, 0, oh, ow, stride))
        for i in range(kh):
            for j in range(kw):
                if i or j:
                    np.add(y, _tap(xp, i, j, oh, ow, stride), out=y)
        np.multiply(y, scale, out=y)
        return outs

    return Step(run, (True,))


@register("global_avgpool")
def build_global_avgpool(node: Node) -> Step:
    """Mean over H and W (float32 accumulation in numpy's pairwise summation)."""
    n, h, w, c = node.inputs[0][1]

    def run(ins, outs):
        y = outs[0].reshape(n, c)
        np.mean(ins[0].reshape(n, h * w, c), axis=1, out=y)
        return outs

    return Step(run, (True,))
