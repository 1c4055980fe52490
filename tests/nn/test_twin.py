"""float_twin: plain torch layers with the same weights; the original is untouched."""

from __future__ import annotations

import torch
from torch import nn

from onebit.models import create_model
from onebit.nn import BitLinear, QuantConv2d, QuantLinear, float_twin


def test_twin_of_a_zoo_model_has_no_quantized_layers_and_same_weights():
    torch.manual_seed(0)
    model = create_model("quicknet_small_cifar").eval()
    twin = float_twin(model)
    assert not any(isinstance(m, (QuantConv2d, QuantLinear)) for m in twin.modules())
    assert any(isinstance(m, QuantConv2d) for m in model.modules())           # original kept
    sd, tsd = model.state_dict(), twin.state_dict()
    assert sd.keys() == tsd.keys()
    assert all(torch.equal(sd[k], tsd[k]) for k in sd)
    assert twin(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_twin_layer_equals_quantized_layer_with_identity_quantizers():
    torch.manual_seed(1)
    q = QuantConv2d(5, 7, 3, stride=2, padding=1, bias=True)
    seq = nn.Sequential(q, nn.ReLU(), nn.Flatten(), QuantLinear(7 * 4 * 4, 3))
    x = torch.randn(2, 5, 8, 8)
    torch.testing.assert_close(float_twin(seq)(x), seq(x), rtol=0, atol=0)


def test_twin_of_a_single_bitlinear():
    torch.manual_seed(2)
    layer = BitLinear(16, 4)
    twin = float_twin(layer)
    assert type(twin) is nn.Linear and twin.bias is None
    x = torch.randn(3, 16)
    torch.testing.assert_close(twin(x), x @ layer.weight.T)
