"""Model latency: the onebit engine against the same architecture in PyTorch fp32, batch 1.

Models (issue 4; LCE paper Table 3 / Larq Zoo): QuickNet Small, Medium, Large and
Bi-RealNet-18 at 224x224, random weights with randomised BatchNorm statistics (latency does not
depend on the values). For each model and thread count (1 and 2):

* engine: ``onebit.converter.convert`` once, then ``onebit.runtime.Interpreter.run`` on one
  NCHW image;
* PyTorch fp32: ``onebit.nn.float_twin(model)`` (every binary layer replaced by a plain float
  layer with the same shape), eval mode, ``torch.no_grad``, ``torch.set_num_threads`` matching;

timed round-robin (engine block, PyTorch block, ...) so both see the same machine load, first
call of a block untimed, median reported. LCE reports QuickNet Small/Medium/Large at 4.5 / 8.6 /
17.4 ms on one Pixel 1 core (Table 3); the goal here is >= 8x faster than the fp32 twin.

Run:  .venv/bin/python benchmarks/bench_models.py   (writes benchmarks/results/models.json)
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from onebit import kernels
from onebit.converter import convert
from onebit.models import create_model
from onebit.nn import float_twin
from onebit.runtime import Interpreter

# benchmarks/ is on sys.path when this file runs as a script
from _results import RESULTS, write_section  # noqa: E402
from _timing import interleaved_times  # noqa: E402

MODELS = ["quicknet_small", "quicknet_medium", "quicknet_large", "birealnet18"]


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Running statistics and affine parameters of every BatchNorm drawn at random."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)


def bench_model(name: str, threads: list[int], size: int) -> list[dict]:
    torch.manual_seed(0)
    model = create_model(name).eval()
    randomize_bn(model)
    twin = float_twin(model).eval()
    x = torch.randn(1, 3, size, size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onebit"
        t0 = time.perf_counter()
        convert(model, x, path=path)
        convert_s = time.perf_counter() - t0
        file_bytes = path.stat().st_size
        xn = x.numpy()
        rows = []
        for t in threads:
            torch.set_num_threads(t)
            engine = Interpreter(str(path), num_threads=t)
            with torch.no_grad():
                te, tf = interleaved_times([lambda: engine.run(xn), lambda: twin(x)], min_reps=10,
                                           budget_s=2.0)
            rows.append({
                "model": name, "input": [1, 3, size, size], "threads": t,
                "engine_ms": te[0] * 1e3, "engine_p10_ms": te[1] * 1e3, "engine_p90_ms": te[2] * 1e3,
                "fp32_ms": tf[0] * 1e3, "fp32_p10_ms": tf[1] * 1e3, "fp32_p90_ms": tf[2] * 1e3,
                "speedup_vs_fp32": tf[0] / te[0], "onebit_bytes": file_bytes,
                "fp32_param_bytes": 4 * sum(p.numel() for p in twin.parameters()),
                "convert_seconds": convert_s,
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--out", type=Path, default=RESULTS / "models.json")
    args = parser.parse_args()

    print(f"onebit engine ({kernels.active_isa()}) vs PyTorch {torch.__version__} fp32 twin; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}")
    header = f"{'model':>16} {'thr':>3} {'engine ms':>10} {'fp32 ms':>9} {'speedup':>8} {'.onebit MB':>10} {'fp32 MB':>8}"
    print(header)
    print("-" * len(header))
    rows = []
    for name in args.models:
        for r in bench_model(name, args.threads, args.size):
            rows.append(r)
            print(f"{name:>16} {r['threads']:>3} {r['engine_ms']:10.2f} {r['fp32_ms']:9.2f} "
                  f"{r['speedup_vs_fp32']:7.1f}x {r['onebit_bytes'] / 1e6:10.2f} "
                  f"{r['fp32_param_bytes'] / 1e6:8.2f}", flush=True)
    write_section(args.out, "models", {
        "benchmark": "model latency, batch 1: onebit engine vs PyTorch fp32 twin",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "isa": kernels.active_isa(),
                    "torch": torch.__version__, "load_average_start": os.getloadavg()},
        "rows": rows,
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
