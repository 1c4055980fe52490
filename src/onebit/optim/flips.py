"""Flip ratio: the fraction of binary weights whose sign changed between two points of training."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from onebit.errors import OnebitError, ShapeError
from onebit.optim.param_groups import quantized_kernels

__all__ = ["FlipStats", "FlipTracker"]


@dataclass(frozen=True)
class FlipStats:
    """Sign flips since the last snapshot: per weight (qualified name) and over all of them."""

    flipped: dict[str, int]
    """Number of weights whose sign changed, per layer weight name."""
    sizes: dict[str, int]
    """Number of weights, per layer weight name."""

    @property
    def per_layer(self) -> dict[str, float]:
        """Flip ratio of each layer: ``flipped / size`` (0.0 for an empty weight)."""
        return {name: self.flipped[name] / max(self.sizes[name], 1) for name in self.sizes}

    @property
    def total_flipped(self) -> int:
        """Flipped weights over all tracked layers."""
        return sum(self.flipped.values())

    @property
    def total(self) -> int:
        """Tracked weights over all layers."""
        return sum(self.sizes.values())

    @property
    def overall(self) -> float:
        """Flip ratio over all tracked weights: ``sum(flipped) / sum(sizes)`` (weighted by size)."""
        return self.total_flipped / max(self.total, 1)


class FlipTracker:
    """Measure the flip ratio of a model's binary weights, the usual BNN training diagnostic.

    The flip ratio between two moments is the fraction of binary weights whose sign differs,

        ratio = #{i : sign(w_i^before) != sign(w_i^after)} / N

    with the project's sign convention (``w >= 0`` is +1, ``w < 0`` is -1; a latent weight
    moving from 0.0 to -0.0 does not flip). Helwegen et al. 2019 ("Latent Weights Do Not
    Exist") use it to show that a binary net converges when flips die out; a ratio that stays
    high late in training means the latent weights hover around 0 (missing weight clip, too high
    a learning rate or weight decay).

    Tracks :func:`onebit.optim.quantized_kernels` of ``model`` with ``kernel_precision <=
    max_precision`` (binary kernels by default; 2.0 adds ternary ones, whose latent sign is
    tracked). The constructor takes the first snapshot::

        tracker = FlipTracker(model)
        ...  # optimizer.step() once or many times
        stats = tracker.update()          # FlipStats since the snapshot; then re-snapshots
        stats.overall, stats.per_layer["layer1.conv.weight"]

    Raises:
        OnebitError: the model has no layer with such a kernel.
    """

    def __init__(self, model: nn.Module, *, max_precision: float = 1.0) -> None:
        self.weights = quantized_kernels(model, max_precision=max_precision)
        if not self.weights:
            raise OnebitError(
                f"FlipTracker: {type(model).__name__} has no layer with kernel_precision <= "
                f"{max_precision} (expected QuantConv2d/QuantLinear with a binary "
                "kernel_quantizer); "
                "pass max_precision=2.0 to also track ternary kernels"
            )
        self._negative: dict[str, torch.Tensor] = {}
        self.snapshot()

    def snapshot(self) -> None:
        """Remember the current sign of every tracked weight."""
        self._negative = {name: w.detach() < 0 for name, w in self.weights}

    def update(self, *, reset: bool = True) -> FlipStats:
        """Flips since the last snapshot; with ``reset`` (default) the current signs become it."""
        flipped: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for name, w in self.weights:
            before = self._negative[name]
            now = w.detach() < 0
            if now.shape != before.shape:
                raise ShapeError(
                    f"FlipTracker: {name} had shape {tuple(before.shape)} at the snapshot, now "
                    f"{tuple(now.shape)}; make a new FlipTracker after changing the model"
                )
            flipped[name] = int((now != before).sum().item())
            sizes[name] = now.numel()
            if reset:
                self._negative[name] = now
        return FlipStats(flipped=flipped, sizes=sizes)
