"""Timing that is fair to both sides of a comparison (the demo's latency table, benchmarks/).

Functions are timed in alternating blocks (A-block, B-block, A-block, ...) so that all see the
same machine load. Each block starts with a 20 ms pause and one untimed call: the worker
threads of the *other* side keep spinning for a while after its last call (PyTorch's OpenMP
pool with libgomp's default wait policy; onebit's pool for up to 1 ms) and would steal the
second core from the first calls of the block (measured: a 30 us channel_affine at 2 threads
timed 2x slower right after torch calls; the demo's engine 1.9 ms per image right after
PyTorch calls, 1.0 ms in blocks).
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, ContextManager, Sequence

__all__ = ["interleaved_samples"]


def interleaved_samples(fns: Sequence[Callable[[], object]], per_block: int, rounds: int = 5,
                        contexts: Sequence[Callable[[], ContextManager]] | None = None) -> list[list[float]]:
    """Seconds of every timed call of each function: ``rounds`` blocks of ``per_block`` calls
    each, alternating between the functions. ``contexts[i]()``, if given, is entered around
    every block of ``fns[i]`` (outside the timed calls), e.g. ``kernels.use_isa("avx2")``."""
    contexts = contexts or [contextlib.nullcontext] * len(fns)
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
    return ts
