"""The dataset build on a reduced configuration: layout, training-set files, manifest, --verify,
determinism, resuming, and the science check (input DS trends of docs/dataset.md)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from dataset.build.manifest import MANIFEST_NAME, BuildSettingsError, read_manifest, verify
from dataset.build.runner import JOURNAL_NAME
from dataset.synthetic.build import BuildConfig, build, main
from dataset.synthetic.dataset import CubeSphereDataset
from dataset.synthetic.geometry import blend_vertices, cubesphere_mesh, sample_surface_points
from dataset.synthetic.instance import points_seed
from dataset.synthetic.training_sets import CLUSTER_CENTRES, CLUSTER_SIZES, Instance, referenced_pool_indices

IMAGE_SIZE = 24
POINTS = 600
SMALL = {"image_size": IMAGE_SIZE, "num_points": POINTS, "pool": "clusters", "test_size": 4, "val_size": 4}
CLI_SMALL = [
    "--image-size", str(IMAGE_SIZE), "--points", str(POINTS), "--pool", "clusters",
    "--test-size", "4", "--val-size", "4", "--no-progress",
]  # fmt: skip
N_INSTANCES = len(referenced_pool_indices()) + 8
TRAINING_FILES = [
    f"cluster_{kind}_2by10_cltsize{s:02d}.json" for kind in ("image_aug", "shape_aug") for s in CLUSTER_SIZES
]


def _config(root, **overrides):
    return BuildConfig(root=Path(root), **{"workers": 1, "progress": False, **SMALL, **overrides})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cubesphere") / "data"
    summary = build(_config(root))
    assert summary.built == N_INSTANCES and summary.skipped == 0
    return root


def _content_files(root):
    """Relative path → bytes of everything a build writes except the manifest and the log."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST_NAME, "build.log")
    }


def _load(root, name):
    return json.loads((root / name).read_text())


def _copy(built, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(built, target)
    return target


# ------------------------------------------------------------------------------------------ layout


def test_layout_and_index_files(built):
    assert sorted(p.name for p in built.glob("*.json")) == sorted(
        ["manifest.json", "train_pool.json", "test.json", "val.json", *TRAINING_FILES]
    )
    pool, test, val = _load(built, "train_pool.json"), _load(built, "test.json"), _load(built, "val.json")
    assert [e["id"] for e in pool] == [f"train_{i:04d}" for i in referenced_pool_indices()]
    assert [e["t_shape"] for e in test] == [0.125, 0.375, 0.625, 0.875]
    assert [e["t_shape"] for e in val] == [0.0625, 0.3125, 0.5625, 0.8125]
    for entry in pool + test + val:
        assert entry["t_image"] == entry["t_shape"]
        assert {"id", "image", "points", "mesh", "t_image", "t_shape"} <= set(entry)
        for key in ("image", "points", "mesh"):
            assert (built / entry[key]).is_file()
            assert entry[key].startswith(f"instances/{entry['id']}/")
    sample = built / "instances" / "train_0250"
    points = np.load(sample / "points.npy")
    assert points.dtype == np.float32 and points.shape == (POINTS, 3)
    image = Image.open(sample / "Isometric.png")
    assert image.mode == "RGB" and image.size == (IMAGE_SIZE, IMAGE_SIZE)
    mesh = trimesh.load(sample / "model.obj", process=False)
    assert mesh.vertices.shape == (1986, 3) and mesh.faces.shape == (3968, 3)
    # the stored mesh is the shape with t = 0.25, the points are its seeded surface samples
    np.testing.assert_allclose(mesh.vertices, blend_vertices(0.25), atol=1e-7)
    expected = sample_surface_points(cubesphere_mesh(0.25), POINTS, points_seed(0, Instance("train", 250, 0.25)))
    assert points.tobytes() == expected.tobytes()
    assert not any(p.name.startswith(".tmp") for p in (built / "instances").iterdir())
    assert not (built / JOURNAL_NAME).exists() and (built / "build.log").stat().st_size > 0


def test_training_files_structure(built):
    by_id = {e["id"]: e for e in _load(built, "train_pool.json")}
    held_out_ids = {e["id"] for e in _load(built, "test.json") + _load(built, "val.json")}
    held_out_t = {e["t_shape"] for e in _load(built, "test.json") + _load(built, "val.json")}
    image_aug_35 = _load(built, "cluster_image_aug_2by10_cltsize35.json")
    for name in TRAINING_FILES:
        entries = _load(built, name)
        assert len(entries) == 20
        assert len({e["id"] for e in entries}) == 20
        for e in entries:
            assert e["image_id"] in by_id and e["shape_id"] in by_id and e["image_id"] not in held_out_ids
            assert e["image"] == by_id[e["image_id"]]["image"] and e["t_image"] == by_id[e["image_id"]]["t_image"]
            assert e["points"] == by_id[e["shape_id"]]["points"] and e["mesh"] == by_id[e["shape_id"]]["mesh"]
            assert e["t_shape"] == by_id[e["shape_id"]]["t_shape"]
            assert e["t_image"] not in held_out_t and e["t_shape"] not in held_out_t
        if "image_aug" in name:
            assert {e["points"] for e in entries} == {f"instances/train_{c:04d}/points.npy" for c in CLUSTER_CENTRES}
        else:
            assert [e["image"] for e in entries] == [e["image"] for e in image_aug_35]
    assert _load(built, "cluster_shape_aug_2by10_cltsize01.json") == image_aug_35
    assert all(e["image_id"] == e["shape_id"] for e in _load(built, "cluster_shape_aug_2by10_cltsize35.json"))


def test_manifest_lists_every_file(built):
    manifest = read_manifest(built)
    assert manifest["settings"]["instance"]["num_points"] == POINTS
    assert manifest["settings"]["instance"]["render"]["image_size"] == IMAGE_SIZE
    assert manifest["generator_version"] and manifest["provenance"]["versions"]["mitsuba"]
    assert set(manifest["files"]) == set(_content_files(built))
    assert len(manifest["instances"]) == N_INSTANCES
    report = verify(built)
    assert report.ok and report.checked == 3 * N_INSTANCES + 19


# ------------------------------------------------------------------------------------------ verify, resume


def test_verify_cli_reports_missing_and_corrupt(built, tmp_path, capsys):
    root = _copy(built, tmp_path)
    assert main(["--root", str(root), "--verify"]) == 0
    with open(root / "instances" / "train_0250" / "points.npy", "r+b") as handle:
        handle.seek(200)
        handle.write(b"\x00\x01\x02")
    (root / "instances" / "test_0001" / "Isometric.png").unlink()
    (root / "cluster_shape_aug_2by10_cltsize10.json").write_text("[]")
    capsys.readouterr()
    assert main(["--root", str(root), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "missing: instances/test_0001/Isometric.png" in out
    assert "corrupt: instances/train_0250/points.npy" in out
    assert "corrupt: cluster_shape_aug_2by10_cltsize10.json" in out
    assert main(["--root", str(tmp_path / "nothing"), "--verify"]) == 1


def test_rerun_skips_verified_and_redoes_partial_instances(built, tmp_path):
    root = _copy(built, tmp_path)
    reference = _content_files(built)
    with open(root / "instances" / "train_0250" / "points.npy", "r+b") as handle:
        handle.seek(300)
        handle.write(b"corrupt")
    (root / "instances" / "val_0002" / "Isometric.png").unlink()
    shutil.rmtree(root / "instances" / "train_0750")
    leftover = root / "instances" / ".tmp-test_0000-12345"  # what a killed worker leaves
    leftover.mkdir()
    (leftover / "points.npy").write_bytes(b"half")
    summary = build(_config(root))
    assert (summary.built, summary.skipped) == (3, N_INSTANCES - 3)
    assert _content_files(root) == reference
    assert verify(root).ok
    again = build(_config(root))
    assert (again.built, again.skipped) == (0, N_INSTANCES)


def test_killed_parallel_build_resumes_byte_identical(built, tmp_path):
    """A 2-worker build killed mid-way (SIGKILL to the whole process group) leaves no manifest; the rerun
    keeps the finished instances, builds the rest, and the result is byte-identical to the serial build
    (determinism across builds and worker counts: points, meshes, renders, index and training-set files)."""
    root = tmp_path / "killed"
    command = [sys.executable, "-m", "dataset.synthetic", "--root", str(root), "--workers", "2", *CLI_SMALL]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    journal = root / JOURNAL_NAME
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if journal.exists() and len(journal.read_text().splitlines()) >= 10:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the build finished before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert not (root / MANIFEST_NAME).exists()
    assert main(["--root", str(root), "--verify"]) == 1
    summary = build(_config(root, workers=2))
    assert summary.skipped >= 10 and summary.built == N_INSTANCES - summary.skipped
    assert _content_files(root) == _content_files(built)
    assert read_manifest(root)["files"] == read_manifest(built)["files"]


def test_cli_rejects_bad_settings(tmp_path, capsys):
    assert main(["--root", str(tmp_path / "x"), "--image-size", "2"]) == 2
    assert "image_size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--root", str(tmp_path / "x"), "--pool", "some"])


# ------------------------------------------------------------------------------------------ science check


def _spearman(values):
    ranks = np.argsort(np.argsort(values))
    return float(np.corrcoef(ranks, np.arange(len(values)))[0, 1])


def test_input_shape_dispersion_trends(built):
    """docs/dataset.md: shape DS (Chamfer, k = 2) rises with s across shape_aug files and stays flat (at the
    sampling-noise floor: two shapes, each drawn with different points per item) across image_aug files."""
    import torch

    from dispersion_score.chamfer import chamfer_matrix
    from dispersion_score.score import dispersion_score

    shape_ds = {}
    for kind in ("image_aug", "shape_aug"):
        for s in CLUSTER_SIZES:
            data = CubeSphereDataset(built, f"cluster_{kind}_2by10_cltsize{s:02d}.json", num_points=500)
            clouds = torch.stack([data[i]["points"] for i in range(len(data))])
            shape_ds[kind, s] = dispersion_score(chamfer_matrix(clouds), 2).ds
    image_aug = np.array([shape_ds["image_aug", s] for s in CLUSTER_SIZES])
    shape_aug = np.array([shape_ds["shape_aug", s] for s in CLUSTER_SIZES])
    assert _spearman(shape_aug) > 0.9, shape_aug
    assert shape_aug[-1] > 3 * shape_aug[0], shape_aug
    assert image_aug.max() < 1.3 * image_aug.min(), image_aug
    assert image_aug.max() < shape_aug[-1] / 3, (image_aug, shape_aug)


@pytest.mark.slow
def test_input_image_dispersion_rises_with_cluster_size(built):
    """docs/dataset.md: image DS (VGG16 relu3_3 channel-max features, random weights here; k = 2) rises with s
    across image_aug files. Three of the eight sizes: the network on 224² inputs is the slow part on a CPU."""
    import torch

    from dispersion_score.features import feature_matrix
    from dispersion_score.perceptual import perceptual_features
    from dispersion_score.score import dispersion_score

    sizes = (1, 15, 35)
    files = {s: CubeSphereDataset(built, f"cluster_image_aug_2by10_cltsize{s:02d}.json", num_points=1) for s in sizes}
    unique = sorted({item.image for data in files.values() for item in data.items})
    loader = CubeSphereDataset(built, "train_pool.json", num_points=1)
    by_path = {item.image: i for i, item in enumerate(loader.items)}
    images = torch.stack([loader.image(by_path[path]) for path in unique])
    features = perceptual_features(images, weights="random", batch_size=20)
    row = {path: i for i, path in enumerate(unique)}
    image_ds = [
        dispersion_score(feature_matrix(features[[row[item.image] for item in files[s].items]]), 2).ds for s in sizes
    ]
    assert image_ds == sorted(image_ds) and image_ds[-1] > 5 * image_ds[0], image_ds


# ------------------------------------------------------------------------------------------ issue 9


def test_rebuild_with_other_settings_is_refused_naming_them(built, tmp_path, capsys):
    root = _copy(built, tmp_path)
    before = _content_files(root)
    with pytest.raises(BuildSettingsError, match=r"instance\.render\.image_size: 24 → 32"):
        build(_config(root, image_size=32))
    assert main(["--root", str(root), *CLI_SMALL, "--image-size", "32", "--points", "700"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "image_size: 24 → 32" in err and "num_points: 600 → 700" in err
    assert "--force" in err
    assert _content_files(root) == before, "nothing was replaced"
    # The same holds for an unfinished build (no manifest yet, its settings in the journal's first line).
    (root / MANIFEST_NAME).unlink()
    (root / JOURNAL_NAME).write_text(json.dumps({"settings": read_manifest(built)["settings"]}) + "\n")
    with pytest.raises(BuildSettingsError, match=r"pool: 'clusters' → 'full'"):
        build(_config(root, pool="full"))


def test_force_rebuilds_with_the_new_settings(built, tmp_path):
    root = _copy(built, tmp_path)
    summary = build(_config(root, num_points=POINTS + 1, force=True))
    assert summary.built == N_INSTANCES and summary.skipped == 0
    assert read_manifest(root)["settings"]["instance"]["num_points"] == POINTS + 1
    assert np.load(root / "instances" / "test_0000" / "points.npy").shape == (POINTS + 1, 3)


def test_bad_seed_and_root_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:  # refused by the option's type, before any work
        main(["--root", str(tmp_path / "x"), "--seed", "-1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "argument --seed: expected a non-negative integer" in err
    (tmp_path / "file").write_text("not a folder")
    assert main(["--root", str(tmp_path / "file"), *CLI_SMALL]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "is a file" in err


def test_second_build_on_the_same_root_is_refused(tmp_path, capsys):
    from dispersion_score.locks import DirectoryLockedError, directory_lock

    root = tmp_path / "data"
    with directory_lock(root, what="dataset root"):
        with pytest.raises(DirectoryLockedError, match=f"pid {os.getpid()}"):
            build(_config(root))
        assert main(["--root", str(root), *CLI_SMALL]) == 2
        assert f"pid {os.getpid()}" in capsys.readouterr().err
    assert not (root / "instances").exists()
