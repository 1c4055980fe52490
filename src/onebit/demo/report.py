"""Demo step 3: ``report.md`` with PNG plots (matplotlib, no display needed).

Plots: ``accuracy.png`` (PyTorch vs engine on the test set), ``size.png`` (float32 state_dict
vs ``.onebit``), ``latency.png`` (ms per image, 1 and 2 threads: float32 twin, trained model in
PyTorch, engine), ``profile.png`` (the engine's time per op type, as in LCE Table 4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_report"]


def _plots(report: dict[str, Any], out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: dict[str, str] = {}

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files[name.removesuffix(".png")] = name

    cmp = report["compare"]
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    vals = [100 * cmp["torch_accuracy"], 100 * cmp["engine_accuracy"]]
    bars = ax.bar(["PyTorch", "onebit engine"], vals, color=["#888888", "#1f77b4"])
    ax.bar_label(bars, fmt="%.2f%%")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, max(100.0, max(vals) * 1.1))
    ax.set_title(f"CIFAR-10 test set ({cmp['images']} images)")
    save(fig, "accuracy.png")

    conv = report["convert"]
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    vals = [conv["fp32_bytes"] / 2**20, conv["bytes"] / 2**20]
    bars = ax.bar(["float32 state_dict", ".onebit"], vals, color=["#888888", "#1f77b4"])
    ax.bar_label(bars, fmt="%.2f MiB")
    ax.set_ylabel("file size (MiB)")
    ax.set_title(f"{conv['fp32_bytes'] / conv['bytes']:.1f}x smaller")
    save(fig, "size.png")

    rows = report["latency"]
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    kinds = [("pytorch_fp32_twin", "PyTorch fp32 twin", "#888888"),
             ("pytorch_trained", "PyTorch (trained model)", "#bbbbbb"),
             ("engine", "onebit engine", "#1f77b4")]
    width = 0.8 / len(kinds)
    for i, (key, label, color) in enumerate(kinds):
        xs = [j + (i - 1) * width for j in range(len(rows))]
        bars = ax.bar(xs, [r[key]["median_ms"] for r in rows], width, label=label, color=color)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(rows)), [f"{r['threads']} thread{'s' * (r['threads'] > 1)}" for r in rows])
    ax.set_ylabel("ms per image (median, batch 1)")
    ax.legend(fontsize=7)
    save(fig, "latency.png")

    prof = report["profile"]["by_type"]
    if prof:
        fig, ax = plt.subplots(figsize=(5.6, 0.35 * len(prof) + 1.2))
        names = [p["type"] for p in prof][::-1]
        shares = [p["share"] for p in prof][::-1]
        bars = ax.barh(names, shares, color="#1f77b4")
        ax.bar_label(bars, fmt="%.1f%%", fontsize=7)
        ax.set_xlabel("share of engine time (%), 1 thread")
        save(fig, "profile.png")
    return files


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out: Path) -> Path:
    """Write the plots and ``out/report.md``; return the markdown path."""
    from onebit.train import atomic_write

    files = _plots(report, out)
    cmp, conv, tr, m = report["compare"], report["convert"], report["train"], report["model"]
    md = [
        "# onebit demo: train, convert, run",
        "",
        f"Model: `{m['name']}` with `{m['kwargs']}` ({m['binary_params']:,} binary and "
        f"{m['float_params']:,} float parameters; {m['binary_macs']:,} binary MACs and "
        f"{m['float_macs']:,} float MACs per image; {100 * m['binary_mac_ratio']:.1f}% of MACs binary).",
        "",
        f"Trained {tr['steps']} steps ({tr['epochs']:.2f} epochs, {tr['images']:,} images) in "
        f"{tr['seconds']:.0f} s at {tr['images_per_s']:.0f} images/s on {tr['threads']} thread(s). "
        f"Converted in {conv['seconds']:.1f} s.",
        "",
        "## Accuracy",
        "",
        _table(["", "PyTorch", "onebit engine"],
               [[f"test accuracy ({cmp['images']} images)", f"{100 * cmp['torch_accuracy']:.2f}%",
                 f"{100 * cmp['engine_accuracy']:.2f}%"],
                ["evaluation time (s)", f"{cmp['torch_seconds']:.1f}", f"{cmp['engine_seconds']:.1f}"]]),
        "",
        f"Same argmax on {100 * cmp['argmax_agreement']:.2f}% of the images; largest logit "
        f"difference {cmp['max_abs_logit_diff']:.2e}.",
        "",
        "![accuracy](accuracy.png)",
        "",
        "## Size",
        "",
        _table(["file", "bytes"], [["float32 state_dict (safetensors)", f"{conv['fp32_bytes']:,}"],
                                   ["`.onebit`", f"{conv['bytes']:,}"]]),
        "",
        f"The `.onebit` file is {conv['fp32_bytes'] / conv['bytes']:.1f}x smaller.",
        "",
        "![size](size.png)",
        "",
        "## Latency per image (batch 1, median)",
        "",
        _table(["threads", "PyTorch fp32 twin (ms)", "PyTorch trained model (ms)", "engine (ms)",
                "speedup vs fp32 twin"],
               [[str(r["threads"]), f"{r['pytorch_fp32_twin']['median_ms']:.3f}",
                 f"{r['pytorch_trained']['median_ms']:.3f}", f"{r['engine']['median_ms']:.3f}",
                 f"{r['speedup_vs_fp32_twin']:.1f}x"] for r in report["latency"]]),
        "",
        "The fp32 twin is the same architecture with plain float layers (what one would deploy "
        "without binarization); the trained model runs its quantizers in PyTorch.",
        "",
        "![latency](latency.png)",
    ]
    prof = report["profile"]
    if prof["by_type"]:
        md += ["", f"## Where the engine spends its time (1 thread, median of {prof['runs']} runs)", "",
               _table(["op type", "ops", "ms", "share"],
                      [[p["type"], str(p["count"]), f"{p['ms']:.3f}", f"{p['share']:.1f}%"]
                       for p in prof["by_type"]]),
               "", f"Sum of the ops {prof['op_ms']:.3f} ms; a whole run {prof['total_ms']:.3f} ms "
                   "(the rest is the interpreter's own overhead).",
               "", "![profile](profile.png)"]
    md += ["", f"Machine: {report['machine']}. Wall time of the whole demo: "
               f"{report['wall_seconds']:.0f} s.", ""]
    text = "\n".join(md)
    path = out / "report.md"
    atomic_write(path, lambda f: f.write(text.encode()))
    report["plots"] = files
    return path
