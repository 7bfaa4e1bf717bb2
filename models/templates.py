"""AtlasNet templates (docs/models.md): the surfaces a decoder deforms into the predicted shape.

A template gives points in two ways:

* ``random_points``: fresh random samples, used in training so the decoder learns a continuous map;
* ``regular_points``: a fixed, regular set, used for prediction (and so for output DS and test metrics).

Points are returned channels-first, ``(..., dim, P)``, the layout of the decoders' ``Conv1d`` layers.
"""

from __future__ import annotations

import math

import numpy as np
import torch

TEMPLATES = ("sphere", "square")
SPHERE_CONSTRUCTIONS = ("trimesh", "pymesh")


class SphereTemplate:
    """Unit sphere (dim 3). Training: uniform random points on the sphere. Prediction: icosphere vertices.

    Args:
        level: icosphere subdivision level of the regular template; level L has 10·4^L + 2 vertices
            (level 4: 2562, level 3: 642).
        construction: how the icosphere is built. "trimesh" (default): ``trimesh.creation.icosphere``, which
            projects onto the sphere after every subdivision. "pymesh": PyMesh's ``generate_icosphere``, which
            subdivides the flat icosahedron ``level`` times and projects once at the end (a different vertex
            set with the same count: the template the original AtlasNet/dispersion-score code predicts on;
            see ``pymesh_icosphere``).
    """

    dim = 3

    def __init__(self, level: int = 4, *, construction: str = "trimesh") -> None:
        if level < 0:
            raise ValueError(f"sphere subdivision level must be >= 0, got {level}")
        if construction not in SPHERE_CONSTRUCTIONS:
            raise ValueError(f"sphere construction must be one of {SPHERE_CONSTRUCTIONS}, got {construction!r}")
        self.level = level
        self.construction = construction
        if construction == "trimesh":
            # Imported here: trimesh is a fifth of this package's import time (2.7 of 13.9 s measured on a loaded
            # 2-core machine, docs/training_speed.md), and only this template needs it.
            import trimesh

            vertices = trimesh.creation.icosphere(subdivisions=level, radius=1.0).vertices
        else:
            vertices = pymesh_icosphere(level)
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


# PyMesh's icosahedron (python/pymesh/meshutils/generate_icosphere.py since its 2015 face-orientation fix,
# the version in the pymesh2 0.2.1 wheel the original code installs): golden-ratio vertices, 20 faces.
_PHI = (1.0 + math.sqrt(5.0)) / 2.0
_ICOSAHEDRON_VERTICES = (
    (-1.0, _PHI, 0.0), (1.0, _PHI, 0.0), (-1.0, -_PHI, 0.0), (1.0, -_PHI, 0.0),
    (0.0, -1.0, _PHI), (0.0, 1.0, _PHI), (0.0, -1.0, -_PHI), (0.0, 1.0, -_PHI),
    (_PHI, 0.0, -1.0), (_PHI, 0.0, 1.0), (-_PHI, 0.0, -1.0), (-_PHI, 0.0, 1.0),
)  # fmt: skip
_ICOSAHEDRON_FACES = (
    (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6),
    (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (5, 4, 9), (2, 4, 11), (6, 2, 10),
    (8, 6, 7), (9, 8, 1),
)  # fmt: skip


def pymesh_icosphere(level: int) -> np.ndarray:
    """The vertices of PyMesh's ``generate_icosphere(1.0, [0, 0, 0], level)``, in PyMesh's order.

    PyMesh's "simple" subdivision splits every triangle into four at its edge midpoints, ``level`` times, on
    the flat icosahedron; only then are all vertices projected onto the unit sphere (``v / |v|``). New
    vertices are appended in the order their edges are first met (faces in order, edges (0,1), (1,2), (2,0)
    of each face), and face (a, b, c) with midpoints m_ab, m_bc, m_ca becomes (a, m_ab, m_ca),
    (b, m_bc, m_ab), (c, m_ca, m_bc), (m_ab, m_bc, m_ca). The arithmetic is the same (0.5·a + 0.5·b, one
    numpy norm), so the float64 values are PyMesh's bit for bit.

    Args:
        level: number of subdivisions (>= 0).

    Returns:
        (10·4^level + 2, 3) float64 array of unit vectors (2562 at level 4).

    Source: PyMesh (Qingnan Zhou), ``generate_icosphere.py`` and ``tools/MeshUtils/SimpleSubdivision.cpp``;
    the original dispersion-score code calls ``pymesh.generate_icosphere(1, [0, 0, 0], 4)`` for its template.
    """
    if level < 0:
        raise ValueError(f"icosphere level must be >= 0, got {level}")
    vertices = np.asarray(_ICOSAHEDRON_VERTICES, dtype=np.float64)
    faces = np.asarray(_ICOSAHEDRON_FACES, dtype=np.int64)
    for _ in range(level):
        vertices, faces = _pymesh_simple_subdivision(vertices, faces)
    return vertices / np.linalg.norm(vertices, axis=1).reshape(-1, 1)


def _pymesh_simple_subdivision(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    base = len(vertices)
    index: dict[tuple[int, int], int] = {}
    ends: list[tuple[int, int]] = []
    for face in faces.tolist():
        for a, b in ((face[0], face[1]), (face[1], face[2]), (face[2], face[0])):
            key = (a, b) if a >= b else (b, a)
            if key not in index:
                index[key] = base + len(ends)
                ends.append((a, b))
    first, second = np.asarray(ends, dtype=np.int64).T
    midpoints = 0.5 * vertices[first] + 0.5 * vertices[second]
    new_faces = []
    for a, b, c in faces.tolist():
        ab, bc, ca = (index[(x, y) if x >= y else (y, x)] for x, y in ((a, b), (b, c), (c, a)))
        new_faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
    return np.concatenate([vertices, midpoints]), np.asarray(new_faces, dtype=np.int64)
