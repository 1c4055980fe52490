"""capture: known layers stay whole, shapes are recorded, the model's mode is restored."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from onebit.converter.capture import capture
from onebit.errors import ConversionError
from onebit.models.quicknet import BlurPool2d
from onebit.nn import QuantConv2d
from tests.converter.helpers import bconv

torch.set_num_threads(1)


class _OwnForward(nn.Conv2d):
    def forward(self, x):
        return super().forward(x) * 2.0


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = bconv(4, 8)
        self.blur = BlurPool2d(8)
        self.own = _OwnForward(8, 8, 1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return self.own(self.blur(self.bn(self.q(x)))) + 1.0


def test_leaves_and_shapes():
    net = _Net().train()
    gm = capture(net, torch.randn(2, 4, 9, 9))
    mods = {n.target: n for n in gm.graph.nodes if n.op == "call_module"}
    assert isinstance(net.get_submodule("q"), QuantConv2d)
    # QuantConv2d, BlurPool2d (an nn.Conv2d keeping its forward) and BN stay whole ...
    assert {"q", "blur", "bn"} <= set(mods)
    # ... a subclass with its own forward is traced through (to a conv + mul)
    assert "own" not in mods
    assert any(n.op == "call_function" and n.target is torch.conv2d for n in gm.graph.nodes)
    assert mods["q"].meta["shape"] == (2, 8, 9, 9)
    assert mods["blur"].meta["shape"] == (2, 8, 5, 5)
    assert net.training  # mode restored


def test_eval_mode_during_capture():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net[1].running_mean.fill_(5.0)
    gm = capture(net.train(), torch.randn(3, 3, 6, 6))
    out = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == "1")
    # eval statistics used: the mean over the batch is far from 0 (running mean 5 subtracted)
    assert out.meta["value"].mean() < -3


def test_untraceable_model():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ConversionError, match="torch.fx could not trace Branchy"):
        capture(Branchy(), torch.randn(1, 3, 4, 4))


def test_bad_arguments():
    with pytest.raises(ConversionError, match="torch.nn.Module"):
        capture(lambda x: x, torch.randn(1, 3))
    with pytest.raises(ConversionError, match="float tensor"):
        capture(nn.Identity(), torch.zeros(1, 3, dtype=torch.long))


def test_wrong_example_input_and_two_inputs():
    with pytest.raises(ConversionError, match=r"failed on example_input of shape \(1, 4, 8, 8\)"):
        capture(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.randn(1, 4, 8, 8))

    class Two(nn.Module):
        def forward(self, a, b):
            return a + b

    with pytest.raises(ConversionError, match="takes 2 inputs"):
        capture(Two(), torch.randn(1, 3))
