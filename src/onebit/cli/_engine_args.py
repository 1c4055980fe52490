"""Shared by ``onebit run``, ``onebit bench`` and ``onebit profile``: the model file argument,
thread counts, and the inputs (``.npy``/``.npz`` files, or seeded random data of the declared
shape with every symbolic dimension set by ``--batch``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from onebit.errors import OnebitError, ShapeError

__all__ = ["add_engine_args", "load_inputs"]


def add_engine_args(p: argparse.ArgumentParser, *, inputs_required: bool = False) -> None:
    p.add_argument("model", help="a .onebit file (onebit convert writes one)")
    p.add_argument("--input", "-i", action="append", default=[], metavar="FILE",
                   help="input array: a .npy file per graph input, in graph order, or one .npz "
                        "with an array per input name" + ("" if inputs_required else
                                                          "; default: random data of the declared shape"))
    p.add_argument("--batch", type=int, default=1,
                   help="value of the symbolic dimensions (e.g. 'batch') for random inputs (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")


def _random(io, batch: int, rng: np.random.Generator) -> np.ndarray:
    shape = tuple(batch if isinstance(d, str) else int(d) for d in io.shape)
    if io.dtype.kind == "f":
        return rng.standard_normal(shape).astype(io.dtype)
    if io.dtype.kind in "iu":
        return rng.integers(0, 2, shape).astype(io.dtype)   # valid ids / codes for any table
    raise OnebitError(f"cannot make random data for input {io.name!r} of dtype {io.dtype}; "
                      f"give it with --input FILE.npy")


def load_inputs(engine, files: list[str], batch: int, seed: int) -> list[np.ndarray]:
    """The arrays to feed ``engine`` (an Interpreter), from ``files`` or at random."""
    if batch < 1:
        raise ShapeError(f"--batch must be >= 1, got {batch}")
    specs = engine.inputs
    if not files:
        rng = np.random.default_rng(seed)
        return [_random(io, batch, rng) for io in specs]
    if len(files) == 1 and files[0].endswith(".npz"):
        with np.load(files[0], allow_pickle=False) as z:
            missing = [io.name for io in specs if io.name not in z.files]
            if missing:
                raise ShapeError(f"{files[0]}: expected arrays named {[io.name for io in specs]}, "
                                 f"found {z.files} (missing {missing})")
            return [z[io.name] for io in specs]
    if len(files) != len(specs):
        raise ShapeError(f"the model takes {len(specs)} input(s) {[io.name for io in specs]}, "
                         f"got {len(files)} --input file(s)")
    for f in files:
        if not Path(f).is_file():
            raise FileNotFoundError(f"input file {f!r} does not exist")
    return [np.load(f, allow_pickle=False) for f in files]
