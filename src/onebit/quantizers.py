"""Quantizers: a pure function with a custom gradient plus a thin ``nn.Module`` for each.

Every quantizer maps a latent float tensor to its quantized value in the forward pass and uses a
pseudo-gradient (a straight-through estimator, STE) in the backward pass. The functions are
built on ``torch.autograd.Function``; the modules store hyper-parameters, a ``precision``
(bits per value: 1 binary, 1.58 ternary, k for k-bit) and a string alias ``name``.

Sign convention (one place for the whole project, see DESIGN.md): ``sign(0) = +1``, i.e.
``x >= 0 -> +1`` and ``x < 0 -> -1``, the same as the bitpacking kernels (bit 0 is +1).

Rounding: ``torch.round`` (round half to even) everywhere; the runtime must round the same way.

Use by name::

    q = onebit.quantizers.get("ste_sign")          # a new SteSign(clip_value=1.0)
    y = onebit.quantizers.ste_sign(x, clip_value=1.5)
    onebit.quantizers.precision_of(q)               # 1.0
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor, nn

from onebit.errors import ShapeError

__all__ = [
    "ste_sign",
    "approx_sign",
    "swish_sign",
    "magnitude_aware_sign",
    "ste_heaviside",
    "dorefa",
    "ste_tern",
    "absmean_ternary",
    "absmean_ternary_codes",
    "absmax_int8",
    "absmax_int8_codes",
    "progressive_sign",
    "SteSign",
    "ApproxSign",
    "SwishSign",
    "MagnitudeAwareSign",
    "SteHeaviside",
    "DoReFa",
    "SteTern",
    "AbsmeanTernary",
    "AbsmaxInt8",
    "RSign",
    "ProgressiveSign",
    "set_progressive_temperature",
    "get",
    "precision_of",
    "ALIASES",
]


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _sign(x: Tensor) -> Tensor:
    """``+1`` where ``x >= 0``, ``-1`` elsewhere (``sign(0) = +1``, the packing convention).

    Computed as ``copysign(1, x + 0)``: adding ``+0.0`` turns ``-0.0`` into ``+0.0`` (IEEE
    round-to-nearest), so ``-0.0 -> +1`` as ``x >= 0`` says; 3x faster than ``torch.where``
    on a CPU, which matters because every binary layer calls it twice per step."""
    return torch.ones_like(x).copysign_(x + 0.0)


def _clip_mask(x: Tensor, clip_value: float | None) -> Tensor:
    """``1`` where ``|x| <= clip_value`` (inclusive), ``0`` elsewhere; all ones when ``None``."""
    if clip_value is None:
        return torch.ones_like(x)
    return (x.abs() <= clip_value).to(x.dtype)


def _check_clip(clip_value: float | None) -> float | None:
    if clip_value is None:
        return None
    clip_value = float(clip_value)
    if not clip_value > 0:
        raise ValueError(
            f"clip_value must be > 0 (or None for an unclipped STE), got {clip_value}; "
            "use 1.0 (Larq's default) unless a paper says otherwise."
        )
    return clip_value


# ---------------------------------------------------------------------------------------------
# Sign family
# ---------------------------------------------------------------------------------------------


class _SteSignFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, clip_value):
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        return _sign(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * _clip_mask(x, ctx.clip_value), None


def ste_sign(x: Tensor, clip_value: float | None = 1.0) -> Tensor:
    r"""Sign with a clipped straight-through estimator (BinaryNet).

    Forward:  ``q(x) = +1 if x >= 0 else -1`` (``sign(0) = +1``).
    Gradient: ``dq/dx = 1 if |x| <= clip_value else 0`` (inclusive edges; ``clip_value=None``
    gives the plain identity STE).

    Paper: Hubara et al., "Binarized Neural Networks" (NeurIPS 2016); Larq ``ste_sign``;
    BNext eq. (1)-(2) (``clip_value=1.5`` there).
    """
    return _SteSignFn.apply(x, _check_clip(clip_value))


class _ApproxSignFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _sign(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        ax = x.abs()
        return dy * torch.where(ax <= 1, 2.0 - 2.0 * ax, torch.zeros_like(ax))


def approx_sign(x: Tensor) -> Tensor:
    r"""Sign with the piecewise-polynomial gradient of Bi-Real Net.

    Forward:  ``q(x) = +1 if x >= 0 else -1``.
    Gradient: ``dq/dx = 2 - 2|x| if |x| <= 1 else 0`` (the derivative of the piecewise
    quadratic ``ApproxSign``).

    Paper: Liu et al., "Bi-Real Net" (ECCV 2018), eq. (5)-(6); Larq ``approx_sign``.
    """
    return _ApproxSignFn.apply(x)


class _SwishSignFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta):
        ctx.save_for_backward(x)
        ctx.beta = beta
        return _sign(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        b = ctx.beta
        bx = b * x
        return dy * b * (2.0 - bx * torch.tanh(bx / 2.0)) / (1.0 + torch.cosh(bx)), None


def swish_sign(x: Tensor, beta: float = 5.0) -> Tensor:
    r"""Sign with the gradient of the SignSwish function.

    Forward:  ``q(x) = +1 if x >= 0 else -1``.
    Gradient: ``dq/dx = beta * (2 - beta*x*tanh(beta*x/2)) / (1 + cosh(beta*x))``, the derivative
    of ``SS_beta(x) = 2*sigmoid(beta*x) * (1 + beta*x*(1 - sigmoid(beta*x))) - 1``.

    Paper: Darabi et al., "BNN+: Improved Binary Network Training" (2018); Larq ``swish_sign``.
    """
    return _SwishSignFn.apply(x, float(beta))


def magnitude_aware_sign(x: Tensor, clip_value: float | None = 1.0) -> Tensor:
    r"""Per-output-channel scaled sign for weights (Bi-Real Net).

    Forward:  ``q(x)[c] = mean(|x[c]|) * sign(x[c])``, the mean taken over every axis but axis 0
    (the output-channel axis of PyTorch ``Conv2d``/``Linear`` weights); ``sign(0) = +1``.
    Gradient: ``dq/dx[c] = mean(|x[c]|) * (1 if |x| <= clip_value else 0)``: the scale is
    treated as a constant (stop-gradient) and the sign uses the clipped STE, as in Larq.

    Paper: Liu et al., "Bi-Real Net" (ECCV 2018), sec. 3.3; Larq ``magnitude_aware_sign``.
    """
    dims = tuple(range(1, x.dim()))
    ax = x.detach().abs()
    scale = ax.mean(dim=dims, keepdim=True) if dims else ax
    return scale * ste_sign(x, clip_value)


class _SteHeavisideFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, clip_value):
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * _clip_mask(x, ctx.clip_value), None


def ste_heaviside(x: Tensor, clip_value: float | None = 1.0) -> Tensor:
    r"""Heaviside step {0, 1} with a clipped straight-through estimator.

    Forward:  ``q(x) = 1 if x > 0 else 0``.
    Gradient: ``dq/dx = 1 if |x| <= clip_value else 0``.

    Paper: Larq ``ste_heaviside`` (used for {0, 1} activations, e.g. XNOR-Net variants).
    """
    return _SteHeavisideFn.apply(x, _check_clip(clip_value))


# ---------------------------------------------------------------------------------------------
# Multi-bit and ternary
# ---------------------------------------------------------------------------------------------


class _RoundSteFn(torch.autograd.Function):
    """``round(x)`` forward, identity gradient."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, dy):
        return dy


class _DoReFaActFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, levels):
        ctx.save_for_backward(x)
        return torch.round(x.clamp(0.0, 1.0) * levels) / levels

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * ((x >= 0) & (x <= 1)).to(dy.dtype), None


def dorefa(x: Tensor, k_bit: int = 2, mode: str = "activations") -> Tensor:
    r"""k-bit DoReFa quantizer.

    ``mode="activations"``:
      Forward:  ``q(x) = round(clip(x, 0, 1) * (2^k - 1)) / (2^k - 1)``.
      Gradient: ``dq/dx = 1 if 0 <= x <= 1 else 0`` (STE through the rounding, the clip's own
      gradient outside).
    ``mode="weights"``:
      Forward:  ``w' = tanh(x) / (2 max|tanh(x)|) + 1/2``, ``q(x) = 2 quantize_k(w') - 1`` with
      ``quantize_k(v) = round(v (2^k - 1)) / (2^k - 1)``.
      Gradient: STE through ``quantize_k`` only; autograd differentiates the tanh and the
      normalisation (including the max).

    Paper: Zhou et al., "DoReFa-Net" (2016), eq. (5), (9); Larq ``DoReFa``.
    """
    k_bit = int(k_bit)
    if not 1 <= k_bit <= 16:
        raise ValueError(f"dorefa: k_bit must be in [1, 16], got {k_bit}; 2 is the usual choice.")
    levels = float(2**k_bit - 1)
    if mode == "activations":
        return _DoReFaActFn.apply(x, levels)
    if mode == "weights":
        t = torch.tanh(x)
        # tiny floor: an all-zero x gives w = 1/2 instead of 0/0
        w = t / (2.0 * t.abs().max().clamp(min=torch.finfo(t.dtype).tiny)) + 0.5
        return 2.0 * (_RoundSteFn.apply(w * levels) / levels) - 1.0
    raise ValueError(f"dorefa: mode must be 'activations' or 'weights', got {mode!r}.")


class _SteTernFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, threshold, clip_value):
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        return torch.where(x.abs() >= threshold, torch.sign(x), torch.zeros_like(x))

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * _clip_mask(x, ctx.clip_value), None, None


def ste_tern(
    x: Tensor,
    threshold_value: float = 0.05,
    ternary_weight_networks: bool = False,
    clip_value: float | None = 1.0,
) -> Tensor:
    r"""Threshold ternarisation {-1, 0, +1} with a clipped straight-through estimator.

    Forward:  ``q(x) = +1 if x >= D, -1 if x <= -D, 0 otherwise`` (values exactly at ``±D``
    map to ``±1``, as Larq's ``sign(sign(x + D) + sign(x - D))``), where
    ``D = threshold_value``, or with ``ternary_weight_networks=True`` the TWN threshold
    ``D = 0.7 * mean(|x|)`` over the whole tensor.
    Gradient: ``dq/dx = 1 if |x| <= clip_value else 0``.

    Paper: Li & Liu, "Ternary Weight Networks" (2016), eq. (5); Larq ``ste_tern``.
    """
    clip_value = _check_clip(clip_value)
    if ternary_weight_networks:
        threshold = 0.7 * x.detach().abs().mean()
    else:
        threshold = torch.tensor(float(threshold_value), dtype=x.dtype, device=x.device)
    return _SteTernFn.apply(x, threshold, clip_value)


class _FakeQuantSteFn(torch.autograd.Function):
    """Return the pre-computed quantized value ``q`` forward, pass ``dy`` straight to ``x``."""

    @staticmethod
    def forward(ctx, x, q):
        return q

    @staticmethod
    def backward(ctx, dy):
        return dy, None


def absmean_ternary_codes(w: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    r"""Integer ternary codes and scale of BitNet b1.58's absmean quantizer (no gradient).

    ``gamma = mean(|W|)`` over the whole tensor (eq. 3), ``codes = RoundClip(W / (gamma + eps),
    -1, 1)`` (eq. 1-2) as ``int8``. Returns ``(codes, gamma)`` with ``W ≈ codes * gamma``;
    ``gamma`` is a 0-d float tensor. The converter and :func:`absmean_ternary` share this code,
    so the packed model equals the training model exactly.

    Paper: Ma et al., "The Era of 1-bit LLMs" (BitNet b1.58), sec. 2, eq. (1)-(3).
    """
    with torch.no_grad():
        gamma = w.abs().mean()
        codes = torch.round(w / (gamma + eps)).clamp(-1, 1)
    return codes.to(torch.int8), gamma


def absmean_ternary(w: Tensor, eps: float = 1e-5) -> Tensor:
    r"""BitNet b1.58 absmean ternary weight quantizer (fake quantisation).

    Forward:  ``q(W) = gamma * RoundClip(W / (gamma + eps), -1, 1)`` with ``gamma = mean|W|``
    over the whole tensor. The forward returns the *scaled* ternary value ``W~ * gamma`` (as the
    BitNet training code does), so ``F.linear(x, q(W))`` already carries the ``gamma`` factor of
    the output rescale; the integer codes and ``gamma`` come from
    :func:`absmean_ternary_codes`.
    Gradient: ``dq/dW = 1`` (identity straight-through estimator).

    Paper: Ma et al., "The Era of 1-bit LLMs" (BitNet b1.58), sec. 2, eq. (1)-(3).
    """
    codes, gamma = absmean_ternary_codes(w, eps)
    return _FakeQuantSteFn.apply(w, codes.to(w.dtype) * gamma)


def absmax_int8_codes(x: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    r"""Per-token int8 codes and step of BitNet's absmax activation quantizer (no gradient).

    Per row of the last axis: ``s = max(max|x|, eps) / 127``, ``codes = RoundClip(x / s, -127,
    127)`` as ``int8`` (symmetric, no zero point). Returns ``(codes, s)`` with ``x ≈ codes * s``;
    ``s`` has the shape of ``x`` with the last axis of size 1.

    Paper: BitNet b1.58 sec. 2 ("activations ... scaled to [-Q_b, Q_b] per token");
    Wang et al., "BitNet" (2023), eq. (4).
    """
    with torch.no_grad():
        step = x.abs().amax(dim=-1, keepdim=True).clamp(min=eps) / 127.0
        codes = torch.round(x / step).clamp(-127, 127)
    return codes.to(torch.int8), step


def absmax_int8(x: Tensor, eps: float = 1e-5) -> Tensor:
    r"""BitNet per-token absmax int8 activation quantizer (fake quantisation).

    Forward:  ``q(x) = RoundClip(x * 127 / m, -127, 127) * m / 127`` with ``m = max(max|x|, eps)``
    over the last axis (one scale per token, no zero point). The forward returns the
    **de-quantized** value (fake quant); the integer codes come from :func:`absmax_int8_codes`.
    Gradient: ``dq/dx = 1`` (identity straight-through estimator).

    Paper: BitNet b1.58 sec. 2; Wang et al., "BitNet" (2023), eq. (4).
    """
    if x.dim() == 0:
        raise ShapeError(
            "absmax_int8 expects a tensor with a last (feature) axis, got a 0-d tensor; "
            "reshape it to (1,) first."
        )
    codes, step = absmax_int8_codes(x, eps)
    return _FakeQuantSteFn.apply(x, codes.to(x.dtype) * step)


# ---------------------------------------------------------------------------------------------
# Progressive (BNext)
# ---------------------------------------------------------------------------------------------


class _ProgressiveSignFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, temperature, min_temperature, clip_value):
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        t = temperature.to(x.dtype)
        soft = (x / t.clamp(min=min_temperature)).clamp(-1.0, 1.0)
        return torch.where(t < min_temperature, _sign(x), soft)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * _clip_mask(x, ctx.clip_value), None, None, None


def progressive_sign(
    x: Tensor,
    temperature: float | Tensor = 1.0,
    clip_value: float | None = 1.5,
    min_temperature: float = 1e-7,
) -> Tensor:
    r"""Temperature-annealed sign for progressive binarisation (BNext).

    Forward:  ``q(x) = clip(x / t, -1, 1)`` (hardtanh of ``x / t``) while ``t >= min_temperature``,
    and exactly ``sign(x)`` (``sign(0) = +1``) once ``t < min_temperature``. As ``t -> 0`` the
    soft form tends to ``sign(x)``; at ``t = 1`` it is the hardtanh.
    Gradient: ``dq/dx = 1 if |x| <= clip_value else 0`` at every temperature (the STE of BNext
    eq. (1)-(2); the true derivative ``1/t`` would explode as ``t -> 0``).

    Paper: Guo et al., "Join the High Accuracy Club on ImageNet with A Binary Neural Network
    Ticket" (BNext), sec. 3.1 eq. (1)-(2) and sec. 5.1 ("progressive weight binarization",
    STE clip range [-1.5, 1.5], temperature curves in Fig. 8).
    """
    if not isinstance(temperature, Tensor):
        temperature = torch.tensor(float(temperature), dtype=x.dtype, device=x.device)
    return _ProgressiveSignFn.apply(
        x, temperature.detach(), float(min_temperature), _check_clip(clip_value)
    )


# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------


class _Quantizer(nn.Module):
    """Base of the quantizer modules: ``precision`` (bits per value) and ``name`` (alias)."""

    precision: float = 32.0
    name: str = ""


class SteSign(_Quantizer):
    """Module form of :func:`ste_sign` (forward ``sign``, gradient ``1_{|x| <= clip_value}``)."""

    precision = 1.0
    name = "ste_sign"

    def __init__(self, clip_value: float | None = 1.0):
        super().__init__()
        self.clip_value = _check_clip(clip_value)

    def forward(self, x: Tensor) -> Tensor:
        return ste_sign(x, self.clip_value)

    def extra_repr(self) -> str:
        return f"clip_value={self.clip_value}"


class ApproxSign(_Quantizer):
    """Module form of :func:`approx_sign` (Bi-Real Net gradient ``2 - 2|x|`` on ``|x| <= 1``)."""

    precision = 1.0
    name = "approx_sign"

    def forward(self, x: Tensor) -> Tensor:
        return approx_sign(x)


class SwishSign(_Quantizer):
    """Module form of :func:`swish_sign` (SignSwish gradient with sharpness ``beta``)."""

    precision = 1.0
    name = "swish_sign"

    def __init__(self, beta: float = 5.0):
        super().__init__()
        self.beta = float(beta)

    def forward(self, x: Tensor) -> Tensor:
        return swish_sign(x, self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class MagnitudeAwareSign(_Quantizer):
    """Module form of :func:`magnitude_aware_sign` (``mean|w[c]| * sign(w)`` per out-channel)."""

    precision = 1.0
    name = "magnitude_aware_sign"

    def __init__(self, clip_value: float | None = 1.0):
        super().__init__()
        self.clip_value = _check_clip(clip_value)

    def forward(self, x: Tensor) -> Tensor:
        return magnitude_aware_sign(x, self.clip_value)

    def extra_repr(self) -> str:
        return f"clip_value={self.clip_value}"


class SteHeaviside(_Quantizer):
    """Module form of :func:`ste_heaviside` (forward ``1_{x > 0}``, clipped STE)."""

    precision = 1.0
    name = "ste_heaviside"

    def __init__(self, clip_value: float | None = 1.0):
        super().__init__()
        self.clip_value = _check_clip(clip_value)

    def forward(self, x: Tensor) -> Tensor:
        return ste_heaviside(x, self.clip_value)

    def extra_repr(self) -> str:
        return f"clip_value={self.clip_value}"


class DoReFa(_Quantizer):
    """Module form of :func:`dorefa`; ``precision == k_bit``."""

    name = "dorefa"

    def __init__(self, k_bit: int = 2, mode: str = "activations"):
        super().__init__()
        if mode not in ("activations", "weights"):
            raise ValueError(f"DoReFa: mode must be 'activations' or 'weights', got {mode!r}.")
        dorefa(torch.zeros(1), k_bit, mode)  # validates k_bit with the function's message
        self.k_bit = int(k_bit)
        self.mode = mode
        self.precision = float(self.k_bit)

    def forward(self, x: Tensor) -> Tensor:
        return dorefa(x, self.k_bit, self.mode)

    def extra_repr(self) -> str:
        return f"k_bit={self.k_bit}, mode={self.mode!r}"


class SteTern(_Quantizer):
    """Module form of :func:`ste_tern` (threshold or TWN ternarisation, clipped STE)."""

    precision = 1.58
    name = "ste_tern"

    def __init__(
        self,
        threshold_value: float = 0.05,
        ternary_weight_networks: bool = False,
        clip_value: float | None = 1.0,
    ):
        super().__init__()
        self.threshold_value = float(threshold_value)
        self.ternary_weight_networks = bool(ternary_weight_networks)
        self.clip_value = _check_clip(clip_value)

    def forward(self, x: Tensor) -> Tensor:
        return ste_tern(x, self.threshold_value, self.ternary_weight_networks, self.clip_value)

    def extra_repr(self) -> str:
        return (
            f"threshold_value={self.threshold_value}, "
            f"ternary_weight_networks={self.ternary_weight_networks}, clip_value={self.clip_value}"
        )


class AbsmeanTernary(_Quantizer):
    """Module form of :func:`absmean_ternary` (BitNet b1.58 weights, returns ``W~ * gamma``)."""

    precision = 1.58
    name = "absmean_ternary"

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = float(eps)

    def forward(self, x: Tensor) -> Tensor:
        return absmean_ternary(x, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


class AbsmaxInt8(_Quantizer):
    """Module form of :func:`absmax_int8` (per-token int8 fake quantisation, last axis)."""

    precision = 8.0
    name = "absmax_int8"

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = float(eps)

    def forward(self, x: Tensor) -> Tensor:
        return absmax_int8(x, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


class RSign(_Quantizer):
    r"""ReActNet RSign: sign with a learnable per-channel threshold.

    Forward:  ``q(x)[:, c] = sign(x[:, c] - alpha_c)`` (``sign(0) = +1``) for ``(N, C)`` or
    ``(N, C, H, W)`` inputs.
    Gradient: with ``u = x - alpha_c`` and ``g(u)`` the sign's pseudo-gradient
    (``gradient="approx"``: ``2 - 2|u|`` on ``|u| <= 1`` as in ReActNet's code; ``"ste"``:
    ``1_{|u| <= clip_value}``): ``dq/dx = g(u)`` and
    ``dL/dalpha_c = -sum_{n,h,w} dL/dq * g(u)``.

    ``num_channels=None`` leaves ``alpha`` uninitialised until the first forward (or until a
    quantized layer calls :meth:`materialize`), so ``get("rsign")`` works; give the channel
    count up front when the optimizer is built before the first forward.

    Paper: Liu et al., "ReActNet" (ECCV 2020), eq. (1)-(2).
    """

    precision = 1.0
    name = "rsign"

    def __init__(
        self,
        num_channels: int | None = None,
        gradient: str = "approx",
        clip_value: float | None = 1.0,
    ):
        super().__init__()
        if gradient not in ("approx", "ste"):
            raise ValueError(f"RSign: gradient must be 'approx' or 'ste', got {gradient!r}.")
        self.gradient = gradient
        self.clip_value = _check_clip(clip_value)
        if num_channels is None:
            self.alpha = nn.parameter.UninitializedParameter()
        else:
            self.alpha = nn.Parameter(torch.zeros(int(num_channels)))

    @property
    def num_channels(self) -> int | None:
        if isinstance(self.alpha, nn.parameter.UninitializedParameter):
            return None
        return self.alpha.shape[0]

    def materialize(self, num_channels: int) -> None:
        """Create ``alpha`` (zeros, shape ``(num_channels,)``) if it is still uninitialised."""
        if isinstance(self.alpha, nn.parameter.UninitializedParameter):
            self.alpha.materialize((int(num_channels),))
            with torch.no_grad():
                self.alpha.zero_()
        elif self.alpha.shape[0] != num_channels:
            raise ShapeError(
                f"RSign has {self.alpha.shape[0]} channels, asked for {num_channels}; "
                "create a new RSign for a layer of another width."
            )

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        if self.num_channels is not None:  # an uninitialised alpha has no value to save
            super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "alpha"
        if key in state_dict and isinstance(self.alpha, nn.parameter.UninitializedParameter):
            self.materialize(state_dict[key].shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() not in (2, 4):
            raise ShapeError(
                f"RSign expects (N, C) or (N, C, H, W) input, got shape {tuple(x.shape)}; "
                "move the channel axis to position 1."
            )
        self.materialize(x.shape[1])
        alpha = self.alpha.view((1, -1) + (1,) * (x.dim() - 2))
        u = x - alpha
        if self.gradient == "approx":
            return approx_sign(u)
        return ste_sign(u, self.clip_value)

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}, gradient={self.gradient!r}"


class ProgressiveSign(_Quantizer):
    r"""Module form of :func:`progressive_sign` with a schedulable ``temperature``.

    ``temperature`` is a 0-d buffer (saved in ``state_dict``, so a resumed run continues the
    schedule). The training loop lowers it with :meth:`set_temperature`, typically from
    :meth:`schedule`; below ``min_temperature`` the forward is exactly ``sign(x)``.
    ``precision`` is 1: the value the layer converges to and is exported as.

    Example::

        for step in range(total):
            t = ProgressiveSign.schedule(step, total)
            onebit.quantizers.set_progressive_temperature(model, t)
            ...
    """

    precision = 1.0
    name = "progressive_sign"

    def __init__(
        self,
        temperature: float = 1.0,
        clip_value: float | None = 1.5,
        min_temperature: float = 1e-7,
    ):
        super().__init__()
        self.clip_value = _check_clip(clip_value)
        self.min_temperature = float(min_temperature)
        self.register_buffer("temperature", torch.tensor(0.0))
        self.set_temperature(temperature)

    def set_temperature(self, t: float) -> None:
        """Set the temperature (``t >= 0``; ``t < min_temperature`` means the hard sign)."""
        t = float(t)
        if not (t >= 0.0 and math.isfinite(t)):
            raise ValueError(f"temperature must be finite and >= 0, got {t}.")
        self.temperature.fill_(t)

    @property
    def is_hard(self) -> bool:
        """True when the forward is the exact hard sign."""
        return float(self.temperature) < self.min_temperature

    @staticmethod
    def schedule(step: int, total_steps: int, t_start: float = 1.0, t_end: float = 1e-3) -> float:
        r"""Exponential temperature decay from ``t_start`` to ``t_end``, then 0 (hard sign).

        ``t(step) = t_start * (t_end / t_start) ** (step / total_steps)`` for
        ``step < total_steps`` and ``0.0`` from ``total_steps`` on, so the last part of
        training (and export) sees the exact sign. BNext (Fig. 8) anneals the weight temperature
        by repeated multiplication, i.e. geometrically, as here.
        """
        if total_steps <= 0:
            raise ValueError(f"total_steps must be > 0, got {total_steps}.")
        if not 0 < t_end <= t_start:
            raise ValueError(f"need 0 < t_end <= t_start, got t_start={t_start}, t_end={t_end}.")
        if step >= total_steps:
            return 0.0
        frac = max(step, 0) / total_steps
        return float(t_start * (t_end / t_start) ** frac)

    def forward(self, x: Tensor) -> Tensor:
        return progressive_sign(x, self.temperature, self.clip_value, self.min_temperature)

    def extra_repr(self) -> str:
        return (
            f"temperature={float(self.temperature):g}, clip_value={self.clip_value}, "
            f"min_temperature={self.min_temperature:g}"
        )


def set_progressive_temperature(model: nn.Module, t: float) -> int:
    """Set ``t`` on every :class:`ProgressiveSign` inside ``model``; return how many were set."""
    n = 0
    for m in model.modules():
        if isinstance(m, ProgressiveSign):
            m.set_temperature(t)
            n += 1
    return n


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

ALIASES: dict[str, type[nn.Module]] = {
    "ste_sign": SteSign,
    "approx_sign": ApproxSign,
    "swish_sign": SwishSign,
    "magnitude_aware_sign": MagnitudeAwareSign,
    "ste_heaviside": SteHeaviside,
    "dorefa": DoReFa,
    "ste_tern": SteTern,
    "absmean_ternary": AbsmeanTernary,
    "absmax_int8": AbsmaxInt8,
    "rsign": RSign,
    "progressive_sign": ProgressiveSign,
}

# The pure functions carry their precision too, so a layer given a function can report it.
for _fn, _p in (
    (ste_sign, 1.0),
    (approx_sign, 1.0),
    (swish_sign, 1.0),
    (magnitude_aware_sign, 1.0),
    (ste_heaviside, 1.0),
    (ste_tern, 1.58),
    (absmean_ternary, 1.58),
    (absmax_int8, 8.0),
    (progressive_sign, 1.0),
):
    _fn.precision = _p  # type: ignore[attr-defined]


def get(identifier: Any) -> Callable[[Tensor], Tensor] | None:
    """Resolve a quantizer.

    ``None`` -> ``None``; a string alias (see ``ALIASES``) -> a new module with default
    hyper-parameters; an ``nn.Module`` subclass -> a new instance of it; an ``nn.Module``
    instance or any other callable -> returned as is. Anything else raises ``ValueError``
    listing the aliases.
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        cls = ALIASES.get(identifier)
        if cls is None:
            raise ValueError(
                f"unknown quantizer {identifier!r}; expected one of {sorted(ALIASES)}, "
                "an nn.Module, a callable or None."
            )
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, nn.Module):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(
        f"cannot interpret {identifier!r} (type {type(identifier).__name__}) as a quantizer; "
        f"expected one of {sorted(ALIASES)}, an nn.Module, a callable or None."
    )


def precision_of(q: Any) -> float:
    """Bits per value of quantizer ``q``: 32.0 for ``None``, else ``q.precision``.

    A callable without a ``precision`` attribute is reported as 32.0 (unknown: treated as full
    precision).
    """
    if q is None:
        return 32.0
    return float(getattr(q, "precision", 32.0))
