"""Demo step 2: convert the trained model, check the engine against PyTorch, time both.

* ``convert``: ``onebit.converter.convert`` writes ``model.onebit``; the float32
  ``state_dict`` is written beside it as safetensors, the size a user would otherwise ship.
* ``compare``: the whole test set through PyTorch (eval mode) and through the engine
  (``onebit.runtime.Interpreter``, numpy in and out): accuracy of each, the fraction of images
  whose argmax agrees and the largest logit difference.
* ``latency``: one image at a time, median over ``runs``, for 1 and 2 threads: the engine,
  the model as trained (PyTorch eval with its quantizers) and its float32 twin (same
  architecture, plain float layers, ``onebit.nn.float_twin``), timed round-robin so that all
  three see the same machine load.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from onebit.demo.fit import CifarSplits
from onebit.timing import interleaved_samples

__all__ = ["convert", "compare", "latency"]


def convert(model: torch.nn.Module, out: Path) -> dict[str, Any]:
    """Write ``out/model.onebit`` and ``out/model_fp32.safetensors``; return paths and sizes."""
    from safetensors.torch import save_file

    from onebit.converter import convert as to_onebit

    path = out / "model.onebit"
    t0 = time.perf_counter()
    to_onebit(model, torch.zeros(1, 3, 32, 32), path=path)
    seconds = time.perf_counter() - t0
    fp32 = out / "model_fp32.safetensors"
    save_file({k: v.detach().float().contiguous() for k, v in model.state_dict().items()
               if v.is_floating_point()}, str(fp32))
    return {"path": str(path), "bytes": path.stat().st_size, "fp32_path": str(fp32),
            "fp32_bytes": fp32.stat().st_size, "seconds": seconds}


def compare(model: torch.nn.Module, engine: Any, data: CifarSplits, *, batch: int = 250,
            progress: bool = True) -> dict[str, Any]:
    """Accuracy of PyTorch and engine on the test set, argmax agreement, max |logit difference|."""
    from tqdm.auto import tqdm

    from onebit.data import ArrayLoader

    loader = ArrayLoader(data.x_test, data.y_test, batch, shuffle=False)
    correct_t = correct_e = agree = n = 0
    max_diff = 0.0
    t_torch = t_engine = 0.0
    with tqdm(total=len(loader), desc="test set: torch vs engine", unit="batch", disable=not progress,
              dynamic_ncols=True, mininterval=0.5) as bar, torch.no_grad():
        for x, y in loader:
            t0 = time.perf_counter()
            lt = model(x).numpy()
            t1 = time.perf_counter()
            le = np.asarray(engine.run(x.numpy()))
            t2 = time.perf_counter()
            t_torch, t_engine = t_torch + t1 - t0, t_engine + t2 - t1
            yt, pt, pe = y.numpy(), lt.argmax(1), le.argmax(1)
            correct_t += int((pt == yt).sum())
            correct_e += int((pe == yt).sum())
            agree += int((pt == pe).sum())
            n += len(yt)
            max_diff = max(max_diff, float(np.abs(lt - le).max()))
            bar.set_postfix(agree=f"{agree / n:.4f}", refresh=False)
            bar.update(1)
    return {"images": n, "torch_accuracy": correct_t / n, "engine_accuracy": correct_e / n,
            "argmax_agreement": agree / n, "max_abs_logit_diff": max_diff,
            "torch_seconds": t_torch, "engine_seconds": t_engine, "batch": batch}


def _round_robin_ms(fns: dict[str, Callable[[], Any]], runs: int, rounds: int = 5) -> dict[str, dict[str, float]]:
    """Median / min milliseconds of each function over ``runs`` calls, timed in alternating
    blocks after pauses (:func:`onebit.timing.interleaved_samples`)."""
    samples = interleaved_samples(list(fns.values()), max(1, -(-runs // rounds)), rounds)
    return {k: {"median_ms": float(np.median(v)) * 1e3, "min_ms": float(np.min(v)) * 1e3}
            for k, v in zip(fns, samples)}


def latency(model: torch.nn.Module, onebit_path: str, image: np.ndarray, *, runs: int = 50,
            threads: tuple[int, ...] = (1, 2)) -> list[dict[str, Any]]:
    """Per-image latency rows ``{threads, engine, pytorch_trained, pytorch_fp32_twin}`` (ms)."""
    from onebit.nn import float_twin
    from onebit.runtime import Interpreter

    twin = float_twin(model).eval()
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))
    before = torch.get_num_threads()
    rows = []
    try:
        for t in threads:
            torch.set_num_threads(t)
            engine = Interpreter(onebit_path, num_threads=t)
            with torch.no_grad():
                res = _round_robin_ms({
                    "engine": lambda: engine.run(image),
                    "pytorch_trained": lambda: model(x),
                    "pytorch_fp32_twin": lambda: twin(x),
                }, runs)
            res_row: dict[str, Any] = {"threads": t, **res}
            res_row["speedup_vs_fp32_twin"] = res["pytorch_fp32_twin"]["median_ms"] / res["engine"]["median_ms"]
            res_row["speedup_vs_trained"] = res["pytorch_trained"]["median_ms"] / res["engine"]["median_ms"]
            rows.append(res_row)
    finally:
        torch.set_num_threads(before)
    return rows
