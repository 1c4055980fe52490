"""param_groups / quantized_kernels: the split of a model's parameters for AdamW."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from onebit.errors import OnebitError
from onebit.nn import BitLinear, QuantConv2d, QuantLinear, RPReLU
from onebit.optim import param_groups, quantized_kernels


class Mixed(nn.Module):
    """Every kind of parameter param_groups must sort."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)  # float kernel (decay) + bias (no decay)
        self.bn = nn.BatchNorm2d(8)  # no decay
        self.bconv = QuantConv2d(8, 8, 3, padding=1, bias=False, input_quantizer="ste_sign",
                                 kernel_quantizer="ste_sign", kernel_clip=1.0)  # binary
        self.act = RPReLU(8)  # three per-channel vectors: no decay
        self.kernel_only = QuantConv2d(8, 8, 1, kernel_quantizer="ste_sign", kernel_clip=1.0)  # binary + bias
        self.float_quant = QuantLinear(8, 8, input_quantizer="ste_sign")  # kernel_precision 32: decay
        self.bitlinear = BitLinear(8, 8)  # ternary (1.58): binary group
        self.norm = nn.LayerNorm(8)  # no decay
        self.head = nn.Linear(8, 4)  # decay + bias no decay
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def _names(model: nn.Module, group: dict) -> list[str]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for p in group["params"]]


def test_param_groups_split_binary_decay_and_no_decay():
    model = Mixed()
    groups = param_groups(model)
    assert [g["name"] for g in groups] == ["binary", "decay", "no_decay"]
    binary, decay, no_decay = groups
    assert _names(model, binary) == ["bconv.weight", "kernel_only.weight", "bitlinear.weight"]
    assert _names(model, decay) == ["stem.weight", "float_quant.weight", "head.weight"]
    assert _names(model, no_decay) == [
        "stem.bias", "bn.weight", "bn.bias", "act.shift_in", "act.slope", "act.shift_out",
        "kernel_only.bias", "float_quant.bias", "norm.weight", "norm.bias", "head.bias",
    ]
    # BNext sec. 5.1: 1e-3 for non-binary, 1e-8 for binary; no decay for biases and norms.
    assert [g["weight_decay"] for g in groups] == [1e-8, 1e-3, 0.0]
    assert all("lr" not in g for g in groups)
    # Every trainable parameter exactly once; the frozen Linear is left out.
    listed = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(listed) == sorted(trainable) and len(listed) == len(set(listed))


def test_param_groups_options_and_adamw_applies_the_decays():
    model = Mixed()
    groups = param_groups(model, weight_decay=0.5, binary_weight_decay=0.25, lr=0.1)
    assert [(g["weight_decay"], g["lr"]) for g in groups] == [(0.25, 0.1), (0.5, 0.1), (0.0, 0.1)]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(groups, lr=1.0)
    for p in model.parameters():
        p.grad = torch.zeros_like(p) if p.requires_grad else None
    opt.step()
    # Zero gradients: AdamW only decays, p <- p * (1 - lr * wd): binary 1 - 0.025, decay 1 - 0.05.
    params = dict(model.named_parameters())
    assert torch.allclose(params["bconv.weight"], before["bconv.weight"] * 0.975)
    assert torch.allclose(params["head.weight"], before["head.weight"] * 0.95)
    assert torch.equal(params["bn.weight"], before["bn.weight"])
    assert torch.equal(params["frozen.weight"], before["frozen.weight"])


def test_quantized_kernels_by_precision_and_shared_weights():
    model = Mixed()
    assert [n for n, _ in quantized_kernels(model)] == ["bconv.weight", "kernel_only.weight", "bitlinear.weight"]
    assert [n for n, _ in quantized_kernels(model, max_precision=1.0)] == ["bconv.weight", "kernel_only.weight"]
    # QuantLinear without kernel quantizer has kernel_precision 32; plain nn layers never count.
    assert [n for n, _ in quantized_kernels(model, max_precision=32.0)] == [
        "bconv.weight", "kernel_only.weight", "float_quant.weight", "bitlinear.weight"
    ]
    model.kernel_only.weight = model.bconv.weight  # shared: listed once, under its first name
    assert [n for n, _ in quantized_kernels(model, max_precision=1.0)] == ["bconv.weight"]
    single = QuantLinear(3, 2, input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_clip=1.0)
    assert [n for n, _ in quantized_kernels(single)] == ["weight"]


def test_param_groups_without_trainable_parameters_raises():
    with pytest.raises(OnebitError, match="has no trainable parameters"):
        param_groups(nn.Sequential(nn.ReLU(), nn.Flatten()))
    frozen = nn.Linear(3, 3).requires_grad_(False)
    with pytest.raises(OnebitError, match="no trainable parameters"):
        param_groups(frozen)
    with pytest.raises(TypeError):
        param_groups([nn.Parameter(torch.ones(1))])


def test_param_groups_only_float_model_has_no_binary_group():
    groups = param_groups(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))
    assert [g["name"] for g in groups] == ["decay", "no_decay"]
    assert [len(g["params"]) for g in groups] == [1, 3]
