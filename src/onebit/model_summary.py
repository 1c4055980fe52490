"""Per-layer model summary: parameters by precision, packed memory, binary/low-bit/float MACs, OPs.

The PyTorch counterpart of Larq's ``larq.models.summary``. Conventions (all stated once here):

Rows. Modules in registration order. A convolution or linear layer (any ``nn.Conv*d``,
``nn.Linear`` subclass, or a module with a ``kernel_precision`` attribute) is one row that also
holds the parameters of its children (its quantizers, e.g. RSign thresholds). Any other leaf
module is a row (activations and pooling too, as Larq lists every layer). A container is not a
row unless it owns parameters directly (then a row holds those alone). Leaf modules that hold no
parameter and did not run are left out. A parameter shared by several modules is counted once,
in the first row that holds it.

Precision of parameters. The ``weight`` of a layer with a ``kernel_precision`` (QuantConv2d,
QuantLinear, BitLinear; see the training-API contract) counts at that precision: 1 (binary),
1.58 (ternary), k (k-bit). Every other parameter (biases, BatchNorm, PReLU/RPReLU, float layers)
is 32-bit. Buffers (BatchNorm running statistics) are not parameters and are not counted.

Memory. Each parameter costs ``ceil(precision)`` bits, the size of onebit's packed formats:
1 bit per binary weight (bitpacked), 2 bits per ternary weight (onebit's 2-bit ternary packing;
the optional 5-trits-per-byte format would need 1.6), 8 bits per int8 weight, 32 bits per float.
Word padding of packed rows and per-channel multipliers added by the converter are not counted
(as in Larq). 1 kB = 1024 bytes, 1 MiB = 2**20 bytes.

MACs (multiply-accumulates), per example: the forward pass runs once on a batch of one.
Convolution: ``numel(output) * (in_channels / groups) * prod(kernel_size)`` (stride, padding,
dilation enter through the output size); transposed convolution: ``numel(input) *
(out_channels / groups) * prod(kernel_size)``; linear: ``numel(output) * in_features``, which is
``in * out * prod(leading dims)`` for inputs ``(1, ..., in)``. A module called several times
adds up the MACs of every call. Only Conv/Linear modules called as modules are counted: matrix
products written with ``torch.matmul`` (attention scores) are not.

A layer's MAC precision is ``max(input_precision, kernel_precision)`` (Larq's definition; 32 for
float layers and for a missing quantizer). MACs are then **binary** (precision 1: XNOR-popcount),
**low-bit** (1 < precision <= 8: ternary, int8, k-bit; e.g. BitLinear's ternary weights times
int8 activations) or **float** (everything else).

OPs, BNext convention (Guo et al. 2022, Table 2): ``OPs = BOPs/64 + QOPs/8 + FLOPs`` where BOPs
are binary MACs, QOPs the INT-4/8 (here: low-bit) MACs, and "FLOPs" are float **MACs**, not
2x MACs. The /8 for QOPs is read off Table 2: BNext-18-dagger has 1.68e9 BOPs, 135.2e6 QOPs and
0.43e8 OPs = 1.68e9/64 + 135.2e6/8 (= 0.2625e8 + 0.169e8); BNN has 1.70e9 BOPs, 1.20e8 FLOPs and
1.47e8 OPs = 1.70e9/64 + 1.20e8.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from onebit.errors import ShapeError

__all__ = ["LayerSummary", "ModelSummary", "summary"]

BINARY_OPS_PER_OP = 64  # BNext Table 2: 64 binary MACs per OP (one 64-bit XNOR-popcount)
LOW_BIT_OPS_PER_OP = 8  # BNext Table 2: 8 INT-4/8 MACs per OP


def _bits(precision: float) -> str:
    """``1.0 -> "1"``, ``1.58 -> "1.58"``, ``32.0 -> "32"``."""
    return f"{precision:g}"


def _mac_kind(precision: float) -> str:
    if precision <= 1:
        return "binary"
    if precision <= 8:
        return "low_bit"
    return "float"


@dataclass(frozen=True)
class LayerSummary:
    """One row of the summary: a layer's parameters, packed memory and per-example MACs."""

    name: str
    """Qualified module name (``"layer1.0.conv1"``); ``""`` for the model itself."""
    type: str
    """Class name of the module."""
    input_precision: float | None
    """Bits of the input quantizer (32.0 if none); None for modules that are not quantized layers."""
    kernel_precision: float | None
    """Bits of the kernel quantizer (32.0 if none); None for modules that are not quantized layers."""
    output_shapes: tuple[tuple[int, ...], ...]
    """Distinct output shapes seen (batch of one), in call order; empty when it did not run."""
    calls: int
    """How many times the module ran in the forward pass."""
    params: dict[float, int]
    """Parameter count by precision in bits (only non-zero entries)."""
    trainable_params: int
    """Parameters with ``requires_grad=True``."""
    memory_bits: int
    """Packed size: sum of count * ceil(precision) bits."""
    macs: int
    """Multiply-accumulates of all calls, per example."""
    mac_precision: float | None
    """``max(input precision, kernel precision)`` of a Conv/Linear layer; None for other modules."""

    @property
    def total_params(self) -> int:
        """All parameters of the row."""
        return sum(self.params.values())

    @property
    def binary_macs(self) -> int:
        """MACs with 1-bit input and 1-bit kernel (XNOR-popcount)."""
        return self._macs_of("binary")

    @property
    def low_bit_macs(self) -> int:
        """MACs whose operands have at most 8 bits, not both binary (ternary x int8, k-bit)."""
        return self._macs_of("low_bit")

    @property
    def float_macs(self) -> int:
        """All other MACs (the "FLOPs" of BNext Table 2)."""
        return self._macs_of("float")

    def _macs_of(self, kind: str) -> int:
        if self.mac_precision is None:
            return 0
        return self.macs if _mac_kind(self.mac_precision) == kind else 0

    @property
    def output_shape_str(self) -> str:
        """``"(1, 16, 4, 4)"``; ``"multiple"`` if calls gave different shapes; ``"-"`` if not run."""
        if self.calls == 0:
            return "-"
        if len(self.output_shapes) == 1:
            return "(" + ", ".join(str(d) for d in self.output_shapes[0]) + ")"
        return "multiple" if self.output_shapes else "?"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (precision keys as strings: ``"1"``, ``"1.58"``, ``"32"``)."""
        return {
            "name": self.name,
            "type": self.type,
            "input_precision": self.input_precision,
            "kernel_precision": self.kernel_precision,
            "output_shapes": [list(s) for s in self.output_shapes],
            "calls": self.calls,
            "params": {_bits(p): n for p, n in sorted(self.params.items())},
            "trainable_params": self.trainable_params,
            "memory_bits": self.memory_bits,
            "macs": self.macs,
            "mac_precision": self.mac_precision,
            "binary_macs": self.binary_macs,
            "low_bit_macs": self.low_bit_macs,
            "float_macs": self.float_macs,
        }


@dataclass(frozen=True)
class ModelSummary:
    """The rows of :func:`summary` and the model totals; ``str()`` renders the table."""

    model_name: str
    input_size: tuple[tuple[int, ...], ...]
    """Shape of each input, without the batch axis."""
    layers: list[LayerSummary] = field(default_factory=list)

    # -- totals --------------------------------------------------------------------------------
    @property
    def params_by_precision(self) -> dict[float, int]:
        """Parameter count per precision over all rows, sorted by precision."""
        out: dict[float, int] = {}
        for layer in self.layers:
            for p, n in layer.params.items():
                out[p] = out.get(p, 0) + n
        return dict(sorted(out.items()))

    @property
    def total_params(self) -> int:
        """All parameters (shared ones once)."""
        return sum(layer.total_params for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        """Parameters with ``requires_grad=True``."""
        return sum(layer.trainable_params for layer in self.layers)

    @property
    def non_trainable_params(self) -> int:
        """Parameters with ``requires_grad=False``."""
        return self.total_params - self.trainable_params

    @property
    def memory_bits(self) -> int:
        """Packed model size in bits (see the module doc for bits per parameter)."""
        return sum(layer.memory_bits for layer in self.layers)

    @property
    def memory_bytes(self) -> float:
        """Packed model size in bytes (``memory_bits / 8``)."""
        return self.memory_bits / 8

    @property
    def float32_bytes(self) -> int:
        """Size if every parameter were float32: ``4 * total_params``."""
        return 4 * self.total_params

    @property
    def compression_ratio(self) -> float:
        """``float32_bytes / memory_bytes`` (~32 for an all-binary model); 1.0 without parameters."""
        return self.float32_bytes / self.memory_bytes if self.memory_bits else 1.0

    @property
    def binary_macs(self) -> int:
        """MACs of layers whose input and kernel are both 1-bit (BOPs)."""
        return sum(layer.binary_macs for layer in self.layers)

    @property
    def low_bit_macs(self) -> int:
        """MACs of layers with 1 < max(input, kernel precision) <= 8 (QOPs)."""
        return sum(layer.low_bit_macs for layer in self.layers)

    @property
    def float_macs(self) -> int:
        """All other Conv/Linear MACs (the FLOPs of BNext Table 2: MACs, not 2x MACs)."""
        return sum(layer.float_macs for layer in self.layers)

    @property
    def total_macs(self) -> int:
        """Binary + low-bit + float MACs."""
        return self.binary_macs + self.low_bit_macs + self.float_macs

    @property
    def binary_mac_ratio(self) -> float:
        """Fraction of MACs that are binarized, ``binary_macs / total_macs`` (0.0 without MACs)."""
        return self.binary_macs / self.total_macs if self.total_macs else 0.0

    @property
    def ops(self) -> float:
        """``binary_macs/64 + low_bit_macs/8 + float_macs`` (BNext Table 2 OPs)."""
        return (
            self.binary_macs / BINARY_OPS_PER_OP
            + self.low_bit_macs / LOW_BIT_OPS_PER_OP
            + self.float_macs
        )

    # -- output --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: model name, input size, rows and totals."""
        return {
            "model": self.model_name,
            "input_size": [list(s) for s in self.input_size],
            "layers": [layer.to_dict() for layer in self.layers],
            "totals": {
                "params": self.total_params,
                "trainable_params": self.trainable_params,
                "non_trainable_params": self.non_trainable_params,
                "params_by_precision": {_bits(p): n for p, n in self.params_by_precision.items()},
                "memory_bits": self.memory_bits,
                "memory_bytes": self.memory_bytes,
                "float32_bytes": self.float32_bytes,
                "compression_ratio": self.compression_ratio,
                "binary_macs": self.binary_macs,
                "low_bit_macs": self.low_bit_macs,
                "float_macs": self.float_macs,
                "total_macs": self.total_macs,
                "binary_mac_ratio": self.binary_mac_ratio,
                "ops": self.ops,
            },
        }

    def __str__(self) -> str:
        return _render(self)


# -- rendering ---------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]], footer: list[str], left: int) -> list[str]:
    """ASCII table; the first ``left`` columns are left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows, footer]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "| " + " | ".join(parts) + " |"

    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    return [rule, line(header), rule, *(line(r) for r in rows), rule, line(footer), rule]


def _render(s: ModelSummary) -> str:
    precisions = list(s.params_by_precision)
    show_low_bit = s.low_bit_macs > 0
    header = ["Layer", "Type", "Bits in/w", "Output shape"]
    header += [f"# {_bits(p)}-bit" for p in precisions]
    header += ["Memory (kB)", "Binary MACs"]
    header += (["Low-bit MACs"] if show_low_bit else []) + ["Float MACs"]

    def macs(binary: int, low_bit: int, float_: int) -> list[str]:
        return [f"{binary:,}"] + ([f"{low_bit:,}"] if show_low_bit else []) + [f"{float_:,}"]

    rows = []
    for layer in s.layers:
        bits = "-"
        if layer.input_precision is not None and layer.kernel_precision is not None:
            bits = f"{_bits(layer.input_precision)}/{_bits(layer.kernel_precision)}"
        row = [layer.name or "(model)", layer.type, bits, layer.output_shape_str]
        row += [f"{layer.params.get(p, 0):,}" for p in precisions]
        row += [f"{layer.memory_bits / 8 / 1024:.2f}"]
        row += macs(layer.binary_macs, layer.low_bit_macs, layer.float_macs)
        rows.append(row)
    footer = ["Total", "", "", ""] + [f"{n:,}" for n in s.params_by_precision.values()]
    footer += [f"{s.memory_bytes / 1024:.2f}"] + macs(s.binary_macs, s.low_bit_macs, s.float_macs)
    shapes = ", ".join("(1, " + ", ".join(str(d) for d in shape) + ")" for shape in s.input_size)
    lines = [f"{s.model_name} summary, input {shapes}"]
    lines += _table(header, rows, footer, left=4)

    mib = 1024 * 1024
    totals = [
        ("Total params", f"{s.total_params:,}"),
        *((f"  {_bits(p)}-bit params", f"{n:,}") for p, n in s.params_by_precision.items()),
        ("Trainable params", f"{s.trainable_params:,}"),
        ("Non-trainable params", f"{s.non_trainable_params:,}"),
        ("Model size (packed)", f"{s.memory_bytes:,.2f} bytes = {s.memory_bytes / mib:.4f} MiB"),
        ("Float-32 equivalent", f"{s.float32_bytes:,} bytes = {s.float32_bytes / mib:.4f} MiB"),
        ("Compression ratio (float32 / packed)", f"{s.compression_ratio:.2f}x"),
        ("Binary MACs (BOPs)", f"{s.binary_macs:,}"),
        ("Low-bit MACs (QOPs, <= 8-bit)", f"{s.low_bit_macs:,}"),
        ("Float MACs (FLOPs)", f"{s.float_macs:,}"),
        ("Total MACs", f"{s.total_macs:,}"),
        ("Ratio of MACs that are binarized", f"{s.binary_mac_ratio:.4f}"),
        ("OPs = BOPs/64 + QOPs/8 + FLOPs", f"{s.ops:,.2f}"),
    ]
    width = max(len(k) for k, _ in totals)
    lines += [f"{k.ljust(width)}  {v}" for k, v in totals]
    return "\n".join(lines)


# -- collection --------------------------------------------------------------------------------
def _is_layer(module: nn.Module) -> bool:
    """Conv/Linear layers (quantized or not): one row that folds in its children (quantizers)."""
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
        return True
    return hasattr(module, "kernel_precision")


def _row_modules(model: nn.Module) -> list[tuple[str, nn.Module, bool]]:
    """``(name, module, whole_subtree)`` of every row, in registration order."""
    rows: list[tuple[str, nn.Module, bool]] = []
    seen: set[int] = set()

    def visit(name: str, module: nn.Module) -> None:
        if id(module) in seen:
            return
        seen.add(id(module))
        children = list(module.named_children())
        if _is_layer(module) or not children:
            rows.append((name, module, True))
            return
        if next(module.parameters(recurse=False), None) is not None:
            rows.append((name, module, False))
        for child_name, child in children:
            visit(f"{name}.{child_name}" if name else child_name, child)

    visit("", model)
    return rows


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _call_macs(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor | None) -> int:
    """MACs of one call of a Conv/Linear module (formulas in the module doc); 0 for others."""
    if output is None:
        return 0
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = math.prod(module.kernel_size)
        if module.transposed:
            x = _first_tensor(inputs)
            return 0 if x is None else x.numel() * (module.out_channels // module.groups) * kernel
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


@dataclass
class _Record:
    calls: int = 0
    macs: int = 0
    shapes: list[tuple[int, ...]] = field(default_factory=list)


def _precision_attr(module: nn.Module, attr: str) -> float | None:
    value = getattr(module, attr, None)
    return None if value is None else float(value)


def _as_sizes(input_size: Any) -> tuple[tuple[int, ...], ...]:
    """``(3, 32, 32)`` -> ``((3, 32, 32),)``; ``[(3, 8, 8), (5,)]`` -> two inputs."""
    def is_shape(x: Any) -> bool:
        return isinstance(x, (tuple, list, torch.Size)) and all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in x
        )

    if is_shape(input_size) and len(input_size) > 0:
        return (tuple(input_size),)
    several = isinstance(input_size, (tuple, list)) and len(input_size) > 0
    if several and all(is_shape(s) and len(s) > 0 for s in input_size):
        return tuple(tuple(s) for s in input_size)
    raise ShapeError(
        f"summary expects input_size as the shape of one example without the batch axis, e.g. "
        f"(3, 32, 32), or a list of such shapes for several inputs; got {input_size!r}"
    )


def summary(
    model: nn.Module,
    input_size: Sequence[int] | Sequence[Sequence[int]],
    *,
    dtype: torch.dtype = torch.float32,
    print_fn: Callable[[str], Any] | None = print,
) -> ModelSummary:
    """Print and return a per-layer summary: params by precision, packed memory, MACs, OPs.

    Runs one forward pass on a batch of one (``torch.randn(1, *input_size)`` for floating
    ``dtype``, zeros for integer dtypes such as token ids), in eval mode and without gradients,
    with forward hooks recording every row's output shape and MACs; the train/eval flag of every
    submodule is restored afterwards and BatchNorm statistics are not touched. Conventions for
    rows, precisions, memory, MACs and OPs are in the module doc; in short:

        memory = sum(params * ceil(bits)),  MAC precision = max(input bits, kernel bits),
        OPs = binary MACs / 64 + low-bit MACs / 8 + float MACs     (BNext Table 2)

    Args:
        model: the network; inputs are created on the device of its first parameter.
        input_size: shape of one example without the batch axis, e.g. ``(3, 32, 32)``, or a list
            of shapes for a model taking several inputs.
        dtype: dtype of the inputs (``torch.long`` for token ids).
        print_fn: called with the rendered table; ``None`` prints nothing.

    Returns:
        ModelSummary: ``.layers`` (LayerSummary rows) and totals; ``str()`` is the table,
        ``to_dict()`` a JSON-ready dict.

    Raises:
        ShapeError: ``input_size`` is not a shape, or the forward pass rejected the input shape.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"summary expects a torch.nn.Module, got {type(model).__name__}")
    sizes = _as_sizes(input_size)
    first = next(model.parameters(), None)
    if first is None:
        first = next(model.buffers(), None)
    device = first.device if first is not None else torch.device("cpu")
    generator = torch.Generator(device="cpu").manual_seed(0)
    if dtype.is_floating_point or dtype.is_complex:
        inputs = [torch.randn((1, *s), generator=generator, dtype=dtype).to(device) for s in sizes]
    else:
        inputs = [torch.zeros((1, *s), dtype=dtype, device=device) for s in sizes]

    rows = _row_modules(model)
    records = {id(m): _Record() for _, m, _ in rows}

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        record = records[id(module)]
        record.calls += 1
        out = _first_tensor(output)
        if out is not None and tuple(out.shape) not in record.shapes:
            record.shapes.append(tuple(out.shape))
        record.macs += _call_macs(module, args, out)

    modes = [(m, m.training) for m in model.modules()]
    handles = [m.register_forward_hook(hook) for _, m, _ in rows]
    try:
        model.eval()
        with torch.no_grad():
            try:
                model(*inputs)
            except RuntimeError as exc:
                shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
                raise ShapeError(
                    f"summary: {type(model).__name__} failed on input(s) of shape {shapes} built "
                    f"from input_size={input_size!r} plus a batch axis of 1: {exc}. Pass the shape "
                    "of ONE example without the batch axis, e.g. (3, 32, 32) for CIFAR images"
                ) from exc
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training

    seen_params: set[int] = set()
    layers = []
    for name, module, whole in rows:
        record = records[id(module)]
        kernel_precision = _precision_attr(module, "kernel_precision")
        input_precision = _precision_attr(module, "input_precision")
        params: dict[float, int] = {}
        trainable = memory = 0
        for param_name, param in module.named_parameters(recurse=whole):
            if id(param) in seen_params:
                continue
            seen_params.add(id(param))
            is_kernel = param_name == "weight" and kernel_precision is not None
            bits = kernel_precision if is_kernel else 32.0
            params[bits] = params.get(bits, 0) + param.numel()
            memory += param.numel() * math.ceil(bits)
            trainable += param.numel() if param.requires_grad else 0
        if record.calls == 0 and not params:
            continue
        quantized = kernel_precision is not None or input_precision is not None
        if quantized:  # a quantized layer without one of its quantizers: that side is float
            input_precision = 32.0 if input_precision is None else input_precision
            kernel_precision = 32.0 if kernel_precision is None else kernel_precision
        mac_precision = None
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            mac_precision = max(
                32.0 if input_precision is None else input_precision,
                32.0 if kernel_precision is None else kernel_precision,
            )
        layers.append(
            LayerSummary(
                name=name,
                type=type(module).__name__,
                input_precision=input_precision,
                kernel_precision=kernel_precision,
                output_shapes=tuple(record.shapes),
                calls=record.calls,
                params=dict(sorted(params.items())),
                trainable_params=trainable,
                memory_bits=memory,
                macs=record.macs,
                mac_precision=mac_precision,
            )
        )
    result = ModelSummary(model_name=type(model).__name__, input_size=sizes, layers=layers)
    if print_fn is not None:
        print_fn(str(result))
    return result
