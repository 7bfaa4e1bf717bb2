"""The values of one tile, from the shared input, with exactly the arithmetic of the in-memory functions.

Each computer below calls the same block function (:mod:`dispersion_score._chamfer_blocks`,
:mod:`dispersion_score._feature_blocks`) as :func:`~dispersion_score.chamfer_matrix`,
:func:`~dispersion_score.chamfer_cross` or :func:`~dispersion_score.feature_matrix`, on the same inputs
and (for the torch backend and features) the same blocks, so a tile holds the same bits as the in-memory
matrix on the same device type:

* compiled Chamfer kernel: every pair is computed on its own (``chamfer_pairs``), from the same padded
  float32 clouds; neither the tile nor the thread count can change a value.
* torch Chamfer backend: the worker builds the same size buckets from the whole input and calls
  ``torch_block`` on the same (bucket, rows, columns) blocks with the same query chunk; the tile plan
  aligns tiles to those blocks. A different block would change the matmul shape and the float64 order in
  which a row's minima are summed, hence possibly the last bit.
* features: the same centred float64 rows, the same squared norms (of the whole input) and the same
  ``block_size`` x ``block_size`` blocks.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from dispersion_score import _chamfer_kernel
from dispersion_score._chamfer_blocks import Bucket, bucket_size, size_buckets, torch_block, torch_plan
from dispersion_score._feature_blocks import centred_rows, distance_block, squared_norms
from dispersion_score._tile_plan import Manifest, Tile


class TileComputer(Protocol):
    def __call__(self, tile: Tile) -> np.ndarray: ...


def make_computer(manifest: Manifest, data: np.ndarray, device: torch.device) -> TileComputer:
    """The computer for the manifest's kind and backend; ``data`` is the (memory-mapped) shared input."""
    settings = manifest.settings
    if settings["kind"] == "features":
        return FeatureTiles(data, manifest, device)
    sizes = np.asarray(settings["sizes"], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    if settings["backend"] == "compiled":
        return CompiledChamferTiles(data, offsets, manifest)
    return TorchChamferTiles(data, offsets, manifest, device)


class CompiledChamferTiles:
    """Tiles from the compiled kernel: one ``chamfer_pairs`` call per tile over the tile's pairs.

    ``threads``: kernel threads (None: torch's thread count, as the in-memory path; values do not depend
    on it).
    """

    def __init__(self, points: np.ndarray, offsets: np.ndarray, manifest: Manifest, threads: int | None = None):
        kernel = _chamfer_kernel.load_kernel()
        if kernel is None:
            raise RuntimeError(
                f"the compiled Chamfer kernel is unavailable here: {_chamfer_kernel.unavailable_reason()} "
                "(the tiles of this matrix were planned for it; finish them where it builds)"
            )
        self.kernel, self.points, self.offsets, self.manifest = kernel, points, offsets, manifest
        self.column_base = 0 if manifest.symmetric else int(manifest.shape[0])
        self.threads = threads

    def _clouds(self, items: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(self.points[self.offsets[i] : self.offsets[i + 1]]) for i in items]

    def __call__(self, tile: Tile) -> np.ndarray:
        rows = self.manifest.groups_a[tile.u][tile.a0 : tile.a1]
        cols = self.manifest.groups_b[tile.v][tile.b0 : tile.b1] + self.column_base
        values = np.zeros(tile.shape, dtype=np.float32)
        if tile.diagonal:
            store = _chamfer_kernel.pack_store(self._clouds(rows))
            ia, ib = np.triu_indices(len(rows), k=1)
            local_b = ib
        else:
            store = _chamfer_kernel.pack_store(self._clouds(rows) + self._clouds(cols))
            ia = np.repeat(np.arange(len(rows)), len(cols))
            local_b = np.tile(np.arange(len(cols)), len(rows))
            ib = local_b + len(rows)
        threads = torch.get_num_threads() if self.threads is None else self.threads
        values[ia, local_b] = self.kernel.chamfer_pairs(store, ia, ib, threads=threads)
        return values


class TorchChamferTiles:
    """Tiles from the torch backend: the in-memory function's buckets and blocks, on ``device``."""

    def __init__(self, points: np.ndarray, offsets: np.ndarray, manifest: Manifest, device: torch.device):
        self.manifest, self.device = manifest, device
        self.block = manifest.settings["block_size"]
        everything = torch.from_numpy(np.array(points, dtype=np.float32)).to(device)
        clouds = list(torch.split(everything, np.diff(offsets).tolist()))
        n_a = manifest.shape[0]
        centred = bool(manifest.settings["normalize"])
        self.buckets_a = _checked_buckets(clouds[:n_a], device, manifest.groups_a, "rows", centred)
        if manifest.symmetric:
            self.buckets_b = self.buckets_a
        else:
            self.buckets_b = _checked_buckets(clouds[n_a:], device, manifest.groups_b, "columns", centred)

    def __call__(self, tile: Tile) -> np.ndarray:
        bu, bv = self.buckets_a[tile.u], self.buckets_b[tile.v]
        side, chunk = torch_plan(bu.points.shape[1], bv.points.shape[1], self.device, self.block)
        values = np.zeros(tile.shape, dtype=np.float32)
        for r0 in range(tile.a0, tile.a1, side):
            rs = slice(r0, min(tile.a1, r0 + side))
            for c0 in range(r0 if tile.diagonal else tile.b0, tile.b1, side):
                cs = slice(c0, min(tile.b1, c0 + side))
                block = torch_block(bu, rs, bv, cs, chunk).cpu().numpy()
                values[rs.start - tile.a0 : rs.stop - tile.a0, cs.start - tile.b0 : cs.stop - tile.b0] = block
        return values


def _checked_buckets(
    clouds: list[torch.Tensor], device: torch.device, groups: list[np.ndarray], what: str, centred: bool
) -> list[Bucket]:
    """The in-memory function's size buckets of the whole set; they must be the planned groups."""
    buckets = size_buckets(clouds, device, centred=centred)  # the same arguments as chamfer_matrix's own call
    if len(buckets) != len(groups) or any(
        not np.array_equal(b.index, g) for b, g in zip(buckets, groups, strict=False)
    ):
        raise RuntimeError(f"the torch backend's size buckets of the {what} differ from the tile plan's groups")
    return buckets


def torch_groups(sizes: np.ndarray) -> tuple[list[np.ndarray], list[int]]:
    """The torch backend's size buckets of clouds with these sizes: (item indices, padded size) per
    bucket, by the rule of ``size_buckets`` (one bucket when all sizes are equal, else by
    ``bucket_size``). Workers check the buckets they build against these groups."""
    sizes = np.asarray(sizes)
    if (sizes == sizes[0]).all():
        return [np.arange(len(sizes))], [int(sizes[0])]
    targets = np.array([bucket_size(int(p)) for p in sizes])
    groups = [np.flatnonzero(targets == target) for target in np.unique(targets)]
    return groups, [int(target) for target in np.unique(targets)]


class FeatureTiles:
    """Tiles of the feature matrix: the same centred float64 rows, norms and blocks as ``feature_matrix``
    (the shared input holds the features as float64 and, as its last row, their mean)."""

    def __init__(self, data: np.ndarray, manifest: Manifest, device: torch.device):
        values = torch.from_numpy(np.array(data, dtype=np.float64)).to(device)
        self.source, self.mean = values[:-1], values[-1]
        self.norms = squared_norms(self.source, self.mean)
        self.block = int(manifest.settings["block_size"])
        self.n = self.source.shape[0]

    def __call__(self, tile: Tile) -> np.ndarray:
        values = np.zeros(tile.shape, dtype=np.float32)
        for r0 in range(tile.a0, tile.a1, self.block):
            rows = slice(r0, min(self.n, r0 + self.block))
            row_block = centred_rows(self.source, self.mean, rows)
            for c0 in range(r0 if tile.diagonal else tile.b0, tile.b1, self.block):
                cols = slice(c0, min(self.n, c0 + self.block))
                col_block = centred_rows(self.source, self.mean, cols)
                block = distance_block(row_block, col_block, self.norms, rows, cols)
                values[rows.start - tile.a0 : rows.stop - tile.a0, cols.start - tile.b0 : cols.stop - tile.b0] = block
        return values
