"""``onebit demo``: the whole pipeline on CIFAR-10 in a few minutes on a laptop-class CPU.

Train a QuickNet (``fit``), convert it to ``.onebit`` and run it in the numpy-only engine
(``deploy``), and write ``runs/demo/report.md`` with plots (``report``); ``run_demo`` ties
them together.
"""

from onebit.demo.config import DEMO_MODEL, DEMO_MODEL_KWARGS, DemoConfig
from onebit.demo.run import run_demo

__all__ = ["DemoConfig", "run_demo", "DEMO_MODEL", "DEMO_MODEL_KWARGS"]
