"""``onebit demo``: the end-to-end demo on CIFAR-10 (``onebit.demo``)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from onebit.demo import DemoConfig, run_demo

    run_demo(DemoConfig(data=args.data, minutes=args.minutes, out=args.out, seed=args.seed,
                        batch_size=args.batch_size, threads=args.threads))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=_run)
