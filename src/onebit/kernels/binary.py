"""Binary GEMM and 2D convolution on bitpacked data, with fused output transforms.

Binary dot product of ``K`` values packed as in :mod:`onebit.kernels` (formats.h)::

    acc = K - 2 * popcount(a XOR b)                      (exact int32, |acc| <= K)

followed by an output transform per output channel ``n`` (Larq Compute Engine, Bannink et al.
2021, section 3.2: "fused operations are performed directly on the BGEMM accumulator values"):

* ``"int32"``: the raw accumulator;
* ``"float32"``: ``y = clamp(fma(multiplier[n], acc, bias[n]), clamp_min, clamp_max)`` with one
  rounding (fused multiply-add) in every ISA path (ReLU: ``clamp_min=0``);
* ``"int8"``: ``y`` as for float32, then ``round_half_to_even(clamp(y, -128, 127))``;
* ``"bitpacked"``: bit ``n`` (formats.h order, packed along output channels) is 1 iff
  ``multiplier[n] * acc + bias[n] < 0``, evaluated exactly through integer thresholds
  (:func:`binary_output_thresholds`), so no float rounding is involved.

Every path (``ref``, ``avx2``) gives bit-identical results for every output type and thread
count (float: the same single-rounding FMA everywhere).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple, Sequence, Union

import numpy as np

from onebit._native import _C
from onebit.errors import DTypeError, ShapeError
from onebit.kernels._common import as_array, check_threads, packed_words

__all__ = [
    "OUTPUT_TYPES",
    "OutputThresholds",
    "binary_output_thresholds",
    "bgemm",
    "bconv2d",
    "bconv2d_output_hw",
    "resolve_padding",
]

OUTPUT_TYPES = ("float32", "int8", "int32", "bitpacked")
_OUT_DTYPES = {"float32": np.float32, "int8": np.int8, "int32": np.int32, "bitpacked": np.uint32}
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
# Placeholders for the transform arrays an output type does not use (never read).
_EMPTY_F32 = np.zeros(0, np.float32)
_EMPTY_I32 = np.zeros(0, np.int32)
_EMPTY_U8 = np.zeros(0, np.uint8)

Padding = Union[str, int, Sequence[int]]


class OutputThresholds(NamedTuple):
    """Per-channel integer thresholds of a bitpacked output: ``bit = (acc < threshold) != flip``."""

    threshold: np.ndarray  # int32 (N,)
    flip: np.ndarray  # uint8 (N,), 0 or 1


def binary_output_thresholds(multiplier: np.ndarray, bias: np.ndarray) -> OutputThresholds:
    """Integer thresholds that make a bitpacked output exact (LCE section 3.2, converter side).

    The output bit of channel ``n`` is 1 (value -1) iff ``y = m*acc + b < 0`` with ``m, b`` the
    float32 multiplier and bias. Since ``acc`` is an integer, with exact rational arithmetic::

        m > 0:  m*acc + b < 0  <=>  acc < -b/m  <=>  acc < ceil(-b/m)              flip = 0
        m < 0:  m*acc + b < 0  <=>  acc > -b/m  <=>  not (acc < floor(-b/m) + 1)   flip = 1
        m = 0:  y = b: constant bit (b < 0); threshold = INT32_MIN (never reached), flip = b < 0

    so ``bit = (acc < threshold) != flip``. This equals the sign of the kernels' float output
    ``fma(m, acc, b)`` (a correctly rounded result has the sign of the exact value; ``y == 0``
    gives bit 0). Thresholds are clipped to int32, which |acc| <= K < 2^24 never reaches.

    Args:
        multiplier, bias: (N,) arrays, converted to float32 (the values the kernel would use).
    Raises:
        ShapeError: shapes differ or are not 1-D. ValueError: a non-finite multiplier or bias.
    """
    m = np.asarray(multiplier, dtype=np.float32)
    b = np.asarray(bias, dtype=np.float32)
    if m.ndim != 1 or m.shape != b.shape:
        raise ShapeError(f"multiplier and bias must be 1-D of equal length, got {m.shape} and {b.shape}")
    if not (np.isfinite(m).all() and np.isfinite(b).all()):
        raise ValueError("multiplier and bias must be finite to derive bitpacked thresholds; check the folded BatchNorm")
    threshold = np.empty(m.shape, dtype=np.int64)
    flip = np.zeros(m.shape, dtype=np.uint8)
    for n, (mn, bn) in enumerate(zip(m.tolist(), b.tolist())):
        fm, fb = Fraction(mn), Fraction(bn)  # exact values of the float32 numbers
        if fm > 0:
            t = math.ceil(-fb / fm)
        elif fm < 0:
            t = math.floor(-fb / fm) + 1
            flip[n] = 1
        else:
            t = _INT32_MIN
            flip[n] = 1 if fb < 0 else 0
        threshold[n] = min(max(t, _INT32_MIN), _INT32_MAX)
    return OutputThresholds(threshold.astype(np.int32), flip)


def _transform_args(
    output: str,
    n: int,
    multiplier,
    bias,
    clamp_min: float,
    clamp_max: float,
    thresholds: OutputThresholds | None,
) -> tuple:
    if output not in OUTPUT_TYPES:
        raise ValueError(f"output must be one of {OUTPUT_TYPES}, got {output!r}")
    empty_f, empty_i, empty_u = _EMPTY_F32, _EMPTY_I32, _EMPTY_U8

    def channel_vector(v, default: float, name: str) -> np.ndarray:
        if v is None:
            return np.full(n, default, dtype=np.float32)
        if not (isinstance(v, np.ndarray) and v.dtype == np.float32 and v.flags.c_contiguous):
            v = np.ascontiguousarray(np.asarray(v, dtype=np.float32))
        if v.shape != (n,):
            raise ShapeError(f"{name} must have shape ({n},) (one value per output channel), got {v.shape}")
        return v

    if output in ("float32", "int8"):
        if not clamp_min <= clamp_max:
            raise ValueError(f"clamp_min must be <= clamp_max, got {clamp_min} > {clamp_max}")
        return (
            channel_vector(multiplier, 1.0, "multiplier"),
            channel_vector(bias, 0.0, "bias"),
            float(clamp_min),
            float(clamp_max),
            empty_i,
            empty_u,
        )
    if output == "bitpacked":
        if thresholds is None:
            thresholds = binary_output_thresholds(
                channel_vector(multiplier, 1.0, "multiplier"), channel_vector(bias, 0.0, "bias")
            )
        threshold = np.ascontiguousarray(np.asarray(thresholds[0], dtype=np.int32))
        flip = np.ascontiguousarray(np.asarray(thresholds[1]).astype(np.uint8))
        if threshold.shape != (n,) or flip.shape != (n,):
            raise ShapeError(f"thresholds must be two ({n},) arrays, got {threshold.shape} and {flip.shape}")
        return empty_f, empty_f, 0.0, 0.0, threshold, flip
    return empty_f, empty_f, 0.0, 0.0, empty_i, empty_u


def _out_array(out: np.ndarray | None, output: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype = _OUT_DTYPES[output]
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray) or out.dtype != dtype or out.shape != shape:
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ShapeError(f"out must be a {np.dtype(dtype)} array of shape {shape} for output={output!r}, got {got}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ShapeError("out must be C-contiguous and writeable")
    return out


def _packed(x, name: str, ndim: int) -> np.ndarray:
    x = as_array(x, name)
    if x.dtype != np.uint32:
        raise DTypeError(f"{name} must hold uint32 packed words (onebit.kernels.bitpack), got {x.dtype}")
    if x.ndim != ndim:
        raise ShapeError(f"{name} must be {ndim}-D, got shape {x.shape}")
    return np.ascontiguousarray(x)


def bgemm(
    a: np.ndarray,
    b: np.ndarray,
    k: int,
    *,
    output: str = "float32",
    multiplier: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    clamp_min: float = -math.inf,
    clamp_max: float = math.inf,
    thresholds: OutputThresholds | None = None,
    out: np.ndarray | None = None,
    num_threads: int = 1,
) -> np.ndarray:
    """Binary GEMM ``acc[m, n] = K - 2 * popcount(a[m] XOR b[n])`` + fused output transform.

    Args:
        a: packed activations, uint32 ``(M, ceil(K/32))``.
        b: packed weights, uint32 ``(N, ceil(K/32))`` (one row per output channel).
        k: true depth K (< 2^24); padding bits of both operands must be 0.
        output: ``"float32"`` (default), ``"int8"``, ``"int32"`` or ``"bitpacked"``.
        multiplier, bias: per-channel (N,) values (default 1 and 0); for ``"bitpacked"`` they
            give the thresholds unless ``thresholds`` is passed.
        clamp_min, clamp_max: float32/int8 clamp (ReLU: ``clamp_min=0``).
        thresholds: precomputed :func:`binary_output_thresholds` for ``"bitpacked"``.
        out: optional preallocated C-contiguous output to write into.
    Returns:
        ``(M, N)`` float32/int8/int32, or uint32 ``(M, ceil(N/32))`` for ``"bitpacked"``.
    """
    a = _packed(a, "a", 2)
    b = _packed(b, "b", 2)
    k = int(k)
    if k < 0 or a.shape[1] != packed_words(k) or b.shape[1] != packed_words(k):
        raise ShapeError(
            f"bgemm: K={k} needs {packed_words(max(k, 0))} words per row, got a {a.shape} and b {b.shape}; "
            "pass the true depth K that was packed"
        )
    if k >= 2**24:
        raise ShapeError(f"bgemm: K must be < 2^24 (exact float accumulators), got {k}")
    m, n = a.shape[0], b.shape[0]
    targs = _transform_args(output, n, multiplier, bias, clamp_min, clamp_max, thresholds)
    shape = (m, packed_words(n)) if output == "bitpacked" else (m, n)
    out = _out_array(out, output, shape)
    _C.bgemm(a, b, k, output, *targs, out, check_threads(num_threads))
    return out


def _pair(v, name: str) -> tuple[int, int]:
    if type(v) is int and v >= 1:  # fast path of the common call
        return (v, v)
    if isinstance(v, (int, np.integer)):
        v = (int(v), int(v))
    v = tuple(int(x) for x in v)
    if len(v) != 2 or min(v) < 1:
        raise ValueError(f"{name} must be an int >= 1 or a pair of them, got {v!r}")
    return v  # type: ignore[return-value]


def resolve_padding(
    padding: Padding, in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` from ``"valid"``, ``"same"`` (TensorFlow rule: output
    ``ceil(in/stride)``, the extra row/column at the bottom/right), an int, ``(ph, pw)`` or
    ``(top, bottom, left, right)``."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            pads = []
            for size, k, s, d in zip(in_hw, kernel, stride, dilation):
                span = d * (k - 1) + 1
                total = max((-(-size // s) - 1) * s + span - size, 0)
                pads += [total // 2, total - total // 2]
            return tuple(pads)  # type: ignore[return-value]
        raise ValueError(f"padding must be 'valid', 'same', an int or a tuple, got {padding!r}")
    if isinstance(padding, (int, np.integer)):
        padding = (int(padding),) * 4
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        padding = (padding[0], padding[0], padding[1], padding[1])
    if len(padding) != 4 or min(padding) < 0:
        raise ValueError(f"padding must be >= 0 as int, (ph, pw) or (top, bottom, left, right), got {padding!r}")
    return padding  # type: ignore[return-value]


def bconv2d_output_hw(
    in_hw: tuple[int, int], kernel: tuple[int, int], stride, dilation, pads: tuple[int, int, int, int]
) -> tuple[int, int]:
    """Output height and width: ``(in + pad_before + pad_after - dilation*(k-1) - 1) // stride + 1``."""
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    return _output_hw(in_hw, kernel, stride, dilation, pads)


def _output_hw(in_hw, kernel, stride: tuple[int, int], dilation: tuple[int, int], pads) -> tuple[int, int]:
    hw = []
    for i, (size, k) in enumerate(zip(in_hw, kernel)):
        span = dilation[i] * (k - 1) + 1
        padded = size + pads[2 * i] + pads[2 * i + 1]
        if padded < span:
            raise ShapeError(f"bconv2d: padded input extent {padded} is smaller than the (dilated) kernel {span}")
        hw.append((padded - span) // stride[i] + 1)
    return hw[0], hw[1]


def bconv2d(
    x: np.ndarray,
    w: np.ndarray,
    channels: int,
    *,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    padding: Padding = "valid",
    pad_values: str = "one",
    groups: int = 1,
    output: str = "float32",
    multiplier: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    clamp_min: float = -math.inf,
    clamp_max: float = math.inf,
    thresholds: OutputThresholds | None = None,
    out: np.ndarray | None = None,
    num_threads: int = 1,
) -> np.ndarray:
    """Binary 2D convolution on bitpacked NHWC data with a fused output transform.

    ``acc[n, oh, ow, o] = sum_{i, j, c} x[n, oh*s_h - pt + i*d_h, ow*s_w - pl + j*d_w, c] * w[o, i, j, c]``
    over the ±1 values, then the output transform of this module's docstring.

    Args:
        x: packed input, uint32 ``(N, H, W, ceil(C/32))``.
        w: packed weights OHWI, uint32 ``(O, kh, kw, ceil((C/groups)/32))``.
        channels: true input channel count C.
        stride, dilation: int or ``(h, w)``.
        padding: ``"valid"``, ``"same"``, int, ``(ph, pw)`` or ``(top, bottom, left, right)``.
        pad_values: ``"one"`` (padded inputs are +1, LCE's fast default) or ``"zero"`` (padded
            inputs are 0, as a float conv; costs a per-position correction term).
        groups: channel groups; groups > 1 needs ``C/groups`` to be a multiple of 32 (as LCE).
        output, multiplier, bias, clamp_min, clamp_max, thresholds, out: as :func:`bgemm`.
    Returns:
        NHWC ``(N, OH, OW, O)``, or uint32 ``(N, OH, OW, ceil(O/32))`` for ``"bitpacked"``.
    """
    x = _packed(x, "x", 4)
    w = _packed(w, "w", 4)
    channels, groups = int(channels), int(groups)
    if channels < 1 or x.shape[3] != packed_words(channels):
        raise ShapeError(
            f"bconv2d: C={channels} needs {packed_words(max(channels, 1))} words per pixel, got x {x.shape}; "
            "pass the true channel count"
        )
    if groups < 1 or channels % groups or w.shape[0] % groups:
        raise ShapeError(
            f"bconv2d: groups={groups} must divide both the input channels ({channels}) and the output channels "
            f"({w.shape[0]})"
        )
    c_g = channels // groups
    if groups > 1 and c_g % 32:
        raise ShapeError(
            f"bconv2d: groups > 1 needs channels/groups to be a multiple of 32 (word-aligned groups, as LCE), "
            f"got {channels}/{groups} = {c_g}; use groups=1 or pad the channels"
        )
    if w.shape[3] != packed_words(c_g):
        raise ShapeError(
            f"bconv2d: weights must be (O, kh, kw, {packed_words(c_g)}) for C/groups={c_g}, got {w.shape}"
        )
    if pad_values not in ("one", "zero"):
        raise ValueError(f"pad_values must be 'one' or 'zero', got {pad_values!r}")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    kernel = (w.shape[1], w.shape[2])
    pads = resolve_padding(padding, (x.shape[1], x.shape[2]), kernel, stride, dilation)
    oh, ow = _output_hw((x.shape[1], x.shape[2]), kernel, stride, dilation, pads)
    o = w.shape[0]
    targs = _transform_args(output, o, multiplier, bias, clamp_min, clamp_max, thresholds)
    shape = (x.shape[0], oh, ow, packed_words(o) if output == "bitpacked" else o)
    out = _out_array(out, output, shape)
    _C.bconv2d(
        x, w, channels, stride[0], stride[1], dilation[0], dilation[1], pads[0], pads[1], pads[2], pads[3],
        groups, pad_values == "zero", output, *targs, out, check_threads(num_threads),
    )
    return out
