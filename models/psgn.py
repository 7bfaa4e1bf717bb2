"""PSGN-style fully connected decoder (docs/models.md): latent → MLP → all point coordinates at once."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.base import PointCloudNet


class PSGN(PointCloudNet):
    """ResNet-18 encoder + MLP bottleneck → hidden[0] → ... → hidden[-1] → num_points·3 (BN + ReLU between).

    Args:
        num_points: points per predicted cloud (training and ``predict`` alike).
        bottleneck: latent size.
        hidden: widths of the hidden layers (docs/models.md: 512, 512, 512).
    """

    def __init__(self, *, num_points: int = 2500, bottleneck: int = 1024, hidden: Sequence[int] = (512, 512, 512)):
        super().__init__(bottleneck)
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}")
        self.points = num_points
        layers: list[nn.Module] = []
        width = bottleneck
        for size in hidden:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.ReLU(inplace=True)]
            width = size
        layers.append(nn.Linear(width, num_points * 3))
        self.mlp = nn.Sequential(*layers)

    def decode(self, latent: torch.Tensor, *, regular: bool) -> torch.Tensor:
        return self.mlp(latent).view(latent.shape[0], self.points, 3)

    def num_points(self, *, regular: bool) -> int:
        return self.points
