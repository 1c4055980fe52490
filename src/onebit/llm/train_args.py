"""Options of ``onebit train-lm`` (torch-free, so ``onebit --help`` does not import torch).

Used by :func:`onebit.llm.train.build_parser` and :mod:`onebit.cli.train_lm`; the meaning of
each option is in :func:`onebit.llm.train.run`.
"""

from __future__ import annotations

import argparse

from onebit.llm.config import preset_names

__all__ = ["DESCRIPTION", "add_arguments"]

DESCRIPTION = "Train a BitNet b1.58 language model (or its full-precision twin) on text."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``onebit train-lm`` options to ``p`` (shared by :func:`build_parser` and the CLI)."""
    p.add_argument("--corpus", action="append", default=None,
                   help="'web' (World English Bible), 'austen', or a text file/folder; "
                        "repeat to concatenate (default: web)")
    p.add_argument("--config", default="tiny-1m", choices=preset_names(),
                   help="model preset (default tiny-1m)")
    p.add_argument("--full-precision", action="store_true",
                   help="nn.Linear instead of BitLinear (the full-precision twin)")
    p.add_argument("--out", required=True, help="run folder (checkpoint, metrics, tokenizer)")
    p.add_argument("--data-dir", default=None,
                   help="tokenized corpus cache (default OUT/data; share it between twins)")
    p.add_argument("--vocab-size", type=int, default=None,
                   help="BPE vocabulary (default: the preset's)")
    p.add_argument("--tokenizer", default=None, help="use this tokenizer.json instead of training")
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--eval-batches", type=int, default=16)
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--hf-out", default=None,
                   help="also write the trained b1.58 model in the Hugging Face BitNet layout")
    p.add_argument("--onebit-out", default=None,
                   help="also write the trained b1.58 model as a .onebit file for `onebit generate` "
                        "(tokenizer.json next to it)")
    p.add_argument("--no-progress", action="store_true")
