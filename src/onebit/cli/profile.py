"""``onebit profile``: per-op time and share of a ``.onebit`` model in the engine (LCE Table 4)."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    import json

    from onebit.cli._engine_args import load_inputs
    from onebit.runtime import Interpreter

    engine = Interpreter(args.model, num_threads=args.threads)
    arrays = load_inputs(engine, args.input, args.batch, args.seed)
    prof = engine.profile(*arrays, runs=args.runs, warmup=args.warmup)
    print(prof.table(limit=args.limit))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(prof.as_dict(), f, indent=2)
        print(f"wrote {args.json}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from onebit.cli._engine_args import add_engine_args

    p = sub.add_parser("profile", help="per-op time and share of a .onebit model in the engine",
                       description="Run a .onebit model --runs times and print each op's median time and "
                                   "share, slowest first, then the totals per op type.")
    add_engine_args(p)
    p.add_argument("--threads", type=int, default=1, help="engine threads (default 1)")
    p.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    p.add_argument("--limit", type=int, default=None, help="show only the N slowest ops")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the profile as JSON")
    p.set_defaults(func=_run)
