"""Per-op profile of an interpreter run (what LCE Table 4 reports for QuickNet): each op's median
time over repeated runs and its share of the total, sorted, and the same grouped by op type."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OpTiming", "TypeTiming", "Profile"]


@dataclass(frozen=True)
class OpTiming:
    """One op: its name, type and median time in milliseconds."""

    name: str
    type: str
    ms: float


@dataclass(frozen=True)
class TypeTiming:
    """All ops of one type: how many, their summed median time (ms) and share (%)."""

    type: str
    count: int
    ms: float
    share: float


@dataclass
class Profile:
    """Result of :meth:`onebit.runtime.Interpreter.profile`.

    Attributes:
        ops: per op, in graph order.
        total_ms: median wall time of a whole run (includes the interpreter's own overhead).
        runs: timed runs; num_threads: threads the kernels used.
    """

    ops: list[OpTiming]
    total_ms: float
    runs: int
    num_threads: int

    @property
    def op_ms(self) -> float:
        """Sum of the ops' median times (the denominator of the shares)."""
        return sum(o.ms for o in self.ops)

    def share(self, op: OpTiming) -> float:
        """Share of ``op`` in percent of :attr:`op_ms`."""
        total = self.op_ms
        return 100.0 * op.ms / total if total > 0 else 0.0

    def sorted(self) -> list[OpTiming]:
        """Ops from slowest to fastest."""
        return sorted(self.ops, key=lambda o: -o.ms)

    def by_type(self) -> list[TypeTiming]:
        """Ops grouped by type, slowest type first."""
        acc: dict[str, list] = {}
        for o in self.ops:
            entry = acc.setdefault(o.type, [0, 0.0])
            entry[0] += 1
            entry[1] += o.ms
        total = self.op_ms
        rows = [TypeTiming(t, c, ms, 100.0 * ms / total if total > 0 else 0.0) for t, (c, ms) in acc.items()]
        return sorted(rows, key=lambda r: -r.ms)

    def as_dict(self) -> dict:
        """JSON-ready data: ops (graph order, with shares), by type, totals."""
        return {
            "total_ms": self.total_ms,
            "op_ms": self.op_ms,
            "runs": self.runs,
            "num_threads": self.num_threads,
            "ops": [{"name": o.name, "type": o.type, "ms": o.ms, "share": self.share(o)} for o in self.ops],
            "by_type": [{"type": t.type, "count": t.count, "ms": t.ms, "share": t.share} for t in self.by_type()],
        }

    def table(self, limit: int | None = None) -> str:
        """Text table: ops sorted by time (name, type, ms, %), then the per-type summary."""
        rows = self.sorted()[:limit] if limit else self.sorted()
        w = max([len(o.name) for o in rows] + [4])
        tw = max([len(o.type) for o in self.ops] + [4])
        lines = [f"{'op':<{w}}  {'type':<{tw}}  {'ms':>9}  {'share':>6}"]
        lines += [f"{o.name:<{w}}  {o.type:<{tw}}  {o.ms:9.3f}  {self.share(o):5.1f}%" for o in rows]
        lines += ["", f"{'type':<{tw}}  {'count':>5}  {'ms':>9}  {'share':>6}"]
        lines += [f"{t.type:<{tw}}  {t.count:>5}  {t.ms:9.3f}  {t.share:5.1f}%" for t in self.by_type()]
        lines += ["", f"sum of ops {self.op_ms:.3f} ms; whole run {self.total_ms:.3f} ms "
                      f"(median of {self.runs}, {self.num_threads} thread(s))"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
