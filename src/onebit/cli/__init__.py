"""The ``onebit`` command. Every subcommand has ``--help``.

Each subcommand lives in its own module ``onebit.cli.<name>`` with a function
``register(subparsers)`` that adds its parser and sets ``func`` (called with the parsed
arguments, returns the exit status). Modules import heavy dependencies (torch) inside ``func``,
so ``onebit --help`` stays fast and works without torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand modules, in the order ``onebit --help`` lists them.
COMMANDS = (
    "info",
    "demo",
    "train_lm",
    "generate",
    "convert",
    "summary",
    "run",
    "bench",
    "profile",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onebit",
        description="Train, convert and run 1-bit and 1.58-bit neural networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"onebit.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; returns its exit status. Errors propagate (for
    callers and tests); the ``onebit`` executable goes through :func:`console_main`."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def console_main(argv: Sequence[str] | None = None) -> int:
    """The ``onebit`` executable: :func:`main`, but a bad input the subcommand refuses (an
    ``OnebitError`` such as a corrupt model file, or a missing file) prints
    ``onebit: error: MESSAGE`` on stderr and exits with 1 instead of a traceback. Usage errors
    exit with 2 (argparse)."""
    from onebit.errors import OnebitError

    try:
        return main(argv)
    except (OnebitError, FileNotFoundError) as e:
        print(f"onebit: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(console_main())
