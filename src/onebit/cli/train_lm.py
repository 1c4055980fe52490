"""``onebit train-lm``: train a BitNet b1.58 language model or its full-precision twin
(:func:`onebit.llm.train.run`)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from onebit.llm.train import run

    run(args)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train-lm`` subcommand (options: :func:`onebit.llm.train_args.add_arguments`)."""
    from onebit.llm.train_args import DESCRIPTION, add_arguments

    p = sub.add_parser("train-lm", help="train a BitNet b1.58 LM (or its full-precision twin) on text",
                       description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=_run)
