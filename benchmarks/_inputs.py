"""Seeded input builders shared by the tests and the benchmarks.

Every builder takes an explicit seed and returns NumPy float32 arrays, so the same call gives the same
input in a test and in a benchmark.
"""

from __future__ import annotations

import numpy as np
import torch


def random_clouds(n: int, p: int, *, seed: int = 0, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """(n, p, 3) float32 clouds of i.i.d. Gaussian points (std ``scale``, mean ``offset`` per axis)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, p, 3)) * scale + offset).astype(np.float32)


def surface_clouds(n: int, p: int, *, seed: int = 0) -> np.ndarray:
    """(n, p, 3) float32 clouds on surfaces like the project's data: a sphere blended toward a cube
    (random blend t), then a random anisotropic scale in [0.4, 1] per axis and a random rotation."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((n, p, 3))
    directions /= np.linalg.norm(directions, axis=2, keepdims=True)
    cube = directions / np.abs(directions).max(axis=2, keepdims=True) * 0.8
    t = rng.random((n, 1, 1))
    points = (1 - t) * directions + t * cube
    points *= 0.4 + 0.6 * rng.random((n, 1, 3))
    rotations, _ = np.linalg.qr(rng.standard_normal((n, 3, 3)))
    return np.einsum("npk,nlk->npl", points, rotations).astype(np.float32)


def ragged_clouds(sizes: list[int], *, seed: int = 0, scale: float = 1.0) -> list[np.ndarray]:
    """A list of float32 Gaussian clouds with the given numbers of points."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((size, 3)) * scale).astype(np.float32) for size in sizes]


def random_features(n: int, d: int, *, seed: int = 0, offset: float = 0.0) -> np.ndarray:
    """(n, d) float32 features: Gaussian rows plus a common ``offset`` (a large offset tests that the
    distance computation does not lose precision to the norms)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) + offset).astype(np.float32)


def clustered_distance_matrix(
    n: int, *, dim: int = 5, clusters: int = 50, spread: float = 3.0, seed: int = 0, block: int = 2048
) -> np.ndarray:
    """(n, n) float32 squared Euclidean distances of n points around `clusters` Gaussian centres.

    Centres ~ N(0, spread² I), points = centre + N(0, I), in `dim` dimensions. Built in square blocks
    (float64 arithmetic, then float32), each upper block mirrored, so the result is exactly symmetric with
    a zero diagonal and the only large allocation is the output itself (n = 20000: 1.6 GB).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)) * spread
    points = torch.from_numpy(centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, dim)))
    norms = (points * points).sum(dim=1)
    out = np.empty((n, n), dtype=np.float32)
    view = torch.from_numpy(out)
    for i in range(0, n, block):
        for j in range(i, n, block):
            gram = points[i : i + block] @ points[j : j + block].t()
            tile = (norms[i : i + block, None] + norms[None, j : j + block] - 2.0 * gram).clamp_(min=0.0).float()
            view[i : i + block, j : j + block] = tile
            view[j : j + block, i : i + block] = tile.t()
    view.fill_diagonal_(0.0)
    return out


def blob_points(n: int, *, dim: int = 2, blobs: int = 10, std: float = 1.0, seed: int = 0) -> np.ndarray:
    """(n, dim) float64 points in ``blobs`` isotropic Gaussian blobs (std ``std``) whose centres are uniform
    in [-10, 10]^dim (the layout of scikit-learn's ``make_blobs``); blob sizes differ by at most one."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10.0, 10.0, size=(blobs, dim))
    labels = rng.permutation(np.arange(n) % blobs)
    return centres[labels] + rng.normal(scale=std, size=(n, dim))


def squared_distances_over_dim(points: np.ndarray) -> np.ndarray:
    """(n, n) float32 matrix ||x_i - x_j||² / dim (the feature-distance convention), from float64 differences:
    exactly symmetric, zero diagonal. For the small n of tests and quality benchmarks (O(n²·dim) memory)."""
    points = np.asarray(points, dtype=np.float64)
    diff = points[:, None, :] - points[None, :, :]
    return (np.einsum("ijd,ijd->ij", diff, diff) / points.shape[1]).astype(np.float32)
