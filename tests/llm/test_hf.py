"""Hugging Face BitNet layout: 2-bit row-block packing, synthetic checkpoint round trips."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from onebit.llm.config import LMConfig, count_parameters
from onebit.llm.hf import (HFCheckpointError, config_from_hf, latent_from_ternary,
                           load_hf_checkpoint, pack_ternary, save_hf_checkpoint, unpack_ternary)
from onebit.llm.model import BitNetLM
from onebit.nn.bitlinear import BitLinear
from onebit.quantizers import absmean_ternary_codes

torch.set_num_threads(1)

# paper-style block (SwiGLU, no sub-norm, untied) and BitNet-2B4T-style block (ReLU², sub-norms,
# grouped-query attention, tied embeddings); widths not divisible by 4 hit the padded last block
PAPER_STYLE = LMConfig(vocab_size=90, hidden_size=36, num_layers=2, num_heads=2,
                       intermediate_size=50, max_seq_len=32)
B2B4T_STYLE = LMConfig(vocab_size=90, hidden_size=40, num_layers=2, num_heads=4, num_kv_heads=1,
                       intermediate_size=54, max_seq_len=32, hidden_act="relu2", sub_norm=True,
                       tie_embeddings=True, rope_theta=500000.0)


def _trained_like(config, seed=0):
    """A model whose latent weights are not at their init (random perturbation)."""
    torch.manual_seed(seed)
    model = BitNetLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


@pytest.mark.parametrize("out_features", [1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 64, 65])
@pytest.mark.parametrize("in_features", [1, 3, 17])
def test_pack_unpack_round_trip(out_features, in_features):
    g = torch.Generator().manual_seed(out_features * 100 + in_features)
    codes = torch.randint(-1, 2, (out_features, in_features), generator=g).to(torch.int8)
    packed = pack_ternary(codes)
    rows = -(-out_features // 4)
    assert packed.dtype == torch.uint8 and packed.shape == (rows, in_features)
    assert torch.equal(unpack_ternary(packed, out_features), codes)
    # bit layout: output row j*R + r sits in bits 2j..2j+1 of packed row r, lowest bits first
    for row in range(out_features):
        j, r = divmod(row, rows)
        field = (packed[r].to(torch.int16) >> (2 * j)) & 3
        assert torch.equal(field - 1, codes[row].to(torch.int16))


def _transformers_pack_weights(quantized_weights):
    """transformers/integrations/bitnet.py ``pack_weights`` transcribed line by line (oracle)."""
    original_shape = quantized_weights.shape
    row_dim = (original_shape[0] + 4 - 1) // 4
    packed_tensor_shape = (row_dim, *original_shape[1:])
    quantized_weights = quantized_weights + 1
    packed = torch.zeros(packed_tensor_shape, dtype=torch.uint8)
    unpacked = quantized_weights.to(torch.uint8)
    it = min(4, (original_shape[0] // row_dim) + 1)
    for i in range(it):
        start = i * row_dim
        end = min(start + row_dim, original_shape[0])
        packed[: (end - start)] |= unpacked[start:end] << 2 * i
    return packed


@pytest.mark.parametrize("out_features", [4, 5, 6, 8, 12, 33, 64, 2560])
def test_pack_equals_transformers_pack_weights(out_features):
    g = torch.Generator().manual_seed(out_features)
    codes = torch.randint(-1, 2, (out_features, 7), generator=g).to(torch.int8)
    assert torch.equal(pack_ternary(codes), _transformers_pack_weights(codes))


def test_unpack_matches_transformers_docstring_example():
    # transformers/integrations/bitnet.py, unpack_weights docstring
    packed = torch.tensor([[0b10100001, 0b00011000], [0b10010000, 0b00001010]], dtype=torch.uint8)
    expected = torch.tensor([[0, -1], [-1, 1], [-1, 1], [-1, 1], [1, 0], [0, -1], [1, -1],
                             [1, -1]], dtype=torch.int8)
    assert torch.equal(unpack_ternary(packed), expected)
    assert torch.equal(pack_ternary(expected), packed)


def test_unpack_rejects_unused_field_and_bad_shapes():
    with pytest.raises(HFCheckpointError, match="unused 2-bit value 3"):
        unpack_ternary(torch.tensor([[0b11]], dtype=torch.uint8))
    with pytest.raises(HFCheckpointError, match="uint8"):
        unpack_ternary(torch.zeros(2, 2, dtype=torch.int8))
    with pytest.raises(HFCheckpointError, match="were expected"):
        unpack_ternary(torch.zeros(2, 3, dtype=torch.uint8), 9)
    with pytest.raises(HFCheckpointError, match=r"\{-1, 0, 1\}"):
        pack_ternary(torch.tensor([[2]]))


def test_latent_weights_requantize_to_the_same_codes_and_scale():
    g = torch.Generator().manual_seed(0)
    shapes = [(1, 1), (1, 3), (36, 36), (50, 36), (10, 54), (128, 64), (4, 100), (10, 270),
              (33, 244), (26, 180), (29, 112), (365, 289)]
    shapes += [tuple(torch.randint(1, 300, (2,), generator=g).tolist()) for _ in range(30)]
    for i, shape in enumerate(shapes):
        w = torch.randn(shape, generator=g) * (0.02, 1.0, 3e-3)[i % 3]
        codes, gamma = absmean_ternary_codes(w)
        latent = latent_from_ternary(codes, gamma)
        codes2, gamma2 = absmean_ternary_codes(latent)
        assert torch.equal(codes2, codes) and torch.equal(gamma2, gamma), shape
    assert torch.equal(latent_from_ternary(torch.zeros(3, 4, dtype=torch.int8), 0.5),
                       torch.zeros(3, 4))


@pytest.mark.parametrize("config", [PAPER_STYLE, B2B4T_STYLE], ids=["paper", "2b4t"])
def test_checkpoint_round_trip_identical_ternary_weights_and_outputs(tmp_path, config):
    source = _trained_like(config)
    save_hf_checkpoint(source, tmp_path)

    # the files are in the Hugging Face layout
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_type"] == "bitnet" and cfg["architectures"] == ["BitNetForCausalLM"]
    assert cfg["num_key_value_heads"] == config.kv_heads
    assert cfg["quantization_config"]["quantization_mode"] == "offline"
    assert cfg["tie_word_embeddings"] == config.tie_embeddings
    tensors = load_file(str(tmp_path / "model.safetensors"))
    q = tensors["model.layers.0.self_attn.q_proj.weight"]
    assert q.dtype == torch.uint8 and q.shape == (-(-config.hidden_size // 4), config.hidden_size)
    down = tensors["model.layers.1.mlp.down_proj.weight"]
    assert down.shape == (config.hidden_size // 4 + (config.hidden_size % 4 > 0),
                          config.intermediate_size)
    assert tensors["model.layers.1.mlp.down_proj.weight_scale"].shape == (1,)
    assert ("lm_head.weight" in tensors) == (not config.tie_embeddings)
    assert ("model.layers.0.mlp.ffn_sub_norm.weight" in tensors) == config.sub_norm

    loaded = load_hf_checkpoint(tmp_path)
    assert loaded.config.to_dict() | {"name": "x"} == source.config.to_dict() | {"name": "x"}
    pairs = [(n, m, loaded.get_submodule(n)) for n, m in source.named_modules()
             if isinstance(m, BitLinear)]
    assert len(pairs) == 7 * config.num_layers
    for name, a, b in pairs:
        ca, ga = absmean_ternary_codes(a.weight)
        cb, gb = absmean_ternary_codes(b.weight)
        assert torch.equal(ca, cb), name                      # identical ternary weights
        assert torch.equal(ga, gb), name                      # identical scale
        assert torch.equal(unpack_ternary(tensors[f"model.{name}.weight"], ca.shape[0]), ca)
    x = torch.randint(0, config.vocab_size, (3, 21), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(source(x), loaded(x))               # identical model outputs
    greedy = source.generate(x[:1, :4], 5, temperature=0)
    assert torch.equal(loaded.generate(x[:1, :4], 5, temperature=0), greedy)


def test_bfloat16_scales_like_microsoft_files(tmp_path):
    source = _trained_like(B2B4T_STYLE, seed=2)
    save_hf_checkpoint(source, tmp_path, scale_dtype=torch.bfloat16, float_dtype=torch.bfloat16)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    assert tensors["model.layers.0.self_attn.o_proj.weight_scale"].dtype == torch.bfloat16
    assert tensors["model.embed_tokens.weight"].dtype == torch.bfloat16
    loaded = load_hf_checkpoint(tmp_path)
    for name, module in source.named_modules():
        if isinstance(module, BitLinear):
            codes, gamma = absmean_ternary_codes(module.weight)
            codes2, gamma2 = absmean_ternary_codes(loaded.get_submodule(name).weight)
            assert torch.equal(codes, codes2)
            assert gamma2 == gamma.to(torch.bfloat16).float()   # the stored (rounded) scale
    x = torch.randint(0, 90, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0.05, atol=0.05)


def test_loaded_checkpoint_fine_tunes_and_carries_tokenizer(tmp_path):
    from onebit.llm.tokenizer import Tokenizer

    tok = Tokenizer.train(["the quick brown fox jumps over the lazy dog " * 50], vocab_size=270)
    source = _trained_like(PAPER_STYLE.replace(vocab_size=tok.vocab_size))
    save_hf_checkpoint(source, tmp_path, tokenizer=tok)
    model, tok2 = load_hf_checkpoint(tmp_path, with_tokenizer=True)
    assert tok2.encode("the lazy fox") == tok.encode("the lazy fox")
    x = torch.tensor([tok.encode("the quick brown fox jumps over")])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = model.layers[0].mlp.up_proj.weight.detach().clone()
    _, loss0 = model(x[:, :-1], x[:, 1:])
    loss0.backward()
    optimizer.step()
    assert not torch.equal(before, model.layers[0].mlp.up_proj.weight)
    with torch.no_grad():
        _, loss1 = model(x[:, :-1], x[:, 1:])
    assert loss1 < loss0


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(HFCheckpointError, match="config.json is missing|config.json"):
        load_hf_checkpoint(tmp_path)
    with pytest.raises(HFCheckpointError, match="full-precision"):
        save_hf_checkpoint(BitNetLM(PAPER_STYLE.replace(full_precision=True)), tmp_path)
    save_hf_checkpoint(_trained_like(PAPER_STYLE), tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    bad = dict(tensors)
    bad["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(8, 36, dtype=torch.uint8)
    save_file(bad, str(tmp_path / "model.safetensors"))
    with pytest.raises(HFCheckpointError, match=r"shape \(8, 36\), expected \(9, 36\)"):
        load_hf_checkpoint(tmp_path)
    del bad["model.layers.0.self_attn.k_proj.weight"]
    save_file(bad, str(tmp_path / "model.safetensors"))
    with pytest.raises(HFCheckpointError, match="k_proj.weight' is missing"):
        load_hf_checkpoint(tmp_path)


def test_microsoft_2b4t_config_maps_to_our_config():
    # config.json of microsoft/bitnet-b1.58-2B-4T (the fields onebit reads)
    hf = {"architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_act": "relu2",
          "hidden_size": 2560, "intermediate_size": 6912, "max_position_embeddings": 4096,
          "num_attention_heads": 20, "num_hidden_layers": 30, "num_key_value_heads": 5,
          "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": True,
          "vocab_size": 128256, "bos_token_id": 128000, "eos_token_id": 128001,
          "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                  "quantization_mode": "offline"}}
    config = config_from_hf(hf)
    assert (config.head_dim, config.kv_heads, config.sub_norm) == (128, 5, True)
    counts = count_parameters(config)
    per_layer = (2 * 2560 * 2560 + 2 * 2560 * 640 + 3 * 2560 * 6912) + (2 * 2560 + 2560 + 6912)
    assert counts["total"] == 30 * per_layer + 128256 * 2560 + 2560
    assert 2.40e9 < counts["total"] < 2.42e9                   # "2B" model, 2.41 B parameters


# ------------------------------------------------------------------------------------------
# An independent oracle: a checkpoint written without onebit's writer, run by a transcription
# of Hugging Face's BitNet forward (modular_bitnet.py + AutoBitLinear offline mode).
# ------------------------------------------------------------------------------------------


def _transformers_unpack_weights(packed):
    """transformers/integrations/bitnet.py ``unpack_weights`` transcribed (returns floats)."""
    rows = packed.shape[0]
    unpacked = torch.zeros((rows * 4, *packed.shape[1:]), dtype=torch.uint8)
    for i in range(4):
        unpacked[i * rows:(i + 1) * rows] = (packed & (3 << (2 * i))) >> (2 * i)
    return unpacked.float() - 1


def _hf_reference_logits(t, hf, ids):
    c, heads, kv = hf["hidden_size"], hf["num_attention_heads"], hf["num_key_value_heads"]
    d, eps = c // heads, hf["rms_norm_eps"]

    def rms(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def bitlinear(x, key):
        s = 127 / x.abs().max(dim=-1, keepdim=True).values.clamp(min=1e-5)   # ActQuant
        xq = (x * s).round().clamp(-128, 127) / s
        return torch.nn.functional.linear(xq, _transformers_unpack_weights(t[key + ".weight"])) \
            * t[key + ".weight_scale"].float()

    inv_freq = 1.0 / (hf["rope_theta"] ** (torch.arange(0, d, 2).float() / d))
    freqs = torch.outer(torch.arange(ids.shape[1]).float(), inv_freq)
    cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()

    def rotate_half(x):
        return torch.cat((-x[..., d // 2:], x[..., :d // 2]), dim=-1)

    B, T = ids.shape
    x = t["model.embed_tokens.weight"][ids]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for i in range(hf["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, t[p + "input_layernorm.weight"])
        q = bitlinear(h, p + "self_attn.q_proj").view(B, T, heads, d).transpose(1, 2)
        k = bitlinear(h, p + "self_attn.k_proj").view(B, T, kv, d).transpose(1, 2)
        v = bitlinear(h, p + "self_attn.v_proj").view(B, T, kv, d).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = (z[:, :, None].expand(B, kv, heads // kv, T, d).reshape(B, heads, T, d)
                for z in (k, v))                                               # repeat_kv
        att = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(d) + mask, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, c)
        x = x + bitlinear(rms(o, t[p + "self_attn.attn_sub_norm.weight"]), p + "self_attn.o_proj")
        h = rms(x, t[p + "post_attention_layernorm.weight"])
        m = torch.relu(bitlinear(h, p + "mlp.gate_proj")).square() * bitlinear(h, p + "mlp.up_proj")
        x = x + bitlinear(rms(m, t[p + "mlp.ffn_sub_norm.weight"]), p + "mlp.down_proj")
    return rms(x, t["model.norm.weight"]) @ t["model.embed_tokens.weight"].T   # tied head


def test_independently_written_checkpoint_matches_hf_reference_forward(tmp_path):
    hf = {"architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_act": "relu2",
          "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
          "rope_theta": 500000.0, "tie_word_embeddings": True, "vocab_size": 50,
          "max_position_embeddings": 64}
    g = torch.Generator().manual_seed(7)
    shapes = {"self_attn.q_proj": (32, 32), "self_attn.k_proj": (16, 32),
              "self_attn.v_proj": (16, 32), "self_attn.o_proj": (32, 32),
              "mlp.gate_proj": (48, 32), "mlp.up_proj": (48, 32), "mlp.down_proj": (32, 48)}
    t = {"model.embed_tokens.weight": torch.randn(50, 32, generator=g),
         "model.norm.weight": 1 + 0.1 * torch.randn(32, generator=g)}
    for i in range(2):
        p = f"model.layers.{i}."
        for name, n in (("input_layernorm", 32), ("post_attention_layernorm", 32),
                        ("self_attn.attn_sub_norm", 32), ("mlp.ffn_sub_norm", 48)):
            t[p + name + ".weight"] = 1 + 0.1 * torch.randn(n, generator=g)
        for name, shape in shapes.items():
            codes = torch.randint(-1, 2, shape, generator=g).to(torch.int8)
            t[p + name + ".weight"] = _transformers_pack_weights(codes)
            scale = torch.rand(1, generator=g) * 0.05 + 0.01
            t[p + name + ".weight_scale"] = scale.to(torch.bfloat16)     # as in Microsoft's file
    save_file(t, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(hf))

    model = load_hf_checkpoint(tmp_path)
    assert model.config.sub_norm and model.config.kv_heads == 2 and model.config.tie_embeddings
    for i in range(2):
        for name, shape in shapes.items():
            codes, gamma = absmean_ternary_codes(model.get_submodule(f"layers.{i}.{name}").weight)
            key = f"model.layers.{i}.{name}.weight"
            assert torch.equal(codes.float(), _transformers_unpack_weights(t[key]))
            # an arbitrary stored scale may fall between two float32 means; within 2 ulps
            scale = t[key + "_scale"][0].float()
            assert abs(float(gamma) - float(scale)) <= 2 * torch.finfo(torch.float32).eps * scale
    ids = torch.randint(0, 50, (2, 13), generator=g)
    with torch.no_grad():
        ours = model(ids)
    reference = _hf_reference_logits(t, hf, ids)
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)
    # writing it back (bfloat16 scales) reproduces the same packed bytes, scales and floats
    save_hf_checkpoint(model, tmp_path / "again", scale_dtype=torch.bfloat16)
    again = load_file(str(tmp_path / "again" / "model.safetensors"))
    for key, value in t.items():
        assert torch.equal(again[key], value), key
