"""Minimal reader of R's serialization format and lazy-load databases (for janeaustenr's text).

Debian's ``r-cran-janeaustenr`` ships the novels as character vectors inside an R lazy-load
database: ``data/Rdata.rdx`` (gzip'ed serialized index: ``variables`` = name -> c(offset,
length) into ``Rdata.rdb``, plus ``compressed``) and ``data/Rdata.rdb`` (per object: 4-byte
big-endian uncompressed length, then a zlib stream -- or, when ``compressed`` is 2/3, a type
byte ``'Z'``/``'2'``/``'X'``/``'0'`` and a zlib/bzip2/xz/raw stream -- of one serialized
object). Serialized objects use the XDR format of "R Internals", section 1.8 ("Serialization
formats"): header ``X\\n``, version ints, then items ``flags = type | is_obj<<8 | has_attr<<9 |
has_tag<<10 | levels<<12`` followed by their payload.

Only what data packages use is implemented (vectors, strings, pairlists, symbols, references,
ALTREP compact sequences); anything else raises DatasetError saying which type was met.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from pathlib import Path
from typing import Any

from onebit.errors import DatasetError

__all__ = ["read_lazyload_db", "unserialize"]

_NIL, _REF, _PERSIST, _NAMESPACE, _PACKAGE, _ALTREP = 254, 255, 247, 249, 248, 238
_SPECIAL = {253, 252, 251, 250, 242, 241, 246, 245}   # global/base/empty env, markers
_PAIRLIST_TYPES = {2, 3, 5, 6, 17, 239, 240}          # LISTSXP, CLOSXP, PROMSXP, LANGSXP, DOTSXP


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos, self.refs = data, 0, []

    def int(self) -> int:
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return v

    def take(self, n: int) -> bytes:
        b = self.data[self.pos:self.pos + n]
        if len(b) != n:
            raise DatasetError(f"R serialized data truncated: needed {n} bytes at {self.pos}, "
                               f"found {len(b)}; the package files may be corrupt, re-extract them")
        self.pos += n
        return b

    def length(self) -> int:
        n = self.int()
        if n == -1:
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def strings(self) -> list[str | None]:
        self.int()   # always 0
        return [self.item() for _ in range(self.int())]

    def item(self) -> Any:
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == _NIL or kind in _SPECIAL:
            return None
        if kind == _REF:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind in (_PERSIST, _NAMESPACE, _PACKAGE):
            value = self.strings()
            self.refs.append(value)
            return value
        if kind == 1:    # SYMSXP
            value = ("symbol", self.item())
            self.refs.append(value)
            return value
        if kind == 4:    # ENVSXP
            env: dict[str, Any] = {}
            self.refs.append(env)
            self.int()
            env.update(enclos=self.item(), frame=self.item(), hashtab=self.item(),
                       attrib=self.item())
            return env
        if kind in _PAIRLIST_TYPES:
            attrib = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item()
            cdr = self.item()
            rest = cdr if isinstance(cdr, list) else ([] if cdr is None else [(None, cdr)])
            del attrib
            return [(tag, car)] + rest
        if kind == 9:    # CHARSXP
            n = self.int()
            return None if n == -1 else self.take(n).decode("utf-8", errors="replace")
        if kind in (10, 13):   # LGLSXP, INTSXP
            n = self.length()
            value = list(struct.unpack(f">{n}i", self.take(4 * n)))
        elif kind == 14:   # REALSXP
            n = self.length()
            value = list(struct.unpack(f">{n}d", self.take(8 * n)))
        elif kind == 16:   # STRSXP
            value = [self.item() for _ in range(self.length())]
        elif kind in (19, 20):   # VECSXP, EXPRSXP
            value = [self.item() for _ in range(self.length())]
        elif kind == 24:   # RAWSXP
            value = self.take(self.length())
        elif kind == _ALTREP:
            self.item()               # class info
            value = self.item()       # state (e.g. compact sequence parameters)
            self.item()               # attributes
            return value
        else:
            raise DatasetError(f"R serialized type {kind} is not supported by onebit's reader "
                               "(expected vectors, strings, lists); convert the data to plain "
                               "text and pass the file instead")
        if has_attr:
            attrs = self.item()
            names = dict(attrs).get(("symbol", "names")) if isinstance(attrs, list) else None
            if names is not None and kind in (19, 20):
                return dict(zip(names, value))
        return value


def unserialize(data: bytes) -> Any:
    """Decode one object in R's XDR serialization format (``X\\n`` header, version 2 or 3).

    Character vectors -> ``list[str | None]``; numeric -> ``list``; named lists -> ``dict``.
    """
    if data[:2] != b"X\n":
        raise DatasetError(f"expected R XDR serialization (header b'X\\n'), found {data[:2]!r}")
    r = _Reader(data)
    r.pos = 2
    version = r.int()
    r.int(), r.int()
    if version == 3:
        r.take(r.int())   # native encoding name
    elif version != 2:
        raise DatasetError(f"R serialization version {version} not supported (expected 2 or 3)")
    return r.item()


def read_lazyload_db(folder: str | Path, stem: str = "Rdata") -> dict[str, Any]:
    """Every variable of the lazy-load database ``folder/stem.{rdx,rdb}`` as Python values."""
    folder = Path(folder)
    rdx, rdb = folder / f"{stem}.rdx", folder / f"{stem}.rdb"
    for p in (rdx, rdb):
        if not p.is_file():
            raise DatasetError(f"R lazy-load database file {p} is missing")
    index = unserialize(gzip.decompress(rdx.read_bytes()))
    if not isinstance(index, dict) or "variables" not in index:
        raise DatasetError(f"{rdx}: expected an index with 'variables', found "
                           f"{type(index).__name__}")
    compressed = (index.get("compressed") or [1])[0]
    blob = rdb.read_bytes()
    out = {}
    for name, (offset, length) in index["variables"].items():
        raw = blob[offset:offset + length]
        body = raw[4:]
        if compressed in (2, 3):
            kind, body = body[:1], body[1:]
            decode = {b"Z": zlib.decompress, b"2": bz2.decompress, b"X": lzma.decompress,
                      b"0": bytes}[kind]
        else:
            decode = zlib.decompress
        out[name] = unserialize(decode(body))
    return out
