"""Binary ops: quantize / dequantize (bit packing), bconv2d, bdense and bmaxpool2d, all on the
native kernels of :mod:`onebit.kernels` with the output transform fused (LCE sec. 3.2)."""

from __future__ import annotations

import math

from onebit import kernels
from onebit.kernels.binary import OutputThresholds
from onebit.runtime.ops import Node, Step, register


@register("quantize")
def build_quantize(node: Node) -> Step:
    """bit = 1 iff x < 0, packed along the last axis (``onebit.kernels.bitpack``)."""
    t = node.num_threads

    def run(ins, outs):
        return [kernels.bitpack(ins[0], num_threads=t)]

    return Step(run, (False,))


@register("dequantize")
def build_dequantize(node: Node) -> Step:
    """Packed bits -> float32 +1.0 / -1.0 (``onebit.kernels.unpack``)."""
    c = node.inputs[0][1][-1]
    t = node.num_threads

    def run(ins, outs):
        return [kernels.unpack(ins[0], c, num_threads=t)]

    return Step(run, (False,))


def _transform(node: Node) -> dict:
    """Keyword arguments of the fused output transform for bgemm / bconv2d."""
    a = node.attrs
    out = a["output"]
    kw: dict = {"output": out}
    if out in ("float32", "int8"):
        kw["multiplier"] = node.weight("multiplier")
        kw["bias"] = node.weight("bias")
        kw["clamp_min"] = -math.inf if a["clamp_min"] is None else float(a["clamp_min"])
        kw["clamp_max"] = math.inf if a["clamp_max"] is None else float(a["clamp_max"])
    elif out == "bitpacked":
        kw["thresholds"] = OutputThresholds(node.weight("threshold"), node.weight("flip"))
    return kw


@register("bconv2d")
def build_bconv2d(node: Node) -> Step:
    """Binary 2D convolution with fused output transform (``onebit.kernels.bconv2d``)."""
    a = node.attrs
    c = node.inputs[0][1][-1]
    w = node.weight("weights")
    kw = _transform(node)
    stride, dilation, pads = tuple(a["stride"]), tuple(a["dilation"]), tuple(a["padding"])
    pad_values, groups, t = a["pad_values"], a["groups"], node.num_threads

    def run(ins, outs):
        kernels.bconv2d(ins[0], w, c, stride=stride, dilation=dilation, padding=pads, pad_values=pad_values,
                        groups=groups, out=outs[0], num_threads=t, **kw)
        return outs

    return Step(run, (True,))


@register("bdense")
def build_bdense(node: Node) -> Step:
    """Binary fully connected layer: ``bgemm`` over the flattened leading axes."""
    shape = node.inputs[0][1]
    k = shape[-1]
    m = math.prod(shape[:-1])
    w = node.weight("weights")
    kw = _transform(node)
    t = node.num_threads

    def run(ins, outs):
        x = ins[0].reshape(m, ins[0].shape[-1])
        y = outs[0].reshape(m, outs[0].shape[-1])
        kernels.bgemm(x, w, k, out=y, num_threads=t, **kw)
        return outs

    return Step(run, (True,))


@register("bmaxpool2d")
def build_bmaxpool2d(node: Node) -> Step:
    """Binary max-pool: AND of the window's words (``onebit.kernels.bmaxpool2d``)."""
    a = node.attrs
    c = node.inputs[0][1][-1]
    kernel, stride, pads, t = tuple(a["kernel"]), tuple(a["stride"]), tuple(a["padding"]), node.num_threads

    def run(ins, outs):
        kernels.bmaxpool2d(ins[0], c, kernel, stride, pads, out=outs[0], num_threads=t)
        return outs

    return Step(run, (True,))
