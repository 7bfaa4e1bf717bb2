"""Headless CPU renderer of ShapeNet-layout meshes for the camera of docs/shapenet.md (yaw sets, R2N2-style views).

Output: an (H, W, 4) uint8 RGBA image, H = W, with a transparent background (alpha 0, RGB 0) and straight
(un-premultiplied) alpha, like the 3D-R2N2 and the original yaw-limited renders.

Method (see docs/rendering.md for the library comparison):

* Visibility by ray casting with Embree (the ``embreex`` wheel: Intel Embree 4 with no system packages,
  no display, no GPU; trimesh's own ray backend). Each pixel gets ``samples_per_pixel`` = s² rays, one per
  cell of an s×s grid over the pixel, jittered inside its cell by a generator seeded with ``seed`` (the same
  pattern for every render of a renderer, so a render is a pure function of mesh, view and settings).
  Anti-aliasing only: alpha is the fraction of a pixel's rays that hit the mesh.
* Camera: docs/shapenet.md exactly (:mod:`dataset.shapenet.camera`): centre C, rotation R, f = 35/32·W pixels, principal
  point at the image centre; pixel (i, j) covers u ∈ [j, j + 1), v ∈ [i, i + 1).
* Shading: Lambertian, flat (face normals turned toward the viewer: ShapeNet surfaces are often one-sided
  and inconsistently oriented, and Blender renders both sides), no shadows, no specular. Diffuse colour is
  the part's ``Kd`` or its texture (bilinear, wrapping, sRGB decoded to linear). The lighting copies the
  original Blender 2.79 script's rig (:data:`BLENDER_LIGHTING`): its default lamp turned into a sun without
  shadows (energy 1), a hemisphere lamp from above (energy 0.5, Blender Internal's ``0.5 + 0.5 cos``
  fall-off), and a sun from below (energy 0.5). Radiance = colour · Σ lights, in linear RGB, averaged over a
  pixel's hits, then sRGB-encoded to 8 bits (Blender's default display transform).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dataset.image_encoding import linear_to_srgb8
from dataset.shapenet.camera import View, focal_length_pixels, project
from dataset.shapenet.mesh import Mesh, as_mesh

RENDERER_VERSION = "embree-flat-1"


@dataclass(frozen=True)
class Lighting:
    """Directional lights without shadows, in the object frame (Y up, front +X).

    Attributes:
        sun_direction: unit vector toward the main sun.
        sun_energy: its weight (radiance of a white surface facing it).
        hemi_energy: a hemisphere light from +Y: white surface radiance ``hemi_energy · (0.5 + 0.5 n·Y)``.
        below_energy: a sun shining upward (from −Y): ``below_energy · max(−n·Y, 0)``.
    """

    sun_direction: tuple[float, float, float]
    sun_energy: float = 1.0
    hemi_energy: float = 0.5
    below_energy: float = 0.5


# Blender 2.79's default "Lamp" (rotation_euler 37.26°, 3.16°, 106.94°) made a sun: its −Z axis points from
# (0.566, 0.218, 0.795) in Blender's Z-up world toward the origin. The OBJ importer maps OBJ (x, y, z) to
# Blender (x, −z, y), so in the OBJ frame the light comes from (0.566, 0.795, −0.218): from the front (+X)
# and above, slightly from −Z.
BLENDER_LIGHTING = Lighting(sun_direction=(0.5663736, 0.7946899, -0.2183778))


@dataclass
class _Prepared:
    """A mesh turned into Embree geometry plus per-face shading data."""

    scene: Any
    vertices: np.ndarray  # (ΣV, 3) float64, for the in-frame check
    normals: np.ndarray  # (F, 3) float64 unit face normals (0 for degenerate faces)
    colors: np.ndarray  # (F, 3) float64 linear diffuse colour of untextured faces
    textured: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (face ids, (F_t, 3, 2) uv, (H, W, 3) linear)
    texture_of_face: np.ndarray  # (F,) int64 index into ``textured``, −1 for untextured faces


class MeshRenderer:
    """Renders meshes to RGBA images for cameras of docs/shapenet.md (see the module docstring for the method).

    Args:
        image_size: W = H in pixels (224 for the yaw sets, 137 for R2N2 views).
        samples_per_pixel: rays per pixel, a square s² (1, 4, 9, 16, ...); anti-aliasing only.
        seed: seeds the jitter of the rays inside their grid cells (fixed per renderer).
        lighting: the light rig (default: the original's Blender rig).
        contrast_threshold: 8-bit colour difference between neighbouring one-ray pixels above which a pixel
            gets all its rays (lower: more pixels supersampled; negative: every pixel).
        device: "cpu" only (accepted so callers can pass the project's usual device argument).

    Raises:
        ValueError: image_size < 1, samples_per_pixel not a positive square, or a device other than "cpu".

    Not thread-safe; one renderer per process. It keeps the last mesh's Embree scene (keyed by the identity
    of the object passed), so rendering several views of the same mesh object in a row builds the
    acceleration structure once; do not modify a mesh or part list in place between renders.
    """

    def __init__(
        self,
        image_size: int,
        *,
        samples_per_pixel: int = 4,
        seed: int = 0,
        lighting: Lighting = BLENDER_LIGHTING,
        contrast_threshold: int = 4,
        device: str = "cpu",
    ) -> None:
        if device != "cpu":
            raise ValueError(f"this renderer runs on the CPU (Embree); there is no GPU variant, got device {device!r}")
        if not (isinstance(image_size, (int, np.integer)) and image_size >= 1):
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        side = math.isqrt(samples_per_pixel) if samples_per_pixel >= 1 else 0
        if side * side != samples_per_pixel or side < 1:
            raise ValueError(
                f"samples_per_pixel must be a positive square (1, 4, 9, 16, ...), got {samples_per_pixel!r}"
            )
        self.image_size = int(image_size)
        self.samples_per_pixel = int(samples_per_pixel)
        self.seed = int(seed)
        self.lighting = lighting
        self.contrast_threshold = int(contrast_threshold)
        self._centre_directions = _camera_directions(self.image_size, 1, None)
        # (W², s², 3): the jittered rays of each pixel, pixel-major.
        self._sample_directions = _camera_directions(self.image_size, side, self.seed).reshape(-1, side * side, 3)
        self._cache: tuple[Any, _Prepared] | None = None

    # ----------------------------------------------------------------------------------------- public

    def render(self, mesh: Any, view: View) -> np.ndarray:
        """Render ``mesh`` seen from ``view``.

        Args:
            mesh: a :class:`~dataset.shapenet.mesh.Mesh`, a ``trimesh.Trimesh``/``Scene``, or a sequence of
                ``(vertices (V, 3), faces (F, 3), rgb)`` parts (see :func:`dataset.shapenet.mesh.as_mesh`).
            view: the camera (azimuth, elevation in degrees, distance ratio; in-plane rotation must be 0).

        Returns:
            (W, W, 4) uint8 RGBA, straight alpha; background pixels are (0, 0, 0, 0).

        Raises:
            MeshError: a mesh that cannot be rendered (see :mod:`dataset.shapenet.mesh`).
            ValueError: a view with in-plane rotation.
        """
        if view.in_plane != 0:
            raise ValueError(f"in-plane rotation is not supported (always 0 in docs/shapenet.md), got {view.in_plane}")
        prepared = self._prepare(mesh)
        # Camera → world for row vectors: d_world = d_cam @ R (R is world → camera).
        rotation = view.rotation().astype(np.float32)
        centre = view.centre().astype(np.float32)
        size, spp = self.image_size, self.samples_per_pixel

        # Pass 1: one ray through each pixel centre.
        hit, radiance = self._trace(prepared, self._centre_directions @ rotation, centre)
        image = np.zeros((size * size, 4), dtype=np.uint8)
        image[hit, :3] = linear_to_srgb8(radiance)
        image[hit, 3] = 255
        if spp == 1:
            return image.reshape(size, size, 4)

        # Pass 2: s² jittered rays in every pixel whose centre sample differs from a neighbour's (silhouettes,
        # creases, texture detail); elsewhere the centre sample stands for the whole pixel.
        edge = np.flatnonzero(_edge_pixels(image.reshape(size, size, 4), self.contrast_threshold).ravel())
        if len(edge) == 0:
            return image.reshape(size, size, 4)
        directions = self._sample_directions[edge].reshape(-1, 3) @ rotation
        hit, radiance = self._trace(prepared, directions, centre)
        pixel = hit // spp
        count = np.bincount(pixel, minlength=len(edge)).astype(np.float64)
        total = np.stack([np.bincount(pixel, weights=radiance[:, c], minlength=len(edge)) for c in range(3)], axis=1)
        covered = count > 0
        image[edge] = 0
        image[edge[covered], :3] = linear_to_srgb8(total[covered] / count[covered, None])
        image[edge, 3] = np.floor(count * (255.0 / spp) + 0.5).astype(np.uint8)
        return image.reshape(size, size, 4)

    def frame_fits(self, mesh: Any, view: View) -> bool:
        """True when every vertex of ``mesh`` projects inside the image (and in front of the camera)."""
        prepared = self._prepare(mesh)
        uv, depth = project(prepared.vertices, view, self.image_size)
        return bool((depth > 0).all() and (uv >= 0).all() and (uv <= self.image_size).all())

    # ----------------------------------------------------------------------------------------- helpers

    def _prepare(self, mesh: Any) -> _Prepared:
        if self._cache is not None and self._cache[0] is mesh:
            return self._cache[1]
        prepared = _prepare(as_mesh(mesh))
        self._cache = (mesh, prepared)
        return prepared

    def _trace(self, prepared: _Prepared, directions: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the rays that hit and their linear radiance (N_hit, 3)."""
        directions = np.ascontiguousarray(directions, dtype=np.float32)
        origins = np.ascontiguousarray(np.broadcast_to(centre, directions.shape))
        hits = prepared.scene.run(origins, directions, output=1)
        face = hits["primID"].astype(np.int64)
        hit = np.flatnonzero(face >= 0)
        face = face[hit]
        normals = prepared.normals[face]
        facing = np.einsum("nd,nd->n", normals, directions[hit].astype(np.float64))
        normals = np.where((facing > 0)[:, None], -normals, normals)  # toward the viewer
        color = prepared.colors[face]
        if prepared.textured:
            barycentric = np.stack([hits["u"][hit], hits["v"][hit]], axis=1).astype(np.float64)
            which = prepared.texture_of_face[face]
            for index, (faces, uv, texture) in enumerate(prepared.textured):
                rows = np.flatnonzero(which == index)
                if len(rows):
                    local = np.searchsorted(faces, face[rows])
                    color[rows] = _sample_texture(texture, _interpolate_uv(uv[local], barycentric[rows]))
        return hit, color * _irradiance(normals, self.lighting)[:, None]


def _edge_pixels(image: np.ndarray, threshold: int) -> np.ndarray:
    """(H, W) bool: pixels of a one-sample render whose coverage differs from one of their 8 neighbours', or
    whose 8-bit colour differs by more than ``threshold`` in some channel."""
    padded = np.pad(image.astype(np.int16), ((1, 1), (1, 1), (0, 0)), mode="edge")
    height, width = image.shape[:2]
    centre = padded[1:-1, 1:-1]
    edge = np.zeros((height, width), dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy == 1 and dx == 1:
                continue
            neighbour = padded[dy : dy + height, dx : dx + width]
            edge |= (neighbour[..., 3] != centre[..., 3]) | (
                np.abs(neighbour[..., :3] - centre[..., :3]).max(-1) > threshold
            )
    return edge


def touches_border(image: np.ndarray) -> bool:
    """True when any pixel of the outermost rows or columns of an (H, W, 4) render has alpha > 0 (clipped)."""
    alpha = image[..., 3]
    return bool(alpha[0].any() or alpha[-1].any() or alpha[:, 0].any() or alpha[:, -1].any())


def check_not_blank(image: np.ndarray, what: str) -> None:
    """Raises ValueError naming ``what`` when an (H, W, 4) render has no pixel with alpha > 0: the mesh showed no
    surface (every triangle of zero area, or nothing in front of the camera). A blank image is a failure,
    never a render: a reader would serve it as a training image of nothing."""
    if not image[..., 3].any():
        raise ValueError(f"{what}: the render is blank (no opaque pixel); the mesh has no visible surface")


# --------------------------------------------------------------------------------------------- helpers


def _camera_directions(size: int, side: int, seed: int | None) -> np.ndarray:
    """(size² · side², 3) float32 ray directions in camera coordinates, pixel-major (row, column, sample).

    Sample k = a·side + b of a pixel lies in cell (a, b) of a side×side grid, jittered uniformly inside it with
    a generator seeded by ``seed``; ``seed=None`` puts it at the cell centre (side = 1: the pixel centre).
    """
    cells = (np.arange(side)[:, None] * side + np.arange(side)[None, :]).ravel()
    shape = (size, size, side * side, 2)
    jitter = np.full(shape, 0.5) if seed is None else np.random.default_rng(seed).random(shape)
    row_offset = (cells // side)[None, None, :] + jitter[..., 0]
    col_offset = (cells % side)[None, None, :] + jitter[..., 1]
    v = np.arange(size)[:, None, None] + row_offset / side
    u = np.arange(size)[None, :, None] + col_offset / side
    f, half = focal_length_pixels(size), size / 2.0
    x = (u - half) / f
    y = -(v - half) / f
    x, y = np.broadcast_arrays(x, y)
    directions = np.stack([x, y, -np.ones_like(x)], axis=-1).reshape(-1, 3)
    return np.ascontiguousarray(directions, dtype=np.float32)


def _prepare(mesh: Mesh) -> _Prepared:
    from embreex import rtcore_scene
    from embreex.mesh_construction import TriangleMesh

    vertex_blocks, face_blocks, color_blocks, textured = [], [], [], []
    offset = face_offset = 0
    for part in mesh.parts:
        vertex_blocks.append(part.vertices)
        face_blocks.append(part.faces + offset)
        color_blocks.append(np.broadcast_to(np.asarray(part.color, dtype=np.float64), (len(part.faces), 3)))
        if part.texture is not None and part.uv is not None:
            ids = np.arange(face_offset, face_offset + len(part.faces))
            textured.append((ids, part.uv[part.faces], _srgb_to_linear(part.texture)))
        offset += len(part.vertices)
        face_offset += len(part.faces)
    vertices = np.concatenate(vertex_blocks)
    faces = np.concatenate(face_blocks)
    corners = vertices[faces]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    norm = np.linalg.norm(cross, axis=1, keepdims=True)
    normals = np.divide(cross, norm, out=np.zeros_like(cross), where=norm > 0)
    scene = rtcore_scene.EmbreeScene()
    TriangleMesh(scene, np.ascontiguousarray(vertices, dtype=np.float32), np.ascontiguousarray(faces, dtype=np.int32))
    texture_of_face = np.full(len(faces), -1, dtype=np.int64)
    for index, (ids, _, _) in enumerate(textured):
        texture_of_face[ids] = index
    return _Prepared(scene, vertices, normals, np.concatenate(color_blocks), textured, texture_of_face)


def _irradiance(normals: np.ndarray, lighting: Lighting) -> np.ndarray:
    sun = np.asarray(lighting.sun_direction, dtype=np.float64)
    sun = sun / np.linalg.norm(sun)
    up = normals[:, 1]
    return (
        lighting.sun_energy * np.maximum(normals @ sun, 0.0)
        + lighting.hemi_energy * (0.5 + 0.5 * up)
        + lighting.below_energy * np.maximum(-up, 0.0)
    )


def _srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB → float64 linear in [0, 1] (IEC 61966-2-1), via a 256-entry table."""
    code = np.arange(256, dtype=np.float64) / 255.0
    table = np.where(code <= 0.04045, code / 12.92, ((code + 0.055) / 1.055) ** 2.4)
    return table[image]


def _interpolate_uv(corner_uv: np.ndarray, barycentric: np.ndarray) -> np.ndarray:
    """Texture coordinates at hits: Embree's (u, v) weight corners 1 and 2; corner 0 gets 1 − u − v."""
    b1, b2 = barycentric[:, :1], barycentric[:, 1:]
    return (1.0 - b1 - b2) * corner_uv[:, 0] + b1 * corner_uv[:, 1] + b2 * corner_uv[:, 2]


def _sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear, wrapping lookup; uv (N, 2) in OBJ convention (v = 0 at the bottom row) → (N, 3) linear."""
    height, width = texture.shape[:2]
    x = np.mod(uv[:, 0], 1.0) * width - 0.5
    y = (1.0 - np.mod(uv[:, 1], 1.0)) * height - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64) % width, y0.astype(np.int64) % height
    x1, y1 = (x0 + 1) % width, (y0 + 1) % height
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def render_views(renderer: MeshRenderer, mesh: Any, views: Sequence[View]) -> list[np.ndarray]:
    """Render several views of one mesh (the acceleration structure is built once)."""
    mesh = as_mesh(mesh)
    return [renderer.render(mesh, view) for view in views]
