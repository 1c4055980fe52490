"""Interpreter behaviour beyond single ops: loading sources, layouts, symbolic dimensions, input
checks, several inputs/outputs, preplanned buffers (reuse, no allocation per run), threads,
and the profile."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

from onebit.converter import write_model
from onebit.errors import DTypeError, ShapeError
from onebit.runtime import Interpreter, Profile, load_model
from tests.runtime import cnn_model, llm_model


@pytest.fixture(scope="module")
def cnn_bytes() -> bytes:
    graph, tensors, _ = cnn_model()
    return write_model(None, graph, tensors)


@pytest.fixture(scope="module")
def llm_bytes() -> bytes:
    graph, tensors, _ = llm_model()
    return write_model(None, graph, tensors)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 16, 16)).astype(np.float32)


def _chain(c: int = 64, hw: int = 32, depth: int = 6):
    """A float-only chain of convs and activations: (bytes, one input)."""
    rng = np.random.default_rng(0)
    tensors, ops, prev = {}, [], "x"
    for i in range(depth):
        tensors[f"w{i}"] = (rng.standard_normal((c, 3, 3, c)) * 0.05).astype(np.float32)
        tensors[f"b{i}"] = rng.standard_normal(c).astype(np.float32)
        ops.append({"type": "conv2d", "name": f"c{i}", "inputs": [prev, f"w{i}", f"b{i}"], "outputs": [f"h{i}"],
                    "attrs": {"padding": [1, 1, 1, 1]}})
        ops.append({"type": "relu", "name": f"r{i}", "inputs": [f"h{i}"], "outputs": [f"a{i}"], "attrs": {}})
        prev = f"a{i}"
    ops.append({"type": "global_avgpool", "name": "gap", "inputs": [prev], "outputs": ["y"], "attrs": {}})
    graph = {"inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", c, hw, hw], "layout": "NCHW"}],
             "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", c], "layout": "NC"}], "ops": ops}
    x = rng.standard_normal((1, c, hw, hw)).astype(np.float32)
    return write_model(None, graph, tensors), x


def test_sources_path_bytes_modelfile(tmp_path, cnn_bytes):
    path = tmp_path / "m.onebit"
    path.write_bytes(cnn_bytes)
    x = _images(2)
    ref = Interpreter(cnn_bytes).run(x)
    for src in (str(path), path, load_model(cnn_bytes)):
        for a, b in zip(Interpreter(src).run(x), ref):
            np.testing.assert_array_equal(a, b)


def test_outputs_layouts_and_dtypes(cnn_bytes):
    probs, features, fmap, b4 = Interpreter(cnn_bytes).run(_images(3))
    assert probs.shape == (3, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert features.shape == (3, 32)
    assert fmap.shape == (3, 64, 4, 4) and fmap.flags.c_contiguous  # NCHW output permuted back
    assert set(np.unique(fmap)) <= {-1.0, 1.0}
    assert b4.shape == (3, 4, 4, 8) and b4.dtype == np.int32
    assert np.abs(b4).max() <= 16 and (b4 % 2 == 0).all()  # K = 16: acc = K - 2*popcount is even


def test_symbolic_batch_is_bound_per_run(cnn_bytes):
    """Batch 1, 3 and 5 in one interpreter: each sample's result equals running it alone."""
    interp = Interpreter(cnn_bytes)
    x = _images(5, seed=3)
    whole = interp.run(x)
    for n in (1, 3):
        part = interp.run(x[:n])
        for a, b in zip(part, whole):
            np.testing.assert_allclose(a, b[:n], rtol=1e-6, atol=1e-6)
    for i in range(5):
        one = interp.run(x[i:i + 1])
        for a, b in zip(one, whole):
            np.testing.assert_allclose(a, b[i:i + 1], rtol=1e-6, atol=1e-6)


def test_llm_inputs_positional_named_and_symbol_T(llm_bytes):
    interp = Interpreter(llm_bytes)
    ids = np.array([[3, 1, 4, 1, 5, 9, 2]], np.int64)
    pos = np.arange(7, dtype=np.int64)
    y = interp.run(ids, pos)
    assert y.shape == (1, 7, 50)
    named = interp.run({"ids": ids, "pos": pos})
    assert set(named) == {"logits"}
    np.testing.assert_array_equal(named["logits"], y)
    np.testing.assert_array_equal(interp.run(ids=ids, pos=pos)["logits"], y)
    # causal: the first 4 tokens' logits do not depend on the later ones
    np.testing.assert_allclose(interp.run(ids[:, :4], pos[:4]), y[:, :4], rtol=1e-5, atol=1e-5)


def test_wrong_inputs_say_expected_and_got(cnn_bytes, llm_bytes):
    interp = Interpreter(cnn_bytes)
    with pytest.raises(DTypeError, match="expected dtype float32, got float64"):
        interp.run(_images(1).astype(np.float64))
    with pytest.raises(ShapeError, match=r"expected shape \['batch', 3, 16, 16\].*got \[1, 16, 16, 3\]"):
        interp.run(_images(1).transpose(0, 2, 3, 1))
    with pytest.raises(ShapeError, match="expected 1 input"):
        interp.run(_images(1), _images(1))
    llm = Interpreter(llm_bytes)
    with pytest.raises(ShapeError, match="'T'"):
        llm.run(np.zeros((1, 5), np.int64), np.arange(4, dtype=np.int64))
    with pytest.raises(ShapeError, match="missing"):
        llm.run(ids=np.zeros((1, 5), np.int64))
    with pytest.raises(ShapeError, match=r"token ids in \[0, 50\)"):
        llm.run(np.full((1, 2), 50, np.int64), np.arange(2, dtype=np.int64))


def test_outputs_are_not_overwritten_by_the_next_run(cnn_bytes):
    interp = Interpreter(cnn_bytes)
    a = interp.run(_images(2, seed=1))
    keep = [o.copy() for o in a]
    interp.run(_images(2, seed=2))
    for o, k in zip(a, keep):
        np.testing.assert_array_equal(o, k)


def test_thread_count_does_not_change_results(cnn_bytes):
    x = _images(2)
    for a, b in zip(Interpreter(cnn_bytes, num_threads=1).run(x), Interpreter(cnn_bytes, num_threads=2).run(x)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="num_threads"):
        Interpreter(cnn_bytes, num_threads=0)


def test_buffers_are_reused_by_lifetime():
    data, x = _chain()
    interp = Interpreter(data)
    model = load_model(data)
    every = sum(np.prod([d if isinstance(d, int) else 1 for d in v.shape]) * 4
                for name, v in model.values.items() if name != "x")
    one = 64 * 32 * 32 * 4
    planned = interp.planned_bytes(x)
    # a chain needs two live activations at a time (input and output of an op) plus the result
    assert planned <= 2 * one + 64 * 4 + 3 * 64, (planned, every)
    assert planned < every / 4


def test_no_allocation_per_run_after_the_first():
    data, x = _chain()
    interp = Interpreter(data)
    interp.run(x)
    y = interp.run(x)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            interp.run(x)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    activation = 64 * 32 * 32 * 4  # 256 KiB per intermediate value
    assert peak < y.nbytes + 32 * 1024 < activation / 4, peak


def test_plan_buffers_keep_their_identity(cnn_bytes):
    interp = Interpreter(cnn_bytes)
    x = _images(2)
    interp.run(x)
    plan = interp._plan_for([x])
    ptrs = [[b.ctypes.data for b in op.bufs if b is not None] for op in plan.ops]
    interp.run(_images(2, seed=5))
    assert interp._plan_for([x]) is plan
    assert [[b.ctypes.data for b in op.bufs if b is not None] for op in plan.ops] == ptrs


def test_plans_are_kept_per_shape_up_to_max_plans(llm_bytes):
    interp = Interpreter(llm_bytes, max_plans=2)
    ids = np.arange(6, dtype=np.int64)[None]
    pos = np.arange(6, dtype=np.int64)
    plans = [interp._plan_for([ids[:, :t], pos[:t]]) for t in (2, 3)]
    assert interp._plan_for([ids[:, :2], pos[:2]]) is plans[0]  # cached, now most recent
    interp._plan_for([ids[:, :4], pos[:4]])  # evicts T=3, the least recently used
    assert interp._plan_for([ids[:, :2], pos[:2]]) is plans[0]
    assert interp._plan_for([ids[:, :3], pos[:3]]) is not plans[1]
    with pytest.raises(ValueError, match="max_plans"):
        Interpreter(llm_bytes, max_plans=0)


def test_threads_share_one_interpreter(cnn_bytes):
    interp = Interpreter(cnn_bytes)
    inputs = [_images(2 + i % 2, seed=i) for i in range(8)]
    expected = [Interpreter(cnn_bytes).run(x) for x in inputs]
    errors: list[str] = []

    def work(k: int) -> None:
        for r in range(6):
            i = (k + r) % len(inputs)
            got = interp.run(inputs[i])
            for a, b in zip(got, expected[i]):
                if not np.array_equal(a, b):
                    errors.append(f"thread {k} run {r}: input {i} differs")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_profile(cnn_bytes):
    graph, _, _ = cnn_model()
    prof = Interpreter(cnn_bytes).profile(_images(2), runs=4)
    assert isinstance(prof, Profile) and prof.runs == 4
    assert [o.name for o in prof.ops] == [op["name"] for op in graph["ops"]]
    assert all(o.ms >= 0 for o in prof.ops) and prof.op_ms > 0
    assert prof.total_ms >= prof.op_ms * 0.5
    assert abs(sum(prof.share(o) for o in prof.ops) - 100.0) < 1e-6
    kinds = prof.by_type()
    assert {k.type for k in kinds} == {op["type"] for op in graph["ops"]}
    assert sum(k.count for k in kinds) == len(graph["ops"])
    assert [k.ms for k in kinds] == sorted((k.ms for k in kinds), reverse=True)
    text = prof.table()
    slowest = prof.sorted()[0]
    assert text.splitlines()[1].startswith(slowest.name) and "bconv2d" in text and "%" in text
    d = prof.as_dict()
    assert len(d["ops"]) == len(graph["ops"]) and d["by_type"][0]["type"] == kinds[0].type
