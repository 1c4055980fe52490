"""binary_maxpool: quantize(maxpool(x)) -> bmaxpool2d(quantize(x)), identical bits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from onebit.converter.pipeline import add_probes
from onebit.converter.passes import binary_maxpool
from tests.converter.helpers import bconv, ir_out, lowered, randomize, run_ir, torch_out

torch.set_num_threads(1)


@pytest.mark.parametrize("pool", [nn.MaxPool2d(2), nn.MaxPool2d(3, 2), nn.MaxPool2d(3, 2, padding=1),
                                  nn.MaxPool2d(3, 2, ceil_mode=True)])
def test_pool_on_bits(pool):
    torch.manual_seed(0)
    net = randomize(nn.Sequential(nn.Conv2d(3, 40, 3), pool, bconv(40, 8)))
    x = torch.randn(2, 3, 12, 13)
    g = lowered(net, x)
    add_probes(g)
    before = run_ir(g, x.numpy())
    assert binary_maxpool.run(g) == 1
    assert [n.type for n in g.nodes[:4]] == ["conv2d", "quantize", "bmaxpool2d", "bconv2d"]
    after = run_ir(g, x.numpy())
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])
    np.testing.assert_allclose(after["output"], torch_out(net, x), rtol=1e-5, atol=1e-4)


def test_pool_also_read_as_float_stays():
    class Both(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool, self.conv = nn.MaxPool2d(2), bconv(32, 32)

        def forward(self, x):
            p = self.pool(x)
            return self.conv(p) + p

    g = lowered(Both(), torch.randn(1, 32, 4, 4))
    assert binary_maxpool.run(g) == 0 and g.count("maxpool2d") == 1
