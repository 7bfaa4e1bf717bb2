"""Image encoder (docs/models.md): torchvision ResNet-18, randomly initialised, its final layer → a bottleneck."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18

MIN_IMAGE_SIZE = 32
CHANNEL_ORDERS = ("rgb", "bgr")
POOLINGS = ("adaptive", "fixed7")
_FIXED_POOL = 7
_RESNET_STRIDE = 32


def validate_images(images: torch.Tensor) -> None:
    """Raises ValueError unless ``images`` is (B, 3, H, W) with H, W >= 32."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if min(images.shape[2:]) < MIN_IMAGE_SIZE:
        raise ValueError(
            f"images must be at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels, got {tuple(images.shape[2:])}"
        )


class ResNet18Encoder(nn.Module):
    """ResNet-18 (random init) whose ``fc`` layer maps the 512 pooled features to ``bottleneck`` values.

    Input: (B, 3, H, W) RGB in [0, 1], any H, W >= 32 (the network pools adaptively). Output: (B, bottleneck)
    latent codes, the raw output of ``fc`` (no normalisation or activation after it, as in AtlasNet).

    Two options exist only to run networks trained by the original code exactly (``models.original``); the
    defaults are this project's networks:

    Args:
        bottleneck: latent size.
        channel_order: "rgb" (default): the network sees the input as given. "bgr": the input (still RGB,
            as every dataset of this project gives it) is reversed to BGR before the first layer, for
            networks trained on OpenCV-read (BGR) images.
        pooling: "adaptive" (default): global average pooling of the last feature map, any input size.
            "fixed7": ``AvgPool2d(7)`` as the original's ``model/resnet.py`` (and early torchvision): the
            same at 224×224 input (7×7 feature map); on larger inputs it averages only the top-left 7×7
            window(s) as the original did, and inputs below 193 pixels are rejected.
    """

    def __init__(self, bottleneck: int = 1024, *, channel_order: str = "rgb", pooling: str = "adaptive") -> None:
        super().__init__()
        if bottleneck < 1:
            raise ValueError(f"bottleneck must be >= 1, got {bottleneck}")
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.bottleneck = bottleneck
        self.channel_order = channel_order
        self.pooling = pooling
        self.net = resnet18(weights=None, num_classes=bottleneck)
        if pooling == "fixed7":
            self.net.avgpool = nn.AvgPool2d(_FIXED_POOL)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        validate_images(images)
        if self.pooling == "fixed7":
            smallest = _RESNET_STRIDE * (_FIXED_POOL - 1) + 1
            if min(images.shape[2:]) < smallest:
                raise ValueError(
                    f"this encoder pools a fixed 7x7 window (pooling='fixed7', as the original network): "
                    f"images must be at least {smallest}x{smallest} pixels (224x224 as trained), "
                    f"got {tuple(images.shape[2:])}"
                )
        if self.channel_order == "bgr":
            images = images.flip(1)
        return self.net(images)
