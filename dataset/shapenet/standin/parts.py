"""Closed solid parts for the ShapeNet-13 stand-in: meshes, exact inside tests, outer-surface sampling, OBJ/MTL.

Two primitives, each a closed triangle mesh placed by an affine map q ↦ L q + t (local → object frame):

* **prism**: a convex polygon in the local (a, b) plane extruded over c ∈ [−h, h] (boxes, wings, profiles);
* **lathe**: a profile (r_k, y_k), y strictly increasing, revolved about the local Y axis with n segments
  (cylinders, cones, discs, spheres, nose cones, lamp shades); r = 0 only at the ends (an apex).

``Part.contains`` is exact for the *tessellated* solid (the lathe test uses the n-gon cross-section, not the
circle), so a surface sample of one part lies inside another part exactly when the mesh says so.
:func:`sample_outer_surface` draws area-uniform points on the union of the parts' surfaces and keeps those
inside no other part: the outer surface, as AtlasNet's virtual scans see it (no interior points).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

_EPS = 1e-9  # strict inside: a point on (or within rounding of) another part's surface is not inside it


@dataclass(frozen=True, eq=False)
class Part:
    """One closed solid.

    Attributes:
        kind: "prism" or "lathe".
        profile: prism: (m, 2) convex polygon, counter-clockwise in (a, b); lathe: (K, 2) rows (r, y).
        half_depth: prism extrusion half-length h along local c (unused for lathes).
        segments: lathe sides n (unused for prisms).
        linear: (3, 3) local → object linear map L (det > 0 keeps faces outward).
        offset: (3,) translation t.
        material: MTL material name.
    """

    kind: str
    profile: np.ndarray
    half_depth: float
    segments: int
    linear: np.ndarray
    offset: np.ndarray
    material: str

    # ------------------------------------------------------------------------------------------ mesh

    def local_mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """(V, 3) float64 local vertices and (F, 3) int64 triangles, counter-clockwise seen from outside."""
        return (
            _prism_mesh(self.profile, self.half_depth)
            if self.kind == "prism"
            else _lathe_mesh(self.profile, self.segments)
        )

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """(V, 3) float64 object-frame vertices and (F, 3) int64 triangles."""
        vertices, faces = self.local_mesh()
        return vertices @ self.linear.T + self.offset, faces

    def transformed(self, linear: np.ndarray, offset: np.ndarray) -> Part:
        """This part followed by p ↦ A p + b (A = ``linear``, b = ``offset``)."""
        linear = np.asarray(linear, dtype=np.float64)
        return replace(self, linear=linear @ self.linear, offset=linear @ self.offset + np.asarray(offset, float))

    def rotated(self, rotation: np.ndarray, pivot: Sequence[float] = (0.0, 0.0, 0.0)) -> Part:
        """This part rotated by ``rotation`` (3, 3) about ``pivot``."""
        pivot = np.asarray(pivot, dtype=np.float64)
        return self.transformed(rotation, pivot - rotation @ pivot)

    # ------------------------------------------------------------------------------------------ inside

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: strictly inside the tessellated solid (points on its surface are not inside)."""
        local = np.linalg.solve(self.linear, (np.asarray(points, dtype=np.float64) - self.offset).T).T
        if self.kind == "prism":
            return _inside_prism(local, self.profile, self.half_depth)
        return _inside_lathe(local, self.profile, self.segments)


# --------------------------------------------------------------------------------------------- building


def _frame(axis: Sequence[float]) -> np.ndarray:
    """(3, 3) rotation whose second column is the unit ``axis`` (local Y ↦ axis), det +1."""
    d = np.asarray(axis, dtype=np.float64)
    d = d / np.linalg.norm(d)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(e1, d)
    return np.stack([e1, d, e2], axis=1)


def rotation(axis: str, degrees: float) -> np.ndarray:
    """(3, 3) rotation by ``degrees`` about the object axis "x", "y" or "z" (right-handed)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)
    raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")


_PLANES = {
    # polygon plane → columns (a, b, c) of the local → object map, each a right-handed frame
    "xy": np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64).T,
    "xz": np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64).T,
    "zy": np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]], dtype=np.float64).T,
}


def prism(
    polygon: Sequence[Sequence[float]],
    half_depth: float,
    material: str,
    *,
    plane: str = "xy",
    center: Sequence[float] = (0.0, 0.0, 0.0),
) -> Part:
    """A convex polygon extruded symmetrically.

    Args:
        polygon: (m, 2) vertices in the plane's coordinates, any orientation: "xy" → (x, y) extruded along z;
            "xz" → (x, z) extruded along y (top views: wings, hulls); "zy" → (z, y) extruded along x.
        half_depth: half the extrusion length.
        center: object-frame point the plane's origin maps to.

    Raises:
        ValueError: fewer than 3 vertices, a non-convex or degenerate polygon, or half_depth <= 0.
    """
    points = np.asarray(polygon, dtype=np.float64)
    frame = _PLANES[plane]
    if plane == "xz":
        points = points * [1.0, -1.0]  # local b = −z keeps (a, b, c) right-handed
    elif plane == "zy":
        points = points * [-1.0, 1.0]  # local a = −z
    if half_depth <= 0:
        raise ValueError(f"half_depth must be > 0, got {half_depth}")
    return Part("prism", _convex_ccw(points), float(half_depth), 0, frame, np.asarray(center, float), material)


def box(center: Sequence[float], size: Sequence[float], material: str) -> Part:
    """Axis-aligned box with full extents ``size`` (x, y, z) centred at ``center``."""
    sx, sy, sz = (float(s) / 2 for s in size)
    return prism([(-sx, -sy), (sx, -sy), (sx, sy), (-sx, sy)], sz, material, center=center)


def lathe(
    profile: Sequence[Sequence[float]],
    material: str,
    *,
    base: Sequence[float] = (0.0, 0.0, 0.0),
    axis: Sequence[float] = (0.0, 1.0, 0.0),
    segments: int = 24,
) -> Part:
    """A profile (r, y) revolved about ``axis`` through ``base`` (local y measured along the axis).

    Raises:
        ValueError: y not strictly increasing, r < 0, r = 0 away from the ends, or fewer than 3 segments.
    """
    rows = np.asarray(profile, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != 2 or len(rows) < 2:
        raise ValueError(f"profile must be (K >= 2, 2) rows (r, y), got shape {rows.shape}")
    if not (np.diff(rows[:, 1]) > 0).all():
        raise ValueError("profile heights y must be strictly increasing")
    if (rows[:, 0] < 0).any() or (rows[1:-1, 0] <= 0).any() or (rows[:, 0] <= 0).all():
        raise ValueError("profile radii must be >= 0, and 0 only at the ends")
    if segments < 3:
        raise ValueError(f"segments must be >= 3, got {segments}")
    return Part("lathe", rows, 0.0, int(segments), _frame(axis), np.asarray(base, float), material)


def cylinder(
    a: Sequence[float],
    b: Sequence[float],
    radius: float,
    material: str,
    *,
    radius_b: float | None = None,
    segments: int = 20,
) -> Part:
    """A closed cylinder (or frustum/cone when ``radius_b`` differs; 0 gives a cone) from point a to point b."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    length = float(np.linalg.norm(b - a))
    top = radius if radius_b is None else radius_b
    return lathe([(radius, 0.0), (top, length)], material, base=a, axis=b - a, segments=segments)


def ellipsoid(
    center: Sequence[float], radii: Sequence[float], material: str, *, rings: int = 8, segments: int = 16
) -> Part:
    """An ellipsoid with semi-axes ``radii`` (x, y, z), as a lathe of a unit half circle."""
    angles = np.linspace(0.0, math.pi, rings + 1)
    profile = np.stack([np.sin(angles), -np.cos(angles)], axis=1)
    profile[[0, -1], 0] = 0.0
    part = lathe(profile, material, base=center, segments=segments)
    return replace(
        part, linear=np.diag(np.asarray(radii, dtype=np.float64)) @ part.linear
    )  # stretch in the object frame


# --------------------------------------------------------------------------------------------- meshes


def _convex_ccw(points: np.ndarray) -> np.ndarray:
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
        raise ValueError(f"polygon must be (m >= 3, 2), got shape {points.shape}")
    area = 0.5 * float(np.sum(points[:, 0] * np.roll(points[:, 1], -1) - np.roll(points[:, 0], -1) * points[:, 1]))
    if abs(area) < 1e-12:
        raise ValueError("polygon is degenerate (zero area)")
    if area < 0:
        points = points[::-1]
    edges = np.roll(points, -1, axis=0) - points
    turns = edges[:, 0] * np.roll(edges[:, 1], -1) - edges[:, 1] * np.roll(edges[:, 0], -1)
    if (turns <= 0).any():
        raise ValueError(f"polygon must be strictly convex, got {points.round(4).tolist()}")
    return np.ascontiguousarray(points)


def _prism_mesh(polygon: np.ndarray, half_depth: float) -> tuple[np.ndarray, np.ndarray]:
    m = len(polygon)
    bottom = np.column_stack([polygon, np.full(m, -half_depth)])
    top = np.column_stack([polygon, np.full(m, half_depth)])
    i = np.arange(m)
    j = (i + 1) % m
    sides = np.concatenate([np.stack([i, j, m + j], 1), np.stack([i, m + j, m + i], 1)])
    fan = np.arange(1, m - 1)
    caps = np.concatenate([np.stack([m + 0 * fan, m + fan, m + fan + 1], 1), np.stack([0 * fan, fan + 1, fan], 1)])
    return np.concatenate([bottom, top]), np.concatenate([sides, caps]).astype(np.int64)


def _lathe_mesh(profile: np.ndarray, segments: int) -> tuple[np.ndarray, np.ndarray]:
    angles = 2.0 * math.pi * np.arange(segments) / segments
    cos, sin = np.cos(angles), np.sin(angles)
    vertices: list[np.ndarray] = []
    rings: list[np.ndarray] = []  # per profile row: vertex indices (n of them; an apex repeats one index)
    count = 0
    for r, y in profile:
        if r > 0:
            vertices.append(np.stack([r * cos, np.full(segments, y), r * sin], axis=1))
            rings.append(count + np.arange(segments))
            count += segments
        else:
            vertices.append(np.array([[0.0, y, 0.0]]))
            rings.append(np.full(segments, count))
            count += 1
    faces = []
    j = np.arange(segments)
    k = (j + 1) % segments
    for lower, upper, r0, r1 in zip(rings[:-1], rings[1:], profile[:-1, 0], profile[1:, 0], strict=True):
        if r0 > 0:
            faces.append(np.stack([lower[j], upper[j], lower[k]], 1))
        if r1 > 0:
            faces.append(np.stack([lower[k], upper[j], upper[k]], 1))
    for row, outward in ((0, -1), (len(profile) - 1, 1)):
        r, y = profile[row]
        if r > 0:  # a flat cap with a centre vertex
            vertices.append(np.array([[0.0, y, 0.0]]))
            centre = np.full(segments, count)
            count += 1
            ring = rings[row]
            faces.append(np.stack([centre, ring[j], ring[k]] if outward < 0 else [centre, ring[k], ring[j]], 1))
    return np.concatenate(vertices), np.concatenate(faces).astype(np.int64)


# --------------------------------------------------------------------------------------------- inside


def _inside_prism(local: np.ndarray, polygon: np.ndarray, half_depth: float) -> np.ndarray:
    inside = np.abs(local[:, 2]) < half_depth - _EPS
    edges = np.roll(polygon, -1, axis=0) - polygon
    for start, edge in zip(polygon, edges, strict=True):
        rel = local[:, :2] - start
        inside &= edge[0] * rel[:, 1] - edge[1] * rel[:, 0] > _EPS * np.linalg.norm(edge)
    return inside


def _inside_lathe(local: np.ndarray, profile: np.ndarray, segments: int) -> np.ndarray:
    y = local[:, 1]
    inside = (y > profile[0, 1] + _EPS) & (y < profile[-1, 1] - _EPS)
    radius = np.interp(y, profile[:, 1], profile[:, 0])
    sector = 2.0 * math.pi / segments
    angle = np.mod(np.arctan2(local[:, 2], local[:, 0]), sector)
    polygon_radius = radius * math.cos(sector / 2) / np.cos(angle - sector / 2)
    return inside & (np.hypot(local[:, 0], local[:, 2]) < polygon_radius - _EPS)


# --------------------------------------------------------------------------------------------- shapes


def parts_bounds(parts: Sequence[Part]) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) corners of the parts' vertices' bounding box."""
    vertices = np.concatenate([part.mesh()[0] for part in parts])
    return vertices.min(axis=0), vertices.max(axis=0)


def normalize_parts(parts: Sequence[Part]) -> list[Part]:
    """ShapeNetCore.v1 convention: the bounding box centred at the origin, its diagonal of length 1."""
    low, high = parts_bounds(parts)
    scale = 1.0 / float(np.linalg.norm(high - low))
    centre = (low + high) / 2.0
    return [part.transformed(np.eye(3) * scale, -scale * centre) for part in parts]


def sample_outer_surface(
    parts: Sequence[Part], count: int, rng: np.random.Generator, *, return_owner: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``count`` area-uniform points on the outer surface of the union of ``parts``, (count, 3) float64
    (and, with ``return_owner``, the (count,) index of the part each point lies on).

    Candidates are drawn area-uniformly on every part's triangles (a triangle by area, then uniform
    barycentric coordinates); a candidate strictly inside another part is rejected. The accepted ones are
    i.i.d. area-uniform on the exposed surface; draws repeat until ``count`` are accepted.

    Raises:
        ValueError: no exposed surface (every candidate rejected).
    """
    meshes = [part.mesh() for part in parts]
    triangles = np.concatenate([vertices[faces] for vertices, faces in meshes])
    owner = np.concatenate([np.full(len(faces), i) for i, (_, faces) in enumerate(meshes)])
    area = 0.5 * np.linalg.norm(np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]), axis=1)
    cumulative = np.cumsum(area)
    accepted: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    total = 0
    for _ in range(64):
        batch = 2 * count
        face = np.searchsorted(cumulative, rng.random(batch) * cumulative[-1], side="right")
        face = np.minimum(face, len(area) - 1)
        r1, r2 = rng.random(batch), rng.random(batch)
        s = np.sqrt(r1)
        corners = triangles[face]
        points = (
            (1 - s)[:, None] * corners[:, 0]
            + (s * (1 - r2))[:, None] * corners[:, 1]
            + (s * r2)[:, None] * corners[:, 2]
        )
        keep = np.ones(batch, dtype=bool)
        for index, part in enumerate(parts):
            others = keep & (owner[face] != index)
            keep[others] &= ~part.contains(points[others])
        accepted.append(points[keep])
        owners.append(owner[face][keep])
        total += int(keep.sum())
        if total >= count:
            points = np.concatenate(accepted)[:count]
            return (points, np.concatenate(owners)[:count]) if return_owner else points
    raise ValueError("the parts expose no surface to sample (every candidate lies inside another part)")


def obj_text(parts: Sequence[Part], header: str = "") -> str:
    """Wavefront OBJ of the parts: ``mtllib model.mtl``, then per part a group ``g part_NN`` with
    ``usemtl <material>``, its vertices (6 decimals) and triangles (1-based)."""
    lines = [f"# {header}" if header else "# ShapeNet-13 stand-in", "mtllib model.mtl"]
    offset = 0
    for index, part in enumerate(parts):
        vertices, faces = part.mesh()
        lines += [f"g part_{index:02d}", f"usemtl {part.material}"]
        lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
        lines += [f"f {a} {b} {c}" for a, b, c in (faces + offset + 1)]
        offset += len(vertices)
    return "\n".join(lines) + "\n"


def mtl_text(colors: Mapping[str, Sequence[float]]) -> str:
    """MTL with one diffuse material per name (``Kd`` = linear RGB in [0, 1]; no specular)."""
    blocks = []
    for name in sorted(colors):
        r, g, b = (float(c) for c in colors[name])
        blocks.append(f"newmtl {name}\nKa 0 0 0\nKd {r:.4f} {g:.4f} {b:.4f}\nKs 0 0 0\nNs 0\nd 1\nillum 1\n")
    return "\n".join(blocks)


def render_parts(parts: Sequence[Part], colors: Mapping[str, Sequence[float]]) -> list[tuple]:
    """(vertices, faces, rgb) per part, as :func:`dataset.shapenet.mesh.as_mesh` takes them; vertices are
    rounded to the OBJ's 6 decimals so a render of this equals a render of the written file."""
    out = []
    for part in parts:
        vertices, faces = part.mesh()
        out.append((np.round(vertices, 6), faces, tuple(float(c) for c in colors[part.material])))
    return out
