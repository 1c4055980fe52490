"""Training utilities: atomic, exactly-resumable checkpoints and a time-budgeted train/eval loop."""

from __future__ import annotations

from onebit.train.checkpoint import (
    CheckpointError,
    atomic_write,
    capture_rng_state,
    load_checkpoint,
    make_state,
    restore_rng_state,
    restore_state,
    save_checkpoint,
)
from onebit.train.loop import (
    EpochStats,
    TrainingError,
    WarmupCosine,
    evaluate,
    train_epoch,
)

__all__ = [
    "CheckpointError",
    "atomic_write",
    "capture_rng_state",
    "load_checkpoint",
    "make_state",
    "restore_rng_state",
    "restore_state",
    "save_checkpoint",
    "EpochStats",
    "TrainingError",
    "WarmupCosine",
    "evaluate",
    "train_epoch",
]
