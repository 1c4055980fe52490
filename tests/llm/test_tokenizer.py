"""Byte-level BPE tokenizer: exact round trips, save/load, piecewise encoding."""

from __future__ import annotations

import numpy as np
import pytest

from onebit.llm.data import encode_text
from onebit.llm.tokenizer import EOS_TOKEN, Tokenizer

TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife.\n\nHowever little known the feelings or views of such "
    "a man may be on his first entering a neighbourhood, this truth is so well fixed in the "
    "minds of the surrounding families, that he is considered the rightful property of some "
    "one or other of their daughters.\n") * 20


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train([TEXT], vocab_size=320)


@pytest.mark.parametrize("s", [
    "",
    "a",
    "Hello, world!",
    "  leading and trailing spaces  ",
    "tabs\tand\nnew\n\nlines\r\n",
    "unicode: café, naïve, Straße, 日本語, emoji 😀👍🏽",
    "numbers 12345 67.89e-3 and symbols #$%^&*()[]{}<>",
    TEXT[:500],
])
def test_round_trip_is_exact(tok, s):
    ids = tok.encode(s)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == s


def test_merges_compress_training_text(tok):
    ids = tok.encode(TEXT)
    assert tok.vocab_size == 320
    assert len(ids) < 0.6 * len(TEXT.encode())           # 63 merges already save > 40 %
    assert tok.eos_token_id is not None
    assert tok.decode([tok.eos_token_id]) == EOS_TOKEN
    assert tok.decode([tok.eos_token_id], skip_special_tokens=True) == ""


def test_save_load_same_ids(tok, tmp_path):
    path = tok.save(tmp_path / "tokenizer.json")
    assert path.name == "tokenizer.json" and path.is_file()
    again = Tokenizer.load(tmp_path)                        # folder works too
    s = "The minds of the surrounding families 😀"
    assert again.encode(s) == tok.encode(s)
    assert again.vocab_size == tok.vocab_size


def test_piecewise_encoding_equals_whole(tok):
    text = TEXT[:3000] + "  double  spaces\n\n\nand   runs   "
    whole = tok.encode(text)
    for piece_chars in (1, 7, 64, 1000):
        arr = encode_text(tok, text, piece_chars=piece_chars)
        assert arr.dtype == np.uint16
        assert arr.tolist() == whole


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="at least 257"):
        Tokenizer.train(["abc"], vocab_size=100)
    with pytest.raises(Exception, match="does not exist"):
        Tokenizer.load(tmp_path / "missing.json")
