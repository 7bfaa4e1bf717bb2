"""The arithmetic of the feature matrix, shared by :func:`dispersion_score.feature_matrix` and its out-of-core
tiles (:mod:`dispersion_score._tile_compute`), so both give the same bits (conventions in
:mod:`dispersion_score.features`: D[i, j] = ||f_i - f_j||² / d from centred float64 rows)."""

from __future__ import annotations

import numpy as np
import torch

from dispersion_score._validation import FLOAT32_MAX

_CPU_BLOCK_BYTES = 16 << 20
_CUDA_BLOCK_BYTES = 256 << 20


def default_block_size(device: torch.device, dim: int) -> int:
    """Rows per block when ``block_size`` is None: a square tile within the device type's memory budget, and
    float64 row blocks of at most 64 MiB (wide features)."""
    budget = _CUDA_BLOCK_BYTES if device.type == "cuda" else _CPU_BLOCK_BYTES
    return max(1, min(int((budget // 4) ** 0.5), (64 << 20) // (8 * dim)))


def centred_rows(source: torch.Tensor, mean: torch.Tensor, rows: slice) -> torch.Tensor:
    """Rows of the features minus their mean, in float64."""
    return source[rows].to(torch.float64) - mean


def squared_norms(source: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """(N,) float64 squared norms of the centred features, computed in row chunks of at most 64 MiB."""
    n, dim = source.shape
    chunk = max(1, (64 << 20) // (8 * dim))
    return torch.cat([centred_rows(source, mean, slice(s, s + chunk)).square().sum(dim=1) for s in range(0, n, chunk)])


def distance_block(
    row_block: torch.Tensor, col_block: torch.Tensor, norms: torch.Tensor, rows: slice, cols: slice
) -> np.ndarray:
    """(rows, cols) float32 block of D before symmetrisation, from centred float64 rows and columns: the one
    place the arithmetic of a value lives (the tiled path calls it too, so both give the same bits).

    Raises:
        ValueError: a distance beyond float32's range.
    """
    dim = row_block.shape[1]
    tile = torch.addmm(norms[rows, None] + norms[None, cols], row_block, col_block.T, alpha=-2.0).clamp_min_(0) / dim
    largest = float(tile.max())
    if largest > FLOAT32_MAX:
        raise ValueError(
            f"features give squared distances up to {largest:.3g}, beyond float32's range "
            f"({FLOAT32_MAX:.3g}; rows {rows.start}..{rows.stop - 1}): rescale the features"
        )
    return tile.to(torch.float32).cpu().numpy()
