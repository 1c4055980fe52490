"""bitpacked_output: a binary conv read only by binary layers writes bits through thresholds;
the bits equal sign() of its float output, including clamps and negative multipliers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from onebit.converter.pipeline import add_probes
from onebit.converter.passes import bitpacked_output, fold_batchnorm, fuse_activation
from tests.converter.helpers import bconv, bdense, lowered, randomize, run_ir, torch_out

torch.set_num_threads(1)


def _probe_signs(net, x):
    """sign(input) of every binary layer in the torch model, by module name."""
    signs = {}
    hooks = [m.register_forward_pre_hook(lambda m, a, name=name: signs.__setitem__(
        name, m.input_quantizer(a[0]).numpy())) for name, m in net.named_modules() if hasattr(m, "input_quantizer")
        and m.input_quantizer is not None]
    torch_out(net, x)
    for h in hooks:
        h.remove()
    return signs


@pytest.mark.parametrize("between", [(), (nn.Hardtanh(),), (nn.ReLU(),), (nn.Hardtanh(-3.0, -1.0),)])
def test_bits_equal_signs(between):
    torch.manual_seed(3)
    net = randomize(nn.Sequential(bconv(33, 64), nn.BatchNorm2d(64), *between, bconv(64, 31, pad_value=0.0),
                                  nn.BatchNorm2d(31), nn.Flatten(), bdense(31 * 36, 7)))
    with torch.no_grad():
        net[1].weight[::3].neg_()  # negative multipliers: thresholds with flip = 1
    x = torch.randn(4, 33, 6, 6)
    g = lowered(net, x)
    fold_batchnorm.run(g)
    fuse_activation.run(g)
    add_probes(g)
    before = run_ir(g, x.numpy())
    assert bitpacked_output.run(g) == 1
    assert g.count("quantize") == 2  # the graph input's and the one after the flatten
    bc = next(n for n in g.nodes if n.type == "bconv2d")
    assert bc.attrs["output"] == "bitpacked" and "multiplier" not in bc.params
    assert bc.params["threshold"].dtype == np.int32 and set(np.unique(bc.params["flip"])) <= {0, 1}
    after = run_ir(g, x.numpy())
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])
    signs = _probe_signs(net, x)
    for k, v in after.items():
        if k.startswith("sign:"):
            np.testing.assert_array_equal(v, signs[k[len("sign:"):]])
    np.testing.assert_allclose(after["output"], torch_out(net, x), rtol=1e-5, atol=1e-4)


def test_float_reader_keeps_float_output():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = bconv(32, 32), bconv(32, 32)

        def forward(self, x):
            y = self.a(x)
            return self.b(y) + y

    g = lowered(Res(), torch.randn(1, 32, 4, 4))
    assert bitpacked_output.run(g) == 0
