"""fold_batchnorm: BN after float and binary convs/dense folds into weights / multiplier and bias."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from onebit.converter.passes import fold_batchnorm
from tests.converter.helpers import bconv, bdense, ir_out, lowered, randomize, torch_out

torch.set_num_threads(1)


def _bn_affine(bn):
    s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()
    return s, (bn.bias.detach().double() - bn.running_mean.double() * s)


def test_float_conv_weights_and_bias():
    torch.manual_seed(0)
    net = randomize(nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)))
    x = torch.randn(2, 3, 7, 7)
    g = lowered(net, x)
    assert fold_batchnorm.run(g) == 1
    (conv,) = g.nodes
    s, t = _bn_affine(net[1])
    w = net[0].weight.detach().double().permute(0, 2, 3, 1) * s.view(-1, 1, 1, 1)
    np.testing.assert_allclose(conv.params["weights"], w.numpy(), rtol=1e-6)
    np.testing.assert_allclose(conv.params["bias"], (net[0].bias.double() * s + t).detach().numpy(), rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(ir_out(g, x), torch_out(net, x), rtol=1e-5, atol=1e-5)


def test_binary_conv_multiplier_and_bias():
    torch.manual_seed(1)
    net = randomize(nn.Sequential(bconv(32, 16, kernel="magnitude_aware_sign"), nn.BatchNorm2d(16),
                                  nn.Flatten(), bdense(16 * 25, 10), nn.BatchNorm1d(10)))
    x = torch.randn(3, 32, 5, 5)
    g = lowered(net, x)
    bc = next(n for n in g.nodes if n.type == "bconv2d")
    m0 = bc.params["multiplier"].astype(np.float64)
    assert fold_batchnorm.run(g) == 2
    assert g.count("scale_bias") == 0
    s, t = _bn_affine(net[1])
    np.testing.assert_allclose(bc.params["multiplier"], m0 * s.numpy(), rtol=1e-6)
    np.testing.assert_allclose(bc.params["bias"], t.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ir_out(g, x), torch_out(net, x), rtol=1e-4, atol=1e-4)


def test_not_after_a_clamp_or_a_shared_output():
    net = randomize(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.BatchNorm2d(4)))
    g = lowered(net, torch.randn(1, 3, 4, 4))
    from onebit.converter.passes import fuse_activation

    fuse_activation.run(g)
    assert fold_batchnorm.run(g) == 0

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    g = lowered(randomize(Shared()), torch.randn(1, 3, 4, 4))
    assert fold_batchnorm.run(g) == 0
