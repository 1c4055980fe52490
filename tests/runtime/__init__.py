"""Example models used by the format tests: together they use every op type of the schema.

``cnn_model()`` is a QuickNet/BinaryAlexNet-like graph with a symbolic batch; ``llm_model()`` is
one BitNet b1.58 block with a tied embedding and a symbolic token count. Binary weights are
packed with the real kernel (``onebit.kernels.bitpack``) and thresholds come from real
multipliers/biases, so the tensors are what a converter would store.
"""

from __future__ import annotations

import json

import numpy as np

from onebit.kernels.bitpack import bitpack


def _packed_ohwi(rng, o, kh, kw, c):
    return bitpack(rng.standard_normal((o, kh, kw, c)).astype(np.float32))


def _thresholds(rng, o):
    """Integer thresholds of a bitpacked output, m*acc + b < 0 (as binary_output_thresholds)."""
    m = rng.standard_normal(o).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    t = np.where(m > 0, np.ceil(-b / m), np.floor(-b / m) + 1).astype(np.int32)
    return t, (m < 0).astype(np.uint8)


def op(type_, name, inputs, outputs, **attrs):
    return {"type": type_, "name": name, "inputs": list(inputs), "outputs": list(outputs), "attrs": attrs}


def cnn_model(seed: int = 0):
    """(graph, tensors, expected engine shapes of some values)."""
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    t1, f1 = _thresholds(rng, 64)
    tensors = {
        "conv0.w": f(32, 3, 3, 3), "conv0.b": f(32),
        "bn0.scale": f(32), "bn0.bias": f(32), "pr0.alpha": f(32),
        "bc1.w": _packed_ohwi(rng, 64, 3, 3, 32), "bc1.t": t1, "bc1.flip": f1,
        "bc2.w": _packed_ohwi(rng, 32, 3, 3, 32), "bc2.m": f(32), "bc2.b": f(32),
        "bc3.w": _packed_ohwi(rng, 16, 1, 1, 64), "bc3.m": f(16), "bc3.b": f(16),
        "bc4.w": _packed_ohwi(rng, 8, 1, 1, 16),
        "dw.w": f(32, 3, 3, 1),
        "fc.w": f(10, 256), "fc.b": f(10),
        "bfc.w": bitpack(f(10, 256)), "bfc.m": f(10), "bfc.b": f(10),
    }
    ops = [
        op("conv2d", "conv0", ["x", "conv0.w", "conv0.b"], ["c0"], stride=[2, 2], padding=[1, 1, 1, 1],
           clamp_min=0.0),
        op("scale_bias", "bn0", ["c0", "bn0.scale", "bn0.bias"], ["n0"]),
        op("prelu", "pr0", ["n0", "pr0.alpha"], ["p0"]),
        op("quantize", "q0", ["p0"], ["q0"]),
        op("bmaxpool2d", "bmp", ["q0"], ["bm"], kernel=[2, 2], stride=[2, 2]),
        op("bconv2d", "bc1", ["bm", "bc1.w", "", "", "bc1.t", "bc1.flip"], ["b1"], padding=[1, 1, 1, 1],
           output="bitpacked"),
        op("bconv2d", "bc2", ["b1", "bc2.w", "bc2.m", "bc2.b", "", ""], ["b2"], padding=[1, 1, 1, 1], groups=2,
           pad_values="zero", clamp_min=-1.0, clamp_max=1.0),
        op("bconv2d", "bc3", ["b1", "bc3.w", "bc3.m", "bc3.b", "", ""], ["b3"], output="int8"),
        op("quantize", "q3", ["b3"], ["q3"]),
        op("bconv2d", "bc4", ["q3", "bc4.w", "", "", "", ""], ["b4"], output="int32"),
        op("dequantize", "dq", ["b1"], ["map"]),
        op("conv2d", "dw", ["b2", "dw.w", ""], ["d"], padding=[1, 1, 1, 1], groups=32),
        op("relu", "relu", ["d"], ["r"]),
        op("add", "add", ["r", "b2"], ["a"]),
        op("maxpool2d", "mp", ["a"], ["m"], kernel=[2, 2], stride=[2, 2]),
        op("avgpool2d", "ap", ["m"], ["av"], kernel=[3, 3], stride=[1, 1], padding=[1, 1, 1, 1]),
        op("clamp", "ht", ["av"], ["cl"], min=-1.0, max=1.0),
        op("global_avgpool", "gp", ["cl"], ["g"], keepdims=True),
        op("sigmoid", "sg", ["g"], ["s"]),
        op("mul", "se", ["cl", "s"], ["se"]),
        op("concat", "cat", ["se", "cl"], ["cat"], axis=-1),
        op("transpose", "nchw", ["cat"], ["t"], perm=[0, 3, 1, 2]),
        op("flatten", "flat", ["t"], ["fl"]),
        op("reshape", "rs", ["fl"], ["rs"], shape=["batch", 256]),
        op("dense", "fc", ["rs", "fc.w", "fc.b"], ["logits"]),
        op("quantize", "qf", ["fl"], ["qf"]),
        op("bdense", "bfc", ["qf", "bfc.w", "bfc.m", "bfc.b", "", ""], ["bl"]),
        op("add", "sum", ["logits", "bl"], ["l2"]),
        op("softmax", "sm", ["l2"], ["probs"], axis=-1),
        op("global_avgpool", "feat", ["a"], ["features"]),
    ]
    graph = {
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 3, 16, 16], "layout": "NCHW"}],
        "outputs": [
            {"name": "probs", "dtype": "float32", "shape": ["batch", 10], "layout": "NC"},
            {"name": "features", "dtype": "float32", "shape": ["batch", 32], "layout": "NC"},
            {"name": "map", "dtype": "float32", "shape": ["batch", 64, 4, 4], "layout": "NCHW"},
            {"name": "b4", "dtype": "int32", "shape": ["batch", 4, 4, 8], "layout": "NHWC"},
        ],
        "ops": ops,
    }
    expected = {
        "c0": ("float32", ("batch", 8, 8, 32)), "q0": ("bitpacked", ("batch", 8, 8, 32)),
        "bm": ("bitpacked", ("batch", 4, 4, 32)), "b1": ("bitpacked", ("batch", 4, 4, 64)),
        "b2": ("float32", ("batch", 4, 4, 32)), "b3": ("int8", ("batch", 4, 4, 16)),
        "b4": ("int32", ("batch", 4, 4, 8)), "map": ("float32", ("batch", 4, 4, 64)),
        "m": ("float32", ("batch", 2, 2, 32)), "av": ("float32", ("batch", 2, 2, 32)),
        "g": ("float32", ("batch", 1, 1, 32)), "se": ("float32", ("batch", 2, 2, 32)),
        "cat": ("float32", ("batch", 2, 2, 64)), "t": ("float32", ("batch", 64, 2, 2)),
        "fl": ("float32", ("batch", 256)), "bl": ("float32", ("batch", 10)),
        "probs": ("float32", ("batch", 10)), "features": ("float32", ("batch", 32)),
    }
    return graph, tensors, expected


def llm_model(seed: int = 0):
    """One BitNet b1.58 block: GQA attention (4 query heads, 2 kv heads of 16), SwiGLU MLP."""
    rng = np.random.default_rng(seed)
    d, v, ff = 64, 50, 128
    u8 = lambda *s: rng.integers(0, 255, size=s, dtype=np.uint8)  # noqa: E731
    sc = lambda: np.array([0.02], np.float32)  # noqa: E731
    tensors = {
        "tok.table": rng.standard_normal((v, d)).astype(np.float16),
        "n1.w": np.ones(d, np.float32), "n2.w": np.ones(d, np.float32), "nf.w": np.ones(d, np.float32),
        "wq": u8(64, 32), "wq.s": sc(), "wk": u8(32, 32), "wk.s": sc(), "wv": u8(32, 32), "wv.s": sc(),
        "wo": u8(64, 32), "wo.s": sc(), "wg": u8(ff, 32), "wg.s": sc(), "wu": u8(ff, 32), "wu.s": sc(),
        "wd": u8(64, 32), "wd.s": sc(),
    }
    ops = [
        op("embedding", "emb", ["ids", "tok.table"], ["h0"]),
        op("rmsnorm", "n1", ["h0", "n1.w"], ["x1"], eps=1e-5),
        op("quantize_i8", "qi", ["x1"], ["x1q", "x1s"]),
        op("ternary_linear", "q", ["x1q", "x1s", "wq", "wq.s"], ["q"]),
        op("ternary_linear", "k", ["x1q", "x1s", "wk", "wk.s"], ["k"]),
        op("ternary_linear", "v", ["x1q", "x1s", "wv", "wv.s"], ["v"]),
        op("reshape", "qh", ["q"], ["qh"], shape=[1, "T", 4, 16]),
        op("reshape", "kh", ["k"], ["kh"], shape=[1, "T", 2, 16]),
        op("reshape", "vh", ["v"], ["vh"], shape=[1, "T", 2, 16]),
        op("rope", "rq", ["qh", "pos"], ["qr"], theta=500000.0),
        op("rope", "rk", ["kh", "pos"], ["kr"], theta=500000.0),
        op("attention", "att", ["qr", "kr", "vh"], ["att"], causal=True),
        op("reshape", "ao", ["att"], ["ao"], shape=[1, "T", 64]),
        op("ternary_linear", "o", ["ao", "", "wo", "wo.s"], ["o"]),
        op("add", "res1", ["h0", "o"], ["h1"]),
        op("rmsnorm", "n2", ["h1", "n2.w"], ["x2"], eps=1e-5),
        op("ternary_linear", "gate", ["x2", "", "wg", "wg.s"], ["g"]),
        op("ternary_linear", "up", ["x2", "", "wu", "wu.s"], ["u"]),
        op("glu", "glu", ["g", "u"], ["gu"], activation="silu"),
        op("silu", "silu", ["g"], ["gs"]),
        op("ternary_linear", "down", ["gu", "", "wd", "wd.s"], ["dn"]),
        op("add", "res2", ["h1", "dn"], ["h2"]),
        op("rmsnorm", "nf", ["h2", "nf.w"], ["xf"]),
        op("dense", "lm_head", ["xf", "tok.table", ""], ["logits"]),
    ]
    graph = {
        "inputs": [
            {"name": "ids", "dtype": "int64", "shape": [1, "T"], "layout": "NT"},
            {"name": "pos", "dtype": "int64", "shape": ["T"], "layout": "N"},
        ],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [1, "T", v], "layout": "NTC"}],
        "ops": ops,
    }
    expected = {
        "h0": ("float32", (1, "T", 64)), "x1q": ("int8", (1, "T", 64)), "x1s": ("float32", (1, "T")),
        "k": ("float32", (1, "T", 32)), "att": ("float32", (1, "T", 4, 16)), "g": ("float32", (1, "T", ff)),
        "logits": ("float32", (1, "T", v)),
    }
    return graph, tensors, expected


def split(data: bytes) -> tuple[dict, bytes]:
    """(header JSON object, data section) of a safetensors byte string."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header: dict, body: bytes, pad_to: int = 8) -> bytes:
    """Inverse of :func:`split` (header padded with spaces to a multiple of ``pad_to``)."""
    raw = json.dumps(header).encode()
    raw += b" " * (-(8 + len(raw)) % pad_to)
    return len(raw).to_bytes(8, "little") + raw + body


def mutate(data: bytes, header_fn=None, doc_fn=None) -> bytes:
    """Re-serialize a file after editing its header dict and/or its graph document in place."""
    header, body = split(data)
    if doc_fn is not None:
        doc = json.loads(header["__metadata__"]["onebit.graph"])
        doc_fn(doc)
        header["__metadata__"]["onebit.graph"] = json.dumps(doc)
    if header_fn is not None:
        header_fn(header)
    return join(header, body)
