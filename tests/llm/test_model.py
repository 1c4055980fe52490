"""BitNet b1.58 decoder: BitLinear everywhere, shapes, causality, RoPE, generation, sizes."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from onebit.errors import ShapeError
from onebit.llm import model as model_mod
from onebit.llm.config import PAPER_SIZES, PRESETS, LMConfig, count_parameters, get_config
from onebit.llm.model import BitNetLM, apply_rope, rope_tables, sample_next
from onebit.nn.bitlinear import BitLinear

torch.set_num_threads(1)

SMALL = LMConfig(vocab_size=97, hidden_size=32, num_layers=2, num_heads=4,
                 intermediate_size=40, max_seq_len=24)
VARIANTS = [
    SMALL,
    SMALL.replace(num_kv_heads=2, tie_embeddings=True),
    SMALL.replace(hidden_act="relu2", sub_norm=True, num_kv_heads=1, num_layers=3),
    SMALL.replace(hidden_size=36, num_heads=2, intermediate_size=50),
]


def _build(config, seed=0):
    torch.manual_seed(seed)
    return BitNetLM(config)


@pytest.mark.parametrize("config", VARIANTS)
def test_bitlinear_in_every_projection_and_nowhere_else(config):
    ternary = _build(config)
    linears = [n for n, m in ternary.named_modules() if type(m) is nn.Linear]
    bit = [n for n, m in ternary.named_modules() if isinstance(m, BitLinear)]
    assert linears == ["lm_head"]                     # only the head is full precision
    assert len(bit) == 7 * config.num_layers          # q k v o gate up down per block
    assert all(n.rsplit(".", 1)[-1] in {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                        "up_proj", "down_proj"} for n in bit)
    assert all(m.kernel_precision == 1.58 and m.input_precision == 8 and m.bias is None
               for m in ternary.modules() if isinstance(m, BitLinear))
    assert isinstance(ternary.embed_tokens, nn.Embedding)

    twin = _build(config.replace(full_precision=True))
    assert not any(isinstance(m, BitLinear) for m in twin.modules())
    assert sum(type(m) is nn.Linear for m in twin.modules()) == 7 * config.num_layers + 1
    # same parameter names, shapes and (same seed) values: the twin differs only in the layers
    s1, s2 = ternary.state_dict(), twin.state_dict()
    assert list(s1) == list(s2)
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not any(getattr(m, "bias", None) is not None for m in twin.modules()
                   if isinstance(m, nn.Linear))


@pytest.mark.parametrize("config", VARIANTS)
@pytest.mark.parametrize("full_precision", [False, True])
def test_count_parameters_matches_built_model(config, full_precision):
    config = config.replace(full_precision=full_precision)
    model = _build(config)
    counts = count_parameters(config)
    assert counts["total"] == sum(p.numel() for p in model.parameters())   # tied counted once
    bit_weights = sum(m.weight.numel() for m in model.modules()
                      if isinstance(m, (BitLinear, nn.Linear)) and m is not model.lm_head)
    assert counts["projection"] == bit_weights
    head = 0 if config.tie_embeddings else config.vocab_size * config.hidden_size
    assert counts["head"] == head


def test_paper_shapes_parameter_counts_without_allocating():
    # Independent closed forms: 4 C^2 attention + 3 C F SwiGLU + 2 C norms per layer, V C tied
    # embedding, C final norm (LLaMA-style, MHA).
    def closed(c, f, layers, v=32002):
        return layers * (4 * c * c + 3 * c * f + 2 * c) + v * c + c

    expected = {"b158-700m": closed(1536, 4096, 24), "b158-1.3b": closed(2048, 5460, 24),
                "b158-3b": closed(3200, 8640, 26), "b158-3.9b": closed(3200, 11008, 26)}
    for name, value in expected.items():
        total = count_parameters(PRESETS[name])["total"]
        assert total == value
        # within 11 % of the size the paper names (Table 1: 700M, 1.3B, 3B, 3.9B)
        assert abs(total / PAPER_SIZES[name] - 1) < 0.11, (name, total)
    # Hugging Face lists 1bitLLM/bitnet_b1_58-3B at 3.32 B parameters
    assert abs(count_parameters(PRESETS["b158-3b"])["total"] / 3.32e9 - 1) < 0.002
    assert count_parameters(PRESETS["b158-700m"])["total"] == 728_707_584


def test_config_module_imports_without_torch():
    code = ("import sys, onebit.llm.config as c; c.count_parameters(c.get_config('b158-3b')); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shapes_narrated_and_observed():
    config = VARIANTS[2]            # GQA (Hkv=1), sub-norms, relu2
    model = _build(config)
    B, T, C, H, D = 2, 7, config.hidden_size, config.num_heads, config.head_dim
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, tuple(output.shape))   # returns None: output unchanged
        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n]
    logits = model(torch.randint(0, config.vocab_size, (B, T)))
    for h in hooks:
        h.remove()
    assert logits.shape == (B, T, config.vocab_size)
    assert seen["embed_tokens"] == (B, T, C)
    assert seen["layers.0.self_attn.q_proj"] == (B, T, H * D)
    assert seen["layers.0.self_attn.k_proj"] == (B, T, config.kv_heads * D)
    assert seen["layers.0.self_attn.attn_sub_norm"] == (B, T, C)
    assert seen["layers.0.mlp.gate_proj"] == (B, T, config.intermediate_size)
    assert seen["layers.0.mlp.ffn_sub_norm"] == (B, T, config.intermediate_size)
    assert seen["layers.2"] == (B, T, C)
    source = inspect.getsource(model_mod)
    for comment in ("# (B, T, C)", "# (B, H, T, D)", "# (B, Hkv, T, D)", "# (B, T, F)",
                    "# (B, T, V)"):
        assert comment in source


@pytest.mark.parametrize("full_precision", [False, True])
def test_causal_future_tokens_do_not_change_past_logits(full_precision):
    config = VARIANTS[1].replace(full_precision=full_precision)
    model = _build(config).eval()
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, config.vocab_size, (2, 20), generator=g)
    b = a.clone()
    b[:, 12:] = torch.randint(0, config.vocab_size, (2, 8), generator=g)
    with torch.no_grad():
        la, lb, prefix = model(a), model(b), model(a[:, :12])
    torch.testing.assert_close(la[:, :12], lb[:, :12], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(la[:, :12], prefix, rtol=1e-5, atol=1e-5)
    assert (la[:, 12:] - lb[:, 12:]).abs().max() > 1e-3     # the future did change


def test_rope_matches_direct_rotation_formula():
    D, T, theta = 8, 11, 10000.0
    cos, sin = rope_tables(D, T, theta)
    x = torch.randn(2, 3, T, D, dtype=torch.float64)
    y = apply_rope(x, cos.double(), sin.double())
    expected = torch.empty_like(x)
    for t in range(T):
        for j in range(D // 2):
            angle = t * theta ** (-2 * j / D)
            a, b = x[..., t, j], x[..., t, j + D // 2]
            expected[..., t, j] = a * math.cos(angle) - b * math.sin(angle)
            expected[..., t, j + D // 2] = a * math.sin(angle) + b * math.cos(angle)
    torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-6)   # tables are float32
    # relative-position property: <R_m q, R_n k> depends on m - n only
    q, k = torch.randn(D, dtype=torch.float64), torch.randn(D, dtype=torch.float64)
    rq = apply_rope(q.expand(1, 1, T, D), cos.double(), sin.double())[0, 0]
    rk = apply_rope(k.expand(1, 1, T, D), cos.double(), sin.double())[0, 0]
    torch.testing.assert_close(rq[7] @ rk[4], rq[5] @ rk[2], rtol=1e-5, atol=1e-6)
    assert torch.equal(apply_rope(x[..., :1, :], cos[:1].double(), sin[:1].double()), x[..., :1, :])


def test_gradients_reach_every_parameter_through_ste():
    model = _build(VARIANTS[2])
    x = torch.randint(0, 97, (2, 9))
    _, loss = model(x, x)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert math.isclose(loss.item(), math.log(97), rel_tol=0.05)   # near-uniform at init


def test_generate_greedy_and_sampling():
    model = _build(VARIANTS[0]).eval()
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out = model.generate(prompt, 6, temperature=0)
    assert out.shape == (2, 9) and torch.equal(out[:, :3], prompt)
    ids = prompt
    with torch.no_grad():
        for _ in range(6):    # greedy reference loop
            ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, ids)
    assert torch.equal(model.generate(prompt, 6, top_k=1), out)     # top-k 1 = greedy
    assert torch.equal(model.generate(prompt, 6, top_p=1e-6), out)  # nucleus of one = greedy
    s1 = model.generate(prompt, 6, temperature=1.0, generator=torch.Generator().manual_seed(5))
    s2 = model.generate(prompt, 6, temperature=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(s1, s2)
    # context longer than max_seq_len is cropped, not an error
    long = model.generate(torch.zeros(1, 24, dtype=torch.long), 3, temperature=0)
    assert long.shape == (1, 27)
    eos = int(out[0, 3])
    stopped = model.generate(prompt[:1], 6, temperature=0, eos_token_id=eos)
    assert stopped.shape == (1, 4) and int(stopped[0, -1]) == eos


def test_sample_next_support_of_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(4000, 4)
    g = torch.Generator().manual_seed(0)
    ids = sample_next(logits, top_k=2, generator=g)
    assert set(ids.flatten().tolist()) == {0, 1}
    ids = sample_next(logits, top_p=0.7, generator=g)          # 0.5 + 0.3 >= 0.7
    assert set(ids.flatten().tolist()) == {0, 1}
    frac0 = float((ids == 0).float().mean())
    assert abs(frac0 - 0.5 / 0.8) < 0.03                        # renormalised probabilities
    ids = sample_next(logits, generator=g)
    assert set(ids.flatten().tolist()) == {0, 1, 2, 3}


def test_errors_say_what_to_do():
    model = _build(SMALL)
    with pytest.raises(ShapeError, match="max_seq_len"):
        model(torch.zeros(1, 25, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"\(B, T\)"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="multiple of num_heads"):
        LMConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="even"):
        LMConfig(hidden_size=36, num_heads=4)
    with pytest.raises(ValueError, match="num_kv_heads"):
        LMConfig(hidden_size=32, num_heads=4, num_kv_heads=3)
    with pytest.raises(ValueError, match="unknown LM config"):
        get_config("b158-70b")
    assert LMConfig.from_dict(SMALL.to_dict()) == SMALL
