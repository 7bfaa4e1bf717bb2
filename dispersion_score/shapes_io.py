"""Reading a directory of shapes as point clouds for the shape dispersion score.

Supported files: `.npy` point arrays of shape (P, 3), or (P, C) with C > 3 columns and more points than
columns, whose first three columns are x, y, z (the AtlasNet ``*.points.ply.npy`` files carry normals in
columns 3..5); a wide array such as (3, P) (channels first) or a square (N, N) matrix is refused, naming the
file and its shape. `.ply` (a point cloud, or a mesh whose surface is sampled); `.obj` / `.off` meshes,
sampled area-uniformly on the surface (trimesh). Every file is checked whole (finite coordinates that fit
in float32) before any sampling, so a bad point is found whether or not it would have been drawn.

Each item's points come from ``numpy.random.default_rng([seed, index])``, index = position in the sorted
list, so a given item always gets the same points and items are independent of each other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from dispersion_score.io import FileScan, list_files, read_npy, scan_files

if TYPE_CHECKING:
    import trimesh

SHAPE_SUFFIXES = (".npy", ".ply", ".obj", ".off")
_MAX_REPORTED = 5  # unreadable files named in one error before reading stops
MESH_SUFFIXES = (".obj", ".off")


def list_shape_files(directory: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """The `.npy`/`.ply`/`.obj`/`.off` files of ``directory``, sorted by their path relative to it.

    Raises:
        FileNotFoundError: ``directory`` is not a directory.
        ValueError: it holds no shape file.
    """
    return list_files(directory, SHAPE_SUFFIXES, what="shape files", recursive=recursive)


def scan_shape_files(directory: str | os.PathLike, *, recursive: bool = False) -> FileScan:
    """:func:`list_shape_files` with the report of what the scan left out (see ``io.scan_files``)."""
    return scan_files(directory, SHAPE_SUFFIXES, what="shape files", recursive=recursive)


def _read_npy(path: Path) -> np.ndarray:
    array = read_npy(path, what="point array")
    if not (np.issubdtype(array.dtype, np.number) and not np.iscomplexobj(array)):
        raise ValueError(f"point array {path} has dtype {array.dtype}; expected a real numeric array")
    if array.ndim != 2 or array.shape[1] < 3:
        raise ValueError(f"point array {path} has shape {array.shape}; expected (P, 3): one x, y, z point per row")
    rows, columns = array.shape
    if columns > 3 and rows <= columns:
        hint = " (channels first? save its transpose)" if rows == 3 else ""
        raise ValueError(
            f"point array {path} has shape {array.shape}{hint}: not a point array; expected (P, 3) with one x, y, z "
            "point per row, or (P, C) with extra columns (e.g. normals) and more points than columns"
        )
    return np.asarray(array[:, :3], dtype=np.float64)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_points(points: np.ndarray, path: Path) -> None:
    """Every coordinate finite and within float32's range (the Chamfer computation is float32)."""
    finite = np.isfinite(points)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise ValueError(f"shape {path} contains NaN or inf coordinates (first at point {row} of {len(points)})")
    too_large = np.abs(points) > _FLOAT32_MAX
    if too_large.any():
        row = int(np.flatnonzero(too_large.any(axis=1))[0])
        raise ValueError(
            f"shape {path} has coordinates that overflow float32 (first at point {row}: {points[row].tolist()}); "
            "rescale the shape"
        )


def _load_geometry(path: Path) -> trimesh.Trimesh | trimesh.PointCloud:
    import trimesh  # late: only mesh and .ply files need it, and it is slow to import

    try:
        loaded = trimesh.load(path, process=False)
    except Exception as exc:  # trimesh raises many exception types for malformed files
        raise ValueError(f"could not read shape {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(loaded, trimesh.Scene):
        geometries = list(loaded.geometry.values())
        meshes = [g for g in geometries if isinstance(g, trimesh.Trimesh) and len(g.faces)]
        if meshes:
            return trimesh.util.concatenate(meshes)
        points = [np.asarray(g.vertices) for g in geometries if hasattr(g, "vertices")]
        if not points:
            raise ValueError(f"shape file {path} holds no geometry")
        return trimesh.PointCloud(np.concatenate(points))
    if not isinstance(loaded, trimesh.Trimesh | trimesh.PointCloud):
        raise ValueError(f"shape file {path} holds a {type(loaded).__name__}; expected a mesh or point cloud")
    return loaded


def _sample_points(path: Path, num_points: int | None, rng: np.random.Generator) -> np.ndarray:
    import trimesh

    suffix = path.suffix.lower()
    mesh = None
    if suffix == ".npy":
        points = _read_npy(path)
    else:
        geometry = _load_geometry(path)
        if isinstance(geometry, trimesh.Trimesh) and len(geometry.faces):
            mesh = geometry
        elif suffix in MESH_SUFFIXES:
            raise ValueError(f"mesh {path} has no faces; expected a surface mesh")
        points = np.asarray(geometry.vertices, dtype=np.float64)
    if len(points) == 0:
        raise ValueError(f"shape {path} holds no points; expected (N, 3) with N >= 1")
    _check_points(points, path)  # the whole file, before any sampling
    if mesh is not None:
        if num_points is None:
            raise ValueError(f"mesh {path} needs num_points (a mesh has no fixed point set)")
        if not mesh.area > 0:
            raise ValueError(f"mesh {path} has zero surface area; cannot sample points")
        points, _ = trimesh.sample.sample_surface(mesh, num_points, seed=rng)
        points = np.asarray(points, dtype=np.float64)
    elif num_points is not None:
        # Without replacement whenever the file has enough points: duplicates would bias Chamfer.
        replace = len(points) < num_points
        points = points[rng.choice(len(points), size=num_points, replace=replace)]
    return points.astype(np.float32)


def load_shapes(
    paths: Sequence[str | os.PathLike],
    *,
    num_points: int | None = 2500,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray | list[np.ndarray]:
    """Reads shape files as point clouds (unnormalised; ``chamfer_matrix`` normalises to the unit ball).

    Args:
        paths: N files (`.npy`, `.ply`, `.obj`, `.off`).
        num_points: points per cloud. Point files: drawn without replacement (with replacement only when a
            file has fewer points); meshes: area-uniform surface samples. None keeps every point of point
            files (meshes then raise).
        seed: sampling seed; item i uses ``default_rng([seed, i])``.
        progress: show a tqdm bar (stderr).

    Returns:
        (N, num_points, 3) float32 array, or a list of (P_i, 3) float32 arrays when ``num_points`` is None.

    Raises:
        ValueError: a file is unreadable, empty, not finite, or has the wrong shape (the message names it).
        FileNotFoundError: a file does not exist.
    """
    if num_points is not None and num_points < 1:
        raise ValueError(f"num_points must be >= 1 or None, got {num_points}")
    if len(paths) == 0:
        raise ValueError("load_shapes needs at least one path")
    clouds = []
    problems: list[str] = []  # every unreadable file is named, not just the first (up to a few)
    for index, path in enumerate(tqdm(paths, desc="loading shapes", unit="shape", disable=not progress)):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"shape file not found: {path}")
        if path.suffix.lower() not in SHAPE_SUFFIXES:
            raise ValueError(f"shape file {path} has an unsupported suffix; expected one of {SHAPE_SUFFIXES}")
        try:
            clouds.append(_sample_points(path, num_points, np.random.default_rng([seed, index])))
        except ValueError as error:
            problems.append(str(error))
            if len(problems) == _MAX_REPORTED:
                break
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        more = " (stopped there)" if len(problems) == _MAX_REPORTED else ""
        raise ValueError(f"{len(problems)} shape files cannot be used{more}: " + "; ".join(problems))
    return np.stack(clouds) if num_points is not None else clouds
