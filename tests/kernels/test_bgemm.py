"""bgemm: every ISA equals the scalar reference bit-exactly and the float computation on ±1
data, on depths that hit word / 256-bit-step edges, every output type and thread count."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from onebit import kernels
from onebit.errors import DTypeError, ShapeError
from tests.guard import guarded_copy, guarded_empty
from tests.kernels.binary_oracle import dyadic_params, signs, transform

EDGE_K = [1, 31, 32, 33, 63, 64, 65, 127, 129, 255, 256, 257, 600, 2304]
OUT_DTYPE = {"float32": np.float32, "int8": np.int8, "int32": np.int32, "bitpacked": np.uint32}


def packed_operands(rng, m, n, k):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k)).astype(np.float32)
    acc = (signs(a).astype(np.float64) @ signs(b).T.astype(np.float64)).astype(np.int64)
    return guarded_copy(kernels.bitpack(a)), guarded_copy(kernels.bitpack(b)), acc


def out_shape(m, n, output):
    return (m, kernels.packed_words(n)) if output == "bitpacked" else (m, n)


@pytest.mark.parametrize("k", EDGE_K)
def test_accumulator_matches_float_matmul(isa, rng, k):
    m, n = 11, 11  # AVX2: 8-row kernel for rows 0-7, 3 x 4 tiles for rows 8-10 (edge tiles too)
    a, b, acc = packed_operands(rng, m, n, k)
    out = guarded_empty((m, n), np.int32)
    got = kernels.bgemm(a, b, k, output="int32", out=out)
    assert got is out
    np.testing.assert_array_equal(got, acc)


# Row counts around the blocks of the AVX-512 path (16 rows, 8 rows, a zero-padded block for
# m % 8 >= 4, 3 x 8 tiles below) and of AVX2 (8 rows, 3 x 4 tiles); word counts 1..17 (every
# K tail of a 512-bit step; odd counts read half a 64-bit step) and wider ones, with K a few
# bits short of a whole word.
EDGE_M = [1, 2, 3, 4, 7, 8, 9, 12, 15, 16, 17, 22, 24, 27]
EDGE_N = [1, 7, 8, 9, 13]
EDGE_KW = list(range(1, 18)) + [31, 32, 33, 64, 65, 97]


@pytest.mark.parametrize("m", EDGE_M)
def test_block_and_tail_edges_match_float_matmul(isa, rng, m):
    for kw in EDGE_KW:
        for n in EDGE_N:
            k = 32 * kw - int(rng.integers(0, 5))
            a, b, acc = packed_operands(rng, m, n, k)
            out = guarded_empty((m, n), np.int32)
            np.testing.assert_array_equal(kernels.bgemm(a, b, k, output="int32", out=out), acc, err_msg=f"{m}x{n}x{k}")


def test_long_depth_flushes_byte_counters(isa, rng):
    # 40 x 256-bit steps > 31 steps between flushes of the 8-bit counters, plus a 5-word tail.
    k = 40 * 256 + 5 * 32
    a, b, acc = packed_operands(rng, 3, 6, k)
    np.testing.assert_array_equal(kernels.bgemm(a, b, k, output="int32"), acc)
    # all-disagreeing rows: the largest popcount (every byte counter at its maximum)
    ones = np.full((2, kernels.packed_words(k)), 0xFFFFFFFF, np.uint32)
    ones[:, -1] &= np.uint32((1 << (k % 32)) - 1) if k % 32 else np.uint32(0xFFFFFFFF)
    zeros = np.zeros((4, kernels.packed_words(k)), np.uint32)
    np.testing.assert_array_equal(kernels.bgemm(ones, zeros, k, output="int32"), np.full((2, 4), -k))


@pytest.mark.parametrize("output", ["float32", "int8", "bitpacked"])
@pytest.mark.parametrize("k", [1, 33, 129, 301])
def test_output_transforms_match_formula_and_ref(isa, rng, output, k):
    # 13 rows: the 8-row kernel and the 3 x 4 tiles; 70 columns: 8-wide vector transform
    # steps plus a scalar tail, 3 output words
    m, n = 13, 70
    a, b, acc = packed_operands(rng, m, n, k)
    mult, bias = dyadic_params(rng, n)
    lo, hi = (-20.0, 30.0) if output != "bitpacked" else (-np.inf, np.inf)
    out = guarded_empty(out_shape(m, n, output), OUT_DTYPE[output])
    got = kernels.bgemm(a, b, k, output=output, multiplier=mult, bias=bias, clamp_min=lo, clamp_max=hi, out=out)
    np.testing.assert_array_equal(got, transform(acc, output, mult, bias, lo, hi))
    with kernels.use_isa("ref"):
        np.testing.assert_array_equal(
            got, kernels.bgemm(a, b, k, output=output, multiplier=mult, bias=bias, clamp_min=lo, clamp_max=hi)
        )


@pytest.mark.parametrize("output", ["float32", "int8", "bitpacked"])
def test_random_float_parameters_are_bit_identical_to_ref(isa, rng, output):
    k, m, n = 777, 17, 45
    a, b, acc = packed_operands(rng, m, n, k)
    mult = (rng.standard_normal(n) * 0.05).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    got = kernels.bgemm(a, b, k, output=output, multiplier=mult, bias=bias, clamp_min=-3.0)
    with kernels.use_isa("ref"):
        want = kernels.bgemm(a, b, k, output=output, multiplier=mult, bias=bias, clamp_min=-3.0)
    np.testing.assert_array_equal(got, want)  # same single-rounding FMA in every path
    if output == "float32":
        y = np.maximum(mult.astype(np.float64) * acc + bias, -3.0)
        np.testing.assert_allclose(got, y, rtol=1e-6, atol=1e-6)
    if output == "bitpacked":
        np.testing.assert_array_equal(got, transform(acc, "bitpacked", mult, bias))


def test_int8_rounds_half_to_even_and_saturates(isa):
    # acc = K - 2*popcount over K = 5 ones-vs-zeros patterns gives acc in {5, 3, 1, -1, -3, -5}.
    k = 5
    a = np.array([[0b00000], [0b00001], [0b00011], [0b00111], [0b01111], [0b11111]], np.uint32)
    b = np.zeros((4, 1), np.uint32)
    mult = np.array([0.5, -0.5, 100.0, 0.25], np.float32)
    bias = np.array([0.0, 0.0, 0.0, 0.0], np.float32)
    got = kernels.bgemm(a, b, k, output="int8", multiplier=mult, bias=bias)
    acc = np.array([5, 3, 1, -1, -3, -5])
    # 2.5 -> 2, 1.5 -> 2, 0.5 -> 0, -0.5 -> -0, -1.5 -> -2, -2.5 -> -2; 1.25 -> 1, 0.75 -> 1
    np.testing.assert_array_equal(got[:, 0], [2, 2, 0, 0, -2, -2])
    np.testing.assert_array_equal(got[:, 1], [-2, -2, 0, 0, 2, 2])
    np.testing.assert_array_equal(got[:, 2], np.clip(acc * 100, -128, 127))
    np.testing.assert_array_equal(got[:, 3], [1, 1, 0, 0, -1, -1])


def exact_bit(m: float, b: float, acc: int) -> int:
    return int(Fraction(m) * acc + Fraction(b) < 0)


def test_thresholds_are_exact_at_the_boundary():
    rng = np.random.default_rng(7)
    m = np.concatenate([(rng.standard_normal(40) * 3).astype(np.float32), np.float32([0.0, -0.0, 0.0, 1e-30, -1e-30])])
    t_int = rng.integers(-50, 50, size=m.shape)
    # biases with -b/m exactly an integer (acc lands exactly on y = 0) for the first half,
    # arbitrary ones for the rest
    b = (-m.astype(np.float64) * t_int).astype(np.float32)
    b[20:40] = rng.standard_normal(20).astype(np.float32) * 40
    b[40:] = np.float32([3.0, -2.0, -0.0, 5.0, 5.0])
    th = kernels.binary_output_thresholds(m, b)
    assert th.threshold.dtype == np.int32 and th.flip.dtype == np.uint8
    for n in range(m.size):
        for acc in range(-70, 71):
            bit = int((acc < th.threshold[n]) != bool(th.flip[n]))
            assert bit == exact_bit(float(m[n]), float(b[n]), acc), (n, m[n], b[n], acc)


def test_bitpacked_output_exact_at_threshold_ties(isa, rng):
    k, m_rows, n = 63, 16, 40
    a, b, acc = packed_operands(rng, m_rows, n, k)
    mult = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32) * rng.choice([0.5, 1.0, 3.0], n).astype(np.float32)
    # bias = -m * (an accumulator value that occurs in that column): ties y == 0 exactly
    bias = np.array([-mult[j] * acc[j % m_rows, j] for j in range(n)], dtype=np.float32)
    got = kernels.bgemm(a, b, k, output="bitpacked", multiplier=mult, bias=bias)
    np.testing.assert_array_equal(got, transform(acc, "bitpacked", mult, bias))
    with kernels.use_isa("ref"):
        np.testing.assert_array_equal(got, kernels.bgemm(a, b, k, output="bitpacked", multiplier=mult, bias=bias))


@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("m", [1, 3, 40])  # 1 and 3 rows split columns across threads
@pytest.mark.parametrize("output", ["int32", "float32", "bitpacked"])
def test_thread_counts_give_identical_results(isa, rng, num_threads, m, output):
    k, n = 129, 100
    a, b, acc = packed_operands(rng, m, n, k)
    mult, bias = dyadic_params(rng, n)
    got = kernels.bgemm(a, b, k, output=output, multiplier=mult, bias=bias, num_threads=num_threads)
    np.testing.assert_array_equal(got, transform(acc, output, mult, bias))


def test_empty_shapes():
    w = np.zeros((3, 2), np.uint32)
    assert kernels.bgemm(np.zeros((0, 2), np.uint32), w, 40).shape == (0, 3)
    assert kernels.bgemm(w, np.zeros((0, 2), np.uint32), 40, output="bitpacked").shape == (3, 0)
    np.testing.assert_array_equal(kernels.bgemm(np.zeros((2, 0), np.uint32), np.zeros((3, 0), np.uint32), 0), 0)


def test_bad_inputs_raise_typed_errors():
    a = np.zeros((2, 2), np.uint32)
    with pytest.raises(DTypeError, match="uint32"):
        kernels.bgemm(a.astype(np.int32), a, 40)
    with pytest.raises(ShapeError, match="K=100 needs 4 words"):
        kernels.bgemm(a, a, 100)
    with pytest.raises(ShapeError, match="multiplier must have shape"):
        kernels.bgemm(a, a, 40, multiplier=np.ones(3))
    with pytest.raises(ShapeError, match="out must be a int32"):
        kernels.bgemm(a, a, 40, output="int32", out=np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="output must be one of"):
        kernels.bgemm(a, a, 40, output="float16")
    with pytest.raises(ValueError, match="finite"):
        kernels.binary_output_thresholds(np.array([np.nan], np.float32), np.zeros(1, np.float32))
