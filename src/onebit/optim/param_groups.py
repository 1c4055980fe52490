"""Split a model's parameters for the optimizer: binary/ternary kernels, other weights, no-decay."""

from __future__ import annotations

from typing import Any

from torch import nn

from onebit.errors import OnebitError

__all__ = ["param_groups", "quantized_kernels"]

# Layers whose ``weight`` is a weight matrix/kernel (decayed) and whose ``bias`` is a bias (not).
_WEIGHT_LAYERS = (nn.modules.conv._ConvNd, nn.Linear, nn.Bilinear, nn.Embedding, nn.EmbeddingBag)
# Normalisation layers: none of their parameters is decayed.
_NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
if hasattr(nn, "RMSNorm"):
    _NORM_LAYERS = _NORM_LAYERS + (nn.RMSNorm,)


def quantized_kernels(
    model: nn.Module, *, max_precision: float = 2.0
) -> list[tuple[str, nn.Parameter]]:
    """``(qualified name, weight)`` of every layer whose ``kernel_precision <= max_precision``.

    A layer is any module with a ``kernel_precision`` attribute (``QuantConv2d``, ``QuantLinear``,
    ``BitLinear``; 32.0 when it has no kernel quantizer) and a ``weight`` parameter. The default
    2.0 takes binary (1) and ternary (1.58) kernels; ``max_precision=1.0`` takes binary kernels
    only (the parameters for :class:`onebit.optim.Bop`). A weight shared by several layers is
    listed once, under its first name.
    """
    found: list[tuple[str, nn.Parameter]] = []
    seen: set[int] = set()
    for name, module in model.named_modules():
        precision = getattr(module, "kernel_precision", None)
        weight = getattr(module, "weight", None)
        if precision is None or not isinstance(weight, nn.Parameter):
            continue
        if float(precision) <= max_precision and id(weight) not in seen:
            seen.add(id(weight))
            found.append((f"{name}.weight" if name else "weight", weight))
    return found


def _decays(module: nn.Module, param_name: str, param: nn.Parameter) -> bool:
    """True for weight matrices and kernels; False for biases, norm parameters, per-channel
    vectors."""
    if isinstance(module, _NORM_LAYERS):
        return False
    if isinstance(module, _WEIGHT_LAYERS):
        return param_name == "weight"
    if param_name.endswith("bias"):
        return False
    # Unknown layer (PReLU, RPReLU, LearnableBias, RSign thresholds, scales, ...): a parameter
    # with at most one axis longer than 1 -- shape (C,), (1, C, 1, 1) -- is a per-channel vector.
    return sum(1 for d in param.shape if d > 1) >= 2


def param_groups(
    model: nn.Module,
    *,
    weight_decay: float = 1e-3,
    binary_weight_decay: float = 1e-8,
    lr: float | None = None,
) -> list[dict[str, Any]]:
    """Parameter groups for ``torch.optim.AdamW``, BNext style: binary kernels barely decayed.

    BNext (Guo et al. 2022, section 5.1) trains with AdamW (beta1 = 0.99, beta2 = 0.999, lr 1e-3)
    and weight decays of 1e-3 for non-binary and 1e-8 for binary parameters. Groups, in this
    order, each ``{"name", "params", "weight_decay"}`` (plus ``"lr"`` when ``lr`` is given);
    empty groups are left out:

    - ``"binary"``: latent kernels of layers with ``kernel_precision <= 2`` (binary and ternary;
      :func:`quantized_kernels`), ``weight_decay = binary_weight_decay``. Decaying latent weights
      pulls them to 0 where their sign flips at random; BNext's 1e-8 all but switches it off.
    - ``"decay"``: other weight matrices and kernels (float convs, linears, embeddings, and any
      parameter with two or more axes longer than 1), ``weight_decay = weight_decay``.
    - ``"no_decay"``: biases, normalisation parameters (BatchNorm, LayerNorm, GroupNorm,
      RMSNorm) and per-channel vectors (PReLU/RPReLU slopes and shifts, LearnableBias, RSign
      thresholds), ``weight_decay = 0``. This is common practice ("no bias decay", He et al.
      2019 "Bag of Tricks for Image Classification", section 3.1; timm's
      ``param_groups_weight_decay``): decaying a scale or shift changes what the layer
      computes rather than regularising it.

    Parameters with ``requires_grad=False`` are left out; shared parameters appear once.

    Raises:
        OnebitError: the model has no trainable parameters.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"param_groups expects a torch.nn.Module, got {type(model).__name__}")
    binary_ids = {id(p) for _, p in quantized_kernels(model, max_precision=2.0)}
    groups: dict[str, list[nn.Parameter]] = {"binary": [], "decay": [], "no_decay": []}
    seen: set[int] = set()
    for module in model.modules():
        for param_name, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            seen.add(id(param))
            if isinstance(param, nn.parameter.UninitializedParameter):
                raise OnebitError(
                    f"param_groups: parameter {param_name!r} of {type(module).__name__} is not "
                    "initialised yet (lazy module, e.g. RSign without num_channels); run one "
                    "forward pass or give the channel count before building the optimizer"
                )
            if id(param) in binary_ids:
                groups["binary"].append(param)
            elif _decays(module, param_name, param):
                groups["decay"].append(param)
            else:
                groups["no_decay"].append(param)
    if not seen:
        raise OnebitError(
            f"param_groups: {type(model).__name__} has no trainable parameters (expected at least "
            "one nn.Parameter with requires_grad=True); build the model's layers before making the "
            "optimizer, and unfreeze the parameters you want to train"
        )
    decays = {"binary": binary_weight_decay, "decay": weight_decay, "no_decay": 0.0}
    result = []
    for name, params in groups.items():
        if params:
            group: dict[str, Any] = {
                "name": name, "params": params, "weight_decay": float(decays[name])
            }
            if lr is not None:
                group["lr"] = float(lr)
            result.append(group)
    return result
