"""Reader validation: a valid file loads with the expected graph; each rule of docs/format.md,
broken alone, raises FormatError with a message naming what was expected and where."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onebit.converter import write_model
from onebit.errors import FormatError, OnebitError
from onebit.runtime import OPS, load_model
from onebit.runtime.format import LAYOUTS, to_engine_shape, to_user_shape
from onebit.runtime.schema import Value, check_attrs, complete_attrs, infer_outputs
from tests.runtime import cnn_model, join, llm_model, mutate, split


@pytest.fixture(scope="module")
def cnn_bytes() -> bytes:
    graph, tensors, _ = cnn_model()
    return write_model(None, graph, tensors)


@pytest.fixture(scope="module")
def llm_bytes() -> bytes:
    graph, tensors, _ = llm_model()
    return write_model(None, graph, tensors)


def _err(data: bytes, *fragments: str) -> str:
    with pytest.raises(FormatError) as info:
        load_model(data)
    msg = str(info.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


def test_format_error_is_a_value_error():
    assert issubclass(FormatError, OnebitError) and issubclass(FormatError, ValueError)


@pytest.mark.parametrize("builder", [cnn_model, llm_model])
def test_every_value_gets_the_schema_shape(builder):
    graph, tensors, expected = builder()
    model = load_model(write_model(None, graph, tensors))
    for name, (dtype, shape) in expected.items():
        assert (model.values[name].dtype, model.values[name].shape) == (dtype, shape), name
    assert set(model.tensors) == set(tensors)
    for name, arr in tensors.items():
        np.testing.assert_array_equal(model.tensors[name], arr)
        assert model.tensors[name].dtype == arr.dtype


def test_example_models_use_every_op_type():
    used = {o["type"] for b in (cnn_model, llm_model) for o in b()[0]["ops"]}
    assert used == set(OPS)


def test_every_op_schema_is_documented():
    for sch in OPS.values():
        assert sch.doc and sch.kernel and sch.outputs
        for a in sch.attrs:
            assert a.doc and a.kind in ("int", "float", "optfloat", "bool", "str", "ints", "dims")


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_permutations_invert(layout):
    user = tuple(range(10, 10 + len(LAYOUTS[layout])))
    assert to_user_shape(to_engine_shape(user, layout), layout) == user
    if layout == "NCHW":
        assert to_engine_shape((1, 3, 32, 24), layout) == (1, 32, 24, 3)


# ---- container (safetensors) level -----------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 7])
def test_too_short(size, cnn_bytes, tmp_path):
    _err(cnn_bytes[:size], "at least 8 bytes", f"got {size}")
    p = tmp_path / "short.onebit"
    p.write_bytes(cnn_bytes[:size])
    with pytest.raises(FormatError, match="at least 8 bytes"):
        load_model(p)


def test_header_runs_past_end(cnn_bytes):
    n = int.from_bytes(cnn_bytes[:8], "little")
    _err(cnn_bytes[: 8 + n - 1], "header length", "runs past the end", "truncated")


def test_truncated_data(cnn_bytes):
    _err(cnn_bytes[:-1], "data_offsets", "truncated or corrupt")


def test_header_over_100mb(tmp_path):
    p = tmp_path / "huge.onebit"
    n = 100 * 1024 * 1024 + 1
    with open(p, "wb") as f:  # sparse file: a valid-looking length, then zeros
        f.write(n.to_bytes(8, "little"))
        f.truncate(8 + n)
    with pytest.raises(FormatError, match="exceeds the limit of 104857600 bytes"):
        load_model(p)


def test_header_must_start_with_brace():
    _err(join({}, b"")[:8] + b"[" + join({}, b"")[9:], "start with '{'")


def test_header_not_utf8():
    raw = b'{"a\xff": 1}'
    _err(len(raw).to_bytes(8, "little") + raw, "UTF-8")


def test_header_not_json():
    raw = b'{"a": '
    _err(len(raw).to_bytes(8, "little") + raw, "expected valid JSON")


def test_header_duplicate_keys():
    raw = b'{"__metadata__": {}, "__metadata__": {}}'
    _err(len(raw).to_bytes(8, "little") + raw, "duplicate key")


def test_header_nan_rejected(cnn_bytes):
    header, body = split(cnn_bytes)
    raw = json.dumps(header).replace('"shape": [32]', '"shape": [NaN]', 1).encode()
    _err(len(raw).to_bytes(8, "little") + raw + body, "non-standard JSON constant NaN")


def test_deeply_nested_header():
    raw = b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}"
    _err(len(raw).to_bytes(8, "little") + raw, "expected valid JSON")


def test_plain_safetensors_file_is_not_a_model():
    from safetensors.numpy import save

    _err(save({"w": np.zeros(3, np.float32)}), "no '__metadata__'", "onebit.converter")


def test_metadata_values_must_be_strings(cnn_bytes):
    _err(mutate(cnn_bytes, lambda h: h["__metadata__"].update(x=1)), "map strings to strings", "'x': 1")


def test_wrong_magic(cnn_bytes):
    _err(mutate(cnn_bytes, lambda h: h["__metadata__"].update({"onebit.format": "gguf"})),
         "onebit.format", "'onebit'", "'gguf'")


@pytest.mark.parametrize("version", [None, "1", "1.x", "v1.0", "1.0.0"])
def test_malformed_version(cnn_bytes, version):
    def edit(h):
        if version is None:
            del h["__metadata__"]["onebit.version"]
        else:
            h["__metadata__"]["onebit.version"] = version

    _err(mutate(cnn_bytes, edit), "MAJOR.MINOR", "onebit.version")


def test_newer_major_version_asks_to_upgrade(cnn_bytes):
    _err(mutate(cnn_bytes, lambda h: h["__metadata__"].update({"onebit.version": "2.0"})),
         "2.0 is newer", "upgrade onebit")


def test_newer_minor_version_is_read(cnn_bytes):
    def edit(h):
        h["__metadata__"]["onebit.version"] = "1.7"
        doc = json.loads(h["__metadata__"]["onebit.graph"])
        doc["version"] = "1.7"
        h["__metadata__"]["onebit.graph"] = json.dumps(doc)

    assert load_model(mutate(cnn_bytes, edit)).version == (1, 7)


def test_graph_version_must_match_metadata(cnn_bytes):
    _err(mutate(cnn_bytes, doc_fn=lambda d: d.update(version="1.1")), "differs from")


def _tensor(h, name="fc.b"):
    return h[name]


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (lambda h: _tensor(h).update(extra=1), ["tensor 'fc.b'", "exactly 'dtype', 'shape', 'data_offsets'"]),
        (lambda h: _tensor(h).pop("shape"), ["tensor 'fc.b'", "exactly"]),
        (lambda h: _tensor(h).update(dtype="BF16"), ["tensor 'fc.b'", "expected dtype in", "'BF16'"]),
        (lambda h: _tensor(h).update(dtype=["F32"]), ["expected dtype in"]),
        (lambda h: _tensor(h).update(shape=[-10]), ["non-negative ints", "[-10]"]),
        (lambda h: _tensor(h).update(shape=[True] * 10), ["non-negative ints"]),
        (lambda h: _tensor(h).update(shape=[2.5]), ["non-negative ints"]),
        (lambda h: _tensor(h).update(shape=[11]), ["F32[11] needs 44 bytes", "hold 40"]),
        (lambda h: _tensor(h).update(data_offsets=[0]), ["[begin, end] ints"]),
        (lambda h: _tensor(h).update(data_offsets=[-40, 0]), ["0 <= begin <= end"]),
        (lambda h: _tensor(h).update(data_offsets=[10**30, 10**30 + 40]), ["0 <= begin <= end"]),
        (lambda h: _tensor(h).update(data_offsets=[40, 0]), ["0 <= begin <= end"]),
        (lambda h: h.update({"__onebit_pad_x": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}),
         ["reserved for U8 alignment padding"]),
    ],
)
def test_tensor_entry_rules(cnn_bytes, edit, fragments):
    _err(mutate(cnn_bytes, edit), *fragments)


def test_overlapping_tensors(cnn_bytes):
    def edit(h):  # fc.b (F32[10]) grows by one element into the bytes of the next entry
        begin, end = h["fc.b"]["data_offsets"]
        h["fc.b"].update(shape=[11], data_offsets=[begin, end + 4])

    _err(mutate(cnn_bytes, edit), "overlap")


def test_hole_between_tensors(cnn_bytes):
    def edit(h):
        pads = [k for k in h if k.startswith("__onebit_pad")]
        del h[pads[0]]

    _err(mutate(cnn_bytes, edit), "belong to no tensor", "holes")


def test_trailing_bytes(cnn_bytes):
    _err(cnn_bytes + b"\0" * 4, "after the last tensor", "appended")


def test_invalid_tensor_name(cnn_bytes):
    def edit(h):
        h["bad name!"] = h.pop("fc.b")

    _err(mutate(cnn_bytes, edit), "tensor name", "'bad name!'")


# ---- graph document level ----------------------------------------------------------------------


def test_missing_graph_document(cnn_bytes):
    _err(mutate(cnn_bytes, lambda h: h["__metadata__"].pop("onebit.graph")), "onebit.graph", "missing")


def test_graph_document_not_json(cnn_bytes):
    _err(mutate(cnn_bytes, lambda h: h["__metadata__"].update({"onebit.graph": "{oops"})),
         "onebit.graph", "expected valid JSON")


def _op(doc, name):
    return next(o for o in doc["graph"]["ops"] if o["name"] == name)


def _set(path_fn, key, value):
    def edit(doc):
        path_fn(doc)[key] = value

    return edit


GRAPH_RULES = [
    # document structure
    (lambda d: d.pop("provenance"), ["exactly the keys", "provenance"]),
    (lambda d: d.update(provenance={"a": 1}), ["provenance to map strings"]),
    (lambda d: d["graph"].update(extra=[]), ["graph: 'graph': expected an object with exactly the keys"]),
    (lambda d: d["graph"].update(inputs=[]), ["inputs: expected a list of at least 1"]),
    (lambda d: d["graph"].update(ops=[]), ["ops: expected a list of at least 1"]),
    (lambda d: d["graph"].update(tensors=[]), ["'tensors' to be an object"]),
    # graph inputs / outputs
    (lambda d: d["graph"]["inputs"][0].update(layout="CHWN"), ["inputs[0] (x)", "layout in", "'CHWN'"]),
    (lambda d: d["graph"]["inputs"][0].update(layout="NC"), ["layout NC needs rank 2"]),
    (lambda d: d["graph"]["inputs"][0].update(dtype="bfloat16"), ["inputs[0] (x)", "dtype in"]),
    (lambda d: d["graph"]["inputs"][0].update(shape=["batch", 3, 16, -1]), ["shape", "[0, 2^53]"]),
    (lambda d: d["graph"]["inputs"][0].update(shape=["batch", 3, 16, "1x"]), ["symbol name"]),
    (lambda d: d["graph"]["inputs"][0].update(name="fc.w"), ["already used by another input or a stored tensor"]),
    (lambda d: d["graph"]["outputs"][0].update(name="nope"), ["outputs[0]", "'nope'", "neither a graph input"]),
    (lambda d: d["graph"]["outputs"][0].update(shape=["batch", 11]), ["declared as float32['batch', 11]",
                                                                     "computes float32['batch', 10]"]),
    (lambda d: d["graph"]["outputs"][2].update(layout="NHWC", shape=["batch", 64, 4, 4]), ["'map'", "NHWC"]),
    (lambda d: d["graph"]["outputs"][0].update(dtype="bitpacked"), ["must be dequantized"]),
    (lambda d: d["graph"]["outputs"].append(d["graph"]["outputs"][0]), ["listed twice"]),
    # op structure and references
    (lambda d: _op(d, "relu").update(type="gelu"), ["op 'relu'", "unknown op type 'gelu'", "upgrade onebit"]),
    (lambda d: _op(d, "relu").pop("attrs"), ["ops[12]", "exactly the keys"]),
    (lambda d: _op(d, "relu").update(name="bc1"), ["op names must be unique"]),
    (lambda d: _op(d, "relu").update(inputs=["zz"]), ["op 'relu' (relu)", "'zz'", "execution order"]),
    (lambda d: _op(d, "relu").update(inputs=["a"]), ["'a'", "earlier op"]),  # 'a' is produced later
    (lambda d: _op(d, "relu").update(inputs=[]), ["expected 1 inputs ['x'], got 0"]),
    (lambda d: _op(d, "relu").update(inputs=[""]), ["input 'x' is required"]),
    (lambda d: _op(d, "relu").update(inputs=[7]), ["inputs[0]", "expected a name"]),
    (lambda d: _op(d, "relu").update(outputs=["r", "r2"]), ["expected 1 output name(s)"]),
    (lambda d: _op(d, "relu").update(outputs=["d"]), ["output 'd' is already defined"]),
    (lambda d: _op(d, "relu").update(outputs=["x"]), ["output 'x' is already defined"]),
    (lambda d: _op(d, "bc2").update(inputs=["b1", "bm", "bc2.m", "bc2.b", "", ""]),
     ["input 'weights' must name a tensor stored in the file", "'bm'"]),
    (lambda d: d["graph"]["tensors"].pop("r"), ["output 'r' is not declared"]),
    (lambda d: d["graph"]["tensors"].update(r={"dtype": "float32", "shape": ["batch", 4, 4, 31]}),
     ["output 'r' is declared as float32['batch', 4, 4, 31]", "give float32['batch', 4, 4, 32]"]),
    (lambda d: d["graph"]["tensors"].update(r={"dtype": "float64x", "shape": []}), ["tensors['r']", "dtype in"]),
    (lambda d: d["graph"]["tensors"].update(zz={"dtype": "float32", "shape": []}), ["'zz'", "no op produces"]),
    (lambda d: d["graph"]["tensors"].update(x={"dtype": "float32", "shape": []}), ["'x'", "no op produces"]),
    # attributes
    (lambda d: _op(d, "bc1")["attrs"].pop("stride"), ["op 'bc1' (bconv2d)", "attribute 'stride'", "missing"]),
    (lambda d: _op(d, "bc1")["attrs"].update(fused="relu"), ["unknown attribute(s) ['fused']"]),
    (lambda d: _op(d, "bc1")["attrs"].update(stride=[0, 1]), ["attribute 'stride'", "in [1,"]),
    (lambda d: _op(d, "bc1")["attrs"].update(stride=[1, 1, 1]), ["'stride' must be a list of 2 ints"]),
    (lambda d: _op(d, "bc1")["attrs"].update(stride=2), ["'stride' must be a list of ints"]),
    (lambda d: _op(d, "bc1")["attrs"].update(groups=True), ["'groups' must be an int", "True"]),
    (lambda d: _op(d, "bc1")["attrs"].update(groups=2**60), ["'groups' must be in"]),
    (lambda d: _op(d, "bc1")["attrs"].update(pad_values="reflect"), ["'pad_values' must be one of ['one', 'zero']"]),
    (lambda d: _op(d, "bc2")["attrs"].update(clamp_min="0"), ["'clamp_min' must be a number or null"]),
    (lambda d: _op(d, "bc2")["attrs"].update(clamp_min=2.0), ["clamp_min must be <= clamp_max"]),
    (lambda d: _op(d, "ht")["attrs"].update(min=3.0), ["min must be <= max"]),
    (lambda d: _op(d, "gp")["attrs"].update(keepdims=1), ["'keepdims' must be true or false"]),
    (lambda d: _op(d, "rs")["attrs"].update(shape=["batch", 255]), ["must hold as many elements"]),
    (lambda d: _op(d, "rs")["attrs"].update(shape=["T", 256]), ["must hold as many elements"]),
    (lambda d: _op(d, "nchw")["attrs"].update(perm=[0, 3, 1, 1]), ["permutation of 0..3"]),
    (lambda d: _op(d, "sm")["attrs"].update(axis=2), ["axis must be in [-2, 2)"]),
    (lambda d: _op(d, "cat").update(inputs=["se", "g"]), ["input 1", "except on axis 3", "float32['batch', 1, 1, 32]"]),
    # shape rules of binary ops
    (lambda d: _op(d, "bc1").update(inputs=["bm", "bc2.w", "", "", "bc1.t", "bc1.flip"]),
     ["op 'bc1' (bconv2d)", "input 'threshold': expected int32[32], got int32[64]"]),
    (lambda d: _op(d, "bc1").update(inputs=["bm", "bc3.w", "", "", "bc1.t", "bc1.flip"]),
     ["input 'weights': expected uint32[16, kh>=1, kw>=1, 1]", "uint32[16, 1, 1, 2]"]),
    (lambda d: _op(d, "bc1").update(inputs=["bm", "bc1.w", "", "", "", "bc1.flip"]),
     ["input 'threshold' is required here", "int32[64]"]),
    (lambda d: _op(d, "bc1").update(inputs=["bm", "bc1.w", "bc1.t", "", "bc1.t", "bc1.flip"]),
     ["input 'multiplier' must have dtype in ['float32'], got int32[64]"]),
    (lambda d: _op(d, "bc1").update(inputs=["bm", "bc1.w", "bc2.m", "", "bc1.t", "bc1.flip"]),
     ["input 'multiplier' must be absent", "bitpacked output"]),
    (lambda d: _op(d, "bc1")["attrs"].update(output="float32"), ["input 'multiplier' is required here"]),
    (lambda d: _op(d, "bc1")["attrs"].update(clamp_min=0.0), ["must be null for output 'bitpacked'"]),
    (lambda d: _op(d, "bc2")["attrs"].update(groups=4), ["channels/groups to be a multiple of 32", "64/4 = 16"]),
    (lambda d: _op(d, "bc2")["attrs"].update(groups=3), ["groups=3 must divide"]),
    (lambda d: _op(d, "bc2").update(inputs=["p0", "bc2.w", "bc2.m", "bc2.b", "", ""]),
     ["input 'x' must have dtype in ['bitpacked'], got float32"]),
    (lambda d: _op(d, "bc1")["attrs"].update(padding=[0, 0, 0, 0], dilation=[3, 3]),
     ["padded input extent 4 is smaller than the (dilated) window 7"]),
    (lambda d: _op(d, "bmp")["attrs"].update(padding=[2, 0, 0, 0]), ["top padding must be < the window (2)"]),
    (lambda d: _op(d, "bfc").update(inputs=["q0", "bfc.w", "bfc.m", "bfc.b", "", ""]),
     ["expected uint32[N>=1, 1] for K=32", "uint32[10, 8]"]),
    (lambda d: _op(d, "q0").update(inputs=["bc1.t"]), ["input 'x' must have dtype in ['float32', 'int8']"]),
    # float ops
    (lambda d: _op(d, "conv0").update(inputs=["x", "dw.w", "conv0.b"]), ["(OHWI, C/groups)", "float32[32, 3, 3, 1]"]),
    (lambda d: _op(d, "dw")["attrs"].update(groups=5), ["groups=5 must divide"]),
    (lambda d: _op(d, "fc").update(inputs=["rs", "fc.w", "conv0.b"]),
     ["op 'fc' (dense)", "input 'bias': expected float32[10]"]),
    (lambda d: _op(d, "fc").update(inputs=["b2", "fc.w", "fc.b"]), ["to match x"]),
    (lambda d: _op(d, "add").update(inputs=["r", "c0"]), ["do not broadcast", "axis -2: 4 vs 8"]),
    (lambda d: _op(d, "pr0").update(inputs=["n0", "fc.b"]), ["input 'alpha': expected float32[32]"]),
    (lambda d: _op(d, "bn0").update(inputs=["c0", "bn0.scale", "fc.w"]), ["input 'bias': expected float32[32]"]),
    (lambda d: _op(d, "mp").update(inputs=["conv0.b"]), ["input 'x' must have rank 4, got float32[32]"]),
]


@pytest.mark.parametrize("edit, fragments", GRAPH_RULES)
def test_graph_rules(cnn_bytes, edit, fragments):
    _err(mutate(cnn_bytes, doc_fn=edit), *fragments)


LLM_RULES = [
    (lambda d: _op(d, "q").update(inputs=["x1", "x1s", "wq", "wq.s"]), ["input 'x_scale' must be absent"]),
    (lambda d: _op(d, "q").update(inputs=["x1q", "", "wq", "wq.s"]), ["input 'x_scale' is required here"]),
    (lambda d: _op(d, "q").update(inputs=["x1q", "x1s", "wq", "n1.w"]), ["input 'w_scale': expected float32[1]"]),
    (lambda d: _op(d, "q").update(inputs=["x1q", "x1s", "tok.table", "wq.s"]), ["input 'weights' must have dtype"]),
    (lambda d: _op(d, "down").update(inputs=["x2", "", "wg", "wd.s"]),
     ["op 'down' (ternary_linear)", "output 'dn' is declared as float32[1, 'T', 64]", "give float32[1, 'T', 128]"]),
    (lambda d: _op(d, "qi").update(outputs=["x1q"]), ["expected 2 output name(s)"]),
    (lambda d: _op(d, "kh")["attrs"].update(shape=[1, "T", 3, 16]), ["must hold as many elements"]),
    (lambda d: _op(d, "att").update(inputs=["qr", "kr", "qr"]), ["to match"]),
    (lambda d: _op(d, "att").update(inputs=["kr", "qr", "qr"]), ["query heads (2) must be a multiple"]),
    (lambda d: _op(d, "att")["attrs"].update(scale=0.0), ["scale must be > 0 or null"]),
    (lambda d: _op(d, "rq").update(inputs=["qh", "x1s"]), ["input 'positions' must have dtype"]),
    (lambda d: _op(d, "rq")["attrs"].update(theta=0.0), ["'theta' must be > 0"]),
    (lambda d: _op(d, "rq")["attrs"].update(style="gptj"), ["'style' must be one of ['half', 'interleaved']"]),
    (lambda d: _op(d, "n1")["attrs"].update(eps=-1e-5), ["'eps' must be > 0"]),
    (lambda d: _op(d, "n1")["attrs"].update(eps="inf"), ["'eps' must be a number"]),
    (lambda d: _op(d, "glu")["attrs"].update(activation="gelu"), ["one of ['silu', 'relu2']"]),
    (lambda d: _op(d, "glu").update(inputs=["g", "x2"]), ["gate and up must have one shape"]),
    (lambda d: _op(d, "emb").update(inputs=["n1.w", "tok.table"]),
     ["input 'ids' must have dtype in ['int32', 'int64']"]),
    (lambda d: _op(d, "lm_head").update(inputs=["xf", "wq", ""]), ["input 'weights' must have dtype"]),
]


@pytest.mark.parametrize("edit, fragments", LLM_RULES)
def test_llm_graph_rules(llm_bytes, edit, fragments):
    _err(mutate(llm_bytes, doc_fn=edit), *fragments)


def test_rope_positions_are_t_or_b_t(llm_bytes):
    def positions(shape, layout):
        return mutate(llm_bytes, doc_fn=lambda d: d["graph"]["inputs"][1].update(shape=shape, layout=layout))

    assert load_model(positions([1, "T"], "NT")).values["pos"].shape == (1, "T")
    _err(positions([2, "T"], "NT"), "op 'rq' (rope)", "input 'positions': expected shape ['T'] or [1, 'T']")


# ---- schema rules tested directly ---------------------------------------------------------------


def _infer(op_type, inputs, **attrs):
    sch = OPS[op_type]
    attrs = complete_attrs(sch, attrs)
    check_attrs(sch, attrs, op_type)
    return infer_outputs(sch, inputs, attrs)


def _brute_extent(size, k, s, d, p0, p1):
    """Window positions counted one by one: start i*s in the padded input, span d*(k-1)+1."""
    count, span = 0, d * (k - 1) + 1
    while count * s + span <= size + p0 + p1:
        count += 1
    return count


@pytest.mark.parametrize("h, w", [(1, 1), (5, 7), (8, 8), (31, 33)])
@pytest.mark.parametrize("k, s, d, pads", [(1, 1, 1, (0, 0, 0, 0)), (3, 1, 1, (1, 1, 1, 1)), (3, 2, 1, (0, 1, 0, 1)),
                                           (3, 2, 2, (2, 2, 2, 2)), (5, 3, 1, (2, 1, 0, 3)), (2, 2, 1, (0, 0, 0, 0))])
def test_conv_output_extent_grid(h, w, k, s, d, pads):
    span = d * (k - 1) + 1
    c = 64
    x = Value("bitpacked", ("batch", h, w, c))
    wts = Value("uint32", (32, k, k, 2))
    attrs = dict(stride=[s, s], dilation=[d, d], padding=list(pads), output="int32")
    if h + pads[0] + pads[1] < span or w + pads[2] + pads[3] < span:
        with pytest.raises(FormatError, match="smaller than the \\(dilated\\) window"):
            _infer("bconv2d", [x, wts, None, None, None, None], **attrs)
        return
    (y,) = _infer("bconv2d", [x, wts, None, None, None, None], **attrs)
    expected = ("batch", _brute_extent(h, k, s, d, pads[0], pads[1]), _brute_extent(w, k, s, d, pads[2], pads[3]), 32)
    assert y == Value("int32", expected)
    (f,) = _infer("conv2d", [Value("float32", x.shape), Value("float32", (32, k, k, c)), None], **{
        kk: v for kk, v in attrs.items() if kk != "output"})
    assert f == Value("float32", expected)


@pytest.mark.parametrize("c, words", [(1, 1), (31, 1), (32, 1), (33, 2), (63, 2), (64, 2), (65, 3)])
def test_bdense_word_count_edges(c, words):
    x = Value("bitpacked", (4, c))
    (y,) = _infer("bdense", [x, Value("uint32", (7, words)), None, None, None, None], output="int32")
    assert y == Value("int32", (4, 7))
    with pytest.raises(FormatError, match=f"expected uint32\\[N>=1, {words}\\] for K={c}"):
        _infer("bdense", [x, Value("uint32", (7, words + 1)), None, None, None, None], output="int32")


def test_binary_depth_limit():
    x = Value("bitpacked", (1, 2**24))
    with pytest.raises(FormatError, match="K = 16777216 must be < 2\\^24"):
        _infer("bdense", [x, Value("uint32", (1, 2**19)), None, None, None, None], output="int32")


@pytest.mark.parametrize("k, row", [(1, 32), (127, 32), (128, 32), (129, 64), (2560, 640)])
def test_ternary_row_bytes(k, row):
    x = Value("float32", (1, "T", k))
    (y,) = _infer("ternary_linear", [x, None, Value("uint8", (9, row)), Value("float32", (1,))])
    assert y == Value("float32", (1, "T", 9))


def test_symbolic_dims_must_be_fixed_where_computed():
    with pytest.raises(FormatError, match="input height must be a fixed integer dimension, got symbol 'H'"):
        _infer("maxpool2d", [Value("float32", (1, "H", 4, 8))], kernel=[2, 2], stride=[2, 2])
    with pytest.raises(FormatError, match="packed \\(last\\) axis must be a fixed integer"):
        _infer("quantize", [Value("float32", (1, "C"))])
    (y,) = _infer("add", [Value("float32", ("B", 1, 8)), Value("float32", (5, 1))])
    assert y.shape == ("B", 5, 8)
    with pytest.raises(FormatError, match="do not broadcast"):
        _infer("add", [Value("float32", ("B", 8)), Value("float32", ("T", 8))])


def test_docs_list_every_op():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "format.md").read_text()
    for op_type, sch in OPS.items():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{op_type}` |")), None)
        assert row is not None, f"docs/format.md has no row for op {op_type}"
        for a in sch.attrs:
            assert f"`{a.name}`" in row, (op_type, a.name)


def test_runtime_imports_without_torch():
    import subprocess
    import sys

    code = ("import sys, onebit.runtime, onebit.converter.writer; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
