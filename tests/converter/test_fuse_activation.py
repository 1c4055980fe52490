"""fuse_activation: ReLU / ReLU6 / Hardtanh / clamp into the output transform's clamp."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from onebit.converter.passes import fuse_activation
from tests.converter.helpers import bconv, ir_out, lowered, randomize, torch_out

torch.set_num_threads(1)


@pytest.mark.parametrize("acts, bounds", [
    ((nn.ReLU(),), (0.0, None)),
    ((nn.Hardtanh(-0.5, 0.75),), (-0.5, 0.75)),
    ((nn.ReLU(), nn.ReLU6()), (0.0, 6.0)),
    ((nn.Hardtanh(-2.0, 3.0), nn.ReLU6()), (0.0, 3.0)),
])
def test_clamps_fuse_into_binary_and_float_convs(acts, bounds):
    torch.manual_seed(0)
    for first in (bconv(32, 8), nn.Conv2d(32, 8, 3, padding=1)):
        net = randomize(nn.Sequential(first, *acts))
        x = torch.randn(2, 32, 6, 6)
        g = lowered(net, x)
        before = ir_out(g, x)
        assert fuse_activation.run(g) == len(acts)
        (conv,) = [n for n in g.nodes if n.type != "quantize"]
        assert (conv.attrs["clamp_min"], conv.attrs["clamp_max"]) == bounds
        np.testing.assert_array_equal(ir_out(g, x), before)
        np.testing.assert_allclose(ir_out(g, x), torch_out(net, x), rtol=1e-5, atol=1e-5)


def test_prelu_and_disjoint_clamps_stay():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.PReLU())
    g = lowered(net, torch.randn(1, 3, 2, 2))
    assert fuse_activation.run(g) == 0 and g.count("prelu") == 1

    class Disjoint(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return torch.clamp(torch.clamp(self.conv(x), max=-1.0), min=1.0)

    net = Disjoint()
    x = torch.randn(1, 3, 2, 2)
    g = lowered(net, x)
    assert fuse_activation.run(g) == 1  # the first clamp fuses, the disjoint second stays
    assert g.count("clamp") == 1
    np.testing.assert_allclose(ir_out(g, x), torch_out(net, x))
