"""``onebit.converter.convert`` (defined here): a PyTorch model -> a ``.onebit`` file, through small passes.

    capture (torch.fx, eval) -> lower (NCHW -> NHWC, schema ops) -> commute_affine_pool
    -> fold_batchnorm -> fuse_activation -> binary_maxpool -> bitpacked_output -> flatten_order
    -> pack_weights -> prune -> emit -> write_model

(Larq Compute Engine, Bannink et al. 2021, sec. 3.1-3.2.) docs/convert.md lists the supported
modules and the tolerance the end-to-end tests hold the result to.
"""

from __future__ import annotations

import os
import numpy as np
import torch
from torch import nn

from onebit.converter import passes
from onebit.converter.capture import capture
from onebit.converter.emit import emit
from onebit.converter.ir import Graph, GraphIO, Node
from onebit.converter.lower import lower
from onebit.converter.writer import make_provenance, write_model

__all__ = ["convert", "to_ir", "add_probes", "serialize", "PROBE_PREFIX"]

PROBE_PREFIX = "sign:"


def to_ir(model: nn.Module, example_input: torch.Tensor, *, optimize: bool = True) -> Graph:
    """Capture and lower ``model``, then run the pass pipeline (``optimize=False``: lowering only)."""
    graph = lower(capture(model, example_input))
    if optimize:
        for p in passes.PIPELINE:
            p.run(graph)
            graph.prune()
    else:
        passes.pack_weights.run(graph)
    graph.infer()  # every op checked against the schema before the writer sees it
    return graph


def add_probes(graph: Graph) -> dict[str, tuple[str, np.ndarray | None]]:
    """Expose the bitpacked input of every binary conv/dense as a float ±1 graph output named
    ``sign:<module>`` (layout NCHW / NC, as torch sees the quantized input), for tests: the
    engine's bits compared with ``sign(x)`` of the training graph.

    Returns:
        ``{output name: (torch module name, order)}``; ``order`` is None, or for a dense layer
        after a flatten (``flatten_order``) the index array with engine feature ``j`` = torch
        feature ``order[j]``.
    """
    values = graph.infer()
    probes: dict[str, tuple[str, np.ndarray | None]] = {}
    for n in list(graph.nodes):
        src = n.meta.get("probe")
        if n.type not in ("bconv2d", "bdense") or src is None:
            continue
        bits = n.inputs[0]
        out = graph.fresh(PROBE_PREFIX + src)
        graph.nodes.append(Node("dequantize", graph.fresh(f"{out}.dequantize"), [bits], [out], {}, {},
                                {"source": src}))
        shape = list(values[bits].shape)
        if len(shape) == 4:
            graph.outputs.append(GraphIO(out, "float32", [shape[0], shape[3], shape[1], shape[2]], "NCHW"))
        else:
            graph.outputs.append(GraphIO(out, "float32", shape, "NTC" if len(shape) == 3 else "NC"))
        probes[out] = (src, n.meta.get("input_order"))
    return probes


def convert(
    model: nn.Module,
    example_input: torch.Tensor,
    path: str | os.PathLike | None = None,
    *,
    optimize: bool = True,
    probes: bool = False,
    source: str | None = None,
) -> bytes:
    """Convert a PyTorch model to a ``.onebit`` file (docs/format.md) and return its bytes.

    The model runs once on ``example_input`` (eval mode; its train/eval flag is restored) to
    trace it and record shapes; the file takes any batch size (axis 0 is the symbol ``batch``),
    the other input dimensions are fixed to those of ``example_input``.

    Args:
        model: an ``nn.Module`` built from supported layers (docs/convert.md), e.g.
            ``onebit.create_model("quicknet_small_cifar")``.
        example_input: a float tensor batch, ``(N, C, H, W)`` for images.
        path: if given, the file is also written there (atomically).
        optimize: run the graph passes (BatchNorm folding, activation fusion, bitpacked outputs,
            binary max-pool); False keeps the lowered graph op for op (for debugging).
        probes: also output every binary layer's input signs as ``sign:<module>`` (float ±1),
            to check them against the training graph.
        source: provenance "source" (default: the model's class path).
    Returns:
        The file's bytes.
    Raises:
        ConversionError: a module, function or pattern the converter does not support.
    """
    graph = to_ir(model, example_input, optimize=optimize)
    if probes:
        add_probes(graph)
    return serialize(graph, path, source=source or f"{type(model).__module__}.{type(model).__qualname__}")


def serialize(graph: Graph, path: str | os.PathLike | None = None, *, source: str | None = None) -> bytes:
    """Emit ``graph`` as a ``.onebit`` file (provenance: ``source``, torch and onebit versions,
    date); write it to ``path`` if given; return its bytes."""
    doc, tensors = emit(graph)
    prov = make_provenance(source, torch_version=torch.__version__)
    data = write_model(None, doc, tensors, provenance=prov)
    assert data is not None
    if path is not None:
        _atomic_write(path, data)
    return data


def _atomic_write(path: str | os.PathLike, data: bytes) -> None:
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
