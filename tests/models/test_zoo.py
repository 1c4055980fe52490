"""Every registered model (iterated from the registry): construction without
StarvedWeightsWarning, forward shape, backward and latent-weight clip (CIFAR variants), state_dict
round trip through safetensors, torch.export; the ImageNet variants' binary parameter and MAC
counts against Larq Zoo; the layer choices (quantizers, padding, BatchNorm constants) of each
family against the Larq Zoo source."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import nn

import onebit
from onebit.models import create_model, list_models, registry
from onebit.models.binary_alexnet import batch_norm_no_scale
from onebit.models.quicknet import BlurPool2d
from onebit.nn import QuantConv2d, QuantLinear, StarvedWeightsWarning, clip_after_step
from onebit.quantizers import ApproxSign, MagnitudeAwareSign, SteSign

ALL = list_models()
CIFAR = list_models("*_cifar")
IMAGENET = [name for name in ALL if name not in CIFAR]


@pytest.fixture(scope="module", autouse=True)
def _threads():
    """One thread: on a shared 2-core machine two OpenMP threads run up to 10x slower than one
    (measured here, load ~6: quicknet_large_cifar forward 7.0 s vs 0.7 s). Free the cached
    models afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    _built.cache_clear()


@functools.lru_cache(maxsize=None)
def _built(name: str) -> nn.Module:
    """One eval-mode instance per model for the read-only tests; building fails on a
    StarvedWeightsWarning (every binary kernel must come with its latent-weight clip)."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StarvedWeightsWarning)
        return create_model(name).eval()


def _input(model: nn.Module, batch: int = 2, seed: int = 1) -> torch.Tensor:
    c, h, w = model.default_cfg.input_size
    return torch.randn(batch, c, h, w, generator=torch.Generator().manual_seed(seed))


def _binary_layers(model: nn.Module) -> list[nn.Module]:
    return [
        m for m in model.modules()
        if isinstance(m, (QuantConv2d, QuantLinear)) and m.kernel_precision == 1.0
    ]


def _bns(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


# -- generic: every registered model -----------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_forward_shape(name):
    """The one forward per model: batch of 2, eval mode, no grad."""
    model = _built(name)
    with torch.no_grad():
        y = model(_input(model))
    assert y.shape == (2, model.default_cfg.num_classes) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert not torch.allclose(y[0], y[1])  # the output depends on the input


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_through_safetensors(name):
    model = _built(name)
    blob = safetensors_save(model.state_dict())  # no pickle; fails on shared/odd tensors
    torch.manual_seed(123)
    twin = create_model(name).eval()
    before = twin.state_dict()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    twin.load_state_dict(safetensors_load(blob), strict=True)
    after = twin.state_dict()
    assert after.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert after[key].dtype == value.dtype and torch.equal(after[key], value), key
    if name in CIFAR:  # cheap enough for a second forward: the twin computes the same function
        x = _input(model)
        with torch.no_grad():
            assert torch.equal(twin(x), model(x))


@pytest.mark.parametrize("name", CIFAR)
def test_backward_reaches_every_trainable_parameter_and_clip_holds(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    logits = model(_input(model))
    loss = F.cross_entropy(logits, torch.tensor([1, 7]))
    loss.backward()
    assert torch.isfinite(loss)
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        else:  # the fixed blur of QuickNet transitions
            assert p.grad is None, pname
    binary = _binary_layers(model)
    assert binary and all(m.weight.grad.abs().sum() > 0 for m in binary)  # the STE lets it pass

    # Latent weights pushed outside the clip come back after one optimizer step with the hook.
    with torch.no_grad():
        for m in binary:
            m.weight.mul_(0).add_(torch.randn_like(m.weight) * 4 * m.kernel_clip)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    clip_after_step(optimizer, model)
    optimizer.step()
    for m in binary:
        assert m.weight.abs().max() <= m.kernel_clip
        assert m.weight.abs().max() == m.kernel_clip  # some weights sit on the clip
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n


@pytest.mark.parametrize("name", ["quicknet_small_cifar", "birealnet18_cifar",
                                  "binary_alexnet_cifar"])
def test_torch_export_matches_eager(name):
    """One model per family (the variants share the code): the forward has no data-dependent
    Python control flow, so torch.export captures it and the captured graph computes the same."""
    model = _built(name)
    x = _input(model)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_default_cfg(name):
    cfg = _built(name).default_cfg
    if name in CIFAR:
        assert cfg.input_size == (3, 32, 32) and cfg.num_classes == 10
        assert (cfg.dataset, cfg.mean, cfg.std) == ("cifar10", registry.CIFAR10_MEAN,
                                                    registry.CIFAR10_STD)
        assert cfg.reference is None
    else:
        assert cfg.input_size == (3, 224, 224) and cfg.num_classes == 1000
        assert (cfg.dataset, cfg.mean, cfg.std) == ("imagenet", registry.IMAGENET_MEAN,
                                                    registry.IMAGENET_STD)
        assert (cfg.crop_pct, cfg.interpolation) == (0.875, "bicubic")
        assert cfg.reference is not None and "Larq Zoo" in cfg.reference.source


# -- ImageNet variants against Larq Zoo ------------------------------------------------------
def _larq_params(model: nn.Module) -> int:
    """Parameters as Larq's ``lq.models.summary`` counts them: every weight (trainable or not),
    but a BatchNorm counts 2 per channel whatever its options (beta is fused with the moving
    mean and gamma with the moving variance; scale=False / center=False leave the moving
    statistics)."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n += 2 * m.num_features
        else:
            n += sum(p.numel() for p in m.parameters(recurse=False))
    return n


def _keras_params(model: nn.Module) -> int:
    """Parameters as Keras ``count_params`` counts them: every weight, BatchNorm moving mean and
    variance included (2 per channel on top of gamma/beta)."""
    return sum(p.numel() for p in model.parameters()) + sum(2 * bn.num_features
                                                            for bn in _bns(model))


# Reference numbers. Two sources:
# (a) Larq Zoo's model-summary snapshots, tests/snapshots/model_summaries/<Model>_<dim>.txt
#     (lq.models.summary of the Keras model at 224x224): "# 1-bit" and "# 32-bit" totals
#     (BatchNorm counted as in _larq_params), "1-bit MACs" and "32-bit MACs" totals.
# (b) The parameter count and memory published in the Larq Zoo docs (docs/zoo/index.md table
#     and the model docstrings), which use Keras count_params for the literature models and
#     Larq's summary convention for the QuickNet family (sota/quicknet.py, weights v1.0.0).
# Larq Zoo has no snapshot of the v1.0.0 QuickNets (its snapshots are of an older QuickNet),
# so their binary and float figures are derived by arithmetic from sota/quicknet.py below, and
# the derivation is tied to the published totals: binary + float == the docstring's
# "Parameters" exactly, and binary/8 + 4*float bytes == its "Memory" to the printed 0.01 MiB.
LARQ_ZOO = {
    # BinaryAlexNet: snapshot BinaryAlexNet_256.txt; docs 61 859 192 params, 7.49 MB.
    # 1-bit MACs: conv2-5 and the three dense layers; 32-bit MACs: conv1 (float input,
    # binary weights: Larq counts the MAC at the higher precision) 56*56*64*(11*11*3).
    "binary_alexnet": dict(
        binary_params=61_827_776, float_params=20_944,
        binary_macs=768_512_000, float_macs=72_855_552,
        docs_params=61_859_192, docs_convention="keras",
        shapes={"features.0.bn": (1, 64, 27, 27), "features.1.bn": (1, 192, 13, 13),
                "features.4.bn": (1, 256, 6, 6), "classifier.0.fc": (1, 4096)},
    ),
    # Bi-RealNet: snapshot BiRealNet_512.txt; docs 11 699 112 params, 4.03 MB.
    # 32-bit MACs: stem 112*112*64*147 = 118,013,952, three 1x1 shortcuts 3 * 6,422,528,
    # classifier 512,000.
    "birealnet18": dict(
        binary_params=10_985_472, float_params=704_040,
        binary_macs=1_676_279_808, float_macs=137_793_536,
        docs_params=11_699_112, docs_convention="keras",
        shapes={"stem.2": (1, 64, 56, 56), "features.4.bn": (1, 128, 28, 28),
                "features.15.bn": (1, 512, 7, 7)},
    ),
    # QuickNet (Medium), N=(4,4,4,4), k=(64,128,256,512), sections at 56/28/14/7:
    #   binary params = 9 * 4 * (64^2 + 128^2 + 256^2 + 512^2) = 12,533,760
    #   binary MACs   = 16 blocks * 9 * k_i^2 * s_i^2, every block 9*64^2*56^2 = 115,605,504
    #                 = 1,849,688,064
    #   float MACs    = stem 112*112*16*27 + 56*56*16*9 + 56*56*64*16
    #                   (5,419,008 + 451,584 + 3,211,264)
    #                 + transitions: blur 28*28*64*9 + 14*14*128*9 + 7*7*256*9
    #                   (451,584 + 225,792 + 112,896) and 1x1 convs 3 * 6,422,528
    #                 + classifier 512,000                                   = 29,651,712
    #   float params  = 13,234,088 (docstring) - 12,533,760 = 700,328
    #   memory        = 12,533,760/8 + 700,328*4 = 4,368,032 B = 4.166 MiB ("4.17 MB")
    "quicknet_medium": dict(
        binary_params=12_533_760, float_params=700_328,
        binary_macs=1_849_688_064, float_macs=29_651_712,
        docs_params=13_234_088, docs_convention="larq",
        shapes={"stem.bn3": (1, 64, 56, 56), "features.4.bn": (1, 128, 28, 28),
                "features.18.bn": (1, 512, 7, 7)},
    ),
    # QuickNet Large, N=(6,8,12,6), k=(64,128,256,512): 32 blocks of 115,605,504 MACs;
    #   binary params = 9 * (6*64^2 + 8*128^2 + 12*256^2 + 6*512^2) = 22,634,496
    #   float MACs as Medium (same stem, transitions, head) = 29,651,712
    #   float params  = 23,342,248 - 22,634,496 = 707,752; memory 5.398 MiB ("5.40 MB")
    "quicknet_large": dict(
        binary_params=22_634_496, float_params=707_752,
        binary_macs=3_699_376_128, float_macs=29_651_712,
        docs_params=23_342_248, docs_convention="larq",
        shapes={"stem.bn3": (1, 64, 56, 56), "features.6.bn": (1, 128, 28, 28),
                "features.34.bn": (1, 512, 7, 7)},
    ),
    # QuickNet Small, N=(4,4,4,4), k=(32,64,256,512); stem conv has 32/4 = 8 filters:
    #   binary params = 9 * 4 * (32^2 + 64^2 + 256^2 + 512^2) = 11,980,800
    #   binary MACs   = 8 blocks * 9*32^2*56^2 (= 9*64^2*28^2 = 28,901,376)
    #                 + 8 blocks * 115,605,504                               = 1,156,055,040
    #   float MACs    = stem 112*112*8*27 + 56*56*8*9 + 56*56*32*8
    #                   (2,709,504 + 225,792 + 802,816)
    #                 + blur 28*28*32*9 + 14*14*64*9 + 7*7*256*9 (225,792 + 112,896 + 112,896)
    #                 + 1x1 28*28*64*32 + 14*14*256*64 + 7*7*512*256
    #                   (1,605,632 + 3,211,264 + 6,422,528) + classifier 512,000 = 15,941,120
    #   float params  = 12,655,688 - 11,980,800 = 674,888; memory 4.003 MiB ("4.00 MB")
    "quicknet_small": dict(
        binary_params=11_980_800, float_params=674_888,
        binary_macs=1_156_055_040, float_macs=15_941_120,
        docs_params=12_655_688, docs_convention="larq",
        shapes={"stem.bn3": (1, 32, 56, 56), "features.4.bn": (1, 64, 28, 28),
                "features.18.bn": (1, 512, 7, 7)},
    ),
}


def test_every_imagenet_model_has_a_reference():
    assert sorted(LARQ_ZOO) == sorted(IMAGENET)


@pytest.mark.parametrize("name", sorted(LARQ_ZOO))
def test_imagenet_counts_match_larq_zoo(name):
    ref = LARQ_ZOO[name]
    model = _built(name)
    s = onebit.summary(model, (3, 224, 224), print_fn=None)

    assert set(s.params_by_precision) == {1.0, 32.0}
    assert s.params_by_precision[1.0] == ref["binary_params"]
    assert (s.binary_macs, s.low_bit_macs, s.float_macs) == (
        ref["binary_macs"], 0, ref["float_macs"])
    assert _larq_params(model) == ref["binary_params"] + ref["float_params"]

    published = model.default_cfg.reference
    assert published.params == ref["docs_params"]
    counted = _keras_params(model) if ref["docs_convention"] == "keras" else _larq_params(model)
    assert counted == published.params
    memory_mib = (ref["binary_params"] / 8 + 4 * (counted - ref["binary_params"])) / 2**20
    assert round(memory_mib, 2) == published.memory_mb

    rows = {layer.name: layer for layer in s.layers}
    for row, shape in ref["shapes"].items():
        assert rows[row].output_shapes == (shape,), row
    assert rows[next(reversed(rows))].output_shapes == ((1, 1000),)


# -- family specifics: the layer choices of the Larq Zoo source -----------------------------------
def _family(name: str) -> str:
    return name.split("_")[0] if not name.startswith("binary_alexnet") else "binary_alexnet"


@pytest.mark.parametrize("name", ALL)
def test_binary_layers_follow_larq_zoo(name):
    model = _built(name)
    binary = _binary_layers(model)
    family = _family(name)
    if family == "quicknet":
        assert len(binary) == sum(model.cfg.section_blocks)
        for m in binary:  # ste_sign(1.25) both sides, WeightClip(1.25), one-padding, 3x3
            assert type(m.input_quantizer) is SteSign and m.input_quantizer.clip_value == 1.25
            assert type(m.kernel_quantizer) is SteSign and m.kernel_quantizer.clip_value == 1.25
            assert (m.kernel_clip, m.pad_value, m.kernel_size, m.bias) == (1.25, 1.0, (3, 3), None)
    elif family == "birealnet18":
        assert len(binary) == 16
        for m in binary:  # approx_sign inputs, magnitude_aware_sign weights, zero padding
            assert type(m.input_quantizer) is ApproxSign
            assert type(m.kernel_quantizer) is MagnitudeAwareSign
            assert (m.kernel_clip, m.pad_value, m.kernel_size, m.bias) == (1.0, 0.0, (3, 3), None)
    else:
        assert [type(m) for m in binary] == [QuantConv2d] * 5 + [QuantLinear] * 3
        assert binary[0].input_quantizer is None  # conv1 sees the float image
        for m in binary:
            assert type(m.kernel_quantizer) is SteSign and m.kernel_clip == 1.0 and m.bias is None
        for m in binary[1:]:
            assert type(m.input_quantizer) is SteSign
    # every other conv / linear is full precision (stem, transitions, shortcuts, classifier)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m not in binary:
            assert not onebit.nn.is_quantized(m)


# Keras momentum m is PyTorch momentum 1 - m; epsilon carries over.
BN_CONSTANTS = {
    "quicknet": {(0.1, 1e-5), (0.01, 1e-3)},  # blocks/transitions (0.9, 1e-5); stem defaults
    "birealnet18": {(0.2, 1e-3)},  # momentum=0.8, default epsilon
    "binary_alexnet": {(0.1, 1e-3)},  # momentum=0.9, default epsilon
}


@pytest.mark.parametrize("name", ALL)
def test_batch_norm_constants(name):
    model = _built(name)
    assert {(bn.momentum, bn.eps) for bn in _bns(model)} == BN_CONSTANTS[_family(name)]
    if _family(name) == "quicknet":  # stem BNs keep Keras defaults, the rest (0.9, 1e-5)
        stem = {id(bn) for bn in _bns(model.stem)}
        for bn in _bns(model):
            assert (bn.momentum, bn.eps) == ((0.01, 1e-3) if id(bn) in stem else (0.1, 1e-5))
        assert [bn.affine for bn in _bns(model.stem)] == [True, False, True]
    if _family(name) == "binary_alexnet":  # scale=False: beta is the only parameter
        for bn in _bns(model):
            assert [n for n, _ in bn.named_parameters()] == ["bias"]
            assert torch.equal(bn.weight, torch.ones(bn.num_features))


def test_blur_pool_is_a_fixed_binomial_depthwise_conv():
    blur = BlurPool2d(4, 3, stride=2)
    row = torch.tensor([1.0, 2.0, 1.0])
    expected = torch.outer(row, row) / 16
    assert blur.weight.shape == (4, 1, 3, 3) and not blur.weight.requires_grad
    for c in range(4):
        assert torch.equal(blur.weight[c, 0], expected)
    five = BlurPool2d(2, 5).weight[0, 0]
    row5 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    torch.testing.assert_close(five, torch.outer(row5, row5) / 256, rtol=0, atol=0)
    x = torch.full((1, 4, 9, 9), 3.0)
    y = blur(x)  # (9 + 2 - 3) // 2 + 1 = 5; a constant stays constant away from the padding
    assert y.shape == (1, 4, 5, 5) and torch.allclose(y[..., 1:-1, 1:-1], torch.tensor(3.0))
    blur.reset_parameters()  # re-initialising keeps the filter
    assert torch.equal(blur.weight[0, 0], expected)
    with pytest.raises(ValueError, match="2, 3 or 5"):
        BlurPool2d(4, 4)


def test_quicknet_transition_halves_odd_and_even_maps():
    from onebit.models.quicknet import QuickNetTransition

    t = QuickNetTransition(8, 16).eval()
    for side, out in [(56, 28), (28, 14), (14, 7), (7, 3), (4, 2)]:  # 7 -> 6 -> 3 as TF "same"
        assert t(torch.randn(1, 8, side, side)).shape == (1, 16, out, out)


def test_batch_norm_no_scale_is_batch_norm_with_unit_gamma():
    bn = batch_norm_no_scale(6, dims=2).train()
    with torch.no_grad():
        bn.bias.copy_(torch.arange(6.0))
    x = torch.randn(4, 6, 3, 3, generator=torch.Generator().manual_seed(0))
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    expected = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-3)
    expected = expected + torch.arange(6.0)[:, None, None]
    torch.testing.assert_close(bn(x), expected, rtol=1e-5, atol=1e-5)
    assert type(bn) is nn.BatchNorm2d and type(batch_norm_no_scale(5, dims=1)) is nn.BatchNorm1d
    assert "weight" in bn.state_dict() and "weight" not in dict(bn.named_parameters())
