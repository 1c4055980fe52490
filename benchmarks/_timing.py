"""Shared by the benchmarks: timing that is fair to both sides of a comparison."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, ContextManager, Sequence

import numpy as np


def interleaved_times(fns, min_reps: int = 10, budget_s: float = 0.4, rounds: int = 5,
                      contexts: Sequence[Callable[[], ContextManager]] | None = None) -> list[tuple[float, float, float]]:
    """(median, p10, p90) seconds of each function, timed in alternating blocks (A-block,
    B-block, A-block, ...) so that both see the same machine load. Each block starts with a
    20 ms pause and one untimed call: the worker threads of the *other* side keep spinning for
    a while after its last call (PyTorch's OpenMP pool with libgomp's default wait policy; our
    pool for up to 1 ms) and would steal the second core from the first calls of the block
    (measured: a 30 us channel_affine at 2 threads timed 2x slower right after torch calls).
    ``contexts[i]()``, if given, is entered around every block of ``fns[i]`` (outside the
    timed calls), e.g. ``kernels.use_isa("avx2")`` to time one function under several ISAs."""
    contexts = contexts or [contextlib.nullcontext] * len(fns)
    firsts = []
    for fn, ctx in zip(fns, contexts):
        with ctx():
            fn()
            t0 = time.perf_counter()
            fn()
        firsts.append(time.perf_counter() - t0)
    reps = int(max(min_reps, min(200, budget_s / max(sum(firsts), 1e-6))))
    per_block = max(2, -(-reps // rounds))
    ts: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, (fn, ctx) in enumerate(zip(fns, contexts)):
            time.sleep(0.02)  # the other side's spinning workers go to sleep
            with ctx():
                fn()  # settle (not timed)
                for _ in range(per_block):
                    t0 = time.perf_counter()
                    fn()
                    ts[i].append(time.perf_counter() - t0)
    return [(float(np.median(t)), float(np.percentile(t, 10)), float(np.percentile(t, 90))) for t in ts]
