"""Quantized layers: ``QuantConv2d`` and ``QuantLinear`` (Larq's ``QuantConv2D``/``QuantDense``).

A quantized layer is its torch twin fed quantized inputs and weights::

    y = conv2d(pad(input_quantizer(x), pad_value), kernel_quantizer(W)) + b

The latent float weight ``W`` is what the optimizer updates; the quantized weight exists only in
the forward pass (and in the converted model).

One-padding (``pad_value=1.0``, the fast default of Larq Compute Engine): the input is quantized
first, then padded with +1, then convolved with ``padding=0``, so a binary conv sees only ±1 and
the runtime needs no correction term. ``pad_value=0.0`` is ordinary zero padding of the
quantized input (what ``torch.nn.Conv2d`` does).

Latent-weight clip (``kernel_clip=c``): the latent weights are clipped to ``[-c, c]`` **after each
optimizer step**, by calling :meth:`clip_latent_weights_` on the layer, :func:`clip_latent_weights_`
on the model, or once :func:`clip_after_step` (an optimizer step post-hook). The forward never
clips. Without it a binary kernel's latent weights drift outside the STE window, get zero
gradient and stop learning ("starved weights"); the layer warns with
:class:`StarvedWeightsWarning`.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onebit import quantizers as _q

__all__ = [
    "QuantConv2d",
    "QuantLinear",
    "StarvedWeightsWarning",
    "is_quantized",
    "clip_latent_weights_",
    "clip_after_step",
]


class StarvedWeightsWarning(UserWarning):
    """A binary kernel quantizer is used without a latent-weight clip (``kernel_clip``)."""


class _FunctionQuantizer(nn.Module):
    """Wraps a plain quantizer function so a layer can hold it as a submodule."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.precision = _q.precision_of(fn)
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return f"fn={self.name}"


def _as_module(identifier: Any, channels: int) -> nn.Module | None:
    q = _q.get(identifier)
    if q is None or isinstance(q, nn.Module):
        if isinstance(q, _q.RSign):
            q.materialize(channels)
        return q
    return _FunctionQuantizer(q)


def _describe(q: nn.Module) -> str:
    return getattr(q, "name", "") or type(q).__name__


class _QuantMixin:
    """State and helpers shared by the quantized layers (quantizers, precisions, clip)."""

    input_quantizer: nn.Module | None
    kernel_quantizer: nn.Module | None
    kernel_clip: float | None
    weight: nn.Parameter

    def _init_quant(self, input_quantizer, kernel_quantizer, kernel_clip, in_channels: int):
        self.input_quantizer = _as_module(input_quantizer, in_channels)
        self.kernel_quantizer = _as_module(kernel_quantizer, in_channels)
        if kernel_clip is not None:
            kernel_clip = float(kernel_clip)
            if not kernel_clip > 0:
                raise ValueError(
                    f"{type(self).__name__}: kernel_clip must be > 0 or None, got {kernel_clip}; "
                    "use the kernel quantizer's clip_value (1.0 for 'ste_sign')."
                )
        self.kernel_clip = kernel_clip
        if self.kernel_quantizer is not None and kernel_clip is None and self.kernel_precision == 1:
            clip = getattr(self.kernel_quantizer, "clip_value", 1.0)
            warnings.warn(
                f"{type(self).__name__}: binary kernel_quantizer "
                f"'{_describe(self.kernel_quantizer)}' without kernel_clip: latent weights that "
                f"drift outside the STE window (|w| > {clip}) get zero gradient and stop learning "
                f"(starved weights). Pass kernel_clip={clip} and call clip_latent_weights_() "
                "after every optimizer step (or onebit.nn.clip_after_step(optimizer, model) "
                "once); silence with warnings.simplefilter('ignore', StarvedWeightsWarning) if "
                "this is on purpose.",
                StarvedWeightsWarning,
                stacklevel=3,
            )

    @property
    def input_precision(self) -> float:
        """Bits per input value (32.0 without an input quantizer)."""
        return _q.precision_of(self.input_quantizer)

    @property
    def kernel_precision(self) -> float:
        """Bits per weight (32.0 without a kernel quantizer)."""
        return _q.precision_of(self.kernel_quantizer)

    def quantized_weight(self) -> Tensor:
        """The weight the forward uses: ``kernel_quantizer(W)``, or ``W`` without a quantizer."""
        w = self.weight
        return w if self.kernel_quantizer is None else self.kernel_quantizer(w)

    def _quantize_input(self, x: Tensor) -> Tensor:
        return x if self.input_quantizer is None else self.input_quantizer(x)

    @torch.no_grad()
    def clip_latent_weights_(self):
        """Clip the latent weight in place to ``[-kernel_clip, kernel_clip]`` (no-op if None)."""
        if self.kernel_clip is not None:
            self.weight.clamp_(-self.kernel_clip, self.kernel_clip)
        return self

    def _quant_repr(self) -> str:
        return f"kernel_clip={self.kernel_clip}"


class QuantConv2d(_QuantMixin, nn.Conv2d):
    r"""``torch.nn.Conv2d`` with input and kernel quantizers (Larq ``QuantConv2D``).

    Forward: ``y = conv2d(P(q_in(x)), q_k(W), b, stride, dilation, groups)`` where ``P`` pads
    with ``pad_value`` (``0.0`` or ``1.0``) by ``padding``; with ``pad_value=0.0`` this is exactly
    ``nn.Conv2d`` on the quantized tensors (any ``padding_mode``). One-padding
    (``pad_value=1.0``) requires ``padding_mode="zeros"`` (meaning "constant").

    Args beyond ``nn.Conv2d``: ``input_quantizer``, ``kernel_quantizer`` (alias, module,
    callable or None; see :func:`onebit.quantizers.get`), ``pad_value``, ``kernel_clip`` (latent
    weight clip applied by :meth:`clip_latent_weights_`, see module docstring).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        *,
        input_quantizer=None,
        kernel_quantizer=None,
        pad_value: float = 0.0,
        kernel_clip: float | None = None,
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )
        pad_value = float(pad_value)
        if pad_value not in (0.0, 1.0):
            raise ValueError(
                f"QuantConv2d: pad_value must be 0.0 (zero padding) or 1.0 (one-padding, "
                f"padded positions are +1), got {pad_value}."
            )
        if pad_value != 0.0 and padding_mode != "zeros":
            raise ValueError(
                f"QuantConv2d: pad_value={pad_value} pads with a constant, which cannot combine "
                f"with padding_mode={padding_mode!r}; use padding_mode='zeros' (constant "
                "padding) or pad_value=0.0."
            )
        self.pad_value = pad_value
        self._init_quant(input_quantizer, kernel_quantizer, kernel_clip, in_channels)

    def _pad_amounts(self) -> tuple[int, int, int, int]:
        """``(left, right, top, bottom)`` for ``F.pad``, from ``padding`` (ints or 'same')."""
        if isinstance(self.padding, str):
            if self.padding == "valid":
                return (0, 0, 0, 0)
            amounts = []
            for d, k in zip(self.dilation[::-1], self.kernel_size[::-1]):  # W first, then H
                total = d * (k - 1)
                amounts += [total // 2, total - total // 2]
            return tuple(amounts)  # type: ignore[return-value]
        ph, pw = self.padding
        return (pw, pw, ph, ph)

    def forward(self, x: Tensor) -> Tensor:
        x = self._quantize_input(x)  # (N, C_in, H, W)
        w = self.quantized_weight()  # (C_out, C_in / groups, kh, kw)
        if self.pad_value != 0.0:
            pads = self._pad_amounts()
            if any(pads):
                x = F.pad(x, pads, mode="constant", value=self.pad_value)
            return F.conv2d(x, w, self.bias, self.stride, 0, self.dilation, self.groups)
        return self._conv_forward(x, w, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pad_value={self.pad_value}, {self._quant_repr()}"


class QuantLinear(_QuantMixin, nn.Linear):
    r"""``torch.nn.Linear`` with input and kernel quantizers (Larq ``QuantDense``).

    Forward: ``y = q_in(x) @ q_k(W)^T + b``, i.e. ``F.linear`` on the quantized tensors.
    Args beyond ``nn.Linear``: ``input_quantizer``, ``kernel_quantizer``, ``kernel_clip`` (see
    :class:`QuantConv2d`).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        input_quantizer=None,
        kernel_quantizer=None,
        kernel_clip: float | None = None,
    ):
        super().__init__(in_features, out_features, bias, device, dtype)
        self._init_quant(input_quantizer, kernel_quantizer, kernel_clip, in_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(self._quantize_input(x), self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._quant_repr()}"


def is_quantized(module: nn.Module) -> bool:
    """True when ``module`` has an input or kernel quantizer (``input_quantizer`` /
    ``kernel_quantizer`` attribute not None)."""
    return (
        getattr(module, "input_quantizer", None) is not None
        or getattr(module, "kernel_quantizer", None) is not None
    )


def clip_latent_weights_(model: nn.Module) -> int:
    """Apply :meth:`clip_latent_weights_` to every quantized layer in ``model`` that has a
    ``kernel_clip``; return how many layers were clipped. Call it after ``optimizer.step()``."""
    n = 0
    for m in model.modules():
        if isinstance(m, _QuantMixin) and m.kernel_clip is not None:
            m.clip_latent_weights_()
            n += 1
    return n


def clip_after_step(optimizer: torch.optim.Optimizer, model: nn.Module):
    """Register an optimizer step post-hook that runs :func:`clip_latent_weights_` on ``model``
    after every ``optimizer.step()``. Returns the hook handle (``handle.remove()`` to undo)."""
    return optimizer.register_step_post_hook(lambda opt, args, kwargs: clip_latent_weights_(model))
