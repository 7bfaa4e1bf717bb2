"""The ShapeNet-13 stand-in (docs/shapenet.md): parts and outer-surface sampling against naive references, the 13
families, a tiny build in the real formats, the camera check, determinism, resume, --verify."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset.build.runner import JOURNAL_NAME
from dataset.shapenet.camera import project, read_r2n2_metadata
from dataset.shapenet.categories import SHAPENET13
from dataset.shapenet.dataset import ShapeNet, read_taxonomy
from dataset.shapenet.standin import build as standin
from dataset.shapenet.standin import parts as sp
from dataset.shapenet.standin.families import FAMILIES

CATEGORIES = ("chair", "airplane")
CHAIR_ID = "03001627"
TINY = {"per_category": 3, "categories": CATEGORIES, "samples_per_pixel": 16, "num_points": 2000, "progress": False}


def winding_number(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Generalised winding number of a closed triangle mesh at each point (Van Oosterom & Strackee): ~1
    inside, ~0 outside. A naive reference for the inside tests."""
    a, b, c = (vertices[faces[:, k]][None] - points[:, None] for k in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=2) for x in (a, b, c))
    det = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
    dot = la * lb * lc + np.einsum("pfi,pfi->pf", a, b) * lc + np.einsum("pfi,pfi->pf", a, c) * lb
    dot += np.einsum("pfi,pfi->pf", b, c) * la
    return (2 * np.arctan2(det, dot)).sum(axis=1) / (4 * math.pi)


PRIMITIVES = {
    "box": sp.box((0.1, 0.2, 0.3), (1.0, 0.5, 0.3), "m"),
    "rotated_prism_xz": sp.prism([(0, 0), (1, 0.1), (0.7, 0.8), (0.1, 0.6)], 0.1, "m", plane="xz").rotated(
        sp.rotation("x", 25), (0.3, 0, 0)
    ),
    "prism_zy": sp.prism([(0, 0), (0.5, 0), (0.25, 0.7)], 0.2, "m", plane="zy", center=(0.2, 0, 0)),
    "cone_tilted": sp.cylinder((0, 0, 0), (0.6, 0.8, 0.1), 0.3, "m", radius_b=0.0, segments=9),
    "frustum": sp.cylinder((0.2, 0, 0), (0.2, 0.5, 0), 0.3, "m", radius_b=0.1),
    "ellipsoid": sp.ellipsoid((0, 0.1, 0), (0.5, 0.2, 0.3), "m"),
    "lathe_apex": sp.lathe([(0.0, 0.0), (0.4, 0.2), (0.25, 0.6), (0.25, 0.9)], "m", axis=(1, 0, 1), segments=11),
}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_primitive_meshes_are_closed_outward_and_inside_matches_winding_number(name: str) -> None:
    part = PRIMITIVES[name]
    vertices, faces = part.mesh()
    corners = vertices[faces]
    signed_volume = np.einsum("fi,fi->f", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6
    assert signed_volume > 0  # outward faces
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges[(edges[:, 0] != edges[:, 1])], axis=0, return_counts=True)
    assert (counts == 2).all()  # closed (every edge shared by two faces)
    rng = np.random.default_rng(0)
    points = rng.uniform(vertices.min(0) - 0.05, vertices.max(0) + 0.05, size=(3000, 3))
    winding = winding_number(points, vertices, faces)
    clear = np.abs(winding - 0.5) > 0.02  # skip points within rounding of the surface
    assert part.contains(points)[clear].tolist() == (winding[clear] > 0.5).tolist()
    assert 0.05 < part.contains(points).mean() < 0.95


def test_outer_surface_of_two_overlapping_boxes() -> None:
    """Two unit cubes sharing one octant: points lie on the union's boundary, none inside either cube, and are
    area-uniform. Each cube has three faces a quarter covered (exposed 6 − 3/4 each, 10.5 in all); a's +z
    face keeps 3/4 of its area."""
    a, b = sp.box((0, 0, 0), (1, 1, 1), "a"), sp.box((0.5, 0.5, 0.5), (1, 1, 1), "b")
    points = sp.sample_outer_surface([a, b], 40000, np.random.default_rng(1))
    assert points.shape == (40000, 3)
    assert not a.contains(points).any() and not b.contains(points).any()

    def on_surface(p: np.ndarray) -> np.ndarray:
        return np.isclose(np.abs(p), 0.5, atol=1e-9).any(axis=1) & (np.abs(p) <= 0.5 + 1e-9).all(axis=1)

    assert (on_surface(points) | on_surface(points - 0.5)).all()
    top_of_a = np.isclose(points[:, 2], 0.5, atol=1e-12)
    assert top_of_a.mean() == pytest.approx(0.75 / 10.5, rel=0.05)
    assert not (top_of_a & (points[:, 0] > 0) & (points[:, 1] > 0)).any()  # the covered quarter


def test_no_stand_in_point_lies_inside_another_part() -> None:
    """The winding number of every other part's mesh (a naive reference, not Part.contains) is 0 at every
    sample: no point is inside another part."""
    for synset, index in [(synset, index) for synset in sorted(FAMILIES) for index in range(4)]:
        shape = standin.PlannedShape(synset, index, standin.derive_model_id(0, synset, index))
        parts, _ = standin.shape_geometry(0, shape)
        points, owner = sp.sample_outer_surface(parts, 400, np.random.default_rng(0), return_owner=True)
        for number, part in enumerate(parts):
            vertices, faces = part.mesh()
            winding = winding_number(points[owner != number], vertices, faces)
            assert (winding < 0.5).all(), (SHAPENET13[synset], index, number, int((winding > 0.5).sum()))


def test_families_follow_the_v1_conventions_and_vary() -> None:
    from dispersion_score.chamfer import chamfer_matrix

    clouds, labels = [], []
    for synset in sorted(FAMILIES):
        extents = []
        for index in range(3):
            shape = standin.PlannedShape(synset, index, standin.derive_model_id(5, synset, index))
            parts, colors = standin.shape_geometry(5, shape)
            assert {p.material for p in parts} <= set(colors)
            low, high = sp.parts_bounds(parts)
            assert np.linalg.norm(high - low) == pytest.approx(1.0, abs=1e-9)  # bounding-box diagonal 1
            np.testing.assert_allclose((low + high) / 2, 0, atol=1e-9)  # centred
            extents.append(high - low)
            clouds.append(sp.sample_outer_surface(parts, 400, np.random.default_rng(index)))
            labels.append(synset)
        assert np.ptp(np.array(extents), axis=0).max() > 0.01, SHAPENET13[synset]  # shapes differ
    distances = chamfer_matrix(np.array(clouds, dtype=np.float32))
    labels = np.array(labels)
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    assert distances[same & off_diagonal].min() > 0  # variation inside each category
    assert distances[same & off_diagonal].mean() < 0.6 * distances[~same].mean()  # category clusters


def test_front_is_plus_x() -> None:
    """Seats' backs are at −X; screens, drivers and handles face +X."""
    for synset, material, sign in [
        ("03001627", "back", -1), ("04256520", "body", -1), ("03211117", "screen", 1), ("03691459", "driver", 1),
    ]:  # fmt: skip
        for index in range(4):
            parts, _ = standin.shape_geometry(0, standin.PlannedShape(synset, index, "x"))
            chosen = [p for p in parts if p.material == material]
            centre = np.concatenate([p.mesh()[0] for p in chosen]).mean(axis=0)
            if material == "body":  # the sofa's back is its highest body part
                top = max(chosen, key=lambda p: p.mesh()[0][:, 1].max())
                centre = top.mesh()[0].mean(axis=0)
            assert sign * centre[0] > 0, (SHAPENET13[synset], index)


# --------------------------------------------------------------------------------------------- a tiny build


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("standin") / "root"
    summary = standin.build(standin.BuildConfig(root=root, workers=1, **TINY))
    assert summary.built == 6 and summary.skipped == 0
    return root


def _content(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("manifest.json", "build.log")
    }


def test_layout_and_formats(tiny: Path) -> None:
    taxonomy = json.loads((tiny / "taxonomy.json").read_text())
    assert taxonomy == [
        {"synsetId": "02691156", "name": "airplane,aeroplane,plane", "children": [], "numInstances": 3},
        {"synsetId": "03001627", "name": "chair", "children": [], "numInstances": 3},
    ]
    assert read_taxonomy(tiny) == {"02691156": "airplane", "03001627": "chair"}
    for synset in ("02691156", "03001627"):
        ids = sorted(p.name.split(".")[0] for p in (tiny / "ShapeNetV1PointCloud" / synset).iterdir())
        assert len(ids) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
        for model_id in ids:
            cloud = np.load(tiny / "ShapeNetV1PointCloud" / synset / f"{model_id}.points.ply.npy")
            assert cloud.dtype == np.float32 and cloud.shape == (2000, 3)
            mesh = tiny / "ShapeNetCore.v1" / synset / model_id
            obj = (mesh / "model.obj").read_text()
            assert "mtllib model.mtl" in obj and "usemtl" in obj
            assert re.search(r"^Kd \d\.\d{4} \d\.\d{4} \d\.\d{4}$", (mesh / "model.mtl").read_text(), re.M)
            vertices = np.array([[float(v) for v in line.split()[1:]] for line in obj.splitlines() if line[:2] == "v "])
            assert np.linalg.norm(np.ptp(vertices, axis=0)) == pytest.approx(1.0, abs=1e-5)
            rendering = tiny / "ShapeNetV1Renderings" / synset / model_id / "rendering"
            assert (rendering / "renderings.txt").read_text() == "".join(f"{v:02d}.png\n" for v in range(24))
            lines = (rendering / "rendering_metadata.txt").read_text().splitlines()
            assert len(lines) == 24
            for line in lines:
                azimuth, elevation, in_plane, ratio, literal = line.split()
                assert 0 <= float(azimuth) < 360 and 25 <= float(elevation) < 30 and 0.65 <= float(ratio) < 0.95
                assert in_plane == "0" and literal == "25"
            image = Image.open(rendering / "07.png")
            assert image.mode == "RGBA" and image.size == (137, 137)
            rgba = np.asarray(image)
            assert (rgba[rgba[..., 3] == 0, :3] == 0).all() and (rgba[..., 3] == 255).any()


def test_ids_do_not_follow_the_parameters() -> None:
    shapes = standin.plan(0, 20, ["03001627"])
    ids = [s.model_id for s in shapes]
    assert len(set(ids)) == 20 and sorted(ids) != ids
    assert standin.plan(1, 1, ["03001627"])[0].model_id != ids[0]  # derived from the seed


def test_camera_check_points_land_in_the_alpha_mask(tiny: Path) -> None:
    """docs/shapenet.md: points projected with each view's metadata camera land inside its alpha mask (>= 99 %)."""
    fractions = []
    for cloud_path in sorted((tiny / "ShapeNetV1PointCloud").glob("*/*.npy")):
        synset, model_id = cloud_path.parent.name, cloud_path.name.split(".")[0]
        points = np.load(cloud_path).astype(np.float64)
        rendering = tiny / "ShapeNetV1Renderings" / synset / model_id / "rendering"
        for view_index, view in enumerate(read_r2n2_metadata(rendering / "rendering_metadata.txt")):
            alpha = np.asarray(Image.open(rendering / f"{view_index:02d}.png"))[..., 3]
            uv, depth = project(points, view, 137)
            column, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
            visible = (depth > 0) & (row >= 0) & (row < 137) & (column >= 0) & (column < 137)
            inside = np.zeros(len(points), dtype=bool)
            inside[visible] = alpha[row[visible], column[visible]] > 0
            fractions.append(inside.mean())
    assert len(fractions) == 6 * 24 and min(fractions) >= 0.99 and np.mean(fractions) >= 0.995


def test_the_mesh_as_written_renders_like_the_stored_view(tiny: Path) -> None:
    from dataset.shapenet.mesh import load_mesh
    from dataset.shapenet.render.renderer import MeshRenderer

    synset = "03001627"
    model_id = sorted(p.name for p in (tiny / "ShapeNetCore.v1" / synset).iterdir())[0]
    rendering = tiny / "ShapeNetV1Renderings" / synset / model_id / "rendering"
    view = read_r2n2_metadata(rendering / "rendering_metadata.txt")[3]
    mesh = load_mesh(tiny / "ShapeNetCore.v1" / synset / model_id)
    again = MeshRenderer(137, samples_per_pixel=16).render(mesh, view)
    stored = np.asarray(Image.open(rendering / "03.png"))
    assert ((again[..., 3] > 0) != (stored[..., 3] > 0)).mean() < 0.002
    assert np.abs(again.astype(int) - stored.astype(int)).mean() < 1.0


def test_reader_runs_on_the_stand_in(tiny: Path, tmp_path: Path) -> None:
    dataset = ShapeNet(tiny, split="train", categories=list(CATEGORIES), frame="viewer", cache_dir=tmp_path)
    assert len(dataset) == 2 * 2 and not dataset.skipped  # int(0.8 · 3) = 2 train shapes per category
    item = dataset[0]
    assert item["image"].shape == (3, 224, 224) and item["points"].shape == (2500, 3)
    test = ShapeNet(tiny, split="test", categories=list(CATEGORIES), cache_dir=tmp_path)
    assert len(test) == 2 and {test[i]["view"] for i in range(2)} == {0}


def test_verify_and_rebuild_of_a_corrupt_shape(tiny: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "copy"
    shutil.copytree(tiny, root)
    assert standin.main(["--root", str(root), "--verify"]) == 0
    victim = next((root / "ShapeNetV1Renderings").glob("*/*/rendering/05.png"))
    victim.write_bytes(b"not a png")
    capsys.readouterr()
    assert standin.main(["--root", str(root), "--verify"]) == 1
    assert victim.relative_to(root).as_posix() in capsys.readouterr().out
    # yaw renders made from the old mesh go with it; the others stay
    rebuilt_id = victim.parent.parent.name
    kept_id = next(
        p.name[:32] for p in (root / "ShapeNetV1PointCloud" / CHAIR_ID).iterdir() if p.name[:32] != rebuilt_id
    )
    yaw_sets = root / "ShapeNetV1RenderingAnglelimit" / "ShapeNetV1RenderingSampleYaw030" / "image"
    for synset, model_id in ((victim.parent.parent.parent.name, rebuilt_id), (CHAIR_ID, kept_id)):
        (yaw_sets / synset / model_id / "easy").mkdir(parents=True)
    summary = standin.build(standin.BuildConfig(root=root, workers=1, **TINY))
    assert summary.built == 1 and summary.skipped == 5
    assert not (yaw_sets / victim.parent.parent.parent.name / rebuilt_id).exists()
    assert (yaw_sets / CHAIR_ID / kept_id / "easy").is_dir()
    shutil.rmtree(root / "ShapeNetV1RenderingAnglelimit")
    assert _content(root) == _content(tiny)


def test_resume_after_a_killed_build_gives_the_same_files(tiny: Path, tmp_path: Path) -> None:
    """A killed build: no manifest, a journal with the plan and two finished shapes, one shape half written
    (mesh folder but no point cloud) and a leftover temporary folder."""
    root = tmp_path / "killed"
    shutil.copytree(tiny, root)
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").unlink()
    keys = list(manifest["shapes"])
    journal = [json.dumps({"planned": keys})]
    for key in keys[:2]:
        journal.append(
            json.dumps({"fingerprint": manifest["fingerprint"], "key": key, "files": manifest["shapes"][key]})
        )
    (root / JOURNAL_NAME).write_text("\n".join(journal) + '\n{"fingerprint": "cut sh')
    for key in keys[2:]:
        synset, model_id = key.split("/")
        (root / "ShapeNetV1PointCloud" / synset / f"{model_id}.points.ply.npy").unlink()
        if key != keys[2]:
            shutil.rmtree(root / "ShapeNetCore.v1" / synset / model_id)
    (root / "ShapeNetV1Renderings" / "03001627" / ".tmp-deadbeef-1").mkdir()
    summary = standin.build(standin.BuildConfig(root=root, workers=1, **TINY))
    assert summary.built == 4 and summary.skipped == 2
    assert _content(root) == _content(tiny)
    assert not (root / JOURNAL_NAME).exists()


def test_byte_identical_for_any_worker_count(tiny: Path, tmp_path: Path) -> None:
    root = tmp_path / "two_workers"
    standin.build(standin.BuildConfig(root=root, workers=2, **TINY))
    assert _content(root) == _content(tiny)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["files"] == json.loads((tiny / "manifest.json").read_text())["files"]


def test_other_settings_are_refused_naming_them_and_nothing_changes(tiny: Path, tmp_path: Path) -> None:
    root = tmp_path / "other"
    shutil.copytree(tiny, root)
    before = _content(root)
    with pytest.raises(ValueError, match=r"other settings .*per_category: 3 → 2.*--force"):
        standin.build(standin.BuildConfig(root=root, workers=1, **{**TINY, "per_category": 2}))
    with pytest.raises(ValueError, match=r"seed: 0 → 1"):
        standin.build(standin.BuildConfig(root=root, workers=1, seed=1, **TINY))
    assert standin.main(["--root", str(root), "--seed", "1", "--categories", *CATEGORIES, "--per-category", "3"]) == 2
    assert _content(root) == before
    # A killed build (no manifest; its settings in the journal's first line) is refused the same way.
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").unlink()
    header = {"settings": manifest["settings"], "planned": list(manifest["shapes"])}
    (root / JOURNAL_NAME).write_text(json.dumps(header) + "\n")
    with pytest.raises(ValueError, match=r"seed: 0 → 1"):
        standin.build(standin.BuildConfig(root=root, workers=1, seed=1, **TINY))
    assert _content(root) == {**before, JOURNAL_NAME: (root / JOURNAL_NAME).read_bytes()}


def test_fewer_shapes_per_category_with_force_removes_the_others(tiny: Path, tmp_path: Path) -> None:
    root = tmp_path / "smaller"
    shutil.copytree(tiny, root)
    summary = standin.build(standin.BuildConfig(root=root, workers=1, force=True, **{**TINY, "per_category": 2}))
    assert summary.built == 0 and summary.removed == 2
    for synset in ("02691156", "03001627"):
        assert len(list((root / "ShapeNetV1PointCloud" / synset).iterdir())) == 2
        assert len(list((root / "ShapeNetV1Renderings" / synset).iterdir())) == 2
    assert json.loads((root / "taxonomy.json").read_text())[0]["numInstances"] == 2
    assert standin.main(["--root", str(root), "--verify"]) == 0


def test_refuses_a_root_with_foreign_shapes(tmp_path: Path) -> None:
    root = tmp_path / "real"
    foreign = root / "ShapeNetV1PointCloud" / "03001627" / "1a2b.points.ply.npy"
    foreign.parent.mkdir(parents=True)
    np.save(foreign, np.zeros((10, 3), np.float32))
    with pytest.raises(ValueError, match="no stand-in build wrote"):
        standin.build(standin.BuildConfig(root=root, workers=1, **TINY))
    assert foreign.exists() and not (root / "ShapeNetCore.v1").exists()


def test_default_point_count_is_the_real_one() -> None:
    from dataset.shapenet.render.renderer import MeshRenderer

    assert standin.NUM_POINTS == 30000 and standin.BuildConfig().num_points == 30000
    shape = standin.plan(0, 1, ["04379243"])[0]
    payload = standin.shape_payload(shape, standin.ShapeSettings(samples_per_pixel=1), MeshRenderer(137))
    cloud = np.load(__import__("io").BytesIO(payload[standin.relative_paths(shape)["points"]]))
    assert cloud.shape == (30000, 3) and cloud.dtype == np.float32
    assert len(payload) == 2 + 24 + 2 + 1


def test_ensure_standin_is_cheap_when_built(tiny: Path, monkeypatch) -> None:
    monkeypatch.setattr(standin, "build", lambda config: pytest.fail("rebuilt an intact stand-in"))
    assert standin.ensure_standin(tiny, **{k: v for k, v in TINY.items() if k != "progress"}) == tiny
