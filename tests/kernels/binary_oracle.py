"""Independent numpy/PyTorch oracles for the binary kernels (bgemm, bconv2d).

Accumulators come from float maths on unpacked ±1 values (exact: integer sums < 2^24), the
output transforms from the formulas in onebit/kernels.h written in numpy.
"""

from __future__ import annotations

import numpy as np


def signs(x: np.ndarray) -> np.ndarray:
    """±1 float32 values with the packing convention: x >= 0 (and NaN) -> +1, x < 0 -> -1."""
    return np.where(x < 0, -1.0, 1.0).astype(np.float32)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Bits (..., N) in {0, 1} -> uint32 (..., ceil(N/32)), bit n in word n//32 at n%32."""
    n = bits.shape[-1]
    words = (n + 31) // 32
    full = np.zeros(bits.shape[:-1] + (words * 32,), dtype=np.uint64)
    full[..., :n] = bits
    full = full.reshape(bits.shape[:-1] + (words, 32))
    return (full << np.arange(32, dtype=np.uint64)).sum(-1).astype(np.uint32)


def exact_linear(acc: np.ndarray, multiplier: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """m*acc + b in float64: m*acc is exact (24-bit m times |acc| < 2^24); the sum is one
    correctly rounded float64 addition, so its sign is the sign of the exact value."""
    return multiplier.astype(np.float64) * acc.astype(np.float64) + bias.astype(np.float64)


def transform(acc: np.ndarray, output: str, multiplier, bias, clamp_min=-np.inf, clamp_max=np.inf) -> np.ndarray:
    """Output transform of onebit/kernels.h on int accumulators (..., N).

    float32 / int8 are exact when m*acc + b is representable in float32 (tests use dyadic
    parameters for that); bitpacked is exact for any finite parameters.
    """
    if output == "int32":
        return acc.astype(np.int32)
    y = exact_linear(acc, multiplier, bias)
    if output == "bitpacked":
        return pack_bits((y < 0).astype(np.uint8))
    y = np.minimum(np.maximum(y.astype(np.float32), np.float32(clamp_min)), np.float32(clamp_max))
    if output == "float32":
        return y
    return np.rint(np.clip(y, -128, 127)).astype(np.int8)  # np.rint: round half to even


def dyadic_params(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Multipliers k/8 (k in [-16, 16], zeros included) and biases j/4: m*acc + b is exact in
    float32 for |acc| < 2^18, and .5 ties occur (round-half-to-even is exercised)."""
    m = (rng.integers(-16, 17, size=n) / 8).astype(np.float32)
    b = (rng.integers(-400, 401, size=n) / 4).astype(np.float32)
    return m, b
