"""Read and write checkpoints in the Hugging Face BitNet layout (microsoft/bitnet-b1.58-2B-4T).

Layout implemented (taken from Hugging Face ``transformers``: ``integrations/bitnet.py``
``pack_weights`` / ``unpack_weights`` / ``AutoBitLinear``, ``models/bitnet/modular_bitnet.py``
and ``configuration_bitnet.py``; and the config.json of microsoft/bitnet-b1.58-2B-4T with
``"quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
"quantization_mode": "offline"}``):

- ``model.safetensors`` with, for each decoder layer ``i``, projection weights
  ``model.layers.{i}.self_attn.{q,k,v,o}_proj.weight`` and
  ``model.layers.{i}.mlp.{gate,up,down}_proj.weight`` as **uint8 of shape
  [ceil(out/4), in]**: the ternary code ``w in {-1, 0, +1}`` is stored as ``w + 1`` in a
  2-bit field; rows are split into four blocks of ``R = ceil(out/4)`` rows and output row
  ``j*R + r`` lives in bits ``2j, 2j+1`` of packed row ``r`` (block 0 in the lowest bits);
  plus ``...weight_scale``: one float per tensor (shape [1]; bfloat16 in Microsoft's file).
  The projection computes ``y = (W~ x^) * weight_scale`` (``AutoBitLinear`` offline mode:
  ``output * self.weight_scale``), so ``weight_scale`` is the absmean ``gamma`` of eq. 3.
- full-precision tensors: ``model.embed_tokens.weight``, ``model.norm.weight``,
  ``model.layers.{i}.{input_layernorm,post_attention_layernorm}.weight``,
  ``model.layers.{i}.self_attn.attn_sub_norm.weight`` and ``...mlp.ffn_sub_norm.weight``
  (BitNet 2B4T's "subln"), ``lm_head.weight`` unless ``tie_word_embeddings``.
- ``config.json`` (``BitNetConfig`` keys: hidden_size, intermediate_size, num_hidden_layers,
  num_attention_heads, num_key_value_heads, hidden_act, rms_norm_eps, rope_theta,
  max_position_embeddings, vocab_size, tie_word_embeddings, bos/eos ids) and
  ``tokenizer.json`` (Hugging Face ``tokenizers`` format).

Transformers' ``BitNetForCausalLM`` always has the sub-norms; a model built with
``sub_norm=False`` (the b1.58 paper's LLaMA-like block) is written with the extra config key
``"onebit_sub_norm": false`` that only onebit reads. ``hidden_act`` is ``"relu2"`` (2B4T) or
``"silu"`` (SwiGLU).

Loading for fine-tuning: a BitLinear keeps a latent float weight and re-quantizes it each
forward (``gamma' = mean|W|``, ``codes = RoundClip(W/(gamma'+eps))``). Latent weights
``W = codes * c`` with ``c = gamma * n / nnz(codes)`` quantize back to exactly the stored codes
and to ``gamma' = gamma``; :func:`latent_from_ternary` nudges ``c`` by float32 ulps until
``mean|W|`` equals ``gamma`` bit for bit, so the loaded model's outputs equal those of the
model that wrote the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from onebit.errors import OnebitError
from onebit.llm.config import LMConfig
from onebit.llm.model import BitNetLM
from onebit.nn.bitlinear import BitLinear
from onebit.quantizers import absmean_ternary_codes

__all__ = [
    "HFCheckpointError",
    "pack_ternary",
    "unpack_ternary",
    "latent_from_ternary",
    "config_to_hf",
    "config_from_hf",
    "save_hf_checkpoint",
    "load_hf_checkpoint",
]

VALUES_PER_BYTE = 4
_PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
_QUANT_CONFIG = {"quant_method": "bitnet", "linear_class": "autobitlinear",
                 "quantization_mode": "offline"}


class HFCheckpointError(OnebitError, ValueError):
    """A Hugging Face BitNet checkpoint is missing a file/tensor or has a wrong shape/dtype."""


# ---------------------------------------------------------------------------------------------
# 2-bit row-block packing (transformers' pack_weights / unpack_weights)
# ---------------------------------------------------------------------------------------------


def pack_ternary(codes: torch.Tensor) -> torch.Tensor:
    """Pack ternary codes ``[out, in]`` (values -1/0/+1) into uint8 ``[ceil(out/4), in]``.

    ``packed[r] |= (codes[j*R + r] + 1) << 2j`` for blocks ``j = 0..3``, ``R = ceil(out/4)``;
    rows past ``out`` in the last block stay 0 (field value 0, i.e. code -1, cut off on unpack).
    """
    if codes.dim() != 2:
        raise HFCheckpointError(f"pack_ternary expects a 2-D [out, in] tensor, got shape "
                                f"{tuple(codes.shape)}")
    if codes.numel() and (codes.min() < -1 or codes.max() > 1):
        raise HFCheckpointError("pack_ternary expects values in {-1, 0, 1}, got range "
                                f"[{int(codes.min())}, {int(codes.max())}]")
    out_features = codes.shape[0]
    rows = -(-out_features // VALUES_PER_BYTE)
    fields = (codes.to(torch.int16) + 1).to(torch.uint8)
    packed = torch.zeros((rows, codes.shape[1]), dtype=torch.uint8)
    for j in range(VALUES_PER_BYTE):
        block = fields[j * rows:(j + 1) * rows]
        packed[:block.shape[0]] |= block << (2 * j)
    return packed


def unpack_ternary(packed: torch.Tensor, out_features: int | None = None) -> torch.Tensor:
    """Inverse of :func:`pack_ternary`: int8 codes ``[out_features, in]`` (default ``4 * rows``).

    Row ``j*R + r`` = ``((packed[r] >> 2j) & 3) - 1``. A field value 3 (unused by the format)
    raises HFCheckpointError.
    """
    if packed.dtype != torch.uint8 or packed.dim() != 2:
        raise HFCheckpointError(f"packed ternary weights must be 2-D uint8, got {packed.dtype} "
                                f"of shape {tuple(packed.shape)}")
    rows = packed.shape[0]
    out_features = rows * VALUES_PER_BYTE if out_features is None else int(out_features)
    if not (rows - 1) * VALUES_PER_BYTE < out_features <= rows * VALUES_PER_BYTE:
        raise HFCheckpointError(f"{rows} packed rows hold {rows * 4 - 3}..{rows * 4} output rows, "
                                f"but {out_features} were expected")
    blocks = [(packed >> (2 * j)) & 3 for j in range(VALUES_PER_BYTE)]
    fields = torch.cat(blocks, dim=0)[:out_features]
    if bool((fields == 3).any()):
        raise HFCheckpointError("packed ternary weights contain the unused 2-bit value 3; "
                                "expected only 0, 1, 2 (codes -1, 0, +1)")
    return fields.to(torch.int8) - 1


def latent_from_ternary(codes: torch.Tensor, gamma: float | torch.Tensor,
                        dtype: torch.dtype = torch.float32,
                        exact_limit: int = 1 << 22) -> torch.Tensor:
    """Latent weight ``W`` whose absmean quantization is exactly ``(codes, gamma)``.

    ``W = codes * c`` has ``mean|W| = c * nnz / n``; ``c = gamma * n / nnz`` solves it in exact
    arithmetic, but the float32 reduction that
    :func:`onebit.quantizers.absmean_ternary_codes` runs (``W.abs().mean()``) rounds. Steps:

    1. ``c`` from the formula, corrected three times by ``c *= gamma / mean|codes * c|``;
    2. the first ``m`` non-zero entries raised to the next float ``c+`` (one ulp), ``m`` by
       bisection -- lands within about one ulp of ``gamma``;
    3. one non-zero entry bisected over its float bit patterns in ``[0.55 c, 16 c]`` (the
       float sum is monotone in each addend) until ``mean|W| == gamma`` bit for bit. An add of
       the reduction tree may round half to even, so one addend alone can step the sum by two
       ulps and skip ``gamma``: then other entries are tried, and then all entries get a tiny
       seeded jitter (relative 5e-4, rescaled to the mean) that re-draws every partial sum's
       rounding, up to five times.

    Every non-zero entry stays above ``gamma / 2`` in magnitude, so ``RoundClip(W / (gamma +
    eps))`` returns ``codes`` whenever ``gamma >> eps``. A ``gamma`` that came out of this
    float32 mean (a checkpoint onebit wrote) is always reachable in practice; an arbitrary one
    (e.g. Microsoft's bfloat16-rounded scales) may fall between two achievable float32 means,
    and then the closest ``W`` is returned (``gamma`` off by one or two float32 ulps, relative
    ~1e-7, far below bfloat16's own rounding).
    Tensors with more than ``exact_limit`` entries (2B-scale checkpoints: 17.7 M per FFN
    matrix, ~10 s per search) get step 1 only: codes exact, ``gamma`` within a few float32
    ulps (relative error ~1e-7).
    """
    codes_f = codes.to(dtype)
    target = torch.as_tensor(gamma, dtype=dtype)
    nnz = int((codes != 0).sum())
    if nnz == 0:
        return torch.zeros_like(codes_f)
    inf = torch.tensor(float("inf"), dtype=dtype)

    def error(w: torch.Tensor) -> float:
        return float((w.abs().mean().double() - target.double()).abs())

    c = (target.double() * codes.numel() / nnz).to(dtype)
    for _ in range(3):
        c = (c.double() * target.double() / (codes_f * c).abs().mean().double()).to(dtype)
    if codes.numel() > exact_limit or (codes_f * c).abs().mean() == target:
        return codes_f * c
    flat = codes_f.flatten()
    nonzero = torch.nonzero(flat).flatten()
    c_up = torch.nextafter(c, inf)

    def bumped(m: int) -> torch.Tensor:
        w = flat * c
        w[nonzero[:m]] = flat[nonzero[:m]] * c_up
        return w

    lo, hi = 0, nnz
    best = bumped(0)
    while hi - lo > 1:                                 # step 2
        mid = (lo + hi) // 2
        w = bumped(mid)
        mean = w.abs().mean()
        if mean == target:
            return w.view_as(codes_f)
        if error(w) < error(best):
            best = w
        lo, hi = (mid, hi) if mean < target else (lo, mid)

    as_int = {torch.float32: torch.int32, torch.float64: torch.int64}[dtype]
    k = nonzero.numel()
    positions = sorted({k - 1, k - 2, k // 2, k // 3, 0} & set(range(k)), reverse=True)
    generator = torch.Generator().manual_seed(0)
    for attempt in range(6):                           # step 3
        start = best
        if attempt:   # re-draw every partial sum's rounding: tiny seeded jitter, rescaled
            jitter = 1 + (torch.rand(flat.shape, generator=generator, dtype=dtype) - 0.5) * 1e-3
            start = flat * c * jitter
            start = start * (target.double() / start.abs().mean().double()).to(dtype)
        for position in positions:
            free = int(nonzero[position])

            def with_free(bits: int) -> torch.Tensor:
                w = start.clone()
                w[free] = flat[free] * torch.tensor(bits, dtype=as_int).view(dtype)
                return w

            lo_bits = int((c * 0.55).view(as_int))
            hi_bits = int((c * 16).view(as_int))
            if not with_free(lo_bits).abs().mean() < target <= with_free(hi_bits).abs().mean():
                continue
            while hi_bits - lo_bits > 1:               # invariant: mean(lo) < gamma <= mean(hi)
                mid = (lo_bits + hi_bits) // 2
                if with_free(mid).abs().mean() < target:
                    lo_bits = mid
                else:
                    hi_bits = mid
            w = with_free(hi_bits)
            if w.abs().mean() == target:
                return w.view_as(codes_f)
            if error(w) < error(best):
                best = w
    return best.view_as(codes_f)


# ---------------------------------------------------------------------------------------------
# config.json
# ---------------------------------------------------------------------------------------------


def config_to_hf(config: LMConfig) -> dict[str, Any]:
    """``config.json`` dict in Hugging Face ``BitNetConfig`` form for ``config``."""
    d = {
        "architectures": ["BitNetForCausalLM"],
        "model_type": "bitnet",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.kv_heads,
        "hidden_act": config.hidden_act,
        "max_position_embeddings": config.max_seq_len,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,
        "tie_word_embeddings": config.tie_embeddings,
        "attention_bias": False,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "torch_dtype": "float32",
        "quantization_config": dict(_QUANT_CONFIG),
    }
    if not config.sub_norm:
        d["onebit_sub_norm"] = False
    return d


def config_from_hf(d: dict[str, Any]) -> LMConfig:
    """:class:`LMConfig` from a Hugging Face BitNet ``config.json`` dict.

    Missing optional keys take ``BitNetConfig``'s defaults (hidden_act relu2, rope_theta 5e5,
    rms_norm_eps 1e-5, max_position_embeddings 2048, no tying); required: vocab_size,
    hidden_size, intermediate_size, num_hidden_layers, num_attention_heads.
    """
    required = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads")
    missing = [k for k in required if k not in d]
    if missing:
        raise HFCheckpointError(f"config.json lacks {missing}; expected a Hugging Face "
                                "BitNetConfig (model_type 'bitnet')")
    if d.get("attention_bias"):
        raise HFCheckpointError("config.json has attention_bias=true; BitNet b1.58 has no "
                                "biases and onebit's model supports none")
    eos = d.get("eos_token_id")
    bos = d.get("bos_token_id")
    return LMConfig(
        vocab_size=int(d["vocab_size"]), hidden_size=int(d["hidden_size"]),
        intermediate_size=int(d["intermediate_size"]), num_layers=int(d["num_hidden_layers"]),
        num_heads=int(d["num_attention_heads"]),
        num_kv_heads=(None if d.get("num_key_value_heads") in (None, d["num_attention_heads"])
                      else int(d["num_key_value_heads"])),
        hidden_act=str(d.get("hidden_act", "relu2")),
        max_seq_len=int(d.get("max_position_embeddings", 2048)),
        rms_norm_eps=float(d.get("rms_norm_eps", 1e-5)),
        rope_theta=float(d.get("rope_theta", 500000.0)),
        tie_embeddings=bool(d.get("tie_word_embeddings", False)),
        sub_norm=bool(d.get("onebit_sub_norm", True)),
        bos_token_id=bos if isinstance(bos, int) else None,
        eos_token_id=eos if isinstance(eos, int) else None,
        name="hf")


# ---------------------------------------------------------------------------------------------
# Save / load
# ---------------------------------------------------------------------------------------------


def save_hf_checkpoint(model: BitNetLM, out_dir: str | os.PathLike, *, tokenizer=None,
                       scale_dtype: torch.dtype = torch.float32,
                       float_dtype: torch.dtype = torch.float32) -> Path:
    """Write ``model`` (b1.58 mode) as ``out_dir/{model.safetensors, config.json[,
    tokenizer.json]}`` in the Hugging Face BitNet layout (module docstring).

    Ternary codes and ``gamma`` come from :func:`onebit.quantizers.absmean_ternary_codes`, the
    function the BitLinear forward uses. ``scale_dtype=torch.bfloat16`` and
    ``float_dtype=torch.bfloat16`` reproduce Microsoft's dtypes (lossy); the float32 defaults
    keep the round trip exact. Raises HFCheckpointError for a full-precision model.
    """
    from safetensors.torch import save_file

    config = model.config
    if config.full_precision:
        raise HFCheckpointError("the Hugging Face BitNet layout stores ternary projections; got "
                                "a full-precision model (config.full_precision=True)")
    tensors: dict[str, torch.Tensor] = {}
    for name, param in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_embeddings:
            continue
        module_name = name.rsplit(".", 1)[0]
        module = model.get_submodule(module_name)
        key = name if name.startswith("lm_head.") else f"model.{name}"
        if isinstance(module, BitLinear):
            codes, gamma = absmean_ternary_codes(param.detach().float(), module.eps)
            tensors[key] = pack_ternary(codes)
            tensors[f"{key}_scale"] = gamma.reshape(1).to(scale_dtype)
        else:
            tensors[key] = param.detach().to(float_dtype).contiguous()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config_to_hf(config), indent=2) + "\n")
    if tokenizer is not None:
        tokenizer.save(out / "tokenizer.json")
    return out


def _expect(tensors, key: str, shape: tuple[int, ...], path: Path) -> torch.Tensor:
    if key not in tensors:
        raise HFCheckpointError(f"{path}: tensor {key!r} is missing (expected shape {shape})")
    t = tensors[key]
    if tuple(t.shape) != shape:
        raise HFCheckpointError(f"{path}: tensor {key!r} has shape {tuple(t.shape)}, expected "
                                f"{shape} from config.json")
    return t


def load_hf_checkpoint(path: str | os.PathLike, *, with_tokenizer: bool = False):
    """Build a b1.58 :class:`BitNetLM` from a Hugging Face BitNet checkpoint folder.

    Reads ``config.json`` and ``model.safetensors``; unpacks each projection to ternary codes
    and gives its BitLinear the latent weight :func:`latent_from_ternary` (codes, scale), so
    the model trains (fine-tunes) from exactly the checkpoint's ternary weights. Float tensors
    (bfloat16 allowed) become float32. With ``with_tokenizer=True`` returns ``(model,
    tokenizer)`` (tokenizer None when the folder has no tokenizer.json).

    Raises HFCheckpointError naming the missing file, tensor, or the shape found vs expected.
    """
    from safetensors.torch import load_file

    folder = Path(path)
    cfg_path, st_path = folder / "config.json", folder / "model.safetensors"
    for p in (cfg_path, st_path):
        if not p.is_file():
            raise HFCheckpointError(f"{p} is missing; expected a Hugging Face BitNet checkpoint "
                                    "folder with config.json and model.safetensors")
    config = config_from_hf(json.loads(cfg_path.read_text()))
    tensors = load_file(str(st_path))
    model = BitNetLM(config)
    used = set()
    state: dict[str, torch.Tensor] = {}
    for name, param in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_embeddings:
            continue
        key = name if name.startswith("lm_head.") else f"model.{name}"
        module = model.get_submodule(name.rsplit(".", 1)[0])
        if isinstance(module, BitLinear):
            out_f, in_f = param.shape
            packed = _expect(tensors, key, (-(-out_f // VALUES_PER_BYTE), in_f), st_path)
            scale = tensors.get(f"{key}_scale")
            if scale is None or scale.numel() != 1:
                raise HFCheckpointError(f"{st_path}: {key}_scale must be one float, found "
                                        f"{None if scale is None else tuple(scale.shape)}")
            codes = unpack_ternary(packed, out_f)
            state[name] = latent_from_ternary(codes, scale.float().reshape(()))
            used.update({key, f"{key}_scale"})
        else:
            state[name] = _expect(tensors, key, tuple(param.shape), st_path).float()
            used.add(key)
    if config.tie_embeddings:
        state["lm_head.weight"] = state["embed_tokens.weight"]
    unexpected = sorted(set(tensors) - used)
    if unexpected:
        raise HFCheckpointError(f"{st_path}: unexpected tensors {unexpected[:8]} for a "
                                f"{config.num_layers}-layer model from config.json")
    model.load_state_dict(state)
    if not with_tokenizer:
        return model
    tokenizer = None
    if (folder / "tokenizer.json").is_file():
        from onebit.llm.tokenizer import Tokenizer

        tokenizer = Tokenizer.load(folder / "tokenizer.json")
    return model, tokenizer
