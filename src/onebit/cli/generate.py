"""``onebit generate``: stream text from a BitNet b1.58 ``.onebit`` model with the numpy engine
(:class:`onebit.runtime.lm.LMEngine`; never imports torch)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from onebit.errors import OnebitError
    from onebit.llm.tokenizer import Tokenizer
    from onebit.runtime.lm import LMEngine

    model = Path(args.model)
    tok_path = Path(args.tokenizer) if args.tokenizer else model.parent / "tokenizer.json"
    if not tok_path.is_file():
        raise OnebitError(f"no tokenizer at {tok_path}; pass --tokenizer PATH/tokenizer.json (export_onebit "
                          "and onebit train-lm write it next to the model)")
    tok = Tokenizer.load(tok_path)
    engine = LMEngine(model, num_threads=args.threads, max_seq_len=args.max_seq_len)
    eos = engine.spec.eos_token_id if engine.spec.eos_token_id is not None else tok.eos_token_id
    prompt = tok.encode(args.prompt)
    if not prompt:
        if eos is None:
            raise OnebitError("empty prompt and no end-of-text token to start from; pass --prompt TEXT")
        prompt = [eos]
    if len(prompt) >= engine.max_seq_len:
        raise OnebitError(f"the prompt has {len(prompt)} tokens; the model's context holds {engine.max_seq_len}. "
                          "Shorten the prompt")
    out = sys.stdout
    if args.echo:
        out.write(args.prompt)
        out.flush()
    tokens: list[int] = []
    shown = ""
    t0 = time.perf_counter()
    t_first = None
    for token in engine.generate(prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                                 top_p=args.top_p, seed=args.seed, eos_token_id=eos):
        if t_first is None:
            t_first = time.perf_counter()
        if token == eos:
            break
        tokens.append(token)
        text = tok.decode(tokens)
        if not text.endswith("\ufffd"):       # wait for the rest of a multi-byte character
            out.write(text[len(shown):])
            out.flush()
            shown = text
    text = tok.decode(tokens)
    out.write(text[len(shown):] + "\n")
    out.flush()
    t1 = time.perf_counter()
    if args.stats and t_first is not None:
        n = len(tokens)
        decode = (t1 - t_first) / max(n - 1, 1) * 1e3
        print(f"[prompt {len(prompt)} tokens, prefill + first token {1e3 * (t_first - t0):.1f} ms; "
              f"{n} tokens generated, {decode:.2f} ms/token decode; {args.threads} thread(s)]", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``generate`` subcommand."""
    p = sub.add_parser("generate", help="generate text with a BitNet b1.58 .onebit model (numpy engine)",
                       description="Load MODEL.onebit (written by onebit.llm.export), encode --prompt with the "
                                   "tokenizer.json next to it, and stream a continuation: greedy by default, "
                                   "or sampled with --temperature/--top-k/--top-p and --seed.")
    p.add_argument("model", help="the .onebit language model")
    p.add_argument("--prompt", default="", help="text to continue (empty: start from the end-of-text token)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="kernel threads (default 1)")
    p.add_argument("--tokenizer", default=None, help="tokenizer.json (default: next to the model)")
    p.add_argument("--max-seq-len", type=int, default=None, help="KV-cache length (default: the model's)")
    p.add_argument("--echo", action="store_true", help="print the prompt before the continuation")
    p.add_argument("--stats", action="store_true", help="print timings to stderr")
    p.set_defaults(func=_run)
