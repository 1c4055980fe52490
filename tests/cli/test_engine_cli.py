"""onebit run / bench / profile on a small converted model: outputs equal the Interpreter's,
JSON files hold what was printed, and bad inputs give typed errors (clean messages from the
executable)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from onebit.cli import console_main, main
from onebit.converter import convert
from onebit.errors import FormatError, ShapeError
from onebit.models import create_model
from onebit.runtime import Interpreter

TINY = {"stem_strides": (1, 2), "section_blocks": (1, 1, 1, 1), "section_filters": (8, 16, 32, 64)}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("quicknet_small_cifar", **TINY).eval()
    path = tmp_path_factory.mktemp("m") / "tiny.onebit"
    convert(model, torch.zeros(1, 3, 32, 32), path=path)
    return path


def test_run_saves_the_engine_output(model_file, tmp_path, capsys):
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(model_file), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_array_equal(y, Interpreter(model_file).run(x))
    out = capsys.readouterr().out
    assert "float32 [3, 10]" in out and "top-5" in out


def test_run_random_input_and_npz(model_file, tmp_path):
    assert main(["run", str(model_file), "--batch", "2", "--seed", "4", "-o", str(tmp_path / "y.npz")]) == 0
    with np.load(tmp_path / "y.npz") as z:
        (name,) = z.files
        x = np.random.default_rng(4).standard_normal((2, 3, 32, 32)).astype(np.float32)
        np.testing.assert_array_equal(z[name], Interpreter(model_file).run(x))


def test_bench_and_profile_write_json(model_file, tmp_path, capsys):
    assert main(["bench", str(model_file), "--runs", "3", "--warmup", "1", "--threads", "1", "2",
                 "--json", str(tmp_path / "b.json")]) == 0
    bench = json.loads((tmp_path / "b.json").read_text())
    assert [r["threads"] for r in bench["rows"]] == [1, 2]
    assert all(0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"] for r in bench["rows"])
    assert main(["profile", str(model_file), "--runs", "3", "--json", str(tmp_path / "p.json")]) == 0
    prof = json.loads((tmp_path / "p.json").read_text())
    assert {"bconv2d", "conv2d", "dense"} <= {t["type"] for t in prof["by_type"]}
    assert sum(o["share"] for o in prof["ops"]) == pytest.approx(100.0)
    assert "sum of ops" in capsys.readouterr().out


def test_bad_inputs_are_typed_errors(model_file, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((1, 3, 31, 32), np.float32))
    with pytest.raises(ShapeError, match="32"):
        main(["run", str(model_file), "-i", str(tmp_path / "bad.npy")])
    with pytest.raises(ShapeError, match="1 input"):
        main(["run", str(model_file), "-i", str(tmp_path / "bad.npy"), "-i", str(tmp_path / "bad.npy")])
    broken = tmp_path / "broken.onebit"
    broken.write_bytes(model_file.read_bytes()[:100])
    with pytest.raises(FormatError):
        main(["bench", str(broken)])
    assert console_main(["profile", str(broken)]) == 1
    assert capsys.readouterr().err.startswith("onebit: error: ")


def test_executable_prints_a_clean_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "onebit", "run", str(tmp_path / "missing.onebit")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "missing.onebit" in r.stderr
