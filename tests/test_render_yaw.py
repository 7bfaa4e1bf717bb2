"""The yaw-limited set runner: layout, seeded draws, geometry read back from the metadata, determinism over
worker counts and launchers, resume after SIGKILL, bad meshes, clipping, split id source, --verify."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from benchmarks._meshes import ObjPart, box, write_mesh_tree, write_obj
from dataset.shapenet.camera import project, read_yaw_metadata
from dataset.shapenet.categories import split_ids
from dataset.shapenet.mesh import load_mesh
from dataset.shapenet.render.yaw_sets import (
    YAW_RANGES,
    YawRenderConfig,
    YawSettings,
    candidate_views,
    main,
    render_folder,
    render_yaw_sets,
    set_name,
)

ROOT = Path(__file__).resolve().parent.parent
SIZE = 96
CHAIR, LAMP = "03001627", "03636649"


@pytest.fixture(scope="module")
def meshes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapenet") / "ShapeNetCore.v1"
    write_mesh_tree(root, 3)
    return root


def _config(meshes: Path, out: Path, **overrides) -> YawRenderConfig:
    settings = overrides.pop("settings", YawSettings(image_size=SIZE))
    overrides.setdefault("categories", ("chair", "lamp"))
    return YawRenderConfig(meshes, out, settings=settings, progress=False, **overrides)


def _files(out: Path) -> dict[str, bytes]:
    """Every file the sets hold, except the manifests (which carry a time stamp)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and set_name(0)[:-3] in str(p) and p.name != "manifest.json"
    }


@pytest.fixture(scope="module")
def reference(meshes, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("reference")
    summary = render_yaw_sets(_config(meshes, out))
    return out, summary


def test_layout_metadata_and_sampling(meshes, reference) -> None:
    out, summary = reference
    shapes = sorted((p.parent.name, p.name) for p in meshes.glob("*/*"))
    assert summary.rendered == 7 * len(shapes) and not summary.failed and not summary.lost
    for yaw in YAW_RANGES:
        for synset, model_id in shapes:
            folder = render_folder(out, yaw, synset, model_id)
            assert folder == out / f"ShapeNetV1RenderingSampleYaw{yaw:03d}" / "image" / synset / model_id / "easy"
            assert sorted(p.name for p in folder.iterdir()) == [
                "00.png",
                "rendering_metadata.txt",
                "rendering_metadata_disn.txt",
            ]
            line = (folder / "rendering_metadata.txt").read_text().split()
            assert len(line) == 10 and line[2] == "0" and line[4:] == ["35", "32", "1.75", "0.0", "0.0", "0.0"]
            view = read_yaw_metadata(folder / "rendering_metadata.txt")
            assert read_yaw_metadata(folder / "rendering_metadata_disn.txt") == view
            assert 360 - yaw <= view.azimuth <= 360 + yaw and 20 <= view.elevation < 30
            assert 0.65 <= view.distance_ratio < 1.0
            # The view is one of this shape's seeded draws (the first unless the object had to be refit).
            assert view in candidate_views(0, yaw, synset, model_id, 20)
            with Image.open(folder / "00.png") as png:
                assert png.mode == "RGBA" and png.size == (SIZE, SIZE)
    azimuths = [read_yaw_metadata(render_folder(out, 0, s, i) / "rendering_metadata.txt").azimuth for s, i in shapes]
    assert set(azimuths) == {360.0}


def test_surface_points_projected_with_the_written_metadata_land_in_the_mask(meshes, reference) -> None:
    out, _ = reference
    inside = []
    for synset, model_id in [(CHAIR, p.name) for p in (meshes / CHAIR).iterdir()][:2]:
        mesh = load_mesh(meshes / synset / model_id)
        surface = trimesh.util.concatenate([trimesh.Trimesh(p.vertices, p.faces, process=False) for p in mesh.parts])
        points, _ = trimesh.sample.sample_surface(surface, 20000, seed=0)
        for yaw in (0, 45, 90):
            folder = render_folder(out, yaw, synset, model_id)
            view = read_yaw_metadata(folder / "rendering_metadata.txt")
            alpha = np.asarray(Image.open(folder / "00.png"))[..., 3]
            uv, _ = project(points, view, SIZE)
            column, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
            assert ((column >= 0) & (column < SIZE) & (row >= 0) & (row < SIZE)).all()
            inside.append((alpha[row, column] > 0).mean())
            footprint = np.zeros_like(alpha, dtype=bool)
            footprint[row, column] = True
            assert footprint[alpha == 255].mean() > 0.97
    assert min(inside) >= 0.99


def test_same_seed_same_bytes_for_any_worker_count_and_launcher(meshes, reference, tmp_path) -> None:
    out, _ = reference
    parallel = tmp_path / "parallel"
    render_yaw_sets(_config(meshes, parallel, workers=2, yaws=(0, 45, 90)))
    expected = {k: v for k, v in _files(out).items() if any(set_name(y) in k for y in (0, 45, 90))}
    assert _files(parallel) == expected
    sharded = tmp_path / "sharded"
    summary = render_yaw_sets(_config(meshes, sharded, launcher="submitit-local", jobs=2, yaws=(0, 90)))
    assert summary.rendered == 2 * 6 and not summary.lost
    assert _files(sharded) == {k: v for k, v in expected.items() if any(set_name(y) in k for y in (0, 90))}
    assert main(["--out", str(sharded), "--yaw", "0", "90", "--verify"]) == 0


def test_other_seed_moves_the_cameras(meshes, reference, tmp_path) -> None:
    out, _ = reference
    other = tmp_path / "other"
    render_yaw_sets(
        _config(meshes, other, yaws=(30,), settings=YawSettings(image_size=SIZE, samples_per_pixel=4, seed=1))
    )
    for folder in (out / set_name(30) / "image").glob("*/*/easy"):
        mine = read_yaw_metadata(folder / "rendering_metadata.txt")
        theirs = read_yaw_metadata(other / folder.relative_to(out) / "rendering_metadata.txt")
        assert mine != theirs


def test_resume_after_sigkill_gives_the_same_files(meshes, reference, tmp_path) -> None:
    out, _ = reference
    resumed = tmp_path / "resumed"
    command = [sys.executable, "-m", "dataset.shapenet.render", "--meshes", str(meshes), "--out", str(resumed),
               "--categories", "chair", "lamp", "--image-size", str(SIZE), "--spp", "9", "--workers", "1",
               "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(resumed.rglob("rendering_metadata.txt"))) < 3:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = len(list(resumed.rglob("rendering_metadata.txt")))
    assert 3 <= partial < 7 * 6, "the kill must land mid-set"
    # A half-written render (as a kill between two files leaves) and a corrupt PNG must be redone.
    victim = next(resumed.rglob("rendering_metadata.txt")).parent
    (victim / "00.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (victim / ".00.png.k1ll3d.tmp").write_bytes(b"half")  # what a kill inside an atomic write leaves
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "skipped" in completed.stdout
    assert _files(resumed) == _files(out)
    assert main(["--out", str(resumed), "--verify"]) == 0


def test_bad_meshes_are_counted_and_skipped_and_the_set_completes(tmp_path) -> None:
    meshes = tmp_path / "ShapeNetCore.v1"
    write_mesh_tree(meshes, 2, synsets=(CHAIR,))
    vertices, quads = box([0, 0, 0], [0.4, 0.4, 0.4])
    no_faces = meshes / CHAIR / ("0" * 32)
    no_faces.mkdir()
    (no_faces / "model.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    nan_vertices = vertices.copy()
    nan_vertices[0, 0] = np.nan
    write_obj(meshes / CHAIR / ("1" * 32), [ObjPart(nan_vertices, quads, "paint", (0.5, 0.5, 0.5))])
    write_obj(meshes / CHAIR / ("2" * 32), [ObjPart(vertices, quads, "paint", (0.5, 0.5, 0.5))], write_mtl=False)
    out = tmp_path / "out"
    code = main(["--meshes", str(meshes), "--out", str(out), "--categories", "chair", "--yaw", "0", "30",
                 "--image-size", str(SIZE), "--spp", "9", "--workers", "1", "--no-progress"])  # fmt: skip
    assert code == 0
    log = (out / "render_yaw.log").read_text()
    assert str(no_faces) in log and str(meshes / CHAIR / ("1" * 32)) in log and "non-finite" in log
    assert "model.mtl" in log  # the missing MTL: a logged fallback, the shape is rendered
    for yaw in (0, 30):
        rendered = {p.parent.parent.name for p in (out / set_name(yaw) / "image" / CHAIR).glob("*/easy/00.png")}
        assert ("0" * 32) not in rendered and ("1" * 32) not in rendered and ("2" * 32) in rendered
        assert len(rendered) == 3
    assert main(["--out", str(out), "--yaw", "0", "30", "--verify"]) == 0


def test_clipped_renders_are_detected_and_reported(tmp_path) -> None:
    meshes = tmp_path / "ShapeNetCore.v1"
    vertices, quads = box([0, 0, 0], [1.6, 1.6, 1.6])  # too large to fit at any sampled distance
    write_obj(meshes / LAMP / ("a" * 32), [ObjPart(vertices, quads, "paint", (0.5, 0.5, 0.5))])
    small, small_quads = box([0, 0, 0], [0.3, 0.3, 0.3])
    write_obj(meshes / LAMP / ("b" * 32), [ObjPart(small, small_quads, "paint", (0.5, 0.5, 0.5))])
    settings = YawSettings(image_size=SIZE, samples_per_pixel=4, max_draws=3)
    summary = render_yaw_sets(_config(meshes, tmp_path / "out", yaws=(0, 60), categories=None, settings=settings))
    for yaw in (0, 60):
        assert summary.sets[yaw].clipped == [f"{LAMP}/{'a' * 32}"]
    assert "2 clipped" not in summary.text() and "1 clipped" in summary.text()


def test_ids_come_from_the_point_clouds_when_present(tmp_path) -> None:
    meshes = tmp_path / "ShapeNetCore.v1"
    written = write_mesh_tree(meshes, 6, synsets=(LAMP,))
    clouds = tmp_path / "ShapeNetV1PointCloud" / LAMP
    clouds.mkdir(parents=True)
    listed = [model_id for _, model_id in written[:5]]  # one mesh without a point cloud: not in the split
    for model_id in listed:
        np.save(clouds / f"{model_id}.points.ply.npy", np.zeros((4, 3), np.float32))
    out = tmp_path / "out"
    summary = render_yaw_sets(_config(meshes, out, yaws=(0,), splits=("test",), categories=("lamp",)))
    rendered = sorted(p.parent.parent.name for p in (out / set_name(0) / "image" / LAMP).glob("*/easy/00.png"))
    assert rendered == split_ids(listed, "test") and summary.rendered == 1
    assert "ids from the point clouds" in (out / "render_yaw.log").read_text()


def test_rerun_with_other_settings_is_refused_and_verify_finds_corruption(meshes, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    args = ["--meshes", str(meshes), "--out", str(out), "--categories", "lamp", "--yaw", "15",
            "--image-size", str(SIZE), "--spp", "9", "--workers", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args[:-5], "--spp", "4", "--workers", "1", "--no-progress"]) == 2
    assert re.search(r"other settings .*samples_per_pixel: 9 → 4.*--overwrite", capsys.readouterr().err)
    settings_file = out / set_name(15) / "render_settings.json"
    stored = settings_file.read_text()
    settings_file.write_text("{broken")
    assert main(args) == 2
    assert "cannot read" in capsys.readouterr().err
    settings_file.write_text(stored)
    png = next((out / set_name(15)).rglob("00.png"))
    png.write_bytes(png.read_bytes()[:-10])
    assert main(["--out", str(out), "--yaw", "15", "--verify"]) == 1
    assert main(args) == 0  # the check on rerun redoes the damaged render
    assert main(["--out", str(out), "--yaw", "15", "--verify"]) == 0
