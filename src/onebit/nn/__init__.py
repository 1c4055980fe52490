"""Quantized layers for training 1-bit and 1.58-bit networks (PyTorch).

``QuantConv2d`` / ``QuantLinear`` take Larq-style ``input_quantizer`` / ``kernel_quantizer``;
``BitLinear`` is BitNet b1.58; ``RPReLU`` / ``LearnableBias`` are ReActNet's shifts.
"""

from onebit.nn.bitlinear import BitLinear
from onebit.nn.quant_layers import (
    QuantConv2d,
    QuantLinear,
    StarvedWeightsWarning,
    clip_after_step,
    clip_latent_weights_,
    is_quantized,
)
from onebit.nn.react import LearnableBias, RPReLU
from onebit.nn.twin import float_twin

__all__ = [
    "QuantConv2d",
    "QuantLinear",
    "BitLinear",
    "RPReLU",
    "LearnableBias",
    "StarvedWeightsWarning",
    "is_quantized",
    "clip_latent_weights_",
    "clip_after_step",
    "float_twin",
]
