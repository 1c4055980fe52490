"""``onebit summary``: per-layer parameters by precision, packed memory and MACs of a registered model."""

from __future__ import annotations

import argparse

from onebit.cli._model_args import add_model_args, build_model


def _run(args: argparse.Namespace) -> int:
    import json

    import torch

    from onebit.model_summary import summary

    torch.set_num_threads(1)
    model, size = build_model(args)
    s = summary(model, size[1:], print_fn=None)
    print(json.dumps(s.to_dict(), indent=2) if args.json else str(s))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="per-layer parameters, memory and MACs of a registered model",
                       description="Larq-style summary: parameters by precision (binary / ternary / float), "
                                   "packed memory, binary and float MACs, OPs (BNext convention).")
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=_run)
