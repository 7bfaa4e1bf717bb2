"""AtlasNet templates (SPEC §5): the surfaces a decoder deforms into the predicted shape.

A template gives points in two ways:

* ``random_points``: fresh random samples, used in training so the decoder learns a continuous map;
* ``regular_points``: a fixed, regular set, used for prediction (and so for output DS and test metrics).

Points are returned channels-first, ``(..., dim, P)``, the layout of the decoders' ``Conv1d`` layers.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import trimesh

TEMPLATES = ("sphere", "square")


class SphereTemplate:
    """Unit sphere (dim 3). Training: uniform random points on the sphere. Prediction: icosphere vertices.

    Args:
        level: icosphere subdivision level of the regular template; level L has 10·4^L + 2 vertices
            (level 4: 2562, level 3: 642).
    """

    dim = 3

    def __init__(self, level: int = 4) -> None:
        if level < 0:
            raise ValueError(f"sphere subdivision level must be >= 0, got {level}")
        self.level = level
        vertices = trimesh.creation.icosphere(subdivisions=level, radius=1.0).vertices
        self._regular = torch.from_numpy(np.ascontiguousarray(vertices.T, dtype=np.float32))

    @staticmethod
    def vertex_count(level: int) -> int:
        """Number of icosphere vertices at subdivision ``level``."""
        return 10 * 4**level + 2

    def random_points(self, batch: int, count: int, *, device: torch.device | str = "cpu") -> torch.Tensor:
        """(batch, 3, count) points uniform on the unit sphere (normalised Gaussian samples)."""
        points = torch.randn(batch, 3, count, device=device)
        return points / points.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def regular_points(self, *, device: torch.device | str = "cpu") -> torch.Tensor:
        """(3, 10·4^level + 2) icosphere vertices on the unit sphere."""
        return self._regular.to(device)


class SquareTemplate:
    """Unit square [0, 1]² (dim 2). Training: uniform random points. Prediction: a regular grid.

    Args:
        grid_size: side of the regular grid; prediction gives grid_size² points per patch, corners included.
    """

    dim = 2

    def __init__(self, grid_size: int) -> None:
        if grid_size < 2:
            raise ValueError(f"square grid_size must be >= 2, got {grid_size}")
        self.grid_size = grid_size
        axis = torch.linspace(0.0, 1.0, grid_size)
        u, v = torch.meshgrid(axis, axis, indexing="ij")
        self._regular = torch.stack([u.reshape(-1), v.reshape(-1)])

    @staticmethod
    def grid_size_for(points: int) -> int:
        """Grid side whose square is closest to ``points`` (at least 2)."""
        return max(2, round(math.sqrt(points)))

    def random_points(self, batch: int, count: int, *, device: torch.device | str = "cpu") -> torch.Tensor:
        """(batch, 2, count) points uniform in [0, 1]²."""
        return torch.rand(batch, 2, count, device=device)

    def regular_points(self, *, device: torch.device | str = "cpu") -> torch.Tensor:
        """(2, grid_size²) grid on [0, 1]²."""
        return self._regular.to(device)


def unit_square_grid(grid_size: int) -> torch.Tensor:
    """(2, grid_size²) regular grid on [0, 1]² (FoldNet's fixed 2-D input)."""
    return SquareTemplate(grid_size).regular_points()
