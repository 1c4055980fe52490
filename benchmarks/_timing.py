"""Shared by the benchmarks: timing that is fair to both sides of a comparison
(onebit.timing.interleaved_samples: alternating blocks, each after a pause)."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, ContextManager, Sequence

import numpy as np

from onebit.timing import interleaved_samples


def interleaved_times(
    fns, min_reps: int = 10, budget_s: float = 0.4, rounds: int = 5,
    contexts: Sequence[Callable[[], ContextManager]] | None = None,
) -> list[tuple[float, float, float]]:
    """(median, p10, p90) seconds of each function over about ``budget_s`` of calls (at least
    ``min_reps``, at most 200), timed by ``onebit.timing.interleaved_samples`` (``contexts``
    as there)."""
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
    ts = interleaved_samples(fns, per_block, rounds, contexts)
    return [(float(np.median(t)), float(np.percentile(t, 10)), float(np.percentile(t, 90))) for t in ts]
