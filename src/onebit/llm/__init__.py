"""BitNet b1.58 language models: config, model, tokenizer, corpora, training, HF checkpoints.

``onebit.llm.config`` is torch-free; the other submodules import torch (and ``tokenizers`` for
the tokenizer) when first used::

    from onebit.llm import BitNetLM, get_config
    model = BitNetLM(get_config("tiny-1m"))                        # ternary (b1.58)
    twin = BitNetLM(get_config("tiny-1m", full_precision=True))   # nn.Linear twin

Paper: Ma et al. 2024, "The Era of 1-bit LLMs: All Large Language Models are in 1.58 Bits".
"""

from __future__ import annotations

import importlib
from typing import Any

from onebit.llm.config import PRESETS, LMConfig, count_parameters, get_config, preset_names

__all__ = [
    "LMConfig",
    "PRESETS",
    "get_config",
    "preset_names",
    "count_parameters",
    "BitNetLM",
    "Tokenizer",
    "prepare_corpus",
    "train_lm",
    "TrainConfig",
    "load_hf_checkpoint",
    "save_hf_checkpoint",
]

_LAZY = {
    "BitNetLM": "onebit.llm.model",
    "Tokenizer": "onebit.llm.tokenizer",
    "prepare_corpus": "onebit.llm.data",
    "train_lm": "onebit.llm.train",
    "TrainConfig": "onebit.llm.train",
    "load_hf_checkpoint": "onebit.llm.hf",
    "save_hf_checkpoint": "onebit.llm.hf",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'onebit.llm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
