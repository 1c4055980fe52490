"""Shared by the benchmarks: timing that is fair to both sides of a comparison."""

from __future__ import annotations

import time

import numpy as np


def interleaved_times(fns, min_reps: int = 10, budget_s: float = 0.4, rounds: int = 5) -> list[tuple[float, float, float]]:
    """(median, p10, p90) seconds of each function, timed in alternating blocks (A-block,
    B-block, A-block, ...) so that both see the same machine load. The first call of each
    block is not timed: PyTorch's OpenMP workers keep spinning on the other cores for a while
    after a parallel region (libgomp's default wait policy) and would slow the call right after
    it; our pool's workers block instead."""
    firsts = []
    for fn in fns:
        fn()
        t0 = time.perf_counter()
        fn()
        firsts.append(time.perf_counter() - t0)
    reps = int(max(min_reps, min(200, budget_s / max(sum(firsts), 1e-6))))
    per_block = max(2, -(-reps // rounds))
    ts: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            fn()  # settle (not timed)
            for _ in range(per_block):
                t0 = time.perf_counter()
                fn()
                ts[i].append(time.perf_counter() - t0)
    return [(float(np.median(t)), float(np.percentile(t, 10)), float(np.percentile(t, 90))) for t in ts]
