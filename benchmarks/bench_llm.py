"""BitNet b1.58 LM engine vs PyTorch fp32 / bf16 on the paper's shapes (random weights).

For each shape (``b158-700m`` by default; ``--shapes b158-700m b158-1.3b b158-3b``), like the
b1.58 paper's Table 1 / Figure 2 (Ma et al. 2024):

* **engine** (:class:`onebit.runtime.lm.LMEngine`, numpy + native ternary kernels): the
  ternary codes are drawn at random and packed straight to tq2 (no float matrix, no torch
  model), written to a temporary ``.onebit`` file and memory-mapped;
* **torch fp32 / bf16**: the same decoder with ``nn.Linear`` projections (a LLaMA block, the
  paper's FP16 baseline; this CPU has no fp16 matmul, so bf16 stands in), KV cache,
  ``F.scaled_dot_product_attention``, ``torch.inference_mode``.

Measured for each, with 1 and 2 threads: memory (GB of weights + KV cache for the run's
context), prefill tokens/s (a ``--prompt``-token prompt), decode latency (ms/token, batch 1,
median over ``--decode`` steps after the prompt, median of ``--repeats`` repeats) and the weight
bandwidth a decode step achieves (bytes of weights read per token / latency), against a numpy
read of a 512 MB buffer measured in the same run (this machine's DRAM read bandwidth).

Usage: ``python benchmarks/bench_llm.py [--shapes ...] [--threads 1 2] [--quick]``; prints a
table and writes ``benchmarks/results/llm.json`` (section ``--section``, default ``llm``). The
default run (700M) takes ~3-5 minutes here; the larger shapes were run with
``--shapes b158-1.3b b158-3b --quick --section llm_large``.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _results import RESULTS, write_section  # noqa: E402  (benchmarks/ is on sys.path)

GB = 1e9


def mem_available() -> float:
    """MemAvailable from /proc/meminfo, bytes (inf where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return math.inf


def read_bandwidth(nbytes: int = 512 << 20, reps: int = 5) -> float:
    """GB/s of a single-threaded numpy read (max over uint64) of an ``nbytes`` buffer."""
    a = np.ones(nbytes // 8, np.uint64)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a.max()
        ts.append(time.perf_counter() - t0)
    return nbytes / min(ts) / GB


# ---------------------------------------------------------------------------------------------
# engine


def bench_engine(spec, args, tmp: Path) -> dict:
    from onebit.runtime.lm import LMEngine
    from onebit.runtime.lm_graph import random_lm_tensors, write_lm

    t0 = time.perf_counter()
    path = tmp / "model.onebit"
    write_lm(path, spec, random_lm_tensors(spec, seed=0))
    ctx = args.prompt + args.decode + 1
    engine = LMEngine(path, num_threads=1, max_seq_len=ctx)
    build_s = time.perf_counter() - t0
    prompt = np.random.default_rng(1).integers(0, spec.vocab_size, args.prompt)
    out = {"weights_gb": engine.weight_bytes / GB, "kv_gb": engine.kv_cache_bytes / GB,
           "file_gb": path.stat().st_size / GB, "decode_read_gb": engine.decode_read_bytes / GB,
           "build_s": build_s, "threads": {}}
    for threads in args.threads:
        engine.num_threads = threads
        from onebit.runtime.lm import set_blas_threads

        set_blas_threads(threads)
        prefill, decode = [], []
        for _ in range(args.repeats):
            engine.reset()
            t0 = time.perf_counter()
            logits = engine.prefill(prompt)
            prefill.append(time.perf_counter() - t0)
            token = int(np.argmax(logits))
            steps = []
            for _ in range(args.decode):
                t0 = time.perf_counter()
                token = int(np.argmax(engine.decode(token)))
                steps.append(time.perf_counter() - t0)
            decode.append(float(np.median(steps)))
        p, d = float(np.median(prefill)), float(np.median(decode))
        out["threads"][str(threads)] = {"prefill_tok_s": args.prompt / p, "decode_ms": d * 1e3,
                                        "weight_gbs": engine.decode_read_bytes / d / GB}
    del engine
    gc.collect()
    return out


# ---------------------------------------------------------------------------------------------
# PyTorch baseline


def torch_decoder(spec, dtype):
    """A LLaMA decoder of ``spec``'s shape with nn.Linear projections (random weights) and a
    KV-cache forward ``step(ids (1, T), start) -> logits (1, V)``."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    C, Fw, H, Hkv, D = spec.hidden_size, spec.intermediate_size, spec.num_heads, spec.kv_heads, spec.head_dim

    def linear(i, o):
        m = nn.Linear(i, o, bias=False, device="meta")
        m.weight = nn.Parameter(torch.empty(o, i, dtype=dtype).normal_(0, 0.02), requires_grad=False)
        return m

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.n1, self.n2 = nn.RMSNorm(C, eps=spec.rms_norm_eps, dtype=dtype), nn.RMSNorm(C, dtype=dtype)
            self.q, self.k, self.v, self.o = linear(C, H * D), linear(C, Hkv * D), linear(C, Hkv * D), linear(H * D, C)
            self.gate, self.up, self.down = linear(C, Fw), linear(C, Fw), linear(Fw, C)

        def forward(self, x, cos, sin, kc, vc, start):
            T = x.shape[1]
            h = self.n1(x)
            q = self.q(h).view(1, T, H, D).transpose(1, 2)
            k = self.k(h).view(1, T, Hkv, D).transpose(1, 2)
            v = self.v(h).view(1, T, Hkv, D).transpose(1, 2)

            def rope(t):
                return t * cos + torch.cat([-t[..., D // 2:], t[..., :D // 2]], -1) * sin

            kc[:, :, start:start + T] = rope(k)
            vc[:, :, start:start + T] = v
            kk, vv = kc[:, :, :start + T], vc[:, :, :start + T]
            if Hkv != H:
                kk, vv = kk.repeat_interleave(H // Hkv, 1), vv.repeat_interleave(H // Hkv, 1)
            a = F.scaled_dot_product_attention(rope(q), kk, vv, is_causal=T > 1)
            x = x + self.o(a.transpose(1, 2).reshape(1, T, H * D))
            h = self.n2(x)
            return x + self.down(F.silu(self.gate(h)) * self.up(h))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Parameter(torch.empty(spec.vocab_size, C, dtype=dtype).normal_(0, 0.02),
                                      requires_grad=False)
            self.blocks = nn.ModuleList(Block() for _ in range(spec.num_layers))
            self.norm = nn.RMSNorm(C, dtype=dtype)

        def setup(self, ctx):
            inv = 1.0 / (spec.rope_theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
            ang = torch.outer(torch.arange(ctx, dtype=torch.float64), inv)
            ang = torch.cat([ang, ang], -1)
            self.cos, self.sin = ang.cos().to(dtype), ang.sin().to(dtype)
            shape = (spec.num_layers, 1, Hkv, ctx, D)
            self.kc, self.vc = torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)

        def step(self, ids, start):
            T = ids.shape[1]
            cos, sin = self.cos[start:start + T], self.sin[start:start + T]
            x = self.embed[ids]
            for i, b in enumerate(self.blocks):
                x = b(x, cos, sin, self.kc[i], self.vc[i], start)
            return self.norm(x[:, -1]) @ self.embed.T

    return Model()


def bench_torch(spec, dtype_name: str, args) -> dict:
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = torch_decoder(spec, dtype)
    ctx = args.prompt + args.decode + 1
    model.setup(ctx)
    build_s = time.perf_counter() - t0
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    linear = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "norm" not in n)
    out = {"weights_gb": weights / GB, "kv_gb": (model.kc.nbytes + model.vc.nbytes) / GB,
           "decode_read_gb": linear / GB, "build_s": build_s, "threads": {}}
    prompt = torch.from_numpy(np.random.default_rng(1).integers(0, spec.vocab_size, (1, args.prompt)))
    with torch.inference_mode():
        for threads in args.threads:
            torch.set_num_threads(threads)
            prefill, decode = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                token = model.step(prompt, 0).argmax(-1)
                prefill.append(time.perf_counter() - t0)
                steps = []
                for i in range(args.decode):
                    t0 = time.perf_counter()
                    token = model.step(token.view(1, 1), args.prompt + i).argmax(-1)
                    steps.append(time.perf_counter() - t0)
                decode.append(float(np.median(steps)))
            p, d = float(np.median(prefill)), float(np.median(decode))
            out["threads"][str(threads)] = {"prefill_tok_s": args.prompt / p, "decode_ms": d * 1e3,
                                            "weight_gbs": linear / d / GB}
    del model
    gc.collect()
    return out


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", nargs="+", default=["b158-700m"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--prompt", type=int, default=64, help="prompt tokens (prefill)")
    p.add_argument("--decode", type=int, default=8, help="decode steps timed per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--baselines", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--quick", action="store_true", help="1 repeat, 4 decode steps, 32-token prompt")
    p.add_argument("--out", default=str(RESULTS / "llm.json"))
    p.add_argument("--section", default="llm", help="section of the JSON file to (re)write")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.decode, args.prompt = 1, 4, 32

    from onebit.llm.config import count_parameters, get_config
    from onebit.llm.export import spec_from_config

    bw = read_bandwidth()
    load = os.getloadavg()
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "numpy_read_gbs_512MB_1t": bw, "loadavg_at_start": load},
               "settings": {k: getattr(args, k) for k in ("threads", "prompt", "decode", "repeats")},
               "shapes": {}}
    print(f"numpy read bandwidth (512 MB, 1 thread): {bw:.1f} GB/s; load average {load[0]:.2f}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_llm_"))
    try:
        for name in args.shapes:
            config = get_config(name)
            spec = spec_from_config(config)
            params = count_parameters(config)["total"]
            row = {"parameters": params}
            print(f"\n{name}: {params / 1e6:.0f} M parameters")
            row["engine"] = bench_engine(spec, args, tmp)
            print(f"  engine built in {row['engine']['build_s']:.1f} s")
            for dt in args.baselines:
                need = params * (4 if dt == "fp32" else 2) * 1.3
                if need > 0.8 * mem_available():
                    row[f"torch_{dt}"] = {"skipped": f"needs ~{need / GB:.1f} GB, "
                                                      f"{mem_available() / GB:.1f} GB available"}
                    print(f"  torch {dt}: skipped ({row[f'torch_{dt}']['skipped']})")
                    continue
                row[f"torch_{dt}"] = bench_torch(spec, dt, args)
                print(f"  torch {dt} built in {row[f'torch_{dt}']['build_s']:.1f} s")
            results["shapes"][name] = row
            print_table({name: row})
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    path = write_section(Path(args.out), args.section, results)
    print(f"\nwrote {path}")
    return 0


def print_table(shapes: dict) -> None:
    """One line per (shape, implementation, threads)."""
    head = (f"{'shape':<11}{'impl':<11}{'thr':>4}{'weights GB':>11}{'KV GB':>8}{'decode ms/tok':>14}"
            f"{'prefill tok/s':>14}{'weight GB/s':>12}{'speed-up':>9}{'mem ratio':>10}")
    print(head)
    for name, row in shapes.items():
        eng = row["engine"]
        for impl in ("engine", "torch_fp32", "torch_bf16"):
            r = row.get(impl)
            if r is None:
                continue
            if "skipped" in r:
                print(f"{name:<11}{impl:<11}   -  skipped: {r['skipped']}")
                continue
            for t, m in r["threads"].items():
                e = eng["threads"].get(t)
                speed = e and m["decode_ms"] / e["decode_ms"]
                mem = (r["weights_gb"] + r["kv_gb"]) / (eng["weights_gb"] + eng["kv_gb"])
                print(f"{name:<11}{impl:<11}{t:>4}{r['weights_gb']:>11.3f}{r['kv_gb']:>8.3f}"
                      f"{m['decode_ms']:>14.1f}{m['prefill_tok_s']:>14.1f}{m['weight_gbs']:>12.1f}"
                      f"{speed:>8.1f}x{mem:>9.1f}x")


if __name__ == "__main__":
    sys.exit(main())
