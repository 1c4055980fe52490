"""bitpack / unpack: every ISA equals the scalar reference bit-exactly and the formula
``bit = (x < 0)`` written in numpy, on channel counts that hit word edges."""

from __future__ import annotations

import numpy as np
import pytest

from onebit import kernels
from onebit.errors import DTypeError, ShapeError
from tests.guard import guarded_copy

EDGE_K = [1, 2, 31, 32, 33, 63, 64, 65, 95, 96, 127, 128, 129, 255, 256, 257, 1000]


def numpy_bitpack(x: np.ndarray) -> np.ndarray:
    """Independent oracle: bit k%32 of word k//32 is (x[..., k] < 0)."""
    k = x.shape[-1]
    words = (k + 31) // 32
    bits = np.zeros(x.shape[:-1] + (words * 32,), dtype=np.uint64)
    bits[..., :k] = x < 0
    bits = bits.reshape(x.shape[:-1] + (words, 32))
    return (bits << np.arange(32, dtype=np.uint64)).sum(-1).astype(np.uint32)


@pytest.mark.parametrize("k", EDGE_K)
@pytest.mark.parametrize("dtype", [np.float32, np.int8])
def test_bitpack_matches_formula_and_ref(isa, rng, k, dtype):
    if dtype == np.float32:
        x = rng.standard_normal((3, 5, k)).astype(np.float32)
    else:
        x = rng.integers(-128, 128, size=(3, 5, k), dtype=np.int8)
    x = guarded_copy(x)
    got = kernels.bitpack(x)
    assert got.dtype == np.uint32 and got.shape == (3, 5, kernels.packed_words(k))
    np.testing.assert_array_equal(got, numpy_bitpack(x))
    with kernels.use_isa("ref"):
        np.testing.assert_array_equal(got, kernels.bitpack(x))


@pytest.mark.parametrize("k", EDGE_K)
def test_unpack_roundtrip(isa, rng, k):
    x = rng.standard_normal((4, k)).astype(np.float32)
    packed = guarded_copy(kernels.bitpack(x))
    signs = kernels.unpack(packed, k)
    np.testing.assert_array_equal(signs, np.where(x < 0, -1.0, 1.0).astype(np.float32))


def test_special_values_follow_the_sign_convention(isa):
    x = np.array([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-45, -1e-45], dtype=np.float32)
    # x >= 0 -> bit 0; x < 0 -> bit 1; -0.0 and NaN are not < 0.
    assert kernels.bitpack(x)[0] == 0b10100000
    i = np.array([0, -1, 127, -128], dtype=np.int8)
    assert kernels.bitpack(i)[0] == 0b1010


@pytest.mark.parametrize("num_threads", [1, 2, 3, 8])
def test_threads_give_identical_bits(isa, rng, num_threads):
    x = rng.standard_normal((37, 11, 70)).astype(np.float32)
    np.testing.assert_array_equal(kernels.bitpack(x, num_threads=num_threads), kernels.bitpack(x))
    p = kernels.bitpack(x)
    np.testing.assert_array_equal(kernels.unpack(p, 70, num_threads=num_threads), kernels.unpack(p, 70))


def test_empty_and_non_contiguous_inputs(rng):
    assert kernels.bitpack(np.zeros((0, 40), np.float32)).shape == (0, 2)
    assert kernels.bitpack(np.zeros((3, 0), np.float32)).shape == (3, 0)
    x = rng.standard_normal((8, 64)).astype(np.float32)
    np.testing.assert_array_equal(kernels.bitpack(x[:, ::2]), numpy_bitpack(x[:, ::2]))


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(DTypeError, match="float32 or int8"):
        kernels.bitpack(np.zeros((2, 3), np.float64))
    with pytest.raises(ShapeError, match="scalar"):
        kernels.bitpack(np.float32(1.0).reshape(()))
    with pytest.raises(ShapeError, match="needs 2 words"):
        kernels.unpack(np.zeros((2, 3), np.uint32), 40)
    with pytest.raises(DTypeError, match="uint32"):
        kernels.unpack(np.zeros((2, 2), np.int32), 40)
    with pytest.raises(ValueError, match="num_threads"):
        kernels.bitpack(np.zeros((2, 3), np.float32), num_threads=0)


def test_torch_tensors_are_accepted_without_copy():
    torch = pytest.importorskip("torch")
    t = torch.randn(4, 33)
    np.testing.assert_array_equal(kernels.bitpack(t), numpy_bitpack(t.numpy()))


def test_forcing_an_unsupported_isa_is_an_error():
    with pytest.raises(ValueError, match="not supported"):
        with kernels.use_isa("neon"):
            pass
