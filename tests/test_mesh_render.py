"""The ShapeNet mesh loader and renderer: analytic silhouettes, surface points in the mask, materials,
textures and fallbacks, straight alpha, the light rig, bad meshes."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import trimesh
from matplotlib.path import Path as PolygonPath
from scipy.spatial import ConvexHull

from benchmarks._meshes import ObjPart, box, chair_parts, lamp_parts, write_checker, write_obj
from dataset.shapenet.camera import View, project
from dataset.shapenet.mesh import DEFAULT_COLOR, MeshError, as_mesh, load_mesh
from dataset.shapenet.render.renderer import BLENDER_LIGHTING, MeshRenderer, touches_border

SIZE = 64


def _triangulated(vertices: np.ndarray, polygons: list[list[int]]) -> np.ndarray:
    return np.array([[p[0], p[i], p[i + 1]] for p in polygons for i in range(1, len(p) - 1)])


def _analytic_coverage(corners: np.ndarray, view: View, size: int, per_side: int = 8) -> np.ndarray:
    """(size, size) fraction of each pixel inside the convex hull of the projected corners (a convex solid's
    silhouette), by point-in-polygon on a per_side² grid of sub-pixel points."""
    uv, depth = project(corners, view, size)
    assert (depth > 0).all()
    hull = PolygonPath(uv[ConvexHull(uv).vertices])
    offsets = (np.arange(per_side) + 0.5) / per_side
    grid = (np.arange(size)[:, None] + offsets[None, :]).ravel()
    uu, vv = np.meshgrid(grid, grid)  # uu: columns (u), vv: rows (v)
    inside = hull.contains_points(np.stack([uu.ravel(), vv.ravel()], axis=1))
    return inside.reshape(size, per_side, size, per_side).mean(axis=(1, 3))


@pytest.mark.parametrize("view", [View(0.0, 20.0, 1.0), View(360.0 + 37.0, 27.0, 0.8)])
def test_box_silhouette_matches_analytic_projection(view: View) -> None:
    # An off-centre, non-cubic box: a mirrored or rotated image would not match.
    corners, quads = box([0.1, 0.05, 0.2], [0.3, 0.4, 0.5])
    image = MeshRenderer(SIZE, samples_per_pixel=16).render(
        [(corners, _triangulated(corners, quads), (0.6,) * 3)], view
    )
    expected = _analytic_coverage(corners, view, SIZE)
    alpha = image[..., 3] / 255.0
    assert np.abs(alpha - expected).mean() < 0.01
    assert np.abs(alpha - expected).max() < 0.45  # edge pixels: 16 jittered rays vs the exact area
    inside, covered = expected > 0.5, alpha > 0.5
    assert (inside & covered).sum() / (inside | covered).sum() > 0.97
    assert not touches_border(image)


def test_surface_points_land_in_the_mask_and_cover_it() -> None:
    rng = np.random.default_rng(3)
    mesh = as_mesh([(p.vertices, _triangulated(p.vertices, p.faces), p.kd) for p in chair_parts(rng, textured=False)])
    view = View(360.0 - 25.0, 24.0, 0.9)
    size = 128
    image = MeshRenderer(size, samples_per_pixel=9).render(mesh, view)
    surface = trimesh.util.concatenate([trimesh.Trimesh(p.vertices, p.faces, process=False) for p in mesh.parts])
    points, _ = trimesh.sample.sample_surface(surface, 60000, seed=1)
    uv, _ = project(points, view, size)
    column, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    assert ((column >= 0) & (column < size) & (row >= 0) & (row < size)).all()
    assert (image[row, column, 3] > 0).mean() >= 0.99
    footprint = np.zeros((size, size), bool)
    footprint[row, column] = True
    grown = footprint.copy()  # 1-pixel dilation: sparse samples on thin legs
    for dy, dx in [(-1, 0), (1, 0), (0, -1), (0, 1)]:
        grown |= np.roll(footprint, (dy, dx), axis=(0, 1))
    opaque = image[..., 3] == 255
    assert grown[opaque].mean() >= 0.99


def test_background_is_transparent_black_and_alpha_is_straight() -> None:
    # A square seen at a slant: one flat face of one colour, so partly covered edge pixels
    # must carry the interior's colour, not a colour darkened by coverage (premultiplied).
    square = np.array([[0, -0.3, -0.3], [0, -0.3, 0.3], [0, 0.3, 0.3], [0, 0.3, -0.3]], float)
    image = MeshRenderer(SIZE, samples_per_pixel=16).render(
        [(square, [[0, 1, 2], [0, 2, 3]], (0.9, 0.5, 0.2))], View(15.0, 10.0, 1.0)
    )
    alpha = image[..., 3]
    assert (image[alpha == 0] == 0).all() and (alpha == 0).any()
    interior = image[alpha == 255][:, :3]
    assert (interior == interior[0]).all()
    partial = image[(alpha > 0) & (alpha < 255)][:, :3]
    assert len(partial) > 20
    assert np.abs(partial.astype(int) - interior[0]).max() <= 1


def _srgb8(linear: float) -> int:
    linear = min(max(linear, 0.0), 1.0)
    encoded = 12.92 * linear if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055
    return int(math.floor(encoded * 255 + 0.5))


@pytest.mark.parametrize("normal", [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0), (0.6, 0.0, 0.8)])
def test_flat_lambert_shading_with_the_blender_rig(normal: tuple[float, float, float]) -> None:
    n = np.asarray(normal) / np.linalg.norm(normal)
    tangent = np.cross(n, [0.3, 0.5, 0.7])
    tangent /= np.linalg.norm(tangent)
    bitangent = np.cross(n, tangent)
    square = np.array([a * tangent + b * bitangent for a, b in [(-1, -1), (1, -1), (1, 1), (-1, 1)]]) * 0.25
    # Camera on the side the normal points to, so the face is seen from its front.
    azimuth = math.degrees(math.atan2(n[2] + 0.3, n[0] + 0.3)) if abs(n[1]) < 0.9 else 30.0
    elevation = 60.0 if n[1] > 0.9 else (-60.0 if n[1] < -0.9 else 10.0)
    kd = (0.3, 0.6, 0.2)
    image = MeshRenderer(SIZE, samples_per_pixel=4).render(
        [(square, [[0, 1, 2], [0, 2, 3]], kd)], View(azimuth, elevation, 1.0)
    )
    sun = np.asarray(BLENDER_LIGHTING.sun_direction) / np.linalg.norm(BLENDER_LIGHTING.sun_direction)
    light = max(n @ sun, 0) + 0.5 * (0.5 + 0.5 * n[1]) + 0.5 * max(-n[1], 0)
    centre = image[SIZE // 2, SIZE // 2]
    assert centre[3] == 255
    assert [int(c) for c in centre[:3]] == [_srgb8(k * light) for k in kd]


def test_renders_are_deterministic_and_seed_only_moves_edge_samples() -> None:
    parts = [(p.vertices, _triangulated(p.vertices, p.faces), p.kd) for p in lamp_parts(np.random.default_rng(0))]
    view = View(350.0, 25.0, 0.8)
    first = MeshRenderer(SIZE, samples_per_pixel=9, seed=0).render(parts, view)
    again = MeshRenderer(SIZE, samples_per_pixel=9, seed=0).render(parts, view)
    other = MeshRenderer(SIZE, samples_per_pixel=9, seed=1).render(parts, view)
    assert np.array_equal(first, again)
    differ = np.any(first != other, axis=-1)
    assert differ.any() and differ.mean() < 0.1


def test_adaptive_sampling_matches_full_supersampling() -> None:
    # The naive reference: every pixel gets all s² rays (contrast_threshold < 0).
    rng = np.random.default_rng(5)
    parts = [(p.vertices, _triangulated(p.vertices, p.faces), p.kd) for p in chair_parts(rng, textured=False)]
    view = View(330.0, 28.0, 0.85)
    adaptive = MeshRenderer(96, samples_per_pixel=9).render(parts, view).astype(int)
    full = MeshRenderer(96, samples_per_pixel=9, contrast_threshold=-1).render(parts, view).astype(int)
    assert np.abs(adaptive[..., 3] - full[..., 3]).mean() < 1.0  # alpha levels, of 255
    both = (adaptive[..., 3] == 255) & (full[..., 3] == 255)
    assert np.abs(adaptive[both, :3] - full[both, :3]).max() <= 6
    assert ((adaptive[..., 3] > 0) != (full[..., 3] > 0)).mean() < 0.005


# --------------------------------------------------------------------------------------------- loading


def test_load_multi_material_obj_with_texture_and_missing_texture(tmp_path, caplog) -> None:
    rng = np.random.default_rng(0)
    chair = tmp_path / "chair"
    chair.mkdir()
    write_checker(chair / "checker.png")
    write_obj(chair, chair_parts(rng, textured=True))
    mesh = load_mesh(chair)
    by_colour = {part.color: part for part in mesh.parts}
    assert len(mesh.parts) == 4 and mesh.warnings == ()
    assert by_colour[(0.15, 0.12, 0.1)].texture is None
    textured = [part for part in mesh.parts if part.texture is not None]
    assert len(textured) == 1 and textured[0].texture.shape == (16, 16, 3) and textured[0].uv.shape == (4, 2)

    # The checker shows: looking down at the seat, the cushion has both the orange and the blue cells.
    image = MeshRenderer(128, samples_per_pixel=4).render(mesh, View(0.0, 70.0, 0.9))
    rgb = image[image[..., 3] == 255][:, :3].astype(int)
    orangeish = (rgb[:, 0] > rgb[:, 2] + 60).sum()
    blueish = (rgb[:, 2] > rgb[:, 0] + 60).sum()
    assert orangeish > 50 and blueish > 50

    lamp = tmp_path / "lamp"
    write_obj(lamp, lamp_parts(rng, texture="nowhere.jpg"))
    with caplog.at_level(logging.WARNING, logger="dataset.shapenet.mesh"):
        mesh = load_mesh(lamp / "model.obj")
    assert len(mesh.warnings) == 1 and "nowhere.jpg" in mesh.warnings[0] and str(lamp) in mesh.warnings[0]
    assert "nowhere.jpg" in caplog.text
    shade = [part for part in mesh.parts if part.uv is None and part.color not in {(0.2, 0.2, 0.25), (0.7, 0.7, 0.7)}]
    assert len(shade) == 1  # drawn with its Kd


def test_broken_texture_falls_back_to_kd(tmp_path) -> None:
    folder = tmp_path / "m"
    parts = chair_parts(np.random.default_rng(1), textured=True)
    write_obj(folder, parts)
    (folder / "checker.png").write_bytes(b"\x89PNG not really")
    mesh = load_mesh(folder)
    assert len(mesh.warnings) == 1 and "checker.png" in mesh.warnings[0]
    assert all(part.texture is None for part in mesh.parts)


def test_missing_mtl_renders_default_grey_with_a_warning(tmp_path) -> None:
    vertices, quads = box([0, 0, 0], [0.4, 0.4, 0.4])
    write_obj(tmp_path, [ObjPart(vertices, quads, "paint", (1.0, 0.0, 0.0))], write_mtl=False)
    mesh = load_mesh(tmp_path)
    assert [part.color for part in mesh.parts] == [DEFAULT_COLOR]
    assert len(mesh.warnings) == 1 and "model.mtl" in mesh.warnings[0] and str(tmp_path) in mesh.warnings[0]


def test_bad_meshes_raise_mesh_error_naming_the_file(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "model.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(MeshError, match=str(empty)):
        load_mesh(empty)
    nan = tmp_path / "nan"
    vertices, quads = box([0, 0, 0], [0.4, 0.4, 0.4])
    vertices[3, 1] = np.nan
    write_obj(nan, [ObjPart(vertices, quads, "paint", (0.5, 0.5, 0.5))])
    with pytest.raises(MeshError, match="non-finite"):
        load_mesh(nan)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "model.obj").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(MeshError, match=str(garbage)):
        load_mesh(garbage)
    with pytest.raises(FileNotFoundError, match="no OBJ"):
        load_mesh(tmp_path / "absent")
    with pytest.raises(MeshError, match="indices"):
        as_mesh([(vertices[:3], [[0, 1, 5]], (0.5, 0.5, 0.5))])


def test_renderer_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="square"):
        MeshRenderer(32, samples_per_pixel=5)
    with pytest.raises(ValueError, match="image_size"):
        MeshRenderer(0)
    with pytest.raises(ValueError, match="CPU"):
        MeshRenderer(32, device="cuda")
