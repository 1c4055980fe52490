"""Shared arguments of ``onebit convert`` and ``onebit summary``: a registered model name, its
config overrides, an input size and optional weights."""

from __future__ import annotations

import argparse
from typing import Any

from onebit.errors import OnebitError

__all__ = ["add_model_args", "build_model", "parse_size"]


def parse_size(text: str) -> tuple[int, ...]:
    """``"1,3,32,32"`` -> ``(1, 3, 32, 32)``."""
    try:
        size = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints like 1,3,32,32, got {text!r}") from None
    if not size or min(size) < 1:
        raise argparse.ArgumentTypeError(f"every dimension must be >= 1, got {text!r}")
    return size


def _parse_option(text: str) -> tuple[str, Any]:
    import json

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. num_classes=10), got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a registered model name (onebit.models.list_models(), e.g. quicknet_small_cifar)")
    p.add_argument("--input-size", type=parse_size, default=None,
                   help="input shape N,C,H,W (default: 1 and the model's default_cfg.input_size)")
    p.add_argument("--option", type=_parse_option, action="append", default=[], metavar="KEY=VALUE",
                   help="config override passed to create_model (JSON value), e.g. --option num_classes=100")
    p.add_argument("--checkpoint", default=None,
                   help="weights to load: a .safetensors state_dict, or a .pt/.pth state_dict or training "
                        "checkpoint (onebit.train.save_checkpoint; read with weights_only=True)")


def _state_dict(path: str) -> dict:
    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise OnebitError(f"could not read checkpoint {path} with torch.load(weights_only=True): {e}; expected a "
                          "state_dict (.pt/.pth) or a .safetensors file") from e
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # an onebit.train training checkpoint
    if not isinstance(state, dict):
        raise OnebitError(f"{path}: expected a state_dict (a dict of tensors), got {type(state).__name__}")
    return state


def build_model(args: argparse.Namespace):
    """``(model, input_size)`` from parsed arguments; the model is in eval mode."""
    from onebit.models import create_model

    model = create_model(args.model, **dict(args.option))
    if args.checkpoint:
        missing, unexpected = model.load_state_dict(_state_dict(args.checkpoint), strict=False)
        if missing or unexpected:
            raise OnebitError(f"{args.checkpoint} does not match {args.model}: missing keys {missing[:5]}, "
                              f"unexpected keys {unexpected[:5]}; check the model name and --option overrides")
    size = args.input_size or (1, *model.default_cfg.input_size)
    return model.eval(), size
