"""onebit.models registry: names, patterns, overrides, errors, default_cfg metadata, configs."""

from __future__ import annotations

import pytest
from torch import nn

from onebit.errors import OnebitError
from onebit.models import create_model, list_models, register_model, registry
from onebit.models.binary_alexnet import BinaryAlexNetConfig
from onebit.models.birealnet import BiRealNetConfig
from onebit.models.quicknet import QuickNetConfig

IMAGENET = ["binary_alexnet", "birealnet18", "quicknet_large", "quicknet_medium", "quicknet_small"]
CIFAR = [f"{name}_cifar" for name in IMAGENET]


def test_list_models_is_sorted_and_complete():
    assert list_models() == sorted(IMAGENET + CIFAR)


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("quicknet*", ["quicknet_large", "quicknet_large_cifar", "quicknet_medium",
                       "quicknet_medium_cifar", "quicknet_small", "quicknet_small_cifar"]),
        ("*_cifar", sorted(CIFAR)),
        ("birealnet18", ["birealnet18"]),
        ("resnet*", []),
    ],
)
def test_list_models_pattern(pattern, expected):
    assert list_models(pattern) == expected


def test_unknown_name_suggests_close_names():
    with pytest.raises(OnebitError, match=r"unknown model 'quicknet_smal'.*'quicknet_small'"):
        create_model("quicknet_smal")


def test_pretrained_has_no_hub():
    with pytest.raises(OnebitError, match="no weight hub"):
        create_model("quicknet_small_cifar", pretrained=True)


def test_unknown_override_lists_config_fields():
    with pytest.raises(OnebitError, match=r"unknown option\(s\) num_clases.*num_classes"):
        create_model("birealnet18_cifar", num_clases=10)


@pytest.mark.parametrize("name, head", [
    ("quicknet_small_cifar", "fc"), ("birealnet18_cifar", "fc"),
])
def test_overrides_reach_the_model_and_default_cfg(name, head):
    model = create_model(name, num_classes=7)
    assert getattr(model, head).out_features == 7
    assert model.cfg.num_classes == 7 and model.num_classes == 7
    assert model.default_cfg.num_classes == 7 and model.default_cfg.input_size == (3, 32, 32)


def test_alexnet_overrides_move_flatten_size_and_input_size():
    model = create_model("binary_alexnet_cifar", image_size=64, dense_units=(128,), num_classes=3)
    # 64 -> conv1 3x3/1 "same" 64 -> pools 31 -> 15 -> 7: flatten 256 * 7 * 7 = 12,544.
    assert model.cfg.feature_size == 7
    assert [b.fc.in_features for b in model.classifier] == [12_544, 128]
    assert [b.fc.out_features for b in model.classifier] == [128, 3]
    assert model.default_cfg.input_size == (3, 64, 64)


def test_register_model_rejects_taken_names_and_adds_new_ones(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    def quicknet_small(pretrained=False, **kwargs):  # same name as a zoo model
        return nn.Identity()

    with pytest.raises(OnebitError, match="already registered"):
        register_model(quicknet_small)

    @register_model
    def tiny_identity(pretrained=False, **kwargs):
        return nn.Linear(2, kwargs.get("out", 2))

    assert "tiny_identity" in list_models()
    assert create_model("tiny_identity", out=5).out_features == 5


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: QuickNetConfig((4, 4), (64, 128, 256)), "same non-zero length"),
        (lambda: QuickNetConfig((4, 4), (30, 60)), "multiple of 4"),
        (lambda: QuickNetConfig((0, 4), (32, 64)), ">= 1 block"),
        (lambda: QuickNetConfig(stem_strides=(2, 3)), "stem_strides"),
        (lambda: QuickNetConfig(clip_value=0.0), "clip_value > 0"),
        (lambda: BiRealNetConfig(pad_value=0.5), "pad_value"),
        (lambda: BiRealNetConfig(stem_kernel=4), "stem_kernel odd"),
        (lambda: BinaryAlexNetConfig(image_size=16), "too small"),
        (lambda: BinaryAlexNetConfig(dense_units=(0,)), "dense_units"),
    ],
)
def test_configs_validate(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_config_sequences_become_tuples():
    cfg = QuickNetConfig([2, 2], [32, 64], stem_strides=[1, 1])
    assert cfg.section_blocks == (2, 2) and cfg.section_filters == (32, 64)
    assert cfg.stem_strides == (1, 1)
