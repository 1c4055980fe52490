"""Quantizers: forward and gradient against their formulas on grids that hit the edges."""

from __future__ import annotations

import math

import pytest
import torch

from onebit import quantizers as q
from onebit.errors import ShapeError

DELTA = 1e-3


def edge_grid(c: float) -> torch.Tensor:
    """Values around 0 and around ``±c``: exactly on, just inside and just outside."""
    vals = [-3 * c, -c - DELTA, -c, -c + DELTA, -0.5 * c, -DELTA, 0.0, DELTA, 0.5 * c,
            c - DELTA, c, c + DELTA, 3 * c]
    return torch.tensor(vals, dtype=torch.float64)


def value_and_grad(fn, x: torch.Tensor, seed: int = 0):
    """``fn(x)`` and ``d(sum(g * fn(x)))/dx`` for a random upstream gradient ``g``."""
    x = x.clone().requires_grad_(True)
    y = fn(x)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype)
    (y * g).sum().backward()
    return y.detach(), x.grad, g


def hard_sign(x):
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


# ------------------------------------------------------------------------------- sign family


@pytest.mark.parametrize("clip", [0.5, 1.0, 1.5])
def test_ste_sign_forward_and_clipped_gradient(clip):
    x = edge_grid(clip)
    y, dx, g = value_and_grad(lambda t: q.ste_sign(t, clip_value=clip), x)
    assert torch.equal(y, hard_sign(x))
    assert y[x == 0].item() == 1.0  # sign(0) = +1, the packing convention
    assert torch.equal(dx, g * (x.abs() <= clip).double())
    # exact edges: |x| = clip passes, just outside is blocked
    assert dx[x == clip].item() == g[x == clip].item()
    assert dx[x == clip + DELTA].item() == 0.0


def test_ste_sign_unclipped_is_identity_gradient():
    x = edge_grid(1.0)
    _, dx, g = value_and_grad(lambda t: q.ste_sign(t, clip_value=None), x)
    assert torch.equal(dx, g)


def test_approx_sign_gradient_is_bireal_triangle():
    x = edge_grid(1.0)
    y, dx, g = value_and_grad(q.approx_sign, x)
    assert torch.equal(y, hard_sign(x))
    expected = torch.where(x.abs() <= 1, 2 - 2 * x.abs(), torch.zeros_like(x))
    torch.testing.assert_close(dx, g * expected, rtol=0, atol=1e-15)
    assert dx[x == 0].item() == pytest.approx(2 * g[x == 0].item())
    assert dx[x.abs() >= 1].abs().max().item() == 0.0


@pytest.mark.parametrize("beta", [1.0, 5.0, 10.0])
def test_swish_sign_gradient_is_signswish_derivative(beta):
    x = torch.linspace(-3, 3, 60, dtype=torch.float64)
    x = torch.cat([x, torch.zeros(1, dtype=torch.float64)])
    y, dx, g = value_and_grad(lambda t: q.swish_sign(t, beta=beta), x)
    assert torch.equal(y, hard_sign(x))
    # independent oracle: autograd of SS_beta(x) = 2 s(bx) (1 + bx (1 - s(bx))) - 1
    xs = x.clone().requires_grad_(True)
    s = torch.sigmoid(beta * xs)
    ss = 2 * s * (1 + beta * xs * (1 - s)) - 1
    (ss * g).sum().backward()
    torch.testing.assert_close(dx, xs.grad, rtol=1e-10, atol=1e-12)
    # and the closed form of the docstring
    bx = beta * x
    closed = beta * (2 - bx * torch.tanh(bx / 2)) / (1 + torch.cosh(bx))
    torch.testing.assert_close(dx, g * closed, rtol=1e-12, atol=1e-14)
    assert dx[x == 0].item() == pytest.approx(beta * g[x == 0].item())


@pytest.mark.parametrize("shape", [(4, 3, 3, 3), (5, 7), (6,)])
def test_magnitude_aware_sign_per_output_channel(shape):
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.8
    w.view(-1)[0] = 0.0
    w.view(-1)[1] = 1.0  # exactly on the clip edge
    y, dx, g = value_and_grad(q.magnitude_aware_sign, w)
    dims = tuple(range(1, w.dim()))
    scale = w.abs().mean(dim=dims, keepdim=True) if dims else w.abs()
    torch.testing.assert_close(y, scale * hard_sign(w), rtol=0, atol=0)
    torch.testing.assert_close(dx, g * scale * (w.abs() <= 1.0).double(), rtol=0, atol=0)
    if w.dim() > 1:  # one scale per output channel (axis 0)
        for c in range(shape[0]):
            assert torch.unique(y[c].abs()).numel() == 1


@pytest.mark.parametrize("clip", [1.0, 2.0])
def test_ste_heaviside(clip):
    x = edge_grid(clip)
    y, dx, g = value_and_grad(lambda t: q.ste_heaviside(t, clip_value=clip), x)
    assert torch.equal(y, (x > 0).double())
    assert y[x == 0].item() == 0.0
    assert torch.equal(dx, g * (x.abs() <= clip).double())


# ------------------------------------------------------------------------- multi-bit, ternary


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8])
def test_dorefa_activations(k):
    n = 2**k - 1
    x = torch.cat([edge_grid(1.0), torch.linspace(-0.2, 1.2, 141, dtype=torch.float64)])
    x = torch.cat([x, torch.tensor([1.0 + DELTA, -DELTA, 0.0, 1.0], dtype=torch.float64)])
    y, dx, g = value_and_grad(lambda t: q.dorefa(t, k_bit=k), x)
    assert torch.equal(y, torch.round(x.clamp(0, 1) * n) / n)
    levels = torch.round(y * n)
    assert torch.equal(levels, y * n) and levels.min() >= 0 and levels.max() <= n
    assert torch.equal(dx, g * ((x >= 0) & (x <= 1)).double())
    assert dx[x == 1.0].eq(g[x == 1.0]).all() and dx[x == 1.0 + DELTA].eq(0).all()


@pytest.mark.parametrize("k", [1, 2, 4])
def test_dorefa_weights(k):
    n = 2**k - 1
    x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    y, dx, g = value_and_grad(lambda t: q.dorefa(t, k_bit=k, mode="weights"), x)
    t = torch.tanh(x)
    w = t / (2 * t.abs().max()) + 0.5
    assert torch.equal(y, 2 * torch.round(w * n) / n - 1)
    assert y.min() == -1 and y.max() == 1
    # STE through the rounding only: the gradient of 2 w - 1 = tanh(x) / max|tanh(x)|
    xs = x.clone().requires_grad_(True)
    ts = torch.tanh(xs)
    ((ts / ts.abs().max()) * g).sum().backward()
    torch.testing.assert_close(dx, xs.grad, rtol=1e-12, atol=1e-14)


def test_dorefa_weights_all_zero_is_finite():
    assert torch.isfinite(q.dorefa(torch.zeros(3, 3), 2, mode="weights")).all()


def test_sign_convention_matches_bitpack_kernel():
    """ste_sign and the bitpack kernel agree on every value, zeros and -0.0 included."""
    import numpy as np

    from onebit import kernels

    x = torch.tensor([[0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0, 3.0, -2.5] * 5])  # K = 40
    unpacked = kernels.unpack(kernels.bitpack(x.numpy()), x.shape[-1])
    np.testing.assert_array_equal(unpacked, q.ste_sign(x).numpy())


def test_dorefa_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k_bit"):
        q.dorefa(torch.zeros(3), k_bit=0)
    with pytest.raises(ValueError, match="mode"):
        q.DoReFa(mode="gradients")


@pytest.mark.parametrize("threshold", [0.05, 0.3])
def test_ste_tern_threshold(threshold):
    x = torch.cat([edge_grid(threshold), edge_grid(1.0)])
    y, dx, g = value_and_grad(lambda t: q.ste_tern(t, threshold_value=threshold), x)
    expected = torch.where(x >= threshold, 1.0, torch.where(x <= -threshold, -1.0, 0.0))
    assert torch.equal(y, expected.double())
    assert y[x == threshold].item() == 1.0 and y[x == -threshold].item() == -1.0
    assert torch.equal(dx, g * (x.abs() <= 1.0).double())


def test_ste_tern_ternary_weight_networks():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(200, generator=gen, dtype=torch.float64)
    y = q.ste_tern(x, ternary_weight_networks=True)
    delta = 0.7 * x.abs().mean()
    expected = torch.where(x.abs() >= delta, torch.sign(x), torch.zeros_like(x))
    assert torch.equal(y, expected)
    assert 0 < (y == 0).sum() < 200  # the TWN threshold actually zeroes some weights


@pytest.mark.parametrize("shape", [(8, 16), (4, 3, 3, 3), (33,)])
def test_absmean_ternary_matches_bitnet_eq_1_to_3(shape):
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.02
    eps = 1e-5
    y, dx, g = value_and_grad(q.absmean_ternary, w)
    gamma = w.abs().mean()
    ternary = torch.clamp(torch.round(w / (gamma + eps)), -1, 1)
    assert torch.equal(y, ternary * gamma)
    assert set(torch.unique(torch.round(y / gamma)).tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.equal(dx, g)  # identity STE
    codes, gam = q.absmean_ternary_codes(w)
    assert codes.dtype == torch.int8 and torch.equal(codes.double(), ternary)
    assert gam.item() == gamma.item() and torch.equal(codes.double() * gam, y)


def test_absmean_ternary_rounding_edges():
    # sum|W| = 8 over 8 values, so gamma = 1 exactly and (eps = 0) W / gamma = W: the ties
    # 0.5, 1.5, 2.5 are exact. torch.round rounds half to even (0.5 -> 0, 1.5 -> 2 -> clip 1).
    w = torch.tensor([0.5, -0.5, 1.5, -1.5, 2.5, -0.5, 0.0, 1.0], dtype=torch.float64)
    assert w.abs().mean().item() == 1.0
    codes, gamma = q.absmean_ternary_codes(w, eps=0.0)
    assert codes.tolist() == [0, 0, 1, -1, 1, 0, 0, 1] and gamma.item() == 1.0
    assert torch.equal(q.absmean_ternary(w, eps=0.0), codes.double())
    assert q.absmean_ternary(torch.zeros(4, 4)).abs().sum() == 0  # no NaN on an all-zero W


@pytest.mark.parametrize("shape", [(3, 17), (2, 5, 64), (1,)])
def test_absmax_int8_per_token(shape):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 3
    y, dx, g = value_and_grad(q.absmax_int8, x)
    m = x.abs().amax(dim=-1, keepdim=True)
    s = 127.0 / m
    expected = torch.clamp(torch.round(x * s), -127, 127) / s
    torch.testing.assert_close(y, expected, rtol=1e-15, atol=0)
    assert torch.equal(dx, g)
    codes, step = q.absmax_int8_codes(x)
    assert codes.dtype == torch.int8
    assert codes.abs().amax(dim=-1).eq(127).all()  # the largest value of each token hits 127
    assert torch.equal(codes.double() * step, y)  # forward is the de-quantized value
    assert (y - x).abs().le(step / 2 + 1e-12).all()


def test_absmax_int8_zero_token_and_bad_shape():
    x = torch.zeros(2, 8)
    x[1] = torch.linspace(-1, 1, 8)
    y = q.absmax_int8(x)
    assert torch.equal(y[0], torch.zeros(8)) and torch.isfinite(y).all()
    with pytest.raises(ShapeError, match="0-d"):
        q.absmax_int8(torch.tensor(1.0))


# ------------------------------------------------------------------------------------ RSign


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5, 5)])
@pytest.mark.parametrize("gradient", ["approx", "ste"])
def test_rsign_forward_and_gradients(shape, gradient):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    r = q.RSign(shape[1], gradient=gradient).double()
    with torch.no_grad():
        r.alpha.copy_(torch.tensor([-0.5, 0.0, 0.7], dtype=torch.float64))
    view = (1, -1) + (1,) * (len(shape) - 2)
    x.view(-1)[0] = r.alpha[0].item()  # u = 0 exactly: sign(0) = +1
    xg = x.clone().requires_grad_(True)
    y = r(xg)
    g = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    (y * g).sum().backward()
    u = x - r.alpha.detach().view(view)
    assert torch.equal(y.detach(), hard_sign(u))
    assert y.view(-1)[0].item() == 1.0
    if gradient == "approx":
        pg = torch.where(u.abs() <= 1, 2 - 2 * u.abs(), torch.zeros_like(u))
    else:
        pg = (u.abs() <= 1).double()
    torch.testing.assert_close(xg.grad, g * pg, rtol=0, atol=1e-15)
    reduce = tuple(d for d in range(len(shape)) if d != 1)
    torch.testing.assert_close(r.alpha.grad, -(g * pg).sum(dim=reduce), rtol=1e-12, atol=1e-12)


def test_rsign_lazy_channels_shape_errors_and_state_dict():
    r = q.get("rsign")
    assert r.num_channels is None and r.state_dict() == {}
    y = r(torch.randn(2, 6, 3, 3))
    assert r.num_channels == 6 and y.shape == (2, 6, 3, 3)
    with pytest.raises(ShapeError, match="channel"):
        r(torch.randn(2, 6, 3))
    with pytest.raises(ShapeError, match="6 channels"):
        r(torch.randn(2, 5, 3, 3))
    src = q.RSign(4)
    with torch.no_grad():
        src.alpha.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    dst = q.RSign()
    dst.load_state_dict(src.state_dict())
    assert torch.equal(dst.alpha, src.alpha)
    with pytest.raises(ValueError, match="gradient"):
        q.RSign(3, gradient="tanh")


# ----------------------------------------------------------------------- progressive (BNext)


@pytest.mark.parametrize("t", [1.0, 0.5, 0.1, 1e-3])
def test_progressive_sign_soft_forward(t):
    x = torch.cat([edge_grid(1.5), edge_grid(t)])
    y, dx, g = value_and_grad(lambda v: q.progressive_sign(v, temperature=t), x)
    torch.testing.assert_close(y, (x / t).clamp(-1, 1), rtol=1e-15, atol=0)
    assert torch.equal(dx, g * (x.abs() <= 1.5).double())  # BNext STE window [-1.5, 1.5]


@pytest.mark.parametrize("t", [0.0, 1e-8, 9.99e-8])
def test_progressive_sign_hard_below_min_temperature(t):
    x = torch.cat([edge_grid(1.5), torch.tensor([1e-30, -1e-30, 0.0], dtype=torch.float64)])
    y, dx, g = value_and_grad(lambda v: q.progressive_sign(v, temperature=t), x)
    assert torch.equal(y, hard_sign(x))
    assert torch.equal(dx, g * (x.abs() <= 1.5).double())


def test_progressive_sign_module_and_schedule():
    p = q.ProgressiveSign()
    assert float(p.temperature) == 1.0 and not p.is_hard
    assert "temperature" in p.state_dict()
    x = torch.linspace(-2, 2, 9)
    assert torch.equal(p(x), x.clamp(-1, 1))
    p.set_temperature(0.0)
    assert p.is_hard and torch.equal(p(x), hard_sign(x))
    with pytest.raises(ValueError, match="temperature"):
        p.set_temperature(-0.1)
    with pytest.raises(ValueError, match="temperature"):
        p.set_temperature(float("nan"))
    total = 100
    ts = [q.ProgressiveSign.schedule(s, total, 1.0, 1e-3) for s in range(total + 2)]
    assert ts[0] == 1.0 and ts[total] == 0.0 and ts[total + 1] == 0.0
    assert ts[50] == pytest.approx(math.sqrt(1e-3))  # geometric: midpoint is the geometric mean
    assert all(a > b for a, b in zip(ts[:total], ts[1 : total + 1]))
    with pytest.raises(ValueError):
        q.ProgressiveSign.schedule(0, 0)
    model = torch.nn.Sequential(q.ProgressiveSign(), torch.nn.ReLU(), q.ProgressiveSign())
    assert q.set_progressive_temperature(model, 0.25) == 2
    assert all(float(m.temperature) == 0.25 for m in model if isinstance(m, q.ProgressiveSign))


# --------------------------------------------------------------------------------- registry

EXPECTED = {
    "ste_sign": (q.SteSign, 1.0),
    "approx_sign": (q.ApproxSign, 1.0),
    "swish_sign": (q.SwishSign, 1.0),
    "magnitude_aware_sign": (q.MagnitudeAwareSign, 1.0),
    "ste_heaviside": (q.SteHeaviside, 1.0),
    "dorefa": (q.DoReFa, 2.0),
    "ste_tern": (q.SteTern, 1.58),
    "absmean_ternary": (q.AbsmeanTernary, 1.58),
    "absmax_int8": (q.AbsmaxInt8, 8.0),
    "rsign": (q.RSign, 1.0),
    "progressive_sign": (q.ProgressiveSign, 1.0),
}


@pytest.mark.parametrize("alias", sorted(EXPECTED))
def test_get_every_alias(alias):
    cls, precision = EXPECTED[alias]
    a, b = q.get(alias), q.get(alias)
    assert type(a) is cls and a is not b
    assert a.name == alias and cls.name == alias
    assert a.precision == precision and q.precision_of(a) == precision
    assert q.get(a) is a  # a module comes back as is


def test_aliases_cover_the_contract():
    assert set(q.ALIASES) == set(EXPECTED)


def test_get_none_callables_classes_and_errors():
    assert q.get(None) is None
    assert q.get(q.ste_sign) is q.ste_sign
    fn = lambda t: t  # noqa: E731
    assert q.get(fn) is fn
    assert isinstance(q.get(q.SteTern), q.SteTern)
    with pytest.raises(ValueError) as err:
        q.get("ste-sign")
    for alias in EXPECTED:
        assert alias in str(err.value)
    with pytest.raises(ValueError, match="ste_sign"):
        q.get(3)


def test_precision_of():
    assert q.precision_of(None) == 32.0
    assert q.precision_of(q.DoReFa(k_bit=3)) == 3.0
    assert q.precision_of(q.ste_sign) == 1.0
    assert q.precision_of(q.absmean_ternary) == 1.58
    assert q.precision_of(q.absmax_int8) == 8.0
    assert q.precision_of(lambda t: t) == 32.0


def test_modules_equal_functions_and_repr_shows_hyperparameters():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(4, 9, generator=gen)
    pairs = [
        (q.SteSign(0.7), q.ste_sign(x, 0.7), "clip_value=0.7"),
        (q.ApproxSign(), q.approx_sign(x), ""),
        (q.SwishSign(3.0), q.swish_sign(x, 3.0), "beta=3.0"),
        (q.MagnitudeAwareSign(), q.magnitude_aware_sign(x), "clip_value=1.0"),
        (q.SteHeaviside(0.5), q.ste_heaviside(x, 0.5), "clip_value=0.5"),
        (q.DoReFa(3), q.dorefa(x, 3), "k_bit=3"),
        (q.SteTern(0.2, True), q.ste_tern(x, 0.2, True), "ternary_weight_networks=True"),
        (q.AbsmeanTernary(1e-4), q.absmean_ternary(x, 1e-4), "eps=0.0001"),
        (q.AbsmaxInt8(), q.absmax_int8(x), "eps=1e-05"),
        (q.ProgressiveSign(0.3), q.progressive_sign(x, 0.3), "temperature=0.3"),
    ]
    for module, expected, text in pairs:
        out = module(x)
        assert out.dtype == x.dtype and torch.equal(out, expected), module
        assert text in repr(module)
    assert "num_channels=5" in repr(q.RSign(5))


def test_bad_clip_value_is_rejected():
    with pytest.raises(ValueError, match="clip_value"):
        q.ste_sign(torch.zeros(2), clip_value=0.0)
    with pytest.raises(ValueError, match="clip_value"):
        q.SteSign(clip_value=-1.0)
