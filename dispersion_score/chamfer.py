"""Chamfer distance between point clouds (SPEC §2.2).

Convention everywhere in this module: squared Euclidean nearest-neighbour distances, averaged over the
points of each cloud, the two directions summed (no square root, no 1/2).
"""

from __future__ import annotations

import torch


def _validate_batched_clouds(name: str, points: torch.Tensor) -> None:
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (B, P, 3), got {tuple(points.shape)}")
    if points.shape[1] == 0:
        raise ValueError(f"{name} holds empty clouds (P = 0); expected (B, P, 3) with P >= 1")


def chamfer_distance(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    """Differentiable Chamfer distance between paired clouds, for training losses.

    Args:
        a: (B, P, 3) predicted clouds.
        b: (B, Q, 3) target clouds.
        reduction: "mean" (scalar, mean over the batch), "sum" (scalar) or "none" ((B,) per pair).

    Returns:
        Squared-distance Chamfer: mean_a min_b ||a-b||² + mean_b min_a ||a-b||², reduced as asked.
    """
    _validate_batched_clouds("a", a)
    _validate_batched_clouds("b", b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same batch size, got {a.shape[0]} and {b.shape[0]}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be one of 'mean', 'sum', 'none', got {reduction!r}")
    squared = torch.cdist(a, b).square()
    per_pair = squared.min(dim=2).values.mean(dim=1) + squared.min(dim=1).values.mean(dim=1)
    if reduction == "mean":
        return per_pair.mean()
    if reduction == "sum":
        return per_pair.sum()
    return per_pair
