"""FlipTracker: flip ratios of binary weights on hand-made sign changes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from onebit.errors import OnebitError
from onebit.nn import BitLinear, QuantConv2d, QuantLinear
from onebit.optim import Bop, FlipTracker


def _model() -> nn.Sequential:
    return nn.Sequential(
        QuantConv2d(2, 2, 1, bias=False, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                    kernel_clip=1.0),  # weight (2, 2, 1, 1): 4 weights
        nn.Flatten(),
        QuantLinear(2, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_clip=1.0),  # 6
        BitLinear(3, 2),  # ternary: tracked only with max_precision >= 1.58
        nn.Linear(2, 2),  # float: never tracked
    )


def test_flip_ratio_per_layer_and_overall_on_hand_made_change():
    model = _model()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([0.5, -0.5, 0.0, 0.2]).view(2, 2, 1, 1))
        model[2].weight.copy_(torch.tensor([[0.1, 0.2], [0.3, -0.1], [-0.2, -0.3]]))
    tracker = FlipTracker(model)
    assert [name for name, _ in tracker.weights] == ["0.weight", "2.weight"]
    with torch.no_grad():
        # conv: 0.5 -> -0.1 flips; -0.5 -> -0.9 keeps; 0.0 -> -0.0 keeps (-0.0 >= 0 is +1); 0.2 -> 0.0 keeps.
        model[0].weight.copy_(torch.tensor([-0.1, -0.9, -0.0, 0.0]).view(2, 2, 1, 1))
        # linear: flips at [0, 1] (0.2 -> -0.2), [1, 1] (-0.1 -> 0.1), [2, 0] (-0.2 -> 0.0).
        model[2].weight.copy_(torch.tensor([[0.1, -0.2], [0.3, 0.1], [0.0, -0.3]]))
    stats = tracker.update()
    assert stats.flipped == {"0.weight": 1, "2.weight": 3}
    assert stats.sizes == {"0.weight": 4, "2.weight": 6}
    assert stats.per_layer == {"0.weight": 0.25, "2.weight": 0.5}
    assert (stats.total_flipped, stats.total, stats.overall) == (4, 10, 0.4)  # 4 / 10, size-weighted
    # update() re-snapshots: nothing changed since.
    assert tracker.update().overall == 0.0


def test_update_without_reset_keeps_the_old_snapshot_and_ternary_is_opt_in():
    model = _model()
    tracker = FlipTracker(model, max_precision=2.0)
    assert [name for name, _ in tracker.weights] == ["0.weight", "2.weight", "3.weight"]
    with torch.no_grad():
        model[3].weight.neg_()  # all 6 ternary latent weights change sign (none is exactly 0)
    assert model[3].weight.ne(0).all()
    first = tracker.update(reset=False)
    assert first.flipped["3.weight"] == 6 and first.per_layer["3.weight"] == 1.0
    assert tracker.update(reset=False).flipped == first.flipped  # same snapshot both times
    assert tracker.update().overall == 6 / 16
    assert tracker.update().overall == 0.0


def test_flip_ratio_matches_a_bop_step():
    model = _model()
    binary = [model[0].weight, model[2].weight]
    with torch.no_grad():
        for w in binary:
            w.copy_(torch.ones_like(w))
    tracker = FlipTracker(model)
    opt = Bop(binary, threshold=0.0, gamma=1.0)
    model[0].weight.grad = torch.tensor([1.0, -1.0, 1.0, -1.0]).view(2, 2, 1, 1)  # flips 2 of 4
    model[2].weight.grad = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])  # flips 3 of 6
    opt.step()
    stats = tracker.update()
    assert stats.per_layer == {"0.weight": 0.5, "2.weight": 0.5} and stats.overall == 0.5


def test_flip_tracker_errors():
    with pytest.raises(OnebitError, match="no layer with kernel_precision <= 1.0"):
        FlipTracker(nn.Sequential(nn.Linear(2, 2), BitLinear(2, 2)))
    model = _model()
    tracker = FlipTracker(model)
    model[0].weight = nn.Parameter(torch.ones(3, 2, 1, 1))  # replaced after the snapshot
    tracker.weights[0] = ("0.weight", model[0].weight)
    with pytest.raises(OnebitError, match="make a new FlipTracker"):
        tracker.update()
