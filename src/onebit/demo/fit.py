"""Demo step 1: train a zoo model on CIFAR-10 within a wall-clock budget.

Recipe (BNext Sec. 5.1 weight decays; the usual binary-network schedule): AdamW with weight
decay 1e-8 on binary latent kernels and 1e-3 on float weights (none on norms and biases, via
``onebit.optim.param_groups``), learning rate ``lr * WarmupCosine`` whose horizon is
re-estimated after every step from the average step rate, so that the cosine runs in wall-clock
time and ends with the budget. Augmentation: random crop (4-pixel padding) + horizontal flip
from epoch ``cfg.augment_after`` on.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from onebit.demo.config import DemoConfig

__all__ = ["CifarSplits", "FitResult", "load_data", "fit"]


@dataclass
class CifarSplits:
    """uint8 NHWC images and int64 labels of the (possibly subsampled) train and test sets."""

    path: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass
class FitResult:
    """The trained model (eval mode), its ``onebit.summary`` and the training totals."""

    model: torch.nn.Module
    summary: Any
    stats: dict[str, Any]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loader: Any


def _subset(x: np.ndarray, y: np.ndarray, k: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``k`` images drawn without replacement with a seeded RNG (all of them when k is None)."""
    if k is None or k >= len(x):
        return x, y
    idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:k])
    return x[idx], y[idx]


def load_data(cfg: DemoConfig) -> CifarSplits:
    """CIFAR-10 from ``cfg.data`` (DatasetError with the places searched if absent), subsampled."""
    from onebit.data import find_cifar10, load_cifar10

    path = find_cifar10(cfg.data)
    x_train, y_train, x_test, y_test = load_cifar10(path)
    x_train, y_train = _subset(x_train, y_train, cfg.max_train, cfg.seed)
    x_test, y_test = _subset(x_test, y_test, cfg.max_test, cfg.seed + 1)
    return CifarSplits(str(path), x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64))


def fit(cfg: DemoConfig, data: CifarSplits) -> FitResult:
    """Train ``create_model(cfg.model, **cfg.model_kwargs)`` for ``cfg.minutes``; print its summary."""
    import onebit
    from onebit.data import ArrayLoader
    from onebit.models import create_model
    from onebit.optim import param_groups
    from onebit.train import WarmupCosine, train_epoch

    threads = int(cfg.threads or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    n_train = len(data.x_train)
    batch = min(int(cfg.batch_size), n_train)
    loader = ArrayLoader(data.x_train, data.y_train, batch, shuffle=True, seed=cfg.seed,
                         drop_last=n_train >= 2 * batch)

    model = create_model(cfg.model, **cfg.model_kwargs)
    summary = onebit.summary(model, (3, 32, 32))
    opt = torch.optim.AdamW(param_groups(model, weight_decay=1e-3, binary_weight_decay=1e-8),
                            lr=cfg.lr, betas=(0.9, 0.999))
    # The horizon is set after every step by on_step below (no decay before the first step).
    plan = WarmupCosine(total_steps=2**62, warmup_steps=min(20, max(1, len(loader) // 4)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, plan)

    budget = 60.0 * float(cfg.minutes)
    t0 = time.monotonic()
    deadline = t0 + budget
    done = {"steps": 0}

    def on_step(_: int) -> bool:
        # Cosine in wall-clock time: the horizon is the step count at which the deadline falls at
        # the average rate so far, T = t * budget / elapsed, so t / T = elapsed / budget and the
        # learning rate reaches its end value as the budget runs out, whatever the rate.
        done["steps"] += 1
        elapsed = max(time.monotonic() - t0, 1e-9)
        plan.total_steps = max(done["steps"] + 1, round(done["steps"] * budget / elapsed))
        return False

    images, last = 0, None
    while time.monotonic() < deadline:
        loader.augment = loader.epoch >= cfg.augment_after
        st = train_epoch(model, loader, opt, scheduler=sched, deadline=deadline, on_step=on_step,
                         progress=cfg.progress, desc=f"train epoch {loader.epoch + 1}")
        images += st.images
        last = st if st.steps else last
        if st.steps == 0:
            break
    seconds = time.monotonic() - t0
    model.eval()
    stats = {
        "images": images,
        "steps": done["steps"],
        "epochs": images / n_train,
        "seconds": seconds,
        "images_per_s": images / seconds if seconds > 0 else 0.0,
        "final_lr": float(sched.get_last_lr()[0]),
        "threads": threads,
        # Running averages over the last pass (training images, model in train mode).
        "last_pass_loss": last.loss if last else None,
        "last_pass_accuracy": last.accuracy if last else None,
    }
    return FitResult(model, summary, stats, opt, sched, loader)
