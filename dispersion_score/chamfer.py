"""Chamfer distance between point clouds (docs/library.md), for training losses and N x N matrices.

Convention everywhere in this module: squared Euclidean nearest-neighbour distances, averaged over the
points of each cloud, the two directions summed (no square root, no 1/2):

    CD(A, B) = mean_{a in A} min_{b in B} ||a - b||² + mean_{b in B} min_{a in A} ||a - b||²

Matrices (:func:`chamfer_matrix`, :func:`chamfer_cross`) normalise every cloud to the unit ball first
(centroid = mean of the points, then divide by the largest point norm) unless ``normalize=False``.

How matrices are computed. Pairs are processed in blocks of clouds; no Python loop runs over pairs, and
the N x N float32 output is the only allocation that grows with N². A symmetric matrix computes only the
pairs i < j and writes each value to both (i, j) and (j, i), so it is exactly symmetric with an exactly
zero diagonal. Two backends give the same numbers (to float32 rounding):

* ``"compiled"`` (CPU; the default there when a C++ compiler is present): a small fused kernel
  (:mod:`dispersion_score._chamfer_kernel`) updates the minima of both directions from one pass over
  the distances, using the difference form dx² + dy² + dz², which has no cancellation.
* ``"torch"`` (CUDA, or CPU without a compiler): distance tiles from one float32 matmul per block on
  K = 5 augmented coordinates, [a, |a|², 1] · [-2b, 1, |b|²] = |a|² + |b|² - 2a·b, then a min over each
  axis of the same tile. The expansion cancels when |a|² ≫ |a - b|², so it is only ever applied to
  points measured from their own cloud's centroid: for clouds A, B with centroids c_A, c_B and
  δ = c_A - c_B (in float64), |a - b|² = |a'|² + |b'|² - 2a'·b' + 2a'·δ - 2b'·δ + |δ|² with a' = a - c_A,
  b' = b - c_B, where every term is of the size of the clouds' spread or of their distance, never of their
  distance from the origin. Normalised clouds are already centred (δ = 0, the extra terms vanish); with
  ``normalize=False`` the two δ terms are added to each tile (one pass each). The result is clamped at 0;
  the absolute error of one squared distance is about 1e-7 of (spread² + |δ|²), so clouds far from the
  origin relative to their size are as exact as unit-ball ones. Tiles cover a chunk of query points
  against whole clouds, sized from a memory budget, so blocks stream through cache (CPU) or bounded GPU
  memory.

Ragged input (a list of clouds with different sizes) is exact on both backends: the compiled kernel
takes each cloud's own size, and the torch backend groups clouds into size buckets (sizes within 12.5 %)
and pads each cloud to its bucket size by repeating its own points — a repeated point changes no
minimum — and leaves the repeats out of every mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from dispersion_score import _chamfer_kernel
from dispersion_score._chamfer_blocks import (
    CPU_TILE_BYTES,
    CUDA_TILE_BYTES,
    Bucket,
    normalize_float64,
    size_buckets,
    torch_block,
    torch_plan,
    unit_ball_parameters,
)
from dispersion_score._threads import cpu_threads, resolve_threads
from dispersion_score._validation import (
    FLOAT32_MAX,
    as_float_tensor,
    resolve_device,
    validate_batched_clouds,
    validate_point_clouds,
)

if TYPE_CHECKING:
    import os

    from dispersion_score.launch import Launch

Backend = Literal["auto", "compiled", "torch"]
_BACKENDS = ("auto", "compiled", "torch")
_FSCORE_CONVENTIONS = {"euclidean": 0.01, "atlasnet_squared": 0.001}

_COMPILED_BLOCK = 128  # clouds per block side for the compiled backend: ~8k pairs per progress step


# ---------------------------------------------------------------------------------------------------
# Normalisation


def unit_ball_transform(points: Any) -> tuple[np.ndarray, float]:
    """The unit-ball normalisation of one cloud as a transform: its centroid and scale.

    For applying a shape's own normalisation to a sample of it (a dataset normalises the points it draws
    with the transform of the shape's dense cloud): ``(sample - centroid) / scale``.

    Args:
        points: (P, 3) NumPy array or tensor, P >= 1, finite.

    Returns:
        centroid: (3,) float64 array, the mean of the points; scale: the largest norm of the centred points
        (1.0 when they all coincide). ``normalize_unit_ball(points) == (points - centroid) / scale``.
    """
    tensor = as_float_tensor(points, name="points")
    validate_point_clouds([tensor], name="points")
    centroid, scale = unit_ball_parameters(tensor.detach().cpu()[None])
    return centroid[0, 0].numpy(), float(scale[0])


def normalize_unit_ball(points: Any) -> Any:
    """Translate a cloud so its centroid (mean of its points) is the origin and scale it so the farthest
    point has norm 1 (docs/library.md).

    Args:
        points: (P, 3) or (B, P, 3) NumPy array or torch tensor; batches are normalised cloud by cloud.

    Returns:
        The normalised points, same type, shape, dtype and device as the input (integer input gives
        float32). Computed in float64. A degenerate cloud whose points all coincide is returned centred
        (all zeros) rather than divided by zero.

    Raises:
        ValueError: wrong shape, an empty cloud, or NaN/inf (naming the cloud and point).
    """
    is_numpy = not isinstance(points, torch.Tensor)
    tensor = as_float_tensor(points, name="points")
    if tensor.ndim == 2:
        validate_point_clouds([tensor], name="points")
        result = normalize_float64(tensor[None])[0]
    elif tensor.ndim == 3:
        validate_point_clouds(tensor, name="points")
        result = normalize_float64(tensor)
    else:
        raise ValueError(f"points must have shape (P, 3) or (B, P, 3), got {tuple(tensor.shape)}")
    result = result.to(tensor.dtype)
    return result.numpy() if is_numpy else result


# ---------------------------------------------------------------------------------------------------
# Nearest neighbours within paired batches (losses and F-score)


def _nearest_indices(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-neighbour indices for paired clouds, without gradient.

    Args:
        a: (B, P, 3), b: (B, Q, 3), same device and dtype.

    Returns:
        idx_ab (B, P) int64: for each point of a[k], the index of its nearest point in b[k]; idx_ba
        (B, Q) int64 the reverse. Ties may resolve to any of the tied points.
    """
    with torch.no_grad():
        if a.device.type == "cpu" and a.dtype != torch.float64:
            kernel = _chamfer_kernel.load_kernel()
            if kernel is not None:
                clouds = [c.numpy() for c in a.to(torch.float32).contiguous()]
                clouds += [c.numpy() for c in b.to(torch.float32).contiguous()]
                store = _chamfer_kernel.pack_store(clouds)
                count = a.shape[0]
                idx_ab, idx_ba = kernel.nearest_pairs(
                    # The training loss runs with the caller's threads, given to the kernel explicitly.
                    store,
                    np.arange(count),
                    np.arange(count, 2 * count),
                    threads=torch.get_num_threads(),
                )
                return torch.from_numpy(idx_ab), torch.from_numpy(idx_ba)
        return _nearest_indices_torch(a, b)


def _nearest_indices_torch(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Torch version of :func:`_nearest_indices`, chunked over the points of ``a``; computes in the
    input dtype (float64 input gives exact float64 comparisons)."""
    batch, p, q = a.shape[0], a.shape[1], b.shape[1]
    dtype = a.dtype if a.dtype == torch.float64 else torch.float32
    shift = torch.cat([a, b], dim=1).mean(dim=1, keepdim=True)
    a = (a - shift).to(dtype)
    b = (b - shift).to(dtype)
    budget = CUDA_TILE_BYTES if a.is_cuda else CPU_TILE_BYTES
    chunk = max(1, min(p, budget // max(1, batch * q * a.element_size())))
    a_sq = a.square().sum(-1)
    b_sq = b.square().sum(-1)
    idx_ab = torch.empty(batch, p, dtype=torch.int64, device=a.device)
    best_ba = torch.full((batch, q), math.inf, dtype=dtype, device=a.device)
    idx_ba = torch.zeros(batch, q, dtype=torch.int64, device=a.device)
    for start in range(0, p, chunk):
        stop = min(p, start + chunk)
        tile = torch.baddbmm(
            a_sq[:, start:stop, None] + b_sq[:, None, :], a[:, start:stop], b.transpose(1, 2), alpha=-2.0
        )
        idx_ab[:, start:stop] = tile.argmin(dim=2)
        values, where = tile.min(dim=1)
        better = values < best_ba
        best_ba = torch.where(better, values, best_ba)
        idx_ba = torch.where(better, where + start, idx_ba)
    return idx_ab, idx_ba


def _paired_squared_distances(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P) and (B, Q) squared distances of every point to its nearest neighbour in the paired cloud,
    recomputed exactly (difference form) from the nearest indices, differentiable in a and b."""
    idx_ab, idx_ba = _nearest_indices(a.detach(), b.detach())
    idx_ab = idx_ab.to(a.device)
    idx_ba = idx_ba.to(a.device)
    nearest_in_b = b.gather(1, idx_ab[..., None].expand(-1, -1, 3))
    nearest_in_a = a.gather(1, idx_ba[..., None].expand(-1, -1, 3))
    return (a - nearest_in_b).square().sum(-1), (b - nearest_in_a).square().sum(-1)


def _validate_pair_batches(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str], check_finite: bool) -> None:
    validate_batched_clouds(a, name=names[0], check_finite=check_finite)
    validate_batched_clouds(b, name=names[1], check_finite=check_finite)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same batch size B, got {a.shape[0]} and {b.shape[0]}"
        )
    if a.device != b.device:
        raise ValueError(f"{names[0]} and {names[1]} must be on the same device, got {a.device} and {b.device}")


def chamfer_distance(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> torch.Tensor:
    """Differentiable Chamfer distance between paired clouds, for training losses.

    Nearest neighbours are found without gradient (compiled kernel on CPU when available, chunked torch
    otherwise, so memory stays O(B·P) plus a bounded tile); the selected squared distances are then
    recomputed from the points with autograd, which gives the exact gradient of the min (a subgradient
    at ties). NaN in the input gives NaN out (not checked here, to keep the loss free of device syncs).

    Args:
        a: (B, P, 3) predicted clouds (floating point).
        b: (B, Q, 3) target clouds, same B, device and dtype.
        reduction: "mean" (scalar, mean over the batch), "sum" (scalar) or "none" ((B,) per pair).

    Returns:
        Squared-distance Chamfer, mean_a min_b ||a-b||² + mean_b min_a ||a-b||², reduced as asked.
    """
    _validate_pair_batches(a, b, ("a", "b"), check_finite=False)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be one of 'mean', 'sum', 'none', got {reduction!r}")
    d_ab, d_ba = _paired_squared_distances(a, b.to(a.dtype))
    per_pair = d_ab.mean(dim=1) + d_ba.mean(dim=1)
    if reduction == "mean":
        return per_pair.mean()
    if reduction == "sum":
        return per_pair.sum()
    return per_pair


def fscore(
    pred: torch.Tensor,
    gt: torch.Tensor,
    *,
    threshold: float | None = None,
    convention: Literal["euclidean", "atlasnet_squared"] = "euclidean",
) -> torch.Tensor:
    """F-score of predicted against ground-truth clouds (docs/models.md), per pair; not differentiable.

    precision = fraction of predicted points whose nearest ground-truth point is closer than the
    threshold, recall = fraction of ground-truth points whose nearest predicted point is closer than the
    threshold, F = 2·precision·recall / (precision + recall) (0 when both are 0).

    Args:
        pred: (B, P, 3) predicted clouds. gt: (B, Q, 3) ground-truth clouds, same B and device.
        threshold: τ. Default: 0.01 for "euclidean", 0.001 for "atlasnet_squared".
        convention: "euclidean": Euclidean distance < τ (unit-ball units; the project's default).
            "atlasnet_squared": squared distance < τ, the old AtlasNet convention (0.001 on squared
            distances is a Euclidean radius of about 0.0316).

    Returns:
        (B,) float32 tensor of F-scores in [0, 1], on the input's device.

    Raises:
        ValueError: bad shapes, NaN/inf (naming the item), unknown convention or threshold <= 0.
    """
    _validate_pair_batches(pred, gt, ("pred", "gt"), check_finite=True)
    if convention not in _FSCORE_CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(_FSCORE_CONVENTIONS)}, got {convention!r}")
    tau = _FSCORE_CONVENTIONS[convention] if threshold is None else float(threshold)
    if not tau > 0:
        raise ValueError(f"threshold must be > 0, got {threshold!r}")
    with torch.no_grad():
        d_pred, d_gt = _paired_squared_distances(pred, gt.to(pred.dtype))
        if convention == "euclidean":
            d_pred, d_gt = d_pred.sqrt(), d_gt.sqrt()
        precision = (d_pred < tau).to(torch.float64).mean(dim=1)
        recall = (d_gt < tau).to(torch.float64).mean(dim=1)
        total = precision + recall
        f = torch.where(total > 0, 2 * precision * recall / total.clamp_min(1e-300), torch.zeros_like(total))
    return f.to(torch.float32)


# ---------------------------------------------------------------------------------------------------
# Matrices


@torch.no_grad()
def chamfer_matrix(
    clouds: Any,
    *,
    device: str | torch.device | None = None,
    normalize: bool = True,
    block_size: int | None = None,
    progress: bool = False,
    backend: Backend = "auto",
    out: str | os.PathLike | None = None,
    launch: Launch | None = None,
    tile_size: int | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """N x N Chamfer matrix of a set of clouds (docs/library.md), exactly symmetric with a zero diagonal.

    Args:
        clouds: (N, P, 3) array/tensor, or a sequence of N (P_i, 3) arrays/tensors (sizes may differ).
        device: where to compute; None = the CPU, unless the clouds are CUDA tensors (then their device).
        normalize: normalise every cloud to the unit ball first (:func:`normalize_unit_ball`).
        block_size: clouds per block side (memory/progress granularity); None chooses from a memory
            budget. Results do not depend on it.
        progress: show a tqdm progress bar over pairs.
        backend: "auto" (compiled kernel on CPU when available, else torch), "compiled" or "torch".
        out: a .npy path: compute out of core instead (:mod:`dispersion_score.tiles`): the matrix is
            split into tiles (jobs run by ``launch``; resumable: a rerun computes only missing tiles)
            and assembled into this memory-mapped file, with the same values as the in-memory call on
            the same device type. Work files go to ``<out>.tiles/`` (a file system all workers see).
        launch: where the tile jobs run (:class:`~dispersion_score.launch.Launch`: local CPU workers,
            one job per GPU, SLURM array); None computes the tiles in this process. Needs ``out``.
        tile_size: clouds per tile side (default 1024, rounded up to the block side). Needs ``out``.
        threads: CPU threads of this call (None: torch's current count): the compiled kernel's pool size,
            or the torch backend's threads on the CPU. torch's own setting is not changed.

    Returns:
        (N, N) float32 NumPy array, D[i, j] = CD(cloud i, cloud j) in squared units (of the normalised
        clouds when ``normalize``). Memory: 4·N² bytes for the output plus O(N·P) for the clouds. With
        ``out``: a read-only ``np.memmap`` of the file (no N x N array in memory).

    Raises:
        ValueError: bad shapes, an empty cloud or set, NaN/inf (naming the cloud), bad options.
    """
    threads = resolve_threads(threads)
    prepared, dev, use_kernel, block = _prepare_sets([clouds], ("clouds",), device, normalize, block_size, backend)
    if _tiled(out, launch, tile_size):
        return _tiled_matrix(prepared, out, launch, tile_size, backend, block, normalize, progress)
    clouds_list = prepared[0]
    n = len(clouds_list)
    out = np.zeros((n, n), dtype=np.float32)
    bar = tqdm(total=n * (n - 1) // 2, desc="chamfer matrix", unit="pair", disable=not progress)
    if use_kernel:
        kernel, store = _kernel_store(clouds_list)
        del prepared, clouds_list  # the packed store holds the points now
        for rows, cols in _upper_blocks(n, block or _COMPILED_BLOCK):
            values = kernel.chamfer_pairs(store, rows, cols, threads=threads)
            out[rows, cols] = values
            out[cols, rows] = values
            bar.update(len(rows))
    else:
        with cpu_threads(threads, dev):
            buckets = size_buckets(clouds_list, dev, centred=normalize)
            for u, bucket_u in enumerate(buckets):
                for bucket_v in buckets[u:]:
                    same = bucket_v is bucket_u
                    for rows, cols, values in _torch_bucket_pairs(bucket_u, bucket_v, dev, block, upper_only=same):
                        out[rows, cols] = values
                        out[cols, rows] = values
                        bar.update(len(rows))
    bar.close()
    _check_finite_output(out)
    return out


@torch.no_grad()
def chamfer_cross(
    clouds_a: Any,
    clouds_b: Any,
    *,
    device: str | torch.device | None = None,
    normalize: bool = True,
    block_size: int | None = None,
    progress: bool = False,
    backend: Backend = "auto",
    out: str | os.PathLike | None = None,
    launch: Launch | None = None,
    tile_size: int | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Na x Nb Chamfer matrix between two sets (e.g. test x train), D[i, j] = CD(a_i, b_j).

    Arguments and conventions as in :func:`chamfer_matrix` (each set may be dense or ragged; with
    ``normalize=False`` both sets are translated by their common centroid, which changes no distance;
    ``out``/``launch``/``tile_size`` compute it out of core, every tile a rectangle of pairs).

    Returns:
        (Na, Nb) float32 NumPy array (a read-only ``np.memmap`` with ``out``).
    """
    threads = resolve_threads(threads)
    prepared, dev, use_kernel, block = _prepare_sets(
        [clouds_a, clouds_b], ("clouds_a", "clouds_b"), device, normalize, block_size, backend
    )
    if _tiled(out, launch, tile_size):
        return _tiled_matrix(prepared, out, launch, tile_size, backend, block, normalize, progress)
    list_a, list_b = prepared
    na, nb = len(list_a), len(list_b)
    out = np.zeros((na, nb), dtype=np.float32)
    bar = tqdm(total=na * nb, desc="chamfer cross", unit="pair", disable=not progress)
    if use_kernel:
        kernel, store = _kernel_store(list_a + list_b)
        del prepared, list_a, list_b  # the packed store holds the points now
        for rows, cols in _rectangular_blocks(na, nb, block or _COMPILED_BLOCK):
            out[rows, cols] = kernel.chamfer_pairs(store, rows, cols + na, threads=threads)
            bar.update(len(rows))
    else:
        with cpu_threads(threads, dev):
            for bucket_a in size_buckets(list_a, dev, centred=normalize):
                for bucket_b in size_buckets(list_b, dev, centred=normalize):
                    for rows, cols, values in _torch_bucket_pairs(bucket_a, bucket_b, dev, block, upper_only=False):
                        out[rows, cols] = values
                        bar.update(len(rows))
    bar.close()
    _check_finite_output(out)
    return out


def _tiled(out: object, launch: object, tile_size: object) -> bool:
    if out is None and launch is None and tile_size is None:
        return False
    from dispersion_score.tiles import check_tile_options  # the out-of-core path, loaded only when asked for

    return check_tile_options(out, launch, tile_size)


def _tiled_matrix(
    prepared: list[list[torch.Tensor]],
    out: str | os.PathLike,
    launch: Launch | None,
    tile_size: int | None,
    backend: str,
    block: int | None,
    normalize: bool,
    progress: bool,
) -> np.ndarray:
    from dispersion_score.tiles import tiled_chamfer

    return tiled_chamfer(
        prepared,
        out=out,
        launch=launch,
        tile_size=tile_size,
        backend=backend,
        block_size=block,
        normalize=normalize,
        progress=progress,
    )


def _check_finite_output(out: np.ndarray) -> None:
    """Squared distances of clouds with huge coordinates (normalize=False) can exceed float32: say so."""
    for start in range(0, out.shape[0], 1024):
        block = out[start : start + 1024]
        if not np.isfinite(block).all():
            i, j = (int(v) for v in np.argwhere(~np.isfinite(block))[0])
            raise ValueError(
                f"the Chamfer distance of clouds ({start + i}, {j}) overflows float32 (the clouds are too large "
                "without normalisation); rescale them or use normalize=True"
            )


def _prepare_sets(
    sets: list[Any],
    names: tuple[str, ...],
    device: str | torch.device | None,
    normalize: bool,
    block_size: int | None,
    backend: str,
) -> tuple[list[list[torch.Tensor]], torch.device, bool, int | None]:
    """Validate the cloud sets and options; return float32 clouds (normalised or commonly centred)
    on the compute device, the device, whether to use the compiled kernel, and the block size."""
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {list(_BACKENDS)}, got {backend!r}")
    if block_size is not None and (isinstance(block_size, bool) or int(block_size) != block_size or block_size < 1):
        raise ValueError(f"block_size must be a positive integer or None, got {block_size!r}")
    validated = [validate_point_clouds(s, name=name) for s, name in zip(sets, names, strict=True)]
    tensors = [t for v in validated for t in ([v] if isinstance(v, torch.Tensor) else v)]
    dev = resolve_device(device, *tensors)
    use_kernel = False
    if backend in ("auto", "compiled") and dev.type == "cpu":
        use_kernel = _chamfer_kernel.load_kernel() is not None
        if backend == "compiled" and not use_kernel:
            raise RuntimeError(f"the compiled Chamfer kernel is unavailable: {_chamfer_kernel.unavailable_reason()}")
    elif backend == "compiled":
        raise ValueError(f"backend='compiled' runs on the CPU only; got device {dev}")
    shift = None
    if not normalize:
        total = sum(float(_count_points(v)) for v in validated)
        shift = sum(_sum_points(v) for v in validated) / total
    prepared = [_prepared_clouds(v, dev, normalize, shift) for v in validated]
    return prepared, dev, use_kernel, None if block_size is None else int(block_size)


def _count_points(clouds: torch.Tensor | list[torch.Tensor]) -> int:
    if isinstance(clouds, torch.Tensor):
        return clouds.shape[0] * clouds.shape[1]
    return sum(c.shape[0] for c in clouds)


def _sum_points(clouds: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    if isinstance(clouds, torch.Tensor):  # in chunks: no float64 copy of the whole set
        parts = [c.to(torch.float64).sum(dim=(0, 1)).cpu() for c in clouds.split(1024)]
        return sum(parts)
    return sum(c.to(torch.float64).sum(dim=0).cpu() for c in clouds)


def _prepared_clouds(
    clouds: torch.Tensor | list[torch.Tensor],
    device: torch.device,
    normalize: bool,
    shift: torch.Tensor | None,
) -> list[torch.Tensor]:
    """float32 (P_i, 3) clouds on ``device``: unit-ball normalised, or translated by ``shift``.
    Arithmetic in float64, dense input in chunks of clouds to bound the float64 copy."""

    def transform(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device)
        if normalize:
            return normalize_float64(batch).to(torch.float32)
        shifted = batch.to(torch.float64) - shift.to(device)
        largest = float(shifted.abs().max())
        if largest > FLOAT32_MAX:
            raise ValueError(
                f"with normalize=False the clouds hold coordinates up to {largest:.4g} (after centring), beyond "
                f"float32's range ({FLOAT32_MAX:.4g}); rescale them or use normalize=True"
            )
        return shifted.to(torch.float32)

    if isinstance(clouds, torch.Tensor):
        chunk = max(1, (64 << 20) // max(1, clouds.shape[1] * 3 * 8))
        parts = [transform(clouds[s : s + chunk]) for s in range(0, clouds.shape[0], chunk)]
        return [cloud for part in parts for cloud in part.unbind(0)]
    return [transform(c[None])[0] for c in clouds]


# --- compiled backend -------------------------------------------------------------------------------


def _kernel_store(
    clouds: list[torch.Tensor],
) -> tuple[_chamfer_kernel.ChamferKernel, _chamfer_kernel.CloudStore]:
    kernel = _chamfer_kernel.load_kernel()
    assert kernel is not None  # checked in _prepare_sets
    return kernel, _chamfer_kernel.pack_store([c.numpy() for c in clouds])


def _upper_blocks(n: int, block: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Index pairs (i < j) of the upper triangle, block by block (each block at most block² pairs)."""
    for r0 in range(0, n, block):
        for c0 in range(r0, n, block):
            r = np.arange(r0, min(n, r0 + block))
            c = np.arange(c0, min(n, c0 + block))
            rows, cols = np.repeat(r, len(c)), np.tile(c, len(r))
            keep = rows < cols
            if keep.any():
                yield rows[keep], cols[keep]


def _rectangular_blocks(na: int, nb: int, block: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for r0 in range(0, na, block):
        for c0 in range(0, nb, block):
            r = np.arange(r0, min(na, r0 + block))
            c = np.arange(c0, min(nb, c0 + block))
            yield np.repeat(r, len(c)), np.tile(c, len(r))


# --- torch backend ----------------------------------------------------------------------------------


def _torch_bucket_pairs(
    bu: Bucket, bv: Bucket, device: torch.device, block: int | None, *, upper_only: bool
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (rows, cols, values) for all pairs of clouds of two buckets (only i < j within a bucket
    when ``upper_only``), block by block; rows/cols index the caller's set."""
    side, chunk = torch_plan(bu.points.shape[1], bv.points.shape[1], device, block)
    nu, nv = len(bu.index), len(bv.index)
    for r0 in range(0, nu, side):
        for c0 in range(r0 if upper_only else 0, nv, side):
            rs, cs = slice(r0, min(nu, r0 + side)), slice(c0, min(nv, c0 + side))
            values = torch_block(bu, rs, bv, cs, chunk).cpu().numpy()
            rows = np.repeat(bu.index[rs], values.shape[1])
            cols = np.tile(bv.index[cs], values.shape[0])
            values = values.reshape(-1)
            if upper_only and r0 == c0:
                keep = rows < cols
                rows, cols, values = rows[keep], cols[keep], values[keep]
            if len(rows):
                yield rows, cols, values
