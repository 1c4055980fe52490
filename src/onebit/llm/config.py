"""Configuration of the BitNet b1.58 decoder: one validated dataclass and named presets.

This module is torch-free: configs, presets and the parameter count of any shape (computed from
the config alone, nothing allocated) work with numpy-only installs.

Presets
-------
Tiny ones that train on this machine's CPU (``tiny-1m`` ... ``small-30m``) and the paper's four
shapes for memory/speed measurements with random weights. The b1.58 paper (Ma et al. 2024,
Table 1/2) names the sizes 700M, 1.3B, 3B, 3.9B but publishes no shapes; the shapes below are
those of the reproduction that the authors' "Training Tips, Code and FAQ" note points to,
``1bitLLM/bitnet_b1_58-{large,xl,3B}`` on Hugging Face (config.json: hidden_size,
intermediate_size, num_hidden_layers, num_attention_heads, vocab_size 32002, tied embeddings,
rope_theta 1e4, rms_norm_eps 1e-5, hidden_act silu):

============  ======  =====  =====  =====  =========================================
preset        hidden  layers heads  FFN    parameters (:func:`count_parameters`)
============  ======  =====  =====  =====  =========================================
b158-700m     1536    24     16     4096   728.6 M
b158-1.3b     2048    24     32     5460   1.273 B
b158-3b       3200    26     32     8640   3.324 B (Hugging Face lists 3.32 B)
b158-3.9b     3200    26     32     11008  3.91 B  (**assumed shape**, see below)
============  ======  =====  =====  =====  =========================================

The 3.9B shape was never published (neither in the paper nor in the reproduction). We keep the
3B model's width, depth and heads and widen its SwiGLU to LLaMA-7B's 11008, which lands on
3.91 B parameters; use it for memory and latency measurements only.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LMConfig",
    "PRESETS",
    "get_config",
    "count_parameters",
    "preset_names",
]

_ACTS = ("silu", "relu2")


@dataclass(frozen=True)
class LMConfig:
    """Shape and options of :class:`onebit.llm.model.BitNetLM`.

    Fields:
        vocab_size: tokens in the vocabulary (embedding rows, head outputs).
        hidden_size: model width ``C``.
        num_layers: decoder blocks.
        num_heads: query heads; ``head_dim = hidden_size // num_heads`` (must be even for RoPE).
        num_kv_heads: key/value heads (grouped-query attention); ``None`` means ``num_heads``.
        intermediate_size: FFN width ``F`` of the gated MLP (SwiGLU in the paper).
        max_seq_len: longest context the rotary table covers.
        rope_theta: RoPE base (Su et al. 2024); 1e4 in LLaMA and the b1.58 reproduction.
        rms_norm_eps: epsilon of every RMSNorm.
        hidden_act: ``"silu"`` (SwiGLU, the b1.58 paper) or ``"relu2"`` (squared ReLU gate,
            BitNet b1.58 2B4T / Hugging Face ``BitNetForCausalLM``).
        sub_norm: extra RMSNorm before ``o_proj`` and ``down_proj`` (the "subln" of BitNet b1.58
            2B4T and Hugging Face's ``attn_sub_norm`` / ``ffn_sub_norm``).
        tie_embeddings: the output head shares the embedding matrix.
        full_precision: ``nn.Linear`` instead of ``BitLinear`` in every projection (the
            full-precision twin with the same shape).
        quant_eps: epsilon of the BitLinear quantizers.
        init_std: std of the normal initialisation of weights (residual projections get
            ``init_std / sqrt(2 * num_layers)``, as GPT-2/nanoGPT).
        bos_token_id / eos_token_id: special token ids stored with the config (may be None).
    """

    vocab_size: int = 4096
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int | None = None
    intermediate_size: int = 688
    max_seq_len: int = 256
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    hidden_act: str = "silu"
    sub_norm: bool = False
    tie_embeddings: bool = False
    full_precision: bool = False
    quant_eps: float = 1e-5
    init_std: float = 0.02
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    name: str = field(default="custom", compare=False)

    def __post_init__(self):
        def positive(field_name):
            value = getattr(self, field_name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LMConfig.{field_name} must be a positive int, got {value!r}")

        for f in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                  "max_seq_len"):
            positive(f)
        if self.num_kv_heads is not None:
            positive("num_kv_heads")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"LMConfig: hidden_size ({self.hidden_size}) must be a multiple of num_heads "
                f"({self.num_heads}); pick num_heads among the divisors of hidden_size")
        if (self.hidden_size // self.num_heads) % 2:
            raise ValueError(
                f"LMConfig: head_dim = hidden_size / num_heads = "
                f"{self.hidden_size // self.num_heads} must be even (RoPE rotates pairs of "
                "channels); change num_heads")
        if self.num_heads % self.kv_heads:
            raise ValueError(
                f"LMConfig: num_heads ({self.num_heads}) must be a multiple of num_kv_heads "
                f"({self.kv_heads}) for grouped-query attention")
        if self.hidden_act not in _ACTS:
            raise ValueError(f"LMConfig.hidden_act must be one of {_ACTS}, got {self.hidden_act!r}")
        if not self.rope_theta > 0 or not self.rms_norm_eps > 0 or not self.quant_eps > 0:
            raise ValueError("LMConfig: rope_theta, rms_norm_eps and quant_eps must be > 0")

    @property
    def kv_heads(self) -> int:
        """Key/value heads actually used: ``num_kv_heads``, or ``num_heads`` when None."""
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    @property
    def head_dim(self) -> int:
        """Channels per attention head, ``hidden_size // num_heads``."""
        return self.hidden_size // self.num_heads

    def replace(self, **changes) -> "LMConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict of every field (``from_dict`` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LMConfig":
        """Build a config from ``to_dict`` output; unknown keys raise ValueError naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"LMConfig.from_dict: unknown keys {unknown}; expected a subset of "
                             f"{sorted(names)}")
        return cls(**d)

    def to_json(self) -> str:
        """``to_dict`` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _paper(name, hidden, layers, heads, ffn):
    return LMConfig(vocab_size=32002, hidden_size=hidden, num_layers=layers, num_heads=heads,
                    intermediate_size=ffn, max_seq_len=2048, tie_embeddings=True, name=name)


# Tiny presets: SwiGLU width ~ 8/3 * hidden rounded to a multiple of 8 (LLaMA's rule).
PRESETS: dict[str, LMConfig] = {
    "tiny-1m": LMConfig(vocab_size=2048, hidden_size=128, num_layers=4, num_heads=4,
                        intermediate_size=344, max_seq_len=256, name="tiny-1m"),
    "tiny-4m": LMConfig(vocab_size=4096, hidden_size=192, num_layers=6, num_heads=6,
                        intermediate_size=512, max_seq_len=256, name="tiny-4m"),
    "tiny-8m": LMConfig(vocab_size=4096, hidden_size=256, num_layers=8, num_heads=4,
                        intermediate_size=688, max_seq_len=256, name="tiny-8m"),
    "small-30m": LMConfig(vocab_size=8192, hidden_size=512, num_layers=8, num_heads=8,
                          intermediate_size=1376, max_seq_len=512, name="small-30m"),
    "b158-700m": _paper("b158-700m", 1536, 24, 16, 4096),
    "b158-1.3b": _paper("b158-1.3b", 2048, 24, 32, 5460),
    "b158-3b": _paper("b158-3b", 3200, 26, 32, 8640),
    "b158-3.9b": _paper("b158-3.9b", 3200, 26, 32, 11008),
}

# The sizes the paper reports for the four shapes (Table 1), for comparison in tests/docs.
PAPER_SIZES = {"b158-700m": 700e6, "b158-1.3b": 1.3e9, "b158-3b": 3e9, "b158-3.9b": 3.9e9}


def preset_names() -> list[str]:
    """Names accepted by :func:`get_config`."""
    return list(PRESETS)


def get_config(name: str, **overrides) -> LMConfig:
    """The preset ``name`` with ``overrides`` applied (e.g. ``full_precision=True``).

    Raises ValueError listing the presets when ``name`` is unknown.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown LM config {name!r}; expected one of {preset_names()}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]


def count_parameters(config: LMConfig) -> dict[str, int]:
    """Parameter count of :class:`~onebit.llm.model.BitNetLM` built from ``config``, no allocation.

    With ``C = hidden_size``, ``F = intermediate_size``, ``V = vocab_size``, ``L = num_layers``,
    ``K = num_kv_heads * head_dim``:

    - projections per block: ``q, o: C*C``; ``k, v: C*K``; ``gate, up, down: C*F``
      (ternary in b1.58 mode, float in the twin);
    - norms per block: ``2C`` (+ ``C + F`` with ``sub_norm``); final norm ``C``;
    - embedding ``V*C``; output head ``V*C`` unless tied.

    Returns ``{"total", "projection", "embedding", "head", "norm"}`` where ``projection`` is
    what becomes ternary (every BitLinear weight) and the rest stays full precision.
    """
    c, f, v, L = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_layers
    kv = config.kv_heads * config.head_dim
    projection = L * (2 * c * c + 2 * c * kv + 3 * c * f)
    norm = L * (2 * c + ((c + f) if config.sub_norm else 0)) + c
    embedding = v * c
    head = 0 if config.tie_embeddings else v * c
    return {"total": projection + norm + embedding + head, "projection": projection,
            "embedding": embedding, "head": head, "norm": norm}
