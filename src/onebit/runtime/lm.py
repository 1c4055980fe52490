"""Native (numpy-only) BitNet b1.58 language-model engine: KV-cache decode and sampling.

Runs an LM ``.onebit`` file (:mod:`onebit.runtime.lm_graph`: the graph of one forward over
``T`` tokens) its own way, for generation: one token at a time against a preallocated key/value
cache. It computes exactly the graph's ops (the engine checks that the file's graph is
``lm_graph(spec)`` before running), with:

* int8 per-token activations (bitnet sec. 2): one :func:`~onebit.kernels.ternary.quantize_i8`
  per block input is shared by the q/k/v projections and by the gate/up projections, whose
  packed weights are concatenated at load time into one matrix each (one kernel call instead of
  three/two; the integer accumulators are rescaled per projection: ``y = acc * gamma_p /
  x_scale``);
* :func:`~onebit.kernels.ternary.tgemv` for batch-1 decode and
  :func:`~onebit.kernels.ternary.tgemm` for the prompt (prefill);
* float32 RMSNorm, RoPE ("rotate half", tables computed in float64 like the PyTorch model),
  grouped-query causal attention, SiLU/ReLU² gates, float32 embedding and output head;
* sampling: greedy (``temperature=0``), temperature, top-k, top-p (nucleus, Holtzman et al.
  2020) from a seeded ``numpy.random.Generator``; :meth:`LMEngine.generate` is a generator that
  yields each token as soon as it is chosen (streaming).

Batch size 1. Positions beyond the cache (``max_seq_len``) are refused (:class:`ShapeError`).
This module never imports torch.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from onebit.errors import FormatError, ShapeError
from onebit.kernels.ternary import quantize_i8, tgemm, tgemv
from onebit.runtime import schema
from onebit.runtime.lm_graph import PROVENANCE_KEY, LMSpec, lm_graph, lm_tensor_shapes
from onebit.runtime.ops.blas import set_blas_threads  # the head matvec and attention use numpy BLAS
from onebit.runtime.reader import ModelFile, load_model

__all__ = ["LMEngine", "SamplingConfig", "sample_token", "set_blas_threads"]

_F32 = np.float32


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings: ``temperature == 0`` is greedy (argmax); otherwise logits / temperature
    restricted to the ``top_k`` largest (None = all) and to the smallest prefix of the sorted
    distribution whose probability reaches ``top_p`` (None or 1 = all), then one draw."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self):
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def sample_token(logits: np.ndarray, cfg: SamplingConfig, rng: np.random.Generator | None) -> int:
    """One token id from ``logits (V,)`` under ``cfg`` (see :class:`SamplingConfig`).

    Same rule as the PyTorch reference ``onebit.llm.model.sample_next``: top-k keeps logits
    ``>= `` the k-th largest; top-p drops a token when the tokens sorted before it already sum
    to ``>= top_p`` (the most likely token always stays). The draw inverts the CDF of the
    renormalised probabilities with one ``rng.random()`` (float64).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if cfg.temperature == 0:
        return int(np.argmax(logits))
    if rng is None:
        raise ValueError("sampling with temperature > 0 needs a numpy Generator (seed)")
    z = logits / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < z.size:
        kth = np.partition(z, z.size - cfg.top_k)[z.size - cfg.top_k]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max())
    p /= p.sum()
    if cfg.top_p is not None and cfg.top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        sorted_p = p[order]
        before = np.cumsum(sorted_p) - sorted_p
        p[order[before >= cfg.top_p]] = 0.0
        p /= p.sum()
    cdf = np.cumsum(p)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), p.size - 1))


# ---------------------------------------------------------------------------------------------
# Engine
# ---------------------------------------------------------------------------------------------


def _rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    """``x / sqrt(mean(x^2) + eps) * w`` over the last axis, float32 (Zhang & Sennrich 2019)."""
    ms = np.mean(np.square(x), axis=-1, keepdims=True, dtype=_F32)
    return (x * (1.0 / np.sqrt(ms + _F32(eps)))).astype(_F32, copy=False) * w


def _canonical_ops(spec: LMSpec) -> list:
    ops = json.loads(json.dumps(lm_graph(spec)["ops"]))
    for op in ops:
        op["attrs"] = schema.complete_attrs(schema.OPS[op["type"]], op["attrs"])
    return json.loads(json.dumps(ops))


@dataclass
class _Layer:
    ln1: np.ndarray
    ln2: np.ndarray
    qkv: np.ndarray          # uint8 (HD + 2 KVD, row bytes): q, k, v packed rows
    qkv_scale: np.ndarray    # float32 (HD + 2 KVD,): gamma of the projection of each row
    o: np.ndarray
    o_scale: float
    gate_up: np.ndarray      # uint8 (2F, row bytes)
    gate_up_scale: np.ndarray
    down: np.ndarray
    down_scale: float
    attn_sub: np.ndarray | None
    ffn_sub: np.ndarray | None


class LMEngine:
    """Batch-1 generation engine for an LM ``.onebit`` file (module docstring).

    Args:
        model: a path, the file's bytes, or a loaded :class:`~onebit.runtime.reader.ModelFile`.
        num_threads: threads of the ternary kernels (and, best effort, of numpy's BLAS).
        max_seq_len: tokens the KV cache holds (default: the model's ``max_seq_len``); the cache
            is allocated once, ``2 * layers * kv_heads * max_seq_len * head_dim`` float32.

    Raises FormatError when the file is not an LM file of :mod:`onebit.runtime.lm_graph`.

    Use :meth:`prefill` (prompt, tgemm) then :meth:`decode` (one token, tgemv), or
    :meth:`generate`; :meth:`reset` empties the cache; :meth:`forward` runs a whole sequence
    from position 0 and returns every position's logits.
    """

    def __init__(self, model: ModelFile | str | os.PathLike | bytes, *, num_threads: int = 1,
                 max_seq_len: int | None = None):
        mf = model if isinstance(model, ModelFile) else load_model(model)
        if PROVENANCE_KEY not in mf.provenance:
            raise FormatError(f"this .onebit file has no {PROVENANCE_KEY!r} provenance entry: it is not a "
                              "language model written by onebit.runtime.lm_graph.write_lm (export it with "
                              "onebit.llm.export.export_onebit), or run it with the graph interpreter")
        spec = LMSpec.from_json(mf.provenance[PROVENANCE_KEY])
        if mf.graph["ops"] != _canonical_ops(spec):
            raise FormatError("the file's graph differs from the BitNet LM graph of its hyper-parameters "
                              f"({PROVENANCE_KEY}); the LM engine only runs lm_graph(spec) -- run this file "
                              "with the graph interpreter instead")
        for name, (dtype, shape) in lm_tensor_shapes(spec).items():
            t = mf.tensors.get(name)
            if t is None or tuple(t.shape) != shape:
                raise FormatError(f"LM tensor {name!r}: expected {dtype} {shape}, found "
                                  f"{None if t is None else (t.dtype, t.shape)}")
        self.model_file, self.spec = mf, spec
        self.num_threads = int(num_threads)
        set_blas_threads(self.num_threads)
        self.max_seq_len = int(max_seq_len or spec.max_seq_len)
        if self.max_seq_len < 1:
            raise ValueError(f"max_seq_len must be >= 1, got {max_seq_len}")
        T = mf.tensors

        def f32(name: str) -> np.ndarray:
            return np.ascontiguousarray(T[name], dtype=_F32)

        def scale(name: str) -> float:
            return float(T[name + ".w_scale"][0])

        self.embed = f32("embed_tokens.weight")
        self.head = self.embed if spec.tie_embeddings else f32("lm_head.weight")
        self.norm = f32("norm.weight")
        self.layers: list[_Layer] = []
        for i in range(spec.num_layers):
            p = f"layers.{i}"
            qkv = [f"{p}.self_attn.{n}_proj" for n in "qkv"]
            gu = [f"{p}.mlp.gate_proj", f"{p}.mlp.up_proj"]
            self.layers.append(_Layer(
                ln1=f32(f"{p}.input_layernorm.weight"), ln2=f32(f"{p}.post_attention_layernorm.weight"),
                qkv=np.concatenate([T[n + ".weight"] for n in qkv]),
                qkv_scale=np.concatenate([np.full(T[n + ".weight"].shape[0], scale(n), _F32) for n in qkv]),
                o=np.ascontiguousarray(T[f"{p}.self_attn.o_proj.weight"]), o_scale=scale(f"{p}.self_attn.o_proj"),
                gate_up=np.concatenate([T[n + ".weight"] for n in gu]),
                gate_up_scale=np.concatenate([np.full(T[n + ".weight"].shape[0], scale(n), _F32) for n in gu]),
                down=np.ascontiguousarray(T[f"{p}.mlp.down_proj.weight"]), down_scale=scale(f"{p}.mlp.down_proj"),
                attn_sub=f32(f"{p}.self_attn.attn_sub_norm.weight") if spec.sub_norm else None,
                ffn_sub=f32(f"{p}.mlp.ffn_sub_norm.weight") if spec.sub_norm else None,
            ))
        H, Hkv, D = spec.num_heads, spec.kv_heads, spec.head_dim
        # RoPE tables exactly as onebit.llm.model.rope_tables: float64 angles, float32 cos/sin
        inv = 1.0 / (spec.rope_theta ** (np.arange(0, D, 2, dtype=np.float64) / D))
        ang = np.outer(np.arange(self.max_seq_len, dtype=np.float64), inv)
        ang = np.concatenate([ang, ang], axis=-1)
        self.cos, self.sin = np.cos(ang).astype(_F32), np.sin(ang).astype(_F32)   # (S, D)
        shape = (spec.num_layers, Hkv, self.max_seq_len, D)
        self.k_cache = np.zeros(shape, _F32)
        self.v_cache = np.zeros(shape, _F32)
        self.pos = 0
        self._scale = _F32(1.0 / math.sqrt(D))

    # -- sizes ----------------------------------------------------------------------------------

    @property
    def weight_bytes(self) -> int:
        """Bytes of the weights the engine reads: packed ternary + float norms/embedding/head."""
        n = self.embed.nbytes + self.norm.nbytes + (0 if self.head is self.embed else self.head.nbytes)
        for L in self.layers:
            n += sum(a.nbytes for a in (L.ln1, L.ln2, L.qkv, L.o, L.gate_up, L.down, L.qkv_scale,
                                        L.gate_up_scale))
            n += sum(a.nbytes for a in (L.attn_sub, L.ffn_sub) if a is not None)
        return n

    @property
    def decode_read_bytes(self) -> int:
        """Weight bytes streamed per decoded token: every packed matrix and the output head."""
        return self.head.nbytes + sum(L.qkv.nbytes + L.o.nbytes + L.gate_up.nbytes + L.down.nbytes
                                      for L in self.layers)

    @property
    def kv_cache_bytes(self) -> int:
        """Bytes of the preallocated key/value cache."""
        return self.k_cache.nbytes + self.v_cache.nbytes

    def reset(self) -> None:
        """Forget the cached sequence (the next token is at position 0)."""
        self.pos = 0

    # -- forward --------------------------------------------------------------------------------

    def _rope(self, x: np.ndarray, start: int) -> np.ndarray:
        """``x (T, heads, D)`` rotated at positions ``start .. start+T-1``: ``x cos + rot(x) sin``."""
        t, half = x.shape[0], x.shape[-1] // 2
        cos, sin = self.cos[start:start + t, None, :], self.sin[start:start + t, None, :]
        rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rot * sin

    def _proj(self, packed: np.ndarray, row_scale: np.ndarray, xq: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Fused projections on shared int8 input: ``acc * gamma_row / x_scale``, ``(T, N)``."""
        op = tgemv if xq.shape[0] == 1 else tgemm
        acc = op(packed, 1.0, xq, xs, num_threads=self.num_threads, out_dtype=np.int32)
        return acc.astype(_F32) * (row_scale[None, :] / xs[:, None])

    def _linear(self, packed: np.ndarray, w_scale: float, x: np.ndarray) -> np.ndarray:
        """BitLinear on float ``x (T, K)``: per-token int8 quantization then the ternary kernel."""
        xq, xs = quantize_i8(x, num_threads=self.num_threads)
        op = tgemv if x.shape[0] == 1 else tgemm
        return op(packed, w_scale, xq, xs, num_threads=self.num_threads)

    def _attend(self, li: int, q: np.ndarray, start: int) -> np.ndarray:
        """Causal GQA attention of ``q (T, H, D)`` at positions ``start..`` over the cache."""
        spec = self.spec
        t, H, Hkv, D = q.shape[0], spec.num_heads, spec.kv_heads, spec.head_dim
        g, S = H // Hkv, start + t
        K, V = self.k_cache[li, :, :S], self.v_cache[li, :, :S]       # (Hkv, S, D)
        qh = q.reshape(t, Hkv, g, D).transpose(1, 2, 0, 3).reshape(Hkv, g * t, D)
        s = np.matmul(qh, K.transpose(0, 2, 1)) * self._scale          # (Hkv, g*T, S)
        if t > 1:   # query j (position start + j) sees keys <= start + j
            mask = np.arange(S)[None, :] > (start + np.arange(t))[:, None]      # (T, S)
            s = s.reshape(Hkv, g, t, S)
            s[:, :, mask] = -np.inf
            s = s.reshape(Hkv, g * t, S)
        s -= s.max(axis=-1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=-1, keepdims=True)
        y = np.matmul(s, V)                                            # (Hkv, g*T, D)
        return y.reshape(Hkv, g, t, D).transpose(2, 0, 1, 3).reshape(t, H * D)

    def _forward(self, ids: np.ndarray, start: int, all_logits: bool) -> np.ndarray:
        spec = self.spec
        t = ids.shape[0]
        if start + t > self.max_seq_len:
            raise ShapeError(f"the KV cache holds {self.max_seq_len} tokens; positions {start}..{start + t - 1} "
                             "do not fit. reset() the engine or build it with a larger max_seq_len")
        if ids.size and (ids.min() < 0 or ids.max() >= spec.vocab_size):
            raise ValueError(f"token ids must be in [0, {spec.vocab_size}), got [{ids.min()}, {ids.max()}]")
        H, Hkv, D, eps = spec.num_heads, spec.kv_heads, spec.head_dim, spec.rms_norm_eps
        hd, kvd = H * D, Hkv * D
        x = self.embed[ids]                                            # (T, C)
        for li, L in enumerate(self.layers):
            xq, xs = quantize_i8(_rmsnorm(x, L.ln1, eps), num_threads=self.num_threads)
            qkv = self._proj(L.qkv, L.qkv_scale, xq, xs)               # (T, HD + 2 KVD)
            q = self._rope(qkv[:, :hd].reshape(t, H, D), start)
            k = self._rope(qkv[:, hd:hd + kvd].reshape(t, Hkv, D), start)
            self.k_cache[li, :, start:start + t] = k.transpose(1, 0, 2)
            self.v_cache[li, :, start:start + t] = qkv[:, hd + kvd:].reshape(t, Hkv, D).transpose(1, 0, 2)
            a = self._attend(li, q, start)                             # (T, HD)
            if L.attn_sub is not None:
                a = _rmsnorm(a, L.attn_sub, eps)
            x = x + self._linear(L.o, L.o_scale, np.ascontiguousarray(a, dtype=_F32))
            xq, xs = quantize_i8(_rmsnorm(x, L.ln2, eps), num_threads=self.num_threads)
            gu = self._proj(L.gate_up, L.gate_up_scale, xq, xs)        # (T, 2F)
            f = gu.shape[1] // 2
            gate, up = gu[:, :f], gu[:, f:]
            if spec.hidden_act == "silu":
                h = gate / (1.0 + np.exp(-gate)) * up
            else:
                h = np.square(np.maximum(gate, 0)) * up
            if L.ffn_sub is not None:
                h = _rmsnorm(h, L.ffn_sub, eps)
            x = x + self._linear(L.down, L.down_scale, np.ascontiguousarray(h, dtype=_F32))
        if not all_logits:
            x = x[-1:]
        return _rmsnorm(x, self.norm, eps) @ self.head.T               # (T or 1, V)

    def prefill(self, ids: Sequence[int] | np.ndarray, *, all_logits: bool = False) -> np.ndarray:
        """Append ``ids`` at the current position (ternary GEMM over the prompt, cache filled).

        Returns the logits of the last token ``(V,)``, or of every token ``(T, V)`` with
        ``all_logits``. Raises ShapeError when the cache cannot hold them.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            raise ValueError("prefill needs at least one token id")
        out = self._forward(ids, self.pos, all_logits)
        self.pos += ids.size
        return out if all_logits else out[0]

    def decode(self, token: int) -> np.ndarray:
        """Append one token (ternary GEMV) and return the next-token logits ``(V,)``."""
        return self.prefill(np.array([token], np.int64))

    def forward(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Logits ``(T, V)`` of the sequence ``ids`` from position 0 (resets the cache)."""
        self.reset()
        return self.prefill(ids, all_logits=True)

    def generate(self, prompt: Sequence[int] | np.ndarray, max_new_tokens: int, *,
                 temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                 seed: int | None = 0, eos_token_id: int | None = None) -> Iterator[int]:
        """Yield up to ``max_new_tokens`` token ids continuing ``prompt`` (streaming).

        The cache is reset, the prompt prefilled in one pass, then each token is sampled
        (:func:`sample_token`, ``numpy.random.default_rng(seed)``) and decoded. Stops after
        ``eos_token_id`` (yielded) or when the cache is full. The same seed gives the same tokens.
        """
        cfg = SamplingConfig(temperature, top_k, top_p)
        rng = np.random.default_rng(seed)
        prompt = np.asarray(prompt, dtype=np.int64).reshape(-1)
        if prompt.size == 0:
            raise ValueError("generate needs a non-empty prompt (e.g. the BOS/EOS token id)")
        self.reset()
        logits = self.prefill(prompt)
        for i in range(max_new_tokens):
            token = sample_token(logits, cfg, rng)
            yield token
            if token == eos_token_id or i + 1 == max_new_tokens or self.pos >= self.max_seq_len:
                return
            logits = self.decode(token)
