"""Bi-RealNet-18 (Liu et al., "Bi-Real Net", ECCV 2018), as in Larq Zoo
``larq_zoo/literature/birealnet.py`` (weights v0.3.0), layer for layer:

    stem      Conv 7x7/2 (3 -> 64) -> BN -> MaxPool 3x3/2                224x224 -> 56x56
    blocks    16 blocks, 4 per stage at 64 / 128 / 256 / 512 channels:
              BN(BConv3x3(x)) + shortcut(x)     one real-valued shortcut around every binary conv
              first block of stages 2-4: BConv stride 2 and shortcut = AvgPool 2x2/2 -> Conv 1x1
              -> BN (real-valued downsampling)
    head      global average pool -> Linear (512 -> classes)

Binary convolutions: ``approx_sign`` on inputs (Bi-Real's piecewise-polynomial gradient),
``magnitude_aware_sign`` on weights (per-output-channel ``mean|W|`` scale), latent weight clip
1.0 (Larq ``weight_clip``), no bias, zero padding (Larq's default ``pad_values=0``; the config's
``pad_value=1.0`` gives one-padding). Batch norm: Keras ``momentum=0.8`` (default ``epsilon=1e-3``)
is PyTorch ``momentum=0.2, eps=1e-3``.

Differences from the Keras model that change no parameter or MAC count: NCHW layout; symmetric
padding of stride-2 layers (TensorFlow ``"same"`` pads bottom/right only); logits out (no softmax).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from onebit.nn import QuantConv2d
from onebit.quantizers import ApproxSign, MagnitudeAwareSign
from onebit.models.registry import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelCfg,
    Reference,
    build_model,
    register_model,
)

__all__ = ["BiRealBlock", "BiRealNet", "BiRealNetConfig", "birealnet18", "birealnet18_cifar"]

BN_MOMENTUM, BN_EPS = 0.2, 1e-3  # Keras BatchNormalization(momentum=0.8), default epsilon


# -- blocks ------------------------------------------------------------------------------------
class BiRealBlock(nn.Module):
    """``BN(BConv3x3(x)) + shortcut(x)``; when ``in_channels != out_channels`` the conv has
    stride 2 and the shortcut is ``BN(Conv1x1(AvgPool2x2(x)))``, else the identity.

    ``BConv3x3``: ``approx_sign`` inputs, ``magnitude_aware_sign`` weights (clip 1.0), no bias.
    """

    def __init__(self, in_channels: int, out_channels: int, pad_value: float = 0.0):
        super().__init__()
        stride = 1 if in_channels == out_channels else 2
        self.conv = QuantConv2d(
            in_channels, out_channels, 3, stride, padding=1, bias=False, pad_value=pad_value,
            input_quantizer=ApproxSign(), kernel_quantizer=MagnitudeAwareSign(1.0),
            kernel_clip=1.0,
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1:
            # Keras AvgPool2D(2, strides=2, padding="same"): on odd sizes the last window is
            # partial and averages only the real pixels (ceil_mode, count_include_pad=False).
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM),
            )

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, H, W)
        return self.bn(self.conv(x)) + self.shortcut(x)  # (B, C_out, H/s, W/s)


# -- model -------------------------------------------------------------------------------------
class BiRealNet(nn.Module):
    """Bi-RealNet: float stem, binary blocks with real-valued shortcuts, pool + linear head.

    ``forward(x)``: ``(B, in_chans, H, W) -> (B, num_classes)`` logits.
    """

    def __init__(self, cfg: BiRealNetConfig):
        super().__init__()
        self.cfg = cfg
        self.num_classes = cfg.num_classes
        k = cfg.stem_kernel
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_chans, cfg.filters, k, cfg.stem_stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(cfg.filters, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.MaxPool2d(3, 2, padding=1) if cfg.stem_pool else nn.Identity(),
        )
        blocks: list[nn.Module] = []
        channels = cfg.filters
        for stage, n in enumerate(cfg.stage_blocks):
            width = cfg.filters * 2**stage
            for _ in range(n):
                blocks.append(BiRealBlock(channels, width, cfg.pad_value))
                channels = width
        self.features = nn.Sequential(*blocks)
        self.num_features = channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(channels, cfg.num_classes)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """Larq Zoo's initialisers: Glorot normal for every conv (stem, binary, shortcut),
        Keras's default Glorot uniform and zero bias for the classifier."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, in_chans, H, W) -> (B, 8 * filters, H/32, W/32)`` (ImageNet strides)."""
        return self.features(self.stem(x))

    def forward_head(self, x: Tensor) -> Tensor:
        """``(B, C, h, w) -> (B, num_classes)``: global average pool, linear."""
        return self.fc(self.flatten(self.pool(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# -- config ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BiRealNetConfig:
    """Hyper-parameters of a Bi-RealNet (Larq Zoo ``BiRealNetFactory``)."""

    num_classes: int = 1000
    in_chans: int = 3
    filters: int = 64
    """Width of the stem and the first stage; stage ``i`` has ``filters * 2**i`` channels."""
    stage_blocks: tuple[int, ...] = (4, 4, 4, 4)
    """Binary blocks per stage (ResNet-18 layout: 16 binary 3x3 convs)."""
    stem_kernel: int = 7
    stem_stride: int = 2
    stem_pool: bool = True
    """MaxPool 3x3/2 after the stem conv (ImageNet); off for 32x32 CIFAR input."""
    pad_value: float = 0.0
    """Padding of the binary convs: 0.0 zero-padding (Larq Zoo), 1.0 one-padding."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage_blocks", tuple(self.stage_blocks))
        if (
            self.num_classes < 1 or self.in_chans < 1 or self.filters < 1
            or not self.stage_blocks or any(n < 1 for n in self.stage_blocks)
            or self.stem_kernel < 1 or self.stem_kernel % 2 == 0 or self.stem_stride < 1
        ):
            raise ValueError(
                f"BiRealNetConfig: num_classes, in_chans, filters, stem_stride and every "
                f"stage_blocks entry must be >= 1 and stem_kernel odd; got {self}."
            )
        if self.pad_value not in (0.0, 1.0):
            raise ValueError(
                f"BiRealNetConfig: pad_value must be 0.0 (zero padding) or 1.0 (one-padding), "
                f"got {self.pad_value}."
            )


# -- registered constructors -------------------------------------------------------------------
_IMAGENET_CFG = ModelCfg(
    (3, 224, 224), 1000, IMAGENET_MEAN, IMAGENET_STD, "imagenet", 0.875, "bicubic",
    Reference(
        57.47, 79.84, 11_699_112, 4.03,
        "Larq Zoo docs (docs/zoo/index.md, 'Bi-Real Net', weights v0.3.0); params as Keras "
        "count_params (BatchNorm moving statistics included)",
    ),
)
_CIFAR_CFG = ModelCfg((3, 32, 32), 10, CIFAR10_MEAN, CIFAR10_STD, "cifar10")


@register_model
def birealnet18(pretrained: bool = False, **kwargs) -> BiRealNet:
    """Bi-RealNet-18, ImageNet 224x224 (Larq Zoo: 57.47 % top-1)."""
    return build_model(BiRealNet, BiRealNetConfig(), _IMAGENET_CFG, pretrained, kwargs)


@register_model
def birealnet18_cifar(pretrained: bool = False, **kwargs) -> BiRealNet:
    """Bi-RealNet-18 for 32x32 CIFAR input: 3x3/1 stem conv, no max-pool, stages at 32/16/8/4."""
    cfg = replace(BiRealNetConfig(), num_classes=10, stem_kernel=3, stem_stride=1, stem_pool=False)
    return build_model(BiRealNet, cfg, _CIFAR_CFG, pretrained, kwargs)
