"""pack_weights: ±1 weights -> packed OHWI uint32 (bit 1 = -1), ternary codes -> tq2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from onebit.converter.passes import pack_weights
from onebit.kernels import unpack, unpack_ternary
from onebit.nn import BitLinear
from tests.converter.helpers import bconv, bdense, ir_out, lowered

torch.set_num_threads(1)


@pytest.mark.parametrize("c", [1, 31, 32, 33, 64, 65])
def test_binary_weights_packed(c):
    torch.manual_seed(c)
    net = nn.Sequential(bconv(c, 5), nn.Flatten(), bdense(5 * 9, 3))
    x = torch.randn(2, c, 3, 3)
    g = lowered(net, x)
    floats = {n.name: n.params["weights"].copy() for n in g.nodes if n.type in ("bconv2d", "bdense")}
    before = ir_out(g, x)
    assert pack_weights.run(g) == 2
    for n in g.nodes:
        if n.name in floats:
            w = n.params["weights"]
            assert w.dtype == np.uint32 and w.shape[-1] == -(-floats[n.name].shape[-1] // 32)
            np.testing.assert_array_equal(unpack(w, floats[n.name].shape[-1]), floats[n.name])
    np.testing.assert_array_equal(ir_out(g, x), before)
    assert pack_weights.run(g) == 0  # idempotent


def test_ternary_weights_packed():
    torch.manual_seed(0)
    net = nn.Sequential(BitLinear(130, 9))
    g = lowered(net, torch.randn(2, 130))
    codes = g.nodes[0].params["weights"].copy()
    assert pack_weights.run(g) == 1
    w = g.nodes[0].params["weights"]
    assert w.dtype == np.uint8 and w.shape == (9, 32 * 2)
    np.testing.assert_array_equal(unpack_ternary(w, 130), codes)
