"""Geometry of the synthetic cube↔sphere shapes (docs/dataset.md): a UV sphere blended toward a cube.

Shape t ∈ [0, 1] is the UV sphere (64 segments, 32 rings, radius 1, poles on the z axis) whose every vertex
moves on a straight line toward its target on a cube::

    v(t) = (1 − t) · v_sphere + t · v_cube,    v_cube = nearest point of the cube's surface to v_sphere.

Decision (cube size): the cube is axis-aligned with half-edge a = 1/√3 ≈ 0.577, i.e. *inscribed* in the
sphere (its corners lie on the sphere). Why this size:

* With a ≤ 1/√3 every point of the unit sphere lies on or outside the cube (max_i |p_i| ≥ 1/√3), so the
  nearest surface point is simply ``clip(p, −a, a)``, and that map sends the sphere *onto* the whole cube
  surface: faces, edges and corners all get vertices, and t = 1 is a clean cube. For any larger cube
  (equal volume, a ≈ 0.806, for example) the nearest-point map leaves the outer part of every face
  uncovered (a vertex on the +x face keeps |y|, |z| ≤ 1/√2), so t = 1 would be a heavily chamfered
  solid, not a cube, while every vertex still lies on the cube's surface.
* It matches the proportions of the original Blender data (``cube_scale`` 0.5 beside ``sphere_scale`` 0.86
  ≈ 0.5·√3: cube corners on the sphere).
* Sphere and cube have the same circumscribed ball, so after the unit-ball normalisation used for Chamfer
  distances (docs/library.md) the two ends have the same scale, and in the isometric render the cube's
  silhouette (radius 0.94) is nearly as large as the sphere's (radius 1).

Vertices in the band where two (or three) coordinates exceed a collapse onto a cube edge (or corner) at
t = 1; their triangles then have zero area. No ring runs exactly along a horizontal cube edge or through a
corner, so the triangles that straddle them cut the cube by at most about 0.02 (volume within 0.02%, area
within 0.2% of the cube's). That is harmless: area-uniform sampling never picks them, and
the renderer's normals ignore them. The mesh topology (vertex order, faces) is the same for every t.
"""

from __future__ import annotations

import math

import numpy as np
import trimesh

SEGMENTS = 64
RINGS = 32
SPHERE_RADIUS = 1.0
CUBE_HALF_EDGE = 1.0 / math.sqrt(3.0)


def _validate_t(t: float) -> float:
    t = float(t)
    if not (0.0 <= t <= 1.0) or math.isnan(t):
        raise ValueError(f"shape parameter t must lie in [0, 1], got {t!r}")
    return t


def uv_sphere(segments: int = SEGMENTS, rings: int = RINGS, radius: float = SPHERE_RADIUS):
    """Blender-style UV sphere: ``segments`` meridians, ``rings`` latitude bands, poles on ±z.

    Returns:
        vertices: (2 + segments·(rings − 1), 3) float64; vertex 0 is the north pole (0, 0, r), the last one
            the south pole, in between ring by ring from north to south, each ring by longitude
            φ = 2π·s/segments (s = 0 at +x, counter-clockwise seen from +z).
        faces: (2·segments·(rings − 1), 3) int64, counter-clockwise seen from outside (normals point out):
            a triangle fan at each pole and two triangles per quad in between.
    """
    if segments < 3 or rings < 2:
        raise ValueError(f"need segments >= 3 and rings >= 2, got segments={segments}, rings={rings}")
    theta = np.pi * np.arange(1, rings) / rings  # polar angle of each inner ring
    phi = 2.0 * np.pi * np.arange(segments) / segments
    sin_t, cos_t = np.sin(theta)[:, None], np.cos(theta)[:, None]
    ring_vertices = np.stack(
        [sin_t * np.cos(phi)[None, :], sin_t * np.sin(phi)[None, :], np.broadcast_to(cos_t, (rings - 1, segments))],
        axis=-1,
    ).reshape(-1, 3)
    vertices = radius * np.concatenate([[[0.0, 0.0, 1.0]], ring_vertices, [[0.0, 0.0, -1.0]]])

    def ring_index(r: int | np.ndarray, s: np.ndarray) -> np.ndarray:
        return 1 + r * segments + (s % segments)

    s = np.arange(segments)
    south = len(vertices) - 1
    faces = [np.stack([np.zeros(segments, dtype=np.int64), ring_index(0, s), ring_index(0, s + 1)], axis=1)]
    for r in range(rings - 2):
        a, b = ring_index(r, s), ring_index(r, s + 1)
        c, d = ring_index(r + 1, s), ring_index(r + 1, s + 1)
        faces.append(np.stack([a, c, d], axis=1))
        faces.append(np.stack([a, d, b], axis=1))
    last = rings - 2
    faces.append(
        np.stack([ring_index(last, s), np.full(segments, south, dtype=np.int64), ring_index(last, s + 1)], axis=1)
    )
    return vertices, np.concatenate(faces).astype(np.int64)


def nearest_on_cube_surface(points: np.ndarray, half_edge: float = CUBE_HALF_EDGE) -> np.ndarray:
    """Nearest point of the surface of the axis-aligned cube [−a, a]³ to each point.

    Args:
        points: (N, 3) points.
        half_edge: a, the cube's half-edge.

    Returns:
        (N, 3) float64 points, each with max_i |q_i| = a. A point outside the cube is clipped to the box;
        a point inside is pushed along the axis of its largest coordinate onto the nearest face.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {points.shape}")
    clipped = np.clip(points, -half_edge, half_edge)
    inside = np.abs(points).max(axis=1) < half_edge
    if inside.any():
        inner = points[inside]
        axis = np.abs(inner).argmax(axis=1)
        rows = np.arange(len(inner))
        inner[rows, axis] = np.where(inner[rows, axis] < 0, -half_edge, half_edge)
        clipped[inside] = inner
    return clipped


def blend_vertices(t: float) -> np.ndarray:
    """(V, 3) float64 vertices of shape t: (1 − t)·v_sphere + t·nearest_on_cube_surface(v_sphere)."""
    t = _validate_t(t)
    sphere, _ = uv_sphere()
    cube = nearest_on_cube_surface(sphere)
    if t == 1.0:
        return cube  # exactly on the cube, free of (1 − t)·x + t·y rounding
    return (1.0 - t) * sphere + t * cube


def cubesphere_mesh(t: float) -> trimesh.Trimesh:
    """The triangle mesh of shape t (same topology for every t; degenerate faces kept, see module doc)."""
    _, faces = uv_sphere()
    return trimesh.Trimesh(vertices=blend_vertices(t), faces=faces, process=False, validate=False)


def sample_surface_points(mesh: trimesh.Trimesh, count: int, seed: int | list[int]) -> np.ndarray:
    """``count`` area-uniform samples of the mesh surface, (count, 3) float32, unnormalised.

    ``seed`` seeds a fresh numpy Generator (an int or a list of ints, e.g. [base_seed, split, index]).
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    rng = np.random.default_rng(seed)
    points, _ = trimesh.sample.sample_surface(mesh, int(count), seed=rng)
    return np.ascontiguousarray(points, dtype=np.float32)


def obj_text(mesh: trimesh.Trimesh) -> str:
    """The mesh as Wavefront OBJ text (vertices and faces only; deterministic formatting)."""
    lines = [f"# cube-sphere blend, {len(mesh.vertices)} vertices, {len(mesh.faces)} faces"]
    lines += [f"v {x:.8f} {y:.8f} {z:.8f}" for x, y, z in np.asarray(mesh.vertices)]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in np.asarray(mesh.faces)]
    return "\n".join(lines) + "\n"
