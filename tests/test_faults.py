"""Issue 22's faults, each instance with the input that failed: finished artefacts verified before reuse,
one writer per folder, no hangs, one-line errors, no silent acceptance, no orphaned jobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataset.locations import REPO_ROOT
from dispersion_score.artefact import FileRecord, mismatch, record_file
from dispersion_score.cli import main as ds_main


def _shape_folder(folder: Path, count: int = 6) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        np.save(folder / f"s{i}.npy", (rng.normal(size=(200, 3)) * (1 + 0.3 * i)).astype(np.float32))
    return folder


def _status(main, argv: list[str]) -> int:
    """Exit status of ``main(argv)``, whether it returns it or argparse raises SystemExit."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def _ds_line(capsys) -> str:
    return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("dispersion score"))


# --- kind 1: a finished artefact is verified before it is reused ------------------------------------------


def test_file_record_catches_truncation_header_shape_and_one_edited_entry(tmp_path: Path) -> None:
    path = tmp_path / "D.npy"
    values = np.arange(64, dtype=np.float32).reshape(8, 8)
    np.save(path, values)
    record = FileRecord.from_json(record_file(path).to_json())
    assert record == record_file(path) and mismatch(path, record) is None
    edited = values.copy()
    edited[3, 4] = 1e6
    np.save(path, edited)
    assert "CRC-32" in mismatch(path, record)
    np.save(path, values[:4, :4])
    assert "bytes" in mismatch(path, record)
    np.save(path, values.reshape(4, 16))  # same size, other shape
    assert "shape (4, 16)" in mismatch(path, record)
    np.save(path, values)
    data = bytearray(path.read_bytes())
    data[:6] = b"garbag"
    path.write_bytes(bytes(data))
    assert "header" in mismatch(path, record)
    assert "cannot be verified" in mismatch(path, None)


@pytest.mark.parametrize("damage", ["replaced_4x4", "row_zeroed_and_1e6", "header", "truncated"])
def test_cli_tiled_matrix_is_verified_before_reuse(tmp_path: Path, capsys, damage: str) -> None:
    shapes = _shape_folder(tmp_path / "s")
    out = tmp_path / "D.npy"
    argv = ["shapes", str(shapes), "--out", str(out), "--k", "2", "--points", "100", "--tiles", "2", "--no-progress"]
    assert ds_main(argv) == 0
    first = _ds_line(capsys)
    reference = np.load(out).copy()
    if damage == "replaced_4x4":
        np.save(out, np.random.default_rng(1).random((4, 4)).astype(np.float32))
    elif damage == "row_zeroed_and_1e6":
        edited = reference.copy()
        edited[0] = 0
        edited[1, 2] = 1e6
        np.save(out, edited)
    elif damage == "header":
        data = bytearray(out.read_bytes())
        data[10:40] = b"{'descr': '<f4', 'shape': (9,)"
        out.write_bytes(bytes(data))
    else:
        out.write_bytes(out.read_bytes()[:100])
    assert ds_main(argv) == 0
    assert _ds_line(capsys) == first  # recomputed, not read from the damaged file
    np.testing.assert_array_equal(np.load(out), reference)


# --- kind 6: the jobs of a local sweep end with their parent ----------------------------------------------

_SWEEP = """
import sys
from pathlib import Path
from dispersion_score.launch import Job, run_jobs

folder = Path(sys.argv[1])
job_code = (
    "import os, sys, time; from pathlib import Path; from dispersion_score.locks import directory_lock\\n"
    "run = Path(sys.argv[1])\\n"
    "with directory_lock(run, what='training run'):\\n"
    "    (run / 'pid').write_text(str(os.getpid()))\\n"
    "    time.sleep(float(sys.argv[2]))\\n"
    "    (run / 'done').write_text('ok')\\n"
)
jobs = [
    Job(f"run{i}", (sys.executable, "-c", job_code, str(folder / f"run{i}"), sys.argv[2]),
        folder / f"run{i}" / "done", folder / f"run{i}.log")
    for i in range(2)
]
report = run_jobs(jobs, workers=2, description="sweep")
print(report.summary())
sys.exit(0 if report.ok else 1)
"""


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped by init) counts as ended
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigkill_of_a_sweep_ends_its_jobs_and_a_rerun_resumes(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "sweep.py"
    script.write_text(_SWEEP)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path), "120"], env=env, stderr=subprocess.DEVNULL)
    pid_files = [tmp_path / f"run{i}" / "pid" for i in range(2)]
    deadline = time.monotonic() + 60
    while not all(p.is_file() and p.read_text() for p in pid_files):
        assert time.monotonic() < deadline and parent.poll() is None, "the sweep's jobs did not start"
        time.sleep(0.1)
    jobs = [int(p.read_text()) for p in pid_files]
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in jobs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in jobs), "jobs of the killed sweep are still running"
    rerun = subprocess.run([sys.executable, str(script), str(tmp_path), "0"], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert all((tmp_path / f"run{i}" / "done").is_file() for i in range(2))


# --- kind 2: one writer per folder --------------------------------------------------------------------------


def _held(folder: Path):
    from dispersion_score.locks import directory_lock

    return directory_lock(folder, what="test holder")


def test_second_tiled_matrix_writer_is_refused_naming_the_holder(tmp_path: Path, capsys) -> None:
    import os

    shapes = _shape_folder(tmp_path / "s")
    out = tmp_path / "D.npy"
    argv = ["shapes", str(shapes), "--out", str(out), "--k", "2", "--points", "100", "--tiles", "2", "--no-progress"]
    with _held(tmp_path / "D.npy.tiles"):
        assert ds_main(argv) != 0
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"pid {os.getpid()}" in error and "D.npy.tiles" in error
    assert not out.exists()
    assert ds_main(argv) == 0  # once the holder is gone


@pytest.mark.parametrize("builder", ["shapenet_standin", "render_yaw", "synthetic", "download"])
def test_second_builder_on_one_folder_is_refused_naming_the_holder(tmp_path: Path, builder: str) -> None:
    import os
    import subprocess
    import sys

    root, meshes = tmp_path / "root", tmp_path / "meshes"
    meshes.mkdir()
    command = {
        "shapenet_standin": ["-m", "dataset.shapenet.standin", "--root", str(root), "--per-category", "1",
                             "--categories", "chair", "--no-progress", "--workers", "1"],
        "render_yaw": ["-m", "dataset.shapenet.render", "--meshes", str(meshes), "--out", str(root), "--no-progress"],
        "synthetic": ["-m", "dataset.synthetic", "--root", str(root), "--no-progress"],
        "download": [str(REPO_ROOT / "download" / "download.py"), "data", "--root", str(tmp_path),
                     "--cache-dir", str(root), "--from-dir", str(tmp_path)],
    }[builder]  # fmt: skip
    if builder == "download":
        import zipfile

        archives = ("ShapeNetV1PointCloud", "ShapeNetV1Renderings", "cubesphere_1000", "ShapeNetV1RenderingAnglelimit")
        for name in archives:
            with zipfile.ZipFile(tmp_path / f"{name}.zip", "w") as handle:
                handle.writestr(f"{name}/a.txt", "x")
    with _held(root):
        result = subprocess.run(
            [sys.executable, *command], capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT,
        )  # fmt: skip
    error = result.stderr.strip().splitlines()
    assert result.returncode != 0 and f"in use by pid {os.getpid()}" in error[-1], result.stderr
    assert not (root / "manifest.json").exists()


@pytest.mark.parametrize("experiment", ["synthetic", "shapenet"])
def test_an_experiment_whose_data_root_is_in_use_ends_in_one_line(tmp_path: Path, experiment: str) -> None:
    """The builder's refusal (another process builds the same data) was followed by a RuntimeError traceback
    from the experiment command; now one more line names the build and the builder's status is the exit status."""
    import os
    import subprocess
    import sys

    import yaml

    root = tmp_path / "data"
    preset = {"synthetic": "synthetic", "shapenet": "more_imgs"}[experiment]
    config = tmp_path / "preset.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "inherit_from": str(REPO_ROOT / "configs" / "presets" / preset / "quick.yaml"),
                "train_overrides": [f"data.root={root}"],
                "runs_dir": str(tmp_path / "runs"),
                "results_dir": str(tmp_path / "results"),
            }
        )
    )
    module = {"synthetic": "experiments.synthetic", "shapenet": "experiments.shapenet"}[experiment]
    argv = [sys.executable, "-m", module, "--config", str(config), "--workers", "1"]
    if experiment == "shapenet":
        argv = [*argv[:3], "--experiments", "more_imgs", *argv[3:]]
    with _held(root):
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            cwd=REPO_ROOT,
        )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert f"in use by pid {os.getpid()}" in result.stderr
    assert lines[-1].startswith("error: building the ") and "(exit 2;" in lines[-1], lines[-1]
    assert not list(tmp_path.rglob("metrics.jsonl"))  # nothing trained


# --- kind 3: no hang, no unbounded memory ---------------------------------------------------------------


def test_a_worker_that_cannot_start_stops_the_pool_with_its_error() -> None:
    from dataset.build.worker_pool import WorkerStartError, imap_unordered

    # int("not a number") raises in every worker's initializer: the plain Pool restarted them forever.
    with pytest.raises(WorkerStartError, match="could not start: ValueError: invalid literal"):
        list(imap_unordered(abs, range(8), workers=2, initializer=int, initargs=("not a number",)))


def test_standin_spp_3_stops_at_once_naming_the_option(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "dataset.shapenet.standin", "--root", str(tmp_path / "r"), "--spp", "3",
         "--per-category", "1", "--categories", "chair", "--no-progress"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--spp" in result.stderr
    assert not (tmp_path / "r").exists()
    from dataset.shapenet.standin.build import BuildConfig

    with pytest.raises(ValueError, match="samples_per_pixel must be a positive square"):
        BuildConfig(root=tmp_path / "r", samples_per_pixel=3)


@pytest.mark.parametrize("seconds", ["nan", "inf", "-1", "0", "1e9"])
def test_estimate_refuses_non_finite_or_out_of_range_seconds(seconds: str, capsys) -> None:
    assert _status(ds_main, ["estimate", "--n", "100", "--seconds", seconds]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "seconds" in error


def test_tile_count_of_the_estimate_is_closed_form_and_equals_the_plan() -> None:
    from dispersion_score._tile_estimate import estimate_chamfer
    from dispersion_score._tile_plan import count_tiles, plan_tiles

    for n_a in range(1, 40):
        for n_b, symmetric in ((n_a, True), (n_a + 3, False)):
            for tile_size, side in ((4, 1), (5, 2), (7, 3), (64, 8)):
                plan = {"symmetric": symmetric, "tile_size": tile_size}
                tiles = plan_tiles([n_a], [n_b], **plan, block_side=lambda u, v, s=side: s)
                counted = count_tiles(n_a, n_b, symmetric=symmetric, tile_size=tile_size, block_side=side)
                assert counted == (len(tiles), sum(t.pairs for t in tiles)), (n_a, n_b, tile_size, side)
    huge = estimate_chamfer(10**9, points=16, tile_size=1, backend="torch", seconds=0.01)  # 5·10¹⁷ tiles
    assert huge.pairs == 10**9 * (10**9 - 1) // 2


# --- kind 5: wrong input is not accepted silently -------------------------------------------------------


def _zero_area_obj(folder: Path) -> None:
    folder.mkdir(parents=True)
    # Every triangle degenerate: collinear or repeated vertices, so no surface at all.
    (folder / "model.obj").write_text("v 0 0 0\nv 0.1 0 0\nv 0.2 0 0\nv 0 0.1 0\nf 1 2 3\nf 1 1 4\nf 4 4 4\n")


def test_render_yaw_counts_a_blank_render_as_a_failure_and_all_failed_exits_non_zero(tmp_path: Path) -> None:
    from benchmarks._meshes import write_mesh_tree
    from dataset.shapenet.render.yaw_sets import main as render_main
    from dataset.shapenet.render.yaw_sets import set_name

    chair = "03001627"
    meshes = tmp_path / "ShapeNetCore.v1"
    write_mesh_tree(meshes, 2, synsets=(chair,))
    flat = "f" * 32
    _zero_area_obj(meshes / chair / flat)
    out = tmp_path / "out"
    argv = ["--meshes", str(meshes), "--out", str(out), "--categories", "chair", "--yaw", "0", "--image-size", "32",
            "--spp", "1", "--workers", "1", "--no-progress"]  # fmt: skip
    assert render_main(argv) == 0  # two good shapes rendered, the flat one failed and named
    assert f"{chair}/{flat}" in (out / "render_yaw.log").read_text() and "blank" in (out / "render_yaw.log").read_text()
    assert not list((out / set_name(0) / "image" / chair / flat).rglob("*.png"))
    only_flat = tmp_path / "only" / "ShapeNetCore.v1"
    _zero_area_obj(only_flat / chair / flat)
    assert render_main([*argv[:1], str(only_flat), "--out", str(tmp_path / "out2"), *argv[4:]]) == 1


def test_render_yaw_negative_seed_is_refused(tmp_path: Path, capsys) -> None:
    from dataset.shapenet.render.yaw_sets import main as render_main

    assert _status(render_main, ["--meshes", str(tmp_path), "--out", str(tmp_path / "o"), "--seed", "-1"]) == 2
    assert "--seed" in capsys.readouterr().err


def test_diagnose_refuses_an_output_inside_an_input_folder(tmp_path: Path, capsys) -> None:
    predictions, ground_truth = _shape_folder(tmp_path / "pred"), _shape_folder(tmp_path / "gt")
    before = sorted(p.name for p in ground_truth.iterdir())
    for option, output in (("--out", ground_truth / "diag.ply"), ("--out", predictions / "x" / ".." / "d.obj")):
        argv = ["diagnose", "--predictions", str(predictions), "--ground-truth", str(ground_truth), "--k", "2",
                "--points", "50", option, str(output)]  # fmt: skip
        assert _status(ds_main, argv) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "inside the input directory" in error and output.name in error
    assert sorted(p.name for p in ground_truth.iterdir()) == before


# --- kind 4: every entry point answers bad paths and numbers with one line and a non-zero exit -------------

# The same bad inputs for every entry point: a folder option given a file, a path under a file, a place that
# cannot be created (/proc refuses new entries even to root), and numbers that are negative, NaN or infinite.
BAD_PATHS = ("file", "under_file", "uncreatable")
BAD_NUMBERS = ("-1", "nan", "inf")


def _bad_path(kind: str, tmp_path: Path) -> Path:
    file = tmp_path / "a_file.txt"
    file.write_text("not a folder\n")
    return {"file": file, "under_file": file / "sub", "uncreatable": Path("/proc/dispersion-score-test/sub")}[kind]


def _script(relative: str):  # noqa: ANN202 - the module of a script that is not in a package
    import importlib.util
    import sys

    name = "_script_" + relative.replace("/", "_").removesuffix(".py")
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relative)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def _entry_points(tmp_path: Path) -> dict[str, tuple]:
    """name → (main, argv with the bad path, argv with the bad number, option named in the message); the folder
    arguments are otherwise valid, so that only the bad value can be the culprit."""
    from benchmarks.gpu import run as gpu_run
    from dataset.shapenet import dataset as shapenet
    from dataset.shapenet.render import yaw_sets as render_yaw
    from dataset.shapenet.standin import build as shapenet_standin
    from dataset.synthetic import build as synthetic
    from experiments import cli as experiments_cli
    from experiments import learning_curves

    download, train = _script("download/download.py"), _script("train_scripts/train.py")
    sheet = _script("plot_scripts/yaw_contact_sheet.py")
    shapes = tmp_path / "shapes"
    if not shapes.exists():
        _shape_folder(shapes, 3)
    matrix = tmp_path / "D.npy"
    np.save(matrix, np.ones((3, 3), dtype=np.float32) - np.eye(3, dtype=np.float32))
    config = str(REPO_ROOT / "configs" / "training" / "synthetic_quick.yaml")

    def experiment(argv: list[str]) -> int:
        return experiments_cli.main_evaluate("synthetic", argv)

    return {
        "shapes": (ds_main, lambda p: ["shapes", p, "--k", "1"], lambda n: ["shapes", str(shapes), "--k", "1",
                   "--points", n], "--points"),
        "shapes --out": (ds_main, lambda p: ["shapes", str(shapes), "--k", "1", "--tiles", "2", "--out",
                         f"{p}/D.npy"], None, None),
        "images": (ds_main, lambda p: ["images", p, "--k", "1"], lambda n: ["images", str(shapes), "--k", "1",
                   "--batch-size", n], "--batch-size"),
        "matrix": (ds_main, lambda p: ["matrix", p, "--k", "1"], lambda n: ["matrix", str(matrix), "--k", n], "--k"),
        "elbow": (ds_main, lambda p: ["elbow", p, "--k", "1:2"], lambda n: ["elbow", str(matrix), "--k", "1:2",
                  "--seed", n], "--seed"),
        "estimate": (ds_main, lambda p: ["estimate", p], lambda n: ["estimate", "--n", "5", "--seconds", n],
                     "--seconds"),
        "diagnose": (ds_main, lambda p: ["diagnose", "--predictions", p, "--ground-truth", str(shapes), "--k", "1"],
                     lambda n: ["diagnose", "--predictions", str(shapes), "--ground-truth", str(shapes), "--k", "1",
                                "--points", n], "--points"),
        "dataset.synthetic": (synthetic.main, lambda p: ["--root", p, "--no-progress"],
                              lambda n: ["--root", str(tmp_path / "syn"), "--points", n], "--points"),
        "dataset.shapenet.standin": (shapenet_standin.main, lambda p: ["--root", p, "--no-progress"],
                                     lambda n: ["--root", str(tmp_path / "si"), "--per-category", n],
                                     "--per-category"),
        "dataset.shapenet.render": (render_yaw.main, lambda p: ["--meshes", str(shapes), "--out", p, "--no-progress"],
                               lambda n: ["--meshes", str(shapes), "--out", str(tmp_path / "yaw"), "--max-draws", n],
                               "--max-draws"),
        "dataset.shapenet": (shapenet.main, lambda p: ["--summary", "--root", p, "--no-progress"], None, None),
        "download": (download.main, lambda p: ["data", "--root", p, "--dry-run"], None, None),
        "download --cache-dir": (download.main, lambda p: ["data", "--root", str(tmp_path), "--cache-dir", p,
                                 "--from-dir", str(tmp_path)], None, None),
        "experiments": (experiment, lambda p: ["--config", p], lambda n: ["--config", config, "--seeds", n],
                        "--seeds"),
        "experiments --workers": (experiment, None, lambda n: ["--config", config, "--workers", n], "--workers"),
        "train_scripts/train.py": (train.main, lambda p: ["--config", config, "--out", p],
                                   lambda n: ["--config", config, "--out", str(tmp_path / "run"), "--set",
                                              f"train.epochs={n}"], "train.epochs"),
        "plot_scripts/yaw_contact_sheet.py": (sheet.main, lambda p: [p, str(tmp_path / "sheet.png")],
                                              lambda n: [str(tmp_path), str(tmp_path / "s.png"), "--cell", n],
                                              "--cell"),
        "experiments.learning_curves": (learning_curves.main, lambda p: ["synthetic", "--preset", "quick",
                                         "--figure", f"{p}/curves.png"], None, None),
        "benchmarks.gpu.run": (gpu_run.main, lambda p: ["--dry", "--out", p], None, None),
    }  # fmt: skip


ENTRY_POINTS = ("shapes", "shapes --out", "images", "matrix", "elbow", "estimate", "diagnose", "dataset.synthetic",
                "dataset.shapenet.standin", "dataset.shapenet.render", "dataset.shapenet", "download",
                "download --cache-dir", "experiments", "experiments --workers", "train_scripts/train.py",
                "plot_scripts/yaw_contact_sheet.py", "experiments.learning_curves", "benchmarks.gpu.run")  # fmt: skip


def _one_line_error(capsys, main, argv: list[str]) -> str:
    status = _status(main, argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert status != 0, f"exit 0 for {argv}: {captured.out[-300:]}"
    assert len(lines) == 1 and "Traceback" not in captured.err, f"{argv}: not one line:\n{captured.err}"
    return lines[0]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_answers_bad_paths_and_numbers_in_one_line(entry: str, tmp_path: Path, capsys) -> None:
    main, with_path, with_number, option = _entry_points(tmp_path)[entry]
    if with_path is not None:
        for kind in BAD_PATHS:
            bad = _bad_path(kind, tmp_path)
            line = _one_line_error(capsys, main, with_path(str(bad)))
            named = {str(bad), str(bad.parent), "a_file.txt", "/proc/dispersion-score-test"}
            assert any(name in line for name in named), f"{entry} {kind}: {line}"
    if with_number is not None:
        for number in BAD_NUMBERS:
            line = _one_line_error(capsys, main, with_number(number))
            assert option in line, f"{entry} {number}: {line}"


def test_render_yaw_rerun_renders_again_a_render_edited_since_it_was_recorded(tmp_path: Path) -> None:
    from benchmarks._meshes import write_mesh_tree
    from dataset.shapenet.render.yaw_sets import main as render_main
    from dataset.shapenet.render.yaw_sets import set_name

    meshes = tmp_path / "ShapeNetCore.v1"
    write_mesh_tree(meshes, 2, synsets=("03001627",))
    out = tmp_path / "out"
    argv = ["--meshes", str(meshes), "--out", str(out), "--categories", "chair", "--yaw", "0", "--image-size", "32",
            "--spp", "1", "--workers", "1", "--no-progress"]  # fmt: skip
    assert render_main(argv) == 0
    first, second = sorted((out / set_name(0)).rglob("00.png"))[:2]
    original = first.read_bytes()
    first.write_bytes(second.read_bytes())  # a well-formed render, but not this shape's
    assert render_main(argv) == 0
    assert first.read_bytes() == original
    assert render_main(["--out", str(out), "--yaw", "0", "--verify"]) == 0


def test_repeated_kmedoids_seeds_are_refused(tmp_path: Path, capsys) -> None:
    shapes = _shape_folder(tmp_path / "s")
    assert ds_main(["shapes", str(shapes), "--k", "2", "--points", "50", "--seeds", "1", "1"]) == 2
    assert "--seeds 1 1: a seed is repeated" in capsys.readouterr().err


_POOL = """
import os, sys, time
from pathlib import Path
from dataset.build.worker_pool import imap_unordered


def work(index):
    (Path(sys.argv[1]) / f"worker{os.getpid()}").write_text(str(os.getpid()))
    time.sleep(120)
    return index


if __name__ == "__main__":
    list(imap_unordered(work, range(2), workers=2, initializer=int, initargs=("0",)))
"""


def test_sigkill_of_a_build_ends_its_pool_workers(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "pool.py"
    script.write_text(_POOL)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("worker*"))) < 2:
        assert time.monotonic() < deadline and parent.poll() is None, "the workers did not start"
        time.sleep(0.1)
    workers = [int(p.read_text()) for p in tmp_path.glob("worker*")]
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "pool workers of the killed build are still running"


def test_render_yaw_refuses_an_output_inside_its_mesh_folder(tmp_path: Path, capsys) -> None:
    from dataset.shapenet.render.yaw_sets import main as render_main

    meshes = tmp_path / "ShapeNetCore.v1"
    meshes.mkdir()
    for out in (meshes, meshes / "renders"):
        assert render_main(["--meshes", str(meshes), "--out", str(out), "--no-progress"]) == 2
        assert "inside the mesh folder" in capsys.readouterr().err
    assert list(meshes.iterdir()) == []


def test_a_non_finite_float_setting_is_named_as_such() -> None:
    from models.config import load_config

    config = REPO_ROOT / "configs" / "training" / "synthetic_quick.yaml"
    with pytest.raises(ValueError, match="train.lr: expected a finite float, got nan"):
        load_config(config, ["train.lr=nan"])


def test_a_tile_plan_too_large_to_list_is_refused_before_listing(tmp_path: Path, monkeypatch) -> None:
    from dispersion_score import chamfer_matrix, tiles

    monkeypatch.setattr(tiles, "MAX_TILES", 20)  # the same check as 10⁶ tiles of a large N, on a small one
    clouds = np.random.default_rng(0).normal(size=(12, 30, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"tile_size 1 \(--tiles\) splits this 12 x 12 matrix into up to"):
        chamfer_matrix(clouds, out=tmp_path / "D.npy", tile_size=1)
    assert not (tmp_path / "D.npy").exists()
    chamfer_matrix(clouds, out=tmp_path / "D.npy", tile_size=4)  # a plan that fits is computed
