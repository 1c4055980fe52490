"""Pack a BitNet b1.58 language model into a ``.onebit`` file for the numpy engine.

Two sources, one file layout (:mod:`onebit.runtime.lm_graph`):

* :func:`export_onebit`: a trained :class:`~onebit.llm.model.BitNetLM` (PyTorch). Each
  BitLinear's integer codes and ``gamma`` come from
  :func:`onebit.quantizers.absmean_ternary_codes`, the function its forward uses, and are packed
  to tq2 (2 bits per weight, :func:`onebit.kernels.ternary.pack_ternary`); embedding, norms and
  head stay float32.
* :func:`hf_to_onebit`: a Hugging Face BitNet checkpoint folder (the layout of
  ``microsoft/bitnet-b1.58-2B-4T``, see :mod:`onebit.llm.hf` and docs/llm.md), converted with
  numpy only (no torch): the uint8 ``[ceil(out/4), in]`` row-block codes are unpacked, repacked
  to tq2, and ``weight_scale`` becomes ``w_scale``; bfloat16 tensors are widened to float32.

Both write ``tokenizer.json`` next to the model when a tokenizer is given / present.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from onebit.errors import OnebitError
from onebit.kernels.ternary import pack_ternary
from onebit.runtime.lm_graph import PROJECTIONS, LMSpec, write_lm

__all__ = ["spec_from_config", "export_onebit", "export_run", "hf_to_onebit", "read_safetensors"]


def spec_from_config(config: Any) -> LMSpec:
    """The inference hyper-parameters (:class:`~onebit.runtime.lm_graph.LMSpec`) of an
    :class:`~onebit.llm.config.LMConfig`."""
    return LMSpec.from_dict(config.to_dict())


def export_onebit(model, path: str | os.PathLike, *, tokenizer=None) -> Path:
    """Write a b1.58 :class:`~onebit.llm.model.BitNetLM` to ``path`` (``.onebit``).

    With ``tokenizer`` (a :class:`~onebit.llm.tokenizer.Tokenizer`) also writes
    ``tokenizer.json`` in the same folder, where ``onebit generate`` looks for it. Raises
    OnebitError for a full-precision twin (nothing to pack: its projections are not ternary).
    """
    import torch

    from onebit.converter.writer import make_provenance
    from onebit.quantizers import absmean_ternary_codes

    config = model.config
    if config.full_precision:
        raise OnebitError("export_onebit packs ternary projections; this model is the full-precision twin "
                          "(config.full_precision=True). Export a b1.58 model (BitLinear projections)")
    spec = spec_from_config(config)
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    tensors: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if name == "lm_head.weight" and spec.tie_embeddings:
            continue
        base = name.rsplit(".", 1)[0]
        if base.split(".", 2)[-1] in PROJECTIONS:
            module = model.get_submodule(base)
            codes, gamma = absmean_ternary_codes(value, getattr(module, "eps", config.quant_eps))
            tensors[name] = pack_ternary(codes.numpy(), float(gamma))[0]
            tensors[f"{base}.w_scale"] = np.array([float(gamma)], np.float32)
        else:
            tensors[name] = np.ascontiguousarray(value.numpy(), dtype=np.float32)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_lm(out, spec, tensors, provenance=make_provenance(
        f"{type(model).__module__}.{type(model).__qualname__}", torch_version=torch.__version__,
        config=config.name))
    if tokenizer is not None:
        tokenizer.save(out.parent / "tokenizer.json")
    return out


def export_run(run_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> Path:
    """Export the model of a ``onebit train-lm`` run folder (``checkpoint.pt`` written by
    :func:`onebit.llm.train.train_lm`, ``tokenizer.json``) to ``path`` (default
    ``RUN_DIR/model.onebit``), tokenizer next to it. Returns the path."""
    from onebit.llm.config import LMConfig
    from onebit.llm.model import BitNetLM
    from onebit.llm.train import CHECKPOINT
    from onebit.train.checkpoint import load_checkpoint

    run = Path(run_dir)
    state = load_checkpoint(run / CHECKPOINT)
    model = BitNetLM(LMConfig.from_dict(state["extra"]["model_config"]))
    model.load_state_dict(state["model"])
    tokenizer = None
    if (run / "tokenizer.json").is_file():
        from onebit.llm.tokenizer import Tokenizer

        tokenizer = Tokenizer.load(run / "tokenizer.json")
    return export_onebit(model.eval(), path if path is not None else run / "model.onebit", tokenizer=tokenizer)


# ---------------------------------------------------------------------------------------------
# Hugging Face BitNet checkpoints (numpy only)
# ---------------------------------------------------------------------------------------------

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "I8": np.int8, "I32": np.int32,
              "I64": np.int64, "F64": np.float64, "BF16": np.uint16}


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a safetensors file as numpy arrays, bfloat16 widened to float32 exactly
    (its 16 bits are the high half of a float32). Raises OnebitError for other dtypes."""
    data = Path(path).read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out: dict[str, np.ndarray] = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] not in _ST_DTYPES:
            raise OnebitError(f"{path}: tensor {name!r} has dtype {e['dtype']}; expected one of "
                              f"{sorted(_ST_DTYPES)}")
        a, b = e["data_offsets"]
        arr = np.frombuffer(data, dtype=_ST_DTYPES[e["dtype"]], count=(b - a) // np.dtype(
            _ST_DTYPES[e["dtype"]]).itemsize, offset=base + a).reshape(e["shape"])
        if e["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr
    return out


def _unpack_hf(packed: np.ndarray, out_features: int) -> np.ndarray:
    """HF row-block 2-bit codes ``uint8 [ceil(out/4), in]`` -> int8 ``(out, in)`` in {-1, 0, 1}:
    output row ``j R + r`` is bits ``2j..2j+1`` of packed row ``r`` (docs/llm.md)."""
    fields = np.stack([(packed >> (2 * j)) & 3 for j in range(4)])     # (4, R, in)
    codes = fields.reshape(-1, packed.shape[1])[:out_features].astype(np.int8) - 1
    if codes.size and codes.max() > 1:
        raise OnebitError("HF BitNet weights hold the 2-bit value 3, which is no ternary code (expected 0, 1, 2)")
    return codes


def hf_to_onebit(hf_dir: str | os.PathLike, path: str | os.PathLike, *, max_seq_len: int | None = None) -> Path:
    """Convert a Hugging Face BitNet checkpoint folder (config.json, model.safetensors
    [, tokenizer.json]) to ``path`` (``.onebit``) with numpy only.

    ReLU² gates, sub-norms and grouped-query attention carry over (the engine implements them).
    ``max_seq_len`` overrides the config's ``max_position_embeddings``. Raises
    :class:`onebit.llm.hf.HFCheckpointError` naming a missing/mis-shaped tensor.
    """
    from onebit.converter.writer import make_provenance
    from onebit.llm.hf import VALUES_PER_BYTE, HFCheckpointError, config_from_hf

    folder = Path(hf_dir)
    cfg_path, st_path = folder / "config.json", folder / "model.safetensors"
    for p in (cfg_path, st_path):
        if not p.is_file():
            raise HFCheckpointError(f"{p} is missing; expected a Hugging Face BitNet checkpoint folder with "
                                    "config.json and model.safetensors")
    config = config_from_hf(json.loads(cfg_path.read_text()))
    if max_seq_len is not None:
        config = config.replace(max_seq_len=int(max_seq_len))
    spec = spec_from_config(config)
    src = read_safetensors(st_path)
    used: set[str] = set()

    def take(key: str, shape: tuple[int, ...]) -> np.ndarray:
        if key not in src:
            raise HFCheckpointError(f"{st_path}: tensor {key!r} is missing (expected shape {shape})")
        if tuple(src[key].shape) != shape:
            raise HFCheckpointError(f"{st_path}: tensor {key!r} has shape {tuple(src[key].shape)}, expected "
                                    f"{shape} from config.json")
        used.add(key)
        return src[key]

    from onebit.runtime.lm_graph import _proj_shapes, lm_tensor_shapes

    proj_shapes = _proj_shapes(spec)
    tensors: dict[str, np.ndarray] = {}
    for name, (dtype, shape) in lm_tensor_shapes(spec).items():
        if name.endswith(".w_scale"):
            continue
        base = name.rsplit(".", 1)[0]
        proj = base.split(".", 2)[-1]
        key = name if name == "lm_head.weight" else f"model.{name}"
        if dtype == "uint8":
            n, k = proj_shapes[proj]
            codes = _unpack_hf(take(key, (-(-n // VALUES_PER_BYTE), k)), n)
            scale = take(f"{key}_scale", tuple(src.get(f"{key}_scale", np.zeros(1)).shape))
            if scale.size != 1:
                raise HFCheckpointError(f"{st_path}: {key}_scale must be one float, found shape {scale.shape}")
            gamma = float(scale.reshape(-1)[0])
            tensors[name] = pack_ternary(codes, gamma)[0]
            tensors[f"{base}.w_scale"] = np.array([gamma], np.float32)
        else:
            tensors[name] = np.ascontiguousarray(take(key, shape), dtype=np.float32)
    unexpected = sorted(set(src) - used)
    if unexpected:
        raise HFCheckpointError(f"{st_path}: unexpected tensors {unexpected[:8]} for a {config.num_layers}-layer "
                                "model from config.json")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_lm(out, spec, tensors, provenance=make_provenance("huggingface:BitNetForCausalLM",
                                                            checkpoint=str(folder.name)))
    if (folder / "tokenizer.json").is_file() and (folder / "tokenizer.json").resolve() != \
            (out.parent / "tokenizer.json").resolve():
        shutil.copyfile(folder / "tokenizer.json", out.parent / "tokenizer.json")
    return out
