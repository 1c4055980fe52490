"""bmaxpool2d: binary max-pool on bitpacked NHWC data (Larq Compute Engine's LceBMaxPool2d).

``max(sign(x)) = sign(max(x))`` (LCE paper sec. 3.2): with bit 1 = -1, a window's output bit
is 1 only if every input bit is 1, so the pooled word is the bitwise AND of the window's words.
Padded positions are ignored (they count as neither +1 nor -1, like -inf padding in float).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from onebit._native import _C
from onebit.errors import DTypeError, ShapeError
from onebit.kernels._common import as_array, check_threads, packed_words

__all__ = ["bmaxpool2d", "pool_padding"]


def _pair(v: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    v = tuple(int(i) for i in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair (h, w), got {v}")
    return v


def pool_padding(
    in_h: int, in_w: int, kernel: tuple[int, int], stride: tuple[int, int], padding
) -> tuple[int, int, int, int]:
    """Explicit pads ``(top, bottom, left, right)`` for ``padding``:

    * ``"valid"``: no padding;
    * ``"same"``: TensorFlow's rule, ``out = ceil(in / stride)``, total pad
      ``max((out - 1) * stride + kernel - in, 0)`` split with the extra one at the bottom/right;
    * an int ``p``, a pair ``(ph, pw)`` or a 4-tuple ``(top, bottom, left, right)``.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            pads = []
            for size, k, s in ((in_h, kernel[0], stride[0]), (in_w, kernel[1], stride[1])):
                out = -(-size // s)
                total = max((out - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            return tuple(pads)  # type: ignore[return-value]
        raise ValueError(f"padding must be 'valid', 'same', an int or a tuple, got {padding!r}")
    if isinstance(padding, (int, np.integer)):
        p = int(padding)
        return p, p, p, p
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) == 4:
        return padding  # type: ignore[return-value]
    raise ValueError(f"padding tuple must have 2 or 4 entries, got {padding}")


def bmaxpool2d(
    x: np.ndarray,
    channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding="valid",
    *,
    num_threads: int = 1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Binary max-pool of bitpacked ``uint32 (N, H, W, ceil(C/32))`` holding ``channels`` = C values.

    Output ``uint32 (N, Ho, Wo, ceil(C/32))``, ``Ho = (H + top + bottom - kh) // sh + 1`` (same for W),
    each word the AND of the words in its window (bit 1 = -1; LCE sec. 3.2). ``stride``
    defaults to ``kernel_size``; see :func:`pool_padding` for ``padding``. Every pad must be in
    ``[0, kernel)`` so no window is empty. Output padding bits (channels >= C) are 0.
    """
    x = as_array(x, "x")
    if x.dtype != np.uint32:
        raise DTypeError(f"bmaxpool2d expects bitpacked uint32 input (from bitpack), got {x.dtype}")
    if x.ndim != 4:
        raise ShapeError(f"bmaxpool2d expects shape (N, H, W, words), got {x.shape}")
    channels = int(channels)
    if channels < 1 or x.shape[3] != packed_words(channels):
        raise ShapeError(
            f"bmaxpool2d: channels={channels} needs {packed_words(max(channels, 1))} words on the last axis, "
            f"got shape {x.shape}; pass the true channel count that was packed"
        )
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(kernel_size if stride is None else stride, "stride")
    if min(kh, kw, sh, sw) < 1:
        raise ValueError(f"kernel_size and stride must be >= 1, got kernel {(kh, kw)}, stride {(sh, sw)}")
    n, h, w, words = x.shape
    top, bottom, left, right = pool_padding(h, w, (kh, kw), (sh, sw), padding)
    for p, k, name in ((top, kh, "top"), (bottom, kh, "bottom"), (left, kw, "left"), (right, kw, "right")):
        if not 0 <= p < k:
            raise ValueError(f"bmaxpool2d: {name} pad must be in [0, {k}) so no window is all padding, got {p}")
    if h + top + bottom < kh or w + left + right < kw:
        padded = (h + top + bottom, w + left + right)
        raise ShapeError(f"bmaxpool2d: kernel {(kh, kw)} is larger than the padded input {padded}")
    ho, wo = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
    shape = (n, ho, wo, words)
    if out is None:
        out = np.empty(shape, dtype=np.uint32)
    elif not isinstance(out, np.ndarray) or out.dtype != np.uint32 or out.shape != shape or not out.flags.c_contiguous:
        raise ShapeError(f"out must be a C-contiguous uint32 array of shape {shape}")
    _C.bmaxpool2d(
        np.ascontiguousarray(x), channels, kh, kw, sh, sw, top, bottom, left, right, out, check_threads(num_threads)
    )
    return out
