"""onebit.timing.interleaved_samples: block structure, call counts, contexts around blocks."""

from __future__ import annotations

import contextlib

from onebit.timing import interleaved_samples


def test_blocks_alternate_and_contexts_wrap_each_block():
    log: list[str] = []

    def ctx(name):
        @contextlib.contextmanager
        def cm():
            log.append(f"enter {name}")
            yield
            log.append(f"exit {name}")
        return cm

    samples = interleaved_samples([lambda: log.append("a"), lambda: log.append("b")], per_block=3, rounds=2,
                                  contexts=[ctx("A"), ctx("B")])
    assert [len(s) for s in samples] == [6, 6]
    assert all(t >= 0 for s in samples for t in s)
    block_a = ["enter A"] + ["a"] * 4 + ["exit A"]  # one untimed settle call, then 3 timed
    block_b = ["enter B"] + ["b"] * 4 + ["exit B"]
    assert log == (block_a + block_b) * 2
