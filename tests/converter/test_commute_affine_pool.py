"""commute_affine_pool: maxpool -> BN (positive scales) becomes BN -> maxpool, same values."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from onebit.converter.passes import commute_affine_pool
from tests.converter.helpers import ir_out, lowered, randomize, torch_out

torch.set_num_threads(1)


def _net(sign: float):
    net = randomize(nn.Sequential(nn.Conv2d(3, 8, 3), nn.MaxPool2d(3, 2, padding=1), nn.BatchNorm2d(8)))
    with torch.no_grad():
        net[2].weight.abs_().mul_(sign)
    return net


def test_swaps_positive_affine_exactly():
    x = torch.randn(3, 3, 12, 11)
    net = _net(1.0)
    g = lowered(net, x)
    before = ir_out(g, x)
    assert commute_affine_pool.run(g) == 1
    assert [n.type for n in g.nodes] == ["conv2d", "scale_bias", "maxpool2d"]
    after = ir_out(g, x)
    np.testing.assert_array_equal(after, before)  # monotone map: exact in float too
    np.testing.assert_allclose(after, torch_out(net, x), rtol=1e-5, atol=1e-6)


def test_keeps_negative_scales_and_shared_pools():
    x = torch.randn(1, 3, 8, 8)
    g = lowered(_net(-1.0), x)
    assert commute_affine_pool.run(g) == 0
    assert [n.type for n in g.nodes] == ["conv2d", "maxpool2d", "scale_bias"]

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool, self.bn = nn.MaxPool2d(2), nn.BatchNorm2d(3)

        def forward(self, x):
            p = self.pool(x)
            return self.bn(p) + p

    g = lowered(randomize(Shared()), x)
    assert commute_affine_pool.run(g) == 0
