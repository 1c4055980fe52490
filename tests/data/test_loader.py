"""ArrayLoader: every image exactly once per epoch, normalised like `normalize`, seeded order and
augmentation, and a saved position resumes on exactly the batches an uninterrupted pass sees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onebit.data import CIFAR10_MEAN, CIFAR10_STD, ArrayLoader
from onebit.data.transforms import normalize
from onebit.errors import ShapeError


@pytest.fixture
def data(rng):
    n = 37   # not a multiple of the batch sizes used: the last batch is partial
    x = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(n)   # pixel (0, 0, red) identifies the image
    return x, np.arange(n) % 10


def ids(xb: torch.Tensor) -> list[int]:
    """Recover the image ids from normalised batches without augmentation."""
    raw = xb[:, 0, 0, 0] * CIFAR10_STD[0] + CIFAR10_MEAN[0]
    return [int(v) for v in torch.round(raw * 255)]


@pytest.mark.parametrize("batch_size, drop_last, nb", [(1, False, 37), (8, False, 5), (8, True, 4),
                                                        (37, False, 1), (64, False, 1)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_epoch_covers_every_image_once(data, batch_size, drop_last, nb, shuffle):
    x, y = data
    loader = ArrayLoader(x, y, batch_size, shuffle=shuffle, drop_last=drop_last, seed=3)
    batches = list(loader)
    assert len(loader) == nb == len(batches)
    seen = [i for xb, _ in batches for i in ids(xb)]
    labels = [int(v) for _, yb in batches for v in yb]
    assert labels == [i % 10 for i in seen]
    if drop_last:
        assert len(seen) == nb * batch_size and len(set(seen)) == len(seen)
    else:
        assert sorted(seen) == list(range(37))
    assert (seen == list(range(len(seen)))) != shuffle
    assert loader.state_dict() == {"epoch": 1, "batch": 0}


def test_batch_values_are_normalised_pixels(data):
    x, y = data
    xb, yb = next(iter(ArrayLoader(x, y, 5, shuffle=False)))
    assert xb.dtype == torch.float32 and xb.shape == (5, 3, 8, 8) and xb.is_contiguous()
    assert yb.dtype == torch.int64
    want = normalize(torch.from_numpy(x[:5]).permute(0, 3, 1, 2), CIFAR10_MEAN, CIFAR10_STD)
    assert torch.equal(xb, want)


def test_order_seeded_per_epoch(data):
    x, y = data
    a = ArrayLoader(x, y, 8, seed=1)
    b = ArrayLoader(x, y, 8, seed=1)
    c = ArrayLoader(x, y, 8, seed=2)
    assert torch.equal(a.order(0), b.order(0))
    assert not torch.equal(a.order(0), a.order(1))
    assert not torch.equal(a.order(0), c.order(0))
    e0 = [ids(xb) for xb, _ in a]
    e1 = [ids(xb) for xb, _ in a]
    assert e0 != e1 and sum(e1, []) == a.order(1).tolist()


def test_augmentation_seeded_and_label_preserving(data):
    x, y = data
    a = ArrayLoader(x, y, 16, augment=True, seed=4)
    b = ArrayLoader(x, y, 16, augment=True, seed=4)
    plain = ArrayLoader(x, y, 16, augment=False, seed=4)
    for (xa, ya), (xb, yb), (xp, yp) in zip(a, b, plain):
        assert torch.equal(xa, xb) and torch.equal(ya, yp)
        assert xa.shape == xp.shape and not torch.equal(xa, xp)
    assert torch.equal(a.get_batch(0, 1)[0], b.get_batch(0, 1)[0])
    assert not torch.equal(a.get_batch(0, 1)[0], a.get_batch(1, 1)[0])


def test_resume_from_position_sees_the_same_batches(data):
    x, y = data
    ref = ArrayLoader(x, y, 8, augment=True, seed=9)
    stream = [b for _ in range(3) for b in ref]          # 3 epochs, 15 batches
    first = ArrayLoader(x, y, 8, augment=True, seed=9)
    got = []
    for _ in range(2):                                    # epoch 0 + 2 batches of epoch 1
        for xb, yb in first:
            got.append((xb, yb))
            if len(got) in (5, 7):
                break
    state = first.state_dict()
    assert state == {"epoch": 1, "batch": 2}
    second = ArrayLoader(x, y, 8, augment=True, seed=9)
    second.load_state_dict(state)
    got += list(second) + list(second)
    assert len(got) == len(stream)
    for (xa, ya), (xb, yb) in zip(got, stream):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_break_after_last_batch_rolls_to_next_epoch(data):
    x, y = data
    loader = ArrayLoader(x, y, 37, shuffle=True, seed=0)
    for _ in loader:
        break
    assert loader.state_dict() == {"epoch": 0, "batch": 1}
    xb, _ = next(iter(loader))
    assert ids(xb) == loader.order(1).tolist()


def test_argument_checks(data):
    x, y = data
    with pytest.raises(ShapeError, match="uint8 NHWC"):
        ArrayLoader(x.astype(np.float32), y, 4)
    with pytest.raises(ShapeError, match=r"\(37,\)"):
        ArrayLoader(x, y[:-1], 4)
    with pytest.raises(ValueError, match="batch_size"):
        ArrayLoader(x, y, 0)
    with pytest.raises(ValueError, match="no batch"):
        ArrayLoader(x, y, 64, drop_last=True)
