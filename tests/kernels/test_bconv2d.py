"""bconv2d: every ISA equals the scalar reference bit-exactly and PyTorch's float conv2d on ±1
data (F.pad with 1.0 for one-padding, 0.0 for zero-padding), on a sampled grid of channel
counts at word edges, kernels 1-7, strides, dilations, groups, paddings, output types and
thread counts."""

from __future__ import annotations

import numpy as np
import pytest

from onebit import kernels
from onebit.errors import ShapeError
from onebit.kernels.binary import bconv2d_output_hw, resolve_padding
from tests.guard import guarded_copy, guarded_empty
from tests.kernels.binary_oracle import dyadic_params, signs, transform

torch = pytest.importorskip("torch")
F = torch.nn.functional

# (batch, H, W, C, O, kernel, stride, dilation, padding, pad_values, groups)
CASES = [
    (1, 6, 7, 1, 5, 3, 1, 1, "same", "one", 1),
    (2, 7, 6, 31, 9, 3, 2, 1, 1, "zero", 1),
    (1, 8, 8, 32, 33, 5, 1, 2, "same", "zero", 1),
    (1, 9, 7, 33, 16, 1, 1, 1, "valid", "one", 1),  # 1x1: direct BGEMM on the input
    (1, 9, 9, 63, 8, 7, 1, 1, 3, "zero", 1),
    (1, 5, 6, 64, 40, 3, 2, 2, (1, 2, 0, 3), "one", 1),
    (1, 6, 6, 65, 7, 5, 2, 1, "valid", "one", 1),
    (1, 4, 5, 127, 12, 3, 1, 1, 1, "zero", 1),
    (1, 5, 4, 129, 10, 1, 2, 1, 0, "one", 1),  # strided 1x1: gathered
    (1, 4, 4, 33, 6, 1, 1, 1, 1, "zero", 1),  # 1x1 with padding: border rows are pure padding
    (1, 3, 3, 33, 4, 3, 1, 2, 2, "zero", 1),  # dilated kernel wider than the image
    (1, 10, 10, 32, 36, 7, 1, 1, "same", "zero", 1),
    (1, 6, 6, 64, 8, 3, 1, 1, 1, "one", 2),
    (2, 5, 5, 128, 12, 3, 2, 1, "same", "zero", 4),
    (1, 7, 7, 128, 64, 5, 1, 2, "same", "one", 2),
    (1, 8, 8, 128, 32, 1, 1, 1, 0, "zero", 4),  # grouped 1x1: direct
    (1, 12, 12, 256, 40, 3, 1, 1, "same", "one", 1),  # K = 2304: whole 256-bit steps
    (1, 5, 5, 256, 8, 7, 1, 1, 3, "zero", 1),  # K = 12544: 49 steps, byte counters flushed
    (1, 9, 9, 96, 21, 5, 1, 1, "same", "zero", 1),  # 75 words (odd, >= 64), 81 = 64 + 16 + 1 rows
]


def case_id(c):
    b, h, w, ci, o, k, s, d, p, pv, g = c
    return f"{b}x{h}x{w}x{ci}-o{o}-k{k}-s{s}-d{d}-p{p}-{pv}-g{g}"


def make(rng, case):
    b, h, w, c, o, k, s, d, p, pv, g = case
    x = rng.standard_normal((b, h, w, c)).astype(np.float32)
    wt = rng.standard_normal((o, k, k, c // g)).astype(np.float32)
    return x, wt


def torch_acc(x, wt, case):
    """Integer accumulator from PyTorch float conv2d on the ±1 values (NCHW)."""
    b, h, w, c, o, k, s, d, p, pv, g = case
    pads = resolve_padding(p, (h, w), (k, k), (s, s), (d, d))
    xt = torch.from_numpy(signs(x)).permute(0, 3, 1, 2)
    xt = F.pad(xt, (pads[2], pads[3], pads[0], pads[1]), value=1.0 if pv == "one" else 0.0)
    wtt = torch.from_numpy(signs(wt)).permute(0, 3, 1, 2)
    y = F.conv2d(xt, wtt, stride=s, dilation=d, groups=g)
    return y.permute(0, 2, 3, 1).numpy().astype(np.int64)


def run(x, wt, case, output="int32", num_threads=1, guard_out=True, **kw):
    b, h, w, c, o, k, s, d, p, pv, g = case
    xp = guarded_copy(kernels.bitpack(x))
    wp = guarded_copy(kernels.bitpack(wt))
    out = None
    if guard_out:
        pads = resolve_padding(p, (h, w), (k, k), (s, s), (d, d))
        oh, ow = bconv2d_output_hw((h, w), (k, k), s, d, pads)
        last = kernels.packed_words(o) if output == "bitpacked" else o
        dtype = {"int32": np.int32, "float32": np.float32, "int8": np.int8, "bitpacked": np.uint32}[output]
        out = guarded_empty((b, oh, ow, last), dtype)
    got = kernels.bconv2d(
        xp, wp, c, stride=s, dilation=d, padding=p, pad_values=pv, groups=g, output=output, out=out,
        num_threads=num_threads, **kw,
    )
    assert out is None or got is out
    return got


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_accumulator_matches_torch_conv2d(isa, rng, case):
    x, wt = make(rng, case)
    np.testing.assert_array_equal(run(x, wt, case), torch_acc(x, wt, case))


@pytest.mark.parametrize("output", ["float32", "int8", "bitpacked"])
@pytest.mark.parametrize("case", CASES[1::2], ids=case_id)
def test_output_transforms_match_formula_and_ref(isa, rng, case, output):
    x, wt = make(rng, case)
    mult, bias = dyadic_params(rng, case[4])
    lo, hi = (-30.0, 25.0) if output != "bitpacked" else (-np.inf, np.inf)
    kw = dict(multiplier=mult, bias=bias, clamp_min=lo, clamp_max=hi)
    got = run(x, wt, case, output, **kw)
    np.testing.assert_array_equal(got, transform(torch_acc(x, wt, case), output, mult, bias, lo, hi))
    with kernels.use_isa("ref"):
        np.testing.assert_array_equal(got, run(x, wt, case, output, guard_out=False, **kw))


@pytest.mark.parametrize("num_threads", [2, 3])
@pytest.mark.parametrize("case", [CASES[2], CASES[5], CASES[13]], ids=case_id)
def test_thread_counts_give_identical_results(isa, rng, case, num_threads):
    x, wt = make(rng, case)
    mult = (rng.standard_normal(case[4]) * 0.1).astype(np.float32)
    bias = rng.standard_normal(case[4]).astype(np.float32)
    for output in ("int32", "float32", "bitpacked"):
        want = run(x, wt, case, output, multiplier=mult, bias=bias)
        got = run(x, wt, case, output, num_threads=num_threads, multiplier=mult, bias=bias)
        np.testing.assert_array_equal(got, want)


def test_relu_clamp_on_float_output(isa, rng):
    case = CASES[2]
    x, wt = make(rng, case)
    got = run(x, wt, case, "float32", clamp_min=0.0)
    np.testing.assert_array_equal(got, np.maximum(torch_acc(x, wt, case), 0).astype(np.float32))


def test_same_padding_keeps_the_spatial_size():
    assert resolve_padding("same", (7, 8), (3, 3), (1, 1), (1, 1)) == (1, 1, 1, 1)
    assert resolve_padding("same", (7, 8), (3, 3), (2, 2), (1, 1)) == (1, 1, 0, 1)
    assert bconv2d_output_hw((7, 8), (3, 3), 2, 1, (1, 1, 0, 1)) == (4, 4)


def test_bad_geometry_raises_typed_errors():
    x = np.zeros((1, 4, 4, 2), np.uint32)
    with pytest.raises(ShapeError, match="multiple of 32"):
        kernels.bconv2d(np.zeros((1, 4, 4, 2), np.uint32), np.zeros((4, 3, 3, 1), np.uint32), 48, groups=2)
    with pytest.raises(ShapeError, match="C=20 needs 1 words per pixel"):
        kernels.bconv2d(x, np.zeros((4, 3, 3, 2), np.uint32), 20)
    with pytest.raises(ShapeError, match=r"weights must be \(O, kh, kw, 2\)"):
        kernels.bconv2d(x, np.zeros((4, 3, 3, 1), np.uint32), 64)
    with pytest.raises(ShapeError, match="smaller than the"):
        kernels.bconv2d(x, np.zeros((4, 5, 5, 2), np.uint32), 64)
    with pytest.raises(ShapeError, match="must divide"):
        kernels.bconv2d(x, np.zeros((3, 1, 1, 1), np.uint32), 64, groups=2)
    with pytest.raises(ValueError, match="pad_values"):
        kernels.bconv2d(x, np.zeros((4, 3, 3, 2), np.uint32), 64, pad_values="two")
