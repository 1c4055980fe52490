"""Test helper: run a converter IR graph (before or after any pass) with numpy and the onebit
kernels, so each pass can be checked to keep the function it rewrites. Independent of the
runtime Interpreter (the end-to-end tests use that); float ops here use torch in
float32, binary ops the real kernels (bconv2d, bgemm, bmaxpool2d, bitpack)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from onebit.converter.ir import Graph
from onebit.kernels import bconv2d, bgemm, bitpack, bmaxpool2d, unpack
from onebit.kernels.ternary import pack_ternary, ternary_linear


def _packed(w: np.ndarray) -> np.ndarray:
    return w if w.dtype == np.uint32 else bitpack(np.ascontiguousarray(w, np.float32))


def _t(x):
    return torch.from_numpy(np.ascontiguousarray(x))


def _nchw(x):
    return _t(x).permute(0, 3, 1, 2)


def _nhwc(y):
    return y.permute(0, 2, 3, 1).contiguous().numpy()


def _clamp(y, lo, hi):
    if lo is not None:
        y = np.maximum(y, np.float32(lo))
    if hi is not None:
        y = np.minimum(y, np.float32(hi))
    return y


def _transform(node):
    p, a = node.params, node.attrs
    out = a.get("output", "float32")
    kw = dict(output=out)
    if out in ("float32", "int8"):
        kw.update(multiplier=p["multiplier"], bias=p["bias"])
        lo, hi = a.get("clamp_min"), a.get("clamp_max")
        kw.update(clamp_min=-np.inf if lo is None else lo, clamp_max=np.inf if hi is None else hi)
    elif out == "bitpacked":
        kw.update(thresholds=(p["threshold"], p["flip"]))
    return kw


def run_ir(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run ``graph`` on the user-layout input ``x``; return every graph output in user layout."""
    types = graph.infer()
    (inp,) = graph.inputs
    env = dict(graph.constants)
    env[inp.name] = np.ascontiguousarray(x.transpose(0, 2, 3, 1) if inp.layout == "NCHW" else x, np.float32)
    for n in graph.nodes:
        a, p = n.attrs, n.params
        xs = [env[v] if v else None for v in n.inputs]
        x0 = xs[0] if xs else None
        t = n.type
        if t == "quantize":
            y = bitpack(x0)
        elif t == "dequantize":
            y = unpack(x0, types[n.inputs[0]].shape[-1])
        elif t == "bconv2d":
            c = types[n.inputs[0]].shape[-1]
            y = bconv2d(x0, _packed(p["weights"]), c, stride=tuple(a.get("stride", (1, 1))),
                        dilation=tuple(a.get("dilation", (1, 1))), padding=tuple(a.get("padding", (0, 0, 0, 0))),
                        pad_values=a.get("pad_values", "one"), groups=a.get("groups", 1), **_transform(n))
        elif t == "bdense":
            k = types[n.inputs[0]].shape[-1]
            y = bgemm(x0, _packed(p["weights"]), k, **_transform(n))
        elif t == "bmaxpool2d":
            y = bmaxpool2d(x0, types[n.inputs[0]].shape[-1], tuple(a["kernel"]), tuple(a["stride"]),
                           tuple(a.get("padding", (0, 0, 0, 0))))
        elif t in ("maxpool2d", "avgpool2d"):
            pt, pb, pl, pr = a.get("padding", (0, 0, 0, 0))
            fill = -np.inf if t == "maxpool2d" else 0.0
            xp = F.pad(_nchw(x0), (pl, pr, pt, pb), value=fill)
            if t == "maxpool2d":
                y = F.max_pool2d(xp, a["kernel"], a["stride"])
            else:
                inside = torch.ones_like(_nchw(x0)[:, :1])
                ones = F.pad(inside, (pl, pr, pt, pb), value=float(a.get("count_include_pad")))
                y = F.avg_pool2d(xp, a["kernel"], a["stride"]) / F.avg_pool2d(ones, a["kernel"], a["stride"])
            y = _nhwc(y)
        elif t == "global_avgpool":
            y = x0.mean(axis=(1, 2), keepdims=a.get("keepdims", False), dtype=np.float32)
        elif t == "conv2d":
            pt, pb, pl, pr = a.get("padding", (0, 0, 0, 0))
            w = _t(p["weights"]).permute(0, 3, 1, 2)
            b = None if p.get("bias") is None else _t(p["bias"])
            y = F.conv2d(F.pad(_nchw(x0), (pl, pr, pt, pb)), w, b, tuple(a.get("stride", (1, 1))), 0,
                         tuple(a.get("dilation", (1, 1))), a.get("groups", 1))
            y = _clamp(_nhwc(y), a.get("clamp_min"), a.get("clamp_max"))
        elif t == "dense":
            y = F.linear(_t(x0), _t(p["weights"].astype(np.float32)), None if p.get("bias") is None else _t(p["bias"]))
            y = _clamp(y.numpy(), a.get("clamp_min"), a.get("clamp_max"))
        elif t == "ternary_linear":
            w = p["weights"]
            if w.dtype == np.int8:
                w, _ = pack_ternary(w, scale=float(p["w_scale"][0]))
            y = ternary_linear(x0, w, float(p["w_scale"][0]))
        elif t == "add":
            y = (x0 + xs[1]).astype(np.float32)
        elif t == "mul":
            y = (x0 * xs[1]).astype(np.float32)
        elif t == "relu":
            y = np.maximum(x0, np.float32(0))
        elif t == "clamp":
            y = _clamp(x0, a.get("min"), a.get("max"))
        elif t == "prelu":
            y = np.where(x0 >= 0, x0, p["alpha"] * x0).astype(np.float32)
        elif t == "scale_bias":
            y = (x0 * p["scale"] + p["bias"]).astype(np.float32)
        elif t == "sigmoid":
            y = torch.sigmoid(_t(x0)).numpy()
        elif t == "silu":
            y = F.silu(_t(x0)).numpy()
        elif t == "softmax":
            y = torch.softmax(_t(x0), a.get("axis", -1)).numpy()
        elif t == "flatten":
            y = np.ascontiguousarray(x0).reshape(x0.shape[0], -1)
        elif t == "transpose":
            y = np.ascontiguousarray(x0.transpose(a["perm"]))
        elif t == "concat":
            y = np.concatenate(xs, axis=a.get("axis", -1))
        else:
            raise NotImplementedError(t)
        env[n.outputs[0]] = np.ascontiguousarray(y)
    out = {}
    for o in graph.outputs:
        v = env[o.name]
        out[o.name] = v.transpose(0, 3, 1, 2) if o.layout == "NCHW" else v
    return out
