"""One pass of training or evaluation, with a progress bar and a wall-clock budget.

``train_epoch`` runs until the loader's epoch ends, ``max_steps`` steps are done or ``deadline``
(a ``time.monotonic()`` value) passes. The deadline is checked *before* a batch is drawn, so a
stopped run leaves the loader positioned on the first batch it did not train on (resume is exact).
After every optimizer step the latent weights of quantized layers with a ``kernel_clip`` are
clipped (``onebit.nn.clip_latent_weights_``), the usual practice for binary kernels
(Courbariaux et al. 2016, BNN; Larq's ``kernel_constraint``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from onebit.errors import OnebitError
from onebit.nn import clip_latent_weights_

__all__ = ["EpochStats", "TrainingError", "train_epoch", "evaluate", "WarmupCosine"]


class TrainingError(OnebitError, RuntimeError):
    """Training diverged (non-finite loss) or was misconfigured."""


@dataclass
class EpochStats:
    """Totals of one ``train_epoch`` / ``evaluate`` call.

    ``loss`` is the mean loss per image, ``accuracy`` the top-1 fraction correct,
    ``stopped`` is ``None`` when the loader's epoch ended, else ``"deadline"``, ``"max_steps"`` or
    ``"on_step"``.
    """

    loss: float
    accuracy: float
    images: int
    steps: int
    seconds: float
    stopped: str | None = None

    @property
    def images_per_s(self) -> float:
        """Throughput ``images / seconds`` (0.0 when nothing ran)."""
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields plus ``images_per_s``."""
        return {**asdict(self), "images_per_s": self.images_per_s}


class WarmupCosine:
    """LR multiplier for ``torch.optim.lr_scheduler.LambdaLR``: linear warm-up, then cosine decay.

    ``f(t) = (t + 1) / w`` for ``t < w``, else ``f_min + (1 - f_min) * (1 + cos(pi * u)) / 2`` with
    ``u = min(1, (t - w) / (T - w))`` (Loshchilov & Hutter 2017, SGDR; BNext Sec. 5.1 uses
    warm-up + cosine). ``total_steps`` may be changed during training (e.g. once the step rate
    of a time-budgeted run is known); being a plain object, it is saved in the scheduler's
    ``state_dict``.
    """

    def __init__(self, total_steps: int, warmup_steps: int = 0, final_factor: float = 0.0) -> None:
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.final_factor = float(final_factor)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        u = min(1.0, (step - self.warmup_steps) / span)
        return self.final_factor + (1.0 - self.final_factor) * 0.5 * (1.0 + math.cos(math.pi * u))


def _bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="batch", dynamic_ncols=True,
                leave=True, mininterval=0.5)


def train_epoch(model: torch.nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, *,
                scheduler: Any | None = None,
                loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
                deadline: float | None = None, max_steps: int | None = None,
                on_step: Callable[[int], bool | None] | None = None,
                progress: bool = True, desc: str = "train") -> EpochStats:
    """Train over (the rest of) one epoch of ``loader``; ``scheduler.step()`` after every batch.

    Each step: ``loss = loss_fn(model(x), y)``, backward, ``optimizer.step()``,
    ``onebit.nn.clip_latent_weights_(model)``, ``scheduler.step()``, then
    ``on_step(steps_done_in_this_call)`` if given; a true return value stops the pass
    (``stopped="on_step"``), e.g. to re-plan a schedule or end a run early. Raises TrainingError
    on a non-finite loss. The progress bar shows the running loss, accuracy and images per second.
    """
    model.train()
    total = len(loader) if hasattr(loader, "__len__") else None
    position = getattr(loader, "batch", 0)   # ArrayLoader resumed mid-epoch: fewer batches left
    if total is not None and 0 < position < total:
        total -= position
    loss_sum, correct, images, steps, stopped = 0.0, 0, 0, 0, None
    t0 = time.perf_counter()
    it = iter(loader)
    with _bar(total, desc, progress) as bar:
        while True:
            if max_steps is not None and steps >= max_steps:
                stopped = "max_steps"
                break
            if deadline is not None and time.monotonic() >= deadline:
                stopped = "deadline"
                break
            try:
                x, y = next(it)
            except StopIteration:
                break
            logits = model(x)
            loss = loss_fn(logits, y)
            if not torch.isfinite(loss):
                raise TrainingError(f"{desc}: loss became {loss.item()} at step {steps}; lower the "
                                    f"learning rate or check the inputs for NaN/inf")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            clip_latent_weights_(model)
            if scheduler is not None:
                scheduler.step()
            n = y.shape[0]
            steps += 1
            images += n
            loss_sum += loss.item() * n
            correct += int((logits.argmax(1) == y).sum())
            elapsed = time.perf_counter() - t0
            bar.set_postfix(loss=f"{loss_sum / images:.3f}", acc=f"{correct / images:.3f}",
                            img_s=f"{images / elapsed:.0f}", refresh=False)
            bar.update(1)
            if on_step is not None and on_step(steps):
                stopped = "on_step"
                break
    seconds = time.perf_counter() - t0
    return EpochStats(loss=loss_sum / images if images else float("nan"),
                      accuracy=correct / images if images else float("nan"),
                      images=images, steps=steps, seconds=seconds, stopped=stopped)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Iterable, *,
             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
             progress: bool = True, desc: str = "eval") -> EpochStats:
    """Mean loss and top-1 accuracy of ``model`` (in eval mode) over one full epoch of ``loader``."""
    was_training = model.training
    model.eval()
    loss_sum, correct, images, steps = 0.0, 0, 0, 0
    t0 = time.perf_counter()
    total = len(loader) if hasattr(loader, "__len__") else None
    try:
        with _bar(total, desc, progress) as bar:
            for x, y in loader:
                logits = model(x)
                n = y.shape[0]
                loss_sum += float(loss_fn(logits, y)) * n   # loss_fn returns the batch mean
                correct += int((logits.argmax(1) == y).sum())
                images += n
                steps += 1
                bar.set_postfix(acc=f"{correct / images:.3f}", refresh=False)
                bar.update(1)
    finally:
        model.train(was_training)
    return EpochStats(loss=loss_sum / images if images else float("nan"),
                      accuracy=correct / images if images else float("nan"),
                      images=images, steps=steps, seconds=time.perf_counter() - t0)
