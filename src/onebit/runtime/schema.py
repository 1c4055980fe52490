"""The op vocabulary of ``.onebit`` graphs, declared once: every op type, its attributes (type,
default, allowed values), its input/output ports (dtypes, whether the input must be a weight
stored in the file) and the rule that derives its outputs' dtype and shape from its inputs.

The reader validates files with it, the writer fills attribute defaults from it, the converter
emits it and the interpreter dispatches on it. Conventions (DESIGN.md):

* activations are channels-last inside the engine: images ``(N, H, W, C)``, tokens ``(B, T, C)``;
* ``"bitpacked"`` values have a logical shape ``(..., C)`` and are stored as uint32
  ``(..., ceil(C/32))``, little-endian bit order, bit 1 = -1 (``onebit.kernels.bitpack``);
* binary weights are packed OHWI: ``(O, kh, kw, ceil((C/groups)/32))`` uint32;
* ternary weights use the tq2 format: uint8 ``(N, 32*ceil(K/128))`` + one float32 scale
  (``onebit.kernels.ternary``);
* dimensions are non-negative ints or symbols (``"batch"``, ``"T"``) for axes an op passes
  through; axes an op computes with (kernel windows, channels, packed depth) must be ints;
* paddings are explicit ``(top, bottom, left, right)``; an unbounded clamp is ``null``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Union

from onebit.errors import FormatError
from onebit.runtime.format import BITPACKED, MAX_DIM, MAX_RANK, SYMBOL_RE, _short

__all__ = [
    "Dim",
    "Value",
    "Attr",
    "Port",
    "OpSchema",
    "OPS",
    "REQUIRED",
    "parse_shape",
    "check_attrs",
    "complete_attrs",
    "infer_outputs",
    "packed_words",
    "ternary_row_bytes",
]

Dim = Union[int, str]
REQUIRED = object()  # sentinel: an attribute without a default


@dataclass(frozen=True)
class Value:
    """A value flowing through the graph: dtype name and (engine-layout) shape."""

    dtype: str
    shape: tuple[Dim, ...]

    def __str__(self) -> str:
        return f"{self.dtype}{list(self.shape)}"


@dataclass(frozen=True)
class Attr:
    """An op attribute. kind: ``int``, ``float``, ``optfloat`` (float or null), ``bool``, ``str``,
    ``ints`` (list of ints, ``length`` of them if given) or ``dims`` (a shape: ints and symbols).
    ``lo``/``hi`` bound ints (each element for ``ints``) and floats inclusively;
    ``positive`` requires a float > 0."""

    name: str
    kind: str
    doc: str
    default: Any = REQUIRED
    choices: tuple | None = None
    lo: float | None = None
    hi: float | None = None
    length: int | None = None
    positive: bool = False


@dataclass(frozen=True)
class Port:
    """An op input or output. ``weight``: the input must name a tensor stored in the file.
    ``optional``: may be given as ``""``. ``variadic`` (last input only): one or more values."""

    name: str
    dtypes: tuple[str, ...]
    doc: str
    weight: bool = False
    optional: bool = False
    variadic: bool = False


@dataclass(frozen=True)
class OpSchema:
    """One op type: ports, attributes and ``infer(ctx) -> tuple[Value, ...]`` (its shape rule)."""

    type: str
    doc: str
    kernel: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    attrs: tuple[Attr, ...]
    infer: Callable[["_Ctx"], tuple[Value, ...]]


class _Ctx:
    """What an infer rule sees: inputs by port name (``None`` if absent; a list for a variadic
    port) and attributes. Rules raise FormatError; the reader prefixes the op's name."""

    def __init__(self, schema: OpSchema, inputs: list[Value | None], attrs: dict[str, Any]):
        self.schema = schema
        self.attrs = attrs
        self.values: dict[str, Any] = {}
        for i, port in enumerate(schema.inputs):
            self.values[port.name] = inputs[i:] if port.variadic else inputs[i]

    def __getitem__(self, port: str) -> Any:
        return self.values[port]

    def attr(self, name: str) -> Any:
        return self.attrs[name]


# --------------------------------------------------------------------------------------------
# shape helpers (every check raises FormatError with expected / got)


def packed_words(c: int) -> int:
    """uint32 words holding ``c`` packed bits: ``ceil(c / 32)`` (formats.h ``packed_words``)."""
    return -(-c // 32)


def ternary_row_bytes(k: int) -> int:
    """Bytes of one tq2 row of ``k`` ternary weights: ``32 * ceil(k / 128)`` (formats.h)."""
    return 32 * -(-k // 128)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_dim(v: object) -> bool:
    return (_is_int(v) and 0 <= v <= MAX_DIM) or (isinstance(v, str) and SYMBOL_RE.match(v) is not None)


def parse_shape(obj: object, where: str) -> tuple[Dim, ...]:
    """A JSON shape (list of ints >= 0 and symbol names) -> tuple; FormatError otherwise."""
    if not isinstance(obj, list) or len(obj) > MAX_RANK or not all(_is_dim(d) for d in obj):
        raise FormatError(
            f"{where}: expected a shape, a list of at most {MAX_RANK} dimensions each an int in [0, 2^53] "
            f"or a symbol name like 'batch', got {_short(obj)}"
        )
    return tuple(obj)


def _rank(v: Value, port: str, rank: int | None = None, min_rank: int = 0) -> tuple[Dim, ...]:
    if (rank is not None and len(v.shape) != rank) or len(v.shape) < min_rank:
        want = f"rank {rank}" if rank is not None else f"rank >= {min_rank}"
        raise FormatError(f"input '{port}' must have {want}, got {v}")
    return v.shape


def _fixed(d: Dim, what: str) -> int:
    if not _is_int(d):
        raise FormatError(f"{what} must be a fixed integer dimension, got symbol {d!r}")
    return d


def _expect(v: Value | None, port: str, dtype: str, shape: tuple[Dim, ...]) -> None:
    if v is None:
        raise FormatError(f"input '{port}' is required here (expected {dtype}{list(shape)}), got none")
    if v.dtype != dtype or v.shape != tuple(shape):
        raise FormatError(f"input '{port}': expected {dtype}{list(shape)}, got {v}")


def _absent(ctx: _Ctx, ports: tuple[str, ...], why: str) -> None:
    for p in ports:
        if ctx[p] is not None:
            raise FormatError(f"input '{p}' must be absent (\"\") {why}, got {ctx[p]}")


def _window_out(size: int, k: int, s: int, d: int, p0: int, p1: int, what: str) -> int:
    """Output extent of a window op: ``(size + p0 + p1 - d*(k-1) - 1) // s + 1``."""
    span = d * (k - 1) + 1
    padded = size + p0 + p1
    if padded < span:
        raise FormatError(f"{what}: padded input extent {padded} is smaller than the (dilated) window {span}")
    return (padded - span) // s + 1


def _check_clamp(ctx: _Ctx) -> None:
    lo, hi = ctx.attr("clamp_min"), ctx.attr("clamp_max")
    if lo is not None and hi is not None and lo > hi:
        raise FormatError(f"attribute clamp_min must be <= clamp_max, got {lo} > {hi}")


def _broadcast(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """numpy broadcasting of two shapes (a symbol matches only itself or 1)."""
    out: list[Dim] = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise FormatError(f"shapes {list(a)} and {list(b)} do not broadcast (axis -{i}: {x!r} vs {y!r})")
    return tuple(reversed(out))


def _count(shape: tuple[Dim, ...]) -> tuple[int, tuple[str, ...]]:
    """Element count of a shape as (product of fixed dims, sorted symbols)."""
    n = 1
    for d in shape:
        if _is_int(d):
            n *= d
    return n, tuple(sorted(d for d in shape if isinstance(d, str)))


# --------------------------------------------------------------------------------------------
# attribute validation

_KIND_TYPES = {"int": "an int", "float": "a number", "optfloat": "a number or null", "bool": "true or false",
               "str": "a string", "ints": "a list of ints", "dims": "a shape"}


def _check_attr(a: Attr, v: object, where: str) -> None:
    def bad(expected: str) -> None:
        raise FormatError(f"{where}: attribute '{a.name}' must be {expected}, got {_short(v)}")

    if a.kind == "int":
        if not _is_int(v):
            bad(_KIND_TYPES["int"])
        items = [v]
    elif a.kind in ("float", "optfloat"):
        if v is None and a.kind == "optfloat":
            return
        if not ((_is_int(v) and abs(v) <= MAX_DIM) or (isinstance(v, float) and math.isfinite(v))):
            bad(_KIND_TYPES[a.kind] + " (finite)")
        if a.positive and not v > 0:
            bad("> 0")
        items = [v]
    elif a.kind == "bool":
        if not isinstance(v, bool):
            bad(_KIND_TYPES["bool"])
        items = []
    elif a.kind == "str":
        if not isinstance(v, str):
            bad(_KIND_TYPES["str"])
        items = []
    elif a.kind == "ints":
        if not isinstance(v, list) or not all(_is_int(x) for x in v) or len(v) > MAX_RANK:
            bad(_KIND_TYPES["ints"] + (f" of length {a.length}" if a.length else ""))
        if a.length is not None and len(v) != a.length:
            bad(f"a list of {a.length} ints")
        items = v
    elif a.kind == "dims":
        parse_shape(v, f"{where}: attribute '{a.name}'")
        items = []
    else:  # pragma: no cover - schema declaration error
        raise AssertionError(f"unknown attribute kind {a.kind!r}")
    if a.choices is not None and v not in a.choices:
        bad(f"one of {list(a.choices)}")
    lo = -MAX_DIM if a.lo is None else a.lo
    hi = MAX_DIM if a.hi is None else a.hi
    for x in items:
        if not lo <= x <= hi:
            bad(f"in [{lo}, {hi}]" + (" (each element)" if a.kind == "ints" else ""))


def check_attrs(schema: OpSchema, attrs: object, where: str) -> None:
    """Every attribute of ``schema`` present with the right type and range, and no other."""
    if not isinstance(attrs, dict):
        raise FormatError(f"{where}: expected 'attrs' to be an object, got {_short(attrs)}")
    known = {a.name for a in schema.attrs}
    unknown = sorted(set(attrs) - known)
    if unknown:
        raise FormatError(
            f"{where}: unknown attribute(s) {unknown} for op type '{schema.type}' (known: {sorted(known)}); "
            "the file may come from a newer onebit: upgrade onebit"
        )
    for a in schema.attrs:
        if a.name not in attrs:
            raise FormatError(
                f"{where}: attribute '{a.name}' of op type '{schema.type}' is missing; every attribute is "
                "written explicitly (onebit.converter.write_model fills defaults)"
            )
        _check_attr(a, attrs[a.name], where)


def complete_attrs(schema: OpSchema, attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` with every missing attribute set to its default (writer side)."""
    out = dict(attrs)
    for a in schema.attrs:
        if a.name not in out and a.default is not REQUIRED:
            out[a.name] = list(a.default) if isinstance(a.default, tuple) else a.default
    return out


def infer_outputs(schema: OpSchema, inputs: list[Value | None], attrs: dict[str, Any]) -> tuple[Value, ...]:
    """Check ``inputs`` (``None`` = absent optional input) against the ports' dtypes, then apply
    the op's shape rule. Attributes must already be checked (:func:`check_attrs`)."""
    ports = schema.inputs
    variadic = bool(ports) and ports[-1].variadic
    if (variadic and len(inputs) < len(ports)) or (not variadic and len(inputs) != len(ports)):
        names = [p.name + ("..." if p.variadic else "") for p in ports]
        raise FormatError(f"expected {len(ports)}{'+' if variadic else ''} inputs {names}, got {len(inputs)}")
    for i, v in enumerate(inputs):
        port = ports[min(i, len(ports) - 1)]
        if v is None:
            if not port.optional:
                raise FormatError(f"input '{port.name}' is required, got \"\" (absent)")
        elif v.dtype not in port.dtypes:
            raise FormatError(f"input '{port.name}' must have dtype in {list(port.dtypes)}, got {v}")
    out = schema.infer(_Ctx(schema, inputs, attrs))
    assert len(out) == len(schema.outputs)
    return out


# --------------------------------------------------------------------------------------------
# the vocabulary

OPS: dict[str, OpSchema] = {}

F32 = ("float32",)
BP = (BITPACKED,)
INT_IDS = ("int32", "int64")
DENSE_DTYPES = ("float32", "int8", "uint8", "int32", "uint32", "int64", "float16")


def _op(type_: str, doc: str, kernel: str, inputs, outputs, attrs=()):
    def register(fn):
        OPS[type_] = OpSchema(type_, doc, kernel, tuple(inputs), tuple(outputs), tuple(attrs), fn)
        return fn

    return register


def _stride(default=(1, 1)):
    return Attr("stride", "ints", "(sh, sw)", default=default, lo=1, length=2)


_DILATION = Attr("dilation", "ints", "(dh, dw)", default=(1, 1), lo=1, length=2)
_PADDING = Attr("padding", "ints", "(top, bottom, left, right)", default=(0, 0, 0, 0), lo=0, length=4)
_GROUPS = Attr("groups", "int", "channel groups", default=1, lo=1)
_CLAMP = (
    Attr("clamp_min", "optfloat", "fused lower clamp (ReLU: 0), null = none", default=None),
    Attr("clamp_max", "optfloat", "fused upper clamp, null = none", default=None),
)
_KERNEL = Attr("kernel", "ints", "window (kh, kw)", lo=1, length=2)
_OUTPUT_TYPES = ("float32", "int8", "int32", BITPACKED)
_TRANSFORM_PORTS = (
    Port("multiplier", F32, "(O,) per output channel (float32/int8 output)", weight=True, optional=True),
    Port("bias", F32, "(O,) per output channel (float32/int8 output)", weight=True, optional=True),
    Port("threshold", ("int32",), "(O,) integer thresholds (bitpacked output)", weight=True, optional=True),
    Port("flip", ("uint8",), "(O,) 0/1 threshold direction (bitpacked output)", weight=True, optional=True),
)
_BINARY_ATTRS = (
    Attr("output", "str", "output type", default="float32", choices=_OUTPUT_TYPES),
    *_CLAMP,
)


def _output_transform(ctx: _Ctx, o: int) -> str:
    """Ports and clamp of the fused output transform (LCE sec. 3.2, onebit.kernels.binary)."""
    out = ctx.attr("output")
    if out in ("float32", "int8"):
        _expect(ctx["multiplier"], "multiplier", "float32", (o,))
        _expect(ctx["bias"], "bias", "float32", (o,))
        _absent(ctx, ("threshold", "flip"), f"for output '{out}'")
        _check_clamp(ctx)
    else:
        if out == BITPACKED:
            _expect(ctx["threshold"], "threshold", "int32", (o,))
            _expect(ctx["flip"], "flip", "uint8", (o,))
            _absent(ctx, ("multiplier", "bias"), "for bitpacked output (fold them into threshold/flip)")
        else:
            _absent(ctx, ("multiplier", "bias", "threshold", "flip"), "for int32 output")
        if ctx.attr("clamp_min") is not None or ctx.attr("clamp_max") is not None:
            raise FormatError(f"clamp_min/clamp_max must be null for output '{out}'")
    return out


MAX_BINARY_DEPTH = 2**24  # binary kernels: |acc| <= K must be exact in float32 (onebit.kernels.binary)


def _check_depth(k: int) -> None:
    if k >= MAX_BINARY_DEPTH:
        raise FormatError(f"the binary dot-product depth K = {k} must be < 2^24 (exact float32 accumulators); "
                          "split the layer")


def _window_hw(ctx: _Ctx, h: Dim, w: Dim, kernel, stride, dilation, pads) -> tuple[int, int]:
    h, w = _fixed(h, "input height"), _fixed(w, "input width")
    return (
        _window_out(h, kernel[0], stride[0], dilation[0], pads[0], pads[1], "height"),
        _window_out(w, kernel[1], stride[1], dilation[1], pads[2], pads[3], "width"),
    )


@_op(
    "quantize",
    "Binarize: bit = 1 iff x < 0 (-0.0 and NaN give 0, i.e. +1), packed along the last axis (LceQuantize).",
    "onebit.kernels.bitpack.bitpack",
    [Port("x", ("float32", "int8"), "(..., C)")],
    [Port("y", BP, "(..., C) bitpacked")],
)
def _quantize(ctx):
    s = _rank(ctx["x"], "x", min_rank=1)
    _fixed(s[-1], "the packed (last) axis")
    return (Value(BITPACKED, s),)


@_op(
    "dequantize",
    "Unpack bits to float32 +1.0 / -1.0 (LceDequantize).",
    "onebit.kernels.bitpack.unpack",
    [Port("x", BP, "(..., C) bitpacked")],
    [Port("y", F32, "(..., C)")],
)
def _dequantize(ctx):
    return (Value("float32", _rank(ctx["x"], "x", min_rank=1)),)


@_op(
    "bconv2d",
    "Binary conv: acc = K - 2*popcount(x XOR w) over each window, then the fused output transform: "
    "float32/int8 y = clamp(multiplier*acc + bias), bitpacked bit = (acc < threshold) != flip, or int32 acc. "
    "pad_values 'one' pads with +1 (LCE), 'zero' as a float conv.",
    "onebit.kernels.binary.bconv2d",
    [Port("x", BP, "(N, H, W, C) bitpacked"),
     Port("weights", ("uint32",), "(O, kh, kw, ceil((C/groups)/32)) packed OHWI", weight=True),
     *_TRANSFORM_PORTS],
    [Port("y", _OUTPUT_TYPES, "(N, OH, OW, O)")],
    [_stride(), _DILATION, _PADDING,
     Attr("pad_values", "str", "value of padded inputs", default="one", choices=("one", "zero")),
     _GROUPS, *_BINARY_ATTRS],
)
def _bconv2d(ctx):
    n, h, w, c = _rank(ctx["x"], "x", 4)
    o, kh, kw, words = _rank(ctx["weights"], "weights", 4)
    c = _fixed(c, "input channels")
    o, kh, kw, words = (_fixed(d, "weights dimension") for d in (o, kh, kw, words))
    g = ctx.attr("groups")
    if c % g or o % g:
        raise FormatError(f"groups={g} must divide the input channels ({c}) and the output channels ({o})")
    if g > 1 and (c // g) % 32:
        raise FormatError(f"groups > 1 needs channels/groups to be a multiple of 32, got {c}/{g} = {c // g}")
    if words != packed_words(c // g) or min(o, kh, kw) < 1:
        raise FormatError(f"input 'weights': expected uint32[{o}, kh>=1, kw>=1, {packed_words(c // g)}] "
                          f"for C/groups={c // g}, got {ctx['weights']}")
    _check_depth(kh * kw * (c // g))
    out = _output_transform(ctx, o)
    oh, ow = _window_hw(ctx, h, w, (kh, kw), ctx.attr("stride"), ctx.attr("dilation"), ctx.attr("padding"))
    return (Value(out, (n, oh, ow, o)),)


@_op(
    "bdense",
    "Binary fully connected layer (bgemm): acc[m, n] = K - 2*popcount(x[m] XOR w[n]) + output transform.",
    "onebit.kernels.binary.bgemm",
    [Port("x", BP, "(..., K) bitpacked"),
     Port("weights", ("uint32",), "(N, ceil(K/32)) packed rows", weight=True), *_TRANSFORM_PORTS],
    [Port("y", _OUTPUT_TYPES, "(..., N)")],
    _BINARY_ATTRS,
)
def _bdense(ctx):
    s = _rank(ctx["x"], "x", min_rank=1)
    k = _fixed(s[-1], "input features K")
    n, words = (_fixed(d, "weights dimension") for d in _rank(ctx["weights"], "weights", 2))
    if words != packed_words(k) or n < 1:
        raise FormatError(f"input 'weights': expected uint32[N>=1, {packed_words(k)}] for K={k}, got {ctx['weights']}")
    _check_depth(k)
    return (Value(_output_transform(ctx, n), s[:-1] + (n,)),)


def _pool_attrs():
    return (_KERNEL, Attr("stride", "ints", "(sh, sw)", lo=1, length=2), _PADDING)


def _pool_hw(ctx) -> tuple[Dim, int, int, Dim]:
    n, h, w, c = _rank(ctx["x"], "x", 4)
    k, pads = ctx.attr("kernel"), ctx.attr("padding")
    for p, kk, side in zip(pads, (k[0], k[0], k[1], k[1]), ("top", "bottom", "left", "right")):
        if p >= kk:
            raise FormatError(f"{side} padding must be < the window ({kk}) so no window is all padding, got {p}")
    oh, ow = _window_hw(ctx, h, w, k, ctx.attr("stride"), (1, 1), pads)
    return n, oh, ow, c


@_op(
    "bmaxpool2d",
    "Binary max-pool: AND of the window's words (max(sign x) = sign(max x), LceBMaxPool2d); pads ignored.",
    "onebit.kernels.pool.bmaxpool2d",
    [Port("x", BP, "(N, H, W, C) bitpacked")],
    [Port("y", BP, "(N, OH, OW, C) bitpacked")],
    _pool_attrs(),
)
def _bmaxpool2d(ctx):
    return (Value(BITPACKED, _pool_hw(ctx)),)


@_op(
    "maxpool2d",
    "Float max-pool over (kh, kw) windows; padded positions are -inf.",
    "float: maxpool2d",
    [Port("x", F32, "(N, H, W, C)")],
    [Port("y", F32, "(N, OH, OW, C)")],
    _pool_attrs(),
)
def _maxpool2d(ctx):
    return (Value("float32", _pool_hw(ctx)),)


@_op(
    "avgpool2d",
    "Float average pool; count_include_pad: divide by kh*kw (true) or by the in-bounds count (false).",
    "float: avgpool2d",
    [Port("x", F32, "(N, H, W, C)")],
    [Port("y", F32, "(N, OH, OW, C)")],
    (*_pool_attrs(), Attr("count_include_pad", "bool", "divisor rule", default=False)),
)
def _avgpool2d(ctx):
    return (Value("float32", _pool_hw(ctx)),)


@_op(
    "global_avgpool",
    "Mean over H and W: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims.",
    "float: global_avgpool",
    [Port("x", F32, "(N, H, W, C)")],
    [Port("y", F32, "(N, C)")],
    [Attr("keepdims", "bool", "keep the H, W axes", default=False)],
)
def _global_avgpool(ctx):
    n, _, _, c = _rank(ctx["x"], "x", 4)
    return (Value("float32", (n, 1, 1, c) if ctx.attr("keepdims") else (n, c)),)


@_op(
    "conv2d",
    "Float conv, weights OHWI (O, kh, kw, C/groups); depthwise is groups = C. y = clamp(conv(x, w) + bias).",
    "float: conv2d",
    [Port("x", F32, "(N, H, W, C)"), Port("weights", F32, "(O, kh, kw, C/groups)", weight=True),
     Port("bias", F32, "(O,)", weight=True, optional=True)],
    [Port("y", F32, "(N, OH, OW, O)")],
    [_stride(), _DILATION, _PADDING, _GROUPS, *_CLAMP],
)
def _conv2d(ctx):
    n, h, w, c = _rank(ctx["x"], "x", 4)
    c = _fixed(c, "input channels")
    o, kh, kw, cg = (_fixed(d, "weights dimension") for d in _rank(ctx["weights"], "weights", 4))
    g = ctx.attr("groups")
    if c % g or o % g:
        raise FormatError(f"groups={g} must divide the input channels ({c}) and the output channels ({o})")
    if cg != c // g or min(o, kh, kw) < 1:
        raise FormatError(f"input 'weights': expected float32[{o}, kh>=1, kw>=1, {c // g}] (OHWI, C/groups), "
                          f"got {ctx['weights']}")
    if ctx["bias"] is not None:
        _expect(ctx["bias"], "bias", "float32", (o,))
    _check_clamp(ctx)
    oh, ow = _window_hw(ctx, h, w, (kh, kw), ctx.attr("stride"), ctx.attr("dilation"), ctx.attr("padding"))
    return (Value("float32", (n, oh, ow, o)),)


@_op(
    "dense",
    "Float fully connected: y = clamp(x @ W.T + bias); W (N, K) float32 or float16 (e.g. a tied embedding).",
    "float: dense",
    [Port("x", F32, "(..., K)"), Port("weights", ("float32", "float16"), "(N, K)", weight=True),
     Port("bias", F32, "(N,)", weight=True, optional=True)],
    [Port("y", F32, "(..., N)")],
    _CLAMP,
)
def _dense(ctx):
    s = _rank(ctx["x"], "x", min_rank=1)
    n, k = _rank(ctx["weights"], "weights", 2)
    if k != s[-1] or not _is_int(n) or n < 1:
        raise FormatError(f"input 'weights': expected (N>=1, {s[-1]!r}) to match x {ctx['x']}, got {ctx['weights']}")
    if ctx["bias"] is not None:
        _expect(ctx["bias"], "bias", "float32", (n,))
    _check_clamp(ctx)
    return (Value("float32", s[:-1] + (n,)),)


def _binary_elementwise(ctx):
    a, b = ctx["a"], ctx["b"]
    return (Value("float32", _broadcast(a.shape, b.shape)),)


for _t, _d in (("add", "a + b"), ("mul", "a * b")):
    _op(_t, f"Element-wise {_d} with numpy broadcasting.", f"float: {_t}",
        [Port("a", F32, "any shape"), Port("b", F32, "broadcastable to a")], [Port("y", F32, "broadcast shape")]
        )(_binary_elementwise)


def _unary(ctx):
    return (Value("float32", ctx["x"].shape),)


for _t, _d in (("relu", "max(x, 0)"), ("sigmoid", "1 / (1 + exp(-x))"), ("silu", "x * sigmoid(x)")):
    _op(_t, f"Element-wise {_d}.", f"float: {_t}", [Port("x", F32, "any shape")], [Port("y", F32, "same")])(_unary)


@_op(
    "clamp",
    "Element-wise clamp(x, min, max); null bound = none. hardtanh is clamp(-1, 1), relu6 clamp(0, 6).",
    "float: clamp",
    [Port("x", F32, "any shape")],
    [Port("y", F32, "same")],
    [Attr("min", "optfloat", "lower bound", default=None), Attr("max", "optfloat", "upper bound", default=None)],
)
def _clamp(ctx):
    lo, hi = ctx.attr("min"), ctx.attr("max")
    if lo is not None and hi is not None and lo > hi:
        raise FormatError(f"attribute min must be <= max, got {lo} > {hi}")
    return _unary(ctx)


@_op(
    "prelu",
    "Per-channel PReLU on the last axis: y = x if x >= 0 else alpha[c] * x.",
    "float: prelu",
    [Port("x", F32, "(..., C)"), Port("alpha", F32, "(C,)", weight=True)],
    [Port("y", F32, "same as x")],
)
def _prelu(ctx):
    s = _rank(ctx["x"], "x", min_rank=1)
    _expect(ctx["alpha"], "alpha", "float32", (s[-1],))
    return (Value("float32", s),)


@_op(
    "scale_bias",
    "Per-channel affine on the last axis (a folded BatchNorm): y = x * scale[c] + bias[c].",
    "float: scale_bias",
    [Port("x", F32, "(..., C)"), Port("scale", F32, "(C,)", weight=True), Port("bias", F32, "(C,)", weight=True)],
    [Port("y", F32, "same as x")],
)
def _scale_bias(ctx):
    s = _rank(ctx["x"], "x", min_rank=1)
    _expect(ctx["scale"], "scale", "float32", (s[-1],))
    _expect(ctx["bias"], "bias", "float32", (s[-1],))
    return (Value("float32", s),)


def _axis(ctx, rank: int) -> int:
    axis = ctx.attr("axis")
    if not -rank <= axis < rank:
        raise FormatError(f"attribute axis must be in [{-rank}, {rank}) for rank {rank}, got {axis}")
    return axis % rank


@_op(
    "softmax",
    "softmax(x) = exp(x - max) / sum(exp(x - max)) along axis.",
    "float: softmax",
    [Port("x", F32, "any shape")],
    [Port("y", F32, "same")],
    [Attr("axis", "int", "reduction axis", default=-1)],
)
def _softmax(ctx):
    _axis(ctx, len(_rank(ctx["x"], "x", min_rank=1)))
    return _unary(ctx)


@_op(
    "reshape",
    "Same elements, new shape (row-major, engine layout). Symbols must carry over unchanged.",
    "numpy: reshape (no copy)",
    [Port("x", DENSE_DTYPES, "any shape")],
    [Port("y", DENSE_DTYPES, "attribute shape")],
    [Attr("shape", "dims", "target shape")],
)
def _reshape(ctx):
    x = ctx["x"]
    target = tuple(ctx.attr("shape"))
    if _count(target) != _count(x.shape):
        raise FormatError(f"attribute shape {list(target)} must hold as many elements as x {x}")
    return (Value(x.dtype, target),)


@_op(
    "flatten",
    "(N, d1, d2, ...) -> (N, d1*d2*...) in engine (row-major, channels-last) order.",
    "numpy: reshape (no copy)",
    [Port("x", DENSE_DTYPES, "(N, ...)")],
    [Port("y", DENSE_DTYPES, "(N, prod)")],
)
def _flatten(ctx):
    s = _rank(ctx["x"], "x", min_rank=1)
    n = 1
    for d in s[1:]:
        n *= _fixed(d, "a flattened axis")
    return (Value(ctx["x"].dtype, (s[0], n)),)


@_op(
    "transpose",
    "Permute axes: y = x.transpose(perm) (e.g. NHWC -> NCHW before a PyTorch-order flatten).",
    "numpy: transpose + copy",
    [Port("x", DENSE_DTYPES, "any shape")],
    [Port("y", DENSE_DTYPES, "permuted")],
    [Attr("perm", "ints", "a permutation of 0..rank-1", lo=0)],
)
def _transpose(ctx):
    s, perm = ctx["x"].shape, ctx.attr("perm")
    if sorted(perm) != list(range(len(s))):
        raise FormatError(f"attribute perm must be a permutation of 0..{len(s) - 1}, got {perm}")
    return (Value(ctx["x"].dtype, tuple(s[p] for p in perm)),)


@_op(
    "concat",
    "Concatenate one or more values of one dtype along axis; other axes must be equal.",
    "numpy: concatenate",
    [Port("inputs", DENSE_DTYPES, "one or more values", variadic=True)],
    [Port("y", DENSE_DTYPES, "concatenated")],
    [Attr("axis", "int", "concatenation axis", default=-1)],
)
def _concat(ctx):
    vals = ctx["inputs"]
    first = vals[0]
    rank = len(_rank(first, "inputs", min_rank=1))
    axis = _axis(ctx, rank)
    total = 0
    for i, v in enumerate(vals):
        if v.dtype != first.dtype or len(v.shape) != rank or any(
            a != b for j, (a, b) in enumerate(zip(v.shape, first.shape)) if j != axis
        ):
            raise FormatError(f"input {i}: expected {first.dtype} with shape {list(first.shape)} except on "
                              f"axis {axis}, got {v}")
        total += _fixed(v.shape[axis], "the concatenation axis")
    return (Value(first.dtype, first.shape[:axis] + (total,) + first.shape[axis + 1:]),)


# ---- language models (BitNet b1.58: LLaMA-like blocks) --------------------------------------


@_op(
    "embedding",
    "Row lookup: y[..., :] = table[ids[...], :] (ids out of range are a run-time error).",
    "numpy: take",
    [Port("ids", INT_IDS, "(...)"), Port("table", ("float32", "float16"), "(V, D)", weight=True)],
    [Port("y", F32, "(..., D)")],
)
def _embedding(ctx):
    v, d = _rank(ctx["table"], "table", 2)
    return (Value("float32", ctx["ids"].shape + (d,)),)


@_op(
    "rmsnorm",
    "y = x / sqrt(mean(x^2, last axis) + eps) * weight.",
    "float: rmsnorm",
    [Port("x", F32, "(..., D)"), Port("weight", F32, "(D,)", weight=True)],
    [Port("y", F32, "same as x")],
    [Attr("eps", "float", "added to the mean square", default=1e-6, positive=True)],
)
def _rmsnorm(ctx):
    s = _rank(ctx["x"], "x", min_rank=1)
    _expect(ctx["weight"], "weight", "float32", (s[-1],))
    return (Value("float32", s),)


@_op(
    "quantize_i8",
    "Per-token absmax int8 (bitnet): x_scale = 127 / max(max|x|, 1e-5), x_q = clip(round(x*x_scale), -127, 127).",
    "onebit.kernels.ternary.quantize_i8",
    [Port("x", F32, "(..., K)")],
    [Port("x_q", ("int8",), "(..., K)"), Port("x_scale", F32, "(...)")],
)
def _quantize_i8(ctx):
    s = _rank(ctx["x"], "x", min_rank=1)
    return (Value("int8", s), Value("float32", s[:-1]))


@_op(
    "ternary_linear",
    "BitLinear (bitnet eq. 1-3): y = (sum_k t[n,k] * x_q[m,k]) * w_scale / x_scale[m]; float x is quantized "
    "per token first, int8 x comes with its x_scale (from quantize_i8, shared by several projections).",
    "onebit.kernels.ternary.tgemm / tgemv",
    [Port("x", ("float32", "int8"), "(..., K)"),
     Port("x_scale", F32, "(...) with int8 x", optional=True),
     Port("weights", ("uint8",), "(N, 32*ceil(K/128)) tq2", weight=True),
     Port("w_scale", F32, "(1,) gamma = mean|W|", weight=True)],
    [Port("y", F32, "(..., N)")],
)
def _ternary_linear(ctx):
    x = ctx["x"]
    s = _rank(x, "x", min_rank=1)
    k = _fixed(s[-1], "input features K")
    if x.dtype == "int8":
        _expect(ctx["x_scale"], "x_scale", "float32", s[:-1])
    else:
        _absent(ctx, ("x_scale",), "with float32 x (it is quantized per token inside)")
    n, row = (_fixed(d, "weights dimension") for d in _rank(ctx["weights"], "weights", 2))
    if row != ternary_row_bytes(k) or n < 1:
        raise FormatError(f"input 'weights': expected uint8[N>=1, {ternary_row_bytes(k)}] (tq2 rows of K={k}), "
                          f"got {ctx['weights']}")
    _expect(ctx["w_scale"], "w_scale", "float32", (1,))
    return (Value("float32", s[:-1] + (n,)),)


@_op(
    "rope",
    "Rotary embedding of x (B, T, H, D) at integer positions p: angle_i = p * theta^(-2i/D); style 'half' "
    "rotates (x[:D/2], x[D/2:]) (LLaMA/HF), 'interleaved' rotates pairs (x[2i], x[2i+1]).",
    "float: rope",
    [Port("x", F32, "(B, T, H, D)"), Port("positions", INT_IDS, "(T,) or (B, T)")],
    [Port("y", F32, "same as x")],
    [Attr("theta", "float", "base", default=10000.0, positive=True),
     Attr("style", "str", "pairing", default="half", choices=("half", "interleaved"))],
)
def _rope(ctx):
    b, t, h, d = _rank(ctx["x"], "x", 4)
    if _fixed(d, "head dimension") % 2:
        raise FormatError(f"head dimension must be even, got {d}")
    pos = ctx["positions"].shape
    if pos not in ((t,), (b, t)):
        raise FormatError(f"input 'positions': expected shape {[t]} or {[b, t]}, got {ctx['positions']}")
    return (Value("float32", ctx["x"].shape),)


@_op(
    "attention",
    "Scaled dot-product attention, grouped-query (Hq % Hkv == 0): softmax(q k^T * scale + mask) v; "
    "causal: query t sees keys s <= t + (S - T) (the queries are the last T of S positions).",
    "float: attention",
    [Port("q", F32, "(B, T, Hq, D)"), Port("k", F32, "(B, S, Hkv, D)"), Port("v", F32, "(B, S, Hkv, Dv)")],
    [Port("y", F32, "(B, T, Hq, Dv)")],
    [Attr("causal", "bool", "causal mask", default=True),
     Attr("scale", "optfloat", "null = 1/sqrt(D)", default=None)],
)
def _attention(ctx):
    b, t, hq, d = _rank(ctx["q"], "q", 4)
    kb, s, hkv, kd = _rank(ctx["k"], "k", 4)
    vb, vs, vh, dv = _rank(ctx["v"], "v", 4)
    hq, hkv = _fixed(hq, "query heads"), _fixed(hkv, "key/value heads")
    if (kb, kd) != (b, d) or (vb, vs, vh) != (b, s, hkv):
        raise FormatError(f"expected k (B={b!r}, S, Hkv, D={d!r}) and v (B, S, Hkv, Dv) to match, "
                          f"got q {ctx['q']}, k {ctx['k']}, v {ctx['v']}")
    if hkv < 1 or hq % hkv:
        raise FormatError(f"query heads ({hq}) must be a multiple of key/value heads ({hkv})")
    sc = ctx.attr("scale")
    if sc is not None and not sc > 0:
        raise FormatError(f"attribute scale must be > 0 or null, got {sc}")
    return (Value("float32", (b, t, hq, dv)),)


@_op(
    "glu",
    "Gated unit of the feed-forward block: y = act(gate) * up; 'silu' is SwiGLU (LLaMA, BitNet b1.58), "
    "'relu2' is squared ReLU (BitNet b1.58 2B4T).",
    "float: glu",
    [Port("gate", F32, "any shape"), Port("up", F32, "same shape")],
    [Port("y", F32, "same")],
    [Attr("activation", "str", "gate activation", default="silu", choices=("silu", "relu2"))],
)
def _glu(ctx):
    if ctx["gate"].shape != ctx["up"].shape:
        raise FormatError(f"inputs gate and up must have one shape, got {ctx['gate']} and {ctx['up']}")
    return (Value("float32", ctx["gate"].shape),)
