"""End-to-end tests of the `dispersion-score` command line, run as a subprocess like a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from dispersion_score.cli import main, parse_k_spec
from dispersion_score.shapes_io import SHAPE_SUFFIXES


def _run(*args: str, script: bool = False) -> subprocess.CompletedProcess:
    """Runs the CLI in a fresh process; ``script=True`` uses the installed console script when present."""
    command = [sys.executable, "-m", "dispersion_score.cli"]
    console_script = Path(sys.executable).parent / "dispersion-score"
    if script and console_script.exists():
        command = [str(console_script)]
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _main(capsys, *args: str) -> tuple[int, str, str]:
    """Runs the CLI in-process (cheaper than a subprocess) for the checks that do not need a fresh process."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as exit_:  # argparse errors
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _two_clusters() -> tuple[np.ndarray, float]:
    """Two clusters of 3 items: within-cluster distances 0.1 and 0.2, across 10.

    With k = 2 one medoid sits in each cluster and the two other members are at their cluster's distance:
    inertia = 2·0.1 + 2·0.2 = 0.6, DS = 0.6 / 6 = 0.1.
    """
    D = np.full((6, 6), 10.0, dtype=np.float32)
    D[:3, :3] = 0.1
    D[3:, 3:] = 0.2
    np.fill_diagonal(D, 0.0)
    return D, 0.1


def _assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_matrix_two_clusters_analytic_ds(tmp_path, capsys):
    D, ds = _two_clusters()
    np.save(tmp_path / "D.npy", D)
    proc = _run(
        "matrix",
        tmp_path / "D.npy",
        "--k",
        "2",
        "--method",
        "alternate",
        "--json",
        "--out",
        tmp_path / "res" / "ds.json",
        script=True,
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    result = document["result"]
    assert result["ds"] == pytest.approx(ds, rel=1e-6) and result["inertia"] == pytest.approx(0.6, rel=1e-6)
    assert sorted(result["labels"]) == [0, 0, 0, 1, 1, 1] and result["labels"][:3] == [result["labels"][0]] * 3
    assert document["settings"]["k"] == 2 and document["settings"]["method"] == "alternate"
    assert document["settings"]["seeds"] == [0] and document["settings"]["n_items"] == 6
    assert document["provenance"]["device"] == document["settings"]["device"]

    status, out, _ = _main(capsys, "matrix", tmp_path / "D.npy", "--k", "2", "--device", "cpu")
    assert status == 0 and "DS = 0.1 " in out

    from dispersion_score.io import load_result

    saved = load_result(tmp_path / "res" / "ds.json")
    assert saved["result"] == result
    np.testing.assert_array_equal(saved["matrix"], D)


def test_matrix_several_seeds_mean_and_std(tmp_path, capsys):
    from dispersion_score.score import dispersion_score

    rng = np.random.default_rng(0)
    points = rng.normal(size=(40, 2))
    D = ((points[:, None] - points[None]) ** 2).sum(-1).astype(np.float32)
    np.save(tmp_path / "D.npy", D)
    proc = _run("matrix", tmp_path / "D.npy", "--k", "5", "--method", "alternate", "--seeds", "1", "2", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)["result"]
    expected = [dispersion_score(D, 5, method="alternate", seed=s).ds for s in (1, 2, 3)]
    assert [r["ds"] for r in result["results"]] == pytest.approx(expected, rel=1e-6)
    assert result["mean"] == pytest.approx(np.mean(expected), rel=1e-6)
    assert result["std"] == pytest.approx(np.std(expected, ddof=1), rel=1e-6, abs=1e-12)

    status, out, _ = _main(capsys, "matrix", tmp_path / "D.npy", "--k", "5", "--seeds", "1", "2", "--subsample", "0.5")
    assert status == 0
    assert "±" in out and "seed 2:" in out and "subsample=0.5" in out


def test_bad_input_exits_2_with_one_line(tmp_path):
    np.save(tmp_path / "rect.npy", np.zeros((3, 4), np.float32))
    _assert_one_line_error(_run("matrix", tmp_path / "rect.npy", "--k", "2"), "error")  # library ValueError


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["matrix", "{dir}/D.npy", "--k", "7"], "k"),  # k > N
        (["matrix", "{dir}/missing.npy", "--k", "2"], "missing.npy"),
        (["matrix", "{dir}/D.npy", "--k", "0"], "--k"),
        (["matrix", "{dir}/junk.npy", "--k", "2"], "junk.npy"),
        (["elbow", "{dir}/D.npy", "--k", "2:x"], "k spec"),
        (["elbow", "{dir}/D.npy", "--k", "5:2"], "k spec"),
        (["elbow", "{dir}/D.npy", "--k", "1:3", "--plot", "{dir}/p.unknownformat"], "unsupported"),
        (["images", "{dir}/nowhere", "--k", "2", "--weights", "random"], "nowhere"),
        (["images", "{dir}", "--k", "2", "--weights", "random"], "no images"),
        (["shapes", "{dir}", "--k", "2"], "junk.npy"),
        (["matrix", "{dir}/D.npy", "--k", "2", "--subsample", "1.5"], "subsample"),
        (["matrix", "{dir}/D.npy", "--k", "2", "--device", "nonsense"], "device"),
    ],
)
def test_bad_input_in_process(tmp_path, capsys, argv, fragment):
    # The same error path as the subprocess test above, in-process so that many cases stay fast.
    D, _ = _two_clusters()
    np.save(tmp_path / "D.npy", D)
    (tmp_path / "junk.npy").write_bytes(b"junk")
    status, _, err = _main(capsys, *[a.format(dir=tmp_path) for a in argv])
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and fragment in err, err


def test_parse_k_spec():
    assert parse_k_spec("2:10:2") == [2, 4, 6, 8, 10]
    assert parse_k_spec("3:5") == [3, 4, 5]
    assert parse_k_spec("2,5,9") == [2, 5, 9]
    assert parse_k_spec("7") == [7]


def test_elbow_writes_plot_and_curve(tmp_path, capsys):
    from dispersion_score.score import dispersion_score

    rng = np.random.default_rng(1)
    points = np.concatenate([rng.normal(size=(10, 2)), rng.normal(size=(10, 2)) + 20])
    D = ((points[:, None] - points[None]) ** 2).sum(-1).astype(np.float32)
    np.save(tmp_path / "D.npy", D)
    proc = _run("elbow", tmp_path / "D.npy", "--k", "1:5:2", "--plot", tmp_path / "plots" / "elbow.png", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)["result"]
    assert result["ks"] == [1, 3, 5]
    expected = [dispersion_score(D, k, seed=0).ds for k in (1, 3, 5)]
    assert result["ds"] == pytest.approx(expected, rel=1e-6)
    png = (tmp_path / "plots" / "elbow.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["elbow.png"]

    status, out, _ = _main(capsys, "elbow", tmp_path / "D.npy", "--k", "2,4")
    assert status == 0
    assert len([line for line in out.splitlines() if line.strip().startswith(("2 ", "4 "))]) == 2


def _write_pngs(directory, n: int) -> list:
    rng = np.random.default_rng(0)
    directory.mkdir()
    paths = []
    for i in range(n):
        array = rng.integers(0, 256, size=(32, 32, 4), dtype=np.uint8)
        paths.append(directory / f"img_{i}.png")
        Image.fromarray(array).save(paths[-1])
    (directory / "readme.txt").write_text("not an image")
    return paths


def test_images_with_random_weights_matches_library(tmp_path):
    from dispersion_score.features import feature_matrix
    from dispersion_score.perceptual import perceptual_features
    from dispersion_score.score import dispersion_score

    paths = _write_pngs(tmp_path / "imgs", 2)
    proc = _run(
        "images",
        tmp_path / "imgs",
        "--k",
        "2",
        "--weights",
        "random",
        "--device",
        "cpu",
        "--json",
        "--save-matrix",
        tmp_path / "D.npy",
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["settings"]["features"] == "vgg16_relu3_3_channelmax[random-weights]"
    assert document["settings"]["files"] == ["img_0.png", "img_1.png"]

    D = feature_matrix(perceptual_features(paths, weights="random"))
    np.testing.assert_allclose(np.load(tmp_path / "D.npy"), D, rtol=1e-5, atol=1e-7)
    assert document["result"]["ds"] == pytest.approx(dispersion_score(D, 2).ds, rel=1e-5)


def test_images_without_imagenet_weights_explains(tmp_path, capsys, monkeypatch):
    _write_pngs(tmp_path / "imgs", 1)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    status, _, err = _main(capsys, "images", tmp_path / "imgs", "--k", "1")
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "vgg16-397923af.pth" in err and "--weights" in err


def test_shapes_directory_matches_library(tmp_path, capsys):
    from dispersion_score.chamfer import chamfer_matrix
    from dispersion_score.score import dispersion_score
    from dispersion_score.shapes_io import list_shape_files, load_shapes

    shapes = tmp_path / "shapes"
    shapes.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        sphere = rng.normal(size=(500, 3))
        np.save(shapes / f"sphere_{i}.npy", sphere / np.linalg.norm(sphere, axis=1, keepdims=True))
        trimesh.creation.box(extents=(1.0, 1.0, 1.0 + 0.1 * i)).export(shapes / f"box_{i}.obj")

    proc = _run(
        "shapes", shapes, "--k", "2", "--points", "200", "--seed", "3", "--json", "--save-matrix", tmp_path / "C.npy"
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["settings"]["files"] == ["box_0.obj", "box_1.obj", "sphere_0.npy", "sphere_1.npy"]
    assert document["settings"]["points"] == 200 and document["settings"]["sample_seed"] == 3

    clouds = load_shapes(list_shape_files(shapes), num_points=200, seed=3)
    C = chamfer_matrix(clouds, device="cpu")
    np.testing.assert_allclose(np.load(tmp_path / "C.npy"), C, rtol=1e-5, atol=1e-7)
    assert document["result"]["ds"] == pytest.approx(dispersion_score(C, 2).ds, rel=1e-5)
    labels = document["result"]["labels"]
    assert labels[0] == labels[1] != labels[2] == labels[3], "boxes and spheres form the two clusters"

    status, out, _ = _main(capsys, "shapes", shapes, "--k", "2", "--points", "100")
    assert status == 0
    assert "4 shapes" in out and "DS = " in out


@pytest.mark.cuda
def test_matrix_on_cuda(tmp_path):
    D, ds = _two_clusters()
    np.save(tmp_path / "D.npy", D)
    proc = _run("matrix", tmp_path / "D.npy", "--k", "2", "--device", "cuda", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"]["ds"] == pytest.approx(ds, rel=1e-6)


# --- issue 9: what a scan counts, subsample sizes, empty files, huge k ranges, float32 overflow ------------


def test_shapes_twice_with_the_matrix_saved_in_the_input_folder(tmp_path, capsys):
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        np.save(shapes / f"s{i}.npy", rng.normal(size=(60, 3)) * (1 + i))
    (shapes / "notes.md").write_text("how the shapes were made")
    # The first run used to write D.npy next to the shapes; the second then read it as a sixth shape.
    status, _, err = _main(capsys, "shapes", shapes, "--k", "2", "--points", "50", "--save-matrix", shapes / "D.npy")
    assert status == 2 and "inside the input directory" in err and len(err.strip().splitlines()) == 1
    assert not (shapes / "D.npy").exists()
    status, out, _ = _main(capsys, "shapes", shapes, "--k", "2", "--points", "50", "--save-matrix", tmp_path / "D.npy")
    skip_reason = "not " + "/".join(SHAPE_SUFFIXES)
    assert status == 0 and "5 shapes" in out and f"skipped 1 ({skip_reason}): notes.md" in out
    status, out, _ = _main(capsys, "shapes", shapes, "--k", "2", "--points", "50", "--json")
    document = json.loads(out)
    assert document["settings"]["n_items"] == 5 and document["settings"]["skipped"] == {skip_reason: ["notes.md"]}
    # A matrix left in the folder by an older version is refused as a shape, naming it, not counted.
    np.save(shapes / "D.npy", np.load(tmp_path / "D.npy"))
    status, _, err = _main(capsys, "shapes", shapes, "--k", "2", "--points", "50")
    assert status == 2 and "D.npy has shape (5, 5)" in err


def test_subsample_fraction_and_count_are_separate_options(tmp_path, capsys):
    rng = np.random.default_rng(2)
    points = rng.normal(size=(8, 2))
    D = ((points[:, None] - points[None]) ** 2).sum(-1).astype(np.float32)
    np.save(tmp_path / "D.npy", D)
    status, out, _ = _main(capsys, "matrix", tmp_path / "D.npy", "--k", "2", "--subsample", "1", "--json")
    whole = json.loads(out)["result"]
    assert status == 0 and whole["n"] == 8 and whole["ds"] > 0  # before: one item, DS 0.0
    status, _, err = _main(capsys, "matrix", tmp_path / "D.npy", "--k", "2", "--subsample-size", "1")
    assert status == 2 and "n = 1, the subsample size (of N = 8 items" in err  # before: "N = 1"
    status, _, err = _main(capsys, "matrix", tmp_path / "D.npy", "--k", "2", "--subsample", "5")
    assert status == 2 and "--subsample-size 5" in err
    status, out, _ = _main(capsys, "matrix", tmp_path / "D.npy", "--k", "2", "--subsample-size", "5", "--json")
    assert status == 0 and json.loads(out)["result"]["n"] == 5


def test_empty_matrix_file_is_one_line(tmp_path):
    (tmp_path / "D.npy").write_bytes(b"")
    for command in ("matrix", "elbow"):
        _assert_one_line_error(_run(command, tmp_path / "D.npy", "--k", "2"), "D.npy", "empty (0 bytes)")


def test_elbow_with_an_absurd_k_range_fails_fast(tmp_path, capsys):
    D, _ = _two_clusters()
    np.save(tmp_path / "D.npy", D)
    status, _, err = _main(capsys, "elbow", tmp_path / "D.npy", "--k", "1:1000000000000")
    assert status == 2 and "N = 6" in err and len(err.strip().splitlines()) == 1


def test_float64_matrix_beyond_float32_is_an_overflow(tmp_path, capsys):
    D = np.array([[0.0, 1e39], [1e39, 0.0]])
    np.save(tmp_path / "D.npy", D)
    status, _, err = _main(capsys, "matrix", tmp_path / "D.npy", "--k", "1")
    assert status == 2 and "overflows float32" in err and "non-finite" not in err


def test_device_defaults_to_the_cpu_like_the_library(tmp_path, capsys):
    D, _ = _two_clusters()
    np.save(tmp_path / "D.npy", D)
    status, out, _ = _main(capsys, "matrix", tmp_path / "D.npy", "--k", "2", "--json")
    assert status == 0 and json.loads(out)["settings"]["device"] == "cpu"
    from dispersion_score import resolve_device
    from models import engine

    assert engine.resolve_device is resolve_device  # one resolver: library, command line, trainer
    if not torch.cuda.is_available():
        message = "CUDA is not available on this machine"
        with pytest.raises(ValueError, match=message):
            resolve_device("cuda")
        status, _, err = _main(capsys, "matrix", tmp_path / "D.npy", "--k", "2", "--device", "cuda")
        assert status == 2 and message in err
