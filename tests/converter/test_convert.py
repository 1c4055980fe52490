"""convert(): bytes and file, a valid .onebit document, probes, symbolic batch, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import onebit.converter
from onebit.converter.pipeline import PROBE_PREFIX, to_ir
from onebit.errors import ConversionError
from onebit.models import create_model
from onebit.runtime import load_model
from tests.converter.helpers import bconv, randomize

torch.set_num_threads(1)


def test_bytes_file_and_document(tmp_path):
    model = randomize(create_model("quicknet_small_cifar"))
    x = torch.randn(1, 3, 32, 32)
    path = tmp_path / "q.onebit"
    data = onebit.converter.convert(model, x, path)
    assert path.read_bytes() == data
    mf = load_model(path)
    g = mf.graph
    assert g["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 3, 32, 32], "layout": "NCHW"}]
    assert g["outputs"] == [{"name": "output", "dtype": "float32", "shape": ["batch", 10], "layout": "NC"}]
    types = [op["type"] for op in g["ops"]]
    assert types.count("bconv2d") == 16 and "batch_norm" not in types
    # binary weights are bitpacked: 32x smaller than the float32 latent weights
    bw = sum(mf.tensors[op["inputs"][1]].nbytes for op in g["ops"] if op["type"] == "bconv2d")
    latent = sum(m.weight.numel() * 4 for m in model.modules() if getattr(m, "kernel_precision", 32) == 1)
    assert bw * 32 == latent
    assert mf.provenance["source"] == "onebit.models.quicknet.QuickNet" and mf.provenance["torch"] == torch.__version__


def test_mode_restored_and_probes():
    model = randomize(create_model("birealnet18_cifar")).train()
    data = onebit.converter.convert(model, torch.randn(2, 3, 32, 32), probes=True)
    assert model.training
    outs = load_model(data).graph["outputs"]
    probes = [o for o in outs if o["name"].startswith(PROBE_PREFIX)]
    assert len(probes) == 16
    assert probes[0] == {"name": "sign:features.0.conv", "dtype": "float32", "shape": ["batch", 64, 32, 32],
                         "layout": "NCHW"}


def test_optimize_false_keeps_ops():
    model = randomize(create_model("binary_alexnet_cifar"))
    x = torch.randn(1, 3, 32, 32)
    raw, opt = to_ir(model, x, optimize=False), to_ir(model, x)
    assert raw.count("scale_bias") == 8 and opt.count("scale_bias") == 0
    assert raw.count("bmaxpool2d") == 0 and opt.count("bmaxpool2d") == 2
    bitpacked = [n.name for n in opt.nodes if n.attrs.get("output") == "bitpacked"]
    # conv2 -> pool -> conv3 -> conv4 -> conv5 and fc1 -> fc2 -> fc3: every binary layer whose
    # output feeds only binary layers writes bits (conv5 feeds the flatten, fc3 the logits)
    assert len(bitpacked) == 5, bitpacked


def test_errors_are_typed():
    with pytest.raises(ConversionError):
        onebit.converter.convert(nn.Sequential(nn.LSTM(3, 3)), torch.randn(1, 2, 3))
    assert issubclass(ConversionError, ValueError)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = bconv(32, 32)

        def forward(self, x):
            y = self.c(x)
            return y, y

    with pytest.raises(ConversionError, match="same tensor twice"):
        onebit.converter.convert(Twice(), torch.randn(1, 32, 4, 4))
    with pytest.raises(ConversionError, match="input unchanged"):
        onebit.converter.convert(nn.Identity(), torch.randn(1, 3, 4, 4))
