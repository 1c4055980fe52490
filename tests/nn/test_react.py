"""ReActNet's RPReLU and LearnableBias against their formulas."""

from __future__ import annotations

import pytest
import torch

from onebit.errors import ShapeError
from onebit.nn import LearnableBias, RPReLU


@pytest.mark.parametrize("shape", [(3, 4), (2, 4, 5, 5)])
def test_rprelu_formula(shape):
    torch.manual_seed(0)
    m = RPReLU(4)
    with torch.no_grad():
        m.shift_in.copy_(torch.tensor([0.0, 0.5, -0.5, 1.0]))
        m.slope.copy_(torch.tensor([0.25, 0.1, -0.2, 1.0]))
        m.shift_out.copy_(torch.tensor([0.0, -1.0, 2.0, 0.3]))
    x = torch.randn(shape)
    x.view(-1)[1] = 0.5  # u = 0 exactly in channel 1 for the (N, C) case
    view = (1, -1) + (1,) * (len(shape) - 2)
    u = x - m.shift_in.detach().view(view)
    slope, shift_out = m.slope.detach().view(view), m.shift_out.detach().view(view)
    expected = torch.where(u > 0, u, slope * u) + shift_out
    assert torch.equal(m(x), expected)
    assert "num_channels=4" in repr(m)


def test_rprelu_starts_as_prelu():
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(RPReLU(3)(x), torch.nn.PReLU(3, init=0.25)(x).detach())


@pytest.mark.parametrize("shape", [(3, 4), (2, 4, 5, 5)])
def test_learnable_bias_formula_and_shape_error(shape):
    m = LearnableBias(4)
    with torch.no_grad():
        m.bias.copy_(torch.tensor([1.0, -2.0, 0.5, 0.0]))
    x = torch.randn(shape)
    view = (1, -1) + (1,) * (len(shape) - 2)
    assert torch.equal(m(x), x + m.bias.detach().view(view))
    with pytest.raises(ShapeError, match="channels on axis 1"):
        m(torch.randn(2, 5, 3, 3))
    with pytest.raises(ShapeError):
        RPReLU(4)(torch.randn(4))
