"""The headless renderer: shading normals, colour encoding, and what a render of the shapes looks like."""

import io
import math

import numpy as np
import pytest
from PIL import Image

from dataset.image_encoding import encode_png, linear_to_srgb8
from dataset.synthetic.geometry import blend_vertices, uv_sphere
from dataset.synthetic.render import CubeSphereRenderer, RenderSettings, corner_normals

SIZE = 48


@pytest.fixture(scope="module")
def renderer():
    return CubeSphereRenderer(uv_sphere()[1], RenderSettings(image_size=SIZE, samples_per_pixel=4))


def _naive_corner_normals(vertices, faces, crease_degrees):
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1)
    unit = np.zeros_like(cross)
    unit[area > 0] = cross[area > 0] / area[area > 0, None]
    out = np.empty((len(faces), 3, 3))
    for f in range(len(faces)):
        for k in range(3):
            total = np.zeros(3)
            for g in range(len(faces)):
                if faces[f, k] in faces[g] and unit[f] @ unit[g] >= math.cos(math.radians(crease_degrees)):
                    total += area[g] * unit[g]
            out[f, k] = total / np.linalg.norm(total)
    return out


def test_corner_normals_match_naive_loop():
    # a bent strip: two flat quads meeting at 60 degrees, plus a gentle 10-degree fold
    vertices = np.array(
        [
            [0, 0, 0],
            [1, 0, 0],
            [0, 1, 0],
            [1, 1, 0],
            [0, 1.5, 0.866],
            [1, 1.5, 0.866],
            [0, -1, -0.176],
            [1, -1, -0.176],
        ],
        dtype=float,
    )
    faces = np.array([[0, 1, 3], [0, 3, 2], [2, 3, 5], [2, 5, 4], [6, 7, 1], [6, 1, 0]])
    ours = corner_normals(vertices, faces, 30.0)
    np.testing.assert_allclose(ours, _naive_corner_normals(vertices, faces, 30.0), atol=1e-12)
    # the 60-degree crease stays sharp, the 10-degree fold is smoothed
    np.testing.assert_allclose(ours[2, 0], ours[2, 1])  # face 2 is flat on its own side of the crease
    assert ours[0, 2] @ ours[2, 1] < 0.9  # across the crease: different normals at the same vertex 3
    np.testing.assert_allclose(ours[0, 0], ours[5, 2], atol=1e-12)  # across the fold: one shared normal


def test_corner_normals_on_the_sphere_point_outward():
    vertices, faces = uv_sphere()
    normals = corner_normals(vertices, faces)
    radial = vertices[faces]
    assert np.all(np.einsum("fkd,fkd->fk", normals, radial) > 0.99)


def test_linear_to_srgb8_known_values():
    values = np.array([0.0, 0.0031308, 0.5, 1.0, 1.5, -0.2])
    np.testing.assert_array_equal(linear_to_srgb8(values), [0, 10, 188, 255, 255, 0])


def test_png_round_trip_keeps_rgb_order():
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    image[1, 2] = (255, 0, 0)
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(image))))
    assert decoded.shape == (4, 5, 3)
    np.testing.assert_array_equal(decoded, image)


def test_render_sphere_is_centred_lit_from_one_side_on_white(renderer):
    image = renderer.render(blend_vertices(0.0))
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    assert np.all(image[0, 0] == 255) and np.all(image[-1, -1] == 255)  # plain white background
    assert np.all(image[..., 0] == image[..., 1]) and np.all(image[..., 1] == image[..., 2])  # grey
    covered = image[..., 0] < 250
    # silhouette: a disc of radius tan(asin(1/|c|)) / tan(25°) ≈ 0.89 of the half-width, centred
    radius = math.tan(math.asin(1 / math.sqrt(3 * 1.5**2))) / math.tan(math.radians(25))
    assert covered.mean() == pytest.approx(math.pi * radius**2 / 4, rel=0.05)
    rows, cols = np.nonzero(covered)
    assert abs(rows.mean() - (SIZE - 1) / 2) < 1 and abs(cols.mean() - (SIZE - 1) / 2) < 1
    # dark side is not black (ambient), lit side is clearly brighter
    values = image[..., 0][covered]
    assert values.min() > 60 and values.max() - values.min() > 80


def test_render_cube_faces_have_three_shades(renderer):
    image = renderer.render(blend_vertices(1.0)).astype(int)[..., 0]
    # camera right vector is (-1, -1, 0)/√2, so +y is the left face, -x the right face, +z on top
    left, right, top = (
        image[SIZE // 2 + 6, SIZE // 2 - 8],
        image[SIZE // 2 + 6, SIZE // 2 + 8],
        image[SIZE // 4, SIZE // 2],
    )
    # sun from (3, 4, 5): cos = 4/√50 on +y, 5/√50 on +z, unlit on -x
    assert right < left < top


def test_render_is_deterministic(renderer):
    a = renderer.render(blend_vertices(0.37))
    b = renderer.render(blend_vertices(0.37))
    assert a.tobytes() == b.tobytes()


def test_render_settings_validate():
    with pytest.raises(ValueError, match="image_size"):
        RenderSettings(image_size=2)
    with pytest.raises(ValueError, match="samples_per_pixel"):
        RenderSettings(samples_per_pixel=0)
