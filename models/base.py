"""Common interface of the image → point cloud networks: encoder + decoder, ``forward`` and ``predict``."""

from __future__ import annotations

import torch
from torch import nn

from models.encoder import ResNet18Encoder


class PointCloudNet(nn.Module):
    """A ResNet-18 encoder followed by a point-cloud decoder.

    ``forward(images)`` is the training path (AtlasNet samples random template points there);
    ``predict(images)`` is the evaluation path: eval mode, no gradients, the regular template.
    Subclasses implement ``decode`` and ``num_points``.
    """

    def __init__(self, bottleneck: int) -> None:
        super().__init__()
        self.encoder = ResNet18Encoder(bottleneck)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, H, W) RGB in [0, 1] → (B, num_points(regular=False), 3) points."""
        return self.decode(self.encoder(images), regular=False)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, H, W) → (B, num_points(regular=True), 3), in eval mode with the regular template.

        The module's training flag is restored afterwards.
        """
        was_training = self.training
        self.eval()
        try:
            return self.decode(self.encoder(images), regular=True)
        finally:
            self.train(was_training)

    def decode(self, latent: torch.Tensor, *, regular: bool) -> torch.Tensor:
        """latent: (B, bottleneck) → (B, M, 3) points."""
        raise NotImplementedError

    def num_points(self, *, regular: bool) -> int:
        """Points per predicted cloud: training path (``regular=False``) or ``predict`` (``regular=True``)."""
        raise NotImplementedError
