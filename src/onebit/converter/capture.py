"""Pass 1, capture: trace a PyTorch model into a ``torch.fx`` graph with every node's shape.

The model is traced in eval mode with :class:`LeafTracer`: the layers the converter lowers as a
whole (quantized and float convolutions/linears, BatchNorm, activations, pools, ReAct shifts)
stay single ``call_module`` nodes, so their quantizers are read from the module (not traced
through, which would lose what is binary); any other module is traced through, down to torch
functions. A subclass counts as its base only if it keeps the base's ``forward`` (QuickNet's
``BlurPool2d`` is an ``nn.Conv2d``; a subclass with its own forward is traced through).

Then one forward pass with ``example_input`` records each node's output shape and dtype
(``node.meta["shape"]``, ``node.meta["dtype"]``) and the output itself
(``node.meta["value"]``, a detached tensor, used by the lowering to read constants).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx
from torch import nn

from onebit.errors import ConversionError
from onebit.nn import QuantConv2d, QuantLinear
from onebit.nn.react import LearnableBias, RPReLU

__all__ = ["LEAF_TYPES", "LeafTracer", "capture"]

# Modules kept whole; the lowering has a rule for each (onebit.converter.lower).
LEAF_TYPES: tuple[type[nn.Module], ...] = (
    QuantConv2d,
    QuantLinear,
    nn.Conv2d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.ReLU6,
    nn.Hardtanh,
    nn.PReLU,
    nn.Sigmoid,
    nn.SiLU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Identity,
    nn.Dropout,
    nn.Softmax,
    LearnableBias,
    RPReLU,
)


def _leaf_base(m: nn.Module) -> type[nn.Module] | None:
    """The most specific LEAF_TYPES class ``m`` is an instance of, if ``m`` keeps its forward."""
    for base in LEAF_TYPES:  # QuantConv2d before nn.Conv2d: most specific first
        if isinstance(m, base):
            return base if type(m).forward is base.forward else None
    return None


class LeafTracer(fx.Tracer):
    """fx tracer that keeps the converter's known layers (``LEAF_TYPES``) as leaves and treats
    every other ``torch.nn`` built-in module (LSTM, ...) as a leaf too, so the lowering can name
    it in its error instead of tracing its internals."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if _leaf_base(m) is not None:
            return True
        return super().is_leaf_module(m, module_qualified_name)


class _ShapeRecorder(fx.Interpreter):
    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            n.meta["shape"] = tuple(out.shape)
            n.meta["dtype"] = out.dtype
            n.meta["value"] = out.detach()
        return out


def capture(model: nn.Module, example_input: torch.Tensor) -> fx.GraphModule:
    """Trace ``model`` (switched to eval mode; its mode is restored) and record shapes.

    Args:
        model: the network (``onebit.models`` or any nn.Module built from supported layers).
        example_input: one float32 batch ``(N, C, H, W)`` (or ``(N, C)`` / ``(N, T, C)``).
    Returns:
        The ``fx.GraphModule``, each tensor node with ``meta["shape"|"dtype"|"value"]``.
    Raises:
        ConversionError: the model cannot be traced (data-dependent control flow, ...).
    """
    if not isinstance(model, nn.Module):
        raise ConversionError(f"convert expects a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor) or not example_input.is_floating_point():
        got = str(example_input.dtype) if isinstance(example_input, torch.Tensor) else type(example_input).__name__
        raise ConversionError(f"example_input must be a float tensor batch like torch.randn(1, 3, 32, 32), got {got}")
    was_training = model.training
    model.eval()
    try:
        try:
            graph = LeafTracer().trace(model)
        except Exception as e:  # fx raises many types (TraceError, TypeError, ...)
            raise ConversionError(
                f"torch.fx could not trace {type(model).__name__}: {type(e).__name__}: {e}. The converter needs a "
                "forward without data-dependent Python control flow; move such logic out of forward or into a "
                "supported layer."
            ) from e
        gm = fx.GraphModule(model, graph, type(model).__name__)
        n_inputs = sum(n.op == "placeholder" for n in graph.nodes)
        if n_inputs != 1:
            raise ConversionError(f"{type(model).__name__}.forward takes {n_inputs} inputs; the converter takes "
                                  "models with one input tensor")
        with torch.no_grad():
            try:
                _ShapeRecorder(gm).run(example_input.detach().float())
            except Exception as e:
                raise ConversionError(
                    f"{type(model).__name__} failed on example_input of shape {tuple(example_input.shape)}: "
                    f"{type(e).__name__}: {e}; pass a batch the model accepts, e.g. torch.randn(1, 3, 32, 32)"
                ) from e
    finally:
        model.train(was_training)
    return gm
