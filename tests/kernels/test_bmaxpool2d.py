"""bmaxpool2d: every ISA equals the scalar reference bit-exactly and PyTorch's float max_pool2d
on +-1 data (padded with -inf, i.e. padded positions ignored), on channel counts that hit word
and vector edges, kernel sizes, strides, paddings and thread counts."""

from __future__ import annotations

import numpy as np
import pytest

from onebit import kernels
from onebit.errors import DTypeError, ShapeError
from tests.guard import guarded_copy, guarded_empty

torch = pytest.importorskip("torch")

# 256 channels = 8 words = one AVX2 vector; 257/300/520 add a word tail after the vectors.
CHANNELS = [1, 31, 32, 33, 63, 64, 65, 127, 129, 256, 257, 300, 520]
CASES = [  # kernel, stride, padding
    ((2, 2), None, "valid"),
    ((3, 3), (2, 2), "valid"),
    ((3, 3), (1, 1), "same"),
    ((3, 3), (2, 2), "same"),
    ((2, 3), (1, 2), "same"),
    ((3, 2), (2, 1), (1, 0, 0, 1)),
    ((1, 1), (1, 1), "valid"),
    ((5, 5), (3, 3), (2, 4, 4, 0)),
]


def torch_oracle(x: np.ndarray, kernel, stride, pads) -> np.ndarray:
    """float max-pool of NHWC +-1 data with -inf padding, then packed signs."""
    top, bottom, left, right = pads
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    xt = torch.nn.functional.pad(xt, (left, right, top, bottom), value=float("-inf"))
    y = torch.nn.functional.max_pool2d(xt, kernel, stride)
    return kernels.bitpack(np.ascontiguousarray(y.permute(0, 2, 3, 1).numpy()))


def run_case(rng, channels, kernel, stride, padding, num_threads=1, shape=(2, 9, 8)):
    n, h, w = shape
    # biased signs so that both all -1 windows (bit 1) and mixed windows occur
    x = np.where(rng.random((n, h, w, channels)) < 0.8, -1.0, 1.0).astype(np.float32)
    packed = guarded_copy(kernels.bitpack(x))
    stride_ = kernel if stride is None else stride
    pads = kernels.pool_padding(h, w, kernel, stride_, padding)
    expected = torch_oracle(x, kernel, stride_, pads)
    out = guarded_empty(expected.shape, np.uint32)
    out[...] = 0xDEADBEEF
    got = kernels.bmaxpool2d(packed, channels, kernel, stride, padding, num_threads=num_threads, out=out)
    assert got is out
    np.testing.assert_array_equal(got, expected)
    with kernels.use_isa("ref"):
        np.testing.assert_array_equal(got, kernels.bmaxpool2d(packed, channels, kernel, stride, padding))
    return got


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("kernel,stride,padding", CASES)
def test_bmaxpool2d_matches_torch_and_ref(isa, rng, channels, kernel, stride, padding):
    run_case(rng, channels, kernel, stride, padding)


@pytest.mark.parametrize("num_threads", [1, 2, 3])
def test_threads_give_identical_bits(isa, rng, num_threads):
    run_case(rng, 300, (3, 3), (2, 2), "same", num_threads=num_threads, shape=(3, 17, 11))


def test_same_padding_output_size_and_pads():
    # TF rule: H=9 -> out 5, total pad 2 -> (1, 1); W=8 -> out 4, total pad 1 -> (0, 1)
    assert kernels.pool_padding(9, 8, (3, 3), (2, 2), "same") == (1, 1, 0, 1)
    assert kernels.pool_padding(8, 8, (2, 2), (2, 2), "same") == (0, 0, 0, 0)
    assert kernels.pool_padding(8, 8, (4, 4), (1, 1), "same") == (1, 2, 1, 2)
    x = np.zeros((1, 9, 8, 1), np.uint32)
    assert kernels.bmaxpool2d(x, 1, 3, 2, "same").shape == (1, 5, 4, 1)


def test_output_padding_bits_are_zero(isa, rng):
    """Garbage in the input's padding bits (channels >= C) never reaches the output."""
    x = kernels.bitpack(np.full((1, 4, 4, 40), -1.0, np.float32))
    x[..., -1] |= np.uint32(0xFFFFFF00)  # channels 40..63 are padding
    got = kernels.bmaxpool2d(x, 40, 2)
    np.testing.assert_array_equal(got[..., 0], 0xFFFFFFFF)
    np.testing.assert_array_equal(got[..., 1], 0xFF)


def test_bad_inputs_raise_typed_errors():
    x = np.zeros((1, 4, 4, 2), np.uint32)
    with pytest.raises(DTypeError, match="uint32"):
        kernels.bmaxpool2d(x.astype(np.int32), 40, 2)
    with pytest.raises(ShapeError, match="needs 1 words"):
        kernels.bmaxpool2d(x, 20, 2)
    with pytest.raises(ShapeError, match=r"\(N, H, W, words\)"):
        kernels.bmaxpool2d(x[0], 40, 2)
    with pytest.raises(ValueError, match=r"pad must be in \[0, 2\)"):
        kernels.bmaxpool2d(x, 40, 2, 1, padding=2)
    with pytest.raises(ValueError, match="padding must be"):
        kernels.bmaxpool2d(x, 40, 2, padding="full")
    with pytest.raises(ShapeError, match="larger than the padded input"):
        kernels.bmaxpool2d(x, 40, 5, padding="valid")
