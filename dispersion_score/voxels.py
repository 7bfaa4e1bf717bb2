"""Occupancy grids as surfaces: the exposed faces of the occupied cells, and `.binvox` files.

Placement rule (one for every grid): cell ``[i, j, k]`` is the axis-aligned cube
``origin + cell_size * ([i, j, k], [i + 1, j + 1, k + 1])``, array axes 0, 1, 2 being x, y, z. A `.binvox` file
gives ``origin = translate`` and ``cell_size = scale / R`` from its header: its voxel centres are at
``(index + 0.5) / R * scale + translate`` (binvox's own definition, https://www.patrickmin.com/binvox/binvox.html,
and binvox-rw-py). A grid without a header (an `.npy`/`.npz` array) fills the cube centred on the origin with
side 1: ``origin = -0.5``, ``cell_size = 1 / R``.

The surface of the occupied cells is every cell face between an occupied cell and an empty one (or the grid's
border): the boundary of the union of the cubes, as a voxel renderer draws it. trimesh has no such function
(``VoxelGrid.as_boxes`` keeps the faces between two occupied cells, which would put samples inside the
shape; ``marching_cubes`` moves the surface to the half-occupancy level set), so it is written here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["UNIT_CUBE_ORIGIN", "read_binvox", "voxel_surface"]

UNIT_CUBE_ORIGIN = -0.5  # grids without a header fill [-0.5, 0.5]^3

# For each axis: the four corners of the face of the unit cube [0, 1]^3 at coordinate 0 across that axis,
# ordered counter-clockwise seen from the negative side (so the face's normal points to -axis).
_FACE_CORNERS = {
    0: np.array([[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0]]),
    1: np.array([[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]]),
    2: np.array([[0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]]),
}


def voxel_surface(
    occupied: np.ndarray, *, origin: float | np.ndarray = UNIT_CUBE_ORIGIN, cell_size: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The boundary of the union of the occupied cells, as a triangle mesh (two triangles per exposed face).

    Args:
        occupied: (X, Y, Z) bool, True where a cell is occupied; axes 0, 1, 2 are x, y, z.
        origin: scalar or (3,): the low corner of cell [0, 0, 0] (default: -0.5, the unit cube's).
        cell_size: edge length of a cell; default 1 / max(X, Y, Z), so a cubic grid fills a side-1 cube.

    Returns:
        vertices (V, 3) float64 and faces (F, 3) int64, normals pointing out of the occupied region.
        Vertices are not shared between faces (sampling needs only the triangles).

    Raises:
        ValueError: ``occupied`` is not 3-D.
    """
    occupied = np.asarray(occupied, dtype=bool)
    if occupied.ndim != 3:
        raise ValueError(f"occupancy grid has shape {occupied.shape}; expected (X, Y, Z)")
    if cell_size is None:
        cell_size = 1.0 / max(occupied.shape)
    padded = np.pad(occupied, 1)
    quads = []
    for axis in range(3):
        corners = _FACE_CORNERS[axis]
        for step in (-1, 1):
            # An exposed face: this cell occupied, its neighbour `step` cells along `axis` empty.
            neighbour = np.roll(padded, -step, axis=axis)
            cells = np.argwhere(padded & ~neighbour) - 1  # indices in the unpadded grid
            quad = corners.copy()
            if step == 1:  # the high face: at coordinate 1, winding reversed so its normal points to +axis
                quad[:, axis] = 1
                quad = quad[::-1]
            quads.append(cells[:, None, :] + quad[None])
    corners_all = np.concatenate(quads).astype(np.float64)  # (Q, 4, 3) in cell units
    vertices = (np.asarray(origin, dtype=np.float64) + cell_size * corners_all).reshape(-1, 3)
    base = 4 * np.arange(len(corners_all))[:, None]
    faces = np.concatenate([base + [0, 1, 2], base + [0, 2, 3]]).astype(np.int64)
    return vertices, faces


def read_binvox(path: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """A `.binvox` file's occupancy and placement (trimesh decodes the run-length data and its xzy order).

    Returns:
        occupied (R, R, R) bool with axes x, y, z; origin (3,) float64 = the header's ``translate``;
        cell_size = ``scale / R`` (see the module docstring for why trimesh's own placement is not used).

    Raises:
        ValueError: the file is not a readable binvox file (the message names it).
    """
    from trimesh.exchange import binvox  # late: trimesh is slow to import

    path = Path(path)
    try:
        with open(path, "rb") as stream:
            data = binvox.parse_binvox(stream)
        grid = binvox.voxel_from_binvox(data.rle_data, data.shape, data.translate, data.scale, axis_order="xzy")
        occupied = np.asarray(grid.matrix, dtype=bool)
    except Exception as exc:  # the parser raises IOError, ValueError, AssertionError, IndexError...
        raise ValueError(f"could not read voxel grid {path}: {type(exc).__name__}: {exc}") from None
    shape = tuple(int(s) for s in data.shape)
    if len(set(shape)) != 1:
        raise ValueError(f"voxel grid {path} has dimensions {shape}; binvox grids are cubic (R, R, R)")
    scale = float(data.scale)
    if not (np.isfinite(scale) and scale > 0 and np.all(np.isfinite(data.translate))):
        raise ValueError(f"voxel grid {path} has header scale {scale} / translate {list(data.translate)}; expected "
                         "a positive finite scale and a finite translate")  # fmt: skip
    return occupied, np.asarray(data.translate, dtype=np.float64), scale / shape[0]
