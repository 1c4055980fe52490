"""Write ``.onebit`` model files (docs/format.md): a safetensors file whose ``__metadata__``
holds the magic, the format version and the graph document. numpy only.

The writer validates the document with the reader's own rules before writing (a file it
writes always loads), fills attribute defaults from the schema, and is deterministic: the same
graph and tensors give the same bytes (sorted JSON keys, tensors in name order, no timestamps
unless the caller puts one in the provenance). Every tensor starts at a file offset that is a
multiple of 64 bytes, so memory-mapped arrays are cache-line aligned; the gaps are filled by
reserved ``__onebit_pad*`` U8 tensors because safetensors forbids holes in the data section.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import tempfile
from typing import Any, Mapping

import numpy as np

from onebit._version import __version__
from onebit.errors import FormatError
from onebit.runtime import schema
from onebit.runtime.format import (
    ALIGNMENT,
    FORMAT_VERSION,
    KEY_FORMAT,
    KEY_GRAPH,
    KEY_VERSION,
    MAGIC,
    MAX_HEADER_BYTES,
    NAME_RE,
    PAD_PREFIX,
    graph_dtype_of,
    st_dtype_of,
    version_string,
)
from onebit.runtime.reader import validate_document
from onebit.runtime.schema import Value

__all__ = ["write_model", "make_provenance"]


def make_provenance(
    source: str | None = None, *, torch_version: str | None = None, date: str | None = None, **extra: str
) -> dict[str, str]:
    """Provenance strings for a file: onebit and numpy versions, ``source`` (e.g. the model class
    ``"onebit.models.quicknet.QuickNet"``), ``date`` (default: now, UTC ISO 8601) and the torch
    version if any, plus ``extra`` string fields."""
    prov = {"onebit": __version__, "numpy": np.__version__}
    prov["date"] = date or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    if source is not None:
        prov["source"] = str(source)
    if torch_version is not None:
        prov["torch"] = str(torch_version)
    prov.update({str(k): str(v) for k, v in extra.items()})
    return prov


def _plain(obj: Any, where: str) -> Any:
    """numpy scalars and tuples -> JSON types; anything not JSON-representable -> FormatError."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        if not np.isfinite(obj):
            raise FormatError(f"{where}: expected a finite number, got {obj}; use null for an unbounded clamp")
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if not all(isinstance(k, str) for k in obj):
            raise FormatError(f"{where}: expected string keys, got {sorted(map(repr, obj))[:5]}")
        return {k: _plain(v, f"{where}.{k}") for k, v in obj.items()}
    raise FormatError(f"{where}: expected JSON data (dict, list, str, number, bool, None), got {type(obj).__name__}")


def _complete(graph: dict) -> dict:
    """A copy of ``graph`` with each known op's missing attributes set to their defaults."""
    graph = copy.deepcopy(graph)
    ops = graph.get("ops")
    for op in ops if isinstance(ops, list) else []:
        if isinstance(op, dict):
            op.setdefault("attrs", {})
            sch = schema.OPS.get(op.get("type")) if isinstance(op.get("type"), str) else None
            if sch is not None and isinstance(op["attrs"], dict):
                op["attrs"] = schema.complete_attrs(sch, op["attrs"])
    if isinstance(graph, dict):
        graph.setdefault("tensors", {})
    return graph


def _arrays(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, arr in tensors.items():
        if not isinstance(name, str) or not NAME_RE.match(name) or name.startswith("__"):
            raise FormatError(f"tensor name: expected 1-256 characters [A-Za-z0-9_.:/-[]] not starting with '__', "
                              f"got {name!r}")
        if not isinstance(arr, np.ndarray):
            raise FormatError(f"tensor {name!r}: expected a numpy array, got {type(arr).__name__}")
        st_dtype_of(arr.dtype)  # raises for unsupported dtypes
        out[name] = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return out


def _layout(arrays: dict[str, np.ndarray]) -> tuple[dict[str, dict], list[tuple[int, np.ndarray | None]]]:
    """Header entries and the data section as (length, array or None = zero padding) chunks."""
    entries: dict[str, dict] = {}
    chunks: list[tuple[int, np.ndarray | None]] = []
    pos = 0
    for i, name in enumerate(sorted(arrays)):
        arr = arrays[name]
        gap = -pos % ALIGNMENT
        if gap and arr.nbytes:
            entries[f"{PAD_PREFIX}{i}"] = {"dtype": "U8", "shape": [gap], "data_offsets": [pos, pos + gap]}
            chunks.append((gap, None))
            pos += gap
        entries[name] = {"dtype": st_dtype_of(arr.dtype), "shape": list(arr.shape),
                         "data_offsets": [pos, pos + arr.nbytes]}
        chunks.append((arr.nbytes, arr))
        pos += arr.nbytes
    return entries, chunks


def write_model(
    path: str | os.PathLike | None,
    graph: dict[str, Any],
    tensors: Mapping[str, np.ndarray],
    *,
    provenance: Mapping[str, str] | None = None,
) -> bytes | None:
    """Write a ``.onebit`` file (docs/format.md) after validating it with the reader's rules.

    Args:
        path: destination (written atomically: a temporary file in the same folder, then
            ``os.replace``), or None to return the file's bytes.
        graph: ``{"inputs": [...], "outputs": [...], "ops": [...], "tensors": {...}}``; op
            attributes left out get the schema's defaults, op outputs left out of ``tensors``
            get their inferred dtype/shape.
        tensors: stored tensors (weights, multipliers, thresholds, ...) by name.
        provenance: string -> string, e.g. :func:`make_provenance`; default ``{"onebit": version}``
            (no date, so output bytes depend on the inputs only).
    Returns:
        The file's bytes when ``path`` is None, else None.
    Raises:
        FormatError: the graph or a tensor breaks a rule of the format (the message says which).
    """
    if not isinstance(graph, Mapping):
        raise FormatError(f"graph: expected a dict with 'inputs', 'outputs', 'ops' (and optionally 'tensors'), "
                          f"got {type(graph).__name__}")
    if not isinstance(tensors, Mapping):
        raise FormatError(f"tensors: expected a dict of name -> numpy array, got {type(tensors).__name__}")
    arrays = _arrays(tensors)
    stored = {name: Value(graph_dtype_of(st_dtype_of(a.dtype)), tuple(a.shape)) for name, a in arrays.items()}
    prov = {"onebit": __version__}
    prov.update(_plain(dict(provenance or {}), "provenance"))
    doc = {"version": version_string(FORMAT_VERSION), "graph": _complete(_plain(graph, "graph")), "provenance": prov}
    validate_document(doc, stored, "graph", declare_missing=True)

    entries, chunks = _layout(arrays)
    entries["__metadata__"] = {
        KEY_FORMAT: MAGIC,
        KEY_VERSION: version_string(FORMAT_VERSION),
        KEY_GRAPH: json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False),
    }
    header = json.dumps(entries, sort_keys=True, separators=(",", ":")).encode("utf-8")
    header += b" " * (-(8 + len(header)) % ALIGNMENT)  # data section starts on a 64-byte boundary
    if len(header) > MAX_HEADER_BYTES:
        raise FormatError(f"the header would be {len(header)} bytes, over the {MAX_HEADER_BYTES}-byte limit; "
                          "store large constants as tensors, not attributes")
    head = len(header).to_bytes(8, "little") + header

    if path is None:
        out = bytearray(head)
        for n, arr in chunks:
            out += bytes(n) if arr is None else arr.tobytes()
        return bytes(out)
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            for n, arr in chunks:
                f.write(bytes(n) if arr is None else memoryview(arr.reshape(-1).view(np.uint8)))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return None
