"""Binary convolution benchmark: onebit bconv2d against PyTorch fp32 conv2d in the same run.

Shapes (Bannink et al. 2021, Larq Compute Engine, section 4.1):
  * Figure 2: ResNet-18's four 3x3 convolutions, H x W x C_in x C_out = 56x56x64x64,
    28x28x128x128, 14x14x256x256, 7x7x256x256 (batch 1, stride 1, "same" one-padding);
  * the sweep behind Table 2: channels {32, 64, 96, 128, 160, 256} (C_in = C_out), sizes
    {8, 16, 32, 64}, kernels 3 and 5, stride 1, "same" padding.

onebit: bconv2d on bitpacked NHWC input (bitpacking is a separate op, as LceQuantize in LCE),
float32 output with fused per-channel multiplier and bias (Figure 2 rows also time the
bitpacked output with thresholds, the binary -> binary case). PyTorch: F.conv2d on float32 NCHW
with bias, torch.set_num_threads matching ours. Latencies are medians over repeated runs;
speedups are summarised as in LCE Table 2 (mean, latency-weighted mean = sum of fp32 latencies
/ sum of binary latencies, range). The binary peak of this core is measured in the same run
with the register-only loops of benchmarks/peak/binary_peak.cc (needs a C++ compiler); "of peak"
is the share of the peak of the ISA in use (avx512: zmm VPXORQ + VPOPCNTQ + VPADDQ; avx2: the
better of the VPSHUFB and hybrid loops; ref: scalar POPCNT), times the thread count.
On the Figure 2 shapes the scalar reference path is timed (1 thread) and, when the active ISA is
avx512, the AVX2 path too (kernels.use_isa), in alternating blocks with the AVX-512 path, so the
AVX-512 gain is a same-run ratio.

Run:  .venv/bin/python benchmarks/bench_binary.py   (writes benchmarks/results/kernels.json, section "binary")
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from onebit import kernels

# benchmarks/ is on sys.path when this file runs as a script
from _results import RESULTS, write_section  # noqa: E402
from _timing import interleaved_times  # noqa: E402

HERE = Path(__file__).resolve().parent
FIGURE2 = [(56, 64), (28, 128), (14, 256), (7, 256)]
SWEEP_CHANNELS = [32, 64, 96, 128, 160, 256]
SWEEP_SIZES = [8, 16, 32, 64]
SWEEP_KERNELS = [3, 5]


def median_time(fn, min_reps: int = 5, budget_s: float = 0.3) -> tuple[float, float, float]:
    """(median, p10, p90) seconds over repeated calls after warm-up calls."""
    return interleaved_times([fn], min_reps, budget_s, rounds=1)[0]


def measure_peak() -> dict | None:
    """Compile and run benchmarks/peak/binary_peak.cc; None if no compiler is available."""
    cxx = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
    if cxx is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "binary_peak"
        subprocess.run(
            [cxx, "-O2", "-mavx2", "-mfma", "-mpopcnt", str(HERE / "peak" / "binary_peak.cc"), "-o", str(exe)],
            check=True,
        )
        peak: dict = {}
        for _ in range(3):  # best of 3 runs (each already best of 5): other load only lowers it
            run = json.loads(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout)
            run.pop("sink", None)
            peak = {k: max(v, peak.get(k, 0.0)) for k, v in run.items()}
    return peak


# Key of the register-only peak (binary_peak.cc) that bounds each ISA's binary kernels.
PEAK_KEYS = {"avx512": ["avx512_vpopcntq_gmacs"], "avx2": ["avx2_pshufb_gmacs", "hybrid_gmacs"],
             "ref": ["scalar_popcnt_gmacs"]}


def isa_peak(peak: dict | None, isa: str) -> float | None:
    """Per-core register-only binary MAC peak of `isa` (None if not measured)."""
    vals = [peak[k] for k in PEAK_KEYS.get(isa, []) if peak and k in peak]
    return max(vals) if vals else None


def isa_times(fn, isas: list[str], min_reps: int = 5, budget_s: float = 0.3, rounds: int = 5):
    """(median, p10, p90) seconds of `fn` under each ISA, timed in alternating blocks
    (_timing.interleaved_times); the dispatch table is switched outside the timed calls."""
    contexts = [lambda isa=isa: kernels.use_isa(isa) for isa in isas]
    return interleaved_times([fn] * len(isas), min_reps, budget_s, rounds, contexts=contexts)


def conv_case(rng, hw: int, c: int, k: int):
    x = rng.standard_normal((1, hw, hw, c)).astype(np.float32)
    w = rng.standard_normal((c, k, k, c)).astype(np.float32)
    mult = (rng.random(c) + 0.5).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    return x, w, mult, bias


def bench_case(rng, hw: int, c: int, k: int, threads: int, with_ref: bool, with_bitpacked: bool = False,
               with_avx2: bool = False) -> dict:
    x, w, mult, bias = conv_case(rng, hw, c, k)
    xp, wp = kernels.bitpack(x), kernels.bitpack(w)
    out = np.empty((1, hw, hw, c), np.float32)

    def binary():
        kernels.bconv2d(xp, wp, c, padding="same", multiplier=mult, bias=bias, out=out, num_threads=threads)

    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    wt = torch.from_numpy(w).permute(0, 3, 1, 2).contiguous()
    bt = torch.from_numpy(bias)

    def fp32():
        with torch.no_grad():
            F.conv2d(xt, wt, bt, padding=k // 2)

    torch.set_num_threads(threads)
    tb, tf = interleaved_times([binary, fp32])
    macs = hw * hw * c * c * k * k
    row = {
        "hw": hw, "channels": c, "kernel": k, "threads": threads, "macs": macs,
        "binary_ms": tb[0] * 1e3, "binary_p10_ms": tb[1] * 1e3, "binary_p90_ms": tb[2] * 1e3,
        "fp32_ms": tf[0] * 1e3, "fp32_p10_ms": tf[1] * 1e3, "fp32_p90_ms": tf[2] * 1e3,
        "speedup_vs_fp32": tf[0] / tb[0],
        "binary_gmacs": macs / tb[0] / 1e9, "fp32_gmacs": macs / tf[0] / 1e9,
    }
    if with_bitpacked:
        th = kernels.binary_output_thresholds(mult, bias)
        outp = np.empty((1, hw, hw, kernels.packed_words(c)), np.uint32)
        tp = median_time(lambda: kernels.bconv2d(xp, wp, c, padding="same", output="bitpacked", thresholds=th,
                                                 out=outp, num_threads=threads))
        row["binary_bitpacked_out_ms"] = tp[0] * 1e3
    if with_avx2:  # same-run ratio of the AVX-512 and AVX2 paths
        t512, t2 = isa_times(binary, ["avx512", "avx2"])
        row["avx512_ms"], row["avx2_ms"] = t512[0] * 1e3, t2[0] * 1e3
        row["avx2_gmacs"] = macs / t2[0] / 1e9
        row["avx512_speedup_vs_avx2"] = t2[0] / t512[0]
    if with_ref:
        with kernels.use_isa("ref"):
            tr = median_time(binary, min_reps=3, budget_s=0.5)
        row["ref_ms"] = tr[0] * 1e3
        row["speedup_vs_ref"] = tr[0] / tb[0]
    return row


def summarize(rows: list[dict]) -> dict:
    s = np.array([r["speedup_vs_fp32"] for r in rows])
    fp = np.array([r["fp32_ms"] for r in rows])
    bn = np.array([r["binary_ms"] for r in rows])
    return {
        "n": len(rows),
        "mean": float(s.mean()),
        "weighted_mean": float(fp.sum() / bn.sum()),  # speedups weighted by fp32 latency
        "min": float(s.min()),
        "max": float(s.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="Figure 2 shapes only")
    parser.add_argument("--out", type=Path, default=RESULTS / "kernels.json",
                        help="JSON file; this benchmark replaces its section \"binary\"")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    peak = measure_peak()
    isa = kernels.active_isa()
    peak_core = isa_peak(peak, isa)
    avx2_peak_core = isa_peak(peak, "avx2")
    with_avx2 = isa == "avx512" and "avx2" in kernels.supported_isas()
    print(f"onebit bconv2d ({isa}) vs PyTorch {torch.__version__} fp32 conv2d; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    if peak:
        print("measured per-core peaks (register-only loops, G MAC/s): " +
              ", ".join(f"{k.replace('_gmacs', '')} {v:.0f}" for k, v in peak.items()))

    if peak_core:
        print(f"peak of the ISA in use ({isa}): {peak_core:.0f} G binary MAC/s per core")
    results: dict = {"isa": isa, "torch": torch.__version__, "peak_gmacs_per_core": peak,
                     "isa_peak_gmacs_per_core": peak_core, "load_average_start": os.getloadavg(),
                     "figure2": [], "sweep": [], "summary": {}}
    print(f"load average at start: {os.getloadavg()[0]:.1f} (other processes distort timings; "
          f"compare ratios measured in the same run)")
    for threads in args.threads:
        peak_t = peak_core * threads if peak_core else None
        print(f"\n== {threads} thread(s): LCE Figure 2 convolutions (3x3, same one-padding, batch 1) ==")
        avx2_cols = f" {'avx2 G/s':>9} {'of peak':>8} {'avx512/2':>8}" if with_avx2 else ""
        print(f"{'shape':>18} {'fp32 ms':>9} {'binary ms':>10} {'speedup':>8} {'G bMAC/s':>9} {'of peak':>8}"
              f" {'bitp. ms':>9}{avx2_cols} {'ref ms':>9} {'vs ref':>7}")
        for hw, c in FIGURE2:
            row = bench_case(rng, hw, c, 3, threads, with_ref=threads == 1, with_bitpacked=True, with_avx2=with_avx2)
            row["share_of_peak"] = row["binary_gmacs"] / peak_t if peak_t else None
            share = f"{100 * row['share_of_peak']:.0f}%" if peak_t else "n/a"
            avx2 = ""
            if with_avx2:
                peak2 = avx2_peak_core * threads if avx2_peak_core else None
                row["avx2_share_of_avx2_peak"] = row["avx2_gmacs"] / peak2 if peak2 else None
                share2 = f"{100 * row['avx2_share_of_avx2_peak']:.0f}%" if avx2_peak_core else "n/a"
                avx2 = f" {row['avx2_gmacs']:9.1f} {share2:>8} {row['avx512_speedup_vs_avx2']:7.2f}x"
            results["figure2"].append(row)
            ref = f"{row['ref_ms']:9.2f} {row['speedup_vs_ref']:6.0f}x" if "ref_ms" in row else ""
            print(f"{f'{hw}x{hw}x{c}x{c}':>18} {row['fp32_ms']:9.3f} {row['binary_ms']:10.3f} "
                  f"{row['speedup_vs_fp32']:7.1f}x {row['binary_gmacs']:9.1f} {share:>8} "
                  f"{row['binary_bitpacked_out_ms']:9.3f}{avx2} {ref}")
        if args.quick:
            continue
        sweep = []
        for k in SWEEP_KERNELS:
            for hw in SWEEP_SIZES:
                for c in SWEEP_CHANNELS:
                    row = bench_case(rng, hw, c, k, threads, with_ref=False)
                    row["share_of_peak"] = row["binary_gmacs"] / peak_t if peak_t else None
                    sweep.append(row)
        results["sweep"].extend(sweep)
        summ = summarize(sweep)
        summ["best_gmacs"] = max(r["binary_gmacs"] for r in sweep)
        results["summary"][f"{threads}_threads"] = summ
        print(f"\n== {threads} thread(s): LCE sweep ({summ['n']} convolutions: channels {SWEEP_CHANNELS}, "
              f"sizes {SWEEP_SIZES}, kernels {SWEEP_KERNELS}) ==")
        print(f"{'Precision':>12} {'Mean':>7} {'Weighted mean':>14} {'Range':>14}")
        print(f"{'1 vs. 32':>12} {summ['mean']:6.1f}x {summ['weighted_mean']:13.1f}x "
              f"{summ['min']:6.1f}-{summ['max']:.1f}x")
        worst = min(sweep, key=lambda r: r["speedup_vs_fp32"])
        print(f"  slowest relative: {worst['hw']}x{worst['hw']}x{worst['channels']} k{worst['kernel']} "
              f"({worst['speedup_vs_fp32']:.1f}x); best binary throughput {summ['best_gmacs']:.0f} G MAC/s")

    results["load_average_end"] = os.getloadavg()
    write_section(args.out, "binary", results)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
