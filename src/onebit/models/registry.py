"""Model registry (timm style): ``@register_model``, ``create_model(name)``, ``list_models()``.

A model family file (``quicknet.py``, ...) defines its blocks, its model class, a validated
config dataclass, and registered constructors of a few lines each::

    @register_model
    def quicknet_small(pretrained: bool = False, **kwargs) -> QuickNet:
        return build_model(QuickNet, QuickNetConfig(...), _IMAGENET_CFG, pretrained, kwargs)

``create_model("quicknet_small", num_classes=10)`` calls the constructor; keyword arguments
override fields of the family's config (``dataclasses.replace``), so every field of the config is
a knob, and a misspelt one is an error that lists the valid ones.

Every model carries ``model.default_cfg`` (:class:`ModelCfg`): the input it expects, its
normalisation, and for ImageNet models the Larq Zoo reference figures with their source.
There is no weight hub offline: ``pretrained=True`` raises :class:`~onebit.errors.OnebitError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from onebit.errors import OnebitError

__all__ = [
    "ModelCfg",
    "Reference",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "register_model",
    "create_model",
    "list_models",
    "build_model",
]

# ImageNet statistics as Larq Zoo uses them (larq_zoo/training/data.py, MEAN_RGB and STDDEV_RGB
# divided by 255).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# CIFAR-10 training-set statistics (same values as onebit.data.CIFAR10_MEAN / CIFAR10_STD).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class Reference:
    """Published figures of the original (Keras / Larq Zoo) model, with where they come from."""

    top1: float
    """ImageNet validation top-1 accuracy, percent."""
    top5: float
    """ImageNet validation top-5 accuracy, percent."""
    params: int
    """Parameter count as published (the source says which counting convention it uses)."""
    memory_mb: float
    """Model size as published: binary weights at 1 bit, the rest at 32 bits, in MiB."""
    source: str
    """Where the figures were read."""


@dataclass(frozen=True)
class ModelCfg:
    """What a model expects and how it compares (timm's ``default_cfg``)."""

    input_size: tuple[int, int, int]
    """``(C, H, W)`` of one example."""
    num_classes: int
    mean: tuple[float, ...]
    """Per-channel mean of inputs in [0, 1] scale, subtracted before the model."""
    std: tuple[float, ...]
    """Per-channel standard deviation of inputs in [0, 1] scale."""
    dataset: str
    """``"imagenet"`` or ``"cifar10"``: the data the architecture is shaped for."""
    crop_pct: float | None = None
    """Centre-crop fraction at evaluation (Larq Zoo: 224 / (224 + 32) = 0.875); None: no crop."""
    interpolation: str | None = None
    """Resize filter at evaluation (Larq Zoo: bicubic); None: no resize."""
    reference: Reference | None = None
    """Published accuracy / size of the same architecture; None when there is none."""


_MODELS: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(fn: F) -> F:
    """Decorator: register ``fn`` under ``fn.__name__`` so ``create_model(name)`` can call it.

    ``fn(pretrained=False, **kwargs)`` must return a new ``nn.Module``. Registering a second
    function under a taken name is an error (names are the public API).
    """
    name = fn.__name__
    if name in _MODELS:
        raise OnebitError(
            f"register_model: a model named {name!r} is already registered (by "
            f"{_MODELS[name].__module__}); give the new constructor another name."
        )
    _MODELS[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by a shell-style
    ``pattern`` (``fnmatch``: ``"quicknet*"``, ``"*_cifar"``)."""
    names = sorted(_MODELS)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; ``kwargs`` override fields of its config.

    Args:
        name: a name from :func:`list_models`.
        pretrained: must be False: onebit ships no weights and has no hub to download from.
        **kwargs: config overrides, e.g. ``num_classes=10``.

    Raises:
        OnebitError: unknown ``name`` (the message suggests close names), ``pretrained=True``,
            or a keyword that is not a field of the model's config.
    """
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise OnebitError(
            f"create_model: unknown model {name!r}.{hint} Registered models: "
            f"{', '.join(list_models())} (onebit.models.list_models())."
        )
    return _MODELS[name](pretrained=pretrained, **kwargs)


C = TypeVar("C")


def build_model(
    model_cls: Callable[[C], nn.Module],
    config: C,
    default_cfg: ModelCfg,
    pretrained: bool,
    overrides: dict[str, Any],
) -> nn.Module:
    """Shared body of the registered constructors: apply ``overrides`` to ``config`` (a
    dataclass), build ``model_cls(config)``, attach ``model.default_cfg`` (with the final
    ``num_classes`` and input channels)."""
    name = type(config).__name__
    if pretrained:
        raise OnebitError(
            f"pretrained=True: onebit has no weight hub (machines here are offline) and ships no "
            f"{model_cls.__name__} weights. Build with pretrained=False, then load your own "
            "weights: model.load_state_dict(safetensors.torch.load_file('weights.safetensors'))."
        )
    fields = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise OnebitError(
            f"{model_cls.__name__}: unknown option(s) {', '.join(unknown)}; the fields of {name} "
            f"are: {', '.join(sorted(fields))}."
        )
    config = dataclasses.replace(config, **overrides)  # type: ignore[type-var]
    model = model_cls(config)
    _, h, w = default_cfg.input_size
    h = w = getattr(config, "image_size", h)  # families whose config fixes the input size
    model.default_cfg = dataclasses.replace(  # type: ignore[assignment]
        default_cfg,
        num_classes=config.num_classes,  # type: ignore[attr-defined]
        input_size=(config.in_chans, h, w),  # type: ignore[attr-defined]
    )
    return model
