"""Reading a directory of shapes as point clouds for the shape dispersion score.

Every common output format of single-view reconstruction networks becomes a surface point cloud by one rule per
kind (``CONVERSION_RULES``; docs/formats.md has examples):

* points: `.npy` arrays of shape (P, 3), or (P, C) with C > 3 columns and more points than columns, whose first
  three columns are x, y, z (AtlasNet's ``*.points.ply.npy`` carry normals in columns 3..5); `.xyz` / `.pts` /
  `.txt` text with one point per row, x y z first (Pixel2Mesh's `.xyz` add normals); `.ply` point clouds.
  Points are drawn from the file's points.
* meshes: `.obj`, `.off`, `.ply`, `.stl`, `.glb` / `.gltf` (scene transforms applied), read by trimesh and
  sampled area-uniformly on the surface.
* occupancy grids: `.binvox` (placed by its header's translate/scale), and `.npy` arrays of shape (R, R, R)
  (placed in the cube [-0.5, 0.5]^3, axes x, y, z); a cell is occupied when its value is >= ``voxel_threshold``
  (values must lie in [0, 1]: 0/1 occupancy or probabilities). Sampled area-uniformly on the exposed faces of the
  occupied cells (:mod:`dispersion_score.voxels`).
* `.npz` archives: the array named ``npz_key`` (or the only one), then as `.npy`.

Anything else is refused naming the file and its shape: a wide array such as (3, P) (channels first), a square
(N, N) matrix, a non-cubic 3-D array (a batch of clouds?), grids with values outside [0, 1] (logits?). Every file is
checked whole (finite coordinates that fit in float32) before any sampling, so a bad point is found whether or
not it would have been drawn.

Each item's points come from ``numpy.random.default_rng([seed, index])``, index = position in the sorted
list, so a given item always gets the same points and items are independent of each other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from dispersion_score.io import FileScan, list_files, read_npy, read_npz, scan_files
from dispersion_score.voxels import UNIT_CUBE_ORIGIN, read_binvox, voxel_surface

if TYPE_CHECKING:
    import trimesh

MESH_SUFFIXES = (".obj", ".off", ".stl", ".glb", ".gltf")
POINT_TEXT_SUFFIXES = (".xyz", ".pts", ".txt")
SHAPE_SUFFIXES = (".npy", ".npz", ".ply", ".binvox") + MESH_SUFFIXES + POINT_TEXT_SUFFIXES
_MAX_REPORTED = 5  # unreadable files named in one error before reading stops

# The rule by which each kind of file becomes a point cloud; recorded in the CLI's result documents.
CONVERSION_RULES = {
    "points": "point files (.npy/.npz (P, C>=3), .xyz/.pts/.txt rows, point .ply): columns 0..2 are x, y, z; "
    "num_points drawn without replacement (with replacement only when the file has fewer)",
    "mesh": "meshes (.obj/.off/.ply/.stl/.glb/.gltf, scene transforms applied): area-uniform surface samples",
    "voxels": "occupancy grids (.binvox; .npy/.npz (R, R, R)): occupied = value >= voxel_threshold; area-uniform "
    "samples of the exposed faces of the occupied cells; cell [i, j, k] (axes x, y, z) spans "
    "origin + cell_size * ([i, j, k], [i + 1, j + 1, k + 1]); .binvox: origin = translate, cell_size = scale / R "
    "(header); arrays: origin = -0.5, cell_size = 1 / R (the unit cube centred on the origin)",
}


def list_shape_files(directory: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """The shape files (``SHAPE_SUFFIXES``) of ``directory``, sorted by their path relative to it.

    Raises:
        FileNotFoundError: ``directory`` is not a directory.
        ValueError: it holds no shape file.
    """
    return list_files(directory, SHAPE_SUFFIXES, what="shape files", recursive=recursive)


def scan_shape_files(directory: str | os.PathLike, *, recursive: bool = False) -> FileScan:
    """:func:`list_shape_files` with the report of what the scan left out (see ``io.scan_files``)."""
    return scan_files(directory, SHAPE_SUFFIXES, what="shape files", recursive=recursive)


def _point_rows(array: np.ndarray, path: Path, what: str) -> np.ndarray:
    """(P, C >= 3) → its x, y, z columns as float64; refuses arrays whose layout is not one point per row."""
    if array.ndim != 2 or array.shape[1] < 3:
        raise ValueError(f"{what} {path} has shape {array.shape}; expected (P, 3): one x, y, z point per row")
    rows, columns = array.shape
    if columns > 3 and rows <= columns:
        hint = " (channels first? save its transpose)" if rows == 3 else ""
        raise ValueError(
            f"{what} {path} has shape {array.shape}{hint}: not a point array; expected (P, 3) with one x, y, z "
            "point per row, or (P, C) with extra columns (e.g. normals) and more points than columns"
        )
    return np.asarray(array[:, :3], dtype=np.float64)


def _occupancy(array: np.ndarray, path: Path, voxel_threshold: float) -> np.ndarray:
    """(R, R, R) values → bool occupancy; refuses non-cubic grids and values outside [0, 1]."""
    if len(set(array.shape)) != 1:
        raise ValueError(
            f"array {path} has shape {array.shape}: neither an occupancy grid (R, R, R) nor points (P, 3); "
            "a batch of clouds or grids? save one file per shape"
        )
    if array.dtype == bool:
        return np.asarray(array)
    values = np.asarray(array, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all() or values.min() < 0 or values.max() > 1:
        shown = values[finite]
        span = f"values in [{shown.min():.4g}, {shown.max():.4g}]" if shown.size else "no finite value"
        raise ValueError(
            f"occupancy grid {path} has {span}{'' if finite.all() else ' and NaN/inf'}; expected occupancy in "
            "[0, 1] (0/1 or probabilities; apply a sigmoid to logits)"
        )
    return values >= voxel_threshold


def _read_array(path: Path, npz_key: str | None) -> np.ndarray:
    if path.suffix.lower() == ".npz":
        array = read_npz(path, key=npz_key, what="shape")
    else:
        array = read_npy(path, what="shape array")
    if not ((np.issubdtype(array.dtype, np.number) or array.dtype == bool) and not np.iscomplexobj(array)):
        raise ValueError(f"shape array {path} has dtype {array.dtype}; expected a real numeric array")
    if array.ndim not in (2, 3):
        raise ValueError(
            f"shape array {path} has shape {array.shape}; expected points (P, 3) or an occupancy grid (R, R, R)"
        )
    return array


def _read_point_text(path: Path) -> np.ndarray:
    """Whitespace- or comma-separated numbers, one point per row (numpy.loadtxt; '#' starts a comment)."""
    last_error: Exception | None = None
    for delimiter in (None, ","):
        try:
            array = np.loadtxt(path, comments="#", delimiter=delimiter, ndmin=2, dtype=np.float64)
            break
        except ValueError as exc:
            last_error = exc
    else:
        message = " ".join(str(last_error).split())
        raise ValueError(
            f"could not read point file {path} (expected rows of x y z numbers; a text file that is not a shape? "
            f"move it out of the folder): {message}"
        )
    if array.size == 0:
        raise ValueError(f"point file {path} holds no points; expected rows of x y z")
    return _point_rows(array, path, "point file")


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
        geometries = loaded.dump()  # each geometry moved by its node's transform (glTF scenes have them)
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


def _grid_mesh(occupied: np.ndarray, path: Path, origin: Any, cell_size: float) -> trimesh.Trimesh:
    import trimesh

    if not occupied.any():
        raise ValueError(f"occupancy grid {path} has no occupied cell (shape {occupied.shape})")
    vertices, faces = voxel_surface(occupied, origin=origin, cell_size=cell_size)
    return trimesh.Trimesh(vertices, faces, process=False)


def _read_shape(path: Path, npz_key: str | None, voxel_threshold: float) -> tuple[np.ndarray, trimesh.Trimesh | None]:
    """(the file's points (P, 3) float64, its surface mesh or None for point files)."""
    import trimesh

    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        array = _read_array(path, npz_key)
        if array.ndim == 2:
            return _point_rows(array, path, "point array"), None
        grid = _occupancy(array, path, voxel_threshold)
        mesh = _grid_mesh(grid, path, UNIT_CUBE_ORIGIN, 1.0 / grid.shape[0])
        return np.asarray(mesh.vertices), mesh
    if suffix == ".binvox":
        grid, origin, cell_size = read_binvox(path)
        mesh = _grid_mesh(grid, path, origin, cell_size)
        return np.asarray(mesh.vertices), mesh
    if suffix in POINT_TEXT_SUFFIXES:
        return _read_point_text(path), None
    geometry = _load_geometry(path)
    if isinstance(geometry, trimesh.Trimesh) and len(geometry.faces):
        return np.asarray(geometry.vertices, dtype=np.float64), geometry
    if suffix in MESH_SUFFIXES:
        raise ValueError(f"mesh {path} has no faces; expected a surface mesh")
    return np.asarray(geometry.vertices, dtype=np.float64), None


def _sample_points(
    path: Path, num_points: int | None, rng: np.random.Generator, npz_key: str | None, voxel_threshold: float
) -> np.ndarray:
    import trimesh

    points, mesh = _read_shape(path, npz_key, voxel_threshold)
    if len(points) == 0:
        raise ValueError(f"shape {path} holds no points; expected (N, 3) with N >= 1")
    _check_points(points, path)  # the whole file, before any sampling
    if mesh is not None:
        if num_points is None:
            raise ValueError(
                f"shape {path} is a surface (mesh or grid) and needs num_points (it has no fixed point set)"
            )
        if not mesh.area > 0:
            raise ValueError(f"mesh {path} has zero surface area; cannot sample points")
        points, _ = trimesh.sample.sample_surface(mesh, num_points, seed=rng)
        points = np.asarray(points, dtype=np.float64)
    elif num_points is not None:
        # Without replacement whenever the file has enough points: duplicates would bias Chamfer.
        replace = len(points) < num_points
        points = points[rng.choice(len(points), size=num_points, replace=replace)]
    return points.astype(np.float32)


def conversion_rules(paths: Sequence[str | os.PathLike], *, npz_key: str | None = None,
                     voxel_threshold: float = 0.5) -> dict[str, Any]:  # fmt: skip
    """The conversion settings and the rules (``CONVERSION_RULES``) that may apply to ``paths``, for a result
    record: which kinds the suffixes present can be, the ``npz_key`` and the ``voxel_threshold``."""
    suffixes = {Path(p).suffix.lower() for p in paths}
    kinds = set()
    if suffixes & {".npy", ".npz", ".ply", *POINT_TEXT_SUFFIXES}:
        kinds.add("points")
    if suffixes & {".ply", *MESH_SUFFIXES}:
        kinds.add("mesh")
    if suffixes & {".npy", ".npz", ".binvox"}:
        kinds.add("voxels")
    return {
        "suffixes": sorted(suffixes),
        "npz_key": npz_key,
        "voxel_threshold": voxel_threshold,
        "rules": {kind: CONVERSION_RULES[kind] for kind in sorted(kinds)},
    }


def load_shapes(
    paths: Sequence[str | os.PathLike],
    *,
    num_points: int | None = 2500,
    seed: int = 0,
    npz_key: str | None = None,
    voxel_threshold: float = 0.5,
    progress: bool = False,
) -> np.ndarray | list[np.ndarray]:
    """Reads shape files as point clouds (unnormalised; ``chamfer_matrix`` normalises to the unit ball).

    Args:
        paths: N files, any of ``SHAPE_SUFFIXES`` (points, meshes, occupancy grids; the module docstring and
            ``CONVERSION_RULES`` give the rule for each).
        num_points: points per cloud. Point files: drawn without replacement (with replacement only when a
            file has fewer points); meshes and grids: area-uniform surface samples. None keeps every point of
            point files (meshes and grids then raise).
        seed: sampling seed; item i uses ``default_rng([seed, i])``.
        npz_key: the array to read from `.npz` archives; None reads an archive's only array (an archive with
            several is refused, listing their names).
        voxel_threshold: a grid cell is occupied when its value is >= this (0 < threshold <= 1; grid values
            must lie in [0, 1]).
        progress: show a tqdm bar (stderr).

    Returns:
        (N, num_points, 3) float32 array, or a list of (P_i, 3) float32 arrays when ``num_points`` is None.

    Raises:
        ValueError: a file is unreadable, empty, not finite, or has the wrong shape (the message names it).
        FileNotFoundError: a file does not exist.
    """
    if num_points is not None and num_points < 1:
        raise ValueError(f"num_points must be >= 1 or None, got {num_points}")
    if not 0 < voxel_threshold <= 1:
        raise ValueError(f"voxel_threshold must be in (0, 1], got {voxel_threshold}")
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
            rng = np.random.default_rng([seed, index])
            clouds.append(_sample_points(path, num_points, rng, npz_key, voxel_threshold))
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
