"""Checkpoints: a failed write leaves the previous file intact and no debris; everything loads
with weights_only=True; resuming reproduces an uninterrupted run bit for bit."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from onebit.data import ArrayLoader
from onebit.train import (
    CheckpointError,
    WarmupCosine,
    capture_rng_state,
    load_checkpoint,
    make_state,
    restore_rng_state,
    restore_state,
    save_checkpoint,
    train_epoch,
)
from onebit.train import checkpoint as ckpt


def tiny_model() -> nn.Module:
    # Dropout draws from the global torch RNG, so an exact resume needs the RNG state too.
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Dropout(0.2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


@pytest.fixture
def tiny_data(rng):
    return rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), rng.integers(0, 10, 20)


def build(seed: int, data, total_steps: int):
    torch.manual_seed(seed)
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(total_steps, warmup_steps=2))
    loader = ArrayLoader(*data, batch_size=6, augment=True, seed=11)   # 4 batches per epoch
    return model, opt, sched, loader


def train_steps(model, opt, sched, loader, n: int) -> None:
    done = 0
    while done < n:
        done += train_epoch(model, loader, opt, scheduler=sched, max_steps=n - done,
                            progress=False).steps


def test_rng_state_roundtrip():
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    np.random.standard_normal()            # leaves a cached Gaussian in numpy's state
    random.gauss(0, 1)                     # and in Python's
    state = capture_rng_state()
    first = (torch.rand(5), np.random.standard_normal(5), [random.gauss(0, 1) for _ in range(5)])
    restore_rng_state(state)
    again = (torch.rand(5), np.random.standard_normal(5), [random.gauss(0, 1) for _ in range(5)])
    assert torch.equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert first[2] == again[2]


def test_resume_is_exact(tmp_path, tiny_data):
    total, cut = 11, 6      # the cut falls inside the second epoch
    ref_model, ref_opt, ref_sched, ref_loader = build(0, tiny_data, total)
    train_steps(ref_model, ref_opt, ref_sched, ref_loader, total)
    ref_rng = torch.get_rng_state()

    model, opt, sched, loader = build(0, tiny_data, total)
    train_steps(model, opt, sched, loader, cut)
    path = save_checkpoint(tmp_path / "run" / "ckpt.pt",
                           make_state(model, opt, sched, epoch=loader.epoch, step=cut, loader=loader,
                                      extra={"note": "test"}))
    del model, opt, sched, loader
    torch.rand(100)                         # disturb the global RNG before resuming

    model, opt, sched, loader = build(123, tiny_data, total)   # different initial weights
    state = load_checkpoint(path)
    pos = restore_state(state, model, opt, sched, loader=loader)
    assert pos == {"epoch": 1, "step": cut} and state["extra"] == {"note": "test"}
    train_steps(model, opt, sched, loader, total - cut)

    for (name, a), b in zip(ref_model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"
    assert sched.state_dict()["_step_count"] == ref_sched.state_dict()["_step_count"]
    assert loader.state_dict() == ref_loader.state_dict()
    for sa, sb in zip(ref_opt.state.values(), opt.state.values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(torch.get_rng_state(), ref_rng)     # same dropout draws, same RNG end state


def test_resume_detects_a_lost_state(tmp_path, tiny_data):
    model, opt, sched, loader = build(0, tiny_data, 5)
    path = save_checkpoint(tmp_path / "c.pt", make_state(model))
    with pytest.raises(CheckpointError, match="no optimizer state"):
        restore_state(load_checkpoint(path), model, opt)


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(3)})
    before = path.read_bytes()

    def torn_save(obj, f):
        f.write(b"PK\x03\x04 half a zip file")     # some bytes reach the temp file, then failure
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ckpt.torch, "save", torn_save)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]          # no temp file left behind
    assert load_checkpoint(path)["step"] == 1


@pytest.mark.parametrize("fail", ["fsync", "replace", "interrupt"])
def test_failure_late_in_the_write(tmp_path, monkeypatch, fail):
    path = tmp_path / "ckpt.pt"

    def boom(*args, **kwargs):
        raise KeyboardInterrupt if fail == "interrupt" else OSError(f"{fail} failed (simulated)")

    target = {"fsync": "fsync", "replace": "replace", "interrupt": "fsync"}[fail]
    monkeypatch.setattr(ckpt.os, target, boom)
    with pytest.raises((OSError, KeyboardInterrupt)):
        save_checkpoint(path, {"step": 2})
    assert os.listdir(tmp_path) == []                           # neither a torn file nor debris


def test_checkpoint_loads_with_weights_only(tmp_path, tiny_data):
    model, opt, sched, loader = build(0, tiny_data, 5)
    train_steps(model, opt, sched, loader, 2)
    path = save_checkpoint(tmp_path / "c.pt", make_state(model, opt, sched, step=2, loader=loader))
    raw = torch.load(path, weights_only=True)                   # no custom classes inside
    assert raw["format"] == ckpt.FORMAT and raw["step"] == 2
    assert raw["scheduler"]["lr_lambdas"][0] == {"total_steps": 5, "warmup_steps": 2,
                                                  "final_factor": 0.0}
    assert raw["loader"] == {"epoch": 0, "batch": 2}


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="expected an onebit training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="could not read"):
        load_checkpoint(tmp_path / "junk.pt")


def test_atomic_write_mode_follows_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = ckpt.atomic_write(tmp_path / "sub" / "r.json", lambda f: f.write(b"{}"))
    finally:
        os.umask(old)
    assert path.read_bytes() == b"{}"
    assert path.stat().st_mode & 0o777 == 0o640                # 0o666 & ~umask, like open()
    ckpt.atomic_write(path, lambda f: f.write(b"[1]"))        # replaces an existing file
    assert path.read_bytes() == b"[1]" and os.listdir(path.parent) == ["r.json"]
