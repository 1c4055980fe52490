"""Ternary GEMV / GEMM (BitNet b1.58 linear layers) against PyTorch fp32 F.linear, same run.

Shapes are (N, K) = (out, in) of BitNet's projections (700M: 1536 <-> 4096; 3B: 3200 <-> 8640),
batch 1 (decode, ``tgemv``) and 512 (prefill, ``tgemm``), with 1 and 2 threads. For each:
median (and min / max) wall time of

* ``onebit``: ``quantize_i8`` + ``tgemv``/``tgemm`` (float32 in, float32 out: what F.linear does),
* ``kernel``: the ternary kernel alone (int8 activations already quantized),
* ``torch``: ``F.linear(x, W)`` with the float32 weights (``torch.set_num_threads`` = same count),

plus GB/s of packed weights (GEMV) and G MAC/s (GEMM), against this machine's limits measured
in the same run by ``peak_avx2.cc`` (int8 vpmaddubsw peak, int8 VNNI vpdpbusd peak where the
CPU has AVX512-VNNI, read bandwidth). The kernel alone is also timed under every SIMD ISA of
the dispatch table (``avx2``, ``avx512``; via ``kernels.use_isa``) in ``by_isa``, so the gain of
the AVX-512 VNNI paths over AVX2 is measured in the same run. GEMV is timed
"hot" (the same weights every call: they fit in the last-level cache) and "cold" (rotating
through copies of the weights totalling >= 128 MB, as a decode step over many layers does);
the cold figure is compared with a numpy read (``max``) of the same buffers in the same rotation,
timed right after it, because the DRAM bandwidth available depends on what else runs.

Usage: ``python benchmarks/bench_ternary.py [--repeats 7] [--quick]``; writes
``benchmarks/results/kernels.json, section "ternary"``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# benchmarks/ is on sys.path when this file runs as a script
from _results import RESULTS, write_section  # noqa: E402

HERE = Path(__file__).resolve().parent
SHAPES = [(1536, 4096), (4096, 1536), (3200, 8640), (8640, 3200)]
BATCHES = [1, 512]
THREADS = [1, 2]
COLD_BYTES = 128 << 20


def machine_limits() -> dict:
    """Compile and run peak_avx2.cc (needs a C++ compiler and an x86-64 CPU with AVX2)."""
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None or platform.machine() not in ("x86_64", "AMD64"):
        return {"note": "no C++ compiler or not x86-64: machine limits not measured"}
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "peak_avx2"
        subprocess.run([cxx, "-O2", "-mavx2", str(HERE / "peak_avx2.cc"), "-o", str(exe), "-lpthread"], check=True)
        return json.loads(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout)


def timed(fn, repeats: int, inner: int = 1) -> dict:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    times = np.array(times) * 1e3
    return {"median_ms": float(np.median(times)), "min_ms": float(times.min()), "max_ms": float(times.max())}


def timed_by_isa(fn, isas: list[str], repeats: int, inner: int = 1) -> dict[str, dict]:
    """``timed`` under each ISA, the samples interleaved (isa0, isa1, isa0, ...), so that a burst of
    load from other processes hits every ISA alike instead of the one that happened to run then."""
    from onebit import kernels

    times: dict[str, list[float]] = {isa: [] for isa in isas}
    for rep in range(repeats + 1):  # the first round is the warm-up
        for isa in isas:
            with kernels.use_isa(isa):
                t0 = time.perf_counter()
                for _ in range(inner):
                    fn()
                if rep:
                    times[isa].append((time.perf_counter() - t0) / inner * 1e3)
    return {isa: {"median_ms": float(np.median(t)), "min_ms": float(min(t)), "max_ms": float(max(t))}
            for isa, t in times.items()}


def simd_isas() -> list[str]:
    from onebit import kernels

    return [isa for isa in ("avx2", "avx512") if isa in kernels.supported_isas()]


def isa_peak(limits: dict, isa: str) -> float | None:
    """int8 MAC/s peak per core of the instruction the ISA's tgemm uses."""
    key = "int8_vnni_peak_gmacs_per_core" if isa == "avx512" else "int8_maddubs_peak_gmacs_per_core"
    return limits.get(key)


def bench_shape(n: int, k: int, batch: int, threads: int, repeats: int, rng) -> dict:
    import torch

    from onebit import kernels

    torch.set_num_threads(threads)
    w = rng.standard_normal((n, k), dtype=np.float32)
    packed, gamma = kernels.pack_ternary(w)
    t_float = torch.from_numpy(kernels.unpack_ternary(packed, k).astype(np.float32) * gamma)
    x = rng.standard_normal((batch, k), dtype=np.float32)
    x_q, x_scale = kernels.quantize_i8(x)
    xt = torch.from_numpy(x)
    op = kernels.tgemv if batch == 1 else kernels.tgemm
    out = np.empty((batch, n), np.float32)
    macs = batch * n * k
    inner = max(1, int(2e8 // macs))  # ~>= 2e8 MAC per timed sample

    row = {"n": n, "k": k, "batch": batch, "threads": threads, "packed_mb": packed.nbytes / 1e6}
    row["torch"] = timed(lambda: torch.nn.functional.linear(xt, t_float), repeats, inner)
    row["onebit"] = timed(
        lambda: op(packed, gamma, *kernels.quantize_i8(x, num_threads=threads), num_threads=threads, out=out),
        repeats,
        inner,
    )
    row["kernel"] = timed(lambda: op(packed, gamma, x_q, x_scale, num_threads=threads, out=out), repeats, inner)
    # correctness guard for the benchmark itself: the result is the float computation
    y = op(packed, gamma, x_q, x_scale, num_threads=threads)
    ref = (x_q / x_scale[:, None].astype(np.float64)) @ t_float.numpy().astype(np.float64).T
    assert np.allclose(y, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max()), "benchmark result is wrong"

    kernel_s = row["kernel"]["median_ms"] / 1e3
    row["gmacs"] = macs / kernel_s / 1e9
    row["speedup_vs_torch"] = row["torch"]["median_ms"] / row["onebit"]["median_ms"]
    if batch == 1:
        row["hot_gbs"] = packed.nbytes / kernel_s / 1e9
        copies = max(2, -(-COLD_BYTES // packed.nbytes))
        pool = [packed.copy() for _ in range(copies)]
        state = {"i": 0}

        def cold():
            state["i"] = (state["i"] + 1) % copies
            op(pool[state["i"]], gamma, x_q, x_scale, num_threads=threads, out=out)

        def read():  # the same rotation through the same buffers, only reading them (numpy max)
            state["i"] = (state["i"] + 1) % copies
            pool[state["i"]].max()

        row["kernel_cold"] = timed(cold, repeats, copies)
        row["read_cold"] = timed(read, repeats, copies)
        row["cold_gbs"] = packed.nbytes / (row["kernel_cold"]["median_ms"] / 1e3) / 1e9
        row["read_cold_gbs"] = packed.nbytes / (row["read_cold"]["median_ms"] / 1e3) / 1e9
        row["cold_fraction_of_read"] = row["cold_gbs"] / row["read_cold_gbs"]
    isas = simd_isas()  # the kernel alone under each SIMD ISA, same inputs, same run, interleaved
    hot = timed_by_isa(lambda: op(packed, gamma, x_q, x_scale, num_threads=threads, out=out), isas, repeats, inner)
    cold_by_isa = timed_by_isa(cold, isas, repeats, copies) if batch == 1 else {}
    row["by_isa"] = {}
    for isa in isas:
        r = {"kernel": hot[isa], "gmacs": macs / (hot[isa]["median_ms"] / 1e3) / 1e9}
        if batch == 1:
            r["hot_gbs"] = packed.nbytes / (hot[isa]["median_ms"] / 1e3) / 1e9
            r["kernel_cold"] = cold_by_isa[isa]
            r["cold_gbs"] = packed.nbytes / (cold_by_isa[isa]["median_ms"] / 1e3) / 1e9
            r["cold_fraction_of_read"] = r["cold_gbs"] / row["read_cold_gbs"]
        row["by_isa"][isa] = r
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="first shape only, 3 repeats")
    parser.add_argument("--out", type=Path, default=RESULTS / "kernels.json",
                        help="JSON file; this benchmark replaces its section \"ternary\"")
    args = parser.parse_args()

    import torch

    from onebit import kernels

    rng = np.random.default_rng(0)
    load = list(os.getloadavg())
    limits = machine_limits()
    shapes = SHAPES[:1] if args.quick else SHAPES
    repeats = 3 if args.quick else args.repeats
    print(f"onebit ternary kernels: ISA {kernels.active_isa()} ({kernels.kernel_table().get('tgemm')}), "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    print("machine limits (same run):", json.dumps(limits), "| load average:", " ".join(f"{v:.2f}" for v in load))
    isas = simd_isas()
    peak = isa_peak(limits, kernels.active_isa())
    rows = []
    per_isa = "".join(f" {isa + ' ms':>10} {'GB/s cold':>9} {'G MAC/s':>7}" for isa in isas)
    header = (f"{'N x K':>11} {'batch':>5} {'thr':>3} | {'onebit ms':>9} {'kernel ms':>9} {'torch ms':>9} "
              f"{'speedup':>7} | {'GB/s hot':>8} {'GB/s cold':>9} {'read cold':>9} {'G MAC/s':>8} {'%peak':>6} |"
              + per_isa)
    print(header)
    print("-" * len(header))
    for n, k in shapes:
        for batch in BATCHES:
            for threads in THREADS:
                r = bench_shape(n, k, batch, threads, repeats, rng)
                if peak:
                    r["fraction_of_int8_peak"] = r["gmacs"] / (peak * threads)
                rows.append(r)
                hot = f"{r['hot_gbs']:8.1f}" if batch == 1 else f"{'':8}"
                cold = f"{r['cold_gbs']:9.1f} {r['read_cold_gbs']:9.1f}" if batch == 1 else f"{'':19}"
                pct = f"{100 * r['fraction_of_int8_peak']:5.0f}%" if peak else f"{'':6}"
                for isa, ri in r["by_isa"].items():
                    p = isa_peak(limits, isa)
                    if p:
                        ri["fraction_of_int8_peak"] = ri["gmacs"] / (p * threads)
                isa_cols = "".join(
                    f" {ri['kernel']['median_ms']:10.3f} "
                    + (f"{ri['cold_gbs']:9.1f}" if batch == 1 else f"{'':9}") + f" {ri['gmacs']:7.1f}"
                    for ri in r["by_isa"].values())
                print(f"{n:>5}x{k:<5} {batch:>5} {threads:>3} | {r['onebit']['median_ms']:9.3f} "
                      f"{r['kernel']['median_ms']:9.3f} {r['torch']['median_ms']:9.3f} {r['speedup_vs_torch']:6.1f}x | "
                      f"{hot} {cold} {r['gmacs']:8.1f} {pct} |{isa_cols}", flush=True)
    result = {
        "benchmark": "ternary tgemv/tgemm vs torch fp32 F.linear",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "torch": torch.__version__, "isa": kernels.active_isa(), "isas_timed": isas, "limits": limits,
                    "load_average": load},
        "notes": "speedup = torch median / onebit median (quantize_i8 + kernel); GB/s = packed weight bytes / "
                 "kernel median; fraction_of_int8_peak = G MAC/s / (int8 peak per core x threads) with the peak "
                 "of the ISA's instruction (avx2: vpmaddubsw, avx512: vpdpbusd VNNI); by_isa: the kernel alone "
                 "under each SIMD ISA in the same run, samples interleaved across ISAs; load_average: "
                 "os.getloadavg() before the run (the machine may be shared)",
        "rows": rows,
    }
    write_section(args.out, "ternary", result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
