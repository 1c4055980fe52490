"""QuickNet Small / Medium / Large (Bannink et al., "Larq Compute Engine", MLSys 2021, sec. 5.1).

The architecture of Larq Zoo ``larq_zoo/sota/quicknet.py`` (weights v1.0.0), layer for layer:

    stem        Conv 3x3/2 (3 -> k0/4) -> BN -> ReLU -> depthwise 3x3/2 -> BN (no affine)
                -> Conv 1x1 (k0/4 -> k0) -> BN                       224x224 -> 56x56, paper Fig. 6a
    section i   N_i residual blocks:  x + BN(ReLU(BConv3x3(x)))      binary, one-padding
    transition  ReLU -> MaxPool 2x2/1 -> blur 3x3/2 (fixed [1,2,1]x[1,2,1]/16, depthwise)
                -> Conv 1x1 (k_i -> k_i+1) -> BN                     anti-aliased max-pool, Fig. 6b
    head        ReLU -> global average pool -> Linear (k3 -> classes)

Table 3 of the paper: N = (4,4,4,4) / (4,4,4,4) / (6,8,12,6) and k = (32,64,256,512) /
(64,128,256,512) / (64,128,256,512) for Small / Medium / Large. The stem has k0/4 filters: 16
for Medium and Large (the paper's "16 filters"), 8 for Small (Larq Zoo's ``filters // 4``).

Binary convolutions: ``ste_sign(clip_value=1.25)`` on inputs and weights, latent weight clip
1.25 (Larq ``WeightClip(1.25)``), one-padding (``pad_value=1.0``), no bias, ReLU after the conv.

Batch norm: Keras ``momentum=m`` is PyTorch ``momentum=1-m`` (PyTorch weighs the new batch by
``momentum``, Keras the running value by ``m``). Residual/transition BNs: Keras (0.9, 1e-5) ->
PyTorch (0.1, 1e-5); stem BNs use the Keras defaults (0.99, 1e-3) -> PyTorch (0.01, 1e-3).

Differences from the Keras model that change no parameter or MAC count: NCHW layout; stride-2
convolutions pad symmetrically (PyTorch ``padding=1``) where TensorFlow's ``"same"`` pads one
pixel at the bottom/right only, so imported Keras weights would see a one-pixel shift; the model
returns logits (the Keras model ends in softmax).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from onebit.nn import QuantConv2d
from onebit.quantizers import SteSign
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

__all__ = [
    "BlurPool2d",
    "QuickNetStem",
    "QuickNetBlock",
    "QuickNetTransition",
    "QuickNet",
    "QuickNetConfig",
    "quicknet_small",
    "quicknet_medium",
    "quicknet_large",
    "quicknet_small_cifar",
    "quicknet_medium_cifar",
    "quicknet_large_cifar",
]

BN_MOMENTUM, BN_EPS = 0.1, 1e-5  # Keras BatchNormalization(momentum=0.9, epsilon=1e-5)
STEM_BN_MOMENTUM, STEM_BN_EPS = 0.01, 1e-3  # Keras defaults (momentum=0.99, epsilon=1e-3)


# -- blocks ------------------------------------------------------------------------------------
class BlurPool2d(nn.Conv2d):
    """Fixed binomial blur, depthwise, strided: the anti-aliasing half of Zhang (2019)'s
    "Making Convolutional Networks Shift-Invariant Again" (MaxPool(stride 1) then BlurPool).

    ``y[c] = conv2d(x[c], k k^T / sum(k)^2, stride, padding=kernel_size // 2)`` with the binomial
    row ``k = [1, 1]``, ``[1, 2, 1]`` or ``[1, 4, 6, 4, 1]`` for kernel size 2, 3, 5 (Larq Zoo's
    ``blurpool_initializer``). A depthwise ``nn.Conv2d`` whose weight is frozen
    (``requires_grad=False``, Keras ``trainable=False``): converters see an ordinary depthwise
    convolution, and summaries count its weights and MACs as float, as Larq does.
    """

    _ROWS = {2: (1.0, 1.0), 3: (1.0, 2.0, 1.0), 5: (1.0, 4.0, 6.0, 4.0, 1.0)}

    def __init__(self, channels: int, kernel_size: int = 3, stride: int = 2):
        if kernel_size not in self._ROWS:
            raise ValueError(
                f"BlurPool2d: kernel_size must be 2, 3 or 5 (binomial filters), got {kernel_size}."
            )
        super().__init__(
            channels, channels, kernel_size, stride, padding=kernel_size // 2, groups=channels,
            bias=False,
        )
        self.weight.requires_grad_(False)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Set the weight to the normalised binomial filter (it never trains)."""
        row = torch.tensor(self._ROWS[self.kernel_size[0]])
        kernel = torch.outer(row, row)
        self.weight.copy_((kernel / kernel.sum()).expand_as(self.weight))


class QuickNetStem(nn.Module):
    """Full-precision stem (paper Fig. 6a): 3x3 conv to ``filters // 4`` channels, depthwise 3x3,
    1x1 conv to ``filters``; ``strides`` of the two 3x3 convs ((2, 2): 224 -> 56)."""

    def __init__(self, in_chans: int, filters: int, strides: tuple[int, int] = (2, 2)):
        super().__init__()
        mid = filters // 4
        self.conv = nn.Conv2d(in_chans, mid, 3, strides[0], padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid, eps=STEM_BN_EPS, momentum=STEM_BN_MOMENTUM)
        self.act = nn.ReLU()
        self.dwconv = nn.Conv2d(mid, mid, 3, strides[1], padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid, eps=STEM_BN_EPS, momentum=STEM_BN_MOMENTUM, affine=False)
        self.pwconv = nn.Conv2d(mid, filters, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(filters, eps=STEM_BN_EPS, momentum=STEM_BN_MOMENTUM)

    def forward(self, x: Tensor) -> Tensor:  # (B, 3, H, W)
        x = self.act(self.bn1(self.conv(x)))  # (B, k0/4, H/s0, W/s0)
        x = self.bn2(self.dwconv(x))  # (B, k0/4, H/(s0 s1), W/(s0 s1))
        return self.bn3(self.pwconv(x))  # (B, k0, H/(s0 s1), W/(s0 s1))


class QuickNetBlock(nn.Module):
    """Residual binary block: ``x + BN(ReLU(BConv3x3(x)))``, channels and size unchanged.

    ``BConv3x3``: ``ste_sign`` inputs and weights (clip ``clip_value``), one-padding, no bias.
    """

    def __init__(self, channels: int, clip_value: float = 1.25):
        super().__init__()
        self.conv = QuantConv2d(
            channels, channels, 3, padding=1, bias=False, pad_value=1.0,
            input_quantizer=SteSign(clip_value), kernel_quantizer=SteSign(clip_value),
            kernel_clip=clip_value,
        )
        self.act = nn.ReLU()
        self.bn = nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W)
        return x + self.bn(self.act(self.conv(x)))  # (B, C, H, W)


class QuickNetTransition(nn.Module):
    """Full-precision transition (paper Fig. 6b): ReLU, anti-aliased max-pool (MaxPool 2x2
    stride 1, then a stride-``stride`` 3x3 blur), 1x1 conv ``in_channels -> out_channels``, BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(stride, stride=1)
        self.blur = BlurPool2d(in_channels, 3, stride)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, H, W)
        x = self.blur(self.pool(self.act(x)))  # (B, C_in, ceil((H-1)/2), ...) for stride 2
        return self.bn(self.conv(x))  # (B, C_out, ...)


# -- model -------------------------------------------------------------------------------------
class QuickNet(nn.Module):
    """QuickNet: stem, residual binary sections joined by transitions, ReLU + pool + linear head.

    ``forward(x)`` takes ``(B, in_chans, H, W)`` and returns logits ``(B, num_classes)``;
    ``forward_features`` stops before the head (``(B, section_filters[-1], h, w)``).
    """

    def __init__(self, cfg: QuickNetConfig):
        super().__init__()
        self.cfg = cfg
        self.num_classes = cfg.num_classes
        self.num_features = cfg.section_filters[-1]
        self.stem = QuickNetStem(cfg.in_chans, cfg.section_filters[0], cfg.stem_strides)
        layers: list[nn.Module] = []
        channels = cfg.section_filters[0]
        for blocks, filters in zip(cfg.section_blocks, cfg.section_filters):
            if filters != channels:  # Larq Zoo: a transition wherever the width changes
                layers.append(QuickNetTransition(channels, filters, stride=2))
                channels = filters
            layers += [QuickNetBlock(channels, cfg.clip_value) for _ in range(blocks)]
        self.features = nn.Sequential(*layers)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(channels, cfg.num_classes)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """Larq Zoo's initialisers: Glorot normal for the binary 3x3 convs, the transition 1x1
        convs and the classifier (zero bias), He normal for the stem's 3x3 and 1x1 convs, Keras's
        default Glorot uniform for the stem's depthwise conv; the blur stays fixed."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, BlurPool2d):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for conv in (self.stem.conv, self.stem.pwconv):
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
        nn.init.xavier_uniform_(self.stem.dwconv.weight)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, in_chans, H, W) -> (B, section_filters[-1], H/32, W/32)`` (ImageNet strides)."""
        return self.features(self.stem(x))

    def forward_head(self, x: Tensor) -> Tensor:
        """``(B, C, h, w) -> (B, num_classes)``: ReLU, global average pool, linear."""
        return self.fc(self.flatten(self.pool(self.act(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# -- config ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuickNetConfig:
    """Hyper-parameters of a QuickNet (LCE paper Table 3; Larq Zoo ``QuickNetFactory``)."""

    section_blocks: tuple[int, ...] = (4, 4, 4, 4)
    """N_i: residual blocks per section."""
    section_filters: tuple[int, ...] = (64, 128, 256, 512)
    """k_i: channels per section; the stem's first conv has ``k_0 // 4``."""
    num_classes: int = 1000
    in_chans: int = 3
    stem_strides: tuple[int, int] = (2, 2)
    """Strides of the stem's 3x3 conv and depthwise conv: (2, 2) for 224x224 ImageNet input
    (56x56 into section 0), (1, 1) for 32x32 CIFAR input (32x32 into section 0)."""
    clip_value: float = 1.25
    """STE window of ``ste_sign`` on inputs and weights and the latent weight clip."""

    def __post_init__(self) -> None:
        blocks, filters = tuple(self.section_blocks), tuple(self.section_filters)
        object.__setattr__(self, "section_blocks", blocks)
        object.__setattr__(self, "section_filters", filters)
        object.__setattr__(self, "stem_strides", tuple(self.stem_strides))
        if not blocks or len(blocks) != len(filters):
            raise ValueError(
                f"QuickNetConfig: section_blocks and section_filters need the same non-zero "
                f"length, got {blocks} and {filters}."
            )
        if any(n < 1 for n in blocks) or any(k < 1 for k in filters) or filters[0] % 4:
            raise ValueError(
                f"QuickNetConfig: every section needs >= 1 block and >= 1 filter, and "
                f"section_filters[0] must be a multiple of 4 (the stem has k0/4 filters); got "
                f"section_blocks={blocks}, section_filters={filters}."
            )
        if len(self.stem_strides) != 2 or any(s not in (1, 2) for s in self.stem_strides):
            raise ValueError(
                f"QuickNetConfig: stem_strides must be two values from (1, 2), got "
                f"{self.stem_strides}."
            )
        if self.num_classes < 1 or self.in_chans < 1 or not self.clip_value > 0:
            raise ValueError(
                f"QuickNetConfig: num_classes and in_chans must be >= 1 and clip_value > 0, got "
                f"{self.num_classes}, {self.in_chans}, {self.clip_value}."
            )


# -- registered constructors -------------------------------------------------------------------
_SMALL = QuickNetConfig((4, 4, 4, 4), (32, 64, 256, 512))
_MEDIUM = QuickNetConfig((4, 4, 4, 4), (64, 128, 256, 512))
_LARGE = QuickNetConfig((6, 8, 12, 6), (64, 128, 256, 512))
_CIFAR = dict(num_classes=10, stem_strides=(1, 1))
_CIFAR_CFG = ModelCfg((3, 32, 32), 10, CIFAR10_MEAN, CIFAR10_STD, "cifar10")
_SOURCE = (
    "Larq Zoo larq_zoo/sota/quicknet.py, {} docstring (weights v1.0.0); params counted as "
    "Larq's summary does (every BatchNorm 2 per channel: beta+mean, gamma+variance fused)"
)


def _imagenet(top1: float, top5: float, params: int, memory_mb: float, source: str) -> ModelCfg:
    return ModelCfg(
        (3, 224, 224), 1000, IMAGENET_MEAN, IMAGENET_STD, "imagenet", 0.875, "bicubic",
        Reference(top1, top5, params, memory_mb, source),
    )


@register_model
def quicknet_small(pretrained: bool = False, **kwargs) -> QuickNet:
    """QuickNet Small, ImageNet 224x224 (LCE Table 3: 59.4 % top-1)."""
    ref = _imagenet(59.4, 81.8, 12_655_688, 4.00, _SOURCE.format("QuickNetSmall"))
    return build_model(QuickNet, _SMALL, ref, pretrained, kwargs)


@register_model
def quicknet_medium(pretrained: bool = False, **kwargs) -> QuickNet:
    """QuickNet (Medium), ImageNet 224x224 (LCE Table 3: 63.3 % top-1)."""
    ref = _imagenet(63.3, 84.6, 13_234_088, 4.17, _SOURCE.format("QuickNet"))
    return build_model(QuickNet, _MEDIUM, ref, pretrained, kwargs)


@register_model
def quicknet_large(pretrained: bool = False, **kwargs) -> QuickNet:
    """QuickNet Large, ImageNet 224x224 (LCE Table 3: 66.9 % top-1; one Larq Zoo revision of
    the docstring prints 66.0 %)."""
    ref = _imagenet(66.9, 87.0, 23_342_248, 5.40, _SOURCE.format("QuickNetLarge"))
    return build_model(QuickNet, _LARGE, ref, pretrained, kwargs)


@register_model
def quicknet_small_cifar(pretrained: bool = False, **kwargs) -> QuickNet:
    """QuickNet Small for 32x32 CIFAR input: stem strides (1, 1), sections at 32/16/8/4."""
    return build_model(QuickNet, replace(_SMALL, **_CIFAR), _CIFAR_CFG, pretrained, kwargs)


@register_model
def quicknet_medium_cifar(pretrained: bool = False, **kwargs) -> QuickNet:
    """QuickNet (Medium) for 32x32 CIFAR input: stem strides (1, 1), sections at 32/16/8/4."""
    return build_model(QuickNet, replace(_MEDIUM, **_CIFAR), _CIFAR_CFG, pretrained, kwargs)


@register_model
def quicknet_large_cifar(pretrained: bool = False, **kwargs) -> QuickNet:
    """QuickNet Large for 32x32 CIFAR input: stem strides (1, 1), sections at 32/16/8/4."""
    return build_model(QuickNet, replace(_LARGE, **_CIFAR), _CIFAR_CFG, pretrained, kwargs)
