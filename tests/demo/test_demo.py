"""run_demo end to end on a small CIFAR-shaped file with a narrow QuickNet: every file of the
report exists, and the numbers in it are what really happened (the checkpoint and the
``.onebit`` file, evaluated again, reproduce the reported accuracies)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onebit.data import ArrayLoader
from onebit.demo import DemoConfig, run_demo
from onebit.demo.fit import _subset
from onebit.errors import DatasetError
from onebit.models import create_model
from onebit.runtime import Interpreter
from onebit.train import evaluate, load_checkpoint

TINY = {"stem_strides": (1, 2), "section_blocks": (1, 1, 1, 1), "section_filters": (8, 16, 32, 64)}


@pytest.fixture
def small_cifar(tmp_path, rng):
    """300 train / 60 test images; class k brightens colour channel k % 3 so there is signal."""
    def split(n):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 120, (n, 32, 32, 3), dtype=np.uint8)
        for k in range(10):
            x[y == k, :, :, k % 3] += np.uint8(12 * k)
        return x, y.astype(np.uint8)

    (x_train, y_train), (x_test, y_test) = split(300), split(60)
    path = tmp_path / "data" / "cifar10.npz"
    path.parent.mkdir()
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path, x_test, y_test.astype(np.int64)


def test_demo_report_is_real(small_cifar, tmp_path, capsys):
    path, x_test, y_test = small_cifar
    out = tmp_path / "run"
    cfg = DemoConfig(data=str(path), minutes=0.03, out=str(out), seed=3, batch_size=32, threads=1,
                     max_train=256, max_test=50, model_kwargs=TINY, latency_runs=2, progress=False)
    report = run_demo(cfg)

    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report, default=list))
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "accuracy.png", "checkpoint.pt", "latency.png", "model.onebit", "model_fp32.safetensors",
        "profile.png", "report.json", "report.md", "size.png"])                  # no temp files
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    train, cmp, conv = report["train"], report["compare"], report["convert"]
    assert train["steps"] >= 1 and train["images"] == 32 * train["steps"]     # drop_last batches
    assert 0 < train["seconds"] < 0.03 * 60 + 5 and train["images_per_s"] > 0
    assert 0 <= train["final_lr"] < 0.3 * cfg.lr        # the cosine ran out with the budget
    assert cmp["images"] == 50 and cmp["argmax_agreement"] >= 0.98
    assert conv["bytes"] == (out / "model.onebit").stat().st_size < conv["fp32_bytes"]
    assert [r["threads"] for r in report["latency"]] == [1, 2]
    assert all(r["engine"]["median_ms"] > 0 for r in report["latency"])
    types = {t["type"] for t in report["profile"]["by_type"]}
    assert {"bconv2d", "conv2d", "quantize"} <= types
    assert sum(t["share"] for t in report["profile"]["by_type"]) == pytest.approx(100.0)

    # The checkpoint holds the evaluated model, and the .onebit file the engine evaluated:
    # evaluating both again on the same 50 images reproduces the reported accuracies.
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == train["steps"] and state["extra"]["model"] == cfg.model
    model = create_model(cfg.model, **TINY)
    model.load_state_dict(state["model"])
    xs, ys = _subset(x_test, y_test, 50, cfg.seed + 1)
    loader = ArrayLoader(xs, ys, 500, shuffle=False)
    assert evaluate(model, loader, progress=False).accuracy == cmp["torch_accuracy"]
    x, y = next(iter(loader))
    engine = Interpreter(str(out / "model.onebit")).run(x.numpy())
    assert float((engine.argmax(1) == y.numpy()).mean()) == cmp["engine_accuracy"]

    md = (out / "report.md").read_text()
    assert f"{100 * cmp['engine_accuracy']:.2f}%" in md and "![latency](latency.png)" in md
    printed = capsys.readouterr().out
    assert "Total params" in printed and "Binary MACs" in printed       # onebit.summary table
    assert "test accuracy: PyTorch" in printed and "report:" in printed


def test_subset_is_seeded_and_without_repeats(rng):
    x = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    y = np.arange(40)
    xa, ya = _subset(x, y, 15, 7)
    xb, yb = _subset(x, y, 15, 7)
    assert len(set(ya.tolist())) == 15 and np.array_equal(ya, yb)
    np.testing.assert_array_equal(xa, x[ya])
    assert _subset(x, y, None, 7)[1] is y and _subset(x, y, 99, 7)[1] is y


@pytest.mark.parametrize("field, value, match", [
    ("minutes", 0, "minutes"), ("minutes", float("nan"), "minutes"), ("batch_size", 1, "batch_size"),
    ("threads", 0, "threads"), ("max_train", 0, "max_train"), ("lr", 0.0, "lr"),
    ("augment_after", -1, "augment_after"), ("latency_runs", 0, "latency_runs"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        DemoConfig(**{field: value})


def test_missing_data_says_how_to_fix(tmp_path):
    with pytest.raises(DatasetError, match="ONEBIT_CIFAR10"):
        run_demo(DemoConfig(data=str(tmp_path / "nope"), out=str(tmp_path / "o"), progress=False))


def test_cli_help_lists_the_demo_flags(capsys):
    from onebit.cli import main

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "--minutes" in capsys.readouterr().out
