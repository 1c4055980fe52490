"""QuantConv2d / QuantLinear: equivalence with their torch twins, warnings, clip, state_dict."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from onebit import quantizers as q
from onebit.nn import (
    BitLinear,
    LearnableBias,
    QuantConv2d,
    QuantLinear,
    RPReLU,
    StarvedWeightsWarning,
    clip_after_step,
    clip_latent_weights_,
    is_quantized,
)


def sign(x):
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def with_zeros(x):
    """Put some exact zeros in ``x`` (sign(0) = +1 must agree everywhere)."""
    x = x.clone()
    x.view(-1)[::7] = 0.0
    return x


@pytest.fixture(autouse=True)
def _quiet_starved_weights():
    # Equivalence tests build binary layers without kernel_clip on purpose.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarvedWeightsWarning)
        yield


# conv geometry grid: (C_in, C_out, kernel, stride, padding, dilation, groups, H, W)
CONV_GRID = [
    (3, 4, 3, 1, 1, 1, 1, 7, 7),
    (4, 6, 3, 2, 1, 1, 2, 8, 9),
    (4, 4, 3, 1, 2, 2, 4, 9, 7),  # depthwise, dilated
    (2, 5, (3, 1), (1, 2), (1, 0), 1, 1, 6, 5),
    (3, 2, 5, 1, 2, 1, 1, 5, 5),
    (1, 3, 1, 1, 0, 1, 1, 4, 4),
    (6, 3, 2, 3, 1, (2, 1), 3, 11, 10),
    (3, 4, 3, 1, "same", 2, 1, 6, 7),
    (3, 4, 3, 1, "valid", 1, 1, 6, 7),
]


def explicit_pads(padding, kernel, dilation):
    """(left, right, top, bottom) written out independently of the layer."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return (pw, pw, ph, ph)


@pytest.mark.parametrize("geom", CONV_GRID)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_identity_quantizers_equal_torch_conv(geom, bias):
    cin, cout, k, s, p, d, g, h, w = geom
    ref = nn.Conv2d(cin, cout, k, s, p, d, g, bias)
    layer = QuantConv2d(cin, cout, k, s, p, d, g, bias)
    layer.load_state_dict(ref.state_dict())
    x = randn(2, cin, h, w, seed=1)
    assert torch.equal(layer(x), ref(x))
    assert not is_quantized(layer)


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
def test_conv_identity_quantizers_padding_modes(padding_mode):
    ref = nn.Conv2d(3, 4, 3, padding=1, padding_mode=padding_mode)
    layer = QuantConv2d(3, 4, 3, padding=1, padding_mode=padding_mode)
    layer.load_state_dict(ref.state_dict())
    x = randn(2, 3, 6, 5, seed=2)
    assert torch.equal(layer(x), ref(x))


@pytest.mark.parametrize("geom", CONV_GRID)
@pytest.mark.parametrize("pad_value", [0.0, 1.0])
def test_conv_sign_quantizers_equal_conv_of_signs(geom, pad_value):
    cin, cout, k, s, p, d, g, h, w = geom
    layer = QuantConv2d(
        cin, cout, k, s, p, d, g, True,
        input_quantizer="ste_sign", kernel_quantizer="ste_sign", pad_value=pad_value,
    )
    x = with_zeros(randn(2, cin, h, w, seed=3))
    with torch.no_grad():
        layer.weight.copy_(with_zeros(layer.weight))
    xb, wb = sign(x), sign(layer.weight.detach())
    if pad_value == 1.0:  # one-padding: pad the signed input with +1, then a valid conv
        xp = F.pad(xb, explicit_pads(p, k, d), value=1.0)
        expected = F.conv2d(xp, wb, layer.bias, s, 0, d, g)
    else:
        expected = F.conv2d(xb, wb, layer.bias, s, p, d, g)
    assert torch.equal(layer(x), expected)
    # binary conv of ±1 values: the accumulator (output - bias) is an integer
    acc = (layer(x) - layer.bias.view(1, -1, 1, 1)).detach()
    torch.testing.assert_close(acc, torch.round(acc), rtol=0, atol=1e-5)


def test_one_padding_counts_padded_positions_as_plus_one():
    # x < 0 everywhere (sign -1), w = +1: each output is (#padded taps) - (#real taps).
    layer = QuantConv2d(
        1, 1, 3, padding=1, bias=False,
        input_quantizer="ste_sign", kernel_quantizer="ste_sign", pad_value=1.0,
    )
    with torch.no_grad():
        layer.weight.fill_(0.5)
    y = layer(-torch.ones(1, 1, 4, 4))[0, 0]
    assert y[0, 0].item() == 5 - 4  # corner: 5 padded taps, 4 real
    assert y[0, 1].item() == 3 - 6  # edge: 3 padded, 6 real
    assert y[1, 1].item() == -9  # interior
    zero_padded = QuantConv2d(
        1, 1, 3, padding=1, bias=False,
        input_quantizer="ste_sign", kernel_quantizer="ste_sign", pad_value=0.0,
    )
    zero_padded.load_state_dict(layer.state_dict())
    assert zero_padded(-torch.ones(1, 1, 4, 4))[0, 0, 0, 0].item() == -4


@pytest.mark.parametrize("shape", [(5, 33), (2, 3, 33), (1, 1)])
def test_linear_identity_and_sign_equivalence(shape):
    fin = shape[-1]
    ref = nn.Linear(fin, 7)
    layer = QuantLinear(fin, 7)
    layer.load_state_dict(ref.state_dict())
    x = with_zeros(randn(*shape, seed=4))
    assert torch.equal(layer(x), ref(x))
    binary = QuantLinear(fin, 7, input_quantizer="ste_sign", kernel_quantizer="ste_sign")
    binary.load_state_dict(ref.state_dict())
    expected = F.linear(sign(x), sign(ref.weight.detach()), ref.bias)
    assert torch.equal(binary(x), expected)
    assert is_quantized(binary) and not is_quantized(ref)


def test_other_quantizers_are_applied_to_input_and_kernel():
    layer = QuantConv2d(
        4, 6, 3, padding=1, input_quantizer=q.DoReFa(k_bit=3),
        kernel_quantizer="magnitude_aware_sign",
    )
    x = randn(2, 4, 5, 5, seed=5)
    w = layer.weight.detach()
    expected = F.conv2d(q.dorefa(x, 3), q.magnitude_aware_sign(w), layer.bias, padding=1)
    assert torch.equal(layer(x), expected)
    assert layer.input_precision == 3.0 and layer.kernel_precision == 1.0
    fn_layer = QuantLinear(8, 3, input_quantizer=q.approx_sign, kernel_quantizer=q.ste_tern)
    x = randn(4, 8, seed=6)
    expected = F.linear(q.approx_sign(x), q.ste_tern(fn_layer.weight), fn_layer.bias)
    assert torch.equal(fn_layer(x), expected)
    assert fn_layer.input_precision == 1.0 and fn_layer.kernel_precision == 1.58
    assert isinstance(fn_layer.input_quantizer, nn.Module)


def test_precisions_and_is_quantized():
    plain = QuantConv2d(3, 3, 3)
    assert plain.input_precision == 32.0 and plain.kernel_precision == 32.0
    only_kernel = QuantLinear(4, 4, kernel_quantizer="absmean_ternary")
    assert is_quantized(only_kernel) and only_kernel.kernel_precision == 1.58
    assert only_kernel.input_precision == 32.0
    assert is_quantized(QuantLinear(4, 4, input_quantizer="absmax_int8"))
    assert not is_quantized(nn.Conv2d(3, 3, 3)) and not is_quantized(nn.ReLU())


def test_rsign_input_quantizer_gets_the_layer_width():
    layer = QuantConv2d(5, 2, 3, input_quantizer="rsign", kernel_quantizer="ste_sign")
    assert layer.input_quantizer.num_channels == 5
    assert "input_quantizer.alpha" in layer.state_dict()
    lin = QuantLinear(9, 2, input_quantizer="rsign")
    assert lin.input_quantizer.num_channels == 9


# ------------------------------------------------------------------------ validation


def test_pad_value_and_padding_mode_validation():
    with pytest.raises(ValueError, match="pad_value"):
        QuantConv2d(3, 3, 3, padding=1, pad_value=0.5)
    with pytest.raises(ValueError, match="padding_mode"):
        QuantConv2d(3, 3, 3, padding=1, padding_mode="reflect", pad_value=1.0)
    with pytest.raises(ValueError, match="kernel_clip"):
        QuantLinear(3, 3, kernel_clip=0.0)
    layer = QuantConv2d(3, 3, 3, padding=1, pad_value=1)
    assert layer.pad_value == 1.0 and "pad_value=1.0" in repr(layer)


# -------------------------------------------------------------------- starved weights


@pytest.mark.parametrize(
    "kernel_quantizer",
    ["ste_sign", "approx_sign", "swish_sign", "magnitude_aware_sign", "progressive_sign",
     q.ste_sign],
)
@pytest.mark.parametrize("make", [lambda **kw: QuantConv2d(3, 4, 3, **kw),
                                  lambda **kw: QuantLinear(3, 4, **kw)])
def test_starved_weights_warning_fires_without_kernel_clip(kernel_quantizer, make):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make(kernel_quantizer=kernel_quantizer)
    starved = [w for w in caught if issubclass(w.category, StarvedWeightsWarning)]
    assert len(starved) == 1
    message = str(starved[0].message)
    assert "kernel_clip" in message and "clip_latent_weights_" in message
    assert starved[0].filename == __file__  # points at the user's line, not at onebit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make(kernel_quantizer=kernel_quantizer, kernel_clip=1.0)
    assert not [w for w in caught if issubclass(w.category, StarvedWeightsWarning)]


@pytest.mark.parametrize("kernel_quantizer", [None, "absmean_ternary", "ste_tern", "dorefa"])
def test_no_starved_weights_warning_for_non_binary_kernels(kernel_quantizer):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        QuantConv2d(3, 4, 3, kernel_quantizer=kernel_quantizer, input_quantizer="ste_sign")
        BitLinear(8, 4)
    assert not [w for w in caught if issubclass(w.category, StarvedWeightsWarning)]


# --------------------------------------------------------------------------- clipping


def test_kernel_clip_clips_latent_weights():
    layer = QuantConv2d(3, 4, 3, kernel_quantizer="ste_sign", kernel_clip=0.5)
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(-2, 2, layer.weight.numel()).view_as(layer.weight))
    before = layer.weight.detach().clone()
    layer.clip_latent_weights_()
    assert torch.equal(layer.weight.detach(), before.clamp(-0.5, 0.5))
    assert layer.weight.abs().max().item() == 0.5
    inside = before.abs() <= 0.5
    assert torch.equal(layer.weight.detach()[inside], before[inside])  # untouched inside
    # forward never clips: the quantized weight is the same before and after
    assert torch.equal(layer.quantized_weight(), sign(before))


def test_clip_latent_weights_on_model_and_after_step_hook():
    model = nn.Sequential(
        QuantConv2d(3, 4, 3, kernel_quantizer="ste_sign", kernel_clip=1.0),
        nn.Flatten(),
        QuantLinear(4 * 3 * 3, 2, kernel_quantizer="ste_sign", kernel_clip=0.25),
        QuantLinear(2, 2),  # no clip: left alone
    )
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(100)
    free_before = model[3].weight.detach().clone()
    assert clip_latent_weights_(model) == 2
    assert model[0].weight.abs().max() <= 1.0 and model[2].weight.abs().max() <= 0.25
    assert torch.equal(model[3].weight, free_before)
    opt = torch.optim.SGD(model.parameters(), lr=1e3)
    handle = clip_after_step(opt, model)
    model(randn(2, 3, 5, 5, seed=7)).square().sum().backward()
    opt.step()
    assert model[0].weight.abs().max() <= 1.0 and model[2].weight.abs().max() <= 0.25
    handle.remove()


# ------------------------------------------------------------------ state_dict, backward


def test_state_dict_round_trip_with_stateful_quantizers(tmp_path):
    from safetensors.torch import load_file, save_file

    src = QuantConv2d(
        3, 4, 3, padding=1, input_quantizer="rsign", kernel_quantizer="progressive_sign",
        pad_value=1.0, kernel_clip=1.5,
    )
    with torch.no_grad():
        src.input_quantizer.alpha.copy_(torch.tensor([0.1, -0.2, 0.3]))
    src.kernel_quantizer.set_temperature(0.125)
    path = tmp_path / "layer.safetensors"
    save_file(src.state_dict(), str(path))  # tensors only: no pickle needed
    dst = QuantConv2d(
        3, 4, 3, padding=1, input_quantizer="rsign", kernel_quantizer="progressive_sign",
        pad_value=1.0, kernel_clip=1.5,
    )
    dst.load_state_dict(load_file(str(path)))
    assert float(dst.kernel_quantizer.temperature) == 0.125
    assert torch.equal(dst.input_quantizer.alpha, src.input_quantizer.alpha)
    x = randn(2, 3, 6, 6, seed=8)
    assert torch.equal(dst(x), src(x))
    lin_src, lin_dst = BitLinear(16, 8, bias=True), BitLinear(16, 8, bias=True)
    lin_dst.load_state_dict(lin_src.state_dict())
    x = randn(3, 16, seed=9)
    assert torch.equal(lin_dst(x), lin_src(x))


LAYERS = {
    "conv_sign": lambda: QuantConv2d(4, 6, 3, padding=1, input_quantizer="ste_sign",
                                     kernel_quantizer="ste_sign", pad_value=1.0, kernel_clip=1.0),
    "conv_rsign_progressive": lambda: QuantConv2d(4, 6, 3, stride=2, padding=1,
                                                  input_quantizer="rsign",
                                                  kernel_quantizer="progressive_sign",
                                                  kernel_clip=1.5),
    "linear_sign": lambda: QuantLinear(4, 6, input_quantizer="approx_sign",
                                       kernel_quantizer="magnitude_aware_sign", kernel_clip=1.0),
    "bitlinear": lambda: BitLinear(4, 6, bias=True),
    "rprelu": lambda: RPReLU(4),
    "learnable_bias": lambda: LearnableBias(4),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_backward_gives_finite_gradients(name):
    torch.manual_seed(10)
    layer = LAYERS[name]()
    x_shape = (3, 4) if "linear" in name else (2, 4, 6, 6)
    x = (randn(*x_shape, seed=11) * 0.7).requires_grad_(True)
    y = layer(x)
    (y * randn(*y.shape, seed=12)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in layer.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
