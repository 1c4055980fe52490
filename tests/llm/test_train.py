"""LM training: schedule, evaluation, exact resume, learning, command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from onebit.errors import OnebitError
from onebit.llm.config import LMConfig
from onebit.llm.model import BitNetLM
from onebit.llm.train import (CHECKPOINT, RandomWindows, TrainConfig, build_parser, evaluate,
                              lr_at, main, run, train_lm)

torch.set_num_threads(1)

CFG = LMConfig(vocab_size=64, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=48,
               max_seq_len=32)


def _tokens(n=4000, seed=0):
    # a learnable stream: a repeated random "sentence" of 37 tokens with 10 % noise
    rng = np.random.default_rng(seed)
    base = np.tile(rng.integers(0, 64, 37), n // 37 + 1)[:n]
    noise = rng.random(n) < 0.1
    base[noise] = rng.integers(0, 64, noise.sum())
    return base.astype(np.uint16)


def _model(full_precision=False, seed=0):
    torch.manual_seed(seed)
    return BitNetLM(CFG.replace(full_precision=full_precision))


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(steps=110, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(1e-4 + 0.9e-3 * 0.5)       # half way: cos = 0
    assert lr_at(110, cfg) == pytest.approx(1e-4) and lr_at(500, cfg) == pytest.approx(1e-4)
    values = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_random_windows_shift_and_state():
    tokens = np.arange(100, dtype=np.uint16)
    s = RandomWindows(tokens, batch_size=4, seq_len=8, seed=1)
    x, y = s.next()
    assert x.shape == (4, 8) and torch.equal(y, x + 1)        # y is x shifted by one token
    state = s.state_dict()
    a = s.next()
    s.load_state_dict(state)
    assert all(torch.equal(u, v) for u, v in zip(a, s.next()))
    with pytest.raises(OnebitError, match="longer than seq_len"):
        RandomWindows(tokens[:9], 2, 8)


def test_evaluate_uniform_model_has_perplexity_vocab_size():
    model = _model(full_precision=True)
    with torch.no_grad():
        model.lm_head.weight.zero_()                            # logits all 0: uniform
    result = evaluate(model, _tokens(1000), seq_len=16, batch_size=4, max_batches=3)
    assert result["loss"] == pytest.approx(math.log(64), rel=1e-6)
    assert result["ppl"] == pytest.approx(64, rel=1e-5)
    assert result["tokens"] == 3 * 4 * 16
    full = evaluate(model, _tokens(1000), seq_len=16, batch_size=4)
    assert full["tokens"] == (1000 - 1) // 16 * 16


@pytest.mark.parametrize("full_precision", [False, True])
def test_exact_resume_equals_uninterrupted(tmp_path, full_precision):
    cfg = TrainConfig(steps=8, batch_size=4, seq_len=16, lr=3e-3, warmup_steps=2, eval_every=3,
                      eval_batches=2, checkpoint_every=100, seed=5)
    tokens, val = _tokens(), _tokens(600, seed=1)
    straight = _model(full_precision)
    r1 = train_lm(straight, tokens, val, cfg, out_dir=tmp_path / "a", progress=False)

    first = _model(full_precision)
    r_half = train_lm(first, tokens, val, cfg, out_dir=tmp_path / "b", stop_at=5,
                      progress=False)
    assert r_half["step"] == 5 and r_half["stopped"] == "stop_at"
    assert (tmp_path / "b" / CHECKPOINT).is_file()
    resumed = _model(full_precision, seed=123)                  # different init: all restored
    torch.manual_seed(999)                                       # global RNG restored too
    r2 = train_lm(resumed, tokens, val, cfg, out_dir=tmp_path / "b", progress=False)
    assert r2["step"] == 8 and r2["tokens_seen"] == r1["tokens_seen"] == 8 * 4 * 16
    for (name, p1), (_, p2) in zip(straight.named_parameters(), resumed.named_parameters()):
        assert torch.equal(p1, p2), name
    assert [h["val_loss"] for h in r1["history"]] == [h["val_loss"] for h in r2["history"]]
    assert r1["train_loss"] == r2["train_loss"]
    # resuming a finished run does nothing; another config is refused
    again = train_lm(resumed, tokens, val, cfg, out_dir=tmp_path / "b", progress=False)
    assert again["step"] == 8
    with pytest.raises(OnebitError, match="another training config"):
        train_lm(resumed, tokens, val, TrainConfig(steps=9, batch_size=4, seq_len=16),
                 out_dir=tmp_path / "b", progress=False)


@pytest.mark.parametrize("full_precision", [False, True])
def test_training_lowers_validation_loss(full_precision):
    model = _model(full_precision)
    val = _tokens(800, seed=0)[:800]
    before = evaluate(model, val, seq_len=16)["loss"]
    cfg = TrainConfig(steps=60, batch_size=8, seq_len=16, lr=5e-3, warmup_steps=5,
                      eval_every=0, checkpoint_every=0)
    result = train_lm(model, _tokens(), val, cfg, progress=False)
    assert result["val_loss"] < before - 1.0, (before, result["val_loss"])
    assert result["val_ppl"] == pytest.approx(math.exp(result["val_loss"]))


def test_command_line_trains_writes_and_resumes(tmp_path, capsys):
    corpus = tmp_path / "text.txt"
    corpus.write_text(("the cat sat on the mat and the dog sat on the log. " * 400))
    args = ["--corpus", str(corpus), "--config", "tiny-1m", "--vocab-size", "300",
            "--steps", "3", "--batch-size", "2", "--seq-len", "16", "--warmup", "1",
            "--eval-batches", "1", "--out", str(tmp_path / "run"), "--no-progress",
            "--hf-out", str(tmp_path / "hf")]
    metrics = run(build_parser().parse_args(args))
    from onebit.llm.tokenizer import Tokenizer

    vocab = Tokenizer.load(tmp_path / "run" / "tokenizer.json").vocab_size
    assert metrics["step"] == 3 and metrics["model_config"]["vocab_size"] == vocab <= 300
    assert math.isfinite(metrics["val_ppl"]) and metrics["tokens_seen"] == 3 * 2 * 16
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["val_ppl"] == metrics["val_ppl"]
    for name in ("checkpoint.pt", "tokenizer.json", "data/train.bin"):
        assert (tmp_path / "run" / name).is_file()
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    assert "b1.58 tiny-1m: val loss" in capsys.readouterr().out
    assert main(args) == 0                                   # resumes the finished run
    again = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert again["step"] == 3 and again["val_ppl"] == metrics["val_ppl"]
    twin = run(build_parser().parse_args(
        args[:-2] + ["--full-precision", "--out", str(tmp_path / "fp")]))
    assert twin["model_config"]["full_precision"] is True and twin["step"] == 3
