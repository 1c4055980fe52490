"""Language-model ops (BitNet b1.58, LLaMA-like blocks): embedding, rmsnorm, quantize_i8,
ternary_linear (BitLinear on the native tq2 kernels), rope and grouped-query attention."""

from __future__ import annotations

import math

import numpy as np

from onebit import kernels
from onebit.errors import ShapeError
from onebit.runtime.ops import Node, Step, register, scratch


@register("embedding")
def build_embedding(node: Node) -> Step:
    """y[..., :] = table[ids[...], :]; float16 tables are upcast once. Ids outside [0, V) raise."""
    table = node.cached("table", lambda: np.ascontiguousarray(node.weight("table"), dtype=np.float32))
    vocab = table.shape[0]
    name = node.name

    def run(ins, outs):
        ids = ins[0]
        if ids.size:
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= vocab:
                bad = lo if lo < 0 else hi
                raise ShapeError(f"embedding {name!r}: expected token ids in [0, {vocab}) (the table's rows), "
                                 f"got {bad}; check the tokenizer matches the model")
        np.take(table, ids, axis=0, out=outs[0])
        return outs

    return Step(run, (True,))


@register("rmsnorm")
def build_rmsnorm(node: Node) -> Step:
    """y = x * rsqrt(mean(x^2, last axis) + eps) * weight (Zhang & Sennrich 2019), float32."""
    shape = node.outputs[0][1]
    weight = node.weight("weight")
    eps = np.float32(node.attrs["eps"])
    ms = scratch(tuple(shape[:-1]) + (1,))

    def run(ins, outs):
        x, y = ins[0], outs[0]
        np.multiply(x, x, out=y)
        np.mean(y, axis=-1, keepdims=True, out=ms)
        np.add(ms, eps, out=ms)
        np.sqrt(ms, out=ms)
        np.divide(np.float32(1.0), ms, out=ms)
        np.multiply(x, ms, out=y)
        np.multiply(y, weight, out=y)
        return outs

    return Step(run, (True,))


@register("quantize_i8")
def build_quantize_i8(node: Node) -> Step:
    """Per-token absmax int8 (``onebit.kernels.quantize_i8``)."""
    t = node.num_threads

    def run(ins, outs):
        kernels.quantize_i8(ins[0], out=(outs[0], outs[1]), num_threads=t)
        return outs

    return Step(run, (True, True))


@register("ternary_linear")
def build_ternary_linear(node: Node) -> Step:
    """BitLinear: y = tgemm(t, x_q) * w_scale / x_scale; float x is quantized per token first."""
    xdtype, xshape = node.inputs[0]
    packed = node.weight("weights")
    w_scale = float(node.weight("w_scale")[0])
    rows = math.prod(xshape[:-1])
    matmul = kernels.tgemv if rows == 1 else kernels.tgemm
    t = node.num_threads
    if xdtype == "float32":
        q = scratch(xshape, np.int8)
        s = scratch(tuple(xshape[:-1]), np.float32)

        def run(ins, outs):
            kernels.quantize_i8(ins[0], out=(q, s), num_threads=t)
            matmul(packed, w_scale, q, s, out=outs[0], num_threads=t)
            return outs
    else:
        def run(ins, outs):
            matmul(packed, w_scale, ins[0], ins[1], out=outs[0], num_threads=t)
            return outs

    return Step(run, (True,))


@register("rope")
def build_rope(node: Node) -> Step:
    """Rotary embedding (Su et al. 2024): angle_i = p * theta^(-2i/D), computed in float64 and
    rounded to float32 cos/sin (as ``onebit.llm.model.rope_tables``); 'half' rotates
    ``(x[:D/2], x[D/2:])``, 'interleaved' the pairs ``(x[2i], x[2i+1])``:
    ``y_a = x_a cos - x_b sin``, ``y_b = x_b cos + x_a sin``."""
    b, t_, h, d = node.inputs[0][1]
    pos_shape = node.inputs[1][1]
    half = d // 2
    theta = float(node.attrs["theta"])
    inv_freq = 1.0 / (theta ** (np.arange(0, d, 2, dtype=np.float64) / d))  # (D/2,)
    angles = scratch(tuple(pos_shape) + (half,), np.float64)
    cos = scratch(tuple(pos_shape) + (half,))
    sin = scratch(tuple(pos_shape) + (half,))
    # broadcast (T, D/2) or (B, T, D/2) over the heads axis
    cos_b, sin_b = cos[..., None, :], sin[..., None, :]
    tmp = scratch((b, t_, h, half))
    interleaved = node.attrs["style"] == "interleaved"

    def run(ins, outs):
        x, y = ins[0], outs[0]
        np.multiply(ins[1][..., None], inv_freq, out=angles)
        np.cos(angles, out=cos, casting="same_kind")
        np.sin(angles, out=sin, casting="same_kind")
        if interleaved:
            xa, xb, ya, yb = x[..., 0::2], x[..., 1::2], y[..., 0::2], y[..., 1::2]
        else:
            xa, xb, ya, yb = x[..., :half], x[..., half:], y[..., :half], y[..., half:]
        np.multiply(xa, cos_b, out=ya)
        np.multiply(xb, sin_b, out=tmp)
        np.subtract(ya, tmp, out=ya)
        np.multiply(xb, cos_b, out=yb)
        np.multiply(xa, sin_b, out=tmp)
        np.add(yb, tmp, out=yb)
        return outs

    return Step(run, (True,))


@register("attention")
def build_attention(node: Node) -> Step:
    """Grouped-query scaled dot-product attention: for query head ``h`` and its kv head
    ``h // (Hq/Hkv)``, ``y = softmax(q k^T * scale + mask) v``; with ``causal`` query ``t``
    sees keys ``s <= t + (S - T)``; ``scale`` null = 1/sqrt(D) (Vaswani et al. 2017)."""
    b, t_, hq, d = node.inputs[0][1]
    _, s_, hkv, _ = node.inputs[1][1]
    dv = node.inputs[2][1][-1]
    g = hq // hkv
    scale = node.attrs["scale"]
    scale = np.float32(1.0 / math.sqrt(d) if scale is None else scale)
    scores = scratch((b, hkv, g, t_, s_))
    red = scratch((b, hkv, g, t_, 1))
    ctx = scratch((b, hkv, g, t_, dv))
    mask = None
    if node.attrs["causal"]:
        allowed = np.arange(s_)[None, :] <= np.arange(t_)[:, None] + (s_ - t_)
        mask = np.where(allowed, np.float32(0.0), np.float32(-np.inf)).astype(np.float32)

    def run(ins, outs):
        q, k, v, y = ins[0], ins[1], ins[2], outs[0]
        q5 = q.reshape(b, t_, hkv, g, d).transpose(0, 2, 3, 1, 4)  # (B, Hkv, G, T, D)
        kt = k.transpose(0, 2, 3, 1)[:, :, None]  # (B, Hkv, 1, D, S)
        v5 = v.transpose(0, 2, 1, 3)[:, :, None]  # (B, Hkv, 1, S, Dv)
        np.matmul(q5, kt, out=scores)
        np.multiply(scores, scale, out=scores)
        if mask is not None:
            np.add(scores, mask, out=scores)
        np.max(scores, axis=-1, keepdims=True, out=red)
        np.subtract(scores, red, out=scores)
        np.exp(scores, out=scores)
        np.sum(scores, axis=-1, keepdims=True, out=red)
        np.divide(scores, red, out=scores)
        np.matmul(scores, v5, out=ctx)
        np.copyto(y.reshape(b, t_, hkv, g, dv), ctx.transpose(0, 3, 1, 2, 4))
        return outs

    return Step(run, (True,))
