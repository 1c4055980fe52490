"""BitNet b1.58 decoder-only language model (LLaMA-like), readable top to bottom.

Paper: Ma et al. 2024, "The Era of 1-bit LLMs" (BitNet b1.58), section 2: a Transformer whose
every ``nn.Linear`` in attention and MLP is a :class:`~onebit.nn.BitLinear` (absmean ternary
weights, per-token absmax int8 activations), with LLaMA-alike components -- RMSNorm (Zhang &
Sennrich 2019), SwiGLU (Shazeer 2020), rotary position embeddings (Su et al. 2024) -- and no
biases. The token embedding and the output head stay full precision (the paper's section 3
"the embedding remains full precision"). ``full_precision=True`` in the config builds the twin
with ``nn.Linear`` everywhere else unchanged (the paper's "LLaMA LLM" baseline).

Block (pre-norm)::

    x = x + o_proj(attn(rope(q_proj(n1(x))), rope(k_proj(n1(x))), v_proj(n1(x))))
    x = x + down_proj(act(gate_proj(n2(x))) * up_proj(n2(x)))

with ``act = silu`` (SwiGLU) or ``relu^2`` and, with ``sub_norm=True``, an RMSNorm on the input
of ``o_proj`` and ``down_proj`` (BitNet b1.58 2B4T's "subln"; Hugging Face ``BitNetForCausalLM``).
Module names follow Hugging Face's LLaMA/BitNet (``embed_tokens``, ``layers.i.self_attn.q_proj``,
``mlp.gate_proj``, ``input_layernorm``, ``norm``, ``lm_head``) so checkpoints map one to one.

Shapes: ``B`` batch, ``T`` time, ``C`` hidden, ``H`` query heads, ``Hkv`` key/value heads,
``D = C / H`` head dim, ``F`` FFN width, ``V`` vocabulary.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onebit.errors import ShapeError
from onebit.llm.config import LMConfig
from onebit.nn.bitlinear import BitLinear

__all__ = ["BitNetLM", "rope_tables", "apply_rope", "Attention", "MLP", "Block"]


def _linear(config: LMConfig, in_features: int, out_features: int) -> nn.Linear:
    """``BitLinear`` (b1.58) or ``nn.Linear`` (full-precision twin), never a bias."""
    if config.full_precision:
        return nn.Linear(in_features, out_features, bias=False)
    return BitLinear(in_features, out_features, bias=False, eps=config.quant_eps)


# ---------------------------------------------------------------------------------------------
# Rotary position embeddings
# ---------------------------------------------------------------------------------------------


def rope_tables(head_dim: int, max_seq_len: int, theta: float = 10000.0) -> tuple[Tensor, Tensor]:
    r"""``cos`` and ``sin`` tables of rotary embeddings, each ``(max_seq_len, head_dim)``.

    Frequencies ``w_i = theta^(-2i/D)`` for ``i < D/2``; position ``t`` rotates the channel pair
    ``(j, j + D/2)`` by angle ``t * w_j`` (the "rotate half" layout of LLaMA / Hugging Face,
    Su et al. 2024 eq. 34 with the pairs split into halves). Tables hold ``cos(t w)`` and
    ``sin(t w)`` repeated for both halves. Computed in float64, returned as float32.
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)  # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)                                     # (T, D)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    r"""Rotate ``x`` of shape ``(B, heads, T, D)`` by position: ``x*cos + rotate_half(x)*sin``.

    ``rotate_half([a, b]) = [-b, a]`` for halves ``a, b`` of the last axis, so channel ``j`` and
    ``j + D/2`` form one complex number rotated by ``t * w_j``. ``cos``/``sin``: ``(T, D)``.
    """
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


# ---------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Causal multi-head (or grouped-query) self-attention with RoPE, BitLinear projections."""

    def __init__(self, config: LMConfig):
        super().__init__()
        c, d = config.hidden_size, config.head_dim
        self.num_heads, self.num_kv_heads, self.head_dim = config.num_heads, config.kv_heads, d
        self.q_proj = _linear(config, c, config.num_heads * d)
        self.k_proj = _linear(config, c, config.kv_heads * d)
        self.v_proj = _linear(config, c, config.kv_heads * d)
        self.o_proj = _linear(config, config.num_heads * d, c)
        self.attn_sub_norm = (nn.RMSNorm(c, eps=config.rms_norm_eps) if config.sub_norm
                              else None)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        B, T, C = x.shape
        H, Hkv, D = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.q_proj(x).view(B, T, H, D).transpose(1, 2)      # (B, H, T, D)
        k = self.k_proj(x).view(B, T, Hkv, D).transpose(1, 2)    # (B, Hkv, T, D)
        v = self.v_proj(x).view(B, T, Hkv, D).transpose(1, 2)    # (B, Hkv, T, D)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if Hkv != H:   # grouped-query: query head h reads key/value head h // (H / Hkv)
            k = k.repeat_interleave(H // Hkv, dim=1)              # (B, H, T, D)
            v = v.repeat_interleave(H // Hkv, dim=1)              # (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)   # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, H * D)                # (B, T, C)
        if self.attn_sub_norm is not None:
            y = self.attn_sub_norm(y)
        return self.o_proj(y)                                     # (B, T, C)


class MLP(nn.Module):
    """Gated MLP: ``down(act(gate(x)) * up(x))``; ``act`` is SiLU (SwiGLU) or ReLU²."""

    def __init__(self, config: LMConfig):
        super().__init__()
        c, f = config.hidden_size, config.intermediate_size
        self.gate_proj = _linear(config, c, f)
        self.up_proj = _linear(config, c, f)
        self.down_proj = _linear(config, f, c)
        self.act = config.hidden_act
        self.ffn_sub_norm = nn.RMSNorm(f, eps=config.rms_norm_eps) if config.sub_norm else None

    def forward(self, x: Tensor) -> Tensor:
        g = self.gate_proj(x)                                     # (B, T, F)
        g = F.silu(g) if self.act == "silu" else F.relu(g).square()
        h = g * self.up_proj(x)                                   # (B, T, F)
        if self.ffn_sub_norm is not None:
            h = self.ffn_sub_norm(h)
        return self.down_proj(h)                                  # (B, T, C)


class Block(nn.Module):
    """Pre-norm decoder block: attention then MLP, each with a residual connection."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.input_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)   # (B, T, C)
        x = x + self.mlp(self.post_attention_layernorm(x))          # (B, T, C)
        return x


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


class BitNetLM(nn.Module):
    """BitNet b1.58 language model (or its full-precision twin with ``config.full_precision``).

    ``forward(idx)`` maps token ids ``(B, T)`` to logits ``(B, T, V)``; with ``targets`` it also
    returns the mean next-token cross-entropy. ``generate`` samples continuations (reference
    implementation, no KV cache: each step re-runs the cropped context).
    """

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)   # (max_seq_len, D)
        self.register_buffer("rope_sin", sin, persistent=False)   # (max_seq_len, D)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, init_std) weights; residual outputs (o_proj, down_proj) scaled by
        ``1/sqrt(2 L)`` (GPT-2); RMSNorm weights 1."""
        std = self.config.init_std
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                scale = (1.0 / math.sqrt(2 * self.config.num_layers)
                         if name.endswith(("o_proj", "down_proj")) else 1.0)
                nn.init.normal_(module.weight, mean=0.0, std=std * scale)
            elif isinstance(module, nn.RMSNorm):
                nn.init.ones_(module.weight)

    def forward(self, idx: Tensor, targets: Tensor | None = None):
        """Logits ``(B, T, V)``; with ``targets`` ``(B, T)`` returns ``(logits, loss)``.

        Raises ShapeError when ``idx`` is not ``(B, T)`` or ``T > max_seq_len``.
        """
        if idx.dim() != 2:
            raise ShapeError(f"BitNetLM expects token ids of shape (B, T), got {tuple(idx.shape)}")
        B, T = idx.shape
        if T > self.config.max_seq_len:
            raise ShapeError(f"sequence length {T} exceeds max_seq_len {self.config.max_seq_len};"
                             " crop the context or build the model with a larger max_seq_len")
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]           # (T, D)
        x = self.embed_tokens(idx)                                # (B, T, C)
        for block in self.layers:
            x = block(x, cos, sin)                                # (B, T, C)
        logits = self.lm_head(self.norm(x))                       # (B, T, V)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.reshape(B * T, -1).float(), targets.reshape(B * T))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx: Tensor, max_new_tokens: int, *, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 eos_token_id: int | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
        """Append up to ``max_new_tokens`` sampled tokens to ``idx`` ``(B, T)``; ``(B, T + n)`` out.

        ``temperature == 0`` is greedy (argmax). Otherwise logits are divided by
        ``temperature``, restricted to the ``top_k`` largest (if given) and to the smallest set
        whose probabilities sum to at least ``top_p`` (nucleus sampling, Holtzman et al. 2020),
        and one token is drawn with ``generator``. Stops early when every row produced
        ``eos_token_id``. The context is cropped to the last ``max_seq_len`` tokens.
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        was_training = self.training
        self.eval()
        done = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
        for _ in range(max_new_tokens):
            context = idx[:, -self.config.max_seq_len:]              # (B, <=T)
            logits = self(context)[:, -1, :].float()                 # (B, V)
            next_id = sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p,
                                  generator=generator)                # (B, 1)
            if eos_token_id is not None:
                next_id = torch.where(done[:, None], torch.full_like(next_id, eos_token_id),
                                      next_id)
                done |= next_id[:, 0] == eos_token_id
            idx = torch.cat([idx, next_id], dim=1)
            if eos_token_id is not None and bool(done.all()):
                break
        self.train(was_training)
        return idx


def sample_next(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """One token per row of ``logits`` ``(B, V)`` (greedy/temperature/top-k/top-p): ``(B, 1)``."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]     # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach top_p (the first always stays)
        drop_sorted = (cum - sorted_logits.softmax(dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)
