"""Float32 kernels of the runtime (NHWC): direct conv for few input channels, depthwise conv,
and a per-channel affine + activation; convolutions fuse ``y = clamp(acc + bias)``.

They exist because these full-precision ops are a large share of a binary network's latency
once the binary convolutions are fast (Larq Compute Engine, Bannink et al. 2021, Table 4:
~40% of QuickNet), and numpy alone is several times slower than PyTorch on them (no fused
epilogue, no depthwise kernel, a tiny im2col depth for a 3-channel first conv).

Zero padding is explicit ``(top, bottom, left, right)``; output extent
``OH = (H + top + bottom - dh*(kh-1) - 1) // sh + 1``. Each output is computed by one FMA
chain in a fixed order (bias, taps row-major, channels), identical in the ``ref`` and ``avx2``
paths, and independent of ``num_threads``.
"""

from __future__ import annotations

import math

import numpy as np

from onebit._native import _C
from onebit.errors import DTypeError, ShapeError
from onebit.kernels._common import as_array, check_threads

__all__ = ["conv2d_direct", "depthwise_conv2d", "channel_affine"]

_EMPTY = np.zeros(0, np.float32)
_F32 = np.dtype(np.float32)


def _f32(x, name: str) -> np.ndarray:
    x = as_array(x, name)
    if x.dtype != _F32:
        raise DTypeError(f"{name} must be float32, got {x.dtype}; convert with .astype(np.float32)")
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def _vector(v, n: int, name: str) -> np.ndarray:
    if v is None:
        return _EMPTY
    v = _f32(v, name)
    if v.shape != (n,):
        raise ShapeError(f"{name} must have shape ({n},) (one value per channel), got {v.shape}")
    return v


def _bounds(lo: float | None, hi: float | None) -> tuple[float, float]:
    lo = -math.inf if lo is None else float(lo)
    hi = math.inf if hi is None else float(hi)
    if not lo <= hi:
        raise ValueError(f"clamp_min must be <= clamp_max, got {lo} > {hi}")
    return lo, hi


def _out_hw(x: np.ndarray, kh: int, kw: int, stride, dilation, padding) -> tuple[int, int]:
    top, bottom, left, right = padding
    hw = []
    for size, k, s, d, p0, p1 in ((x.shape[1], kh, stride[0], dilation[0], top, bottom),
                                  (x.shape[2], kw, stride[1], dilation[1], left, right)):
        span = d * (k - 1) + 1
        if size + p0 + p1 < span:
            raise ShapeError(f"padded input extent {size + p0 + p1} is smaller than the (dilated) window {span}")
        hw.append((size + p0 + p1 - span) // s + 1)
    return hw[0], hw[1]


def _out(out, shape) -> np.ndarray:
    if out is None:
        return np.empty(shape, np.float32)
    if not isinstance(out, np.ndarray) or out.dtype != _F32 or out.shape != tuple(shape) or not out.flags.c_contiguous:
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ShapeError(f"out must be a C-contiguous float32 array of shape {tuple(shape)}, got {got}")
    return out


def conv2d_direct(
    x: np.ndarray,
    w_hwio: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride=(1, 1),
    dilation=(1, 1),
    padding=(0, 0, 0, 0),
    clamp_min: float | None = None,
    clamp_max: float | None = None,
    out: np.ndarray | None = None,
    num_threads: int = 1,
) -> np.ndarray:
    """Direct float conv (groups = 1) for few input channels, NHWC:
    ``y[n, oh, ow, o] = clamp(bias[o] + sum_{i,j,c} xp[n, oh*sh + i*dh, ow*sw + j*dw, c] * w[i, j, c, o])``.

    Args:
        x: float32 ``(N, H, W, C)``. w_hwio: float32 ``(kh, kw, C, O)`` (OHWI weights transposed
            ``(1, 2, 3, 0)``). bias: ``(O,)`` or None.
        stride, dilation: ``(h, w)``; padding: zero pads ``(top, bottom, left, right)``.
        clamp_min, clamp_max: fused clamp, None = open (ReLU: ``clamp_min=0``).
    Returns:
        float32 ``(N, OH, OW, O)``.
    """
    x, w = _f32(x, "x"), _f32(w_hwio, "w_hwio")
    if x.ndim != 4 or w.ndim != 4 or w.shape[2] != x.shape[3]:
        raise ShapeError(f"conv2d_direct: expected x (N, H, W, C) and w (kh, kw, C, O) with one C, got x {x.shape}, "
                         f"w {w.shape}")
    lo, hi = _bounds(clamp_min, clamp_max)
    oh, ow = _out_hw(x, w.shape[0], w.shape[1], stride, dilation, padding)
    y = _out(out, (x.shape[0], oh, ow, w.shape[3]))
    _C.fconv2d_direct(x, w, _vector(bias, w.shape[3], "bias"), lo, hi, int(stride[0]), int(stride[1]),
                      int(dilation[0]), int(dilation[1]), *(int(p) for p in padding), y, check_threads(num_threads))
    return y


def depthwise_conv2d(
    x: np.ndarray,
    w_hwc: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride=(1, 1),
    dilation=(1, 1),
    padding=(0, 0, 0, 0),
    clamp_min: float | None = None,
    clamp_max: float | None = None,
    out: np.ndarray | None = None,
    num_threads: int = 1,
) -> np.ndarray:
    """Depthwise float conv (groups = C, one output per channel), NHWC:
    ``y[n, oh, ow, c] = clamp(bias[c] + sum_{i,j} xp[n, oh*sh + i*dh, ow*sw + j*dw, c] * w[i, j, c])``.

    Args:
        x: float32 ``(N, H, W, C)``. w_hwc: float32 ``(kh, kw, C)`` (OHWI ``(C, kh, kw, 1)``
            weights transposed). bias: ``(C,)`` or None. Others as :func:`conv2d_direct`.
    Returns:
        float32 ``(N, OH, OW, C)``.
    """
    x, w = _f32(x, "x"), _f32(w_hwc, "w_hwc")
    if x.ndim != 4 or w.ndim != 3 or w.shape[2] != x.shape[3]:
        raise ShapeError(f"depthwise_conv2d: expected x (N, H, W, C) and w (kh, kw, C) with one C, got x {x.shape}, "
                         f"w {w.shape}")
    lo, hi = _bounds(clamp_min, clamp_max)
    oh, ow = _out_hw(x, w.shape[0], w.shape[1], stride, dilation, padding)
    y = _out(out, (x.shape[0], oh, ow, x.shape[3]))
    _C.fdwconv2d(x, w, _vector(bias, x.shape[3], "bias"), lo, hi, int(stride[0]), int(stride[1]),
                 int(dilation[0]), int(dilation[1]), *(int(p) for p in padding), y, check_threads(num_threads))
    return y


def channel_affine(
    x: np.ndarray,
    scale: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    alpha: np.ndarray | None = None,
    *,
    clamp_min: float | None = None,
    clamp_max: float | None = None,
    out: np.ndarray | None = None,
    num_threads: int = 1,
) -> np.ndarray:
    """Per-channel affine and activation on the last axis of float32 ``x (..., C)``:
    ``y = x*scale[c] + bias[c]`` (one FMA when both are given; None = 1 / 0), then PReLU
    ``y = alpha[c]*y if y < 0`` (None = none), then ``clamp(y, clamp_min, clamp_max)``.
    NaN passes through the clamp. ``out`` may be ``x`` itself (in place).

    Covers scale_bias (a folded BatchNorm), prelu, relu (``clamp_min=0``), clamp, and the
    bias + clamp epilogue of dense layers.
    """
    x = _f32(x, "x")
    if x.ndim < 1:
        raise ShapeError("channel_affine expects x of shape (..., C), got a scalar")
    c = x.shape[-1]
    lo, hi = _bounds(clamp_min, clamp_max)
    y = _out(out, x.shape)
    _C.channel_affine(x, _vector(scale, c, "scale"), _vector(bias, c, "bias"), _vector(alpha, c, "alpha"), lo, hi, y,
                      check_threads(num_threads))
    return y
