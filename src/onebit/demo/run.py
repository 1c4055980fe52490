"""``run_demo``: train a CIFAR-10 QuickNet, convert it, run it in the engine, report.

Steps (each its own module): ``fit`` (train for ``cfg.minutes``), ``deploy.convert`` (write
``model.onebit``), ``deploy.compare`` (whole test set through PyTorch and the engine),
``deploy.latency`` (per image, 1 and 2 threads, engine vs PyTorch), the engine's per-op profile,
then ``report.write_report`` (``report.md`` + PNG plots). ``report.json`` holds every number;
``checkpoint.pt`` is an ``onebit.train`` checkpoint of the trained model (``load_checkpoint``).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from onebit.demo import deploy
from onebit.demo.config import DemoConfig
from onebit.demo.fit import fit, load_data
from onebit.demo.report import write_report

__all__ = ["run_demo"]


def _profile(path: str, image: np.ndarray, runs: int) -> dict[str, Any]:
    """The engine's per-op profile at 1 thread (``Interpreter.profile``; shares in percent)."""
    from onebit.runtime import Interpreter

    prof = Interpreter(path, num_threads=1).profile(image, runs=runs)
    print(prof.table(limit=12))
    return prof.as_dict()


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run the whole demo; returns the report (also written to ``cfg.out/report.json``)."""
    from onebit.runtime import Interpreter
    from onebit.train import atomic_write, make_state, save_checkpoint

    wall0 = time.perf_counter()
    data = load_data(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"CIFAR-10 from {data.path}: {len(data.x_train)} train / {len(data.x_test)} test images; "
          f"model {cfg.model} {cfg.model_kwargs}; training budget {cfg.minutes:g} min")

    res = fit(cfg, data)
    model = res.model
    totals = res.summary.to_dict()["totals"]
    save_checkpoint(out / "checkpoint.pt",
                    make_state(model, res.optimizer, res.scheduler, epoch=res.loader.epoch,
                               step=res.stats["steps"], loader=res.loader,
                               extra={"model": cfg.model, "model_kwargs": cfg.model_kwargs}))

    conv = deploy.convert(model, out)
    print(f"converted to {conv['path']}: {conv['bytes']:,} bytes "
          f"(float32 state_dict {conv['fp32_bytes']:,} bytes) in {conv['seconds']:.1f} s")
    engine = Interpreter(conv["path"], num_threads=res.stats["threads"])
    cmp = deploy.compare(model, engine, data, progress=cfg.progress)
    print(f"test accuracy: PyTorch {100 * cmp['torch_accuracy']:.2f}%, engine "
          f"{100 * cmp['engine_accuracy']:.2f}% on {cmp['images']} images (same argmax on "
          f"{100 * cmp['argmax_agreement']:.2f}%)")

    from onebit.data import ArrayLoader
    image = next(iter(ArrayLoader(data.x_test[:1], data.y_test[:1], 1, shuffle=False)))[0].numpy()
    lat = deploy.latency(model, conv["path"], image, runs=cfg.latency_runs)
    for r in lat:
        print(f"latency per image, {r['threads']} thread(s): engine {r['engine']['median_ms']:.3f} ms, "
              f"PyTorch fp32 twin {r['pytorch_fp32_twin']['median_ms']:.3f} ms "
              f"({r['speedup_vs_fp32_twin']:.1f}x), PyTorch trained model "
              f"{r['pytorch_trained']['median_ms']:.3f} ms")
    prof = _profile(conv["path"], image, cfg.latency_runs)

    report: dict[str, Any] = {
        "model": {"name": cfg.model, "kwargs": {k: list(v) if isinstance(v, tuple) else v
                                                for k, v in cfg.model_kwargs.items()},
                  "binary_params": int(totals["params_by_precision"].get("1", 0)),
                  "float_params": int(totals["params_by_precision"].get("32", 0)), **totals},
        "data": {"path": data.path, "train_images": len(data.x_train), "test_images": len(data.x_test)},
        "train": res.stats,
        "convert": conv,
        "compare": cmp,
        "latency": lat,
        "profile": prof,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, engine ISA "
                   f"{__import__('onebit.kernels', fromlist=['active_isa']).active_isa()}",
        "config": {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in asdict(cfg).items()},
        "checkpoint": str(out / "checkpoint.pt"),
    }
    report["wall_seconds"] = time.perf_counter() - wall0
    md = write_report(report, out)
    text = json.dumps(report, indent=2, default=list) + "\n"
    atomic_write(out / "report.json", lambda f: f.write(text.encode()))
    print(f"report: {md} (wall time {report['wall_seconds']:.0f} s)")
    return report
