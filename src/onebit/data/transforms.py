"""Batched image transforms on NCHW tensors (no torchvision): crop, flip, normalise.

Every random transform draws from an explicit ``torch.Generator`` so a batch's augmentation is a
pure function of its seed (this is what makes resuming a run exact, see ``onebit.data.loader``).
All work is vectorised over the batch: one gather for the crop, one ``where`` for the flip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from onebit.errors import DTypeError, ShapeError

__all__ = ["to_nchw", "crop_at", "random_crop", "random_hflip", "normalize"]


def _check_nchw(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise DTypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ShapeError(f"{name} expects a batch of images (B, C, H, W), got shape {tuple(x.shape)}")


def to_nchw(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C)`` numpy array or tensor -> contiguous ``(B, C, H, W)`` tensor, same dtype."""
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if t.ndim != 4:
        raise ShapeError(f"to_nchw expects NHWC images (B, H, W, C), got shape {tuple(t.shape)}")
    return t.permute(0, 3, 1, 2).contiguous()


def crop_at(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, padding: int,
            fill: float = 0) -> torch.Tensor:
    """Crop every image of ``x (B, C, H, W)`` after padding it with ``fill`` on all four sides.

    ``out[b, c, i, j] = xpad[b, c, i + dy[b], j + dx[b]]`` with ``xpad`` the input padded by
    ``padding`` pixels, i.e. ``x[b, c, i + dy[b] - padding, j + dx[b] - padding]`` when inside the
    image and ``fill`` outside. Offsets are integers in ``[0, 2 * padding]``; ``dy = dx = padding``
    returns ``x`` unchanged. Output shape and dtype equal the input's.
    """
    _check_nchw(x, "crop_at")
    b, c, h, w = x.shape
    p = int(padding)
    if p < 0:
        raise ShapeError(f"crop_at: padding must be >= 0, got {padding}")
    dy = torch.as_tensor(dy, dtype=torch.long, device=x.device).reshape(-1)
    dx = torch.as_tensor(dx, dtype=torch.long, device=x.device).reshape(-1)
    if dy.numel() != b or dx.numel() != b:
        raise ShapeError(f"crop_at: expected {b} offsets (one per image), got dy {dy.numel()}, "
                         f"dx {dx.numel()}")
    if b and (int(torch.minimum(dy, dx).min()) < 0 or int(torch.maximum(dy, dx).max()) > 2 * p):
        raise ShapeError(f"crop_at: offsets must lie in [0, {2 * p}] for padding={p}")
    hp, wp = h + 2 * p, w + 2 * p
    padded = x.new_full((b, c, hp, wp), fill)                      # (B, C, H+2p, W+2p)
    padded[:, :, p:p + h, p:p + w] = x
    rows = dy[:, None] + torch.arange(h, device=x.device)          # (B, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)          # (B, W)
    # One gather over the flattened padded planes (5x faster than advanced indexing on uint8).
    flat = (rows[:, :, None] * wp + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    return padded.reshape(b, c, hp * wp).gather(2, flat).reshape(b, c, h, w)


def random_crop(x: torch.Tensor, padding: int = 4, *, generator: torch.Generator | None = None,
                fill: float = 0) -> torch.Tensor:
    """Random translation by up to ``padding`` pixels: pad with ``fill``, crop back to ``H x W``.

    Offsets ``dy, dx ~ U{0, ..., 2 * padding}`` independently per image (``crop_at``). The
    standard CIFAR augmentation (He et al. 2016, *Deep Residual Learning*; BNext Sec. 5.1) uses
    ``padding=4`` and zero fill on the raw image.
    """
    _check_nchw(x, "random_crop")
    n = x.shape[0]
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    return crop_at(x, dy, dx, padding, fill)


def random_hflip(x: torch.Tensor, p: float = 0.5, *, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``: ``out[b, :, :, j] = x[b, :, :, W-1-j]``."""
    _check_nchw(x, "random_hflip")
    flip = torch.rand(x.shape[0], generator=generator) < p
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Per-channel standardisation to float32: ``y[:, c] = (s * x[:, c] - mean[c]) / std[c]``.

    ``s = 1/255`` for uint8 input (pixels 0..255 -> [0, 1]) and ``s = 1`` for float input.
    """
    _check_nchw(x, "normalize")
    c = x.shape[1]
    if len(mean) != c or len(std) != c:
        raise ShapeError(f"normalize: expected {c} means and stds (one per channel), "
                         f"got {len(mean)} and {len(std)}")
    if min(std) <= 0:
        raise ValueError(f"normalize: std must be > 0, got {tuple(std)}")
    scale = 1.0 / 255.0 if x.dtype == torch.uint8 else 1.0
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, c, 1, 1)
    inv = 1.0 / torch.tensor(std, dtype=torch.float32, device=x.device).view(1, c, 1, 1)
    # y = x * (s / std) - mean / std: one multiply-add over the batch.
    return torch.addcmul(-m * inv, x.to(torch.float32), inv * scale)
