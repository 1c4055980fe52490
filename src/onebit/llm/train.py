"""Train a BitNet b1.58 language model (or its full-precision twin) on a text corpus.

Recipe: AdamW (Loshchilov & Hutter 2019; betas 0.9/0.95 as LLaMA), linear warm-up then cosine
decay to ``min_lr_ratio * lr``, gradient-norm clipping, next-token cross-entropy on random
windows of the training tokens. Validation perplexity ``exp(mean NLL)`` over fixed,
non-overlapping windows of the held-out tokens. Progress bar (tqdm) with loss, learning rate
and tokens/s.

Checkpoints are written atomically with :func:`onebit.train.checkpoint.save_checkpoint`
(temporary file, fsync, ``os.replace``) and hold model, optimizer, sampler generator, RNG
states, step and history, so a resumed run continues bit for bit where the interrupted one
stopped (same parameters as an uninterrupted run).

Command line (``onebit train-lm``, :mod:`onebit.cli.train_lm`, or ``python -m onebit.llm.train``)::

    python -m onebit.llm.train --corpus web --config tiny-1m --steps 300 --out runs/b158
    python -m onebit.llm.train --corpus web --config tiny-1m --steps 300 --out runs/fp \\
        --full-precision
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from onebit.errors import OnebitError
from onebit.llm.config import LMConfig, get_config
from onebit.llm.train_args import DESCRIPTION, add_arguments
from onebit.llm.model import BitNetLM

__all__ = [
    "TrainConfig",
    "RandomWindows",
    "lr_at",
    "evaluate",
    "train_lm",
    "build_parser",
    "add_arguments",
    "main",
    "run",
]

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Optimisation settings (the model shape lives in :class:`~onebit.llm.config.LMConfig`).

    ``steps`` optimizer steps of ``batch_size`` windows of ``seq_len`` tokens; peak ``lr`` after
    ``warmup_steps``; cosine to ``min_lr_ratio * lr`` at ``steps``; ``weight_decay`` on every
    weight matrix (latent ternary weights included, as in the b1.58 recipe) and none on norms;
    ``grad_clip`` max global gradient norm (0 = off); evaluation every ``eval_every`` steps on
    ``eval_batches`` batches (the final one on the whole validation set); checkpoint every
    ``checkpoint_every`` steps (and at the end);
    ``time_budget`` seconds after which training stops early, checkpointed (None = no limit).
    """

    steps: int = 1000
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 1.5e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 200
    eval_batches: int = 16
    checkpoint_every: int = 200
    seed: int = 0
    time_budget: float | None = None

    def __post_init__(self):
        for name in ("steps", "batch_size", "seq_len"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")


class RandomWindows:
    """Random training windows ``(x, y)`` of ``seq_len`` tokens, ``y`` shifted by one.

    Start positions come from a seeded ``torch.Generator`` whose state is saved with
    ``state_dict`` so a resumed run draws the same batches as an uninterrupted one.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int = 0):
        if tokens.ndim != 1 or tokens.size < seq_len + 2:
            raise OnebitError(f"need a 1-D token array longer than seq_len + 1 = {seq_len + 1}, "
                              f"got shape {tokens.shape}; use more text or a shorter seq_len")
        self.tokens = torch.from_numpy(tokens.astype(np.int64))
        self.batch_size, self.seq_len = batch_size, seq_len
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``x, y`` of shape ``(batch_size, seq_len)`` (int64)."""
        high = self.tokens.numel() - self.seq_len - 1
        starts = torch.randint(0, high + 1, (self.batch_size,), generator=self.generator)
        offsets = starts[:, None] + torch.arange(self.seq_len + 1)        # (B, T+1)
        window = self.tokens[offsets]
        return window[:, :-1], window[:, 1:]

    def state_dict(self) -> dict[str, Any]:
        """The generator state (a uint8 tensor), for checkpoints."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generator state saved by :meth:`state_dict`."""
        self.generator.set_state(state["generator"])


def lr_at(step: int, cfg: TrainConfig) -> float:
    r"""Learning rate of optimizer step ``step`` (0-based): warm-up then cosine.

    ``lr * (step + 1) / W`` for ``step < W``; then with ``u = (step - W) / max(1, S - W)``
    clipped to [0, 1]: ``lr * (r + (1 - r) * (1 + cos(pi u)) / 2)``, ``r = min_lr_ratio``.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    u = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    r = cfg.min_lr_ratio
    return cfg.lr * (r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * u)))


@torch.no_grad()
def evaluate(model: BitNetLM, tokens: np.ndarray, *, seq_len: int, batch_size: int = 16,
             max_batches: int | None = None) -> dict[str, float]:
    """Mean next-token NLL and perplexity on non-overlapping windows of ``tokens``.

    Windows ``tokens[i*T : i*T + T + 1]``; with ``max_batches`` only ``max_batches *
    batch_size`` of them, evenly spaced over the array (deterministic). Returns ``{"loss",
    "ppl", "tokens"}`` with ``ppl = exp(loss)``.
    """
    n = (tokens.size - 1) // seq_len
    if n < 1:
        raise OnebitError(f"validation set of {tokens.size} tokens is shorter than one window of "
                          f"{seq_len + 1}; use a larger val_fraction or a shorter seq_len")
    ids = np.arange(n)
    if max_batches is not None and n > max_batches * batch_size:
        ids = np.linspace(0, n - 1, max_batches * batch_size).round().astype(np.int64)
    data = torch.from_numpy(tokens.astype(np.int64))
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, ids.size, batch_size):
        starts = torch.from_numpy(ids[i:i + batch_size] * seq_len)
        window = data[starts[:, None] + torch.arange(seq_len + 1)]
        logits = model(window[:, :-1])
        nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(),
                                                window[:, 1:].flatten(), reduction="sum")
        total += float(nll)
        count += window[:, 1:].numel()
    model.train(was_training)
    loss = total / count
    return {"loss": loss, "ppl": math.exp(loss), "tokens": count}


def _optimizer(model: BitNetLM, cfg: TrainConfig) -> torch.optim.AdamW:
    from onebit.optim.param_groups import param_groups

    groups = param_groups(model, weight_decay=cfg.weight_decay,
                          binary_weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def train_lm(model: BitNetLM, train_tokens: np.ndarray, val_tokens: np.ndarray,
             cfg: TrainConfig, *, out_dir: str | os.PathLike | None = None, resume: bool = True,
             stop_at: int | None = None, progress: bool = True,
             extra: dict[str, Any] | None = None,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``model`` for ``cfg.steps`` steps (from the checkpoint in ``out_dir`` if any).

    ``stop_at`` ends the run early after that many steps (checkpointed: the schedule still
    spans ``cfg.steps``), which is how an interruption is simulated. ``extra`` (plain values)
    is stored in the checkpoint. Returns ``{"step", "tokens_seen", "seconds", "train_loss",
    "val_loss", "val_ppl", "history", "stopped"}``; ``history`` lists every evaluation.
    """
    from tqdm.auto import tqdm

    from onebit.train.checkpoint import (load_checkpoint, make_state, restore_state,
                                         save_checkpoint)

    log = log or (lambda msg: None)
    optimizer = _optimizer(model, cfg)
    sampler = RandomWindows(train_tokens, cfg.batch_size, cfg.seq_len, seed=cfg.seed)
    step, history, seconds, tokens_seen = 0, [], 0.0, 0
    ckpt = Path(out_dir) / CHECKPOINT if out_dir is not None else None
    if ckpt is not None and resume and ckpt.is_file():
        state = load_checkpoint(ckpt)
        if state["extra"].get("train_config") != asdict(cfg):
            raise OnebitError(f"{ckpt} was written with another training config "
                              f"({state['extra'].get('train_config')}); use a new --out folder "
                              "or pass resume=False / --no-resume to start over")
        step = restore_state(state, model, optimizer, loader=sampler)["step"]
        history = list(state["extra"]["history"])
        seconds = float(state["extra"]["seconds"])
        tokens_seen = int(state["extra"]["tokens_seen"])
        log(f"resumed from {ckpt} at step {step}")

    def save() -> None:
        if ckpt is None:
            return
        payload = dict(extra or {})
        payload.update(train_config=asdict(cfg), model_config=model.config.to_dict(),
                       history=history, seconds=seconds, tokens_seen=tokens_seen)
        save_checkpoint(ckpt, make_state(model, optimizer, step=step, loader=sampler,
                                         extra=payload))

    def run_eval() -> dict[str, float]:
        # the last evaluation covers the whole validation set, the periodic ones a sample
        result = evaluate(model, val_tokens, seq_len=cfg.seq_len, batch_size=cfg.batch_size,
                          max_batches=None if step == cfg.steps else cfg.eval_batches)
        history.append({"step": step, "tokens_seen": tokens_seen, "seconds": round(seconds, 3),
                        "train_loss": train_loss, "val_loss": result["loss"],
                        "val_ppl": result["ppl"]})
        return result

    last = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    train_loss, stopped = float("nan"), "steps"
    model.train()
    t_start = time.perf_counter()
    seconds_at_start = seconds
    with tqdm(total=last, initial=step, desc="train-lm", disable=not progress,
              dynamic_ncols=True, mininterval=1.0) as bar:
        while step < last:
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = sampler.next()
            _, loss = model(x, y)
            if not torch.isfinite(loss):
                raise OnebitError(f"non-finite loss {loss.item()} at step {step}; lower --lr or "
                                  "raise --warmup")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            tokens_seen += x.numel()
            train_loss = loss.item()
            seconds = seconds_at_start + time.perf_counter() - t_start
            bar.update(1)
            bar.set_postfix(loss=f"{train_loss:.3f}", lr=f"{lr:.2e}",
                            tok_s=f"{tokens_seen / max(seconds, 1e-9):.0f}")
            over_time = cfg.time_budget is not None and seconds >= cfg.time_budget
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps or over_time:
                result = run_eval()
                log(f"step {step}: train loss {train_loss:.4f}, val loss {result['loss']:.4f}, "
                    f"val ppl {result['ppl']:.2f}")
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == last \
                    or over_time:
                save()
            if over_time:
                stopped = "time_budget"
                break
    if stop_at is not None and step < cfg.steps and stopped == "steps":
        stopped = "stop_at"
    final = history[-1] if history else {"val_loss": float("nan"), "val_ppl": float("nan")}
    return {"step": step, "tokens_seen": tokens_seen, "seconds": seconds,
            "train_loss": train_loss, "val_loss": final["val_loss"], "val_ppl": final["val_ppl"],
            "history": history, "stopped": stopped}


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``onebit train-lm`` (see :func:`main`)."""
    p = argparse.ArgumentParser(prog="onebit train-lm", description=DESCRIPTION)
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """``onebit train-lm`` entry point: parse ``argv`` with :func:`build_parser`, :func:`run`,
    return the exit status 0."""
    run(build_parser().parse_args(argv))
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare the corpus, build the model, train, write metrics (arguments of build_parser).

    Writes ``OUT/checkpoint.pt``, ``OUT/metrics.json`` (final validation loss/perplexity on the
    whole validation split, tokens seen, seconds, history, both configs) and
    ``OUT/tokenizer.json``. Returns the metrics dict.
    """
    from onebit.llm.data import prepare_corpus

    if getattr(args, "onebit_out", None) and args.full_precision:
        raise OnebitError("--onebit-out packs ternary weights; the full-precision twin has none. Drop "
                          "--onebit-out or --full-precision")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    preset = get_config(args.config)
    corpus = prepare_corpus(args.corpus or ["web"], args.data_dir or out / "data",
                            vocab_size=args.vocab_size or preset.vocab_size,
                            val_fraction=args.val_fraction, seed=args.seed,
                            tokenizer_path=args.tokenizer)
    tok = corpus.tokenizer
    config: LMConfig = preset.replace(vocab_size=tok.vocab_size, full_precision=args.full_precision,
                                      max_seq_len=max(preset.max_seq_len, args.seq_len),
                                      eos_token_id=tok.eos_token_id)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len,
                      lr=args.lr, min_lr_ratio=args.min_lr_ratio, warmup_steps=args.warmup,
                      weight_decay=args.weight_decay, grad_clip=args.grad_clip,
                      eval_every=args.eval_every, eval_batches=args.eval_batches,
                      checkpoint_every=args.checkpoint_every, seed=args.seed,
                      time_budget=args.time_budget)
    torch.manual_seed(args.seed)
    model = BitNetLM(config)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(out / "tokenizer.json")
    result = train_lm(model, corpus.train, corpus.val, cfg, out_dir=out,
                      resume=not args.no_resume, progress=not args.no_progress, log=print)
    metrics = {**{k: v for k, v in result.items()}, "model_config": config.to_dict(),
               "train_config": asdict(cfg), "corpus": corpus.meta,
               "parameters": sum(p.numel() for p in model.parameters()),
               "torch_threads": torch.get_num_threads()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"{'full-precision' if config.full_precision else 'b1.58'} {config.name}: "
          f"val loss {result['val_loss']:.4f}, val ppl {result['val_ppl']:.2f} after "
          f"{result['tokens_seen']} tokens in {result['seconds']:.0f} s")
    if args.hf_out:
        from onebit.llm.hf import save_hf_checkpoint

        save_hf_checkpoint(model, args.hf_out, tokenizer=tok)
        print(f"wrote Hugging Face BitNet checkpoint to {args.hf_out}")
    if getattr(args, "onebit_out", None):
        from onebit.llm.export import export_onebit

        export_onebit(model.eval(), args.onebit_out, tokenizer=tok)
        print(f"wrote {args.onebit_out} (run it with: onebit generate {args.onebit_out} --prompt ...)")
    return metrics


if __name__ == "__main__":   # pragma: no cover
    raise SystemExit(main())
