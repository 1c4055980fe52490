"""Training checkpoints: atomic writes, exact resume.

A checkpoint is training state (model + optimizer + scheduler + position + RNG states), not a
model file for deployment (those are written by ``onebit.converter``). It is written with
``torch.save`` and read back with ``torch.load(weights_only=True)``: every value is a tensor or a
plain Python type (RNG states included), so loading never unpickles arbitrary objects.

Atomicity: the bytes go to a temporary file in the destination folder, are fsync'ed, and the
file is renamed over the destination with ``os.replace`` (atomic on POSIX and Windows). A crash
or an exception at any point leaves either the old checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from onebit.errors import OnebitError

__all__ = [
    "CheckpointError",
    "FORMAT",
    "atomic_write",
    "capture_rng_state",
    "restore_rng_state",
    "make_state",
    "restore_state",
    "save_checkpoint",
    "load_checkpoint",
]

FORMAT = "onebit.train.checkpoint/1"


class CheckpointError(OnebitError, ValueError):
    """A checkpoint file is missing, unreadable, or not an onebit training checkpoint."""


def capture_rng_state() -> dict[str, Any]:
    """The torch, numpy (global) and Python ``random`` generator states as tensors / plain types."""
    np_state = np.random.get_state()   # ("MT19937", uint32[624], pos, has_gauss, cached_gaussian)
    py_version, py_internal, py_gauss = random.getstate()   # (3, tuple of 625 ints, float|None)
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"key": str(np_state[0]), "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_version),
                   "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss_next": py_gauss},
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put back the generator states saved by ``capture_rng_state``."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["key"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))


def make_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
               scheduler: Any | None = None, *, epoch: int = 0, step: int = 0,
               loader: Any | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Collect everything an exact resume needs into one dict for ``save_checkpoint``.

    ``loader`` is anything with ``state_dict()`` (e.g. ``onebit.data.ArrayLoader``); ``extra``
    holds plain values (config, metrics) stored as is.
    """
    return {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "loader": loader.state_dict() if loader is not None else None,
        "epoch": int(epoch),
        "step": int(step),
        "rng": capture_rng_state(),
        "extra": dict(extra) if extra is not None else {},
    }


def restore_state(state: Mapping[str, Any], model: torch.nn.Module,
                  optimizer: torch.optim.Optimizer | None = None, scheduler: Any | None = None,
                  *, loader: Any | None = None, restore_rng: bool = True) -> dict[str, Any]:
    """Load ``state`` (from ``load_checkpoint``) into the objects given; returns ``{"epoch", "step"}``.

    Raises CheckpointError when an object is passed but the checkpoint has no state for it.
    """
    model.load_state_dict(state["model"])
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("loader", loader)):
        if obj is None:
            continue
        if state.get(name) is None:
            raise CheckpointError(f"checkpoint has no {name} state but a {name} was passed to "
                                  f"restore_state; pass {name}=None or save it with make_state")
        obj.load_state_dict(state[name])
    if restore_rng:
        restore_rng_state(state["rng"])
    return {"epoch": int(state["epoch"]), "step": int(state["step"])}


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Create or replace ``path`` atomically with the bytes ``write(f)`` puts in a binary file.

    The bytes go to ``.<name>.<random>.tmp`` in the same folder (created with mode 0o666 minus
    the umask, like ``open``), are fsync'ed, and the temp file is renamed over ``path`` with
    ``os.replace``; on any exception (KeyboardInterrupt included) the temp file is removed and
    ``path`` is untouched. Creates the parent folder if needed. Returns the final path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically with ``torch.save`` (see ``atomic_write``).

    ``state`` is usually built by ``make_state``; any dict of tensors and plain values works (a
    ``"format"`` key is added so ``load_checkpoint`` recognises the file). Returns the final path.
    """
    payload = {"format": FORMAT, **state}
    return atomic_write(path, lambda f: torch.save(payload, f))


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` with ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; expected a file written by "
                              f"save_checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"could not read checkpoint {path} with weights_only=True ({e}); "
                              f"expected a file written by onebit.train.save_checkpoint") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: expected an onebit training checkpoint (format "
                              f"{FORMAT!r}), found {found!r}")
    return state
