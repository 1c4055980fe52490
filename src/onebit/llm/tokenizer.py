"""Byte-level BPE tokenizer trained offline with Hugging Face ``tokenizers`` (tokenizer.json).

Byte-level BPE (GPT-2, Radford et al. 2019): text is UTF-8 encoded, each byte mapped to one of
256 printable symbols, then merged by learned pair merges. Every string round-trips exactly
(``decode(encode(s)) == s``) because the 256 byte symbols are always in the vocabulary; no
unknown token exists. The file format is the ``tokenizers`` library's ``tokenizer.json``, the one
Hugging Face checkpoints ship, so a trained tokenizer drops into an HF-layout checkpoint as is.

Needs the ``llm`` extra: ``pip install 'onebit[llm]'`` (the ``tokenizers`` package).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from onebit.errors import OnebitError

__all__ = ["Tokenizer", "EOS_TOKEN"]

EOS_TOKEN = "<|endoftext|>"


def _tokenizers():
    try:
        import tokenizers
    except ImportError as e:   # pragma: no cover - the llm extra is installed in dev
        raise OnebitError(
            "onebit.llm.tokenizer needs the Hugging Face 'tokenizers' package, which is not "
            "installed; install it with: pip install 'onebit[llm]'") from e
    return tokenizers


class Tokenizer:
    """Thin wrapper of a ``tokenizers.Tokenizer`` (byte-level BPE) with the calls a trainer needs.

    Build with :meth:`train` (from text) or :meth:`load` (a tokenizer.json); ``encode`` /
    ``decode`` / ``save``; ``vocab_size``; ``eos_token_id`` (the id of ``<|endoftext|>``, used
    to separate documents).
    """

    def __init__(self, backend):
        self.backend = backend

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2,
              special_tokens: Sequence[str] = (EOS_TOKEN,)) -> "Tokenizer":
        """Learn a byte-level BPE with ``vocab_size`` entries (256 bytes + specials + merges).

        Raises ValueError when ``vocab_size`` cannot hold the 256 byte symbols and specials.
        """
        tk = _tokenizers()
        need = 256 + len(special_tokens)
        if vocab_size < need:
            raise ValueError(f"vocab_size must be at least {need} (256 byte symbols + "
                             f"{len(special_tokens)} special tokens), got {vocab_size}")
        backend = tk.Tokenizer(tk.models.BPE())
        backend.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
            special_tokens=list(special_tokens),
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
        backend.train_from_iterator(texts, trainer=trainer)
        return cls(backend)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        """Read a ``tokenizer.json`` (ours or a Hugging Face checkpoint's)."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise OnebitError(f"tokenizer file {path} does not exist; train one with "
                              "Tokenizer.train(...).save(path) or point at a tokenizer.json")
        return cls(_tokenizers().Tokenizer.from_file(str(path)))

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``tokenizer.json`` (a folder gets ``folder/tokenizer.json``); returns the path."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        self.backend.save(str(tmp))
        os.replace(tmp, path)
        return path

    @property
    def vocab_size(self) -> int:
        """Number of token ids (including special tokens)."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def eos_token_id(self) -> int | None:
        """Id of ``<|endoftext|>``, or None when the vocabulary has no such token."""
        return self.backend.token_to_id(EOS_TOKEN)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of several texts (parallel inside ``tokenizers``)."""
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = False) -> str:
        """Text of ``ids``; exact inverse of :meth:`encode` for byte-level BPE."""
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
