"""``onebit info``: versions, ISA paths and the kernel implementation in use."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    import json

    from onebit.info import format_info, info

    d = info()
    print(json.dumps(d, indent=2) if args.json else format_info(d))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="versions, supported ISA paths and the kernels in use",
                       description="Print onebit/torch versions, the ISA paths this CPU supports, "
                                   "the one in use (ONEBIT_ISA overrides) and each kernel's implementation.")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_run)
