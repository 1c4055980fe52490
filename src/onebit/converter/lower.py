"""Pass 2, lower: the captured ``torch.fx`` graph -> the converter IR (:mod:`onebit.converter.ir`).

Every fx node becomes schema ops in the engine's channels-last layout (NCHW values become NHWC;
conv weights OIHW become OHWI). Rules, one per supported module or function (``SUPPORTED``):

* ``QuantConv2d`` / ``QuantLinear`` with a binary sign input quantizer and a binary kernel
  quantizer -> ``quantize`` + ``bconv2d`` / ``bdense`` (weights kept as ±1 floats until
  ``pack_weights``; a per-output-channel weight scale such as ``magnitude_aware_sign``'s
  ``mean|W|`` becomes the multiplier; the layer bias the bias; ``pad_value`` 1.0/0.0 ->
  ``pad_values`` "one"/"zero"; ``RSign``'s threshold ``alpha`` -> ``add(-alpha)`` before the
  ``quantize``). Without an input quantizer the layer is a float ``conv2d``/``dense`` with the
  quantized weights ``kernel_quantizer(W)`` in float32 (BinaryAlexNet's first conv).
* ``BitLinear`` (``absmax_int8`` inputs, ``absmean_ternary`` weights) -> ``ternary_linear``
  (int8 codes until ``pack_weights``; ``w_scale = gamma``) + ``add(bias)`` when it has one.
* float ``nn.Conv2d`` / ``nn.Linear`` -> ``conv2d`` / ``dense``; ``BatchNorm`` -> ``scale_bias``
  (eval statistics: ``scale = w / sqrt(var + eps)``, ``bias = b - mean * scale``, in float64);
  ReLU / ReLU6 / Hardtanh / clamp -> ``relu`` / ``clamp``; PReLU -> ``prelu``; pools ->
  ``maxpool2d`` / ``avgpool2d`` / ``global_avgpool``; flatten of an (N, C, H, W) value ->
  ``transpose`` to NCHW + ``flatten`` (the ``flatten_order`` pass removes the transpose when only
  dense layers read it); ``+``/``*`` -> ``add``/``mul``.

Anything else raises :class:`~onebit.errors.ConversionError` naming the module or function and
listing what is supported.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from onebit import quantizers as Q
from onebit.converter.capture import LEAF_TYPES, _leaf_base
from onebit.converter.ir import Graph, GraphIO, Node
from onebit.errors import ConversionError
from onebit.nn import QuantConv2d, QuantLinear
from onebit.nn.quant_layers import _FunctionQuantizer
from onebit.nn.react import LearnableBias, RPReLU

__all__ = ["lower", "SUPPORTED", "supported_text"]

_LAYOUTS = {2: "NC", 3: "NTC", 4: "NCHW"}
_BINARY_INPUT_TYPES = (Q.SteSign, Q.ApproxSign, Q.SwishSign, Q.RSign, Q.ProgressiveSign)
_BINARY_INPUT_FNS = (Q.ste_sign, Q.approx_sign, Q.swish_sign)


def _f32(t: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return np.ascontiguousarray(t, dtype=np.float32)


def _name_of(q: Any) -> str:
    return getattr(q, "name", "") or type(q).__name__


class _Lowerer:
    def __init__(self, gm: fx.GraphModule):
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.env: dict[fx.Node, str] = {}
        self.rank: dict[str, int] = {}  # value -> torch rank (4: engine NHWC of an NCHW tensor)
        self.bits_memo: dict[tuple, str] = {}
        self.graph = Graph(inputs=[], outputs=[])

    # -- helpers ------------------------------------------------------------------------------
    def emit(self, type_: str, source: str, inputs: list[str], attrs=None, params=None, rank=None,
             n_out: int = 1, **meta) -> str:
        name = self.graph.fresh(source)
        outs = [name] + [self.graph.fresh(f"{name}:{i}") for i in range(1, n_out)]
        node = Node(type_, name, list(inputs), outs, dict(attrs or {}), dict(params or {}), {"source": source, **meta})
        self.graph.nodes.append(node)
        if rank is not None:
            for o in outs:
                self.rank[o] = rank
        return outs[0]

    def value(self, arg: Any, where: str) -> str:
        if not isinstance(arg, fx.Node) or arg not in self.env or self.env[arg] == _SIZE:
            raise ConversionError(f"{where}: expected a tensor computed by the model, got {arg!r}")
        return self.env[arg]

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        shape = node.meta.get("shape")
        if shape is None:
            raise ConversionError(f"{node.name}: no tensor shape recorded (does it return a tensor?)")
        return shape

    def quantize(self, v: str, q: nn.Module | None, source: str) -> str:
        """Bitpacked ``sign(v)`` for a binary input quantizer (``RSign``: ``sign(v - alpha)``)."""
        alpha = None
        if isinstance(q, Q.RSign):
            if q.num_channels is None:
                raise ConversionError(f"{source}: RSign has no channels yet (never run); run the model once first")
            alpha = _f32(q.alpha)
        if isinstance(q, Q.ProgressiveSign) and not q.is_hard:
            raise ConversionError(
                f"{source}: ProgressiveSign at temperature {float(q.temperature):g} is not a sign yet; set the "
                "temperature to 0 (onebit.quantizers.set_progressive_temperature(model, 0.0)) before converting"
            )
        key = (v, None if alpha is None else alpha.tobytes())
        if key not in self.bits_memo:
            x = v
            if alpha is not None and np.any(alpha != 0):
                x = self.emit("add", f"{source}.rsign", [v, self._const(-alpha, source)], rank=self.rank[v])
            self.bits_memo[key] = self.emit("quantize", f"{source}.quantize", [x], rank=self.rank[v])
        return self.bits_memo[key]

    def _const(self, arr: np.ndarray, source: str) -> str:
        """A stored constant used as an activation input (``add``/``mul`` operand b)."""
        name = self.graph.fresh(f"{source}.const")
        self.graph.constants[name] = _f32(arr)
        return name

    # -- entry --------------------------------------------------------------------------------
    def run(self) -> Graph:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                shape = self.shape(node)
                if len(shape) not in _LAYOUTS:
                    raise ConversionError(f"input {node.name}: expected rank 2, 3 or 4 (NC, NTC, NCHW), got {shape}")
                name = "x" if not self.graph.inputs else self.graph.fresh(node.name)
                self.graph.inputs.append(GraphIO(name, "float32", ["batch", *shape[1:]], _LAYOUTS[len(shape)]))
                self.env[node] = name
                self.rank[name] = len(shape)
            elif node.op == "call_module":
                self.env[node] = self.call_module(node)
            elif node.op in ("call_function", "call_method"):
                self.env[node] = self.call_function(node)
            elif node.op == "get_attr":
                raise ConversionError(
                    f"{node.target}: a tensor attribute used directly in forward is not supported; wrap it in a "
                    f"supported layer. {supported_text()}"
                )
            elif node.op == "output":
                self.outputs(node)
        return self.graph

    def outputs(self, node: fx.Node) -> None:
        result = node.args[0]
        items = list(result) if isinstance(result, (tuple, list)) else [result]
        names = ["output"] if len(items) == 1 else [f"output{i}" for i in range(len(items))]
        seen: set[str] = set()
        for item, out_name in zip(items, names):
            v = self.value(item, "model output")
            if v in seen:
                raise ConversionError(f"the model returns the same tensor twice ({v}); return it once")
            seen.add(v)
            if self.graph.producer(v) is None:
                raise ConversionError("a model output is its input unchanged; there is nothing to convert")
            shape = self.shape(item)
            if len(shape) not in _LAYOUTS:
                raise ConversionError(f"output {out_name}: expected rank 2, 3 or 4, got shape {shape}")
            self._rename(v, out_name)
            self.graph.outputs.append(GraphIO(out_name, "float32", ["batch", *shape[1:]], _LAYOUTS[len(shape)]))

    def _rename(self, old: str, new: str) -> None:
        for n in self.graph.nodes:
            n.outputs = [new if o == old else o for o in n.outputs]
            n.inputs = [new if i == old else i for i in n.inputs]
        self.rank[new] = self.rank[old]

    # -- modules ------------------------------------------------------------------------------
    def call_module(self, node: fx.Node) -> str:
        m = self.modules[node.target]
        src = str(node.target)
        base = _leaf_base(m)
        rule = _MODULE_RULES.get(base) if base is not None else None
        if rule is None:
            raise ConversionError(
                f"module '{src}' ({type(m).__module__}.{type(m).__name__}) is not supported. {supported_text()}"
            )
        if len(node.args) != 1 or node.kwargs:
            raise ConversionError(f"module '{src}' is called with {len(node.args)} arguments; expected one tensor")
        x = self.value(node.args[0], src)
        return rule(self, m, x, src, self.shape(node.args[0]), self.shape(node))

    def call_function(self, node: fx.Node) -> str:
        key = node.target if node.op == "call_function" else f"Tensor.{node.target}"
        rule = _FUNCTION_RULES.get(key)
        fname = getattr(node.target, "__name__", str(node.target))
        if rule is None:
            raise ConversionError(
                f"function '{fname}' (fx node '{node.name}') is not supported. {supported_text()}"
            )
        return rule(self, node, node.name)


# -- module rules ----------------------------------------------------------------------------
def _check_rank(src: str, in_shape, ranks: tuple[int, ...], what: str) -> None:
    if len(in_shape) not in ranks:
        raise ConversionError(f"{src}: {what} expects an input of rank {' or '.join(map(str, ranks))}, got {in_shape}")


def _binary_input(q: Any) -> bool:
    if isinstance(q, _FunctionQuantizer):
        return q.fn in _BINARY_INPUT_FNS
    return isinstance(q, _BINARY_INPUT_TYPES)


def _binary_kernel(m: nn.Module, src: str) -> tuple[np.ndarray, np.ndarray]:
    """``kernel_quantizer(W)`` as ``scale[o] * s`` with ``s`` = ±1 (``sign(0) = +1``): (signs, scale).

    Works for any sign-like quantizer (ste_sign: scale 1; magnitude_aware_sign: mean|W[o]|)."""
    with torch.no_grad():
        q = m.quantized_weight().detach().double().cpu().numpy()
    flat = q.reshape(q.shape[0], -1)
    scale = np.abs(flat).max(axis=1)
    if not np.allclose(np.abs(flat), scale[:, None], rtol=1e-6, atol=0) or not np.isfinite(flat).all():
        raise ConversionError(
            f"{src}: kernel quantizer '{_name_of(m.kernel_quantizer)}' does not give +-scale per output channel "
            "(binary weights expected: ste_sign, approx_sign, swish_sign, magnitude_aware_sign, hard progressive_sign)"
        )
    signs = np.where(q < 0, -1.0, 1.0).astype(np.float32)
    return signs, scale.astype(np.float32)


def _conv_pads(m: nn.Conv2d) -> list[int]:
    """Engine padding ``[top, bottom, left, right]`` of a conv (ints or 'same'/'valid')."""
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return [0, 0, 0, 0]
        pads = []
        for d, k in zip(m.dilation, m.kernel_size):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return pads
    ph, pw = m.padding
    return [ph, ph, pw, pw]


def _conv_attrs(m: nn.Conv2d) -> dict[str, Any]:
    return {"stride": list(m.stride), "dilation": list(m.dilation), "padding": _conv_pads(m), "groups": m.groups}


def _ohwi(w: torch.Tensor | np.ndarray) -> np.ndarray:
    w = w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else w
    return np.ascontiguousarray(np.transpose(w, (0, 2, 3, 1)), dtype=np.float32)


def _float_conv(lw: _Lowerer, m: nn.Conv2d, x: str, src: str, weight: torch.Tensor) -> str:
    if m.padding_mode != "zeros" and any(_conv_pads(m)):
        raise ConversionError(f"{src}: padding_mode={m.padding_mode!r} is not supported; use 'zeros'")
    params = {"weights": _ohwi(weight)}
    if m.bias is not None:
        params["bias"] = _f32(m.bias)
    return lw.emit("conv2d", src, [x], _conv_attrs(m), params, rank=4)


def _conv(lw: _Lowerer, m: nn.Conv2d, x: str, src: str, in_shape, out_shape) -> str:
    _check_rank(src, in_shape, (4,), "Conv2d")
    if not isinstance(m, QuantConv2d):
        return _float_conv(lw, m, x, src, m.weight)
    iq, kq = m.input_quantizer, m.kernel_quantizer
    if iq is None:
        if m.pad_value != 0.0 and any(_conv_pads(m)):
            raise ConversionError(f"{src}: pad_value=1.0 on a float (unquantized) input is not supported; use 0.0")
        with torch.no_grad():
            return _float_conv(lw, m, x, src, m.quantized_weight())
    if not _binary_input(iq):
        raise ConversionError(
            f"{src}: input quantizer '{_name_of(iq)}' is not supported; binary convolutions take ste_sign, "
            "approx_sign, swish_sign, rsign or a hard progressive_sign"
        )
    if kq is None or Q.precision_of(kq) != 1.0:
        raise ConversionError(
            f"{src}: a binary input with kernel quantizer '{_name_of(kq) if kq is not None else None}' is not "
            "supported; use a binary kernel quantizer (ste_sign, magnitude_aware_sign, ...)"
        )
    if m.pad_value == 0.0 and m.padding_mode != "zeros" and any(_conv_pads(m)):
        raise ConversionError(f"{src}: padding_mode={m.padding_mode!r} is not supported on a binary conv; use 'zeros'")
    c_g = m.in_channels // m.groups
    if m.groups > 1 and c_g % 32:
        raise ConversionError(f"{src}: a grouped binary conv needs in_channels/groups to be a multiple of 32, "
                              f"got {m.in_channels}/{m.groups} = {c_g}")
    bits = lw.quantize(x, iq, src)
    signs, scale = _binary_kernel(m, src)
    bias = _f32(m.bias) if m.bias is not None else np.zeros(m.out_channels, np.float32)
    attrs = dict(_conv_attrs(m), pad_values="one" if m.pad_value == 1.0 else "zero", output="float32")
    return lw.emit("bconv2d", src, [bits], attrs, {"weights": _ohwi(signs), "multiplier": scale, "bias": bias},
                   rank=4, probe=src, channels=m.in_channels)


def _linear(lw: _Lowerer, m: nn.Linear, x: str, src: str, in_shape, out_shape) -> str:
    _check_rank(src, in_shape, (2, 3), "Linear")
    rank = len(in_shape)
    if not isinstance(m, QuantLinear) or m.input_quantizer is None:
        with torch.no_grad():
            w = m.quantized_weight() if isinstance(m, QuantLinear) else m.weight
        params = {"weights": _f32(w)}
        if m.bias is not None:
            params["bias"] = _f32(m.bias)
        return lw.emit("dense", src, [x], {}, params, rank=rank)
    iq, kq = m.input_quantizer, m.kernel_quantizer
    if isinstance(iq, Q.AbsmaxInt8) and isinstance(kq, Q.AbsmeanTernary):
        if not math.isclose(iq.eps, 1e-5):
            raise ConversionError(f"{src}: absmax_int8 eps={iq.eps} is not supported; the engine uses 1e-5")
        codes, gamma = Q.absmean_ternary_codes(m.weight, kq.eps)
        y = lw.emit("ternary_linear", src, [x, ""],
                    params={"weights": codes.cpu().numpy().astype(np.int8),
                            "w_scale": np.array([float(gamma)], np.float32)},
                    rank=rank)
        if m.bias is not None:
            y = lw.emit("add", f"{src}.bias", [y, lw._const(_f32(m.bias), src)], rank=rank)
        return y
    if not _binary_input(iq) or kq is None or Q.precision_of(kq) != 1.0:
        raise ConversionError(
            f"{src}: QuantLinear with input quantizer '{_name_of(iq)}' and kernel quantizer "
            f"'{_name_of(kq) if kq is not None else None}' is not supported; supported: binary sign inputs with "
            "binary weights (bdense), absmax_int8 inputs with absmean_ternary weights (BitLinear), or no input "
            "quantizer"
        )
    bits = lw.quantize(x, iq, src)
    signs, scale = _binary_kernel(m, src)
    bias = _f32(m.bias) if m.bias is not None else np.zeros(m.out_features, np.float32)
    return lw.emit("bdense", src, [bits], {"output": "float32"},
                   {"weights": signs.astype(np.float32), "multiplier": scale, "bias": bias},
                   rank=rank, probe=src, channels=m.in_features)


def _batchnorm(lw: _Lowerer, m: nn.modules.batchnorm._BatchNorm, x: str, src: str, in_shape, out_shape) -> str:
    _check_rank(src, in_shape, (2,) if isinstance(m, nn.BatchNorm1d) else (4,), type(m).__name__)
    if m.running_mean is None or m.running_var is None:
        raise ConversionError(f"{src}: BatchNorm without running statistics (track_running_stats=False) is not "
                              "supported")
    var = m.running_var.detach().double().cpu().numpy()
    mean = m.running_mean.detach().double().cpu().numpy()
    w = m.weight.detach().double().cpu().numpy() if m.weight is not None else np.ones_like(var)
    b = m.bias.detach().double().cpu().numpy() if m.bias is not None else np.zeros_like(var)
    scale = w / np.sqrt(var + m.eps)
    return lw.emit("scale_bias", src, [x], {}, {"scale": _f32(scale), "bias": _f32(b - mean * scale)},
                   rank=len(in_shape))


def _unary(op: str) -> Callable:
    def rule(lw: _Lowerer, m, x, src, in_shape, out_shape):
        return lw.emit(op, src, [x], rank=len(in_shape))

    return rule


def _clamp_rule(lw, m, x, src, in_shape, out_shape):
    lo, hi = (0.0, 6.0) if isinstance(m, nn.ReLU6) else (float(m.min_val), float(m.max_val))
    return lw.emit("clamp", src, [x], {"min": lo, "max": hi}, rank=len(in_shape))


def _channels(in_shape) -> int:
    return in_shape[1] if len(in_shape) in (2, 4) else in_shape[-1]


def _prelu(lw, m: nn.PReLU, x, src, in_shape, out_shape):
    _check_rank(src, in_shape, (2, 4), "PReLU")
    c = in_shape[1]
    alpha = _f32(m.weight).reshape(-1)
    if alpha.size not in (1, c):
        raise ConversionError(f"{src}: PReLU with {alpha.size} parameters on {c} channels")
    return lw.emit("prelu", src, [x], params={"alpha": np.broadcast_to(alpha, (c,)).copy()}, rank=len(in_shape))


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _pool_pads(src, size_hw, k, s, p, ceil_mode) -> list[int]:
    """``[top, bottom, left, right]``: torch's symmetric ``p`` plus, with ``ceil_mode``, the extra
    bottom/right rows of the last partial window (torch drops a window that starts in the padding)."""
    pads = []
    for size, kk, ss, pp in zip(size_hw, k, s, p):
        out = (size + 2 * pp - kk) // ss + 1
        if ceil_mode:
            out = -(-(size + 2 * pp - kk) // ss) + 1
            if (out - 1) * ss >= size + pp:
                out -= 1
        extra = max((out - 1) * ss + kk - (size + 2 * pp), 0)
        pads += [pp, pp + extra]
    if any(pad >= kk for pad, kk in zip(pads, (k[0], k[0], k[1], k[1]))):
        raise ConversionError(f"{src}: pool padding {pads} must stay below the window {k}")
    return pads


def _maxpool(lw, m: nn.MaxPool2d, x, src, in_shape, out_shape):
    _check_rank(src, in_shape, (4,), "MaxPool2d")
    if _pair(m.dilation) != (1, 1) or m.return_indices:
        raise ConversionError(f"{src}: MaxPool2d with dilation or return_indices is not supported")
    k = _pair(m.kernel_size)
    s = _pair(m.stride if m.stride is not None else m.kernel_size)
    pads = _pool_pads(src, in_shape[2:], k, s, _pair(m.padding), m.ceil_mode)
    return lw.emit("maxpool2d", src, [x], {"kernel": list(k), "stride": list(s), "padding": pads}, rank=4)


def _avgpool(lw, m: nn.AvgPool2d, x, src, in_shape, out_shape):
    _check_rank(src, in_shape, (4,), "AvgPool2d")
    if m.divisor_override is not None:
        raise ConversionError(f"{src}: AvgPool2d(divisor_override=...) is not supported")
    k = _pair(m.kernel_size)
    s = _pair(m.stride if m.stride is not None else m.kernel_size)
    p = _pair(m.padding)
    pads = _pool_pads(src, in_shape[2:], k, s, p, m.ceil_mode)
    include = bool(m.count_include_pad) and any(p)
    if include and (pads[1] != pads[0] or pads[3] != pads[2]):
        raise ConversionError(f"{src}: AvgPool2d with count_include_pad=True, padding and ceil_mode together is "
                              "not supported; use count_include_pad=False")
    return lw.emit("avgpool2d", src, [x], {"kernel": list(k), "stride": list(s), "padding": pads,
                                            "count_include_pad": include}, rank=4)


def _global_pool(lw, x, src, in_shape, out_hw) -> str:
    if tuple(out_hw) == (1, 1):
        return lw.emit("global_avgpool", src, [x], {"keepdims": True}, rank=4)
    if tuple(out_hw) == tuple(in_shape[2:]):
        return x
    raise ConversionError(f"{src}: adaptive average pool to {tuple(out_hw)} is not supported (only 1x1)")


def _adaptive(lw, m: nn.AdaptiveAvgPool2d, x, src, in_shape, out_shape):
    _check_rank(src, in_shape, (4,), "AdaptiveAvgPool2d")
    return _global_pool(lw, x, src, in_shape, out_shape[2:])


def _flatten_value(lw: _Lowerer, x: str, src: str, in_shape) -> str:
    if len(in_shape) == 2:
        return x
    if len(in_shape) == 4 and in_shape[2] * in_shape[3] != 1:
        # torch flattens (C, H, W); the engine value is (H, W, C): go through NCHW first
        x = lw.emit("transpose", f"{src}.nchw", [x], {"perm": [0, 3, 1, 2]}, rank=None)
        lw.rank[x] = 0  # not an engine-layout image any more
    return lw.emit("flatten", src, [x], rank=2)


def _flatten(lw, m: nn.Flatten, x, src, in_shape, out_shape):
    if m.start_dim != 1 or m.end_dim not in (-1, len(in_shape) - 1):
        raise ConversionError(f"{src}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) is not supported; "
                              "use Flatten(1)")
    return _flatten_value(lw, x, src, in_shape)


def _identity(lw, m, x, src, in_shape, out_shape):
    return x


def _softmax(lw, m: nn.Softmax, x, src, in_shape, out_shape):
    dim = m.dim if m.dim is not None else 1
    if dim % len(in_shape) != (1 if len(in_shape) in (2, 4) else len(in_shape) - 1):
        raise ConversionError(f"{src}: Softmax over dim {m.dim} is not supported; only over channels/features")
    return lw.emit("softmax", src, [x], {"axis": -1}, rank=len(in_shape))


def _learnable_bias(lw, m: LearnableBias, x, src, in_shape, out_shape):
    _check_rank(src, in_shape, (2, 4), "LearnableBias")
    return lw.emit("add", src, [x, lw._const(_f32(m.bias), src)], rank=len(in_shape))


def _rprelu(lw, m: RPReLU, x, src, in_shape, out_shape):
    _check_rank(src, in_shape, (2, 4), "RPReLU")
    r = len(in_shape)
    u = lw.emit("add", f"{src}.shift_in", [x, lw._const(-_f32(m.shift_in), src)], rank=r)
    p = lw.emit("prelu", f"{src}.prelu", [u], params={"alpha": _f32(m.slope)}, rank=r)
    return lw.emit("add", src, [p, lw._const(_f32(m.shift_out), src)], rank=r)


_MODULE_RULES: dict[type, Callable] = {
    QuantConv2d: _conv,
    nn.Conv2d: _conv,
    QuantLinear: _linear,
    nn.Linear: _linear,
    nn.BatchNorm1d: _batchnorm,
    nn.BatchNorm2d: _batchnorm,
    nn.ReLU: _unary("relu"),
    nn.Sigmoid: _unary("sigmoid"),
    nn.SiLU: _unary("silu"),
    nn.ReLU6: _clamp_rule,
    nn.Hardtanh: _clamp_rule,
    nn.PReLU: _prelu,
    nn.MaxPool2d: _maxpool,
    nn.AvgPool2d: _avgpool,
    nn.AdaptiveAvgPool2d: _adaptive,
    nn.Flatten: _flatten,
    nn.Identity: _identity,
    nn.Dropout: _identity,
    nn.Softmax: _softmax,
    LearnableBias: _learnable_bias,
    RPReLU: _rprelu,
}
assert set(_MODULE_RULES) == set(LEAF_TYPES)


# -- function rules --------------------------------------------------------------------------
def _arg(node: fx.Node, i: int, name: str, default=None):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _elementwise(op: str, negate_b: bool = False) -> Callable:
    def rule(lw: _Lowerer, node: fx.Node, src: str) -> str:
        a, b = node.args[0], node.args[1]
        if not isinstance(a, fx.Node) and isinstance(b, fx.Node) and not negate_b:
            a, b = b, a  # scalar + tensor
        if not isinstance(a, fx.Node):
            raise ConversionError(f"{src}: {op} needs a tensor first operand, got {a!r}")
        av = lw.value(a, src)
        rank = lw.rank[av]
        if isinstance(b, fx.Node):
            if lw.shape(a) != lw.shape(b):
                raise ConversionError(f"{src}: {op} of shapes {lw.shape(a)} and {lw.shape(b)}; only equal shapes or "
                                      "a scalar are supported")
            bv = lw.value(b, src)
            if negate_b:
                bv = lw.emit("mul", f"{src}.neg", [bv, lw._const(np.array([-1.0]), src)], rank=rank)
            return lw.emit(op, src, [av, bv], rank=rank)
        if not isinstance(b, (int, float)):
            raise ConversionError(f"{src}: {op} with a {type(b).__name__} operand is not supported")
        c = -float(b) if negate_b else float(b)
        return lw.emit(op, src, [av, lw._const(np.array([c]), src)], rank=rank)

    return rule


def _fn_unary(op: str) -> Callable:
    def rule(lw, node, src):
        x = lw.value(node.args[0], src)
        return lw.emit(op, src, [x], rank=lw.rank[x])

    return rule


def _fn_clamp(lo_name: str | None, hi_name: str | None, fixed=None) -> Callable:
    def rule(lw, node, src):
        x = lw.value(node.args[0], src)
        if fixed is not None:
            lo, hi = fixed
        else:
            lo = _arg(node, 1, lo_name) if lo_name else None
            hi = _arg(node, 2 if lo_name else 1, hi_name) if hi_name else None
        for v in (lo, hi):
            if v is not None and not isinstance(v, (int, float)):
                raise ConversionError(f"{src}: clamp bounds must be numbers, got {v!r}")
        return lw.emit("clamp", src, [x], {"min": None if lo is None else float(lo),
                                           "max": None if hi is None else float(hi)}, rank=lw.rank[x])

    return rule


def _fn_hardtanh(lw, node, src):
    x = lw.value(node.args[0], src)
    lo, hi = float(_arg(node, 1, "min_val", -1.0)), float(_arg(node, 2, "max_val", 1.0))
    return lw.emit("clamp", src, [x], {"min": lo, "max": hi}, rank=lw.rank[x])


def _fn_flatten(lw, node, src):
    start = _arg(node, 1, "start_dim", 0)
    end = _arg(node, 2, "end_dim", -1)
    shape = lw.shape(node.args[0])
    if start != 1 or end not in (-1, len(shape) - 1):
        raise ConversionError(f"{src}: flatten(start_dim={start}, end_dim={end}) is not supported; use flatten(x, 1)")
    return _flatten_value(lw, lw.value(node.args[0], src), src, shape)


def _fn_adaptive(lw, node, src):
    shape = lw.shape(node.args[0])
    _check_rank(src, shape, (4,), "adaptive_avg_pool2d")
    return _global_pool(lw, lw.value(node.args[0], src), src, shape, lw.shape(node)[2:])


def _fn_mean(lw, node, src):
    shape = lw.shape(node.args[0])
    dims = _arg(node, 1, "dim")
    keep = bool(_arg(node, 2, "keepdim", False))
    dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
    if len(shape) != 4 or sorted(d % 4 for d in dims) != [2, 3]:
        raise ConversionError(f"{src}: mean over {dims} is not supported; only over H and W of (N, C, H, W)")
    y = lw.emit("global_avgpool", src, [lw.value(node.args[0], src)], {"keepdims": True}, rank=4)
    return y if keep else lw.emit("flatten", f"{src}.flatten", [y], rank=2)


_SIZE = "<size>"  # env marker of x.size(...) / x.shape: only a view/reshape may read it


def _fn_size(lw, node, src):
    if node.target is getattr and node.args[1] != "shape":
        raise ConversionError(f"{src}: reading attribute {node.args[1]!r} of a tensor is not supported")
    if node.target is operator.getitem and lw.env.get(node.args[0]) != _SIZE:
        raise ConversionError(f"{src}: indexing a tensor is not supported")
    return _SIZE


def _fn_view(lw, node, src):
    """``x.view(x.size(0), -1)`` / ``reshape(N, -1)`` / ``reshape(N, C*H*W)``: a flatten (the
    recorded output shape decides); other reshapes are not supported."""
    in_shape, out_shape = lw.shape(node.args[0]), lw.shape(node)
    if len(out_shape) != 2 or out_shape[0] != in_shape[0] or len(in_shape) < 2:
        raise ConversionError(f"{src}: reshape {in_shape} -> {out_shape} is not supported; only (N, ...) -> "
                              "(N, -1) (a flatten)")
    return _flatten_value(lw, lw.value(node.args[0], src), src, in_shape)


def _fn_pool(cls: type) -> Callable:
    """F.max_pool2d / F.avg_pool2d: built as the module with the same arguments, lowered by its rule."""
    def rule(lw, node, src):
        args = [a for a in node.args[1:]]
        m = cls(*args, **node.kwargs)
        return _MODULE_RULES[cls](lw, m, lw.value(node.args[0], src), src, lw.shape(node.args[0]), lw.shape(node))

    return rule


def _fn_cat(lw, node, src):
    items = _arg(node, 0, "tensors")
    dim = _arg(node, 1, "dim", 0)
    shape = lw.shape(items[0])
    if dim % len(shape) != (1 if len(shape) in (2, 4) else len(shape) - 1):
        raise ConversionError(f"{src}: cat along dim {dim} is not supported; only along channels")
    vals = [lw.value(i, src) for i in items]
    return lw.emit("concat", src, vals, {"axis": -1}, rank=len(shape))


_FUNCTION_RULES: dict[Any, Callable] = {
    operator.add: _elementwise("add"), torch.add: _elementwise("add"), "Tensor.add": _elementwise("add"),
    operator.iadd: _elementwise("add"),
    operator.mul: _elementwise("mul"), torch.mul: _elementwise("mul"), "Tensor.mul": _elementwise("mul"),
    operator.sub: _elementwise("add", negate_b=True), torch.sub: _elementwise("add", negate_b=True),
    "Tensor.sub": _elementwise("add", negate_b=True),
    F.relu: _fn_unary("relu"), torch.relu: _fn_unary("relu"), "Tensor.relu": _fn_unary("relu"),
    torch.sigmoid: _fn_unary("sigmoid"), F.sigmoid: _fn_unary("sigmoid"), "Tensor.sigmoid": _fn_unary("sigmoid"),
    F.silu: _fn_unary("silu"),
    F.relu6: _fn_clamp(None, None, fixed=(0.0, 6.0)),
    F.hardtanh: _fn_hardtanh,
    torch.clamp: _fn_clamp("min", "max"), "Tensor.clamp": _fn_clamp("min", "max"),
    torch.clamp_min: _fn_clamp("min", None), "Tensor.clamp_min": _fn_clamp("min", None),
    torch.clamp_max: _fn_clamp(None, "max"), "Tensor.clamp_max": _fn_clamp(None, "max"),
    torch.flatten: _fn_flatten, "Tensor.flatten": _fn_flatten,
    F.adaptive_avg_pool2d: _fn_adaptive,
    torch.mean: _fn_mean, "Tensor.mean": _fn_mean,
    torch.cat: _fn_cat, torch.concat: _fn_cat,
    "Tensor.size": _fn_size, getattr: _fn_size, operator.getitem: _fn_size,
    "Tensor.view": _fn_view, "Tensor.reshape": _fn_view, torch.reshape: _fn_view,
    F.max_pool2d: _fn_pool(nn.MaxPool2d), F.avg_pool2d: _fn_pool(nn.AvgPool2d),
}

SUPPORTED = {
    "modules": sorted({t.__name__ for t in _MODULE_RULES}),
    "functions": sorted({k if isinstance(k, str) else f"{getattr(k, '__module__', '') or ''}.{k.__name__}".lstrip(".")
                         for k in _FUNCTION_RULES}),
}


def supported_text() -> str:
    """One line listing the supported modules and functions (for error messages)."""
    return (f"Supported modules: {', '.join(SUPPORTED['modules'])}. Supported functions: "
            f"{', '.join(SUPPORTED['functions'])}.")


def lower(gm: fx.GraphModule) -> Graph:
    """Lower a captured graph (:func:`onebit.converter.capture.capture`) to the IR (stored
    constants read as activation inputs, e.g. ``add`` operands, are in ``graph.constants``).
    Raises:
        ConversionError: an unsupported module, function or argument (the message names it and
            lists what is supported).
    """
    return _Lowerer(gm).run()
