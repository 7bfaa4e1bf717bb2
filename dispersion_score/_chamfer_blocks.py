"""The arithmetic of the Chamfer matrices, shared by the in-memory functions (:mod:`dispersion_score.chamfer`)
and the out-of-core tiles (:mod:`dispersion_score._tile_compute`), so both give the same bits.

It holds the project's one unit-ball normalisation, the torch backend's size buckets and the block function
that turns two blocks of buckets into Chamfer distances (the conventions and the K = 5 matmul expansion are
described in :mod:`dispersion_score.chamfer`). It imports no other module of the package, so both paths
use it without an import circle.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Bytes of distance tile (plus running column minima) per block: small enough on a CPU to stay in L2/L3
# (measured fastest here), large enough on a GPU to keep it busy without crowding other work.
CPU_TILE_BYTES = 4 << 20
CUDA_TILE_BYTES = 256 << 20


# ---------------------------------------------------------------------------------------------------
# Normalisation


def unit_ball_parameters(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P, 3) -> centroids (B, 1, 3) and scales (B,), float64: (points - centroid) / scale lies in the
    unit ball with its farthest point at norm 1. The one definition of the project's normalisation
    (docs/library.md); a cloud whose points all coincide gets scale 1 (it is only centred)."""
    points = points.to(torch.float64)
    centroid = points.mean(dim=1, keepdim=True)
    scale = (points - centroid).norm(dim=2).amax(dim=1)
    return centroid, torch.where(scale > 0, scale, torch.ones_like(scale))


def normalize_float64(points: torch.Tensor) -> torch.Tensor:
    """(B, P, 3) -> unit-ball clouds in float64. A cloud whose points all coincide is only centred."""
    centroid, scale = unit_ball_parameters(points)
    return (points.to(torch.float64) - centroid) / scale[:, None, None]


# ---------------------------------------------------------------------------------------------------
# Torch backend: size buckets and blocks


class Bucket:
    """Clouds of similar size, padded to a common size by repeating their own points.

    points: (n, S, 3) float32, each cloud minus its ``centroid``; weight: (n, S) 1 for real points, 0 for
    repeats; size: (n,) float64 real point counts; index: (n,) int64 positions in the caller's set
    (ascending); centroid: (n, 3) float64 mean of each cloud's real points, or None when the clouds are
    already centred (normalised: their centroids are 0 up to rounding).
    """

    def __init__(
        self,
        points: torch.Tensor,
        weight: torch.Tensor,
        size: torch.Tensor,
        index: np.ndarray,
        centroid: torch.Tensor | None,
    ) -> None:
        self.points, self.weight, self.size, self.index = points, weight, size, index
        self.centroid = centroid


def bucket_size(p: int) -> int:
    """Smallest m·2^e >= p with 8 <= m < 16 (exact below 16): padding wastes at most 12.5 %."""
    if p <= 16:
        return p
    shift = p.bit_length() - 4
    return (-((-p) >> shift)) << shift


def own_centred(clouds: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each cloud minus its centroid (float64 arithmetic, float32 result) and the (3,) float64 centroids."""
    centroids = [c.to(torch.float64).mean(dim=0) for c in clouds]
    centred = [(c.to(torch.float64) - m).to(torch.float32) for c, m in zip(clouds, centroids, strict=True)]
    return centred, centroids


def size_buckets(clouds: list[torch.Tensor], device: torch.device, *, centred: bool) -> list[Bucket]:
    """Size buckets of ``clouds``; ``centred``: the clouds are normalised (centroids 0), else each is
    stored relative to its own centroid (see the module docstring)."""
    centroids: list[torch.Tensor] | None = None
    if not centred:
        clouds, centroids = own_centred(clouds)
    sizes = np.array([c.shape[0] for c in clouds])
    targets = sizes if (sizes == sizes[0]).all() else np.array([bucket_size(int(p)) for p in sizes])
    buckets = []
    for target in np.unique(targets):
        index = np.flatnonzero(targets == target)
        positions = torch.arange(int(target), device=device)
        points = torch.stack([clouds[i][positions % clouds[i].shape[0]] for i in index])
        size = torch.as_tensor(sizes[index], dtype=torch.float64, device=device)
        weight = (positions[None, :] < size[:, None]).to(torch.float32)
        centroid = None if centroids is None else torch.stack([centroids[i] for i in index])
        buckets.append(Bucket(points, weight, size, index, centroid))
    return buckets


def torch_plan(pa: int, pb: int, device: torch.device, block: int | None) -> tuple[int, int]:
    """(clouds per block side, query points per tile chunk) from the tile memory budget."""
    budget = CUDA_TILE_BYTES if device.type == "cuda" else CPU_TILE_BYTES
    if block is None:
        min_chunk = min(pa, 256 if device.type == "cuda" else 64)
        block = max(1, min(64, math.isqrt(max(1, budget // (4 * pb * (min_chunk + 1))))))
    chunk = max(1, min(pa, budget // (4 * pb * block * block) - 1))
    return block, chunk


def torch_block(bu: Bucket, rs: slice, bv: Bucket, cs: slice, chunk: int) -> torch.Tensor:
    """(bi, bj) float32 Chamfer distances between clouds bu[rs] and bv[cs] from K = 5 matmul tiles."""
    a, b = bu.points[rs], bv.points[cs]
    bi, bj, sa, sb = a.shape[0], b.shape[0], a.shape[1], b.shape[1]
    shift = None
    if bu.centroid is not None and bv.centroid is not None:
        # δ_ij = c_i - c_j: the clouds' offset, added to the own-centred expansion (module docstring).
        shift = (bu.centroid[rs][:, None, :] - bv.centroid[cs][None, :, :]).to(torch.float32)  # (bi, bj, 3)
        shift_sq = shift.double().square().sum(-1).to(torch.float32)  # (bi, bj)
        col_term = torch.einsum("jqc,ijc->ijq", b, shift).mul_(-2.0)[:, None]  # (bi, 1, bj, sb)
    a_sq, b_sq = a.square().sum(-1, keepdim=True), b.square().sum(-1, keepdim=True)
    query = torch.cat([a, a_sq, torch.ones_like(a_sq)], dim=-1)  # (bi, S_a, 5)
    # All target clouds side by side: one (bi·chunk, 5) x (5, bj·S_b) matmul per chunk covers every pair.
    target = torch.cat([-2 * b, torch.ones_like(b_sq), b_sq], dim=-1).reshape(bj * sb, 5).T.contiguous()
    weight_a, weight_b = bu.weight[rs], bv.weight[cs]
    row_sum = torch.zeros(bi, bj, dtype=torch.float64, device=a.device)
    col_min = torch.full((bi, bj, sb), math.inf, device=a.device)
    for start in range(0, sa, chunk):
        stop = min(sa, start + chunk)
        tile = torch.mm(query[:, start:stop].reshape(-1, 5), target).view(bi, stop - start, bj, sb)
        if shift is not None:
            row_term = torch.einsum("ipc,ijc->ipj", a[:, start:stop], shift).mul_(2.0).add_(shift_sq[:, None, :])
            tile += row_term[..., None]
            tile += col_term
        row_min = tile.amin(dim=3).clamp_min_(0)  # (bi, chunk, bj)
        row_sum += (row_min * weight_a[:, start:stop, None]).sum(dim=1, dtype=torch.float64)
        torch.minimum(col_min, tile.amin(dim=1), out=col_min)
    col_sum = (col_min.clamp_min_(0) * weight_b[None]).sum(dim=2, dtype=torch.float64)
    result = row_sum / bu.size[rs, None] + col_sum / bv.size[None, cs]
    return result.to(torch.float32)
