"""``DemoConfig``: the settings of ``onebit demo`` (one dataclass, validated on creation)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DemoConfig", "DEMO_MODEL", "DEMO_MODEL_KWARGS"]

# QuickNet Small's layout (LCE Table 3: 4 sections of 4 binary 3x3 residual blocks, one-padding,
# anti-aliased max-pool transitions with a 1x1 float conv) at half its widths, behind a stem that
# halves the 32x32 image once: 4.4x fewer binary MACs than ``quicknet_small_cifar``, so that a
# few minutes on 2 CPU cores see about one pass over CIFAR-10 (measured: ~220 vs ~80 img/s).
DEMO_MODEL = "quicknet_small_cifar"
DEMO_MODEL_KWARGS: dict[str, Any] = {"stem_strides": (1, 2), "section_filters": (32, 64, 128, 256)}


@dataclass
class DemoConfig:
    """Settings of ``run_demo`` (the ``onebit demo`` flags).

    ``data``: CIFAR-10 location (see ``onebit.data.load_cifar10``; None searches the defaults).
    ``minutes``: training time budget (evaluation, conversion and timing come on top).
    ``out``: folder for ``report.md``, ``report.json``, the plots, ``checkpoint.pt``,
    ``model.onebit`` and ``model_fp32.safetensors``. ``threads``: torch threads for training
    (None: every core). ``max_train`` / ``max_test``: train / evaluate on a seeded random subset
    of that many images (None: all of them). ``lr``: peak AdamW learning rate. ``augment_after``:
    random crop + flip from this epoch on (0-based; 0 = always): the first pass sees clean
    images, since until images repeat there is nothing to regularise. ``model`` /
    ``model_kwargs``: a registered ``onebit.models`` name and its overrides.
    ``latency_runs``: timed single-image runs per engine / PyTorch setting (median reported).
    ``progress``: show progress bars.
    """

    data: str | os.PathLike | None = None
    minutes: float = 4.0
    out: str | os.PathLike = "runs/demo"
    seed: int = 0
    batch_size: int = 128
    threads: int | None = None
    max_train: int | None = None
    max_test: int | None = None
    lr: float = 5e-3
    augment_after: int = 1
    model: str = DEMO_MODEL
    model_kwargs: dict[str, Any] = field(default_factory=lambda: dict(DEMO_MODEL_KWARGS))
    latency_runs: int = 50
    progress: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.minutes, (int, float)) and math.isfinite(self.minutes)
                and self.minutes > 0):
            raise ValueError(f"DemoConfig.minutes must be a positive number, got {self.minutes!r}")
        if int(self.batch_size) < 2:
            raise ValueError(f"DemoConfig.batch_size must be >= 2 (BatchNorm needs two images), "
                             f"got {self.batch_size}")
        if int(self.augment_after) < 0:
            raise ValueError(f"DemoConfig.augment_after must be >= 0, got {self.augment_after}")
        for name in ("threads", "max_train", "max_test"):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise ValueError(f"DemoConfig.{name} must be None or >= 1, got {v}")
        if not self.lr > 0:
            raise ValueError(f"DemoConfig.lr must be > 0, got {self.lr}")
        if int(self.latency_runs) < 1:
            raise ValueError(f"DemoConfig.latency_runs must be >= 1, got {self.latency_runs}")
