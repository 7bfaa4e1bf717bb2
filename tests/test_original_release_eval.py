"""The original release's networks through ``eval_scripts/eval_ds_synthetic.py --runs`` end to end (issue 15).

A miniature release in the original's formats (written by ``tests/original_release.py`` from facts of the
original code) is evaluated as a user would; the table row must hold the output DS of exactly the predictions
that the converted network makes, measured both with this project's protocol and with the original's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataset.locations import REPO_ROOT
from dataset.synthetic.dataset import CubeSphereDataset
from dispersion_score import chamfer_matrix, dispersion_score
from models.engine import predict_points
from models.original import load_original_run
from tests.original_release import write_original_release


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("release")
    release = write_original_release(root, runs=[("image", 1, 1), ("shape", 5, 2)])
    results = root / "results"
    command = [
        sys.executable, str(REPO_ROOT / "eval_scripts" / "eval_ds_synthetic.py"), "--preset", "quick",
        "--runs", str(release.log_root / "train_synthetic"), "--set", f"results_dir={results}", "--workers", "1",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    return results / "original_release", release


def test_one_row_per_original_run_and_the_ground_truth(evaluated: tuple[Path, object]) -> None:
    results, release = evaluated
    table = pd.read_csv(results / "ds_table.csv")
    outputs = table[table["measure"] == "output"].sort_values("kind")
    assert list(zip(outputs["kind"], outputs["s"], outputs["seed"], strict=True)) == [
        ("image_aug", 1, 1),
        ("shape_aug", 5, 2),
    ]
    assert (outputs["n"] == len(release.test_instances)).all()
    assert set(table["measure"]) == {"output", "gt_test"}  # input DS belongs to the preset's own evaluation
    long = pd.read_csv(results / "measurements.csv")
    assert set(long.loc[long["measure"] == "output", "predictor"]) == {"original_release"}
    assert long["ds_original_protocol"].dropna().gt(0).all()


def test_predictions_are_the_converted_networks_and_ds_is_recomputable(evaluated: tuple[Path, object]) -> None:
    results, release = evaluated
    long = pd.read_csv(results / "measurements.csv")
    row = long[(long["measure"] == "output") & (long["kind"] == "image_aug")].iloc[0]
    saved = np.load(results / row["predictions"])
    run_dir = next(path for path in release.runs if "image_aug" in path.name)
    model, run = load_original_run(run_dir)
    test_set = CubeSphereDataset(run.data_root(), run.test_data["index_file"], num_points=2500)
    np.testing.assert_allclose(saved, predict_points(model, test_set), atol=1e-6)
    ours = dispersion_score(chamfer_matrix(saved), int(row["k"]), method=row["method"], seed=int(row["ds_seed"]))
    assert ours.ds == pytest.approx(row["ds"], rel=1e-6)
    protocol = run.output_ds_protocol
    theirs = dispersion_score(chamfer_matrix(saved, normalize=False), protocol["k"], method="alternate", seed=1)
    assert theirs.ds == pytest.approx(row["ds_original_protocol"], rel=1e-6)
    record = json.loads((results / "records" / f"original_{run_dir.name}_output.json").read_text())
    assert record["settings"]["prediction_info"]["weights"] == "original release"
    assert record["settings"]["prediction_settings"]["original_run"]["provenance"]
