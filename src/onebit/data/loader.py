"""In-memory mini-batch loader: uint8 NHWC arrays in, normalised float32 NCHW tensors out.

The images stay ``uint8`` in memory (CIFAR-10 train set: 150 MiB); each batch is gathered,
augmented (crop + flip on uint8, cheap) and normalised on the fly, which on a 2-core CPU costs a
few percent of a binary CNN's step. No worker processes.

Determinism: the order of epoch ``e`` and the augmentation of batch ``i`` are pure functions of
``(seed, e)`` and ``(seed, e, i)``. The loader's position ``(epoch, batch)`` is its whole state
(``state_dict``), so a run resumed from a checkpoint sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from onebit.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD
from onebit.data.transforms import normalize, random_crop, random_hflip
from onebit.errors import ShapeError

__all__ = ["ArrayLoader", "derive_seed"]


def derive_seed(*words: int) -> int:
    """A 63-bit seed mixed from integers with numpy's SeedSequence (distinct inputs, unrelated seeds)."""
    state = np.random.SeedSequence([int(w) & 0xFFFFFFFFFFFFFFFF for w in words]).generate_state(2)
    return (int(state[0]) << 31 ^ int(state[1])) & 0x7FFFFFFFFFFFFFFF


class ArrayLoader:
    """Iterate ``(images float32 (B, C, H, W), labels int64 (B,))`` over in-memory arrays.

    Args:
        x: ``uint8 (N, H, W, C)`` images (e.g. from ``load_cifar10``).
        y: ``(N,)`` integer labels.
        batch_size: images per batch; the last one is smaller unless ``drop_last``.
        shuffle: visit the images in a new seeded random order every epoch.
        augment: random crop (``padding`` pixels, zero fill) + random horizontal flip.
        seed: seeds the order and the augmentation.
        mean, std: per-channel statistics in [0, 1] scale (``normalize``).

    Iterating yields the rest of the current epoch and then moves to the next one, so a loop
    that breaks early and iterates again continues where it stopped.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool = True,
                 augment: bool = False, seed: int = 0, drop_last: bool = False,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                 padding: int = 4) -> None:
        x = np.asarray(x)
        y = np.asarray(y)
        if x.ndim != 4 or x.dtype != np.uint8:
            raise ShapeError(f"ArrayLoader expects uint8 NHWC images (N, H, W, C), got "
                             f"{x.dtype} {x.shape}")
        if y.shape != (x.shape[0],):
            raise ShapeError(f"ArrayLoader expects labels of shape ({x.shape[0]},), got {y.shape}")
        if batch_size < 1:
            raise ValueError(f"ArrayLoader: batch_size must be >= 1, got {batch_size}")
        if drop_last and x.shape[0] < batch_size:
            raise ValueError(f"ArrayLoader: drop_last with {x.shape[0]} images < batch_size "
                             f"{batch_size} would yield no batch; lower batch_size")
        self._x = torch.from_numpy(np.ascontiguousarray(x))  # shares memory, stays uint8
        self._y = torch.from_numpy(y.astype(np.int64))
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.padding = int(padding)
        self.epoch = 0   # epoch the next batch belongs to
        self.batch = 0   # index of the next batch within that epoch

    @property
    def num_images(self) -> int:
        """Images in the dataset (not in one epoch when ``drop_last`` cuts the tail)."""
        return int(self._x.shape[0])

    def __len__(self) -> int:
        """Batches per epoch."""
        n = self.num_images
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def state_dict(self) -> dict[str, int]:
        """Position of the next batch: ``{"epoch": e, "batch": i}`` (plain ints)."""
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a position saved by ``state_dict``."""
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])

    def order(self, epoch: int) -> torch.Tensor:
        """Image indices of epoch ``epoch`` (a seeded permutation, or ``arange`` without shuffle)."""
        if not self.shuffle:
            return torch.arange(self.num_images)
        g = torch.Generator().manual_seed(derive_seed(self.seed, epoch, 0))
        return torch.randperm(self.num_images, generator=g)

    def get_batch(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index`` of epoch ``epoch``: ``(float32 (B, C, H, W), int64 (B,))``."""
        idx = self.order(epoch)[index * self.batch_size:(index + 1) * self.batch_size]
        return self._make(idx, epoch, index)

    def _make(self, idx: torch.Tensor, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        xb = self._x[idx].permute(0, 3, 1, 2)                          # (B, C, H, W) uint8
        if self.augment:
            g = torch.Generator().manual_seed(derive_seed(self.seed, epoch, index + 1))
            xb = random_hflip(random_crop(xb, self.padding, generator=g), generator=g)
        return normalize(xb, self.mean, self.std).contiguous(), self._y[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.batch >= len(self):
            self.epoch, self.batch = self.epoch + 1, 0
        epoch, order = self.epoch, self.order(self.epoch)
        while self.batch < len(self):
            i = self.batch
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            self.batch = i + 1   # advance first: a consumer that stops after this batch resumes at i + 1
            yield self._make(idx, epoch, i)
        self.epoch, self.batch = epoch + 1, 0
