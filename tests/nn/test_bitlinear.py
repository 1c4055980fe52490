"""BitLinear equals the BitNet b1.58 formula written out by hand."""

from __future__ import annotations

import pytest
import torch

from onebit.nn import BitLinear, is_quantized


def bitnet_b158_reference(x, w, bias=None, eps=1e-5):
    """Paper eq. 1-3 + per-token absmax: integer ternary x int8 matmul, then the rescale."""
    gamma = w.abs().mean()
    w_t = torch.clamp(torch.round(w / (gamma + eps)), -1, 1)  # {-1, 0, 1}
    m = x.abs().amax(dim=-1, keepdim=True).clamp(min=eps)  # per token
    x_q = torch.clamp(torch.round(x * 127.0 / m), -127, 127)  # int8 range, no zero point
    acc = x_q.double() @ w_t.double().T  # exact integer accumulation
    y = acc * gamma.double() * m.double() / 127.0
    if bias is not None:
        y = y + bias.double()
    return y, acc


@pytest.mark.parametrize("shape", [(4, 64), (2, 5, 33), (1, 1)])
@pytest.mark.parametrize("bias", [False, True])
def test_bitlinear_matches_paper_formula(shape, bias):
    torch.manual_seed(0)
    layer = BitLinear(shape[-1], 24 if shape[-1] > 1 else 3, bias=bias)
    if bias:
        torch.nn.init.normal_(layer.bias)
    x = torch.randn(shape) * 2.5
    y = layer(x)
    ref, acc = bitnet_b158_reference(x, layer.weight.detach(), layer.bias)
    torch.testing.assert_close(y.double(), ref, rtol=2e-6, atol=2e-6)
    assert torch.equal(acc, torch.round(acc)) and acc.abs().max() <= 127 * shape[-1]


def test_bitlinear_defaults_and_precisions():
    layer = BitLinear(8, 4)
    assert layer.bias is None  # BitNet removes all biases
    assert isinstance(layer, torch.nn.Linear) and is_quantized(layer)
    assert layer.input_precision == 8.0 and layer.kernel_precision == 1.58
    assert layer.kernel_clip is None


def test_bitlinear_gradients_are_straight_through():
    torch.manual_seed(1)
    layer = BitLinear(16, 8)
    x = torch.randn(3, 16, requires_grad=True)
    g = torch.randn(3, 8)
    (layer(x) * g).sum().backward()
    # identity STE on both quantizers: dL/dx = g @ Wq, dL/dW = g^T @ xq
    wq = layer.quantized_weight().detach()
    xq = layer.input_quantizer(x.detach())
    torch.testing.assert_close(x.grad, g @ wq)
    torch.testing.assert_close(layer.weight.grad, g.T @ xq)
