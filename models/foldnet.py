"""FoldingNet decoder (Yang et al., CVPR 2018) on a ResNet-18 image encoder (docs/models.md)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.base import PointCloudNet
from models.templates import unit_square_grid


class _Fold(nn.Module):
    """Point-wise MLP on [codeword ⊕ per-point input] → 3-D points, ReLU between layers (no BatchNorm,
    as in FoldingNet).

    The first layer's concatenation is computed as Conv1d(per-point input) + Linear(codeword) broadcast over
    the points: the same function as a layer on the concatenated vector, without repeating the codeword P
    times (at paper size that repetition costs more than the rest of the decoder).
    """

    def __init__(self, codeword: int, point_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.point_in = nn.Conv1d(point_dim, hidden[0], 1)
        self.code_in = nn.Linear(codeword, hidden[0], bias=False)
        layers: list[nn.Module] = []
        width = hidden[0]
        for size in hidden[1:]:
            layers += [nn.BatchNorm1d(width), nn.ReLU(inplace=True), nn.Conv1d(width, size, 1)]
            width = size
        layers += [nn.BatchNorm1d(width), nn.ReLU(inplace=True), nn.Conv1d(width, 3, 1)]
        self.rest = nn.Sequential(*layers)

    def forward(self, points: torch.Tensor, codeword: torch.Tensor) -> torch.Tensor:
        """points: (B, point_dim, P) or (point_dim, P); codeword: (B, C) → (B, 3, P)."""
        x = self.point_in(points if points.ndim == 3 else points.unsqueeze(0))
        return self.rest(x + self.code_in(codeword).unsqueeze(2))


class FoldNet(PointCloudNet):
    """Two folds of a fixed grid_size × grid_size grid on [0, 1]².

    Fold 1 maps [codeword ⊕ grid point] to 3-D; fold 2 maps [codeword ⊕ fold-1 output] to the final 3-D
    points. Each fold is an MLP with widths ``hidden`` then 3 (docs/models.md: 512, 512, 3). The grid is the same in
    training and ``predict``, so both give grid_size² points.

    Args:
        grid_size: side of the grid (docs/models.md: 50 → 2500 points).
        bottleneck: codeword size.
        hidden: hidden widths of each fold.
    """

    def __init__(self, *, grid_size: int = 50, bottleneck: int = 1024, hidden: Sequence[int] = (512, 512)) -> None:
        super().__init__(bottleneck)
        if grid_size < 2:
            raise ValueError(f"grid_size must be >= 2, got {grid_size}")
        if not hidden:
            raise ValueError("hidden must list at least one width")
        self.grid_size = grid_size
        self.register_buffer("grid", unit_square_grid(grid_size), persistent=False)
        self.fold1 = _Fold(bottleneck, 2, hidden)
        self.fold2 = _Fold(bottleneck, 3, hidden)

    def decode(self, latent: torch.Tensor, *, regular: bool) -> torch.Tensor:
        folded = self.fold1(self.grid, latent)
        return self.fold2(folded, latent).transpose(1, 2)

    def num_points(self, *, regular: bool) -> int:
        return self.grid_size**2
