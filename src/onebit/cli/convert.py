"""``onebit convert``: a registered model (optionally with trained weights) -> a ``.onebit`` file."""

from __future__ import annotations

import argparse

from onebit.cli._model_args import add_model_args, build_model


def _run(args: argparse.Namespace) -> int:
    import torch

    from onebit.converter.pipeline import convert
    from onebit.runtime import load_model

    torch.set_num_threads(1)
    model, size = build_model(args)
    example = torch.randn(size, generator=torch.Generator().manual_seed(0))
    data = convert(model, example, args.output, optimize=not args.no_optimize, source=f"onebit.models.{args.model}")
    print(f"wrote {args.output}: {len(data):,} bytes ({args.model}, input {list(size)})")
    if args.verbose:
        counts: dict[str, int] = {}
        for op in load_model(data).graph["ops"]:
            counts[op["type"]] = counts.get(op["type"], 0) + 1
        print("ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a registered model to a .onebit file",
                       description="Convert a model of onebit.models (with --checkpoint weights) to a .onebit "
                                   "file: BatchNorm folded, activations fused, binary weights bitpacked.")
    add_model_args(p)
    p.add_argument("-o", "--output", required=True, help="the .onebit file to write")
    p.add_argument("--no-optimize", action="store_true", help="skip the graph passes (op for op; debugging)")
    p.add_argument("-v", "--verbose", action="store_true", help="print the op counts of the converted graph")
    p.set_defaults(func=_run)
