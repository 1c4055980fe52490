"""The numpy-only engine that runs a validated ``.onebit`` graph (docs/format.md).

``Interpreter(path_or_bytes_or_ModelFile, num_threads=1).run(x)`` takes and returns arrays in the
user's layout (the graph inputs'/outputs' ``layout``: NCHW images are permuted to NHWC inside
and the outputs permuted back).

Planning (once per input shape, per thread): symbolic dimensions (``"batch"``, ``"T"``) are
bound from the input arrays' shapes, every op is built into a :class:`~onebit.runtime.ops.Step`
for those shapes (weights prepared once per interpreter, scratch buffers once per plan), and
the op outputs get buffers from a pool by lifetime: a value's buffer returns to the pool after
its last reader ran, and an op's outputs never share memory with its inputs. After the first
run for a shape, a run allocates no intermediate arrays except in the few kernels that return
their own (``quantize``, ``dequantize``); the returned outputs are fresh copies, so they stay
valid across runs. Each thread gets its own plans (buffers), so several threads may call
:meth:`Interpreter.run` on one interpreter at once.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from onebit.errors import DTypeError, OnebitError, ShapeError
from onebit.kernels._common import as_array, check_threads
from onebit.runtime import schema
from onebit.runtime.format import LAYOUTS
from onebit.runtime.ops import BUILDERS, Node, Step, physical
from onebit.runtime.ops.blas import set_blas_threads

# numpy's OpenBLAS (the 1x1 convolutions and dense layers) runs on one thread whatever
# num_threads is: its idle workers spin beside the engine's own pool (onebit::parallel_for),
# and on this 2-core machine QuickNet-Small at 2 threads took 7.2 ms with OpenBLAS at 2 threads
# against 4.1 ms with OpenBLAS at 1 (1 thread: 4.5 ms). The binary and float kernels of the
# engine use num_threads.
_BLAS_THREADS = 1
from onebit.runtime.profile import OpTiming, Profile
from onebit.runtime.reader import ModelFile, load_model

__all__ = ["Interpreter"]

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, ModelFile]
_ALIGN = 64


@dataclass
class _Io:
    name: str
    dtype: np.dtype
    shape: tuple  # user layout, ints and symbols
    layout: str
    perm: tuple[int, ...]


def _aligned(nbytes: int) -> np.ndarray:
    """A 64-byte-aligned uint8 block of ``nbytes`` (cache-line aligned buffers for the kernels)."""
    raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    off = -raw.ctypes.data % _ALIGN
    return raw[off:off + nbytes]


class _Pool:
    """Buffers by lifetime: ``take`` the smallest free block that fits (or a new one), ``give``
    a block back once the value it held is dead."""

    def __init__(self) -> None:
        self.free: list[np.ndarray] = []
        self.blocks: list[np.ndarray] = []

    def take(self, nbytes: int) -> np.ndarray:
        fits = [b for b in self.free if b.nbytes >= nbytes]
        if fits:
            block = min(fits, key=lambda b: b.nbytes)
            self.free = [b for b in self.free if b is not block]
            return block
        block = _aligned(max(nbytes, 1))
        self.blocks.append(block)
        return block

    def give(self, block: np.ndarray) -> None:
        self.free.append(block)


@dataclass
class _Planned:
    """One op of a plan: its step and where its inputs/outputs live in the plan's slots."""

    name: str
    type: str
    step: Step
    ins: list[int]  # slot per input, -1 for an absent optional input
    outs: list[int]
    bufs: list[np.ndarray | None]


class _Plan:
    """Everything one input shape needs: steps, buffers, slots (one per value)."""

    def __init__(self, ops: list[_Planned], slots: list, in_slots: list[int], in_bufs: list,
                 in_perms: list[tuple[int, ...]], out_slots: list[int], nbytes: int) -> None:
        self.ops = ops
        self.in_perms = in_perms
        self.slots = slots
        self.in_slots = in_slots
        self.in_bufs = in_bufs
        self.out_slots = out_slots
        self.nbytes = nbytes

    def execute(self, arrays: list[np.ndarray], times: list[list[float]] | None = None) -> None:
        slots = self.slots
        for slot, buf, perm, arr in zip(self.in_slots, self.in_bufs, self.in_perms, arrays):
            if buf is None:
                slots[slot] = arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
            else:
                np.copyto(buf, arr.transpose(perm))
                slots[slot] = buf
        clock = time.perf_counter
        for k, op in enumerate(self.ops):
            ins = [slots[i] if i >= 0 else None for i in op.ins]
            if times is None:
                res = op.step.run(ins, op.bufs)
            else:
                t0 = clock()
                res = op.step.run(ins, op.bufs)
                times[k].append(clock() - t0)
            for i, r in zip(op.outs, res):
                slots[i] = r


class Interpreter:
    """Run a ``.onebit`` model with numpy and the native kernels (never torch).

    Args:
        model: a path, the file's bytes, or a :class:`~onebit.runtime.ModelFile` from
            :func:`~onebit.runtime.load_model` (a path or bytes is loaded and validated).
        num_threads: threads each native kernel may use; results do not depend on it. numpy's
            BLAS (float 1x1 convolutions, dense) is set to one thread (process-wide, see above).
        max_plans: plans (buffers for one set of input shapes) kept per thread, least recently
            used dropped first; a language model run at many sequence lengths keeps this many.

    Example::

        interp = Interpreter("quicknet.onebit", num_threads=2)
        logits = interp.run(images)          # images (N, 3, 224, 224) float32, like PyTorch
        print(interp.profile(images, runs=10))
    """

    def __init__(self, model: Source, num_threads: int = 1, *, max_plans: int = 8) -> None:
        self.model = model if isinstance(model, ModelFile) else load_model(model)
        self.num_threads = check_threads(num_threads)
        if not isinstance(max_plans, int) or max_plans < 1:
            raise ValueError(f"max_plans must be an int >= 1, got {max_plans!r}")
        self.max_plans = max_plans
        graph = self.model.graph
        self.inputs = [self._io(item) for item in graph["inputs"]]
        self.outputs = [self._io(item) for item in graph["outputs"]]
        self._ops = graph["ops"]
        self._op_cache: dict[str, dict] = {op["name"]: {} for op in self._ops}
        self._local = threading.local()

    @staticmethod
    def _io(item: dict) -> _Io:
        return _Io(item["name"], np.dtype(item["dtype"]), tuple(item["shape"]), item["layout"],
                   LAYOUTS[item["layout"]])

    # ---------------------------------------------------------------------------------------
    # public API

    def run(self, *args: Any, **kwargs: Any):
        """Run the graph once.

        Inputs: one array per graph input, positionally in graph order or by name (a dict or
        keyword arguments); numpy arrays (or CPU torch tensors) of the declared dtype, in the
        user's layout. Returns one array for a single-output graph, else a tuple in graph
        output order (a dict by name when the inputs were given by name). Outputs are new
        arrays (the engine's buffers are reused by the next run).

        Raises:
            ShapeError / DTypeError: an input's shape or dtype differs from the declared one
                (the message says expected vs got). ShapeError: an embedding id out of range.
        """
        by_name, arrays = self._gather(args, kwargs)
        plan = self._plan_for(arrays)
        set_blas_threads(_BLAS_THREADS)
        plan.execute(arrays)
        return self._results(plan, by_name)

    def profile(self, *args: Any, runs: int = 10, warmup: int = 1, **kwargs: Any) -> Profile:
        """Time every op over ``runs`` runs (after ``warmup`` untimed ones) on these inputs.

        Returns a :class:`~onebit.runtime.profile.Profile`: per op (name, type, median ms,
        share of the sum of medians), sorted by time, printable as a table like LCE Table 4,
        and grouped by op type with :meth:`Profile.by_type`.
        """
        if runs < 1:
            raise ValueError(f"runs must be >= 1, got {runs}")
        _, arrays = self._gather(args, kwargs)
        plan = self._plan_for(arrays)
        set_blas_threads(_BLAS_THREADS)
        for _ in range(warmup):
            plan.execute(arrays)
        times: list[list[float]] = [[] for _ in plan.ops]
        totals = []
        for _ in range(runs):
            t0 = time.perf_counter()
            plan.execute(arrays, times)
            totals.append(time.perf_counter() - t0)
        ops = [OpTiming(op.name, op.type, float(np.median(t)) * 1e3) for op, t in zip(plan.ops, times)]
        return Profile(ops, float(np.median(totals)) * 1e3, runs, self.num_threads)

    def planned_bytes(self, *args: Any, **kwargs: Any) -> int:
        """Bytes of the activation buffers planned for these inputs' shapes (the pool's blocks)."""
        _, arrays = self._gather(args, kwargs)
        return self._plan_for(arrays).nbytes

    # ---------------------------------------------------------------------------------------
    # inputs and outputs

    def _gather(self, args: tuple, kwargs: dict) -> tuple[bool, list[np.ndarray]]:
        names = [io.name for io in self.inputs]
        if len(args) == 1 and isinstance(args[0], dict) and not kwargs:
            kwargs, args = dict(args[0]), ()
        if args and kwargs:
            raise TypeError("give the inputs either positionally or by name, not both")
        if kwargs:
            unknown = sorted(set(kwargs) - set(names))
            missing = [n for n in names if n not in kwargs]
            if unknown or missing:
                raise ShapeError(f"expected inputs {names}, got {sorted(kwargs)} "
                                 f"(missing {missing}, unknown {unknown})")
            raw = [kwargs[n] for n in names]
        else:
            if len(args) != len(names):
                raise ShapeError(f"expected {len(names)} input(s) {names}, got {len(args)}")
            raw = list(args)
        return bool(kwargs), [self._check_input(io, x) for io, x in zip(self.inputs, raw)]

    @staticmethod
    def _check_input(io: _Io, x: Any) -> np.ndarray:
        try:
            x = as_array(x, f"input {io.name!r}")
        except DTypeError:
            x = np.asarray(x)
            if x.dtype == object:
                raise
        if x.dtype != io.dtype:
            raise DTypeError(f"input {io.name!r}: expected dtype {io.dtype}, got {x.dtype}; "
                             f"convert it with x.astype(np.{io.dtype})")
        if x.ndim != len(io.shape) or any(isinstance(d, int) and d != s for d, s in zip(io.shape, x.shape)):
            raise ShapeError(f"input {io.name!r}: expected shape {list(io.shape)} (layout {io.layout}), "
                             f"got {list(x.shape)}")
        return x

    def _bind(self, arrays: list[np.ndarray]) -> dict[str, int]:
        bound: dict[str, int] = {}
        for io, x in zip(self.inputs, arrays):
            for axis, (d, s) in enumerate(zip(io.shape, x.shape)):
                if isinstance(d, str):
                    if bound.setdefault(d, s) != s:
                        raise ShapeError(f"input {io.name!r}: axis {axis} is {d!r} = {bound[d]} (from an earlier "
                                         f"axis or input), got {s}; inputs must agree on {d!r}")
        return bound

    def _results(self, plan: _Plan, by_name: bool):
        outs = []
        for io, slot in zip(self.outputs, plan.out_slots):
            engine = plan.slots[slot]
            inv = tuple(int(i) for i in np.argsort(io.perm))
            outs.append(np.array(engine.transpose(inv), order="C", copy=True))
        if by_name:
            return {io.name: y for io, y in zip(self.outputs, outs)}
        return outs[0] if len(outs) == 1 else tuple(outs)

    # ---------------------------------------------------------------------------------------
    # planning

    def _plan_for(self, arrays: list[np.ndarray]) -> _Plan:
        plans = getattr(self._local, "plans", None)
        if plans is None:
            plans = self._local.plans = OrderedDict()
        key = tuple(x.shape for x in arrays)
        plan = plans.get(key)
        if plan is None:
            plan = plans[key] = self._make_plan(arrays)
            while len(plans) > self.max_plans:
                plans.popitem(last=False)
        else:
            plans.move_to_end(key)
        return plan

    def _make_plan(self, arrays: list[np.ndarray]) -> _Plan:
        bound = self._bind(arrays)
        model = self.model

        def concrete(shape: tuple, where: str) -> tuple[int, ...]:
            out = []
            for d in shape:
                if isinstance(d, str):
                    if d not in bound:
                        raise ShapeError(f"{where}: dimension {d!r} is not bound by any input shape; the graph "
                                         "declares a symbol that no input carries")
                    d = bound[d]
                out.append(int(d))
            return tuple(out)

        slot_of: dict[str, int] = {}
        slots: list = []

        def slot(name: str) -> int:
            if name not in slot_of:
                slot_of[name] = len(slots)
                slots.append(model.tensors.get(name))
            return slot_of[name]

        # Graph inputs: engine layout (user array permuted); copied into an aligned buffer when
        # the layout permutes or the array is not contiguous.
        in_slots, in_bufs = [], []
        for io, x in zip(self.inputs, arrays):
            in_slots.append(slot(io.name))
            eshape = tuple(x.shape[p] for p in io.perm)
            identity = io.perm == tuple(range(len(io.perm)))
            in_bufs.append(None if identity else _aligned(x.nbytes).view(x.dtype).reshape(eshape))

        # Lifetimes: the last op reading each value (through views: the root value's buffer).
        root: dict[str, str] = {}
        last: dict[str, int] = {}
        graph_outs = {io.name for io in self.outputs}
        for i, op in enumerate(self._ops):
            for ref in op["inputs"]:
                if ref and ref not in model.tensors:
                    last[root.get(ref, ref)] = i
            if op["type"] in ("reshape", "flatten"):
                src = op["inputs"][0]
                root[op["outputs"][0]] = root.get(src, src)
            for ref in op["outputs"]:
                last.setdefault(root.get(ref, ref), i)
        for name in graph_outs:
            last[root.get(name, name)] = math.inf

        pool = _Pool()
        held: dict[str, np.ndarray] = {}  # root value -> its pool block
        planned: list[_Planned] = []
        for i, op in enumerate(self._ops):
            sch = schema.OPS[op["type"]]
            weights, ins = [], []
            for ref in op["inputs"]:
                if not ref:
                    weights.append(None)
                    ins.append(None)
                    continue
                weights.append(model.tensors.get(ref))
                if ref in model.tensors:
                    arr = model.tensors[ref]
                    ins.append((arr.dtype.name, tuple(arr.shape)))
                else:
                    v = model.values[ref]
                    ins.append((v.dtype, concrete(v.shape, f"op {op['name']!r}")))
            outs = [(model.values[r].dtype, concrete(model.values[r].shape, f"op {op['name']!r}"))
                    for r in op["outputs"]]
            node = Node(op["name"], op["type"], op["attrs"], sch, weights, ins, outs, self.num_threads,
                        self._op_cache[op["name"]])
            try:
                step = BUILDERS[op["type"]](node)
            except OnebitError:
                raise
            bufs: list[np.ndarray | None] = []
            for ref, (dtype, shape), want in zip(op["outputs"], outs, step.planned):
                if not want:
                    bufs.append(None)
                    continue
                pdtype, pshape = physical(dtype, shape)
                block = pool.take(math.prod(pshape) * pdtype.itemsize)
                held[ref] = block
                bufs.append(block[:math.prod(pshape) * pdtype.itemsize].view(pdtype).reshape(pshape))
            planned.append(_Planned(op["name"], op["type"], step,
                                    [slot(r) if r else -1 for r in op["inputs"]],
                                    [slot(r) for r in op["outputs"]], bufs))
            for name in [n for n, at in last.items() if at == i]:
                del last[name]
                if name in held:
                    pool.give(held.pop(name))
        out_slots = [slot(io.name) for io in self.outputs]
        return _Plan(planned, slots, in_slots, in_bufs, [io.perm for io in self.inputs], out_slots, sum(b.nbytes for b in pool.blocks))
