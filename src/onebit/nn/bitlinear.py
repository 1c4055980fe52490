"""BitNet b1.58 linear layer."""

from __future__ import annotations

from onebit.nn.quant_layers import QuantLinear
from onebit.quantizers import AbsmaxInt8, AbsmeanTernary

__all__ = ["BitLinear"]


class BitLinear(QuantLinear):
    r"""BitNet b1.58 ``BitLinear``: absmean ternary weights, per-token absmax int8 activations.

    With ``gamma = mean|W|`` (whole tensor), ``W~ = RoundClip(W / (gamma + eps), -1, 1)``
    (eq. 1-3), ``m_t = max(max_i |x_{t,i}|, eps)`` per token ``t`` (last axis) and
    ``x~_t = RoundClip(127 x_t / m_t, -127, 127)`` (integers, no zero point), the layer computes

        ``y_t = (W~ x~_t) * gamma * m_t / 127  (+ bias)``

    i.e. an integer ternary-by-int8 matmul followed by the output rescale ``gamma * m_t / 127``.
    In training both quantizers are fake-quantized with identity straight-through gradients
    (``absmax_int8``, ``absmean_ternary``), so the forward is ``F.linear(x^, gamma * W~)`` with
    ``x^ = x~ * m / 127``, the same value up to float rounding order.

    No normalisation inside: the paper's LLaMA-alike blocks put RMSNorm before the projections
    (that belongs to the block, not this layer). ``bias=False`` by default (the paper removes
    all biases). ``input_precision == 8``, ``kernel_precision == 1.58``.

    Paper: Ma et al., "The Era of 1-bit LLMs" (BitNet b1.58), sec. 2, eq. (1)-(3); activation
    quantizer from Wang et al., "BitNet" (2023), eq. (4) without the zero point.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        device=None,
        dtype=None,
        *,
        eps: float = 1e-5,
    ):
        super().__init__(
            in_features,
            out_features,
            bias,
            device,
            dtype,
            input_quantizer=AbsmaxInt8(eps),
            kernel_quantizer=AbsmeanTernary(eps),
        )
        self.eps = float(eps)
