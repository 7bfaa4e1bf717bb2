"""How predicted clouds are scored against their ground truth (docs/library.md): the output metrics (Chamfer and
F-score) and the oracle nearest neighbour (for each ground-truth cloud, the nearest reference cloud in Chamfer
distance: the upper bound of any retrieval method)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dispersion_score.chamfer import chamfer_cross, chamfer_distance, fscore


def output_metrics(predictions: Any, ground_truth: Any) -> dict[str, float]:
    """Chamfer distance and F-scores of predicted clouds against their ground truth, averaged over the items.

    Args:
        predictions: (N, P, 3) float clouds, item i predicting ``ground_truth[i]`` (cast to float32).
        ground_truth: (N, Q, 3) float clouds (cast to float32), in the same frame and units as the predictions.

    Returns:
        ``{"chamfer", "fscore", "fscore_atlasnet"}``: the mean over items of the squared-distance Chamfer
        (:func:`~dispersion_score.chamfer_distance`), of the F-score with Euclidean τ = 0.01 and of the F-score
        in the old AtlasNet convention (squared distance < 0.001) (:func:`~dispersion_score.fscore`).

    Raises:
        ValueError: mismatched counts, bad shapes or NaN/inf in the clouds.
    """
    pred = torch.from_numpy(np.ascontiguousarray(predictions, dtype=np.float32))
    gt = torch.from_numpy(np.ascontiguousarray(ground_truth, dtype=np.float32))
    return {
        "chamfer": float(chamfer_distance(pred, gt, reduction="mean")),
        "fscore": float(fscore(pred, gt, convention="euclidean").mean()),
        "fscore_atlasnet": float(fscore(pred, gt, convention="atlasnet_squared").mean()),
    }


def nearest_shapes(
    queries: Any, references: Any, *, device: str | torch.device | None = None, progress: bool = False
) -> np.ndarray:
    """Index of the reference cloud with the smallest Chamfer distance to each query cloud (the oracle nearest
    neighbour when the queries are the ground truth and the references the training shapes).

    The distance is the evaluation's (docs/library.md: squared, both directions) on the clouds as given (no
    normalisation, so the oracle minimises exactly the Chamfer :func:`output_metrics` reports), from one
    N_query × N_reference :func:`~dispersion_score.chamfer_cross` matrix (4·N_query·N_reference bytes).

    Args:
        queries: (N_query, P, 3) clouds (array or tensor; a sequence of (P_i, 3) clouds also works).
        references: (N_reference, R, 3) clouds, likewise.
        device: where to compute; None = the CPU (unless the clouds are CUDA tensors).
        progress: show a progress bar over pairs.

    Returns:
        (N_query,) int64 indices into ``references``; ties go to the lowest index.

    Raises:
        ValueError: bad shapes, an empty set or NaN/inf in the clouds (as :func:`~dispersion_score.chamfer_cross`).
    """
    distances = chamfer_cross(queries, references, device=device, normalize=False, progress=progress)
    return distances.argmin(axis=1)
