"""lower: every supported module/function becomes schema ops that compute what torch computes
(checked by running the lowered IR), weights in the engine layout, typed errors otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from onebit.errors import ConversionError
from onebit.nn import BitLinear, LearnableBias, QuantConv2d, RPReLU
from onebit.quantizers import RSign
from tests.converter.helpers import bconv, bdense, ir_out, lowered, randomize, torch_out

torch.set_num_threads(1)


class _Zoo(nn.Module):
    """One of (nearly) every supported module and function."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 2, padding=1)
        self.bn = nn.BatchNorm2d(32)
        self.act = nn.PReLU()
        self.shift = LearnableBias(32)
        self.b1 = bconv(32, 32, pad_value=1.0)
        self.b2 = QuantConv2d(32, 40, 3, padding=1, bias=True, pad_value=0.0, input_quantizer=RSign(32),
                              kernel_quantizer="magnitude_aware_sign", kernel_clip=1.0)
        self.rp = RPReLU(40)
        self.pool = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
        self.avg = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
        self.same = nn.Conv2d(40, 16, 4, padding="same", groups=8)
        self.six = nn.ReLU6()
        self.ht = nn.Hardtanh(-0.5, 2.0)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(16 * 3 * 3, 20)
        self.bd = bdense(20, 12)
        self.bn1 = nn.BatchNorm1d(12)
        self.sm = nn.Softmax(dim=1)

    def forward(self, x):
        x = self.shift(self.act(self.bn(self.stem(x))))  # (N, 32, 9, 9)
        x = x + self.b1(x)
        x = self.rp(self.b2(x))  # (N, 40, 9, 9)
        x = self.avg(self.pool(x))  # (N, 40, 3, 3)
        x = torch.clamp(self.ht(self.six(self.same(x))) * 1.5 - 0.25, min=-1.0)
        x = F.relu(self.fc(self.flat(x)))
        y = self.bn1(self.bd(torch.sigmoid(x) - 0.5))
        return self.sm(torch.cat([y, F.hardtanh(y)], dim=1))


def test_lowered_zoo_computes_the_same():
    torch.manual_seed(0)
    net = randomize(_Zoo())
    x = torch.randn(4, 3, 17, 17)
    g = lowered(net, x)
    types = [n.type for n in g.nodes]
    for t in ("conv2d", "scale_bias", "prelu", "add", "quantize", "bconv2d", "maxpool2d", "avgpool2d",
              "clamp", "mul", "transpose", "flatten", "dense", "relu", "sigmoid", "bdense", "concat", "softmax"):
        assert t in types, t
    np.testing.assert_allclose(ir_out(g, x), torch_out(net, x), rtol=1e-5, atol=1e-6)


def test_conv_weights_ohwi_and_binary_parameters():
    torch.manual_seed(1)
    net = nn.Sequential(QuantConv2d(3, 5, (3, 2), padding=(1, 0), pad_value=0.0, bias=True,
                                    input_quantizer="approx_sign", kernel_quantizer="magnitude_aware_sign",
                                    kernel_clip=1.0))
    g = lowered(net, torch.randn(1, 3, 6, 6))
    (q, bc) = g.nodes
    assert (q.type, bc.type) == ("quantize", "bconv2d")
    w = net[0].weight.detach()
    signs = torch.where(w < 0, -1.0, 1.0).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(bc.params["weights"], signs)  # OHWI, +-1
    np.testing.assert_allclose(bc.params["multiplier"], w.abs().mean((1, 2, 3)).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(bc.params["bias"], net[0].bias.detach().numpy())
    assert bc.attrs["padding"] == [1, 1, 0, 0] and bc.attrs["pad_values"] == "zero"


def test_first_layer_float_input_binary_weights_is_float_conv():
    net = nn.Sequential(QuantConv2d(3, 4, 3, kernel_quantizer="ste_sign", kernel_clip=1.0))
    g = lowered(net, torch.randn(1, 3, 5, 5))
    (c,) = g.nodes
    assert c.type == "conv2d" and set(np.unique(c.params["weights"])) <= {-1.0, 1.0}


def test_bitlinear_to_ternary_linear():
    torch.manual_seed(2)
    net = nn.Sequential(BitLinear(200, 33, bias=True))
    x = torch.randn(5, 200)
    g = lowered(net, x)
    assert [n.type for n in g.nodes] == ["ternary_linear", "add"]
    tl = g.nodes[0]
    assert tl.params["weights"].dtype == np.int8 and tl.params["weights"].shape == (33, 200)
    gamma = net[0].weight.abs().mean().item()
    assert tl.params["w_scale"][0] == pytest.approx(gamma, rel=1e-6)
    np.testing.assert_allclose(ir_out(g, x), torch_out(net, x), rtol=1e-4, atol=1e-4)


def test_unsupported_module_names_it_and_lists_supported():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.GELU())
    with pytest.raises(ConversionError, match=r"module '1' \(torch.nn.modules.activation.GELU\).*Supported modules:.*"
                                              r"BatchNorm2d.*QuantConv2d"):
        lowered(net, torch.randn(1, 3, 4, 4))


def test_unsupported_function_and_quantizers():
    class Tanh(nn.Module):
        def forward(self, x):
            return torch.tanh(x)

    with pytest.raises(ConversionError, match="function 'tanh'.*Supported functions:"):
        lowered(Tanh(), torch.randn(1, 3, 4, 4))
    dorefa = nn.Sequential(QuantConv2d(3, 4, 3, input_quantizer="dorefa", kernel_quantizer="ste_sign", kernel_clip=1.0))
    with pytest.raises(ConversionError, match="input quantizer 'dorefa' is not supported"):
        lowered(dorefa, torch.randn(1, 3, 5, 5))
    tern = nn.Sequential(QuantConv2d(32, 4, 3, input_quantizer="ste_sign", kernel_quantizer="ste_tern"))
    with pytest.raises(ConversionError, match="kernel quantizer 'ste_tern'"):
        lowered(tern, torch.randn(1, 32, 5, 5))
    grouped = nn.Sequential(bconv(16, 16, groups=2))
    with pytest.raises(ConversionError, match="multiple of 32"):
        lowered(grouped, torch.randn(1, 16, 5, 5))


def test_flatten_of_feature_map_goes_through_nchw():
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.Flatten(), nn.Linear(3 * 4 * 5, 2))
    x = torch.randn(2, 2, 4, 5)
    g = lowered(net, x)
    assert [n.type for n in g.nodes] == ["conv2d", "transpose", "flatten", "dense"]
    np.testing.assert_allclose(ir_out(g, x), torch_out(net, x), rtol=1e-5, atol=1e-6)


def test_view_flatten_and_functional_pools():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4 * 3 * 3, 5)
            self.fc2 = nn.Linear(5, 5)

        def forward(self, x):
            x = F.avg_pool2d(F.max_pool2d(self.conv(x), 2, 2, ceil_mode=True), 2, 1)
            x = self.fc(x.view(x.size(0), -1))
            return self.fc2(x.reshape(x.shape[0], -1))

    torch.manual_seed(3)
    net = Functional()
    x = torch.randn(2, 3, 9, 9)
    g = lowered(net, x)
    assert [n.type for n in g.nodes] == ["conv2d", "maxpool2d", "avgpool2d", "transpose", "flatten", "dense", "dense"]
    np.testing.assert_allclose(ir_out(g, x), torch_out(net, x), rtol=1e-5, atol=1e-6)

    class Reshape(nn.Module):
        def forward(self, x):
            return x.view(x.size(0), 3, -1).relu()

    with pytest.raises(ConversionError, match=r"reshape \(1, 3, 4, 4\) -> \(1, 3, 16\) is not supported"):
        lowered(Reshape(), torch.randn(1, 3, 4, 4))
