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
def randomize(model: nn.Module, seed: int = 0, input_size: tuple[int, ...] | None = None) -> nn.Module:
    """Trained-looking random parameters; returns the model in eval mode.

    BatchNorm affine parameters: weight N(1, 0.5) where it is a parameter (some negative: the
    converter must handle negative multipliers), bias N(0, 0.3); PReLU / ReAct parameters
    N(0, 0.2). Running statistics are *calibrated* as training leaves them: the model runs in
    train mode on two random batches (cumulative averages), so every BN normalises what really
    reaches it, as in a trained network (random running statistics would blow the activations
    up layer after layer). ``input_size`` ``(C, H, W)``: default the model's ``default_cfg`` or,
    without one, no calibration (running statistics N(0, 0.5) and U(0.2, 2.2) instead).
    """
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            if name in ("alpha", "shift_in", "shift_out", "slope") or isinstance(m, nn.PReLU):
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    for m in bns:
        c = m.num_features
        if isinstance(m.weight, nn.Parameter):
            m.weight.copy_(torch.randn(c, generator=g) * 0.5 + 1)
        if m.bias is not None:
            m.bias.copy_(torch.randn(c, generator=g) * 0.3)
        m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
        m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.2)
    if input_size is None and hasattr(model, "default_cfg"):
        input_size = tuple(model.default_cfg.input_size)
    if input_size is not None and bns:
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        model.train()
        for _ in range(2):
            model(torch.randn((8, *input_size), generator=g))
        for m, mom in zip(bns, momenta):
            m.momentum = mom
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
