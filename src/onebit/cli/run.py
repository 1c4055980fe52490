"""``onebit run``: run a ``.onebit`` model once in the engine (numpy only) and save or show its output."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from onebit.cli._engine_args import load_inputs
    from onebit.runtime import Interpreter

    engine = Interpreter(args.model, num_threads=args.threads)
    arrays = load_inputs(engine, args.input, args.batch, args.seed)
    result = engine.run(*arrays)
    outputs = result if isinstance(result, tuple) else (result,)
    names = [io.name for io in engine.outputs]
    for name, y in zip(names, outputs):
        print(f"{name}: {y.dtype} {list(y.shape)}")
        if y.ndim == 2 and y.dtype.kind == "f" and args.top_k > 0:
            k = min(args.top_k, y.shape[1])
            for i, row in enumerate(y[: args.show]):
                top = np.argsort(-row, kind="stable")[:k]
                print(f"  [{i}] top-{k}: " + ", ".join(f"{int(c)} ({row[c]:.4g})" for c in top))
    if args.output:
        if len(outputs) == 1 and args.output.endswith(".npy"):
            np.save(args.output, outputs[0])
        else:
            np.savez(args.output, **dict(zip(names, outputs)))
        print(f"wrote {args.output}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from onebit.cli._engine_args import add_engine_args

    p = sub.add_parser("run", help="run a .onebit model on inputs (numpy files or random)",
                       description="Load and validate a .onebit model, run it once in the engine on the "
                                   "given inputs (laid out as for the PyTorch model, e.g. NCHW float32) or on "
                                   "seeded random data, print each output's shape (and top classes for "
                                   "(N, classes) outputs) and optionally save the outputs.")
    add_engine_args(p)
    p.add_argument("--output", "-o", default=None,
                   help="save outputs: .npy for a single output, else .npz by output name")
    p.add_argument("--threads", type=int, default=1, help="engine threads (default 1)")
    p.add_argument("--top-k", type=int, default=5, help="classes to show per row (0: none)")
    p.add_argument("--show", type=int, default=4, help="rows to show")
    p.set_defaults(func=_run)
