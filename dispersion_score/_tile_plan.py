"""The tile plan of an out-of-core distance matrix, its files on disk, and their assembly.

A matrix with rows from set A (N_a items) and columns from set B (N_b items; B = A for a symmetric
matrix) is split into tiles. Items are first split into *groups*: the order in which the in-memory
function visits them (one group holding every item, except for the torch Chamfer backend with clouds of
different sizes: its size buckets, each listing item indices in ascending order). A tile is a rectangle
``groups_a[u][a0:a1] x groups_b[v][b0:b1]``; its side is a multiple of the in-memory block side of that
group pair, so a tile is a union of the blocks the in-memory function computes and holds the same bits.
A symmetric matrix has tiles with v > u, or v == u and b0 >= a0 only; a *diagonal* tile (v == u,
b0 == a0) is valid in its strict upper triangle only, the lower triangle and the diagonal of the matrix
coming from the mirror and from zero.

Work directory (``<out>.tiles/`` by default, on a file system every worker sees):

    manifest.json          settings, input fingerprint, groups and tiles (written after the input)
    input.npy              the shared input: concatenated normalised points (M, 3), or features (N, d)
    tiles/t000017.npy      one tile's values, (a1 - a0, b1 - b0) float32, written atomically
    tiles/t000017.json     its completion marker (written after the tile): shape, CRC-32, pairs, time
    jobs/, logs/           per-run job markers and job logs; progress.log: progress across tiles
"""

from __future__ import annotations

import json
import os
import socket
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dispersion_score.io import atomic_save_npy, atomic_write_text

MANIFEST_FORMAT = "dispersion-score-tiles/1"


@dataclass(frozen=True)
class Tile:
    """One tile: rows ``groups_a[u][a0:a1]``, columns ``groups_b[v][b0:b1]``.

    ``diagonal``: a tile of a symmetric matrix on its own mirror (only its strict upper triangle is
    computed and used).
    """

    index: int
    u: int
    a0: int
    a1: int
    v: int
    b0: int
    b1: int
    diagonal: bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.a1 - self.a0, self.b1 - self.b0

    @property
    def pairs(self) -> int:
        rows, cols = self.shape
        return rows * (rows - 1) // 2 if self.diagonal else rows * cols

    def as_list(self) -> list[int]:
        return [self.index, self.u, self.a0, self.a1, self.v, self.b0, self.b1, int(self.diagonal)]


def plan_tiles(
    sizes_a: Sequence[int],
    sizes_b: Sequence[int],
    *,
    symmetric: bool,
    tile_size: int,
    block_side: Callable[[int, int], int],
) -> list[Tile]:
    """Tiles covering a matrix whose row groups have ``sizes_a`` items and column groups ``sizes_b``.

    Args:
        sizes_a, sizes_b: items per group (the same for a symmetric matrix).
        symmetric: plan only the upper triangle (groups v >= u, and b0 >= a0 within a group).
        tile_size: requested items per tile side; rounded up to a multiple of ``block_side(u, v)``.
        block_side: the in-memory function's block side for the group pair (u, v).

    Returns:
        The tiles, indexed 0, 1, ... in row-major order of (u, a0, v, b0).
    """
    tiles: list[Tile] = []
    for u, na in enumerate(sizes_a):
        for v in range(u if symmetric else 0, len(sizes_b)):
            nb = sizes_b[v]
            side = block_side(u, v)
            step = side * -(-tile_size // side)
            for a0 in range(0, na, step):
                for b0 in range(a0 if symmetric and u == v else 0, nb, step):
                    diagonal = symmetric and u == v and a0 == b0
                    if diagonal and min(na, a0 + step) - a0 < 2:
                        continue  # a single item: its only pair is with itself (zero)
                    tiles.append(Tile(len(tiles), u, a0, min(na, a0 + step), v, b0, min(nb, b0 + step), diagonal))
    return tiles


def count_tiles(n_a: int, n_b: int, *, symmetric: bool, tile_size: int, block_side: int) -> tuple[int, int]:
    """(tiles, pairs) that :func:`plan_tiles` gives one group of ``n_a`` rows and one of ``n_b`` columns, in
    closed form: an estimate for any N costs nothing (listing the tiles of N = 10⁹ would never end)."""
    step = block_side * -(-tile_size // block_side)
    rows = -(-n_a // step)
    if not symmetric:
        return rows * -(-n_b // step), n_a * n_b
    lone_last = n_a - (rows - 1) * step < 2  # a last diagonal tile of one item is not planned
    return rows * (rows + 1) // 2 - int(lone_last and rows > 0), n_a * (n_a - 1) // 2


# --- manifest ---------------------------------------------------------------------------------------


@dataclass
class Manifest:
    """What a work directory holds: the settings that decide every value, and the tiles.

    ``settings`` is compared as a whole when a run resumes (kind, shape, backend, device type, block
    size, tile size, normalisation, input fingerprint, ...). ``groups_a`` / ``groups_b`` are None for a
    single group holding every item in order.
    """

    settings: dict[str, Any]
    groups_a: list[np.ndarray]
    groups_b: list[np.ndarray]
    tiles: list[Tile]
    assembled: bool = False
    matrix: dict[str, Any] | None = None  # the assembled matrix's FileRecord (dispersion_score.artefact)

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.settings["shape"]
        return int(rows), int(cols)

    @property
    def symmetric(self) -> bool:
        return bool(self.settings["symmetric"])

    def to_json(self) -> str:
        document = {
            "format": MANIFEST_FORMAT,
            "settings": self.settings,
            "groups_a": _groups_to_json(self.groups_a),
            "groups_b": None if self.symmetric else _groups_to_json(self.groups_b),
            "tiles": [tile.as_list() for tile in self.tiles],
            "assembled": self.assembled,
            "matrix": self.matrix,
        }
        return json.dumps(document)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        document = json.loads(text)
        if document.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"not a tile manifest (format {document.get('format')!r}, expected {MANIFEST_FORMAT})")
        settings = document["settings"]
        rows, cols = settings["shape"]
        groups_a = _groups_from_json(document["groups_a"], rows)
        groups_b = groups_a if settings["symmetric"] else _groups_from_json(document["groups_b"], cols)
        tiles = [Tile(*values[:7], bool(values[7])) for values in document["tiles"]]
        assembled = bool(document.get("assembled", False))
        return cls(settings, groups_a, groups_b, tiles, assembled, document.get("matrix"))


def _groups_to_json(groups: list[np.ndarray]) -> list[list[int]] | None:
    if len(groups) == 1 and np.array_equal(groups[0], np.arange(len(groups[0]))):
        return None
    return [group.tolist() for group in groups]


def _groups_from_json(groups: list[list[int]] | None, count: int) -> list[np.ndarray]:
    if groups is None:
        return [np.arange(count)]
    return [np.asarray(group, dtype=np.int64) for group in groups]


def read_manifest(workdir: Path) -> Manifest | None:
    path = workdir / "manifest.json"
    if not path.exists():
        return None
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a readable tile manifest ({error}); delete {workdir} to start over") from None


def write_manifest(workdir: Path, manifest: Manifest) -> None:
    atomic_write_text(workdir / "manifest.json", manifest.to_json())


def settings_difference(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of the settings that differ (JSON-normalised: tuples and lists compare equal)."""
    old_n, new_n = json.loads(json.dumps(old)), json.loads(json.dumps(new))
    return sorted(key for key in set(old_n) | set(new_n) if old_n.get(key) != new_n.get(key))


# --- tile files -------------------------------------------------------------------------------------


def tile_path(workdir: Path, index: int) -> Path:
    return workdir / "tiles" / f"t{index:06d}.npy"


def marker_path(workdir: Path, index: int) -> Path:
    return workdir / "tiles" / f"t{index:06d}.json"


def save_tile(
    workdir: Path, tile: Tile, values: np.ndarray, *, seconds: float, cpu_seconds: float, device: str
) -> None:
    """Write the tile's values atomically, then its completion marker (atomically): a tile without a
    marker is incomplete, whatever its file holds."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.shape != tile.shape:
        raise AssertionError(f"tile {tile.index}: computed shape {values.shape}, planned {tile.shape}")
    atomic_save_npy(tile_path(workdir, tile.index), values)
    marker = {
        "tile": tile.index,
        "shape": list(values.shape),
        "crc32": zlib.crc32(values.data),
        "pairs": tile.pairs,
        "seconds": round(seconds, 4),
        "cpu_seconds": round(cpu_seconds, 4),
        "device": device,
        "host": socket.gethostname(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(marker_path(workdir, tile.index), json.dumps(marker))


def read_marker(workdir: Path, index: int) -> dict[str, Any] | None:
    try:
        return json.loads(marker_path(workdir, index).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_tile(workdir: Path, tile: Tile, *, check_crc: bool) -> np.ndarray | None:
    """The tile's values, or None when the tile is missing, unmarked, truncated, of the wrong shape or
    (with ``check_crc``) does not match its marker's CRC-32."""
    marker = read_marker(workdir, tile.index)
    if marker is None or marker.get("shape") != list(tile.shape):
        return None
    try:
        values = np.load(tile_path(workdir, tile.index), mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):  # missing, truncated (mmap past the end), bad header
        return None
    if values.shape != tile.shape or values.dtype != np.float32:
        return None
    if check_crc and zlib.crc32(np.ascontiguousarray(values).data) != marker.get("crc32"):
        return None
    return values


def discard_tile(workdir: Path, index: int) -> None:
    """Remove a tile's marker (first: the tile then counts as missing) and its file."""
    for path in (marker_path(workdir, index), tile_path(workdir, index)):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def missing_tiles(workdir: Path, tiles: Sequence[Tile]) -> list[Tile]:
    """Tiles without a sound marker and file (cheap check: marker, header and file size). Unsound ones
    and leftover temporary files of killed writers are removed."""
    folder = workdir / "tiles"
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    missing = []
    for tile in tiles:
        if load_tile(workdir, tile, check_crc=False) is None:
            discard_tile(workdir, tile.index)
            missing.append(tile)
    return missing


# --- assembly ---------------------------------------------------------------------------------------


def _index(group: np.ndarray, start: int, stop: int) -> slice | np.ndarray:
    """A slice when the items are consecutive (fast memory-map writes), else the index array."""
    items = group[start:stop]
    if len(items) and items[-1] - items[0] == len(items) - 1:
        return slice(int(items[0]), int(items[-1]) + 1)
    return items


def write_tile(matrix: np.ndarray, manifest: Manifest, tile: Tile, values: np.ndarray) -> None:
    """Put a tile's values into the matrix, mirrored for a symmetric one (exact: x + 0 = x)."""
    rows = _index(manifest.groups_a[tile.u], tile.a0, tile.a1)
    cols = _index(manifest.groups_b[tile.v], tile.b0, tile.b1)
    values = np.asarray(values)
    if tile.diagonal:
        upper = np.triu(values, k=1)
        block = upper + upper.T
        _put(matrix, rows, rows, block)
        return
    _put(matrix, rows, cols, values)
    if manifest.symmetric:
        _put(matrix, cols, rows, values.T)


def _put(matrix: np.ndarray, rows: slice | np.ndarray, cols: slice | np.ndarray, values: np.ndarray) -> None:
    if isinstance(rows, slice) and isinstance(cols, slice):
        matrix[rows, cols] = values
    else:
        matrix[np.ix_(np.arange(matrix.shape[0])[rows], np.arange(matrix.shape[1])[cols])] = values


def assemble(
    workdir: Path,
    manifest: Manifest,
    partial: Path,
    tiles: Sequence[Tile],
    *,
    on_tile: Callable[[Tile], None] | None = None,
) -> list[Tile]:
    """Write ``tiles`` into the memory-mapped ``partial`` .npy (created, if missing, with the final shape,
    float32, all zeros; a sparse file until written) and zero the diagonal of a symmetric matrix.

    Returns:
        The tiles that are missing or fail their CRC-32 check (discarded, to be recomputed and passed
        again); the others are in place.
    """
    shape = manifest.shape
    mode = "r+" if partial.exists() else "w+"
    matrix = np.lib.format.open_memmap(partial, mode=mode, dtype=np.float32, shape=shape)
    if matrix.shape != shape or matrix.dtype != np.float32:
        del matrix
        partial.unlink()
        matrix = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape)
    bad = []
    try:
        for tile in tiles:
            values = load_tile(workdir, tile, check_crc=True)
            if values is None:
                discard_tile(workdir, tile.index)
                bad.append(tile)
                continue
            write_tile(matrix, manifest, tile, values)
            if on_tile is not None:
                on_tile(tile)
        if manifest.symmetric:
            np.fill_diagonal(matrix, 0.0)
        matrix.flush()
    finally:
        del matrix
    return bad


def publish(partial: Path, out: Path) -> None:
    """Make the assembled matrix visible under its final name (atomic rename after an fsync)."""
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, out)
