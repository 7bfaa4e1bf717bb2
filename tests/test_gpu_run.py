"""The prepared GPU acceptance run (benchmarks/gpu, docs/gpu.md), checked here on the CPU in its dry mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.gpu import prepare
from benchmarks.gpu.run import JSON_NAME, LOG_NAME, STEPS, run
from benchmarks.gpu.step_compute import cdist_min_matrix
from benchmarks.gpu.steps import INJECTED_FAILURE
from dataset.locations import REPO_ROOT

# Figures each step must record (the README and docs/gpu.md quote them).
REQUIRED_FIGURES = {
    "environment": {"source_commit", "python", "torch", "cuda_available", "cpus", "packages"},
    "pytest_cuda": {"command", "counts", "failures"},
    "chamfer": {"library_device_pairs_per_s", "baseline_cdist_min_pairs_per_s", "cpu_pairs_per_s",
                "library_vs_cdist_min", "library_device_vs_cpu", "max_abs_difference_vs_cpu"},
    "vgg": {"weights", "feature_shape"},
    "kmedoids": {"device_seconds", "cpu_seconds_1_thread", "device_inertia", "cpu_inertia"},
    "train_quick": {"cpu_train_loss", "max_relative_loss_difference", "loss_rtol"},
    "train_paper_synthetic": {"ms_per_step", "projected_sweep_hours_one_gpu", "sweep_runs"},
    "train_paper_shapenet": {"ms_per_step_with_loader", "projected_sweep_hours_one_gpu", "standin_training_items",
                             "ms_per_step_resident_batch_psgn"},
    "tiles": {"bit_identical", "max_abs_difference", "launch"},
}  # fmt: skip


def _naive_chamfer(a: np.ndarray, b: np.ndarray) -> float:
    squared = ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(axis=2)
    return squared.min(axis=1).mean() + squared.min(axis=0).mean()


def test_cdist_baseline_matches_a_naive_float64_chamfer() -> None:
    clouds = np.random.default_rng(0).standard_normal((5, 30, 3)).astype(np.float32)
    got = cdist_min_matrix(torch.from_numpy(clouds), batch=2)
    expected = np.array([[_naive_chamfer(a, b) if i != j else 0.0 for j, b in enumerate(clouds)]
                         for i, a in enumerate(clouds)])  # fmt: skip
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.array_equal(got, got.T)


@pytest.mark.slow
def test_dry_run_records_every_step_and_one_failure_loses_nothing_else(tmp_path: Path) -> None:
    """The whole dry run in a subprocess, as on the GPU machine, with one step made to fail in the middle."""
    env = {**os.environ, INJECTED_FAILURE: "kmedoids", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu.run", "--dry", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one step failed
    document = json.loads((tmp_path / JSON_NAME).read_text())
    assert document["format"] == "dispersion-score-gpu-run/1" and document["mode"] == "dry"
    assert {"started", "finished", "seconds", "sizes", "summary"} <= set(document)
    assert list(document["steps"]) == [step.name for step in STEPS]
    for name, entry in document["steps"].items():
        assert {"status", "seconds", "budget_s", "figures"} <= set(entry), name
        if name == "kmedoids":
            assert entry["status"] == "failed"
            assert f"{INJECTED_FAILURE}=kmedoids" in entry["error"]
            continue
        assert entry["status"] in ("passed", "skipped"), (name, entry)
        if entry["status"] == "skipped":
            assert entry["reason"], name
        assert REQUIRED_FIGURES[name] <= set(entry["figures"]), (name, sorted(entry["figures"]))
    # Without CUDA the CUDA tests are collected and skipped, and the step says so.
    if not torch.cuda.is_available():
        assert document["steps"]["pytest_cuda"]["status"] == "skipped"
        assert "no CUDA device" in document["steps"]["pytest_cuda"]["reason"]
    assert document["steps"]["tiles"]["figures"]["bit_identical"] is True
    log = (tmp_path / LOG_NAME).read_text()
    assert "===== tiles: passed" in log and "failure injected" in log
    assert "chamfer: passed" in proc.stdout


def test_a_step_over_its_budget_is_killed_and_reported(tmp_path: Path) -> None:
    document = run(tmp_path, dry=True, only=("environment",), budgets={"environment": 0.5})
    entry = document["steps"]["environment"]
    assert entry["status"] == "failed" and "ran out of its 0.5 s budget" in entry["error"]
    assert json.loads((tmp_path / JSON_NAME).read_text())["steps"]["environment"]["status"] == "failed"


def test_steps_past_the_deadline_are_skipped_with_the_reason(tmp_path: Path) -> None:
    document = run(tmp_path, dry=True, only=("vgg", "tiles"), deadline=5.0)
    for name in ("vgg", "tiles"):
        assert document["steps"][name]["status"] == "skipped"
        assert "deadline" in document["steps"][name]["reason"]


def test_unknown_step_names_are_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu.run", "--dry", "--out", str(tmp_path), "--only", "chamfr"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "unknown step(s) ['chamfr']" in proc.stderr


def test_full_budgets_fit_one_device_call() -> None:
    """The device runs one command for at most 600 s; the steps' budgets leave time to install the wheels."""
    assert sum(step.seconds for step in STEPS) <= 540


def _wheel(folder: Path, name: str, requires: list[str]) -> Path:
    path = folder / f"{name}-1.0-py3-none-any.whl"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0"] + [f"Requires-Dist: {r}" for r in requires]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}-1.0.dist-info/METADATA", "\n".join(lines) + "\n")
    return path


def test_wheel_requirements_must_be_carried_or_on_the_device(tmp_path: Path) -> None:
    ok = _wheel(tmp_path, "trimesh", ["numpy>=1.21", "scipy; extra == 'easy'"])
    needs_carried = _wheel(tmp_path, "embreex", ["trimesh", "numpy"])
    assert prepare.missing_requirements([ok, needs_carried]) == []
    lacking = _wheel(tmp_path, "meshy", ["rtree (>=1.0)", "Pillow"])
    assert prepare.missing_requirements([lacking]) == [f"{lacking.name} needs rtree"]


def test_travelling_bytes_counts_tracked_and_unignored_files(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("ignored/\n")  # 9 bytes, untracked
    (tmp_path / "tracked.txt").write_bytes(b"x" * 100)
    git("add", "tracked.txt")
    (tmp_path / "loose.txt").write_bytes(b"y" * 7)
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "big.bin").write_bytes(b"z" * 1000)
    assert prepare.travelling_bytes(tmp_path) == {"tracked": 100, "untracked": 7 + 9}


def test_the_commit_travels_with_the_wheels_and_says_dirty(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (repo / "a.txt").write_text("1")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    head = git("rev-parse", "HEAD")
    assert prepare.write_commit(tmp_path / "wheels", repo) == head
    assert (tmp_path / "wheels" / prepare.COMMIT_FILE).read_text() == head + "\n"
    (repo / "a.txt").write_text("2")
    assert prepare.write_commit(tmp_path / "wheels", repo) == head + "-dirty"
