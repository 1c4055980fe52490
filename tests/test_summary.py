"""onebit.summary: counts checked by hand on small networks built from the real onebit.nn layers."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import onebit
from onebit.errors import ShapeError
from onebit.nn import BitLinear, LearnableBias, QuantConv2d, QuantLinear, RPReLU
from onebit.model_summary import LayerSummary, ModelSummary, summary


def _binary_conv(cin: int, cout: int, **kwargs) -> QuantConv2d:
    return QuantConv2d(
        cin, cout, 3, bias=False, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
        kernel_clip=1.0, **kwargs,
    )


class HandNet(nn.Module):
    """Float stem, binary 3x3 conv (one-padding, stride 2), BNs, BitLinear, float head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.bconv = _binary_conv(8, 16, stride=2, padding=1, pad_value=1.0)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.bitlinear = BitLinear(16, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (1, 3, 8, 8)
        x = self.bn1(self.stem(x))  # (1, 8, 8, 8)
        x = self.bn2(self.bconv(x))  # (1, 16, 4, 4)
        x = self.flatten(self.pool(x))  # (1, 16)
        return self.head(self.bitlinear(x))  # (1, 32) -> (1, 10)


def _rows(s: ModelSummary) -> dict[str, LayerSummary]:
    return {layer.name: layer for layer in s.layers}


def test_hand_checked_network_rows_and_totals():
    s = summary(HandNet(), (3, 8, 8), print_fn=None)
    rows = _rows(s)
    assert list(rows) == ["stem", "bn1", "bconv", "bn2", "pool", "flatten", "bitlinear", "head"]

    # stem: float Conv2d 3->8, 3x3, pad 1: output (1, 8, 8, 8).
    #   params 8*3*3*3 = 216 (32-bit); MACs = numel(out) * Cin * 9 = 512 * 27 = 13,824 (float).
    stem = rows["stem"]
    assert stem.output_shapes == ((1, 8, 8, 8),) and stem.calls == 1
    assert stem.params == {32.0: 216} and stem.memory_bits == 216 * 32
    assert (stem.binary_macs, stem.low_bit_macs, stem.float_macs) == (0, 0, 13_824)
    assert stem.input_precision is None and stem.kernel_precision is None and stem.mac_precision == 32.0

    # bn1: gamma + beta = 2*8 = 16 (32-bit); running stats are buffers, not counted. No MACs.
    assert rows["bn1"].params == {32.0: 16} and rows["bn1"].macs == 0 and rows["bn1"].mac_precision is None

    # bconv: binary QuantConv2d 8->16, 3x3, stride 2, one-padding 1: H_out = (8 + 2 - 3)//2 + 1 = 4.
    #   params 16*8*9 = 1,152 at 1 bit = 1,152 bits; MACs = 16*4*4 * 8*9 = 256 * 72 = 18,432 binary.
    bconv = rows["bconv"]
    assert bconv.output_shapes == ((1, 16, 4, 4),)
    assert bconv.params == {1.0: 1152} and bconv.memory_bits == 1152
    assert (bconv.input_precision, bconv.kernel_precision, bconv.mac_precision) == (1.0, 1.0, 1.0)
    assert (bconv.binary_macs, bconv.low_bit_macs, bconv.float_macs) == (18_432, 0, 0)

    # bn2: 2*16 = 32 (32-bit). pool and flatten: no params, no MACs, shown like Larq.
    assert rows["bn2"].params == {32.0: 32}
    assert rows["pool"].params == {} and rows["pool"].output_shapes == ((1, 16, 1, 1),)
    assert rows["flatten"].output_shapes == ((1, 16),) and rows["flatten"].memory_bits == 0

    # bitlinear: 16->32, no bias: 512 ternary weights at 2 packed bits = 1,024 bits;
    #   MAC precision max(8, 1.58) = 8 -> low-bit: 16*32 = 512.
    bl = rows["bitlinear"]
    assert bl.params == {1.58: 512} and bl.memory_bits == 1024
    assert (bl.input_precision, bl.kernel_precision, bl.mac_precision) == (8.0, 1.58, 8.0)
    assert (bl.binary_macs, bl.low_bit_macs, bl.float_macs) == (0, 512, 0)

    # head: float Linear 32->10: 320 + 10 = 330 params (32-bit); MACs 32*10 = 320 float.
    assert rows["head"].params == {32.0: 330} and rows["head"].float_macs == 320

    # Totals.
    #   params: 1-bit 1,152; 1.58-bit 512; 32-bit 216 + 16 + 32 + 330 = 594; all 2,258.
    assert s.params_by_precision == {1.0: 1152, 1.58: 512, 32.0: 594}
    assert (s.total_params, s.trainable_params, s.non_trainable_params) == (2258, 2258, 0)
    #   packed memory: 1,152*1 + 512*2 + 594*32 = 1,152 + 1,024 + 19,008 = 21,184 bits = 2,648 bytes.
    assert s.memory_bits == 21_184 and s.memory_bytes == 2648.0
    #   float32: 2,258 * 4 = 9,032 bytes; compression 9,032 / 2,648 = 3.4109x.
    assert s.float32_bytes == 9032
    assert s.compression_ratio == pytest.approx(9032 / 2648) and f"{s.compression_ratio:.4f}" == "3.4109"
    #   MACs: binary 18,432; low-bit 512; float 13,824 + 320 = 14,144; total 33,088.
    assert (s.binary_macs, s.low_bit_macs, s.float_macs, s.total_macs) == (18_432, 512, 14_144, 33_088)
    #   ratio of binarized MACs: 18,432 / 33,088 = 0.55706.
    assert s.binary_mac_ratio == pytest.approx(18_432 / 33_088) and f"{s.binary_mac_ratio:.4f}" == "0.5571"
    #   OPs = 18,432/64 + 512/8 + 14,144 = 288 + 64 + 14,144 = 14,496.
    assert s.ops == 14_496.0


def test_hand_checked_network_printed_table(capsys):
    model = HandNet()
    result = onebit.summary(model, (3, 8, 8))  # default print_fn=print
    text = capsys.readouterr().out
    assert text == str(result) + "\n"
    lines = text.splitlines()
    assert lines[0] == "HandNet summary, input (1, 3, 8, 8)"
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    assert header == [
        "Layer", "Type", "Bits in/w", "Output shape", "# 1-bit", "# 1.58-bit", "# 32-bit",
        "Memory (kB)", "Binary MACs", "Low-bit MACs", "Float MACs",
    ]
    table = {cells[0]: cells for cells in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines[4:12])}
    # memory kB: 1,152 bits = 144 bytes = 0.14 kB; 512 ternary = 128 bytes = 0.125 -> "0.12" kB.
    assert table["bconv"] == ["bconv", "QuantConv2d", "1/1", "(1, 16, 4, 4)", "1,152", "0", "0", "0.14",
                              "18,432", "0", "0"]
    assert table["bitlinear"] == ["bitlinear", "BitLinear", "8/1.58", "(1, 32)", "0", "512", "0", "0.12",
                                  "0", "512", "0"]
    assert table["stem"][2:4] == ["-", "(1, 8, 8, 8)"] and table["stem"][-1] == "13,824"
    total = [c.strip() for c in lines[13].strip("|").split("|")]
    # 2,648 bytes / 1,024 = 2.586 -> "2.59" kB.
    assert total == ["Total", "", "", "", "1,152", "512", "594", "2.59", "18,432", "512", "14,144"]
    assert "Total params                          2,258" in text
    assert "Model size (packed)                   2,648.00 bytes" in text
    assert "Float-32 equivalent                   9,032 bytes" in text
    assert "Compression ratio (float32 / packed)  3.41x" in text
    assert "Ratio of MACs that are binarized      0.5571" in text
    assert "OPs = BOPs/64 + QOPs/8 + FLOPs        14,496.00" in text


def test_low_bit_column_is_left_out_when_no_layer_has_low_bit_macs():
    model = nn.Sequential(_binary_conv(4, 4, padding=1), nn.Flatten(), nn.Linear(4 * 5 * 5, 2))
    s = summary(model, (4, 5, 5), print_fn=None)
    header = str(s).splitlines()[2]
    assert "Low-bit MACs" not in header and "Binary MACs" in header and "Float MACs" in header
    assert "# 1-bit" in header and "# 1.58-bit" not in header
    # binary conv: 4*5*5 outputs * 4*9 = 3,600 MACs; linear 100*2 = 200 float MACs.
    assert (s.binary_macs, s.float_macs) == (3600, 200)
    assert s.ops == 3600 / 64 + 200


def test_to_dict_is_json_and_agrees_with_the_dataclasses():
    s = summary(HandNet(), (3, 8, 8), print_fn=None)
    d = json.loads(json.dumps(s.to_dict()))
    assert d["model"] == "HandNet" and d["input_size"] == [[3, 8, 8]]
    assert [layer["name"] for layer in d["layers"]] == [layer.name for layer in s.layers]
    assert d["layers"][6]["params"] == {"1.58": 512} and d["layers"][6]["low_bit_macs"] == 512
    assert d["totals"]["params_by_precision"] == {"1": 1152, "1.58": 512, "32": 594}
    assert d["totals"]["memory_bits"] == 21_184 and d["totals"]["ops"] == 14_496.0
    assert d["totals"]["binary_mac_ratio"] == pytest.approx(18_432 / 33_088)


def test_conv_mac_count_with_groups_dilation_stride_and_depthwise():
    # Conv2d(4 -> 8, 3x3, groups 2, dilation 2, stride 2) on 11x11: effective kernel 5,
    #   H_out = (11 - 5)//2 + 1 = 4; MACs = 8*4*4 * (4/2)*9 = 128 * 18 = 2,304.
    # Depthwise Conv2d(8, 8, 3, groups=8, pad 1) on 4x4: MACs = 8*4*4 * 1*9 = 1,152.
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, stride=2, dilation=2, groups=2, bias=False),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
    )
    s = summary(model, (4, 11, 11), print_fn=None)
    first, second = s.layers
    assert first.output_shapes == ((1, 8, 4, 4),) and first.macs == 2304
    assert first.params == {32.0: 8 * 2 * 9}  # weight (8, 4/2, 3, 3)
    assert second.macs == 1152 and second.params == {32.0: 8 * 9 + 8}


def test_transposed_conv_counts_macs_per_input_pixel():
    # ConvTranspose2d(4 -> 6, 2x2, stride 2) on 3x3: every input pixel feeds 6*4 outputs:
    #   MACs = numel(input) * Cout * 4 = 36 * 24 = 864; output (1, 6, 6, 6).
    s = summary(nn.ConvTranspose2d(4, 6, 2, stride=2, bias=False), (4, 3, 3), print_fn=None)
    assert s.layers[0].output_shapes == ((1, 6, 6, 6),) and s.float_macs == 864


def test_linear_macs_count_every_leading_dimension():
    # Binary QuantLinear 6 -> 5 on (1, 3, 7, 6): MACs = 3*7 * 6*5 = 630, all binary.
    layer = QuantLinear(6, 5, input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_clip=1.0)
    s = summary(layer, (3, 7, 6), print_fn=None)
    (row,) = s.layers
    assert row.name == "" and row.type == "QuantLinear" and row.output_shapes == ((1, 3, 7, 5),)
    assert row.binary_macs == 630 and s.binary_mac_ratio == 1.0
    assert row.params == {1.0: 30, 32.0: 5}  # binary weight, float bias
    assert "(model)" in str(s)


def test_binary_kernel_with_float_input_counts_float_macs():
    # Larq: MAC precision = max(input, kernel) = max(32, 1) = 32 -> float; weights still 1 bit.
    layer = QuantConv2d(2, 3, 1, bias=False, kernel_quantizer="ste_sign", kernel_clip=1.0)
    s = summary(layer, (2, 4, 4), print_fn=None)
    (row,) = s.layers
    assert (row.input_precision, row.kernel_precision, row.mac_precision) == (32.0, 1.0, 32.0)
    assert row.params == {1.0: 6} and row.float_macs == 3 * 16 * 2 and row.binary_macs == 0
    assert "32/1" in str(s)


class Twice(nn.Module):
    """One Linear applied twice, one conv applied to two sizes, and a tied weight."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.tied = nn.Linear(4, 4, bias=False)
        self.tied.weight = self.fc.weight
        self.conv = nn.Conv2d(1, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (1, 4)
        y = self.tied(self.fc(self.fc(x)))
        a = self.conv(torch.zeros(1, 1, 2, 2))
        b = self.conv(torch.zeros(1, 1, 3, 3))
        return y.sum() + a.sum() + b.sum()


def test_repeated_modules_add_macs_and_count_params_once():
    s = summary(Twice(), (4,), print_fn=None)
    rows = _rows(s)
    # fc called twice: 2 * 4*4 = 32 MACs; params 16 + 4 once.
    assert rows["fc"].calls == 2 and rows["fc"].macs == 32 and rows["fc"].params == {32.0: 20}
    # tied shares fc.weight: its MACs count (16), its weight does not (already in fc).
    assert rows["tied"].macs == 16 and rows["tied"].params == {}
    # conv on 2x2 then 3x3: MACs 2*4 + 2*9 = 26; two output shapes -> "multiple".
    assert rows["conv"].calls == 2 and rows["conv"].macs == 26
    assert rows["conv"].output_shapes == ((1, 2, 2, 2), (1, 2, 3, 3))
    assert rows["conv"].output_shape_str == "multiple"
    assert s.total_params == 20 + 2 and s.float_macs == 32 + 16 + 26


class Block(nn.Module):
    """A container with a parameter of its own and nested children, ReActNet style."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.body = nn.Sequential(LearnableBias(c), _binary_conv(c, c, padding=1), nn.BatchNorm2d(c), RPReLU(c))
        self.unused = nn.Dropout()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.body(x) + x


def test_nested_containers_rows_and_rsign_parameters():
    model = nn.Sequential(Block(4), QuantConv2d(4, 4, 1, bias=False, input_quantizer="rsign",
                                                kernel_quantizer="ste_sign", kernel_clip=1.0))
    s = summary(model, (4, 3, 3), print_fn=None)
    rows = _rows(s)
    # Containers without own params are not rows; Block owns `scale`; Dropout never ran: left out.
    assert list(rows) == ["0", "0.body.0", "0.body.1", "0.body.2", "0.body.3", "1"]
    assert rows["0"].params == {32.0: 1} and rows["0"].macs == 0 and rows["0"].output_shapes == ((1, 4, 3, 3),)
    assert rows["0.body.0"].type == "LearnableBias" and rows["0.body.0"].params == {32.0: 4}
    assert rows["0.body.3"].type == "RPReLU" and rows["0.body.3"].params == {32.0: 12}
    # binary 3x3 conv 4->4 on 3x3, pad 1: 36 weights, MACs 4*9 * 4*9 = 1,296.
    assert rows["0.body.1"].binary_macs == 1296
    # RSign thresholds (4, float) fold into the conv's row; 1x1 binary kernel 16 weights.
    assert rows["1"].params == {1.0: 16, 32.0: 4} and rows["1"].binary_macs == 4 * 9 * 4
    assert s.binary_mac_ratio == 1.0


def test_train_and_eval_flags_are_restored_and_batchnorm_untouched():
    model = HandNet()
    model.train()
    model.bn2.eval()  # mixed modes must come back exactly
    before = model.bn1.running_mean.clone()
    summary(model, (3, 8, 8), print_fn=None)
    assert model.training and model.bn1.training and not model.bn2.training
    assert torch.equal(model.bn1.running_mean, before) and model.bn1.num_batches_tracked.item() == 0
    model.eval()
    summary(model, (3, 8, 8), print_fn=None)
    assert not any(m.training for m in model.modules())
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed


def test_integer_inputs_and_several_inputs():
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 6)
            self.proj = BitLinear(6, 4)

        def forward(self, tokens: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
            return self.proj(self.embed(tokens)) + extra.sum()

    s = summary(TwoInputs(), [(5,), (2,)], dtype=torch.long, print_fn=None)
    rows = _rows(s)
    # Embedding: 60 params, no MACs. BitLinear on (1, 5, 6): 5 tokens * 6*4 = 120 low-bit MACs.
    assert rows["embed"].params == {32.0: 60} and rows["embed"].macs == 0
    assert rows["proj"].low_bit_macs == 120 and rows["proj"].output_shapes == ((1, 5, 4),)
    assert s.input_size == ((5,), (2,))
    assert str(s).splitlines()[0] == "TwoInputs summary, input (1, 5), (1, 2)"


@pytest.mark.parametrize("bad", [(), (3, 0, 8), "3x8x8", (3.0, 8, 8), [(3, 8), ()], None])
def test_bad_input_size_raises_shape_error(bad):
    with pytest.raises(ShapeError, match="without the batch axis"):
        summary(HandNet(), bad, print_fn=None)


def test_input_size_with_a_batch_axis_is_explained():
    with pytest.raises(ShapeError, match="ONE example without the batch axis"):
        summary(HandNet(), (1, 3, 8, 8), print_fn=None)


def test_print_fn_none_prints_nothing_and_custom_print_fn_gets_the_table(capsys):
    summary(HandNet(), (3, 8, 8), print_fn=None)
    assert capsys.readouterr().out == ""
    got: list[str] = []
    s = summary(HandNet(), (3, 8, 8), print_fn=got.append)
    assert got == [str(s)]


def test_onebit_summary_is_the_function():
    from onebit.model_summary import summary as function

    assert onebit.summary is function
