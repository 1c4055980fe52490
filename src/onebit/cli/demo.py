"""``onebit demo``: the end-to-end demo on CIFAR-10 (``onebit.demo``)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from onebit.demo import DemoConfig, run_demo

    run_demo(DemoConfig(data=args.data, minutes=args.minutes, out=args.out, seed=args.seed,
                        batch_size=args.batch_size, threads=args.threads, max_train=args.max_train,
                        max_test=args.max_test, latency_runs=args.latency_runs,
                        progress=not args.no_progress))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train, convert and run a binary QuickNet on CIFAR-10, with a report",
                       description="Train a CIFAR-10 QuickNet for a time budget, convert it to .onebit, "
                                   "evaluate PyTorch and the engine on the test set, time both (1 and 2 "
                                   "threads), profile the engine and write OUT/report.md with plots.")
    p.add_argument("--data", default=None,
                   help="CIFAR-10 location: a cifar10.npz file, or a folder with cifar10.npz or the "
                        "python batches (cifar-10-batches-py); default: ../shared/data/cifar10 or $ONEBIT_CIFAR10")
    p.add_argument("--minutes", type=float, default=4.0, help="training time budget (default 4)")
    p.add_argument("--max-train", type=int, default=None, help="train on a random subset of this many images")
    p.add_argument("--max-test", type=int, default=None, help="evaluate on a random subset of this many images")
    p.add_argument("--latency-runs", type=int, default=50, help="timed runs per latency figure (median)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/demo", help="folder for the report and checkpoint")
    p.set_defaults(func=_run)
