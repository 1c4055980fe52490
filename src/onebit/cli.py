"""The ``onebit`` command. Every subcommand has ``--help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_info(args: argparse.Namespace) -> int:
    import json

    from onebit.info import format_info, info

    d = info()
    print(json.dumps(d, indent=2) if args.json else format_info(d))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from onebit.demo import DemoConfig, run_demo

    run_demo(DemoConfig(data=args.data, minutes=args.minutes, out=args.out, seed=args.seed,
                        batch_size=args.batch_size, threads=args.threads))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onebit",
        description="Train, convert and run 1-bit and 1.58-bit neural networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="versions, supported ISA paths and the kernels in use",
                       description="Print onebit/torch versions, the ISA paths this CPU supports, "
                                   "the one in use (ONEBIT_ISA overrides) and each kernel's implementation.")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("demo", help="train a small binary network on CIFAR-10 and report it",
                       description="Train a small binary CNN built from onebit.nn layers on CIFAR-10 "
                                   "for a time budget, then print its summary and test accuracy.")
    p.add_argument("--data", default=None,
                   help="CIFAR-10 location: a cifar10.npz file, or a folder with cifar10.npz or the "
                        "python batches (cifar-10-batches-py); default: ../shared/data/cifar10 or $ONEBIT_CIFAR10")
    p.add_argument("--minutes", type=float, default=2.0, help="training time budget (default 2)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/demo", help="folder for the report and checkpoint")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
