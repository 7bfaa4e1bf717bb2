"""Distance matrix of generic feature vectors (docs/library.md): D[i, j] = ||f_i - f_j||² / d.

Dividing by the feature dimension d makes D the mean squared difference per feature, the convention of
the perceptual image distance (VGG16 relu3_3, channel max, d = 3136).

Computation: blocks of rows, one matmul per block, D = (|f_i|² + |f_j|² - 2 f_i·f_j) / d clamped at 0.
The expansion loses precision when the squared norms are much larger than the squared distance: the
features are centred on their mean (in float64; this changes no distance), but centring cannot help two
items that sit close together far from the mean (a tight cluster away from the others: in float32 such
pairs lost all their digits). So the centring, the products and the norms are computed in float64, one
block of rows at a time from the input: the result is exact to float32 rounding unless a distance is
below about 1e-9 of the items' squared norms after centring. Only blocks with j >= i are computed; each
value is written to (i, j) and (j, i), so the result is exactly symmetric with an exactly zero diagonal.
The N x N float32 output (4·N² bytes) is the only allocation that grows with N²; a distance beyond
float32's range raises ValueError instead of becoming inf. The out-of-core path
(:mod:`dispersion_score.tiles`) computes every block with the same functions on the same inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from dispersion_score._feature_blocks import centred_rows, default_block_size, distance_block, squared_norms
from dispersion_score._validation import resolve_device, validate_features

if TYPE_CHECKING:
    import os

    from dispersion_score.launch import Launch


@torch.no_grad()
def feature_matrix(
    features: Any,
    *,
    device: str | torch.device | None = None,
    block_size: int | None = None,
    progress: bool = False,
    out: str | os.PathLike | None = None,
    launch: Launch | None = None,
    tile_size: int | None = None,
) -> np.ndarray:
    """N x N matrix of squared Euclidean distances divided by the feature dimension.

    Args:
        features: (N, d) array or tensor, N >= 1, d >= 1, finite.
        device: where to compute; None = the CPU unless ``features`` is a CUDA tensor.
        block_size: rows per block; None chooses from a memory budget (results do not depend on it).
        progress: show a tqdm progress bar over blocks.
        out, launch, tile_size: compute out of core into the .npy file ``out``, in resumable tiles
            (``tile_size`` rows per side, default 8192, rounded up to a multiple of the block), run by
            ``launch`` or in this process; as in :func:`~dispersion_score.chamfer_matrix`.

    Returns:
        (N, N) float32 NumPy array, D[i, j] = ||f_i - f_j||² / d, exactly symmetric, zero diagonal
        (a read-only ``np.memmap`` of ``out`` with ``out``).

    Raises:
        ValueError: wrong shape, empty input, NaN/inf (naming the item index), bad block_size, or a distance
            beyond float32's range.
    """
    tensor = validate_features(features, name="features")
    if block_size is not None and (isinstance(block_size, bool) or int(block_size) != block_size or block_size < 1):
        raise ValueError(f"block_size must be a positive integer or None, got {block_size!r}")
    dev = resolve_device(device, tensor)
    n, dim = tensor.shape
    source = tensor.to(dev)
    mean = _mean_float64(source)
    if out is not None or launch is not None or tile_size is not None:
        from dispersion_score.tiles import check_tile_options, tiled_feature_matrix  # the out-of-core path

        check_tile_options(out, launch, tile_size)
        return tiled_feature_matrix(
            source, mean, out=out, launch=launch, tile_size=tile_size, block_size=block_size, progress=progress
        )
    norms = squared_norms(source, mean)
    block = default_block_size(dev, dim) if block_size is None else int(block_size)
    out = np.zeros((n, n), dtype=np.float32)
    starts = range(0, n, block)
    bar = tqdm(total=len(starts) * (len(starts) + 1) // 2, desc="feature matrix", disable=not progress)
    for r0 in starts:
        rows = slice(r0, min(n, r0 + block))
        row_block = centred_rows(source, mean, rows)
        for c0 in range(r0, n, block):
            cols = slice(c0, min(n, c0 + block))
            tile = distance_block(row_block, centred_rows(source, mean, cols), norms, rows, cols)
            if r0 == c0:
                tile = np.triu(tile, k=1)
                tile = tile + tile.T  # exact: every off-diagonal value is added to a zero
            out[rows, cols] = tile
            out[cols, rows] = tile.T
            bar.update(1)
    bar.close()
    return out


def _mean_float64(features: torch.Tensor) -> torch.Tensor:
    """Column means of (N, d) features in float64, summed in row chunks (no float64 copy of the whole)."""
    chunk = max(1, (64 << 20) // (8 * features.shape[1]))
    total = torch.zeros(features.shape[1], dtype=torch.float64, device=features.device)
    for s in range(0, features.shape[0], chunk):
        total += features[s : s + chunk].to(torch.float64).sum(dim=0)
    return total / features.shape[0]
