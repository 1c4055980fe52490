"""The full-precision twin of a quantized network: same architecture, same weights, no quantizers.

A binary network's honest speed baseline is the network a user would otherwise deploy: the same
layers in float32. ``float_twin`` deep-copies a model and swaps every ``QuantConv2d`` /
``QuantLinear`` / ``BitLinear`` for a plain ``nn.Conv2d`` / ``nn.Linear`` carrying the same
(latent) weights and bias, with ordinary zero padding. The twin computes something else than
the quantized model (no signs, no one-padding); it is for timing and for float baselines, not a
replacement.
"""

from __future__ import annotations

import copy

from torch import nn

from onebit.nn.quant_layers import QuantConv2d, QuantLinear

__all__ = ["float_twin"]


def _plain(m: nn.Module) -> nn.Module:
    if isinstance(m, QuantConv2d):
        twin: nn.Module = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                    m.dilation, m.groups, m.bias is not None, m.padding_mode)
    elif isinstance(m, QuantLinear):  # BitLinear is a QuantLinear
        twin = nn.Linear(m.in_features, m.out_features, m.bias is not None)
    else:
        return m
    twin.load_state_dict({k: v for k, v in m.state_dict().items() if k in ("weight", "bias")})
    return twin.to(m.weight.device, m.weight.dtype).train(m.training)


def float_twin(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with each quantized conv/linear layer replaced by its torch twin.

    ``model`` itself is not modified. Other modules (BatchNorm, activations, pools) are copied
    as they are.
    """
    twin = copy.deepcopy(model)
    if _plain(twin) is not twin:
        return _plain(twin)
    for name, child in list(twin.named_modules()):
        for attr, sub in list(child.named_children()):
            replacement = _plain(sub)
            if replacement is not sub:
                setattr(child, attr, replacement)
    return twin
