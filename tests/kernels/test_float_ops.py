"""Float32 runtime kernels (conv2d_direct, depthwise_conv2d, channel_affine) on every ISA:
against a float64 PyTorch oracle within a stated tolerance, against the ``ref`` path exactly
(same FMA order), on guard-page arrays (any overrun crashes), with channel counts on the
vector edges (1, 7, 8, 9, 31, 32, 33, 63, 64, 65)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from onebit import kernels
from onebit.errors import DTypeError, ShapeError
from tests.guard import guarded_copy, guarded_empty

torch.set_num_threads(1)
EDGES = (1, 7, 8, 9, 31, 32, 33, 63, 64, 65)


def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _oracle_conv(x, w_oihw, bias, stride, dilation, pads, groups, lo, hi):
    t = F.pad(torch.from_numpy(x).double().permute(0, 3, 1, 2), (pads[2], pads[3], pads[0], pads[1]))
    y = F.conv2d(t, torch.from_numpy(w_oihw).double(), None if bias is None else torch.from_numpy(bias).double(),
                 stride=stride, dilation=dilation, groups=groups)
    if lo is not None or hi is not None:
        y = y.clamp(lo, hi)
    return y.permute(0, 2, 3, 1).numpy()


def _ref(fn, *args, **kw):
    with kernels.use_isa("ref"):
        return fn(*args, **kw)


GEOMETRY = [
    ((3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ((3, 3), (2, 2), (1, 1), (0, 1, 0, 1)),
    ((3, 3), (2, 1), (2, 2), (2, 0, 1, 2)),
    ((1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((5, 2), (1, 3), (1, 1), (2, 2, 1, 0)),
    ((3, 3), (1, 1), (1, 1), (4, 4, 4, 4)),  # windows entirely in the padding: bias only
]


@pytest.mark.parametrize("c", (1, 3, 8, 16))
@pytest.mark.parametrize("o", (1, 8, 9, 32, 33, 65))
@pytest.mark.parametrize("kernel,stride,dilation,pads", GEOMETRY)
def test_conv2d_direct(isa, rng, c, o, kernel, stride, dilation, pads):
    x = guarded_copy(_f32(rng, 2, 9, 7, c))
    w = _f32(rng, o, *kernel, c)  # OHWI
    w_hwio = guarded_copy(np.ascontiguousarray(w.transpose(1, 2, 3, 0)))
    bias = guarded_copy(_f32(rng, o))
    want = _oracle_conv(x, w.transpose(0, 3, 1, 2).copy(), bias, stride, dilation, pads, 1, 0.0, None)
    out = guarded_empty(want.shape, np.float32)
    y = kernels.conv2d_direct(x, w_hwio, bias, stride=stride, dilation=dilation, padding=pads, clamp_min=0.0, out=out)
    assert y is out
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * np.sqrt(kernel[0] * kernel[1] * c))
    np.testing.assert_array_equal(y, _ref(kernels.conv2d_direct, x, w_hwio, bias, stride=stride, dilation=dilation,
                                          padding=pads, clamp_min=0.0))


@pytest.mark.parametrize("c", EDGES)
@pytest.mark.parametrize("kernel,stride,dilation,pads", GEOMETRY)
@pytest.mark.parametrize("with_bias,clamp", [(True, (None, None)), (False, (0.0, 6.0))])
def test_depthwise_conv2d(isa, rng, c, kernel, stride, dilation, pads, with_bias, clamp):
    x = guarded_copy(_f32(rng, 2, 8, 9, c))
    w = _f32(rng, c, *kernel, 1)  # OHWI with groups = C
    w_hwc = guarded_copy(np.ascontiguousarray(w[..., 0].transpose(1, 2, 0)))
    bias = guarded_copy(_f32(rng, c)) if with_bias else None
    want = _oracle_conv(x, w.transpose(0, 3, 1, 2).copy(), bias, stride, dilation, pads, c, *clamp)
    out = guarded_empty(want.shape, np.float32)
    y = kernels.depthwise_conv2d(x, w_hwc, bias, stride=stride, dilation=dilation, padding=pads,
                                 clamp_min=clamp[0], clamp_max=clamp[1], out=out)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * kernel[0] * kernel[1])
    np.testing.assert_array_equal(y, _ref(kernels.depthwise_conv2d, x, w_hwc, bias, stride=stride,
                                          dilation=dilation, padding=pads, clamp_min=clamp[0], clamp_max=clamp[1]))


@pytest.mark.parametrize("c", EDGES)
@pytest.mark.parametrize("parts", ["scale+bias", "scale", "bias", "alpha", "clamp", "all"])
def test_channel_affine(isa, rng, c, parts):
    x = _f32(rng, 3, 5, c) * 3
    scale = _f32(rng, c) if "scale" in parts or parts == "all" else None
    bias = _f32(rng, c) if "bias" in parts or parts == "all" else None
    alpha = _f32(rng, c) * 0.3 if parts in ("alpha", "all") else None
    lo, hi = (-1.0, 2.0) if parts in ("clamp", "all") else (None, None)
    want = x.astype(np.float64)
    if scale is not None:
        want = want * scale
    if bias is not None:
        want = want + bias
    if alpha is not None:
        want = np.where(want < 0, alpha * want, want)
    want = np.clip(want, lo, hi) if lo is not None else want
    g = [guarded_copy(v) if v is not None else None for v in (x, scale, bias, alpha)]
    out = guarded_empty(x.shape, np.float32)
    y = kernels.channel_affine(*g, clamp_min=lo, clamp_max=hi, out=out)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y, _ref(kernels.channel_affine, *g, clamp_min=lo, clamp_max=hi))
    inplace = g[0].copy()
    kernels.channel_affine(inplace, scale, bias, alpha, clamp_min=lo, clamp_max=hi, out=inplace)
    np.testing.assert_array_equal(inplace, y)


def test_channel_affine_relu_keeps_nan_and_flat_sizes(isa):
    for n in (1, 7, 8, 63, 64, 65, 1000):
        x = guarded_copy(np.linspace(-3, 3, n, dtype=np.float32))
        x[0] = np.nan
        y = kernels.channel_affine(x, clamp_min=0.0)
        assert np.isnan(y[0])
        np.testing.assert_array_equal(y[1:], np.maximum(x[1:], 0))


def test_thread_counts_give_identical_results(rng):
    x = _f32(rng, 2, 17, 19, 33)
    w_hwc = _f32(rng, 3, 3, 33)
    w_hwio = _f32(rng, 3, 3, 33, 40)
    for fn, w in ((kernels.depthwise_conv2d, w_hwc), (kernels.conv2d_direct, w_hwio)):
        one = fn(x, w, None, stride=(2, 2), padding=(1, 1, 1, 1))
        for t in (2, 3, 5):
            np.testing.assert_array_equal(fn(x, w, None, stride=(2, 2), padding=(1, 1, 1, 1), num_threads=t), one)
    one = kernels.channel_affine(x, clamp_min=0.0)
    np.testing.assert_array_equal(kernels.channel_affine(x, clamp_min=0.0, num_threads=2), one)


def test_errors_name_expected_and_got(rng):
    x = _f32(rng, 1, 4, 4, 3)
    with pytest.raises(DTypeError, match="float32"):
        kernels.depthwise_conv2d(x.astype(np.float64), _f32(rng, 3, 3, 3))
    with pytest.raises(ShapeError, match=r"w \(kh, kw, C\)"):
        kernels.depthwise_conv2d(x, _f32(rng, 3, 3, 4))
    with pytest.raises(ShapeError, match="bias must have shape"):
        kernels.conv2d_direct(x, _f32(rng, 3, 3, 3, 8), _f32(rng, 7))
    with pytest.raises(ShapeError, match="smaller than the"):
        kernels.conv2d_direct(x, _f32(rng, 5, 5, 3, 8))
    with pytest.raises(ShapeError, match="out must be"):
        kernels.channel_affine(x, out=np.empty((1, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="clamp_min must be <= clamp_max"):
        kernels.channel_affine(x, clamp_min=1.0, clamp_max=0.0)
