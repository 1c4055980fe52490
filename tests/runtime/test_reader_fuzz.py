"""Fuzzing the reader (issue 4: "a corrupt, truncated or hostile .onebit file gives FormatError,
never a crash or an out-of-bounds read").

Every mutated file must either load (then every tensor lies inside the file's bytes and reads
back completely) or raise FormatError; any other exception fails the test. Mutations: bit
flips and byte writes (anywhere, and concentrated in the header), truncation, extension, a
random header length, random JSON values grafted anywhere into the header or the graph document
(huge/negative numbers, wrong types, missing keys, plausible names), random tensor ranges
(negative, overlapping, past the end), and wholly random headers.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onebit.converter import write_model
from onebit.errors import FormatError
from onebit.runtime import load_model
from tests.runtime import cnn_model, join, llm_model, split

# 300 examples per test keeps the whole file near 30 s on 2 cores; ONEBIT_FUZZ_EXAMPLES=5000 for a long run.
FUZZ = settings(max_examples=int(os.environ.get("ONEBIT_FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow], database=None)


def _files() -> list[bytes]:
    out = []
    for builder in (cnn_model, llm_model):
        graph, tensors, _ = builder()
        out.append(write_model(None, graph, tensors))
    return out


FILES = _files()
def _collect_strings(obj, acc):
    if isinstance(obj, str):
        acc.add(obj)
    elif isinstance(obj, list):
        for v in obj:
            _collect_strings(v, acc)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            acc.add(k)
            _collect_strings(v, acc)
    return acc


PLAUSIBLE = sorted(_collect_strings([json.loads(split(f)[0]["__metadata__"]["onebit.graph"]) for f in FILES], set()))

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2, 31, 32, 33, 2**31, 2**53 + 1, 2**63, 2**64, 10**30, -(10**30)]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(PLAUSIBLE),
)
JSON = st.recursive(
    SCALARS, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=6), c, max_size=5), max_leaves=12
)


def _check(data: bytes) -> None:
    """The contract: load fine (every tensor inside the buffer, fully readable) or FormatError."""
    try:
        model = load_model(data)
    except FormatError:
        return
    lo = np.frombuffer(data, np.uint8).ctypes.data if len(data) else 0
    for name, arr in model.tensors.items():
        assert not arr.flags.writeable
        if arr.nbytes and not arr.flags.owndata:
            assert lo <= arr.ctypes.data and arr.ctypes.data + arr.nbytes <= lo + len(data), name
        arr.tobytes()  # touch every byte


def _paths(obj, prefix=()):
    """Every (container path, key) in a JSON tree."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _graft(obj, path, value, delete: bool):
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


@FUZZ
@given(st.sampled_from(range(len(FILES))), st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 7)),
                                                    min_size=1, max_size=8), st.booleans())
def test_bit_flips(which, flips, header_only):
    data = bytearray(FILES[which])
    limit = 8 + int.from_bytes(data[:8], "little") if header_only else len(data)
    for pos, bit in flips:
        data[pos % limit] ^= 1 << bit
    _check(bytes(data))


@FUZZ
@given(st.sampled_from(range(len(FILES))), st.integers(0, 2**40), st.binary(max_size=64), st.booleans())
def test_truncate_and_extend(which, cut, extra, extend):
    data = FILES[which]
    data = data + extra if extend else data[: cut % (len(data) + 1)]
    _check(data)


@FUZZ
@given(st.sampled_from(range(len(FILES))), st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 40000)))
def test_random_header_length(which, n):
    data = FILES[which]
    _check(n.to_bytes(8, "little") + data[8:])


@FUZZ
@given(st.sampled_from(range(len(FILES))), st.data(), st.booleans(), st.integers(1, 3))
def test_graft_json_into_graph_document(which, data, delete, times):
    header, body = split(FILES[which])
    doc = json.loads(header["__metadata__"]["onebit.graph"])
    for _ in range(times):
        paths = list(_paths(doc))
        if not paths:
            break
        path = paths[data.draw(st.integers(0, len(paths) - 1))]
        _graft(doc, path, data.draw(JSON), delete)
    header["__metadata__"]["onebit.graph"] = json.dumps(doc)
    _check(join(header, body))


@FUZZ
@given(st.sampled_from(range(len(FILES))), st.data(), st.booleans())
def test_graft_json_into_header(which, data, delete):
    header, body = split(FILES[which])
    paths = [p for p in _paths(header) if p[:2] != ("__metadata__", "onebit.graph") or len(p) < 2]
    path = paths[data.draw(st.integers(0, len(paths) - 1))]
    _graft(header, path, data.draw(JSON), delete)
    _check(join(header, body))


@FUZZ
@given(st.data())
def test_random_tensor_ranges(data):
    header, body = split(FILES[0])
    names = [k for k in header if k != "__metadata__"]
    for _ in range(data.draw(st.integers(1, 3))):
        entry = header[data.draw(st.sampled_from(names))]
        ints = st.one_of(st.integers(-(2**64), 2**64), st.integers(-8, len(body) + 8))
        field = data.draw(st.sampled_from(["data_offsets", "shape", "both"]))
        if field in ("data_offsets", "both"):
            entry["data_offsets"] = [data.draw(ints), data.draw(ints)]
        if field in ("shape", "both"):
            entry["shape"] = data.draw(st.lists(st.integers(-2, 2**40), max_size=5))
    _check(join(header, body))


@FUZZ
@given(JSON, st.binary(max_size=128))
def test_random_headers(header, body):
    raw = json.dumps(header).encode()
    _check(len(raw).to_bytes(8, "little") + raw + body)
    if isinstance(header, dict):
        meta = {"onebit.format": "onebit", "onebit.version": "1.0", "onebit.graph": json.dumps(header)}
        raw = json.dumps({"__metadata__": meta}).encode()
        _check(len(raw).to_bytes(8, "little") + raw)


@pytest.mark.parametrize("size", [0, 3, 8, 64])
def test_mutated_files_on_disk(tmp_path, size):
    """The mmap path: a truncated file on disk gives FormatError too."""
    path = tmp_path / "t.onebit"
    path.write_bytes(FILES[0][: len(FILES[0]) - size] if size else b"")
    with pytest.raises(FormatError):
        load_model(path)
