"""Writer: round trip, determinism, 64-byte alignment, zero-copy read-only mmap, atomic writes,
and interoperability with the safetensors library in both directions."""

from __future__ import annotations

import json
import mmap
import os

import numpy as np
import pytest
from safetensors.numpy import load, load_file, save_file

from onebit.converter import make_provenance, write_model
from onebit.errors import FormatError
from onebit.kernels.bitpack import bitpack, unpack
from onebit.runtime import load_model
from onebit.runtime.format import ALIGNMENT, PAD_PREFIX
from tests.runtime import cnn_model, llm_model, op, split


def _small_graph(c: int, o: int, rng):
    """quantize -> bconv2d (3x3, one-padding, float output with multiplier/bias) -> dequantize path."""
    w = np.where(rng.standard_normal((o, 3, 3, c)) < 0, -1.0, 1.0).astype(np.float32)
    tensors = {
        "conv.w": bitpack(w),
        "conv.m": rng.standard_normal(o).astype(np.float32),
        "conv.b": rng.standard_normal(o).astype(np.float32),
    }
    graph = {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [1, c, 5, 7], "layout": "NCHW"}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [1, o, 5, 7], "layout": "NCHW"},
                    {"name": "xs", "dtype": "float32", "shape": [1, 5, 7, c], "layout": "NHWC"}],
        "ops": [
            op("quantize", "q", ["x"], ["xb"]),
            op("bconv2d", "conv", ["xb", "conv.w", "conv.m", "conv.b", "", ""], ["y"], padding=[1, 1, 1, 1]),
            op("dequantize", "dq", ["xb"], ["xs"]),
        ],
    }
    return graph, tensors, w


@pytest.mark.parametrize("c, o", [(1, 1), (31, 5), (32, 32), (33, 64), (65, 3)])
def test_round_trip_of_packed_binary_conv(c, o, tmp_path):
    rng = np.random.default_rng(c * 100 + o)
    graph, tensors, w = _small_graph(c, o, rng)
    path = tmp_path / "m.onebit"
    assert write_model(path, graph, tensors) is None
    model = load_model(path)
    assert model.version == (1, 0)
    assert model.values["xb"].dtype == "bitpacked" and model.values["xb"].shape == (1, 5, 7, c)
    assert model.values["y"].shape == (1, 5, 7, o)
    packed = model.tensors["conv.w"]
    assert packed.dtype == np.uint32 and packed.shape == (o, 3, 3, -(-c // 32))
    np.testing.assert_array_equal(unpack(packed, c), w)  # the bits survive the file exactly
    np.testing.assert_array_equal(model.tensors["conv.m"], tensors["conv.m"])
    conv = next(x for x in model.graph["ops"] if x["name"] == "conv")
    assert conv["attrs"] == {  # defaults filled in from the schema, written explicitly
        "stride": [1, 1], "dilation": [1, 1], "padding": [1, 1, 1, 1], "pad_values": "one", "groups": 1,
        "output": "float32", "clamp_min": None, "clamp_max": None,
    }
    assert model.graph["tensors"]["xb"] == {"dtype": "bitpacked", "shape": [1, 5, 7, c]}


@pytest.mark.parametrize("builder", [cnn_model, llm_model])
def test_same_inputs_give_the_same_bytes(builder, tmp_path):
    graph, tensors, _ = builder()
    a = write_model(None, graph, tensors)
    shuffled = dict(reversed(list(tensors.items())))
    b = write_model(None, json.loads(json.dumps(graph)), shuffled)
    assert a == b
    write_model(tmp_path / "m.onebit", graph, tensors)
    assert (tmp_path / "m.onebit").read_bytes() == a
    assert write_model(None, graph, tensors, provenance={"date": "x"}) != a


def test_every_tensor_is_64_byte_aligned(tmp_path):
    graph, tensors, _ = cnn_model()
    data = write_model(None, graph, tensors)
    header, body = split(data)
    start = len(data) - len(body)
    assert start % ALIGNMENT == 0
    for name, entry in header.items():
        if name != "__metadata__" and not name.startswith(PAD_PREFIX):
            assert (start + entry["data_offsets"][0]) % ALIGNMENT == 0, name
    path = tmp_path / "m.onebit"
    path.write_bytes(data)
    for name, arr in load_model(path).tensors.items():
        assert arr.ctypes.data % ALIGNMENT == 0, name


def test_mmap_tensors_are_read_only_views(tmp_path):
    graph, tensors, _ = cnn_model()
    path = tmp_path / "m.onebit"
    write_model(path, graph, tensors)
    model = load_model(path)
    arr = model.tensors["fc.w"]
    assert not arr.flags.writeable and not arr.flags.owndata
    with pytest.raises(ValueError):
        arr[0, 0] = 1.0
    base = arr
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)  # no copy: a view of the mapping
    bases = set()
    for a in model.tensors.values():
        b = a
        while isinstance(b, np.ndarray):
            b = b.base
        bases.add(id(b.obj))
    assert len(bases) == 1  # one mapping for the whole file


def test_bytes_source_is_zero_copy():
    graph, tensors, _ = cnn_model()
    data = write_model(None, graph, tensors)
    header, body = split(data)
    model = load_model(data)
    arr = model.tensors["fc.w"]
    file_addr = np.frombuffer(data, np.uint8).ctypes.data
    assert arr.ctypes.data == file_addr + len(data) - len(body) + header["fc.w"]["data_offsets"][0]
    assert not arr.flags.writeable
    mutable = load_model(bytearray(data)).tensors["fc.w"]
    assert not mutable.flags.writeable


def test_mmap_false_reads_the_same(tmp_path):
    graph, tensors, _ = llm_model()
    path = tmp_path / "m.onebit"
    write_model(path, graph, tensors)
    a, b = load_model(path), load_model(path, mmap=False)
    assert a.graph == b.graph
    for name in tensors:
        np.testing.assert_array_equal(a.tensors[name], b.tensors[name])


def test_safetensors_library_reads_our_files(tmp_path):
    graph, tensors, _ = cnn_model()
    path = tmp_path / "m.onebit"
    write_model(path, graph, tensors)
    loaded = load_file(str(path))
    assert {k for k in loaded if not k.startswith(PAD_PREFIX)} == set(tensors)
    for name, arr in tensors.items():
        np.testing.assert_array_equal(loaded[name], arr)
        assert loaded[name].dtype == arr.dtype
    for name in loaded:
        if name.startswith(PAD_PREFIX):
            assert loaded[name].dtype == np.uint8 and 0 < loaded[name].size < ALIGNMENT
            assert not loaded[name].any()


def test_we_read_files_written_by_safetensors(tmp_path):
    graph, tensors, _ = llm_model()
    ours = load_model(write_model(None, graph, tensors))
    path = tmp_path / "st.onebit"
    save_file(dict(tensors), str(path), metadata=dict(ours.metadata))
    theirs = load_model(path)
    assert theirs.graph == ours.graph and theirs.values == ours.values
    for name, arr in tensors.items():
        np.testing.assert_array_equal(theirs.tensors[name], arr)
        assert not theirs.tensors[name].flags.writeable
    assert load(write_model(None, graph, tensors)).keys() >= tensors.keys()


def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    graph, tensors, _ = cnn_model()
    path = tmp_path / "m.onebit"
    write_model(path, graph, tensors)
    before = path.read_bytes()
    bad = dict(tensors, **{"fc.w": tensors["fc.w"][:5]})
    with pytest.raises(FormatError, match="op 'fc' \\(dense\\)"):
        write_model(path, graph, bad)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.onebit"]  # no temporary file left behind


def test_writer_validates_with_the_reader_rules():
    graph, tensors, _ = cnn_model()
    graph["ops"][0]["attrs"]["stride"] = [0, 2]
    with pytest.raises(FormatError, match="op 'conv0' \\(conv2d\\): attribute 'stride'"):
        write_model(None, graph, tensors)
    graph, tensors, _ = cnn_model()
    del graph["ops"][4]["attrs"]["kernel"]  # a required attribute has no default
    with pytest.raises(FormatError, match="attribute 'kernel' of op type 'bmaxpool2d' is missing"):
        write_model(None, graph, tensors)


@pytest.mark.parametrize(
    "tensors, match",
    [
        ({"__x": np.zeros(1, np.float32)}, "not starting with '__'"),
        ({"a b": np.zeros(1, np.float32)}, "tensor name"),
        ({"w": [1.0, 2.0]}, "expected a numpy array, got list"),
        ({"w": np.zeros(2, np.complex64)}, "cast the array"),
    ],
)
def test_writer_rejects_bad_tensors(tensors, match):
    graph, _, _ = _small_graph(8, 4, np.random.default_rng(0))
    with pytest.raises(FormatError, match=match):
        write_model(None, graph, tensors)


def test_numpy_scalars_and_tuples_are_plain_json():
    rng = np.random.default_rng(3)
    graph, tensors, _ = _small_graph(8, 4, rng)
    graph["ops"][1]["attrs"] = {"padding": (np.int64(1),) * 4, "clamp_min": np.float32(0.0)}
    model = load_model(write_model(None, graph, tensors))
    attrs = model.graph["ops"][1]["attrs"]
    assert attrs["padding"] == [1, 1, 1, 1] and attrs["clamp_min"] == 0.0
    graph["ops"][1]["attrs"] = {"clamp_max": float("inf")}
    with pytest.raises(FormatError, match="use null for an unbounded clamp"):
        write_model(None, graph, tensors)


def test_big_endian_arrays_are_stored_little_endian():
    rng = np.random.default_rng(4)
    graph, tensors, _ = _small_graph(8, 4, rng)
    tensors["conv.m"] = tensors["conv.m"].astype(">f4")
    model = load_model(write_model(None, graph, tensors))
    np.testing.assert_array_equal(model.tensors["conv.m"], tensors["conv.m"])


def test_provenance():
    prov = make_provenance("onebit.models.QuickNet", torch_version="2.13.0", date="2026-11-22T00:00:00+00:00")
    assert prov["source"] == "onebit.models.QuickNet" and prov["torch"] == "2.13.0"
    assert prov["date"] == "2026-11-22T00:00:00+00:00" and prov["onebit"] and prov["numpy"] == np.__version__
    assert "T" in make_provenance()["date"]
    graph, tensors, _ = cnn_model()
    model = load_model(write_model(None, graph, tensors, provenance=prov))
    assert model.provenance == prov
    with pytest.raises(FormatError, match="provenance"):
        write_model(None, graph, tensors, provenance={"a": 1})


def test_writer_rejects_non_dict_arguments():
    with pytest.raises(FormatError, match="graph: expected a dict"):
        write_model(None, [], {})
    graph, _, _ = _small_graph(8, 4, np.random.default_rng(0))
    with pytest.raises(FormatError, match="tensors: expected a dict"):
        write_model(None, graph, [])
