"""Geometry of the cube↔sphere shapes: the UV sphere, the cube target, the blend, surface sampling."""

import math

import numpy as np
import pytest

from dataset.synthetic.geometry import (
    CUBE_HALF_EDGE,
    blend_vertices,
    cubesphere_mesh,
    nearest_on_cube_surface,
    sample_surface_points,
    uv_sphere,
)

A = CUBE_HALF_EDGE


def _naive_nearest_on_cube(point: np.ndarray, a: float) -> np.ndarray:
    """Reference: the closest of the six faces' own nearest points (a face is a closed square)."""
    candidates = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            q = np.clip(point, -a, a)
            q[axis] = sign * a
            candidates.append(q)
    candidates = np.array(candidates)
    return candidates[np.linalg.norm(candidates - point, axis=1).argmin()]


def test_uv_sphere_counts_and_orientation():
    vertices, faces = uv_sphere()
    assert vertices.shape == (2 + 64 * 31, 3)
    assert faces.shape == (2 * 64 * 31, 3)
    np.testing.assert_allclose(np.linalg.norm(vertices, axis=1), 1.0, atol=1e-12)
    mesh = cubesphere_mesh(0.0)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward normals
    # a 64×32 UV sphere's volume is a little under the ball's
    assert 0.99 * 4 / 3 * math.pi < mesh.volume < 4 / 3 * math.pi


def test_t0_is_the_unit_sphere():
    np.testing.assert_allclose(np.linalg.norm(blend_vertices(0.0), axis=1), 1.0, atol=1e-12)


def test_t1_every_vertex_on_the_cube_surface():
    cube = blend_vertices(1.0)
    assert np.all(np.abs(cube).max(axis=1) == A)  # exactly on a face plane ...
    assert np.all(np.abs(cube) <= A)  # ... and within the face


def test_t1_is_a_clean_cube():
    mesh = cubesphere_mesh(1.0)
    side = 2 * A
    # the blend covers the whole cube: volume and area within 0.2% (only edge triangles cut tiny corners)
    assert mesh.volume == pytest.approx(side**3, rel=2e-3)
    assert mesh.area == pytest.approx(6 * side**2, rel=2e-3)
    # every face of the cube is reached out to its corners
    cube = blend_vertices(1.0)
    for axis in range(3):
        for sign in (-1, 1):
            on_face = cube[cube[:, axis] == sign * A]
            others = [d for d in range(3) if d != axis]
            for d in others:
                assert on_face[:, d].max() == pytest.approx(A) and on_face[:, d].min() == pytest.approx(-A)
    corners = np.array([[x, y, z] for x in (-A, A) for y in (-A, A) for z in (-A, A)])
    # no ring passes exactly through a corner direction; the nearest vertex is within 4% of the half-edge
    assert np.all(np.min(np.linalg.norm(cube[None] - corners[:, None], axis=2), axis=1) < 0.04 * A)


def test_nearest_on_cube_surface_matches_brute_force():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(size=(20, 3)), rng.uniform(-0.5, 0.5, size=(10, 3)), uv_sphere()[0][::211]])
    ours = nearest_on_cube_surface(points)
    for point, q in zip(points, ours, strict=True):
        reference = _naive_nearest_on_cube(point, A)
        assert np.linalg.norm(point - q) == pytest.approx(np.linalg.norm(point - reference), abs=1e-9)
        assert np.abs(q).max() == pytest.approx(A)


def test_blend_is_linear_and_monotone():
    sphere, cube = blend_vertices(0.0), blend_vertices(1.0)
    ts = np.linspace(0, 1, 11)
    moved = np.stack([np.linalg.norm(blend_vertices(t) - sphere, axis=1) for t in ts])
    # each vertex travels a straight line at constant speed: distance from its sphere position = t·|cube−sphere|
    np.testing.assert_allclose(moved, ts[:, None] * np.linalg.norm(cube - sphere, axis=1)[None], atol=1e-12)
    radii = np.stack([np.linalg.norm(blend_vertices(t), axis=1) for t in ts])
    assert np.all(np.diff(radii, axis=0) <= 1e-12)  # every vertex moves inward (cube inscribed in sphere)
    # the shapes drift away from the sphere steadily: the mean vertex distance grows strictly
    assert np.all(np.diff(moved.mean(axis=1)) > 0)


@pytest.mark.parametrize("t", [-0.01, 1.01, float("nan")])
def test_blend_rejects_t_outside_unit_interval(t):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend_vertices(t)


def test_surface_samples_are_seeded_and_area_uniform():
    cube = cubesphere_mesh(1.0)
    a = sample_surface_points(cube, 30000, [0, 0, 7])
    b = sample_surface_points(cube, 30000, [0, 0, 7])
    c = sample_surface_points(cube, 30000, [0, 0, 8])
    assert a.dtype == np.float32 and a.shape == (30000, 3)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)
    # on the cube: (nearly) on the surface, and each face gets a sixth of the points
    assert np.all(np.abs(a).max(axis=1) > A - 0.02)
    dominant = np.abs(a).argmax(axis=1) * 2 + (a[np.arange(len(a)), np.abs(a).argmax(axis=1)] > 0)
    fractions = np.bincount(dominant, minlength=6) / len(a)
    np.testing.assert_allclose(fractions, 1 / 6, atol=0.01)
    # on the sphere: uniform on the sphere → z is uniform on [-1, 1] (Archimedes)
    z = sample_surface_points(cubesphere_mesh(0.0), 30000, 3)[:, 2]
    np.testing.assert_allclose(np.histogram(z, bins=4, range=(-1, 1))[0] / len(z), 0.25, atol=0.01)
