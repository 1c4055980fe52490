"""``onebit info``: versions, the CPU's ISA paths and the kernel implementation in use."""

from __future__ import annotations

import platform
from typing import Any

from onebit._version import __version__


def info() -> dict[str, Any]:
    """Return a dict describing this installation (no torch import if torch is absent)."""
    from onebit import kernels

    try:
        import torch

        torch_version: str | None = torch.__version__
    except ImportError:
        torch_version = None
    import numpy as np

    return {
        "onebit": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch_version,
        "machine": platform.machine(),
        "supported_isas": kernels.supported_isas(),
        "active_isa": kernels.active_isa(),
        "kernels": kernels.kernel_table(),
    }


def format_info(d: dict[str, Any]) -> str:
    lines = [
        f"onebit   {d['onebit']}",
        f"python   {d['python']}   numpy {d['numpy']}   torch {d['torch'] or 'not installed'}",
        f"machine  {d['machine']}",
        f"ISA      supported: {', '.join(d['supported_isas'])}   in use: {d['active_isa']}"
        "   (force with ONEBIT_ISA=ref|avx2|avx512)",
        "kernels:",
    ]
    width = max((len(op) for op in d["kernels"]), default=0)
    lines += [f"  {op:<{width}}  {isa}" for op, isa in sorted(d["kernels"].items())]
    return "\n".join(lines)
