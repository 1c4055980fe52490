"""Full-precision ops of the runtime against PyTorch fp32, one op at a time (issue 4 item 3).

Larq Compute Engine (Bannink et al. 2021, Table 4) found the full-precision layers to be ~40%
of QuickNet's latency once the binary convolutions are fast, so each float op of the
interpreter must be within 1.5x of PyTorch fp32 on the same op. Shapes are QuickNet's
(224x224 input, batch 1): the first conv 3x3/2 224x224x3 -> 32, depthwise 3x3 on the stem and
at 56x56, 1x1 convs of the transition blocks, the dense head, add, pools, relu/clamp and the
folded BatchNorm (scale_bias).

onebit: a one-op graph run by ``Interpreter`` in NHWC (engine layout, so no input permute),
timed as the planned op itself (``plan.execute``: what ``Interpreter.profile`` reports per
op). PyTorch: the same op on contiguous NCHW float32 (its default), ``torch.set_num_threads``
matching ours; scale_bias is ``F.batch_norm`` in eval mode (what the folded op replaces).
Both sides are timed in alternating blocks (``_timing.interleaved_times``), medians.

Run:  .venv/bin/python benchmarks/bench_runtime_ops.py   (writes benchmarks/results/runtime_ops.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from onebit import kernels
from onebit.converter import write_model
from onebit.runtime import Interpreter
from onebit.runtime.ops.blas import set_blas_threads

# benchmarks/ is on sys.path when this file runs as a script
from _results import RESULTS  # noqa: E402
from _timing import interleaved_times  # noqa: E402

LIMIT = 1.5  # issue 4: each float op within 1.5x of PyTorch fp32


def _graph(op_type, x, weights, refs, attrs, out_shape):
    layout = {2: "NC", 4: "NHWC"}
    graph = {"inputs": [{"name": "x", "dtype": "float32", "shape": list(x.shape), "layout": layout[x.ndim]}],
             "outputs": [{"name": "y", "dtype": "float32", "shape": list(out_shape),
                          "layout": layout[len(out_shape)]}],
             "ops": [{"type": op_type, "name": "op", "inputs": refs, "outputs": ["y"], "attrs": attrs}]}
    return write_model(None, graph, weights)


def cases(rng):
    """(name, onebit graph builder args, torch function of threads) for every benchmarked op."""
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    out = []

    def conv(name, hw, c, o, k, s, groups, pad, relu=True):
        x, w, b = f(1, hw, hw, c), f(o, k, k, c // groups) * 0.1, f(o)
        oh = (hw + 2 * pad - k) // s + 1
        attrs = {"stride": [s, s], "padding": [pad] * 4, "groups": groups, "clamp_min": 0.0 if relu else None}
        tx, tw, tb = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(
            w.transpose(0, 3, 1, 2).copy()), torch.from_numpy(b)
        fn = (lambda: F.relu(F.conv2d(tx, tw, tb, s, pad, 1, groups))) if relu else (
            lambda: F.conv2d(tx, tw, tb, s, pad, 1, groups))
        out.append((name, ("conv2d", x, {"w": w, "b": b}, ["x", "w", "b"], attrs, (1, oh, oh, o)), fn))

    conv("first conv 3x3/2 224x224x3->32", 224, 3, 32, 3, 2, 1, 1)
    conv("depthwise 3x3/2 112x112x32", 112, 32, 32, 3, 2, 32, 1)
    conv("depthwise 3x3 56x56x64", 56, 64, 64, 3, 1, 64, 1)
    conv("conv 1x1 56x56x32->64", 56, 32, 64, 1, 1, 1, 0, relu=False)
    conv("conv 1x1 28x28x64->128", 28, 64, 128, 1, 1, 1, 0, relu=False)
    conv("conv 1x1 14x14x256->256", 14, 256, 256, 1, 1, 1, 0, relu=False)

    x, w, b = f(1, 512), f(1000, 512), f(1000)
    tx, tw, tb = map(torch.from_numpy, (x, w, b))
    out.append(("dense 512->1000", ("dense", x, {"w": w, "b": b}, ["x", "w", "b"], {}, (1, 1000)),
                lambda: F.linear(tx, tw, tb)))

    def nchw(a):
        return torch.from_numpy(a.transpose(0, 3, 1, 2).copy())

    a = f(1, 56, 56, 64)
    ta = nchw(a)
    tb2 = nchw(f(1, 56, 56, 64))
    out.append(("add 56x56x64", ("add", a, {"b": f(1, 56, 56, 64)}, ["x", "b"], {}, a.shape),
                lambda: torch.add(ta, tb2)))
    out.append(("relu 56x56x64", ("relu", a, {}, ["x"], {}, a.shape), lambda: torch.relu(ta)))
    out.append(("clamp(-1,1) 56x56x64", ("clamp", a, {}, ["x"], {"min": -1.0, "max": 1.0}, a.shape),
                lambda: torch.clamp(ta, -1.0, 1.0)))
    s, bb = f(64), f(64)
    mean, var = torch.zeros(64), torch.ones(64)
    ts_, tbb = torch.from_numpy(s), torch.from_numpy(bb)
    out.append(("scale_bias 56x56x64", ("scale_bias", a, {"s": s, "b": bb}, ["x", "s", "b"], {}, a.shape),
                lambda: F.batch_norm(ta, mean, var, ts_, tbb, False, 0.0, 0.0)))
    p = f(1, 112, 112, 32)
    tp = nchw(p)
    out.append(("maxpool 3x3/2 pad 1 112x112x32",
                ("maxpool2d", p, {}, ["x"], {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1, 1, 1]},
                 (1, 56, 56, 32)), lambda: F.max_pool2d(tp, 3, 2, 1)))
    out.append(("maxpool 2x2/2 56x56x64",
                ("maxpool2d", a, {}, ["x"], {"kernel": [2, 2], "stride": [2, 2]}, (1, 28, 28, 64)),
                lambda: F.max_pool2d(ta, 2, 2)))
    out.append(("avgpool 2x2/2 56x56x64",
                ("avgpool2d", a, {}, ["x"], {"kernel": [2, 2], "stride": [2, 2]}, (1, 28, 28, 64)),
                lambda: F.avg_pool2d(ta, 2, 2)))
    g = f(1, 7, 7, 512)
    tg = nchw(g)
    out.append(("global avgpool 7x7x512", ("global_avgpool", g, {}, ["x"], {}, (1, 512)),
                lambda: F.adaptive_avg_pool2d(tg, 1).flatten(1)))
    return out


def bench(name, spec, torch_fn, threads):
    op_type, x, weights, refs, attrs, out_shape = spec
    interp = Interpreter(_graph(op_type, x, weights, refs, attrs, out_shape), num_threads=threads)
    interp.run(x)
    plan = interp._plan_for([x])
    set_blas_threads(1)  # as the Interpreter does (runtime/interpreter.py, _BLAS_THREADS)
    torch.set_num_threads(threads)
    (ours, _, _), (theirs, _, _) = interleaved_times([lambda: plan.execute([x]), torch_fn], 10, 0.3)
    return {"op": name, "type": op_type, "threads": threads, "onebit_ms": ours * 1e3, "torch_ms": theirs * 1e3,
            "ratio": ours / theirs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS / "runtime_ops.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"onebit runtime float ops ({kernels.active_isa()}) vs PyTorch {torch.__version__} fp32; "
          f"load average at start {os.getloadavg()[0]:.1f}")
    rows = []
    for threads in args.threads:
        print(f"\n== {threads} thread(s) ==")
        print(f"{'op':>34} {'onebit ms':>10} {'torch ms':>9} {'ratio':>6}")
        for name, spec, fn in cases(rng):
            row = bench(name, spec, fn, threads)
            rows.append(row)
            flag = "" if row["ratio"] <= LIMIT else f"  > {LIMIT}x"
            print(f"{name:>34} {row['onebit_ms']:10.3f} {row['torch_ms']:9.3f} {row['ratio']:5.2f}x{flag}")
    doc = {"machine": platform.processor() or platform.machine(), "isa": kernels.active_isa(),
           "torch": torch.__version__, "numpy": np.__version__, "limit": LIMIT,
           "load_average_end": os.getloadavg(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, args.out)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
