"""Element-wise float32 ops: add, mul (numpy broadcasting), relu, sigmoid, silu, clamp, prelu,
scale_bias (per channel on the last axis), softmax and glu; every one writes into its planned
output buffer: relu, clamp, prelu and scale_bias with the native ``channel_affine``, the others
with numpy ufuncs (``out=``)."""

from __future__ import annotations

import numpy as np

from onebit import kernels
from onebit.runtime.ops import Node, Step, register, scratch

_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


@register("add", "mul")
def build_binary(node: Node) -> Step:
    """y = a + b or a * b with numpy broadcasting."""
    ufunc = np.add if node.type == "add" else np.multiply

    def run(ins, outs):
        ufunc(ins[0], ins[1], out=outs[0])
        return outs

    return Step(run, (True,))


def _affine_step(node: Node, scale=None, bias=None, alpha=None, lo=None, hi=None) -> Step:
    """A step running the native ``channel_affine`` (x*scale + bias, PReLU, clamp) into its buffer."""
    t = node.num_threads

    def run(ins, outs):
        kernels.channel_affine(ins[0], scale, bias, alpha, clamp_min=lo, clamp_max=hi, out=outs[0], num_threads=t)
        return outs

    return Step(run, (True,))


@register("relu")
def build_relu(node: Node) -> Step:
    """y = max(x, 0)."""
    return _affine_step(node, lo=0.0)


def _sigmoid_into(x: np.ndarray, y: np.ndarray) -> None:
    """y = 1 / (1 + exp(-x)); exp overflows to inf for x < -88, giving exactly 0 (no warning)."""
    with np.errstate(over="ignore"):
        np.negative(x, out=y)
        np.exp(y, out=y)
    np.add(y, _ONE, out=y)
    np.divide(_ONE, y, out=y)


@register("sigmoid")
def build_sigmoid(node: Node) -> Step:
    """y = 1 / (1 + exp(-x))."""

    def run(ins, outs):
        _sigmoid_into(ins[0], outs[0])
        return outs

    return Step(run, (True,))


@register("silu")
def build_silu(node: Node) -> Step:
    """y = x * sigmoid(x) (swish)."""

    def run(ins, outs):
        _sigmoid_into(ins[0], outs[0])
        np.multiply(ins[0], outs[0], out=outs[0])
        return outs

    return Step(run, (True,))


@register("clamp")
def build_clamp(node: Node) -> Step:
    """y = clamp(x, min, max); a null bound is open."""
    return _affine_step(node, lo=node.attrs["min"], hi=node.attrs["max"])


@register("prelu")
def build_prelu(node: Node) -> Step:
    """y = x if x >= 0 else alpha[c] * x."""
    return _affine_step(node, alpha=node.weight("alpha"))


@register("scale_bias")
def build_scale_bias(node: Node) -> Step:
    """y = x * scale[c] + bias[c] (a folded BatchNorm; one FMA)."""
    return _affine_step(node, scale=node.weight("scale"), bias=node.weight("bias"))


@register("softmax")
def build_softmax(node: Node) -> Step:
    """y = exp(x - max) / sum(exp(x - max)) along ``axis``."""
    shape = node.outputs[0][1]
    axis = node.attrs["axis"] % len(shape)
    red = tuple(1 if i == axis else d for i, d in enumerate(shape))
    tmp = scratch(red)

    def run(ins, outs):
        x, y = ins[0], outs[0]
        np.max(x, axis=axis, keepdims=True, out=tmp)
        np.subtract(x, tmp, out=y)
        np.exp(y, out=y)
        np.sum(y, axis=axis, keepdims=True, out=tmp)
        np.divide(y, tmp, out=y)
        return outs

    return Step(run, (True,))


@register("glu")
def build_glu(node: Node) -> Step:
    """y = silu(gate) * up (SwiGLU) or relu(gate)^2 * up (squared ReLU)."""
    act = node.attrs["activation"]

    def run(ins, outs):
        gate, up, y = ins[0], ins[1], outs[0]
        if act == "silu":
            _sigmoid_into(gate, y)
            np.multiply(y, gate, out=y)
        else:
            np.maximum(gate, _ZERO, out=y)
            np.multiply(y, y, out=y)
        np.multiply(y, up, out=y)
        return outs

    return Step(run, (True,))
