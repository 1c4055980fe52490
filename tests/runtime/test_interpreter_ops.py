"""Every op of the schema run by the Interpreter, one op per graph (written with write_model),
against an independent float oracle (PyTorch / numpy) on shape grids that hit word edges."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from onebit.converter import write_model
from onebit.kernels import bitpack, pack_ternary, unpack_ternary
from onebit.runtime import OPS, Interpreter
from onebit.runtime.format import to_user_shape
from onebit.runtime.schema import Value, complete_attrs, infer_outputs

torch.set_num_threads(1)
_LAYOUT = {1: "N", 2: "NC", 3: "NTC", 4: "NHWC"}
EDGES = (1, 31, 32, 33, 63, 64, 65)
TESTED: set[str] = set()


def one_op(type_, acts, weights=None, refs=None, attrs=None, *, dequantize_outputs=True, layouts=None,
           num_threads=1):
    """Run one op of ``type_`` on activations ``acts`` (name -> engine-layout array) and stored
    ``weights``; ``refs`` lists the op's input names ("" = absent; default: acts then weights).
    Bitpacked outputs get a dequantize op so they can be graph outputs. Returns the outputs."""
    TESTED.add(type_)
    weights = weights or {}
    refs = list(acts) + list(weights) if refs is None else refs
    attrs = complete_attrs(OPS[type_], attrs or {})
    layouts = layouts or {}
    vals = {n: Value(a.dtype.name, a.shape) for n, a in acts.items()}
    vals.update({n: Value(a.dtype.name, a.shape) for n, a in weights.items()})
    ins = [vals[r] if r else None for r in refs]
    outs = infer_outputs(OPS[type_], ins, attrs)
    names = [f"y{i}" for i in range(len(outs))]
    ops = [{"type": type_, "name": "op", "inputs": refs, "outputs": names, "attrs": attrs}]
    graph_outs = []
    for name, v in zip(names, outs):
        if v.dtype == "bitpacked" and dequantize_outputs:
            ops.append({"type": "dequantize", "name": f"dq_{name}", "inputs": [name], "outputs": [f"{name}f"],
                        "attrs": {}})
            name, v = f"{name}f", Value("float32", v.shape)
        layout = layouts.get(name, _LAYOUT[len(v.shape)])
        graph_outs.append({"name": name, "dtype": v.dtype, "shape": list(to_user_shape(v.shape, layout)),
                           "layout": layout})
    graph = {
        "inputs": [{"name": n, "dtype": a.dtype.name, "shape": list(a.shape), "layout": _LAYOUT[a.ndim]}
                   for n, a in acts.items()],
        "outputs": graph_outs,
        "ops": ops,
    }
    interp = Interpreter(write_model(None, graph, weights), num_threads=num_threads)
    res = interp.run(*acts.values())
    return res if isinstance(res, tuple) else (res,)


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).numpy()


def signs(x: np.ndarray) -> np.ndarray:
    """±1 values of bitpack's convention: x < 0 -> -1, else +1."""
    return np.where(x < 0, -1.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------
# binary ops


@pytest.mark.parametrize("c", EDGES)
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_quantize_dequantize(rng, c, dtype):
    x = f32(rng, 2, 3, c) if dtype == "float32" else rng.integers(-3, 3, (2, 3, c)).astype(np.int8)
    (y,) = one_op("quantize", {"x": x})
    TESTED.add("dequantize")
    np.testing.assert_array_equal(y, signs(x))


def _binary_transform(acc, kind, rng, o):
    """(weights dict, oracle output) of a bconv2d/bdense output transform on int acc (float64)."""
    m = (rng.standard_normal(o) * 0.1).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    if kind == "int32":
        return {}, acc.astype(np.int32), {}
    if kind == "bitpacked":
        thr = rng.integers(-8, 8, o).astype(np.int32)
        flip = rng.integers(0, 2, o).astype(np.uint8)
        bit = (acc < thr) != flip.astype(bool)
        return {"t": thr, "f": flip}, np.where(bit, -1.0, 1.0).astype(np.float32), {}
    y = (m.astype(np.float64) * acc + b).astype(np.float32)
    y = np.clip(y, np.float32(-0.5), np.float32(2.0))
    attrs = {"clamp_min": -0.5, "clamp_max": 2.0}
    if kind == "int8":
        y = np.rint(np.clip(y, -128, 127)).astype(np.int8)
    return {"m": m, "b": b}, y, attrs


def _refs(kind):
    return {"float32": ["m", "b", "", ""], "int8": ["m", "b", "", ""], "int32": ["", "", "", ""],
            "bitpacked": ["", "", "t", "f"]}[kind]


@pytest.mark.parametrize("c", EDGES)
@pytest.mark.parametrize("kind", ["float32", "int8", "int32", "bitpacked"])
def test_bdense(rng, c, kind):
    x, w = f32(rng, 2, 3, c), f32(rng, 33, c)
    acc = signs(x).astype(np.float64) @ signs(w).T.astype(np.float64)
    tw, want, attrs = _binary_transform(acc, kind, rng, 33)
    (y,) = _run_binary("bdense", x, w, tw, kind, attrs)
    if kind == "float32":
        np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(y, want)


def _run_binary(type_, x, w, tw, kind, attrs, **conv_attrs):
    """Graph: quantize x, then the binary op on the packed x with packed w."""
    TESTED.update({type_, "quantize"})
    wp = bitpack(w)
    stored = {"w": wp, **tw}
    ops = [{"type": "quantize", "name": "q", "inputs": ["x"], "outputs": ["xq"], "attrs": {}},
           {"type": type_, "name": "op", "inputs": ["xq", "w", *_refs(kind)], "outputs": ["y"],
            "attrs": {"output": kind, **attrs, **conv_attrs}}]
    vals = {"xq": Value("bitpacked", x.shape), "w": Value("uint32", wp.shape),
            **{n: Value(a.dtype.name, a.shape) for n, a in tw.items()}}
    (out,) = infer_outputs(OPS[type_], [vals.get(r) if r else None for r in ops[1]["inputs"]],
                           complete_attrs(OPS[type_], ops[1]["attrs"]))
    name = "y"
    if out.dtype == "bitpacked":
        ops.append({"type": "dequantize", "name": "dq", "inputs": ["y"], "outputs": ["yf"], "attrs": {}})
        name, out = "yf", Value("float32", out.shape)
    graph = {"inputs": [{"name": "x", "dtype": "float32", "shape": list(x.shape), "layout": _LAYOUT[x.ndim]}],
             "outputs": [{"name": name, "dtype": out.dtype, "shape": list(out.shape), "layout": _LAYOUT[x.ndim]}],
             "ops": ops}
    return (Interpreter(write_model(None, graph, stored)).run(x),)


def _bconv_acc(x, w, stride, dilation, pads, pad_value, groups):
    xs = torch.from_numpy(signs(x)).double().permute(0, 3, 1, 2)
    ws = torch.from_numpy(signs(w)).double().permute(0, 3, 1, 2)
    xs = F.pad(xs, (pads[2], pads[3], pads[0], pads[1]), value=pad_value)
    return F.conv2d(xs, ws, stride=stride, dilation=dilation, groups=groups).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("c", EDGES)
@pytest.mark.parametrize("kind", ["float32", "int8", "int32", "bitpacked"])
def test_bconv2d_channels_and_outputs(rng, c, kind):
    x, w = f32(rng, 2, 5, 6, c), f32(rng, 33, 3, 3, c)
    pads = (1, 1, 1, 1)
    acc = _bconv_acc(x, w, 1, 1, pads, 1.0, 1)
    tw, want, attrs = _binary_transform(acc, kind, rng, 33)
    (y,) = _run_binary("bconv2d", x, w, tw, kind, attrs, padding=list(pads))
    if kind == "float32":
        np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize(
    "c,o,k,stride,dilation,pads,pad_values,groups",
    [
        (32, 16, 3, (2, 2), (1, 1), (1, 1, 1, 1), "zero", 1),
        (33, 8, 3, (1, 2), (2, 1), (2, 0, 1, 2), "one", 1),
        (64, 64, 3, (1, 1), (1, 1), (1, 1, 1, 1), "one", 2),
        (64, 32, 1, (1, 1), (1, 1), (0, 0, 0, 0), "zero", 2),
        (96, 6, 2, (2, 1), (1, 1), (0, 1, 1, 0), "zero", 3),
        (17, 5, 5, (1, 1), (1, 1), (2, 2, 2, 2), "zero", 1),
    ],
)
def test_bconv2d_geometry(rng, c, o, k, stride, dilation, pads, pad_values, groups):
    x, w = f32(rng, 1, 7, 8, c), f32(rng, o, k, k, c // groups)
    acc = _bconv_acc(x, w, stride, dilation, pads, 1.0 if pad_values == "one" else 0.0, groups)
    (y,) = _run_binary("bconv2d", x, w, {}, "int32", {}, stride=list(stride), dilation=list(dilation),
                       padding=list(pads), pad_values=pad_values, groups=groups)
    np.testing.assert_array_equal(y, acc.astype(np.int32))


@pytest.mark.parametrize("c", (1, 32, 33, 65))
@pytest.mark.parametrize("kernel,stride,pads", [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (2, 2), (1, 1, 1, 1)),
                                                ((3, 2), (1, 2), (2, 0, 0, 1))])
def test_bmaxpool2d(rng, c, kernel, stride, pads):
    x = f32(rng, 2, 7, 6, c)
    TESTED.update({"quantize", "bmaxpool2d", "dequantize"})
    graph = {
        "inputs": [{"name": "x", "dtype": "float32", "shape": list(x.shape), "layout": "NHWC"}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": None, "layout": "NHWC"}],
        "ops": [{"type": "quantize", "name": "q", "inputs": ["x"], "outputs": ["xq"], "attrs": {}},
                {"type": "bmaxpool2d", "name": "p", "inputs": ["xq"], "outputs": ["pq"],
                 "attrs": {"kernel": list(kernel), "stride": list(stride), "padding": list(pads)}},
                {"type": "dequantize", "name": "d", "inputs": ["pq"], "outputs": ["y"], "attrs": {}}],
    }
    t = F.pad(nchw(signs(x)), (pads[2], pads[3], pads[0], pads[1]), value=-np.inf)
    want = nhwc(F.max_pool2d(t, kernel, stride))
    graph["outputs"][0]["shape"] = list(want.shape)
    y = Interpreter(write_model(None, graph, {})).run(x)
    np.testing.assert_array_equal(y, want)


# ------------------------------------------------------------------------------------------
# float conv / dense


def _conv_oracle(x, w, b, stride, dilation, pads, groups, lo, hi):
    t = F.pad(nchw(x).double(), (pads[2], pads[3], pads[0], pads[1]))
    wt = torch.from_numpy(w).double().permute(0, 3, 1, 2)
    y = F.conv2d(t, wt, None if b is None else torch.from_numpy(b).double(), stride=stride, dilation=dilation,
                 groups=groups)
    if lo is not None or hi is not None:
        y = y.clamp(lo, hi)
    return nhwc(y.float())


@pytest.mark.parametrize(
    "c,o,k,stride,dilation,pads,groups",
    [
        (3, 32, 3, (2, 2), (1, 1), (1, 1, 1, 1), 1),  # first conv
        (1, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1),
        (31, 33, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1),  # 1x1
        (65, 63, 1, (2, 2), (1, 1), (0, 0, 0, 0), 1),  # strided 1x1
        (33, 16, 3, (1, 2), (2, 1), (2, 0, 1, 2), 1),
        (32, 32, 3, (1, 1), (1, 1), (1, 1, 1, 1), 32),  # depthwise
        (33, 33, 3, (2, 2), (1, 1), (1, 1, 1, 1), 33),  # depthwise, stride 2
        (16, 32, 3, (1, 1), (2, 2), (2, 2, 2, 2), 16),  # depthwise, multiplier 2, dilated
        (64, 32, 3, (1, 1), (1, 1), (0, 1, 0, 1), 4),  # grouped
        (6, 9, 2, (2, 1), (1, 1), (1, 0, 0, 1), 3),
    ],
)
@pytest.mark.parametrize("bias,clamp", [(True, (0.0, None)), (False, (None, None)), (True, (-1.0, 1.0))])
def test_conv2d(rng, c, o, k, stride, dilation, pads, groups, bias, clamp):
    x, w = f32(rng, 2, 9, 8, c), f32(rng, o, k, k, c // groups)
    b = f32(rng, o) if bias else None
    weights = {"w": w, **({"b": b} if bias else {})}
    (y,) = one_op("conv2d", {"x": x}, weights, ["x", "w", "b" if bias else ""],
                  {"stride": list(stride), "dilation": list(dilation), "padding": list(pads), "groups": groups,
                   "clamp_min": clamp[0], "clamp_max": clamp[1]})
    want = _conv_oracle(x, w, b, stride, dilation, pads, groups, *clamp)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * np.sqrt(k * k * c))


def test_conv2d_nchw_layout(rng):
    """A graph whose input and output are NCHW gets and returns PyTorch-layout arrays."""
    x, w = f32(rng, 2, 5, 7, 4), f32(rng, 6, 3, 3, 4)  # engine NHWC
    TESTED.add("conv2d")
    graph = {"inputs": [{"name": "x", "dtype": "float32", "shape": [2, 4, 5, 7], "layout": "NCHW"}],
             "outputs": [{"name": "y", "dtype": "float32", "shape": [2, 6, 5, 7], "layout": "NCHW"}],
             "ops": [{"type": "conv2d", "name": "c", "inputs": ["x", "w", ""], "outputs": ["y"],
                      "attrs": {"padding": [1, 1, 1, 1]}}]}
    y = Interpreter(write_model(None, graph, {"w": w})).run(nchw(x).numpy())
    want = F.conv2d(nchw(x), torch.from_numpy(w).permute(0, 3, 1, 2), padding=1).numpy()
    assert y.shape == (2, 6, 5, 7) and y.flags.c_contiguous
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", EDGES)
@pytest.mark.parametrize("lead", [(1,), (3,), (2, 5)])
@pytest.mark.parametrize("wdtype", [np.float32, np.float16])
def test_dense(rng, k, lead, wdtype):
    x, w, b = f32(rng, *lead, k), f32(rng, 17, k).astype(wdtype), f32(rng, 17)
    (y,) = one_op("dense", {"x": x}, {"w": w, "b": b}, attrs={"clamp_max": 1.5})
    want = F.linear(torch.from_numpy(x).double(), torch.from_numpy(w.astype(np.float32)).double(),
                    torch.from_numpy(b).double()).clamp(max=1.5).float().numpy()
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * np.sqrt(k))


# ------------------------------------------------------------------------------------------
# pools


_POOLS = [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (2, 2), (1, 1, 1, 1)), ((3, 3), (1, 1), (1, 1, 1, 1)),
          ((3, 2), (1, 2), (2, 0, 0, 1)), ((1, 1), (1, 1), (0, 0, 0, 0))]


@pytest.mark.parametrize("c", (1, 32, 33))
@pytest.mark.parametrize("kernel,stride,pads", _POOLS)
def test_maxpool2d(rng, c, kernel, stride, pads):
    x = f32(rng, 2, 7, 6, c)
    (y,) = one_op("maxpool2d", {"x": x}, attrs={"kernel": list(kernel), "stride": list(stride),
                                                "padding": list(pads)})
    t = F.pad(nchw(x), (pads[2], pads[3], pads[0], pads[1]), value=-np.inf)
    np.testing.assert_array_equal(y, nhwc(F.max_pool2d(t, kernel, stride)))


@pytest.mark.parametrize("c", (1, 33))
@pytest.mark.parametrize("kernel,stride,pads", _POOLS)
@pytest.mark.parametrize("include", [False, True])
def test_avgpool2d(rng, c, kernel, stride, pads, include):
    x = f32(rng, 2, 7, 6, c)
    (y,) = one_op("avgpool2d", {"x": x}, attrs={"kernel": list(kernel), "stride": list(stride),
                                                "padding": list(pads), "count_include_pad": include})
    pad = (pads[2], pads[3], pads[0], pads[1])
    s = F.avg_pool2d(F.pad(nchw(x).double(), pad), kernel, stride, divisor_override=1)
    if include:
        want = s / (kernel[0] * kernel[1])
    else:
        ones = F.pad(torch.ones_like(nchw(x)).double(), pad)
        want = s / F.avg_pool2d(ones, kernel, stride, divisor_override=1)
    np.testing.assert_allclose(y, nhwc(want.float()), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hw", [(1, 1), (7, 7), (3, 5)])
@pytest.mark.parametrize("keep", [False, True])
def test_global_avgpool(rng, hw, keep):
    x = f32(rng, 2, *hw, 33)
    (y,) = one_op("global_avgpool", {"x": x}, attrs={"keepdims": keep})
    want = x.astype(np.float64).mean(axis=(1, 2), keepdims=keep)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------
# element-wise


@pytest.mark.parametrize("bshape", [(2, 3, 4, 33), (33,), (1, 1, 1, 33), (2, 1, 1, 33), (2, 3, 4, 1)])
@pytest.mark.parametrize("type_", ["add", "mul"])
def test_add_mul(rng, bshape, type_):
    a, b = f32(rng, 2, 3, 4, 33), f32(rng, *bshape)
    (y,) = one_op(type_, {"a": a, "b": b}) if len(bshape) == 4 else one_op(type_, {"a": a}, {"b": b})
    want = (torch.from_numpy(a) + torch.from_numpy(b)) if type_ == "add" else torch.from_numpy(a) * torch.from_numpy(b)
    np.testing.assert_array_equal(y, want.numpy())


@pytest.mark.parametrize("type_", ["relu", "sigmoid", "silu"])
@pytest.mark.parametrize("shape", [(1,), (3, 65), (2, 3, 4, 31)])
def test_activations(rng, type_, shape):
    x = f32(rng, *shape) * 10
    x.flat[0] = -100.0  # exp overflow path of sigmoid
    (y,) = one_op(type_, {"x": x})
    fn = {"relu": torch.relu, "sigmoid": torch.sigmoid, "silu": F.silu}[type_]
    np.testing.assert_allclose(y, fn(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("lo,hi", [(None, None), (0.0, None), (None, 6.0), (-1.0, 1.0)])
def test_clamp(rng, lo, hi):
    x = f32(rng, 2, 3, 33) * 4
    (y,) = one_op("clamp", {"x": x}, attrs={"min": lo, "max": hi})
    np.testing.assert_array_equal(y, torch.from_numpy(x).clamp(lo, hi).numpy() if (lo, hi) != (None, None) else x)


@pytest.mark.parametrize("c", (1, 32, 33))
def test_prelu_scale_bias(rng, c):
    x, alpha, s, b = f32(rng, 2, 3, 4, c), f32(rng, c), f32(rng, c), f32(rng, c)
    (y,) = one_op("prelu", {"x": x}, {"alpha": alpha})
    np.testing.assert_allclose(y, F.prelu(nchw(x), torch.from_numpy(alpha)).permute(0, 2, 3, 1).numpy(),
                               rtol=1e-6, atol=0)
    (y,) = one_op("scale_bias", {"x": x}, {"s": s, "b": b})
    np.testing.assert_allclose(y, x * s + b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax(rng, axis):
    x = f32(rng, 3, 5, 33) * 20
    (y,) = one_op("softmax", {"x": x}, attrs={"axis": axis})
    np.testing.assert_allclose(y, torch.softmax(torch.from_numpy(x), axis).numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("act", ["silu", "relu2"])
def test_glu(rng, act):
    g, u = f32(rng, 1, 5, 65) * 5, f32(rng, 1, 5, 65)
    (y,) = one_op("glu", {"g": g, "u": u}, attrs={"activation": act})
    gt, ut = torch.from_numpy(g), torch.from_numpy(u)
    want = F.silu(gt) * ut if act == "silu" else torch.relu(gt) ** 2 * ut
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------
# shape ops


def test_reshape_flatten_transpose_concat(rng):
    x = f32(rng, 2, 3, 4, 5)
    (y,) = one_op("reshape", {"x": x}, attrs={"shape": [2, 12, 5]})
    np.testing.assert_array_equal(y, x.reshape(2, 12, 5))
    (y,) = one_op("flatten", {"x": x})
    np.testing.assert_array_equal(y, x.reshape(2, 60))
    (y,) = one_op("transpose", {"x": x}, attrs={"perm": [0, 3, 1, 2]})
    np.testing.assert_array_equal(y, x.transpose(0, 3, 1, 2))
    z = f32(rng, 2, 3, 4, 7)
    (y,) = one_op("concat", {"x": x, "z": z}, refs=["x", "z"], attrs={"axis": 3})
    np.testing.assert_array_equal(y, np.concatenate([x, z], axis=3))
    (y,) = one_op("concat", {"x": x}, {"w": x[:1].copy()}, refs=["x", "w"], attrs={"axis": 0})
    np.testing.assert_array_equal(y, np.concatenate([x, x[:1]], axis=0))
    ids = rng.integers(0, 9, (2, 6)).astype(np.int64)
    (y,) = one_op("transpose", {"ids": ids}, attrs={"perm": [1, 0]})
    np.testing.assert_array_equal(y, ids.T)


# ------------------------------------------------------------------------------------------
# language-model ops


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("tdtype", [np.float32, np.float16])
def test_embedding(rng, dtype, tdtype):
    table = f32(rng, 50, 33).astype(tdtype)
    ids = rng.integers(0, 50, (2, 7)).astype(dtype)
    (y,) = one_op("embedding", {"ids": ids}, {"table": table})
    np.testing.assert_array_equal(y, table.astype(np.float32)[ids])


@pytest.mark.parametrize("d", (1, 31, 64, 65))
def test_rmsnorm(rng, d):
    x, w = f32(rng, 1, 5, d) * 3, f32(rng, d)
    (y,) = one_op("rmsnorm", {"x": x}, {"w": w}, attrs={"eps": 1e-5})
    want = F.rms_norm(torch.from_numpy(x), (d,), torch.from_numpy(w), eps=1e-5).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def _quantize_i8_oracle(x):
    scale = (np.float32(127.0) / np.maximum(np.abs(x).max(axis=-1), np.float32(1e-5))).astype(np.float32)
    q = np.clip(np.rint(x * scale[..., None]), -127, 127).astype(np.int8)
    return q, scale


@pytest.mark.parametrize("k", (1, 31, 32, 33, 129))
def test_quantize_i8(rng, k):
    x = f32(rng, 1, 4, k)
    x[0, 0] = 0.0  # all-zero row: scale from the 1e-5 floor
    q, s = one_op("quantize_i8", {"x": x})
    wq, ws = _quantize_i8_oracle(x)
    np.testing.assert_array_equal(q, wq)
    np.testing.assert_array_equal(s, ws)


@pytest.mark.parametrize("k", (1, 31, 32, 127, 128, 129, 257))
@pytest.mark.parametrize("tokens", (1, 5))
@pytest.mark.parametrize("int8_input", [False, True])
def test_ternary_linear(rng, k, tokens, int8_input):
    x = f32(rng, 1, tokens, k)
    packed, gamma = pack_ternary(f32(rng, 24, k))
    t = unpack_ternary(packed, k).astype(np.int64)
    q, s = _quantize_i8_oracle(x)
    want = (q.astype(np.int64) @ t.T).astype(np.float32) * (np.float32(gamma) / s[..., None])
    weights = {"w": packed, "ws": np.array([gamma], np.float32)}
    if int8_input:
        TESTED.add("ternary_linear")
        graph = {"inputs": [{"name": "x", "dtype": "float32", "shape": list(x.shape), "layout": "NTC"}],
                 "outputs": [{"name": "y", "dtype": "float32", "shape": [1, tokens, 24], "layout": "NTC"}],
                 "ops": [{"type": "quantize_i8", "name": "q", "inputs": ["x"], "outputs": ["xq", "xs"], "attrs": {}},
                         {"type": "ternary_linear", "name": "t", "inputs": ["xq", "xs", "w", "ws"],
                          "outputs": ["y"], "attrs": {}}]}
        y = Interpreter(write_model(None, graph, weights)).run(x)
    else:
        (y,) = one_op("ternary_linear", {"x": x}, weights, ["x", "", "w", "ws"])
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)


def _rope_interleaved(x, pos, theta):
    d = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    ang = torch.from_numpy(pos).double()[..., None] * inv  # (T, D/2) or (B, T, D/2)
    rot = torch.polar(torch.ones_like(ang), ang).to(torch.complex64).unsqueeze(-2)
    xc = torch.view_as_complex(torch.from_numpy(x).reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(xc * rot).reshape(x.shape).numpy()


@pytest.mark.parametrize("style", ["half", "interleaved"])
@pytest.mark.parametrize("pos_rank", [1, 2])
def test_rope(rng, style, pos_rank):
    from onebit.llm.model import apply_rope

    b, t, h, d = 2, 5, 3, 16
    x = f32(rng, b, t, h, d)
    pos = rng.integers(0, 100, (t,) if pos_rank == 1 else (b, t)).astype(np.int64)
    (y,) = one_op("rope", {"x": x, "p": pos}, attrs={"theta": 500.0, "style": style})
    if style == "half":
        inv = 1.0 / (500.0 ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        ang = torch.from_numpy(pos).double()[..., None] * inv
        ang = torch.cat([ang, ang], -1)
        cos, sin = ang.cos().float(), ang.sin().float()
        cos, sin = (cos[:, None], sin[:, None]) if pos_rank == 1 else (cos[:, :, None], sin[:, :, None])
        # apply_rope works on (B, heads, T, D) with (T, D) tables; here heads sit after T
        want = (torch.from_numpy(x) * cos + torch.cat([-torch.from_numpy(x[..., d // 2:]),
                                                         torch.from_numpy(x[..., :d // 2])], -1) * sin).numpy()
        if pos_rank == 1:  # the model's own function agrees on the same tables
            ref = apply_rope(torch.from_numpy(x).transpose(1, 2), cos[:, 0], sin[:, 0]).transpose(1, 2).numpy()
            np.testing.assert_allclose(want, ref, rtol=0, atol=0)
    else:
        want = _rope_interleaved(x, pos, 500.0)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("t,s", [(5, 5), (1, 7), (3, 8)])
@pytest.mark.parametrize("hq,hkv", [(4, 4), (4, 2), (6, 1)])
@pytest.mark.parametrize("causal,scale", [(True, None), (False, 0.3)])
def test_attention(rng, t, s, hq, hkv, causal, scale):
    b, d, dv = 2, 16, 8
    q, k, v = f32(rng, b, t, hq, d), f32(rng, b, s, hkv, d), f32(rng, b, s, hkv, dv)
    (y,) = one_op("attention", {"q": q, "k": k, "v": v}, attrs={"causal": causal, "scale": scale})
    qt = torch.from_numpy(q).double().transpose(1, 2)
    kt = torch.from_numpy(k).double().transpose(1, 2).repeat_interleave(hq // hkv, dim=1)
    vt = torch.from_numpy(v).double().transpose(1, 2).repeat_interleave(hq // hkv, dim=1)
    mask = None
    if causal:
        mask = torch.arange(s)[None, :] <= torch.arange(t)[:, None] + (s - t)
    want = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, scale=scale).transpose(1, 2).float().numpy()
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_every_op_type_is_tested():
    """Runs last in this file (pytest keeps file order): every schema op went through one_op."""
    assert TESTED == set(OPS), sorted(set(OPS) - TESTED)
