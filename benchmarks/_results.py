"""Shared by the benchmarks: merge one benchmark's results into a JSON file of sections.

Several benchmarks report into one file (``bench_binary.py`` and ``bench_ternary.py`` both
write ``results/kernels.json``, under ``"binary"`` and ``"ternary"``); each run replaces only
its own section, so the file always holds the latest run of every benchmark. The file is
replaced atomically (temp file + rename): an interrupted run never leaves half a JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_section(path: Path, section: str, data: Any) -> Path:
    """Set ``path[section] = data`` (other sections kept) and write ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {}
    if path.exists():
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError:
            doc = {}  # an unreadable old file is replaced, not fatal for a new measurement
    doc[section] = data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    return path
