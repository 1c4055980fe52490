"""train_epoch / evaluate: they learn, count what they saw, stop on a deadline or step limit
without consuming a batch, clip binary latent weights, and refuse a diverged loss."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from onebit.data import ArrayLoader
from onebit.train import EpochStats, TrainingError, WarmupCosine, evaluate, train_epoch


@pytest.fixture
def separable(rng):
    """Two classes told apart by the mean brightness of the red channel."""
    n = 64
    y = np.arange(n) % 2
    x = rng.integers(0, 100, (n, 4, 4, 3), dtype=np.uint8)
    x[y == 1, :, :, 0] += 150
    return x, y


def linear_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 2))


def test_training_learns_and_counts(separable):
    model = linear_model()
    loader = ArrayLoader(*separable, batch_size=16, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = train_epoch(model, loader, opt, progress=False)
    assert (first.images, first.steps, first.stopped) == (64, 4, None)
    for _ in range(5):
        last = train_epoch(model, loader, opt, progress=False)
    assert last.loss < first.loss and last.accuracy == 1.0
    ev = evaluate(model, ArrayLoader(*separable, batch_size=10, shuffle=False), progress=False)
    # The evaluation equals a direct computation over all 64 images.
    xb = ArrayLoader(*separable, batch_size=64, shuffle=False).get_batch(0, 0)[0]
    with torch.no_grad():
        logits = model(xb)
    want_loss = float(nn.functional.cross_entropy(logits, torch.from_numpy(separable[1])))
    want_acc = float((logits.argmax(1).numpy() == separable[1]).mean())
    assert ev.images == 64 and ev.steps == 7
    assert ev.accuracy == want_acc and math.isclose(ev.loss, want_loss, rel_tol=1e-5)
    assert ev.images_per_s > 0 and ev.as_dict()["images_per_s"] == ev.images_per_s


def test_deadline_and_max_steps_leave_loader_on_next_batch(separable):
    model = linear_model()
    loader = ArrayLoader(*separable, batch_size=8, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.clone() for p in model.parameters()]
    past = train_epoch(model, loader, opt, deadline=time.monotonic() - 1, progress=False)
    assert (past.steps, past.images, past.stopped) == (0, 0, "deadline")
    assert math.isnan(past.loss) and loader.state_dict() == {"epoch": 0, "batch": 0}
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    part = train_epoch(model, loader, opt, max_steps=3, progress=False)
    assert (part.steps, part.images, part.stopped) == (3, 24, "max_steps")
    assert loader.state_dict() == {"epoch": 0, "batch": 3}
    rest = train_epoch(model, loader, opt, deadline=time.monotonic() + 60, progress=False)
    assert (rest.steps, rest.stopped) == (5, None)
    assert loader.state_dict() == {"epoch": 1, "batch": 0}


def test_on_step_sees_each_step_and_can_stop(separable):
    model = linear_model()
    loader = ArrayLoader(*separable, batch_size=8, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []

    def on_step(step):
        seen.append((step, loader.state_dict()["batch"]))
        return step == 3

    st = train_epoch(model, loader, opt, on_step=on_step, progress=False)
    assert seen == [(1, 1), (2, 2), (3, 3)]
    assert (st.steps, st.images, st.stopped) == (3, 24, "on_step")
    assert loader.state_dict() == {"epoch": 0, "batch": 3}


def test_evaluate_restores_mode(separable):
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(48, 2))
    model.train()
    evaluate(model, ArrayLoader(*separable, batch_size=32, shuffle=False), progress=False)
    assert model.training
    model.eval()
    evaluate(model, ArrayLoader(*separable, batch_size=32, shuffle=False), progress=False)
    assert not model.training


def test_binary_latent_weights_are_clipped(separable):
    from onebit.nn import QuantLinear

    torch.manual_seed(0)
    q = QuantLinear(48, 2, input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_clip=0.05)
    model = nn.Sequential(nn.Flatten(), q)
    opt = torch.optim.SGD(model.parameters(), lr=5.0)    # steps far larger than the clip
    train_epoch(model, ArrayLoader(*separable, batch_size=16, seed=0), opt, progress=False)
    assert float(q.weight.detach().abs().max()) == pytest.approx(0.05)
    assert float(q.bias.detach().abs().max()) > 0.05                # only the kernel is clipped


def test_non_finite_loss_raises(separable):
    model = linear_model()
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TrainingError, match="loss became nan at step 0"):
        train_epoch(model, ArrayLoader(*separable, batch_size=16), opt, progress=False)


def test_progress_bar_shows_metrics(separable, capsys):
    model = linear_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train_epoch(model, ArrayLoader(*separable, batch_size=16), opt, progress=True, desc="epoch 1")
    err = capsys.readouterr().err
    assert "epoch 1" in err and "loss=" in err and "acc=" in err and "img_s=" in err
    assert "4/4" in err


def test_warmup_cosine():
    f = WarmupCosine(total_steps=12, warmup_steps=2, final_factor=0.1)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == 1.0
    assert f(7) == pytest.approx(0.1 + 0.9 * 0.5)          # half way through the decay
    assert f(12) == pytest.approx(0.1) and f(50) == pytest.approx(0.1)
    values = [f(t) for t in range(2, 13)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    f.total_steps = 22                                      # re-planned mid-run
    assert f(12) == pytest.approx(0.1 + 0.9 * 0.5)


def test_epoch_stats_rate():
    s = EpochStats(loss=1.0, accuracy=0.5, images=300, steps=3, seconds=1.5)
    assert s.images_per_s == 200 and EpochStats(0, 0, 0, 0, 0.0).images_per_s == 0.0
