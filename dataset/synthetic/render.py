"""Headless CPU renderer for the synthetic shapes: Mitsuba 3, variant ``scalar_rgb`` (docs/dataset.md).

Scene (all in the object frame, z up, the frame of :mod:`dataset.synthetic.geometry`):

* Camera: perspective, at (−1.5, 1.5, 1.5), looking at the origin, up = +z, horizontal field of view 50°.
  The unit sphere (the largest shape) then spans about 89% of the image width; the cube (t = 1) about 84%.
* Sun: a directional light shining from (3, 4, 5) toward the origin. With the camera above, the visible
  cube faces get three different shades: +z (cos = 0.71), +y (cos = 0.57) and −x (unlit, ambient only).
* Material: diffuse (Lambertian) grey, albedo ρ = 0.6; shading normals are smoothed across edges whose
  dihedral angle is below 30° (so the sphere looks round and the cube's edges stay sharp).
* Ambient: a constant environment of radiance A = 0.25 (relative to the sun's ρ·cos term). For a convex,
  Lambertian object a constant environment adds exactly ρ·A to every visible point (nothing occludes the
  hemisphere), so it is added in closed form to the covered part of each pixel instead of Monte-Carlo
  sampled: the render has no noise from it. Radiance in a pixel: ρ·(max(cos θ_sun, 0) + A).
* Background: plain white. Pixels are composited with the film's coverage (alpha) channel and encoded with
  the sRGB transfer curve to 8-bit RGB.
* Sampling: ``direct`` integrator (one emitter sample per path; the sun is a delta light), ``stratified``
  sampler with a fixed sample count (default 16 per pixel, anti-aliasing only) and a fixed seed, box pixel
  filter, one render thread: the same mesh gives the same bytes.

Why Mitsuba 3 ``scalar_rgb``: a PyPI wheel with no system packages that renders without a display or GPU
(pyrender needs the system's OSMesa and a newer PyOpenGL; Blender's ``bpy`` wheel needs numpy < 2). The
``llvm_ad_rgb`` variant was tried and aborts inside LLVM's instruction selection on this machine; the
scalar variant renders a 224² image at 16 samples per pixel in about 0.15 s on one core.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from dataset.image_encoding import linear_to_srgb8

CAMERA_ORIGIN = (-1.5, 1.5, 1.5)
SUN_FROM = (3.0, 4.0, 5.0)


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """Everything that determines a render besides the mesh. Recorded in the dataset manifest."""

    image_size: int = 224
    fov_degrees: float = 50.0
    samples_per_pixel: int = 16
    seed: int = 0
    albedo: float = 0.6
    ambient: float = 0.25
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    crease_angle_degrees: float = 30.0
    camera_origin: tuple[float, float, float] = CAMERA_ORIGIN
    sun_from: tuple[float, float, float] = SUN_FROM
    variant: str = "scalar_rgb"

    def __post_init__(self) -> None:
        if not 8 <= self.image_size <= 4096:
            raise ValueError(f"image_size must be an int in [8, 4096], got {self.image_size!r}")
        if self.samples_per_pixel < 1:
            raise ValueError(f"samples_per_pixel must be >= 1, got {self.samples_per_pixel!r}")


def corner_normals(
    vertices: np.ndarray,
    faces: np.ndarray,
    crease_angle_degrees: float = 30.0,
    *,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Per-corner shading normals, smoothed over neighbouring faces within a crease angle ("auto smooth").

    The normal at corner (f, k) is the area-weighted mean of the unit normals of the faces g around vertex
    faces[f, k] whose normal is within ``crease_angle_degrees`` of face f's normal.

    Args:
        vertices: (V, 3) positions.
        faces: (F, 3) vertex indices, counter-clockwise seen from outside.
        pairs: ``corner_face_pairs(faces, V)``, if already computed (it depends on the topology only).

    Returns:
        (F, 3, 3) float64 unit normals; a zero-area face (no usable neighbour) gets the radial direction.
    """
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    double_area = np.linalg.norm(cross, axis=1)
    unit = np.divide(cross, double_area[:, None], out=np.zeros_like(cross), where=double_area[:, None] > 0)

    corner, neighbour = pairs if pairs is not None else corner_face_pairs(faces, len(vertices))
    cosine = np.einsum("pd,pd->p", unit[corner // 3], unit[neighbour])
    keep = cosine >= math.cos(math.radians(crease_angle_degrees))
    corner, neighbour = corner[keep], neighbour[keep]
    weighted = unit[neighbour] * double_area[neighbour, None]
    summed = np.stack(
        [np.bincount(corner, weights=weighted[:, d], minlength=3 * len(faces)) for d in range(3)], axis=1
    ).reshape(len(faces), 3, 3)
    norm = np.linalg.norm(summed, axis=-1, keepdims=True)
    # Only zero-area faces (never hit by a ray) lack neighbours; give them the radial direction (the
    # shapes are star-shaped about the origin) so every normal is a unit vector.
    fallback = tri / np.maximum(np.linalg.norm(tri, axis=-1, keepdims=True), 1e-300)
    return np.where(norm > 1e-12, summed / np.maximum(norm, 1e-300), fallback)


def corner_face_pairs(faces: np.ndarray, vertex_count: int) -> tuple[np.ndarray, np.ndarray]:
    """All (corner, face) pairs where the face touches the corner's vertex; corner = 3·face + k."""
    flat = faces.ravel()
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=vertex_count)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    per_corner = counts[flat]
    corner = np.repeat(np.arange(len(flat)), per_corner)
    first = np.repeat(starts[flat], per_corner)
    rank = np.arange(len(corner)) - np.repeat(np.cumsum(per_corner) - per_corner, per_corner)
    neighbour = order[first + rank] // 3
    return corner, neighbour


class CubeSphereRenderer:
    """Renders meshes of one fixed topology (the UV-sphere blend) with :class:`RenderSettings`.

    The Mitsuba scene is built once; each :meth:`render` only replaces the vertex positions and normals
    (and rebuilds the acceleration structure). Create one per process: Mitsuba's variant is process-global.
    """

    def __init__(self, faces: np.ndarray, settings: RenderSettings | None = None) -> None:
        import drjit as dr
        import mitsuba as mi

        self.settings = settings = settings or RenderSettings()
        mi.set_variant(settings.variant)
        # One render thread per process: the builder parallelises over processes, and a fixed thread count
        # keeps the image blocks (and their sampler seeds) the same from run to run.
        dr.set_thread_count(1)
        self._mi = mi
        self.faces = np.asarray(faces, dtype=np.int64)
        self._pairs = corner_face_pairs(self.faces, int(self.faces.max()) + 1)
        corner_count = 3 * len(self.faces)
        mesh = mi.Mesh("shape", corner_count, len(self.faces), has_vertex_normals=True)
        params = mi.traverse(mesh)
        self._float_array = type(params["vertex_positions"])
        self._uint_array = type(params["faces"])
        # Corners are not shared between faces, so every face can carry its own (creased) normals.
        params["faces"] = self._uint_array(np.arange(corner_count, dtype=np.uint32))
        params["vertex_positions"] = self._float_array(np.zeros(3 * corner_count, dtype=np.float32))
        params["vertex_normals"] = self._float_array(np.tile(np.float32([0, 0, 1]), corner_count))
        params.update()
        s = settings
        sun = np.asarray(s.sun_from, dtype=np.float64)
        self.scene = mi.load_dict(
            {
                "type": "scene",
                "integrator": {"type": "direct", "emitter_samples": 1, "bsdf_samples": 0},
                "sensor": {
                    "type": "perspective",
                    "fov": s.fov_degrees,
                    "fov_axis": "x",
                    "to_world": mi.ScalarTransform4f().look_at(
                        origin=list(s.camera_origin), target=[0.0, 0.0, 0.0], up=[0.0, 0.0, 1.0]
                    ),
                    "film": {
                        "type": "hdrfilm",
                        "width": s.image_size,
                        "height": s.image_size,
                        "pixel_format": "rgba",
                        "rfilter": {"type": "box"},
                    },
                    "sampler": {"type": "stratified", "sample_count": s.samples_per_pixel, "seed": s.seed},
                },
                # irradiance π on a Lambertian surface of albedo 1 gives radiance cos θ; albedo is applied below
                "sun": {
                    "type": "directional",
                    "direction": list(-sun),
                    "irradiance": {"type": "rgb", "value": math.pi},
                },
                "shape": mesh,
            }
        )
        self._params = mi.traverse(self.scene)

    def render_linear(self, vertices: np.ndarray) -> np.ndarray:
        """(H, W, 3) float32 linear RGB in [0, 1] of the mesh with these vertex positions, composited."""
        vertices = np.asarray(vertices, dtype=np.float64)
        normals = corner_normals(vertices, self.faces, self.settings.crease_angle_degrees, pairs=self._pairs)
        self._params["shape.vertex_positions"] = self._float_array(vertices[self.faces].astype(np.float32).ravel())
        self._params["shape.vertex_normals"] = self._float_array(normals.astype(np.float32).ravel())
        self._params.update()
        s = self.settings
        rgba = np.array(self._mi.render(self.scene, seed=s.seed, spp=s.samples_per_pixel), dtype=np.float64)
        sun_term, coverage = rgba[..., :3], np.clip(rgba[..., 3:4], 0.0, 1.0)
        # sun_term is already coverage-weighted (empty samples contribute 0)
        radiance = s.albedo * (sun_term + s.ambient * coverage)
        background = np.asarray(s.background, dtype=np.float64)
        return (radiance + (1.0 - coverage) * background).astype(np.float32)

    def render(self, vertices: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 sRGB image of the mesh with these vertex positions."""
        return linear_to_srgb8(self.render_linear(vertices))
