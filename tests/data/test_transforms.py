"""Batched transforms against per-image loops written independently: crop_at equals a slice of
the padded image, random_crop is a seeded shift of at most `padding`, random_hflip mirrors
exactly the chosen images, normalize equals the formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onebit.data.transforms import crop_at, normalize, random_crop, random_hflip, to_nchw
from onebit.errors import ShapeError


def naive_crop(x: np.ndarray, dy, dx, p: int, fill=0) -> np.ndarray:
    """Oracle: pad each image with numpy, slice the window."""
    b, c, h, w = x.shape
    out = np.empty_like(x)
    for i in range(b):
        padded = np.pad(x[i], ((0, 0), (p, p), (p, p)), constant_values=fill)
        out[i] = padded[:, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    return out


def distinct_images(b, c=3, h=32, w=32, dtype=torch.float32):
    """Images whose pixels are all different and non-zero, so any shift is recognisable."""
    return (torch.arange(b * c * h * w, dtype=torch.float64).reshape(b, c, h, w) + 1).to(dtype)


def test_to_nchw_matches_transpose(rng):
    x = rng.integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    t = to_nchw(x)
    assert t.dtype == torch.uint8 and t.is_contiguous()
    np.testing.assert_array_equal(t.numpy(), x.transpose(0, 3, 1, 2))
    with pytest.raises(ShapeError, match="NHWC"):
        to_nchw(x[0])


@pytest.mark.parametrize("p", [0, 1, 4, 5])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (4, 3, 5, 7), (9, 2, 32, 32)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_crop_at_matches_naive(rng, p, shape, dtype):
    x = torch.from_numpy(rng.integers(1, 256, shape).astype(np.uint8)).to(dtype)
    dy = rng.integers(0, 2 * p + 1, shape[0])
    dx = rng.integers(0, 2 * p + 1, shape[0])
    dy[0], dx[0] = 0, 2 * p                   # the corners of the offset range
    out = crop_at(x, torch.from_numpy(dy), torch.from_numpy(dx), p, fill=7)
    assert out.shape == x.shape and out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), naive_crop(x.numpy(), dy, dx, p, fill=7))


def test_crop_at_center_is_identity_and_checks():
    x = distinct_images(3)
    assert torch.equal(crop_at(x, torch.full((3,), 4), torch.full((3,), 4), 4), x)
    with pytest.raises(ShapeError, match="offsets must lie"):
        crop_at(x, torch.tensor([0, 0, 9]), torch.zeros(3), 4)
    with pytest.raises(ShapeError, match="one per image"):
        crop_at(x, torch.zeros(2), torch.zeros(3), 4)
    with pytest.raises(ShapeError, match=r"\(B, C, H, W\)"):
        crop_at(x[0], torch.zeros(1), torch.zeros(1), 4)


def test_random_crop_is_a_bounded_shift():
    p, b = 4, 256
    x = distinct_images(b)
    out = random_crop(x, p, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    seen = set()
    for i in range(b):
        # The centre pixel is never padding: out[i,0,16,16] = x[i,0,12+dy,12+dx] locates the shift,
        # then the whole image must equal that shift of the input.
        r, s = (int(v) for v in torch.nonzero(x[i, 0] == out[i, 0, 16, 16])[0])
        dy, dx = r - 16 + p, s - 16 + p
        assert 0 <= dy <= 2 * p and 0 <= dx <= 2 * p
        want = naive_crop(x[i:i + 1].numpy(), [dy], [dx], p)
        np.testing.assert_array_equal(out[i:i + 1].numpy(), want)
        seen.add((dy, dx))
    # 256 draws over 81 offsets: every row offset and every column offset shows up.
    assert {dy for dy, _ in seen} == set(range(9)) and {dx for _, dx in seen} == set(range(9))


def test_random_crop_keeps_content_and_zero_fill():
    x = torch.full((64, 3, 8, 8), 200, dtype=torch.uint8)
    out = random_crop(x, 4, generator=torch.Generator().manual_seed(1))
    # Each image keeps a (8-|dy-4|) x (8-|dx-4|) block of 200s and zeros elsewhere.
    for img in out:
        rows = int((img[0] == 200).any(1).sum())
        cols = int((img[0] == 200).any(0).sum())
        assert int((img == 200).sum()) == 3 * rows * cols
        assert int((img == 0).sum()) == 3 * (64 - rows * cols)
        assert rows >= 4 and cols >= 4


def test_random_crop_seeded():
    x = distinct_images(32, h=6, w=6)
    a = random_crop(x, 2, generator=torch.Generator().manual_seed(5))
    b = random_crop(x, 2, generator=torch.Generator().manual_seed(5))
    c = random_crop(x, 2, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_hflip_flips_exactly_the_chosen_images():
    x = distinct_images(1000, c=2, h=3, w=5)
    out = random_hflip(x, generator=torch.Generator().manual_seed(0))
    flipped = []
    for i in range(len(x)):
        if torch.equal(out[i], x[i]):
            flipped.append(False)
        else:
            assert torch.equal(out[i], x[i].flip(-1))
            assert out[i, 0, 0, 0] == x[i, 0, 0, -1]
            flipped.append(True)
    assert 400 < sum(flipped) < 600    # Binomial(1000, 0.5): 10 sigma margin
    again = random_hflip(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(random_hflip(x, 0.0), x)
    assert torch.equal(random_hflip(x, 1.0), x.flip(-1))


def test_flip_matches_numpy_mirror(rng):
    x = rng.integers(0, 256, (2, 3, 4, 5), dtype=np.uint8)
    out = random_hflip(torch.from_numpy(x), 1.0).numpy()
    np.testing.assert_array_equal(out, x[:, :, :, ::-1])


@pytest.mark.parametrize("c", [1, 3])
def test_normalize_formula(rng, c):
    x = rng.integers(0, 256, (4, c, 5, 6), dtype=np.uint8)
    mean = [0.4914, 0.4822, 0.4465][:c]
    std = [0.2470, 0.2435, 0.2616][:c]
    want = (x.astype(np.float64) / 255 - np.array(mean)[None, :, None, None]) \
        / np.array(std)[None, :, None, None]
    got = normalize(torch.from_numpy(x), mean, std)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    from_float = normalize(torch.from_numpy(x).float() / 255, mean, std)
    np.testing.assert_allclose(from_float.numpy(), want, rtol=1e-5, atol=1e-5)


def test_normalize_checks():
    x = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ShapeError, match="3 means"):
        normalize(x, [0.5], [0.5])
    with pytest.raises(ValueError, match="std must be > 0"):
        normalize(x, [0.5] * 3, [0.5, 0.0, 0.5])
