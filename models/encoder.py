"""Image encoder (SPEC §5): torchvision ResNet-18, randomly initialised, its final layer → a bottleneck."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18

MIN_IMAGE_SIZE = 32


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
    """

    def __init__(self, bottleneck: int = 1024) -> None:
        super().__init__()
        if bottleneck < 1:
            raise ValueError(f"bottleneck must be >= 1, got {bottleneck}")
        self.bottleneck = bottleneck
        self.net = resnet18(weights=None, num_classes=bottleneck)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        validate_images(images)
        return self.net(images)
