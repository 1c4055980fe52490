"""``onebit bench``: latency of a ``.onebit`` model in the engine, median and min over N runs."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    import json
    import time

    import numpy as np

    from onebit.cli._engine_args import load_inputs
    from onebit.kernels import active_isa
    from onebit.runtime import Interpreter

    rows = []
    print(f"{args.model}: batch {args.batch}, {args.runs} runs after {args.warmup} warm-up, ISA {active_isa()}")
    print(f"{'threads':>7} {'median ms':>10} {'min ms':>9} {'p90 ms':>9} {'items/s':>9}")
    for t in args.threads:
        engine = Interpreter(args.model, num_threads=t)
        arrays = load_inputs(engine, args.input, args.batch, args.seed)
        for _ in range(args.warmup):
            engine.run(*arrays)
        ts = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            engine.run(*arrays)
            ts.append((time.perf_counter() - t0) * 1e3)
        med = float(np.median(ts))
        row = {"threads": t, "median_ms": med, "min_ms": float(np.min(ts)),
               "p90_ms": float(np.percentile(ts, 90)), "items_per_s": args.batch * 1e3 / med}
        rows.append(row)
        print(f"{t:>7} {med:10.3f} {row['min_ms']:9.3f} {row['p90_ms']:9.3f} {row['items_per_s']:9.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "batch": args.batch, "runs": args.runs, "isa": active_isa(),
                       "rows": rows}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from onebit.cli._engine_args import add_engine_args

    p = sub.add_parser("bench", help="latency of a .onebit model (median/min over N runs, per thread count)",
                       description="Time a .onebit model in the engine: median, min and 90th percentile "
                                   "latency over --runs runs for each thread count (default 1 and 2).")
    add_engine_args(p)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    p.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=_run)
