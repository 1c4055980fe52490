"""Full-precision conv2d and dense (float32, channels-last), on numpy's BLAS matmul.

conv2d with weights OHWI ``(O, kh, kw, C/groups)``::

    y[n, oh, ow, o] = clamp(bias[o] + sum_{i, j, c} xp[n, oh*sh + i*dh, ow*sw + j*dw, g(o)*C/groups + c]
                                                   * w[o, i, j, c], clamp_min, clamp_max)

with ``xp`` the input zero-padded by ``(top, bottom, left, right)`` and ``g(o)`` the group of
output channel ``o``. Paths:

* depthwise with one output per channel: the native ``depthwise_conv2d`` (padding, bias and
  clamp fused, no padded copy);
* ``groups = 1`` with few input channels (C <= 16, e.g. the RGB first conv): the native
  ``conv2d_direct`` (an im2col GEMM of depth 27 is too shallow for BLAS);
* 1x1/stride 1 is one GEMM; other ``groups = 1`` convs an im2col GEMM (the patch matrix
  ``(N*OH*OW, kh*kw*C)`` in OHWI order times the weights ``(kh*kw*C, O)``); GEMMs get the
  bias + clamp epilogue from the native ``channel_affine``, in place;
* depthwise with a channel multiplier > 1: a sum over the window's taps of shifted input
  slices times per-channel weights; other groupings run one im2col GEMM per group.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from onebit import kernels
from onebit.runtime.ops import Node, Step, register, scratch

DIRECT_MAX_CHANNELS = 16  # groups=1 convs with at most this many input channels use conv2d_direct


def _patches(xp: np.ndarray, oh: int, ow: int, kh: int, kw: int, stride, dilation) -> np.ndarray:
    """Read-only strided view ``(N, OH, OW, kh, kw, C)`` of the padded input's windows."""
    sn, sh, sw, sc = xp.strides
    n, _, _, c = xp.shape
    return as_strided(xp, (n, oh, ow, kh, kw, c),
                      (sn, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1], sc), writeable=False)


@register("conv2d")
def build_conv2d(node: Node) -> Step:
    """Float conv2d (see module docstring) with fused bias and clamp."""
    a = node.attrs
    n, h, w_, c = node.inputs[0][1]
    _, oh, ow, o = node.outputs[0][1]
    weights = node.weight("weights")
    _, kh, kw, cg = weights.shape
    groups = a["groups"]
    stride, dilation = tuple(a["stride"]), tuple(a["dilation"])
    top, bottom, left, right = a["padding"]
    bias = node.weight("bias")
    lo, hi = a["clamp_min"], a["clamp_max"]
    m = n * oh * ow
    padded = (top, bottom, left, right) != (0, 0, 0, 0)
    pad_buffer: list = []  # the zero-padded input, made on first use (the native paths pad inside)

    def source(x: np.ndarray) -> np.ndarray:
        if not padded:
            return x
        if not pad_buffer:
            pad_buffer.append(scratch((n, h + top + bottom, w_ + left + right, c), fill=0.0))
        xp = pad_buffer[0]
        np.copyto(xp[:, top:top + h, left:left + w_, :], x)
        return xp

    t = node.num_threads
    geometry = {"stride": stride, "dilation": dilation, "padding": (top, bottom, left, right),
                "clamp_min": lo, "clamp_max": hi, "num_threads": t}

    def finish(y: np.ndarray) -> None:
        if bias is not None or lo is not None or hi is not None:
            kernels.channel_affine(y, None, bias, None, clamp_min=lo, clamp_max=hi, out=y, num_threads=t)

    if cg == 1 and o == c:  # depthwise, multiplier 1: native kernel
        w_hwc = node.cached("w_hwc", lambda: np.ascontiguousarray(weights[:, :, :, 0].transpose(1, 2, 0)))

        def run(ins, outs):
            kernels.depthwise_conv2d(ins[0], w_hwc, bias, out=outs[0], **geometry)
            return outs

    elif groups == 1 and c <= DIRECT_MAX_CHANNELS and not (kh == kw == 1 and stride == (1, 1) and not padded):
        w_hwio = node.cached("w_hwio", lambda: np.ascontiguousarray(weights.transpose(1, 2, 3, 0)))

        def run(ins, outs):
            kernels.conv2d_direct(ins[0], w_hwio, bias, out=outs[0], **geometry)
            return outs

    elif groups == 1 and kh == kw == 1 and stride == (1, 1) and not padded:
        wt = node.cached("w_kc", lambda: np.ascontiguousarray(weights.reshape(o, c).T))  # (C, O)

        def run(ins, outs):
            y = outs[0]
            np.matmul(ins[0].reshape(m, c), wt, out=y.reshape(m, o))
            finish(y)
            return outs

    elif groups == 1:
        depth = kh * kw * c
        wt = node.cached("w_kc", lambda: np.ascontiguousarray(weights.reshape(o, depth).T))  # (kh*kw*C, O)
        col = scratch((n, oh, ow, kh, kw, c))

        def run(ins, outs):
            y = outs[0]
            np.copyto(col, _patches(source(ins[0]), oh, ow, kh, kw, stride, dilation))
            np.matmul(col.reshape(m, depth), wt, out=y.reshape(m, o))
            finish(y)
            return outs

    elif cg == 1:  # depthwise, channel multiplier o // c
        mult = o // c
        taps = node.cached("w_taps", lambda: np.ascontiguousarray(
            weights.reshape(c, mult, kh, kw).transpose(2, 3, 0, 1)))  # (kh, kw, C, mult)
        tmp = scratch((n, oh, ow, c, mult))

        def run(ins, outs):
            y5 = outs[0].reshape(n, oh, ow, c, mult)
            win = _patches(source(ins[0]), oh, ow, kh, kw, stride, dilation)
            first = True
            for i in range(kh):
                for j in range(kw):
                    tap = win[:, :, :, i, j, :, None]
                    if first:
                        np.multiply(tap, taps[i, j], out=y5)
                        first = False
                    else:
                        np.multiply(tap, taps[i, j], out=tmp)
                        np.add(y5, tmp, out=y5)
            finish(outs[0])
            return outs

    else:  # grouped: one im2col GEMM per group
        og = o // groups
        depth = kh * kw * cg
        wts = node.cached("w_groups", lambda: [
            np.ascontiguousarray(weights[g * og:(g + 1) * og].reshape(og, depth).T) for g in range(groups)])
        col = scratch((n, oh, ow, kh, kw, cg))
        tmp = scratch((m, og))

        def run(ins, outs):
            y = outs[0]
            y2 = y.reshape(m, o)
            win = _patches(source(ins[0]), oh, ow, kh, kw, stride, dilation)
            for g in range(groups):
                np.copyto(col, win[..., g * cg:(g + 1) * cg])
                np.matmul(col.reshape(m, depth), wts[g], out=tmp)
                y2[:, g * og:(g + 1) * og] = tmp
            finish(y)
            return outs

    return Step(run, (True,))


@register("dense")
def build_dense(node: Node) -> Step:
    """y = clamp(x @ W.T + bias) over the flattened leading axes; float16 W is upcast once."""
    a = node.attrs
    shape = node.inputs[0][1]
    k = shape[-1]
    m = math.prod(shape[:-1])
    weights = node.weight("weights")
    nout = weights.shape[0]
    wt = node.cached("w_t", lambda: np.ascontiguousarray(weights.astype(np.float32).T))  # (K, N)
    bias = node.weight("bias")
    lo, hi = a["clamp_min"], a["clamp_max"]
    epilogue = bias is not None or lo is not None or hi is not None
    t = node.num_threads

    def run(ins, outs):
        y = outs[0]
        np.matmul(ins[0].reshape(m, k), wt, out=y.reshape(m, nout))
        if epilogue:
            kernels.channel_affine(y, None, bias, None, clamp_min=lo, clamp_max=hi, out=y, num_threads=t)
        return outs

    return Step(run, (True,))
