"""BinaryAlexNet (Hubara et al., "Binarized Neural Networks", NeurIPS 2016), as in Larq Zoo
``larq_zoo/literature/binary_alex_net.py`` (weights v0.2.0), layer for layer:

    conv1   BConv 11x11/4 (3 -> 64), float input, binary weights -> MaxPool 3x3/2 -> BN
    conv2   BConv 5x5 (64 -> 192) -> MaxPool 3x3/2 -> BN
    conv3-5 BConv 3x3 (192 -> 384 -> 384 -> 256), MaxPool 3x3/2 after conv5, BN after each
    fc1-3   flatten -> BDense 4096 -> BN -> BDense 4096 -> BN -> BDense classes -> BN (logits)

Fully binary: every conv and dense layer has ``ste_sign`` weights (latent clip 1.0, Larq
``weight_clip``), every layer but the first has ``ste_sign`` inputs, no biases, no shortcuts, so
every binary layer feeds only binary layers (through max-pool and BN): a converter can emit
bitpacked outputs throughout. Binary convs zero-pad (Larq's default ``pad_values=0``; the
config's ``pad_value=1.0`` gives one-padding). Every BN has a bias and no scale (Keras
``scale=False``): its ``weight`` is a buffer of ones, not a parameter. Keras ``momentum=0.9``
(default ``epsilon=1e-3``) is PyTorch ``momentum=0.1, eps=1e-3``.

Differences from the Keras model that change no parameter or MAC count: NCHW layout, so the
flatten before fc1 orders features (C, H, W) instead of (H, W, C); conv1 pads 5 on each side
where TensorFlow's ``"same"`` pads (3, 4) (same 56x56 output); logits out (no softmax).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from onebit.nn import QuantConv2d, QuantLinear
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
    "batch_norm_no_scale",
    "BinaryConvBlock",
    "BinaryDenseBlock",
    "BinaryAlexNet",
    "BinaryAlexNetConfig",
    "binary_alexnet",
    "binary_alexnet_cifar",
]

BN_MOMENTUM, BN_EPS = 0.1, 1e-3  # Keras BatchNormalization(momentum=0.9), default epsilon


# -- blocks ------------------------------------------------------------------------------------
def batch_norm_no_scale(num_features: int, dims: int = 2) -> nn.Module:
    """``nn.BatchNorm{1,2}d`` without a learnable scale (Keras ``scale=False``):
    ``y = (x - mean) / sqrt(var + eps) + beta``. The ``weight`` is a buffer of ones, so the
    module is a plain torch BatchNorm to every converter and ``beta`` is its only parameter."""
    bn_cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    bn = bn_cls(num_features, eps=BN_EPS, momentum=BN_MOMENTUM)
    del bn.weight
    bn.register_buffer("weight", torch.ones(num_features))
    return bn


class BinaryConvBlock(nn.Module):
    """``BN(MaxPool?(BConv(x)))``: binary-weight conv (binary input unless ``first``), "same"
    padding ``kernel_size // 2``, optional MaxPool 3x3/2, BN without scale."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
        pool: bool = False, first: bool = False, pad_value: float = 0.0,
    ):
        super().__init__()
        self.conv = QuantConv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2,
            bias=False, pad_value=pad_value, input_quantizer=None if first else SteSign(1.0),
            kernel_quantizer=SteSign(1.0), kernel_clip=1.0,
        )
        self.pool = nn.MaxPool2d(3, 2) if pool else nn.Identity()
        self.bn = batch_norm_no_scale(out_channels)

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, H, W)
        return self.bn(self.pool(self.conv(x)))  # (B, C_out, H', W')


class BinaryDenseBlock(nn.Module):
    """``BN(BDense(x))``: binary inputs and weights, no bias, BN without scale."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.fc = QuantLinear(
            in_features, out_features, bias=False, input_quantizer=SteSign(1.0),
            kernel_quantizer=SteSign(1.0), kernel_clip=1.0,
        )
        self.bn = batch_norm_no_scale(out_features, dims=1)

    def forward(self, x: Tensor) -> Tensor:  # (B, in_features)
        return self.bn(self.fc(x))  # (B, out_features)


# -- model -------------------------------------------------------------------------------------
class BinaryAlexNet(nn.Module):
    """BinaryAlexNet: five binary conv blocks, flatten, three binary dense blocks.

    ``forward(x)``: ``(B, in_chans, H, W) -> (B, num_classes)`` logits (the last BN's output).
    """

    def __init__(self, cfg: BinaryAlexNetConfig):
        super().__init__()
        self.cfg = cfg
        self.num_classes = cfg.num_classes
        p = cfg.pad_value
        self.features = nn.Sequential(
            BinaryConvBlock(cfg.in_chans, 64, cfg.first_kernel, cfg.first_stride, pool=True,
                            first=True, pad_value=p),
            BinaryConvBlock(64, 192, 5, pool=True, pad_value=p),
            BinaryConvBlock(192, 384, 3, pad_value=p),
            BinaryConvBlock(384, 384, 3, pad_value=p),
            BinaryConvBlock(384, 256, 3, pool=True, pad_value=p),
        )
        self.num_features = 256
        self.flatten = nn.Flatten(1)
        side = cfg.feature_size
        widths = (256 * side * side, *cfg.dense_units, cfg.num_classes)
        self.classifier = nn.Sequential(
            *(BinaryDenseBlock(a, b) for a, b in zip(widths[:-1], widths[1:]))
        )
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """Larq Zoo keeps Keras's default initialiser, Glorot uniform, on every layer."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, in_chans, H, W) -> (B, 256, s, s)``, ``s = cfg.feature_size``."""
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        """``(B, 256, s, s) -> (B, num_classes)``: flatten, binary dense blocks."""
        return self.classifier(self.flatten(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# -- config ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BinaryAlexNetConfig:
    """Hyper-parameters of a BinaryAlexNet (Larq Zoo ``BinaryAlexNetFactory``)."""

    num_classes: int = 1000
    in_chans: int = 3
    image_size: int = 224
    """Input height = width; fixes the flatten size before fc1."""
    first_kernel: int = 11
    first_stride: int = 4
    dense_units: tuple[int, ...] = (4096, 4096)
    """Widths of the hidden binary dense layers."""
    pad_value: float = 0.0
    """Padding of the binary convs: 0.0 zero-padding (Larq Zoo), 1.0 one-padding."""

    @property
    def feature_size(self) -> int:
        """Side of the last feature map: conv1 ("same", stride ``first_stride``), then three
        MaxPool 3x3/2 (valid): ``s -> (s - 3) // 2 + 1``. 224 -> 56 -> 27 -> 13 -> 6."""
        k, s = self.first_kernel, self.first_stride
        side = (self.image_size + 2 * (k // 2) - k) // s + 1
        for _ in range(3):
            side = (side - 3) // 2 + 1
        return side

    def __post_init__(self) -> None:
        object.__setattr__(self, "dense_units", tuple(self.dense_units))
        if (
            self.num_classes < 1 or self.in_chans < 1 or self.first_stride < 1
            or self.first_kernel < 1 or self.first_kernel % 2 == 0
            or any(u < 1 for u in self.dense_units)
        ):
            raise ValueError(
                f"BinaryAlexNetConfig: num_classes, in_chans, first_stride and dense_units must "
                f"be >= 1 and first_kernel odd; got {self}."
            )
        if self.pad_value not in (0.0, 1.0):
            raise ValueError(
                f"BinaryAlexNetConfig: pad_value must be 0.0 or 1.0, got {self.pad_value}."
            )
        if self.image_size < 1 or self.feature_size < 1:
            raise ValueError(
                f"BinaryAlexNetConfig: image_size={self.image_size} is too small for conv1 "
                f"(kernel {self.first_kernel}, stride {self.first_stride}) and three 3x3/2 "
                "max-pools; use at least 32 with first_kernel=3, first_stride=1."
            )


# -- registered constructors -------------------------------------------------------------------
_IMAGENET_CFG = ModelCfg(
    (3, 224, 224), 1000, IMAGENET_MEAN, IMAGENET_STD, "imagenet", 0.875, "bicubic",
    Reference(
        36.30, 61.53, 61_859_192, 7.49,
        "Larq Zoo docs (docs/zoo/index.md and literature.BinaryAlexNet docstring, weights "
        "v0.2.0); params as Keras count_params (BatchNorm moving statistics included)",
    ),
)
_CIFAR_CFG = ModelCfg((3, 32, 32), 10, CIFAR10_MEAN, CIFAR10_STD, "cifar10")


@register_model
def binary_alexnet(pretrained: bool = False, **kwargs) -> BinaryAlexNet:
    """BinaryAlexNet, ImageNet 224x224 (Larq Zoo: 36.30 % top-1)."""
    return build_model(BinaryAlexNet, BinaryAlexNetConfig(), _IMAGENET_CFG, pretrained, kwargs)


@register_model
def binary_alexnet_cifar(pretrained: bool = False, **kwargs) -> BinaryAlexNet:
    """BinaryAlexNet for 32x32 CIFAR input: conv1 3x3/1 (32 -> 15 -> 7 -> 3 after the pools),
    hidden dense layers of 1024 (BinaryNet's CIFAR width) instead of 4096."""
    cfg = replace(
        BinaryAlexNetConfig(), num_classes=10, image_size=32, first_kernel=3, first_stride=1,
        dense_units=(1024, 1024),
    )
    return build_model(BinaryAlexNet, cfg, _CIFAR_CFG, pretrained, kwargs)
