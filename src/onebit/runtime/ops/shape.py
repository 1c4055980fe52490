"""Shape ops: reshape and flatten (views, no copy), transpose and concat (copies into the
planned buffer). Engine layout is row-major channels-last; these ops never reorder silently."""

from __future__ import annotations

import numpy as np

from onebit.runtime.ops import Node, Step, register


@register("reshape", "flatten")
def build_reshape(node: Node) -> Step:
    """y = x.reshape(shape): a view of the input's buffer (the planner keeps it alive)."""
    target = node.outputs[0][1]

    def run(ins, outs):
        return [ins[0].reshape(target)]

    return Step(run, (False,), alias=0)


@register("transpose")
def build_transpose(node: Node) -> Step:
    """y = x.transpose(perm), copied into a contiguous buffer."""
    perm = tuple(node.attrs["perm"])

    def run(ins, outs):
        np.copyto(outs[0], ins[0].transpose(perm))
        return outs

    return Step(run, (True,))


@register("concat")
def build_concat(node: Node) -> Step:
    """y = concatenate(inputs, axis)."""
    axis = node.attrs["axis"] % len(node.outputs[0][1])

    def run(ins, outs):
        np.concatenate(ins, axis=axis, out=outs[0])
        return outs

    return Step(run, (True,))
