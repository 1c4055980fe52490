"""Constants of the ``.onebit`` model file, declared once (docs/format.md is the specification).

A ``.onebit`` file is a valid safetensors file: ``u64 little-endian header length N``, ``N``
bytes of UTF-8 JSON (padded with spaces), then the tensor bytes. The JSON header's
``__metadata__`` (string -> string) holds the magic, the format version and the graph document.
"""

from __future__ import annotations

import re

import numpy as np

from onebit.errors import FormatError

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "KEY_FORMAT",
    "KEY_VERSION",
    "KEY_GRAPH",
    "ALIGNMENT",
    "MAX_HEADER_BYTES",
    "MAX_RANK",
    "MAX_DIM",
    "PAD_PREFIX",
    "ST_DTYPES",
    "GRAPH_DTYPES",
    "BITPACKED",
    "LAYOUTS",
    "NAME_RE",
    "SYMBOL_RE",
    "version_string",
    "parse_version",
    "graph_dtype_of",
    "st_dtype_of",
    "to_engine_shape",
    "to_user_shape",
]

MAGIC = "onebit"  # value of __metadata__["onebit.format"]
FORMAT_VERSION = (1, 0)  # (major, minor): a reader reads every minor of its major
KEY_FORMAT = "onebit.format"
KEY_VERSION = "onebit.version"
KEY_GRAPH = "onebit.graph"

ALIGNMENT = 64  # every tensor's first byte sits at a file offset that is a multiple of this
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit
MAX_RANK = 16
MAX_DIM = 2**53  # any dimension above this is hostile (and not exactly representable in JSON doubles)
PAD_PREFIX = "__onebit_pad"  # reserved tensor names: alignment filler bytes (safetensors forbids holes)

# safetensors dtype name -> little-endian numpy dtype. BF16 and F8_* have no numpy dtype.
ST_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}

# Graph-level dtype names (numpy names) of stored tensors, and the one virtual dtype:
# "bitpacked" values have a *logical* shape (..., C) and are stored as uint32 (..., ceil(C/32)),
# bits packed along the last axis (DESIGN.md "Bitpacking"; csrc/include/onebit/formats.h).
BITPACKED = "bitpacked"
_ST_TO_GRAPH = {k: v.name for k, v in ST_DTYPES.items()}
GRAPH_DTYPES = frozenset(_ST_TO_GRAPH.values()) | {BITPACKED}

# User-facing layouts of graph inputs/outputs -> permutation from the user's axes to the
# engine's (activations are channels-last inside the engine): engine = user.transpose(perm).
LAYOUTS: dict[str, tuple[int, ...]] = {
    "NCHW": (0, 2, 3, 1),  # images as PyTorch gives them; NHWC inside
    "NHWC": (0, 1, 2, 3),
    "NC": (0, 1),  # features / logits
    "NT": (0, 1),  # token ids (batch, tokens)
    "NTC": (0, 1, 2),  # per-token features / logits (batch, tokens, channels)
    "N": (0,),
}

NAME_RE = re.compile(r"^[A-Za-z0-9_.:/\-\[\]]{1,256}$")  # tensor, value and op names
SYMBOL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")  # symbolic dimensions ("batch", "T")


def version_string(version: tuple[int, int] = FORMAT_VERSION) -> str:
    """``(1, 0)`` -> ``"1.0"``."""
    return f"{version[0]}.{version[1]}"


def parse_version(text: object, where: str) -> tuple[int, int]:
    """``"MAJOR.MINOR"`` -> ``(major, minor)``; FormatError for anything else."""
    if isinstance(text, str) and re.fullmatch(r"[0-9]{1,6}\.[0-9]{1,6}", text):
        major, minor = text.split(".")
        return int(major), int(minor)
    raise FormatError(
        f"{where}: expected a format version string 'MAJOR.MINOR' (e.g. {version_string()!r}), "
        f"got {_short(text)}; the file is corrupt or was not written by onebit"
    )


def graph_dtype_of(st_dtype: str) -> str:
    """safetensors dtype name (``"F32"``) -> graph dtype name (``"float32"``)."""
    return _ST_TO_GRAPH[st_dtype]


def st_dtype_of(dtype: np.dtype) -> str:
    """numpy dtype -> safetensors dtype name; FormatError if it has none."""
    dtype = np.dtype(dtype)
    for name, st in ST_DTYPES.items():
        if st.kind == dtype.kind and st.itemsize == dtype.itemsize:
            return name
    raise FormatError(
        f"expected a tensor dtype in {sorted(v.name for v in ST_DTYPES.values())}, got {dtype}; "
        "cast the array (e.g. bfloat16 -> float32) before writing"
    )


def to_engine_shape(user_shape: tuple, layout: str) -> tuple:
    """Shape of a graph input in the engine's layout: ``user_shape`` permuted by ``LAYOUTS[layout]``."""
    return tuple(user_shape[p] for p in LAYOUTS[layout])


def to_user_shape(engine_shape: tuple, layout: str) -> tuple:
    """Inverse of :func:`to_engine_shape` (graph outputs)."""
    perm = LAYOUTS[layout]
    user = [None] * len(perm)
    for i, p in enumerate(perm):
        user[p] = engine_shape[i]
    return tuple(user)


def _short(value: object, limit: int = 80) -> str:
    """repr of a (possibly huge, hostile) value, cut for error messages."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's digit limit
        text = f"<{type(value).__name__} too large to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
