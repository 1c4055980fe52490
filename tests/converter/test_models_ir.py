"""One model per family through the whole pipeline, run by the IR evaluator (numpy + onebit
kernels; independent of the runtime Interpreter, so a failure here and not in
test_models_engine points at the converter): argmax, logits and every binary input bit
(models_common). test_models_engine runs every registered model on the engine."""

from __future__ import annotations

import pytest
import torch

from onebit.converter.pipeline import add_probes, to_ir
from tests.converter.ireval import run_ir
from tests.converter.models_common import check, make_case

torch.set_num_threads(1)


@pytest.mark.parametrize("name", ["quicknet_small_cifar", "birealnet18_cifar", "binary_alexnet_cifar"])
def test_converted_model_matches_torch(name):
    case = make_case(name)
    graph = to_ir(case.model, case.x[:1])
    probes = add_probes(graph)
    check(case, run_ir(graph, case.x.numpy()), probes)


def test_check_catches_one_wrong_threshold():
    """The bit check is not vacuous: one output channel's threshold direction flipped in one
    bitpacked binary conv of BinaryAlexNet is caught."""
    case = make_case("binary_alexnet_cifar")
    graph = to_ir(case.model, case.x[:1])
    probes = add_probes(graph)
    conv = next(n for n in graph.nodes if n.attrs.get("output") == "bitpacked")
    conv.params["flip"] = conv.params["flip"].copy()
    conv.params["flip"][5] ^= 1
    with pytest.raises(AssertionError):
        check(case, run_ir(graph, case.x.numpy()), probes)
