"""The ShapeNet camera (docs/shapenet.md): rotation, centre, projection, metadata formats."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dataset.shapenet import camera
from dataset.shapenet.camera import View
from dispersion_score.frames import to_object_frame


def _rotation_by_construction(azimuth: float, elevation: float) -> np.ndarray:
    """R from its definition: Ẑ = C/|C|, X = up × Ẑ normalised, Y = Ẑ × X."""
    theta, phi = math.radians(azimuth), math.radians(elevation)
    c = np.array([math.cos(phi) * math.cos(theta), math.sin(phi), math.cos(phi) * math.sin(theta)])
    z = c / np.linalg.norm(c)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


ANGLES = [(0.0, 0.0), (360.0, 20.0), (37.5, 27.0), (290.4, 26.4), (181.0, -12.0), (90.0, 45.0)]


@pytest.mark.parametrize(("azimuth", "elevation"), ANGLES)
def test_rotation_is_the_closed_form_of_its_definition(azimuth: float, elevation: float) -> None:
    rotation = camera.camera_rotation(azimuth, elevation)
    np.testing.assert_allclose(rotation, _rotation_by_construction(azimuth, elevation), atol=1e-12)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-12)


def test_viewer_frame_round_trip_and_camera_axis() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(100, 3)).astype(np.float32)
    view = View(123.0, 27.0, 0.8)
    back = to_object_frame(camera.to_viewer_frame(points, view)[None], view.rotation()[None])[0]  # the inverse
    np.testing.assert_allclose(back, points, atol=1e-5)
    # The camera centre lies on the viewer frame's +Z axis at distance d.
    centre_vc = camera.to_viewer_frame(view.centre()[None], view)[0]
    np.testing.assert_allclose(centre_vc, [0.0, 0.0, view.distance], atol=1e-12)


def test_projection_known_points() -> None:
    view = View(0.0, 0.0, 1.0)  # camera at (1.75, 0, 0) looking along -X; right = -Z, up = +Y
    uv, depth = camera.project(np.array([[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, -0.1]]), view, 224)
    f = 35 / 32 * 224
    np.testing.assert_allclose(depth, [1.75, 1.75, 1.75])
    np.testing.assert_allclose(uv[0], [112.0, 112.0])
    np.testing.assert_allclose(uv[1], [112.0, 112.0 - f * 0.1 / 1.75])  # up in the world is up in the image
    np.testing.assert_allclose(uv[2], [112.0 + f * 0.1 / 1.75, 112.0])  # -Z is the image's right
    assert camera.focal_length_pixels(137) == pytest.approx(149.84375)
    assert camera.field_of_view_degrees() == pytest.approx(49.13, abs=0.01)


def test_r2n2_metadata_round_trip(tmp_path) -> None:
    views = camera.sample_r2n2_views(np.random.default_rng(3), 24)
    path = tmp_path / "rendering_metadata.txt"
    path.write_text("".join(camera.format_r2n2_line(v) + "\n" for v in views))
    fields = path.read_text().splitlines()[0].split()
    assert len(fields) == 5 and fields[2] == "0" and fields[4] == "25"
    read = camera.read_r2n2_metadata(path)
    assert len(read) == 24
    for a, b in zip(views, read, strict=True):
        assert b.azimuth == pytest.approx(a.azimuth, rel=1e-11)
        assert b.elevation == pytest.approx(a.elevation, rel=1e-11)
        assert b.distance_ratio == pytest.approx(a.distance_ratio, rel=1e-11)
        assert 0 <= a.azimuth < 360 and 25 <= a.elevation < 30 and 0.65 <= a.distance_ratio < 0.95


def test_yaw_metadata_both_formats(tmp_path) -> None:
    view = camera.sample_yaw_view(np.random.default_rng(1), 45.0)
    assert 315 <= view.azimuth < 405 and 20 <= view.elevation < 30 and 0.65 <= view.distance_ratio < 1.0
    plain, disn = tmp_path / "rendering_metadata.txt", tmp_path / "rendering_metadata_disn.txt"
    plain.write_text(camera.format_yaw_line(view) + "\n")
    disn.write_text(camera.format_disn_line(view))
    assert plain.read_text().split()[2:] == ["0", plain.read_text().split()[3], "35", "32", "1.75", "0.0", "0.0",
                                             "0.0"]  # fmt: skip
    assert disn.read_text().startswith("[") and disn.read_text().endswith("], ")
    for path in (plain, disn):
        read = camera.read_yaw_metadata(path)
        assert read.azimuth == pytest.approx(view.azimuth)
        assert read.distance_ratio == pytest.approx(view.distance_ratio)
    assert camera.sample_yaw_view(np.random.default_rng(1), 0.0).azimuth == 360.0


def test_bad_metadata_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "rendering_metadata.txt"
    path.write_text("10 26 0 0.8 25\n10 26 0 0.8\n")
    with pytest.raises(camera.MetadataError, match=r"rendering_metadata.txt, line 2: expected 5 numbers"):
        camera.read_r2n2_metadata(path)
    path.write_text("10 26 0 0.8 25 1 2 3 4 5\n")
    with pytest.raises(camera.MetadataError, match="expected 5 numbers"):
        camera.read_r2n2_metadata(path)
    path.write_text("10 26 0 0.8 25\n")
    with pytest.raises(camera.MetadataError, match="expected 10 numbers"):
        camera.read_yaw_metadata(path)
    path.write_text("10 abc 0 0.8 25\n")
    with pytest.raises(camera.MetadataError, match="line 1: not a list of numbers"):
        camera.read_r2n2_metadata(path)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        camera.read_r2n2_metadata(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="elevation"):
        camera.camera_rotation(0.0, 90.0)


def test_split_and_categories() -> None:
    from dataset.shapenet.categories import SHAPENET13, resolve_categories, split_ids

    ids = [f"{i:032x}" for i in (7, 3, 9, 1, 5)]
    assert split_ids(ids, "train") == sorted(ids)[:4] and split_ids(ids, "test") == sorted(ids)[4:]
    assert sum(len(split_ids(ids[:n], s)) for s in ("train", "test") for n in [len(ids)]) == len(ids)
    assert resolve_categories(["chair", "02691156"]) == ["03001627", "02691156"]
    assert resolve_categories(None) == sorted(SHAPENET13)
    with pytest.raises(ValueError, match="unknown ShapeNet category 'speaker'"):
        resolve_categories(["speaker"])
