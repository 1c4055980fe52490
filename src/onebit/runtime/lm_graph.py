"""The ``.onebit`` graph of a BitNet b1.58 language model, built from its hyper-parameters.

numpy only. One forward over ``T`` tokens of a LLaMA-like decoder (Ma et al. 2024, "The Era of
1-bit LLMs", section 2) written with the schema's LM ops (docs/format.md)::

    x = embedding(ids, embed_tokens.weight)                                  (B, T, C)
    per layer i (prefix layers.i):
      h = rmsnorm(x, input_layernorm.weight); h_q, h_s = quantize_i8(h)      shared by q/k/v
      q, k, v = ternary_linear(h_q, h_s, self_attn.{q,k,v}_proj.{weight,w_scale})
      q, k = rope(reshape(q|k, (B, T, heads, D)), positions)
      a = reshape(attention(q, k, v, causal), (B, T, H*D))  [rmsnorm attn_sub_norm]
      x = x + ternary_linear(a, self_attn.o_proj)
      h = rmsnorm(x, post_attention_layernorm.weight); h_q, h_s = quantize_i8(h)   shared by gate/up
      g = glu(ternary_linear(h_q, h_s, mlp.gate_proj), ternary_linear(h_q, h_s, mlp.up_proj), act)
      [rmsnorm ffn_sub_norm]; x = x + ternary_linear(g, mlp.down_proj)
    logits = dense(rmsnorm(x, norm.weight), lm_head.weight or embed_tokens.weight when tied)

Graph inputs: ``ids`` int32 ``(batch, T)`` (layout ``NT``) and ``positions`` int32 ``(T,)``
(layout ``N``, the absolute position of each token: ``arange(T)`` for a fresh sequence). Output:
``logits`` float32 ``(batch, T, V)`` (layout ``NTC``).

Tensors (names follow Hugging Face LLaMA/BitNet without the ``model.`` prefix): each projection
``layers.{i}.{self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj}.weight`` is uint8 tq2
``(N, 32*ceil(K/128))`` (2 bits per weight, :func:`onebit.kernels.ternary.pack_ternary`) with
``.w_scale`` float32 ``(1,)`` (``gamma = mean|W|``); ``embed_tokens.weight`` ``(V, C)``, the norms
and ``lm_head.weight`` (absent when tied) are float32.

The hyper-parameters travel in the provenance entry ``onebit.lm`` (JSON of :class:`LMSpec`), so
the LM engine (:mod:`onebit.runtime.lm`) can check that a file's graph is exactly
``lm_graph(spec)`` before running it its own way (KV cache, fused projections).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from onebit.errors import FormatError
from onebit.kernels.ternary import pack_ternary, ternary_row_bytes

__all__ = [
    "LMSpec",
    "PROVENANCE_KEY",
    "PROJECTIONS",
    "lm_graph",
    "lm_tensor_shapes",
    "write_lm",
    "random_lm_tensors",
]

PROVENANCE_KEY = "onebit.lm"
PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


@dataclass(frozen=True)
class LMSpec:
    """Hyper-parameters of a BitNet LM file (the inference subset of ``onebit.llm.LMConfig``).

    ``num_kv_heads`` None means ``num_heads``; ``hidden_act`` is ``"silu"`` (SwiGLU) or
    ``"relu2"``; ``sub_norm`` adds RMSNorms before ``o_proj`` and ``down_proj`` (BitNet 2B4T).
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_seq_len: int
    num_kv_heads: int | None = None
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    hidden_act: str = "silu"
    sub_norm: bool = False
    tie_embeddings: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def __post_init__(self):
        for f in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                  "max_seq_len"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise FormatError(f"LM spec: {f} must be a positive int, got {v!r}")
        if self.hidden_size % self.num_heads or self.head_dim % 2:
            raise FormatError(f"LM spec: hidden_size {self.hidden_size} must split into "
                              f"{self.num_heads} heads of even size")
        if self.num_heads % self.kv_heads:
            raise FormatError(f"LM spec: num_heads {self.num_heads} must be a multiple of "
                              f"num_kv_heads {self.kv_heads}")
        if self.hidden_act not in ("silu", "relu2"):
            raise FormatError(f"LM spec: hidden_act must be 'silu' or 'relu2', got {self.hidden_act!r}")

    @property
    def kv_heads(self) -> int:
        """Key/value heads (``num_kv_heads`` or ``num_heads``)."""
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    @property
    def head_dim(self) -> int:
        """``hidden_size // num_heads``."""
        return self.hidden_size // self.num_heads

    def to_json(self) -> str:
        """Compact JSON of every field (what :func:`write_lm` stores in the provenance)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LMSpec":
        """Build from a dict with these fields; other keys (e.g. the training-only fields of
        ``LMConfig.to_dict()``: ``full_precision``, ``quant_eps``, ``init_std``, ``name``) are
        ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_json(cls, text: str) -> "LMSpec":
        """Inverse of :meth:`to_json`; FormatError when the text is not a JSON object."""
        try:
            d = json.loads(text)
        except ValueError as e:
            raise FormatError(f"provenance {PROVENANCE_KEY!r}: expected JSON, got {text[:80]!r}") from e
        if not isinstance(d, dict):
            raise FormatError(f"provenance {PROVENANCE_KEY!r}: expected a JSON object, got {text[:80]!r}")
        try:
            return cls.from_dict(d)
        except TypeError as e:
            raise FormatError(f"provenance {PROVENANCE_KEY!r}: {e}") from e


def _proj_shapes(spec: LMSpec) -> dict[str, tuple[int, int]]:
    """``(out, in)`` of each projection of one block."""
    c, f, kv = spec.hidden_size, spec.intermediate_size, spec.kv_heads * spec.head_dim
    hd = spec.num_heads * spec.head_dim
    return {"self_attn.q_proj": (hd, c), "self_attn.k_proj": (kv, c), "self_attn.v_proj": (kv, c),
            "self_attn.o_proj": (c, hd), "mlp.gate_proj": (f, c), "mlp.up_proj": (f, c),
            "mlp.down_proj": (c, f)}


def lm_tensor_shapes(spec: LMSpec) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Every stored tensor of an LM file: ``name -> (numpy dtype name, shape)``."""
    c, f, v = spec.hidden_size, spec.intermediate_size, spec.vocab_size
    out: dict[str, tuple[str, tuple[int, ...]]] = {"embed_tokens.weight": ("float32", (v, c)),
                                                   "norm.weight": ("float32", (c,))}
    if not spec.tie_embeddings:
        out["lm_head.weight"] = ("float32", (v, c))
    for i in range(spec.num_layers):
        p = f"layers.{i}"
        out[f"{p}.input_layernorm.weight"] = ("float32", (c,))
        out[f"{p}.post_attention_layernorm.weight"] = ("float32", (c,))
        if spec.sub_norm:
            out[f"{p}.self_attn.attn_sub_norm.weight"] = ("float32", (spec.num_heads * spec.head_dim,))
            out[f"{p}.mlp.ffn_sub_norm.weight"] = ("float32", (f,))
        for name, (n, k) in _proj_shapes(spec).items():
            out[f"{p}.{name}.weight"] = ("uint8", (n, ternary_row_bytes(k)))
            out[f"{p}.{name}.w_scale"] = ("float32", (1,))
    return out


def lm_graph(spec: LMSpec) -> dict[str, Any]:
    """The graph document of one forward over ``T`` tokens (module docstring)."""
    H, Hkv, D, C = spec.num_heads, spec.kv_heads, spec.head_dim, spec.hidden_size
    eps, theta = float(spec.rms_norm_eps), float(spec.rope_theta)
    ops: list[dict[str, Any]] = []

    def op(type_: str, name: str, inputs: list[str], outputs: list[str], **attrs) -> None:
        ops.append({"type": type_, "name": name, "inputs": inputs, "outputs": outputs, "attrs": attrs})

    def tl(p: str, proj: str, x: str, x_scale: str) -> str:
        out = f"{p}.{proj}.y"
        op("ternary_linear", f"{p}.{proj}", [x, x_scale, f"{p}.{proj}.weight", f"{p}.{proj}.w_scale"], [out])
        return out

    op("embedding", "embed", ["ids", "embed_tokens.weight"], ["h0"])
    x = "h0"
    for i in range(spec.num_layers):
        p = f"layers.{i}"
        op("rmsnorm", f"{p}.input_layernorm", [x, f"{p}.input_layernorm.weight"], [f"{p}.attn_in"], eps=eps)
        op("quantize_i8", f"{p}.attn_quant", [f"{p}.attn_in"], [f"{p}.attn_q8", f"{p}.attn_xs"])
        q, k, v = (tl(p, f"self_attn.{n}_proj", f"{p}.attn_q8", f"{p}.attn_xs") for n in "qkv")
        heads = {}
        for n, src, nh in (("q", q, H), ("k", k, Hkv), ("v", v, Hkv)):
            op("reshape", f"{p}.self_attn.{n}_heads", [src], [f"{p}.self_attn.{n}4"], shape=["batch", "T", nh, D])
            heads[n] = f"{p}.self_attn.{n}4"
        for n in "qk":
            op("rope", f"{p}.self_attn.{n}_rope", [heads[n], "positions"], [f"{p}.self_attn.{n}r"],
               theta=theta, style="half")
        op("attention", f"{p}.self_attn.attention",
           [f"{p}.self_attn.qr", f"{p}.self_attn.kr", heads["v"]], [f"{p}.self_attn.y4"], causal=True, scale=None)
        op("reshape", f"{p}.self_attn.merge", [f"{p}.self_attn.y4"], [f"{p}.self_attn.y"], shape=["batch", "T", H * D])
        a = f"{p}.self_attn.y"
        if spec.sub_norm:
            op("rmsnorm", f"{p}.self_attn.attn_sub_norm", [a, f"{p}.self_attn.attn_sub_norm.weight"],
               [f"{p}.self_attn.normed"], eps=eps)
            a = f"{p}.self_attn.normed"
        o = tl(p, "self_attn.o_proj", a, "")
        op("add", f"{p}.attn_residual", [x, o], [f"{p}.mid"])
        op("rmsnorm", f"{p}.post_attention_layernorm", [f"{p}.mid", f"{p}.post_attention_layernorm.weight"],
           [f"{p}.mlp_in"], eps=eps)
        op("quantize_i8", f"{p}.mlp_quant", [f"{p}.mlp_in"], [f"{p}.mlp_q8", f"{p}.mlp_xs"])
        g = tl(p, "mlp.gate_proj", f"{p}.mlp_q8", f"{p}.mlp_xs")
        u = tl(p, "mlp.up_proj", f"{p}.mlp_q8", f"{p}.mlp_xs")
        op("glu", f"{p}.mlp.glu", [g, u], [f"{p}.mlp.h"], activation=spec.hidden_act)
        h = f"{p}.mlp.h"
        if spec.sub_norm:
            op("rmsnorm", f"{p}.mlp.ffn_sub_norm", [h, f"{p}.mlp.ffn_sub_norm.weight"], [f"{p}.mlp.normed"], eps=eps)
            h = f"{p}.mlp.normed"
        d = tl(p, "mlp.down_proj", h, "")
        op("add", f"{p}.mlp_residual", [f"{p}.mid", d], [f"{p}.out"])
        x = f"{p}.out"
    op("rmsnorm", "norm", [x, "norm.weight"], ["final"], eps=eps)
    head = "embed_tokens.weight" if spec.tie_embeddings else "lm_head.weight"
    op("dense", "lm_head", ["final", head, ""], ["logits"], clamp_min=None, clamp_max=None)
    return {
        "inputs": [{"name": "ids", "dtype": "int32", "shape": ["batch", "T"], "layout": "NT"},
                   {"name": "positions", "dtype": "int32", "shape": ["T"], "layout": "N"}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", "T", spec.vocab_size],
                     "layout": "NTC"}],
        "ops": ops,
    }


def write_lm(path: str | os.PathLike | None, spec: LMSpec, tensors: Mapping[str, np.ndarray], *,
             provenance: Mapping[str, str] | None = None) -> bytes | None:
    """Write an LM ``.onebit`` file: ``lm_graph(spec)``, ``tensors`` and ``spec`` in the provenance.

    ``tensors`` must hold exactly :func:`lm_tensor_shapes` (names, dtypes, shapes); raises
    FormatError naming the first missing, extra or mis-shaped tensor. Returns the bytes when
    ``path`` is None (as :func:`onebit.converter.write_model`).
    """
    from onebit.converter.writer import make_provenance, write_model

    expected = lm_tensor_shapes(spec)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise FormatError(f"LM tensors: missing {missing[:5]}, unexpected {extra[:5]} for a "
                          f"{spec.num_layers}-layer model (see onebit.runtime.lm_graph.lm_tensor_shapes)")
    for name, (dtype, shape) in expected.items():
        a = tensors[name]
        if a.dtype != np.dtype(dtype) or tuple(a.shape) != shape:
            raise FormatError(f"LM tensor {name!r}: expected {dtype} {shape}, got {a.dtype} {tuple(a.shape)}")
    prov = dict(provenance) if provenance is not None else make_provenance("onebit.llm.BitNetLM")
    prov[PROVENANCE_KEY] = spec.to_json()
    return write_model(path, lm_graph(spec), dict(tensors), provenance=prov)


def random_lm_tensors(spec: LMSpec, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Random LM tensors for speed/memory measurements: uniform ternary codes in {-1, 0, 1}
    packed straight to tq2 (no float weight matrix is built), ``w_scale`` 0.02, embedding
    N(0, 0.02), norms 1."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    proj = _proj_shapes(spec)
    for name, (dtype, shape) in lm_tensor_shapes(spec).items():
        if dtype == "uint8":
            n, k = proj[name.split(".", 2)[2].rsplit(".", 1)[0]]
            out[name] = pack_ternary(rng.integers(-1, 2, size=(n, k), dtype=np.int8), 1.0)[0]
        elif name.endswith(".w_scale"):
            out[name] = np.full((1,), 0.02, np.float32)
        elif name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            out[name] = np.ones(shape, np.float32)
        else:
            out[name] = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
    return out
