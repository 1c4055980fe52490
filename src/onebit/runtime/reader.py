"""Open and validate a ``.onebit`` model file (docs/format.md): every byte of the header, every
tensor range, the graph document and every op against the schema, before anything runs.

Any problem raises :class:`onebit.errors.FormatError` saying what was expected, what was found,
where, and what to do; never another exception type, never a read outside the file. Tensors
are read-only views of the memory-mapped file (or of the given bytes): no copies, except for a
foreign file whose tensor is not aligned to its item size (then that one tensor is copied).
"""

from __future__ import annotations

import json
import mmap as _mmap
import os
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from onebit.errors import FormatError
from onebit.runtime import schema
from onebit.runtime.format import (
    BITPACKED,
    FORMAT_VERSION,
    GRAPH_DTYPES,
    KEY_FORMAT,
    KEY_GRAPH,
    KEY_VERSION,
    LAYOUTS,
    MAGIC,
    MAX_HEADER_BYTES,
    MAX_RANK,
    NAME_RE,
    PAD_PREFIX,
    ST_DTYPES,
    _short,
    graph_dtype_of,
    parse_version,
    to_engine_shape,
    to_user_shape,
    version_string,
)
from onebit.runtime.schema import Value, parse_shape

__all__ = ["ModelFile", "load_model", "parse_json", "validate_document"]

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]


@dataclass
class ModelFile:
    """A validated ``.onebit`` file.

    Attributes:
        graph: the graph (``inputs``, ``outputs``, ``tensors``, ``ops``) as plain JSON data.
        tensors: stored tensors by name, read-only numpy arrays viewing the file (no copies).
        values: dtype and engine-layout shape of every graph input and op output (the schema's
            inference; what an interpreter plans its buffers from).
        version: the file's format version ``(major, minor)``.
        provenance: string -> string (onebit version, source model, date, torch version, ...).
        metadata: the raw safetensors ``__metadata__`` map.
    """

    graph: dict[str, Any]
    tensors: dict[str, np.ndarray]
    values: dict[str, Value] = field(repr=False)
    version: tuple[int, int]
    provenance: dict[str, str]
    metadata: dict[str, str] = field(repr=False)


# --------------------------------------------------------------------------------------------
# JSON


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")


def _no_duplicates(pairs: list) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {_short(key)}")
        out[key] = value
    return out


def parse_json(text: str | bytes, where: str) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate keys; FormatError for anything else."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except UnicodeDecodeError as e:
        raise FormatError(f"{where}: expected UTF-8 text, got invalid bytes ({e.reason} at byte {e.start}); "
                          "the file is corrupt") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise FormatError(f"{where}: expected valid JSON, got an error: {_short(str(e), 200)}; "
                          "the file is corrupt or was not written by onebit") from None


# --------------------------------------------------------------------------------------------
# container level (safetensors)


def _open(source: Source, use_mmap: bool) -> tuple[memoryview, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        return view, "<bytes>"
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"load_model expects a path or bytes, got {type(source).__name__}")
    path = os.fspath(source)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise FormatError(f"{path}: expected at least 8 bytes (the header length), got a {size}-byte file; "
                              "the file is truncated or empty")
        if use_mmap:
            return memoryview(_mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ)), path
        return memoryview(f.read()), path


def _header(buf: memoryview, where: str) -> tuple[dict, int]:
    size = len(buf)
    if size < 8:
        raise FormatError(f"{where}: expected at least 8 bytes (the header length), got {size}; "
                          "the file is truncated or empty")
    n = int.from_bytes(buf[:8], "little")
    if n > size - 8:
        raise FormatError(f"{where}: header length {n} runs past the end of the file ({size - 8} bytes follow "
                          "the length field); the file is truncated or corrupt")
    if n > MAX_HEADER_BYTES:
        raise FormatError(f"{where}: header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes; "
                          "the file is corrupt or hostile")
    if n < 2 or buf[8] != ord("{"):
        raise FormatError(f"{where}: expected the JSON header to start with '{{', got "
                          f"{bytes(buf[8:min(8 + n, 16)])!r}; this is not a safetensors/.onebit file")
    header = parse_json(bytes(buf[8:8 + n]), f"{where}: header")
    if not isinstance(header, dict):
        raise FormatError(f"{where}: expected the header to be a JSON object, got {type(header).__name__}")
    return header, 8 + n


def _metadata(header: dict, where: str) -> dict[str, str]:
    meta = header.get("__metadata__")
    if meta is None:
        raise FormatError(f"{where}: no '__metadata__' in the header: this is a plain safetensors file, not a "
                          ".onebit model; convert a model with onebit.converter")
    if not isinstance(meta, dict):
        raise FormatError(f"{where}: expected '__metadata__' to map strings to strings, got {_short(meta)}")
    for k, v in meta.items():
        if not isinstance(v, str):
            raise FormatError(f"{where}: expected '__metadata__' to map strings to strings, got {_short(k)}: "
                              f"{_short(v)}")
    magic = meta.get(KEY_FORMAT)
    if magic != MAGIC:
        raise FormatError(f"{where}: expected __metadata__['{KEY_FORMAT}'] == {MAGIC!r}, got {_short(magic)}; "
                          "this safetensors file is not a .onebit model (convert one with onebit.converter)")
    return meta


def _check_version(meta: dict[str, str], where: str) -> tuple[int, int]:
    version = parse_version(meta.get(KEY_VERSION), f"{where}: __metadata__['{KEY_VERSION}']")
    if version[0] > FORMAT_VERSION[0]:
        raise FormatError(f"{where}: format version {version_string(version)} is newer than this onebit reads "
                          f"({version_string()}); upgrade onebit (pip install -U onebit)")
    if version[0] < 1:
        raise FormatError(f"{where}: format version {version_string(version)} is not a released .onebit version "
                          f"(expected 1.x); re-convert the model")
    return version


def _tensor_entries(header: dict, data_len: int, where: str) -> list[tuple[str, str, tuple, int, int]]:
    """Every tensor entry checked; the byte ranges must tile [0, data_len) exactly (as safetensors)."""
    entries = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        at = f"{where}: tensor {_short(name)}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise FormatError(f"{at}: expected an object with exactly 'dtype', 'shape', 'data_offsets', "
                              f"got {_short(entry)}")
        dtype = entry["dtype"]
        if not isinstance(dtype, str) or dtype not in ST_DTYPES:
            raise FormatError(f"{at}: expected dtype in {sorted(ST_DTYPES)}, got {_short(dtype)}; "
                              "store bfloat16/float8 tensors as F16 or F32")
        shape = entry["shape"]
        if (not isinstance(shape, list) or len(shape) > MAX_RANK
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise FormatError(f"{at}: expected shape to be a list of at most {MAX_RANK} non-negative ints, got "
                              f"{_short(shape)}")
        offsets = entry["data_offsets"]
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise FormatError(f"{at}: expected data_offsets to be [begin, end] ints, got {_short(offsets)}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            raise FormatError(f"{at}: data_offsets [{begin}, {end}] must satisfy 0 <= begin <= end <= {data_len} "
                              "(the data section's size); the file is truncated or corrupt")
        count = 1
        for d in shape:
            count *= d
        nbytes = count * ST_DTYPES[dtype].itemsize
        if nbytes != end - begin:
            raise FormatError(f"{at}: {dtype}{shape} needs {nbytes} bytes, but data_offsets [{begin}, {end}] hold "
                              f"{end - begin}; the file is corrupt")
        if name.startswith(PAD_PREFIX) and (dtype != "U8" or len(shape) != 1):
            raise FormatError(f"{at}: names starting with {PAD_PREFIX!r} are reserved for U8 alignment padding, "
                              f"got {dtype}{shape}")
        entries.append((name, dtype, tuple(shape), begin, end))
    pos, prev = 0, None
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4], e[0])):
        if begin < pos:
            raise FormatError(f"{where}: tensor {_short(name)} bytes [{begin}, {end}) overlap tensor {_short(prev)} "
                              f"(which ends at {pos}); the file is corrupt or hostile")
        if begin > pos:
            raise FormatError(f"{where}: data bytes [{pos}, {begin}) belong to no tensor (safetensors forbids "
                              "holes); the file is corrupt")
        pos, prev = end, name
    if pos != data_len:
        raise FormatError(f"{where}: data bytes [{pos}, {data_len}) after the last tensor belong to no tensor "
                          "(safetensors forbids trailing bytes); the file is corrupt or was appended to")
    return entries


def _array(buf: memoryview, start: int, st_dtype: str, shape: tuple) -> np.ndarray:
    dtype = ST_DTYPES[st_dtype]
    count = 1
    for d in shape:
        count *= d
    arr = np.frombuffer(buf, dtype=dtype, count=count, offset=start).reshape(shape)
    if not arr.flags.aligned:  # foreign file: safetensors only aligns the data section to 8 bytes
        arr = arr.copy()
    arr.flags.writeable = False
    return arr


# --------------------------------------------------------------------------------------------
# graph level


def _name(obj: object, where: str) -> str:
    if not isinstance(obj, str) or not NAME_RE.match(obj) or obj.startswith("__"):
        raise FormatError(f"{where}: expected a name of 1-256 characters [A-Za-z0-9_.:/-[]] not starting with "
                          f"'__', got {_short(obj)}")
    return obj


def _object(obj: object, keys: set[str], where: str) -> dict:
    if not isinstance(obj, dict) or set(obj) != keys:
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise FormatError(f"{where}: expected an object with exactly the keys {sorted(keys)}, got {_short(got)}")
    return obj


def _list(obj: object, where: str, min_len: int = 0) -> list:
    if not isinstance(obj, list) or len(obj) < min_len:
        raise FormatError(f"{where}: expected a list of at least {min_len} item(s), got {_short(obj)}")
    return obj


def _io_value(item: object, where: str) -> tuple[str, Value, str]:
    item = _object(item, {"name", "dtype", "shape", "layout"}, where)
    name = _name(item["name"], f"{where}: name")
    dtype = item["dtype"]
    if not isinstance(dtype, str) or dtype not in schema.DENSE_DTYPES:
        raise FormatError(f"{where} ({name}): expected a dtype in {list(schema.DENSE_DTYPES)}, got {_short(dtype)}"
                          + ("; graph outputs must be dequantized" if dtype == BITPACKED else ""))
    layout = item["layout"]
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise FormatError(f"{where} ({name}): expected a layout in {sorted(LAYOUTS)}, got {_short(layout)}")
    shape = parse_shape(item["shape"], f"{where} ({name}): shape")
    if len(shape) != len(LAYOUTS[layout]):
        raise FormatError(f"{where} ({name}): layout {layout} needs rank {len(LAYOUTS[layout])}, got shape "
                          f"{list(shape)}")
    return name, Value(dtype, shape), layout


def validate_document(
    doc: object, stored: dict[str, Value], where: str = "graph", *, declare_missing: bool = False
) -> dict[str, Value]:
    """Validate the graph document against the stored tensors' dtypes/shapes and the op schema.

    Returns the dtype and engine-layout shape of every graph input and op output.
    ``declare_missing`` (writer side) adds the inferred dtype/shape of op outputs missing from
    the graph's ``tensors`` map instead of rejecting them.
    """
    doc = _object(doc, {"version", "graph", "provenance"}, where)
    parse_version(doc["version"], f"{where}: version")
    prov = doc["provenance"]
    if not isinstance(prov, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in prov.items()):
        raise FormatError(f"{where}: expected provenance to map strings to strings, got {_short(prov)}")
    graph = _object(doc["graph"], {"inputs", "outputs", "tensors", "ops"}, f"{where}: 'graph'")

    values: dict[str, Value] = {}
    for i, item in enumerate(_list(graph["inputs"], f"{where}: inputs", 1)):
        name, value, layout = _io_value(item, f"{where}: inputs[{i}]")
        if name in values or name in stored:
            raise FormatError(f"{where}: input name {name!r} is already used by another input or a stored tensor; "
                              "names must be unique")
        values[name] = Value(value.dtype, to_engine_shape(value.shape, layout))

    declared = graph["tensors"]
    if not isinstance(declared, dict):
        raise FormatError(f"{where}: expected 'tensors' to be an object (value name -> dtype/shape), got "
                          f"{_short(declared)}")
    op_names: set[str] = set()
    produced: set[str] = set()
    for i, op in enumerate(_list(graph["ops"], f"{where}: ops", 1)):
        at = f"{where}: ops[{i}]"
        op = _object(op, {"type", "name", "inputs", "outputs", "attrs"}, at)
        op_name = _name(op["name"], f"{at}: name")
        at = f"{where}: op {op_name!r}"
        if op_name in op_names:
            raise FormatError(f"{at}: op names must be unique, {op_name!r} is used twice")
        op_names.add(op_name)
        sch = schema.OPS.get(op["type"]) if isinstance(op["type"], str) else None
        if sch is None:
            raise FormatError(f"{at}: unknown op type {_short(op['type'])} (known: {sorted(schema.OPS)}); "
                              "the file may come from a newer onebit: upgrade onebit")
        at = f"{at} ({sch.type})"
        schema.check_attrs(sch, op["attrs"], at)
        ins: list[Value | None] = []
        for j, ref in enumerate(_list(op["inputs"], f"{at}: inputs")):
            port = sch.inputs[min(j, len(sch.inputs) - 1)] if sch.inputs else None
            if ref == "":
                ins.append(None)
                continue
            ref = _name(ref, f"{at}: inputs[{j}]")
            if port is not None and port.weight and ref not in stored:
                raise FormatError(f"{at}: input '{port.name}' must name a tensor stored in the file, got {ref!r}"
                                  + (" (a computed value)" if ref in values else ""))
            if ref in values:
                ins.append(values[ref])
            elif ref in stored:
                ins.append(stored[ref])
            else:
                raise FormatError(f"{at}: input {ref!r} is neither a graph input, a stored tensor nor the output of "
                                  "an earlier op; ops must be in execution order")
        try:
            outs = schema.infer_outputs(sch, ins, op["attrs"])
        except FormatError as e:
            raise FormatError(f"{at}: {e}") from None
        refs = _list(op["outputs"], f"{at}: outputs")
        if len(refs) != len(outs):
            raise FormatError(f"{at}: expected {len(outs)} output name(s) {[p.name for p in sch.outputs]}, "
                              f"got {_short(refs)}")
        for ref, value in zip(refs, outs):
            ref = _name(ref, f"{at}: output")
            if ref in values or ref in stored:
                raise FormatError(f"{at}: output {ref!r} is already defined (a graph input, stored tensor or "
                                  "earlier output); every value is assigned once")
            spec = declared.get(ref)
            if spec is None and declare_missing:
                spec = declared[ref] = {"dtype": value.dtype, "shape": list(value.shape)}
            if spec is None:
                raise FormatError(f"{at}: output {ref!r} is not declared in graph 'tensors' (expected {value})")
            spec = _object(spec, {"dtype", "shape"}, f"{where}: tensors[{ref!r}]")
            if not isinstance(spec["dtype"], str) or spec["dtype"] not in GRAPH_DTYPES:
                raise FormatError(f"{where}: tensors[{ref!r}]: expected a dtype in {sorted(GRAPH_DTYPES)}, "
                                  f"got {_short(spec['dtype'])}")
            got = Value(spec["dtype"], parse_shape(spec["shape"], f"{where}: tensors[{ref!r}].shape"))
            if got != value:
                raise FormatError(f"{at}: output {ref!r} is declared as {got}, but the op's inputs and attributes "
                                  f"give {value}; re-convert the model")
            values[ref] = value
            produced.add(ref)
    for ref in declared:
        if ref not in produced:
            raise FormatError(f"{where}: tensors[{_short(ref)}] is declared but no op produces it")

    out_names: set[str] = set()
    for i, item in enumerate(_list(graph["outputs"], f"{where}: outputs", 1)):
        at = f"{where}: outputs[{i}]"
        name, value, layout = _io_value(item, at)
        if name in out_names:
            raise FormatError(f"{at}: output {name!r} is listed twice")
        out_names.add(name)
        if name not in values:
            raise FormatError(f"{at}: output {name!r} is neither a graph input nor produced by an op")
        inner = values[name]
        user = Value(inner.dtype, to_user_shape(inner.shape, layout)) if len(inner.shape) == len(layout) else None
        if user != value:
            raise FormatError(f"{at}: output {name!r} is declared as {value} in layout {layout}, but the graph "
                              f"computes {inner} (engine layout); re-convert the model")
    return values


# --------------------------------------------------------------------------------------------


def load_model(source: Source, *, mmap: bool = True) -> ModelFile:
    """Open a ``.onebit`` file (a path, or its bytes) and validate all of it.

    Checks, in order: file size >= 8; header length <= file size - 8 and <= 100 MB; the header is
    a UTF-8 JSON object; the magic ``__metadata__['onebit.format'] == 'onebit'``; the format
    version (a newer major version asks to upgrade onebit); every tensor's dtype, shape and
    ``data_offsets`` (``end - begin == prod(shape) * itemsize``, ranges tiling the data section
    with no overlap, hole or trailing byte); the graph document (every op type, attribute,
    input reference, dtype and shape against :mod:`onebit.runtime.schema`).

    Args:
        source: path, or ``bytes``/``bytearray``/``memoryview`` of a whole file.
        mmap: memory-map a path (default) instead of reading it into memory.
    Returns:
        A :class:`ModelFile` whose tensors are read-only views (zero-copy) of the file.
    Raises:
        FormatError: anything wrong with the file. OSError: the path cannot be opened.
    """
    buf, where = _open(source, mmap)
    header, data_start = _header(buf, where)
    meta = _metadata(header, where)
    version = _check_version(meta, where)
    entries = _tensor_entries(header, len(buf) - data_start, where)
    stored: dict[str, Value] = {}
    tensors: dict[str, np.ndarray] = {}
    for name, dtype, shape, begin, _ in entries:
        if name.startswith(PAD_PREFIX):
            continue
        _name(name, f"{where}: tensor name")
        stored[name] = Value(graph_dtype_of(dtype), shape)
        tensors[name] = _array(buf, data_start + begin, dtype, shape)
    if KEY_GRAPH not in meta:
        raise FormatError(f"{where}: __metadata__['{KEY_GRAPH}'] (the graph document) is missing; the file is "
                          "corrupt or was not written by onebit")
    doc = parse_json(meta[KEY_GRAPH], f"{where}: __metadata__['{KEY_GRAPH}']")
    if isinstance(doc, dict) and isinstance(doc.get("version"), str) and doc["version"] != meta[KEY_VERSION]:
        raise FormatError(f"{where}: the graph document's version {doc['version']!r} differs from "
                          f"__metadata__['{KEY_VERSION}'] {meta[KEY_VERSION]!r}; the file is corrupt")
    values = validate_document(doc, stored, f"{where}: graph")
    return ModelFile(doc["graph"], tensors, values, version, dict(doc["provenance"]), meta)
