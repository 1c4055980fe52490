"""flatten_order: the NCHW transpose before flatten goes when only dense layers read it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from onebit.converter.passes import flatten_order
from tests.converter.helpers import bdense, ir_out, lowered, randomize, torch_out

torch.set_num_threads(1)


def test_dense_and_bdense_columns_permuted():
    torch.manual_seed(0)
    for head in (nn.Linear(5 * 3 * 4, 6), bdense(5 * 3 * 4, 6)):
        net = randomize(nn.Sequential(nn.Conv2d(2, 5, 1), nn.Flatten(), head))
        x = torch.randn(3, 2, 3, 4)
        g = lowered(net, x)
        before = ir_out(g, x)
        assert flatten_order.run(g) == 1
        assert g.count("transpose") == 0
        np.testing.assert_allclose(ir_out(g, x), before, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ir_out(g, x), torch_out(net, x), rtol=1e-5, atol=1e-5)


def test_kept_when_flatten_is_an_output():
    net = nn.Sequential(nn.Conv2d(2, 5, 1), nn.Flatten())
    x = torch.randn(2, 2, 3, 4)
    g = lowered(net, x)
    assert flatten_order.run(g) == 0
    np.testing.assert_allclose(ir_out(g, x), torch_out(net, x), rtol=1e-5, atol=1e-6)
