"""The normalised dense clouds of one ShapeNet split, cached in one memory-mapped ``.npy`` (docs/shapenet.md).

Each split's clouds are read once, cut to their first three columns, normalised to the unit ball in float64
(:func:`dispersion_score.chamfer.normalize_unit_ball`: subtract the mean of the points, divide by the largest
norm) and stored as float32 rows of one ``(N, P, 3)`` array. Readers open it with ``np.load(mmap_mode="r")``:
nothing is read into private memory, DataLoader workers map the same file and share its page cache (the real
ShapeNet-13 train cache is 35,021 × 30,000 × 3 float32 ≈ 12.6 GB).

Files, in the cache directory::

    clouds-<split>-<where>-<key>.npy    the (N, P, 3) float32 array
    clouds-<split>-<where>-<key>.json   rows (synset, id), skipped files with reasons, P, the key's inputs

``<where>`` hashes the data root and the categories; ``<key>`` hashes what made the array: every input
file's path, size and modification time, the normalisation version and the dtype. A changed, added or
removed point-cloud file changes the key, so the cache is rebuilt (older caches of the same root, split and
categories are then deleted). The build writes the array, then the JSON, each to a temporary file moved into
place with ``os.replace``: the JSON is the completion mark, a killed build leaves no cache.

Where it lives (the real data root may be read-only): ``cache_dir`` when given, else the environment
variable ``DISPERSION_SCORE_CACHE``, else ``<repository>/dataset/shapenet_data/cache`` (git-ignored).

A file that cannot be used (truncated, not (P, ≥3) floats, NaN/inf, or a point count other than the
split's most common one) is skipped: it gets no row, and the JSON and the log name it with the reason.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dataset.build.manifest import canonical_json
from dataset.locations import DATASET_DIR
from dataset.shapenet.layout import CloudFile, check_point_cloud_header
from dispersion_score.artefact import FileRecord, mismatch, record_file
from dispersion_score.atomic import atomic_write_text
from dispersion_score.locks import directory_lock

CACHE_ENV = "DISPERSION_SCORE_CACHE"
CACHE_FORMAT = "shapenet-clouds/1"
# Bump when the stored values change for the same inputs (normalisation, dtype, column choice).
NORMALIZATION_VERSION = "unit_ball-mean-maxnorm-float64/1"
_BATCH = 32  # clouds normalised together: large enough to amortise the torch call, small in memory
logger = logging.getLogger("dataset.shapenet")


@dataclass(frozen=True)
class Skipped:
    """A shape left out of a split, and why (the reason names the file)."""

    synset: str
    id: str
    reason: str


@dataclass(frozen=True)
class SplitClouds:
    """The cached clouds of one split.

    Attributes:
        path: the ``.npy`` file.
        synsets, ids: row r holds shape (synsets[r], ids[r]); rows follow the categories' order, then
            sorted ids.
        skipped: split shapes whose point-cloud file could not be used (no row).
        num_points: P, points per cloud.
    """

    path: Path
    synsets: tuple[str, ...]
    ids: tuple[str, ...]
    skipped: tuple[Skipped, ...]
    num_points: int

    def __len__(self) -> int:
        return len(self.ids)

    def open(self) -> np.ndarray:
        """(N, P, 3) float32 read-only memory map of the normalised clouds (opening maps, reads nothing)."""
        array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        if array.shape != (len(self.ids), self.num_points, 3) or array.dtype != np.float32:
            raise ValueError(
                f"cloud cache {self.path} holds {array.dtype} {array.shape}, expected float32 "
                f"{(len(self.ids), self.num_points, 3)}; delete it to rebuild"
            )
        return array

    @functools.cached_property
    def _rows(self) -> dict[tuple[str, str], int]:
        return {key: r for r, key in enumerate(zip(self.synsets, self.ids, strict=True))}

    def row(self, synset: str, model_id: str) -> int:
        """Row of a shape (ValueError when the split has no row for it)."""
        try:
            return self._rows[(synset, model_id)]
        except KeyError:
            raise ValueError(f"shape {synset}/{model_id} has no row in {self.path}") from None


def default_cache_dir() -> Path:
    """``$DISPERSION_SCORE_CACHE`` if set, else ``<repository>/dataset/shapenet_data/cache``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else DATASET_DIR / "shapenet_data" / "cache"


def _digest(document: object) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _file_stamp(path: Path) -> list:
    try:
        stat = path.stat()
    except OSError:
        return [str(path), None, None]
    return [str(path), stat.st_size, stat.st_mtime_ns]


def cache_key(files: Sequence[CloudFile]) -> tuple[str, dict]:
    """(key, inputs): the key hashes every file's absolute path, size and mtime, and the normalisation."""
    inputs = {
        "format": CACHE_FORMAT,
        "normalization": NORMALIZATION_VERSION,
        "dtype": "float32",
        "files": [[f.synset, f.id, *_file_stamp(f.path.resolve())] for f in files],
    }
    return _digest(inputs)[:16], inputs


def load_split_clouds(
    files: Sequence[CloudFile],
    *,
    split: str,
    root: str | os.PathLike,
    categories: Sequence[str],
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> SplitClouds:
    """The cache of these point-cloud files (one split of one root), built first if missing or stale.

    Args:
        files: the split's point-cloud files in row order.
        split, root, categories: what the files are (they name the cache file).
        cache_dir: where the cache lives (default :func:`default_cache_dir`); created if missing.
        progress: show a progress bar while building.

    Raises:
        ValueError: no file of the split is usable (the message gives the first reasons).
        OSError: the cache directory cannot be written.
    """
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    where = _digest({"root": str(Path(root).resolve()), "categories": list(categories)})[:12]
    prefix = f"clouds-{split}-{where}"
    key, inputs = cache_key(files)
    stem = directory / f"{prefix}-{key}"
    cached = _read_index(stem)
    if cached is not None:
        return cached
    # Concurrent jobs (a sweep's training runs) need the same cache: one builds it, the others wait for it.
    with directory_lock(directory, what="cloud cache", wait=True):
        cached = _read_index(stem)
        if cached is not None:
            return cached
        clouds = _build(files, stem, inputs, progress=progress)
        for stale in directory.glob(f"{prefix}-*"):
            if stale.name.split(".")[0] != stem.name:
                stale.unlink(missing_ok=True)  # a process still mapping it keeps its inode
    return clouds


def _read_index(stem: Path) -> SplitClouds | None:
    index_path, array_path = stem.with_suffix(".json"), stem.with_suffix(".npy")
    try:
        document = json.loads(index_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict) or document.get("format") != CACHE_FORMAT or not array_path.is_file():
        return None
    reason = mismatch(array_path, FileRecord.from_json(document.get("array_record")))
    if reason is not None:  # replaced, edited or cut short since it was built: built again
        logger.warning("cloud cache %s is built again: %s", array_path, reason)
        return None
    return SplitClouds(
        path=array_path,
        synsets=tuple(document["synsets"]),
        ids=tuple(document["ids"]),
        skipped=tuple(Skipped(*entry) for entry in document["skipped"]),
        num_points=int(document["num_points"]),
    )


def _read_cloud(path: Path, num_points: int) -> tuple[np.ndarray | None, str | None]:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        return None, f"unreadable .npy {path}: {error}"
    if array.shape[0] != num_points:
        return None, f"{path} has {array.shape[0]} points, expected {num_points} (the split's common count)"
    points = np.asarray(array[:, :3], dtype=np.float64)
    if not np.isfinite(points).all():
        return None, f"{path} holds NaN or infinite coordinates"
    return points, None


def _build(files: Sequence[CloudFile], stem: Path, inputs: dict, *, progress: bool) -> SplitClouds:
    from dispersion_score.chamfer import normalize_unit_ball

    start = time.perf_counter()
    skipped: list[Skipped] = []
    shapes: dict[CloudFile, tuple[int, ...]] = {}
    for file in files:
        shape, problem = check_point_cloud_header(file.path)
        if problem is None:
            shapes[file] = shape
        else:
            skipped.append(Skipped(file.synset, file.id, problem))
    if not shapes:
        reasons = "; ".join(s.reason for s in skipped[:3])
        raise ValueError(f"no usable point-cloud file among the {len(files)} of this split ({reasons})")
    num_points = collections.Counter(shape[0] for shape in shapes.values()).most_common(1)[0][0]
    candidates = [file for file in files if file in shapes]
    logger.info(
        "building cloud cache %s: %d files, %d points each", stem.with_suffix(".npy"), len(candidates), num_points
    )

    fd, tmp_name = tempfile.mkstemp(dir=stem.parent, prefix=f".{stem.name}.", suffix=".npy.tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    rows: list[CloudFile] = []
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(candidates), num_points, 3))
        batch: list[np.ndarray] = []
        for file in tqdm(candidates, desc="cloud cache", unit="shape", disable=not progress):
            points, problem = _read_cloud(file.path, num_points)
            if problem is not None:
                skipped.append(Skipped(file.synset, file.id, problem))
                continue
            batch.append(points)
            rows.append(file)
            if len(batch) == _BATCH:
                array[len(rows) - len(batch) : len(rows)] = normalize_unit_ball(np.stack(batch)).astype(np.float32)
                batch.clear()
        if batch:
            array[len(rows) - len(batch) : len(rows)] = normalize_unit_ball(np.stack(batch)).astype(np.float32)
        array.flush()
        del array
        if len(rows) < len(candidates):
            tmp = _compact(tmp, len(rows), num_points)
        os.chmod(tmp, 0o644)
        os.replace(tmp, stem.with_suffix(".npy"))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    order = {(file.synset, file.id): i for i, file in enumerate(files)}
    skipped.sort(key=lambda entry: order[(entry.synset, entry.id)])
    document = {
        "format": CACHE_FORMAT,
        "num_points": num_points,
        "synsets": [file.synset for file in rows],
        "ids": [file.id for file in rows],
        "skipped": [[s.synset, s.id, s.reason] for s in skipped],
        "inputs": inputs,
        "array_record": record_file(stem.with_suffix(".npy")).to_json(),
    }
    atomic_write_text(stem.with_suffix(".json"), canonical_json(document))
    seconds = time.perf_counter() - start
    logger.info("cloud cache built: %d rows, %d skipped, %.1f s", len(rows), len(skipped), seconds)
    for entry in skipped:
        logger.warning("point cloud skipped: %s", entry.reason)
    clouds = _read_index(stem)
    assert clouds is not None
    return clouds


def _compact(path: Path, rows: int, num_points: int) -> Path:
    """A copy of the first ``rows`` rows of an (N', P, 3) file (rows only go missing when a file that passed
    the header check fails to read, e.g. holds NaN), in a new temporary file beside it; the old one is removed."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name.split(".tmp")[0] + ".", suffix=".npy.tmp")
    os.close(fd)
    target = Path(name)
    try:
        source = np.load(path, mmap_mode="r")
        copy = np.lib.format.open_memmap(target, mode="w+", dtype=np.float32, shape=(rows, num_points, 3))
        for begin in range(0, rows, _BATCH):
            end = min(begin + _BATCH, rows)
            copy[begin:end] = source[begin:end]
        copy.flush()
        del copy, source
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    path.unlink()
    return target
