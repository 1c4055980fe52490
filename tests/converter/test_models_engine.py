"""Every registered model converted to a ``.onebit`` file and run by the runtime Interpreter
(the engine, numpy + native kernels, no torch): argmax, teacher-forced bit check of every binary
layer's input and logit tolerance (models_common); QuickNet Small also at 224x224."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onebit.converter.pipeline import add_probes, serialize, to_ir
from onebit.models import list_models
from onebit.runtime import Interpreter
from tests.converter.models_common import check, make_case

torch.set_num_threads(1)


def _engine_check(case):
    graph = to_ir(case.model, case.x[:1])
    probes = add_probes(graph)
    outputs = Interpreter(serialize(graph, source=case.name), num_threads=1).run({"x": case.x.numpy()})
    return check(case, outputs, probes)


@pytest.mark.parametrize("name", list_models())
def test_engine_matches_torch(name):
    _engine_check(make_case(name))


def test_quicknet_small_at_224():
    _engine_check(make_case("quicknet_small", batch=2, size=224))


def test_engine_batch_size_is_free():
    """The file's batch axis is symbolic: one file runs batches of 1 and 5 with the same results."""
    case = make_case("binary_alexnet_cifar", batch=5)
    engine = Interpreter(serialize(to_ir(case.model, case.x[:1])))
    full = engine.run(case.x.numpy())
    one = engine.run(case.x[:1].numpy())
    assert full.shape == (5, 10)
    assert (one == full[:1]).all()


@pytest.mark.parametrize("optimize", [False, True])
def test_engine_runs_every_lowered_op(optimize):
    """The op-zoo model of test_lower (prelu, rsign, zero/one padding, ceil-mode pools, 'same'
    grouped conv, clamps, transpose + flatten, bdense, concat, softmax), lowered op for op or
    optimized, gives torch's output on the engine."""
    from tests.converter.helpers import randomize, torch_out
    from tests.converter.test_lower import _Zoo

    torch.manual_seed(0)
    net = randomize(_Zoo())
    x = torch.randn(4, 3, 17, 17)
    data = serialize(to_ir(net, x[:1], optimize=optimize))
    np.testing.assert_allclose(Interpreter(data).run(x.numpy()), torch_out(net, x), rtol=1e-5, atol=1e-6)
