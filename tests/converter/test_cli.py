"""``onebit convert`` and ``onebit summary`` on registered models, with and without weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from onebit.cli import main
from onebit.errors import OnebitError
from onebit.models import create_model
from onebit.runtime import load_model
from tests.converter.helpers import randomize

torch.set_num_threads(1)


def test_convert_with_checkpoint(tmp_path, capsys):
    model = randomize(create_model("binary_alexnet_cifar"), seed=4)
    ckpt = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    out = tmp_path / "m.onebit"
    assert main(["convert", "binary_alexnet_cifar", "--input-size", "1,3,32,32", "--checkpoint", str(ckpt),
                 "-o", str(out), "-v"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "bdense x3" in text
    mf = load_model(out)
    assert mf.provenance["source"] == "onebit.models.binary_alexnet_cifar"
    # the trained weights are in the file: the last bdense's multiplier folds that BN's statistics
    bn = model.classifier[2].bn
    last = [op for op in mf.graph["ops"] if op["type"] == "bdense"][-1]
    mult = mf.tensors[last["inputs"][2]]
    np.testing.assert_allclose(mult, (1 / torch.sqrt(bn.running_var + bn.eps)).numpy(), rtol=1e-6)
    # a .pt training checkpoint (dict with "model") works too
    pt = tmp_path / "w.pt"
    torch.save({"format": "x", "model": model.state_dict()}, pt)
    assert main(["convert", "binary_alexnet_cifar", "--checkpoint", str(pt), "-o", str(tmp_path / "n.onebit")]) == 0
    assert (tmp_path / "n.onebit").read_bytes()[8:] != b""


def test_convert_errors(tmp_path):
    with pytest.raises(OnebitError, match="unknown model"):
        main(["convert", "quicknet_tiny", "-o", str(tmp_path / "x.onebit")])
    bad = tmp_path / "bad.safetensors"
    save_file({"nope": torch.zeros(1)}, str(bad))
    with pytest.raises(OnebitError, match="does not match"):
        main(["convert", "quicknet_small_cifar", "--checkpoint", str(bad), "-o", str(tmp_path / "x.onebit")])
    with pytest.raises(SystemExit):
        main(["convert", "quicknet_small_cifar", "--input-size", "1,3,a", "-o", str(tmp_path / "x.onebit")])


def test_summary_json(capsys):
    assert main(["summary", "quicknet_small_cifar", "--option", "num_classes=7", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    fc = d["layers"][-1]
    assert fc["name"] == "fc" and fc["output_shapes"] == [[1, 7]] and fc["params"] == {"32": 512 * 7 + 7}
    assert d["totals"]["binary_macs"] > 50 * d["totals"]["float_macs"] > 0
    assert main(["summary", "birealnet18_cifar", "--input-size", "1,3,32,32"]) == 0
    assert "Binary MACs" in capsys.readouterr().out
