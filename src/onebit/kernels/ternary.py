"""Ternary (BitNet b1.58) kernels: pack weights to 2 bits, quantize activations to int8 per token,
and multiply them (``tgemv`` for one token, ``tgemm`` for many).

Formats (``csrc/include/onebit/formats.h``, "tq2"):

* weights ``t in {-1, 0, +1}`` of a ``(N, K)`` matrix are stored as ``uint8 (N, 32 * ceil(K/128))``:
  field ``q = t + 1`` (2 bits); byte ``j`` of 128-weight block ``b`` holds the weights
  ``k = 128 b + 32 l + j`` in bits ``2l, 2l+1`` (``l = 0..3``); the tail past ``K`` holds ``t = 0``.
  One float ``w_scale = gamma = mean|W|`` per tensor (bitnet eq. 1-3), so ``W ~= gamma * t``.
* activations: per row ``x_scale = 127 / max(max|x|, 1e-5)`` and
  ``x_q = clip(round(x * x_scale), -127, 127)`` (round half to even, float32 arithmetic).
* product: ``y[m, n] = acc[m, n] * (w_scale / x_scale[m])`` with the exact integer
  ``acc[m, n] = sum_k t[n, k] * x_q[m, k]``, i.e. bitnet's ``acc * gamma * max|x| / 127``.
"""

from __future__ import annotations

import math

import numpy as np

from onebit._native import _C
from onebit.errors import DTypeError, ShapeError
from onebit.kernels._common import as_array, check_threads

__all__ = [
    "TERNARY_BLOCK",
    "ternary_row_bytes",
    "pack_ternary",
    "unpack_ternary",
    "quantize_i8",
    "tgemv",
    "tgemm",
    "ternary_linear",
]

TERNARY_BLOCK = 128  # weights per 32-byte block
_BLOCK_BYTES = TERNARY_BLOCK // 4
_EPS = 1e-5
_U8, _I8, _I32, _F32 = np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.int32), np.dtype(np.float32)


def ternary_row_bytes(k: int) -> int:
    """Bytes of one packed row of ``k`` ternary weights: ``32 * ceil(k / 128)`` (2 bits/weight)."""
    return -(-int(k) // TERNARY_BLOCK) * _BLOCK_BYTES


def _ternarize(w: np.ndarray) -> tuple[np.ndarray, float]:
    """absmean quantization (bitnet eq. 1-3): ``gamma = max(mean|W|, 1e-5)``,
    ``t = clip(round(W / gamma), -1, 1)`` (round half to even, like ``torch.round``)."""
    w32 = w.astype(np.float32, copy=False)
    mean_abs = float(np.abs(w32, dtype=np.float32).mean(dtype=np.float64)) if w32.size else 0.0
    gamma = np.float32(max(mean_abs, _EPS))
    t = np.clip(np.rint(w32 / gamma), -1, 1).astype(np.int8)
    return t, float(gamma)


def pack_ternary(w: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, float]:
    """Pack a ``(N, K)`` weight matrix into the tq2 format: returns ``(packed uint8 (N, 32*ceil(K/128)), w_scale)``.

    * int8 input must hold only -1, 0, +1 and is packed as is; ``w_scale`` is ``scale`` (default 1.0).
    * float input is ternarized with bitnet's absmean quantizer (eq. 1-3):
      ``gamma = mean|W|``, ``t = RoundClip(W / gamma, -1, 1)``; ``w_scale = gamma`` (``scale`` must be None).
    """
    w = as_array(w, "w")
    if w.ndim != 2:
        raise ShapeError(f"pack_ternary expects a weight matrix of shape (N, K), got shape {w.shape}")
    if w.dtype == np.int8:
        if w.size and (w.min() < -1 or w.max() > 1):
            raise ValueError(
                f"pack_ternary: int8 weights must be in {{-1, 0, 1}}, found values in [{w.min()}, {w.max()}]; "
                "pass float weights to ternarize them with the absmean quantizer"
            )
        t, w_scale = w, 1.0 if scale is None else float(scale)
    elif np.issubdtype(w.dtype, np.floating):
        if scale is not None:
            raise ValueError("pack_ternary: `scale` is only for int8 ternary input; float input gets gamma = mean|W|")
        t, w_scale = _ternarize(w)
    else:
        raise DTypeError(f"pack_ternary expects int8 ternary or float weights, got {w.dtype}")
    n, k = t.shape
    blocks = -(-k // TERNARY_BLOCK)
    q = np.ones((n, blocks * TERNARY_BLOCK), dtype=np.uint8)  # tail: q = 1, i.e. t = 0
    q[:, :k] = t.astype(np.int16) + 1
    q = q.reshape(n, blocks, 4, _BLOCK_BYTES)  # [n, b, l, j]: weight 128 b + 32 l + j
    packed = q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)
    return np.ascontiguousarray(packed.reshape(n, blocks * _BLOCK_BYTES)), w_scale


def unpack_ternary(packed: np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`pack_ternary`: ``uint8 (N, 32*ceil(K/128))`` -> int8 ``(N, K)`` in {-1, 0, 1}."""
    packed = _check_packed(packed, int(k), "unpack_ternary")
    n = packed.shape[0]
    v = packed.reshape(n, -1, 1, _BLOCK_BYTES)
    q = (v >> (2 * np.arange(4, dtype=np.uint8)).reshape(1, 1, 4, 1)) & 3
    return (q.reshape(n, -1)[:, :k].astype(np.int8) - 1).astype(np.int8)


def _check_packed(packed: object, k: int, op: str) -> np.ndarray:
    packed = as_array(packed, "packed")
    if packed.dtype != _U8:
        raise DTypeError(f"{op} expects packed ternary weights as uint8 (from pack_ternary), got {packed.dtype}")
    if k < 0 or packed.ndim != 2 or packed.shape[1] != ternary_row_bytes(k):
        raise ShapeError(
            f"{op}: K={k} needs packed weights of shape (N, {ternary_row_bytes(max(k, 0))}), got {packed.shape}; "
            "K is the activations' last axis and must be the K the weights were packed with"
        )
    return packed if packed.flags.c_contiguous else np.ascontiguousarray(packed)


def _check_out(out: np.ndarray | None, shape: tuple[int, ...], dtype, name: str) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray) or out.dtype != dtype or out.shape != shape or not out.flags.c_contiguous:
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ShapeError(f"{name} must be a C-contiguous {np.dtype(dtype)} array of shape {shape}, got {got}")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    return out


def quantize_i8(
    x: np.ndarray, *, num_threads: int = 1, out: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-token absmax int8 quantization (BitNet b1.58 activations) of float32 ``x (..., K)``.

    Returns ``(x_q int8 (..., K), x_scale float32 (...))`` with
    ``x_scale = 127 / max(max_k |x|, 1e-5)`` and ``x_q = clip(round(x * x_scale), -127, 127)``
    (round half to even), so ``x ~= x_q / x_scale``. ``out=(q, scale)`` writes into given arrays.
    """
    x = as_array(x, "x")
    if x.dtype != _F32:
        raise DTypeError(f"quantize_i8 expects float32 activations, got {x.dtype}; use x.astype(np.float32)")
    if x.ndim < 1:
        raise ShapeError("quantize_i8 expects an array of shape (..., K), got a scalar")
    lead, k = x.shape[:-1], x.shape[-1]
    q = _check_out(None if out is None else out[0], x.shape, _I8, "out[0]")
    s = _check_out(None if out is None else out[1], lead, _F32, "out[1]")
    m = math.prod(lead)
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    _C.quantize_i8(x.reshape(m, k), q.reshape(m, k), s.reshape(m), check_threads(num_threads))
    return q, s




def _matmul(op: str, packed, w_scale, x_q, x_scale, num_threads, out, out_dtype) -> np.ndarray:
    # Kept lean: this runs once per linear layer per decoded token.
    x_q = as_array(x_q, "x_q")
    x_scale = as_array(x_scale, "x_scale")
    if x_q.dtype != _I8:
        raise DTypeError(f"{op} expects int8 activations (from quantize_i8), got {x_q.dtype}")
    if x_scale.dtype != _F32:
        raise DTypeError(f"{op} expects float32 x_scale (from quantize_i8), got {x_scale.dtype}")
    if x_q.ndim < 1:
        raise ShapeError(f"{op} expects activations of shape (..., K), got a scalar")
    lead, k = x_q.shape[:-1], x_q.shape[-1]
    if x_scale.shape != lead:
        raise ShapeError(f"{op}: x_scale must have shape {lead} (one scale per row of x_q), got {x_scale.shape}")
    packed = _check_packed(packed, k, op)
    out_dtype = out_dtype if isinstance(out_dtype, np.dtype) else np.dtype(out_dtype)
    if out_dtype == _F32:
        fn = _C.tgemv_f32 if op == "tgemv" else _C.tgemm_f32
    elif out_dtype == _I32:
        fn = _C.tgemv_i32 if op == "tgemv" else _C.tgemm_i32
    else:
        raise DTypeError(f"{op}: out_dtype must be float32 (scaled) or int32 (raw accumulators), got {out_dtype}")
    n = packed.shape[0]
    m = math.prod(lead)
    result = _check_out(out, (*lead, n), out_dtype, "out")
    if not x_q.flags.c_contiguous:
        x_q = np.ascontiguousarray(x_q)
    if not x_scale.flags.c_contiguous:
        x_scale = np.ascontiguousarray(x_scale)
    fn(packed, float(w_scale), x_q.reshape(m, k), x_scale.reshape(m), result.reshape(m, n), check_threads(num_threads))
    return result


def tgemv(
    packed: np.ndarray,
    w_scale: float,
    x_q: np.ndarray,
    x_scale: np.ndarray,
    *,
    num_threads: int = 1,
    out: np.ndarray | None = None,
    out_dtype=np.float32,
) -> np.ndarray:
    """Ternary matrix x int8 vector (decode, batch 1): ``y[n] = (sum_k t[n,k] x_q[k]) * w_scale / x_scale``.

    ``x_q`` is ``(K,)`` (``x_scale`` a 0-d array) or ``(M, K)`` with small M (each row streams the
    packed weights once; use :func:`tgemm` for batches). ``out_dtype=np.int32`` returns the exact
    integer accumulators instead. Threads split the N output rows.
    """
    return _matmul("tgemv", packed, w_scale, x_q, x_scale, num_threads, out, out_dtype)


def tgemm(
    packed: np.ndarray,
    w_scale: float,
    x_q: np.ndarray,
    x_scale: np.ndarray,
    *,
    num_threads: int = 1,
    out: np.ndarray | None = None,
    out_dtype=np.float32,
) -> np.ndarray:
    """Ternary matrix x int8 matrix (prefill): ``y[m, n] = (sum_k t[n,k] x_q[m,k]) * w_scale / x_scale[m]``.

    ``x_q (..., K)`` int8 with ``x_scale (...)`` float32 (from :func:`quantize_i8`); returns
    ``(..., N)``. Blocks of packed rows are expanded to bytes once and reused for every
    activation row. ``out_dtype=np.int32`` returns the exact integer accumulators.
    """
    return _matmul("tgemm", packed, w_scale, x_q, x_scale, num_threads, out, out_dtype)


def ternary_linear(x: np.ndarray, packed: np.ndarray, w_scale: float, *, num_threads: int = 1) -> np.ndarray:
    """BitLinear forward without bias (bitnet sec. 2): quantize ``x (..., K)`` per token to int8,
    multiply by the packed ternary weights, rescale: ``y ~= x @ (w_scale * t).T``, float32 ``(..., N)``.
    Uses :func:`tgemv` for a single token and :func:`tgemm` otherwise."""
    x_q, x_scale = quantize_i8(x, num_threads=num_threads)
    rows = math.prod(x_q.shape[:-1])
    op = tgemv if rows == 1 else tgemm
    return op(packed, w_scale, x_q, x_scale, num_threads=num_threads)
