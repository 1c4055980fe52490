"""Shared helpers of the converter tests: trained-looking random weights and small models."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from onebit.converter.pipeline import to_ir
from onebit.converter.ir import Graph
from onebit.nn import QuantConv2d, QuantLinear, StarvedWeightsWarning
from tests.converter.ireval import run_ir

warnings.simplefilter("ignore", StarvedWeightsWarning)


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm trained-looking statistics and affine parameters (running mean
    N(0, 0.5), variance in [0.2, 2.2], weight N(1, 0.5) where it is a parameter, bias N(0, 0.3)),
    every PReLU / ReAct parameter small random values; returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.2)
            if isinstance(m.weight, nn.Parameter):
                m.weight.copy_(torch.randn(c, generator=g) * 0.5 + 1)
            if m.bias is not None:
                m.bias.copy_(torch.randn(c, generator=g) * 0.3)
        for name, p in m.named_parameters(recurse=False):
            if name in ("alpha", "shift_in", "shift_out", "slope") or (isinstance(m, nn.PReLU)):
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


def torch_out(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(x).numpy()


def ir_out(graph: Graph, x: torch.Tensor) -> np.ndarray:
    return run_ir(graph, x.numpy())["output"]


def lowered(model: nn.Module, x: torch.Tensor) -> Graph:
    """The IR right after lowering, before any pass (binary weights still float ±1)."""
    from onebit.converter.capture import capture
    from onebit.converter.lower import lower

    return lower(capture(model, x))


def bconv(cin: int, cout: int, k: int = 3, *, pad_value: float = 1.0, kernel="ste_sign", **kw) -> QuantConv2d:
    return QuantConv2d(cin, cout, k, padding=k // 2, bias=False, pad_value=pad_value,
                       input_quantizer="ste_sign", kernel_quantizer=kernel, kernel_clip=1.0, **kw)


def bdense(cin: int, cout: int, **kw) -> QuantLinear:
    return QuantLinear(cin, cout, bias=False, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                       kernel_clip=1.0, **kw)


__all__ = ["randomize", "torch_out", "ir_out", "lowered", "bconv", "bdense", "to_ir", "run_ir"]
