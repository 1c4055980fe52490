"""run_demo end to end on a small CIFAR-shaped file: the report states what really happened
(the checkpoint, evaluated again, gives the reported accuracy on the stated number of images)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from onebit import demo
from onebit.data import ArrayLoader
from onebit.demo import DemoConfig, DemoNet, run_demo
from onebit.errors import DatasetError
from onebit.train import evaluate, load_checkpoint


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
    cfg = DemoConfig(data=str(path), minutes=0.04, out=str(out), seed=3, batch_size=32, threads=1,
                     max_train=256, max_test=50, progress=False)
    report = run_demo(cfg)

    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    assert sorted(os.listdir(out)) == ["checkpoint.pt", "report.json"]     # no temp files
    train = report["train"]
    assert report["test_images"] == 50 and 0.0 <= report["test_accuracy"] <= 1.0
    assert train["steps"] >= 1 and train["images"] == 32 * train["steps"]     # drop_last batches
    assert train["epochs"] == pytest.approx(train["images"] / 256)
    assert 0 < train["seconds"] < 0.04 * 60 + 5 and train["images_per_s"] > 0
    assert 0 <= train["final_lr"] < 0.3 * cfg.lr        # the cosine ran out with the budget
    assert report["wall_seconds"] >= train["seconds"] + report["eval_seconds"]
    assert report["threads"] == 1 and report["config"]["max_test"] == 50
    totals = report["model"]
    assert totals["params"] == sum(p.numel() for p in DemoNet().parameters())
    assert totals["binary_macs"] > 0 and totals["float_macs"] > 0

    # The checkpoint holds the evaluated model: evaluating it again on the same 50 images
    # reproduces the reported accuracy and loss.
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == train["steps"] and state["extra"]["model"] == "DemoNet"
    model = DemoNet()
    model.load_state_dict(state["model"])
    xs, ys = demo._subset(x_test, y_test, 50, cfg.seed + 1)
    ev = evaluate(model, ArrayLoader(xs, ys, 500, shuffle=False), progress=False)
    assert ev.images == 50
    assert ev.accuracy == report["test_accuracy"]
    assert ev.loss == pytest.approx(report["test_loss"], rel=1e-6)

    printed = capsys.readouterr().out
    assert "Total params" in printed and "Binary MACs" in printed       # onebit.summary table
    assert "on 50 images" in printed and "test accuracy" in printed


def test_demo_net_is_binary_inside_float_at_the_ends():
    from onebit.nn import QuantConv2d

    torch.manual_seed(0)
    model = DemoNet()
    quant = [m for m in model.modules() if isinstance(m, QuantConv2d)]
    assert len(quant) == 4
    for m in quant:
        assert (m.input_precision, m.kernel_precision, m.pad_value, m.kernel_clip) == (1, 1, 1.0, 1.0)
    assert not isinstance(model.stem[0], QuantConv2d) and isinstance(model.head, torch.nn.Linear)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_subset_is_seeded_and_without_repeats(rng):
    x = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    y = np.arange(40)
    xa, ya = demo._subset(x, y, 15, 7)
    xb, yb = demo._subset(x, y, 15, 7)
    assert len(set(ya.tolist())) == 15 and np.array_equal(ya, yb)
    np.testing.assert_array_equal(xa, x[ya])
    assert demo._subset(x, y, None, 7)[1] is y and demo._subset(x, y, 99, 7)[1] is y


@pytest.mark.parametrize("field, value, match", [
    ("minutes", 0, "minutes"), ("minutes", float("nan"), "minutes"), ("batch_size", 1, "batch_size"),
    ("threads", 0, "threads"), ("max_train", 0, "max_train"), ("lr", 0.0, "lr"),
    ("augment_after", -1, "augment_after"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        DemoConfig(**{field: value})


def test_missing_data_says_how_to_fix(tmp_path):
    with pytest.raises(DatasetError, match="ONEBIT_CIFAR10"):
        run_demo(DemoConfig(data=str(tmp_path / "nope"), out=str(tmp_path / "o"), progress=False))
