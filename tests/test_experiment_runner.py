"""The generic experiment runner on a tiny fake experiment declared here: two axes, a predictor that writes
known clouds, a dataset whose clouds are known; the table is checked against values computed by hand.

Clouds: A = {(±1, 0, 0)} and B = {(0, ±1, 0)}, already unit-ball normalised. Chamfer(A, B): every point is at
squared distance 2 from its nearest point of the other cloud, so CD = 2 + 2 = 4; CD(A, A) = 0. With k = 1 the
medoid of [A, A, B, B] leaves two items at distance 4: inertia 8, DS 8 / 4 = 2.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dataset.base import DatasetBase
from dataset.registry import SplitRequest, register_dataset, unregister_dataset
from experiments import runner
from experiments.config import Preset, load_preset
from experiments.declaration import Axis, Experiment, InputMeasure, PredictedClouds, Target
from experiments.prediction_files import read_predictions
from experiments.registry import EXPERIMENTS, register_experiment

A = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]], dtype=np.float32)
B = np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]], dtype=np.float32)
SPLITS = {"train1": [A, A, B, B], "train2": [A, A, A, A], "test": [A, B, A, B]}


class KnownClouds(DatasetBase):
    def __init__(self, request: SplitRequest) -> None:
        self.clouds = SPLITS[request.index_file]

    def __len__(self) -> int:
        return len(self.clouds)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": torch.zeros(3, 32, 32), "points": torch.from_numpy(self.clouds[index]), "id": f"item{index}"}


@dataclass(frozen=True)
class KnownPredictor:
    """b = "x": every prediction is A (one shape: recognition); b = "y": the ground truth itself."""

    name: str = "known"
    trains: bool = False

    def targets(self, preset: Preset) -> list[Target]:
        return [Target(self.name, f"known_{run.name}", run.point, run.name) for run in preset.runs]

    def predict(self, preset: Preset, target: Target, *, device: str) -> PredictedClouds:
        clouds = [A] * 4 if target.point["b"] == "x" else SPLITS["test"]
        return PredictedClouds(np.stack(clouds), [f"item{i}" for i in range(4)], {"note": "known"}, {})


@pytest.fixture()
def preset(tmp_path: Path) -> Preset:
    register_dataset("known_clouds", KnownClouds)
    register_experiment(
        "fake",
        lambda: Experiment(
            name="fake",
            axes=(Axis("a", int, "training set", choices=(1, 2)), Axis("b", str, "predictor mode", choices=("x", "y"))),
            run_overrides=lambda point, preset: [f"data.train_file=train{point['a']}"],
            inputs=(InputMeasure("input_shape", ("a",)),),
            predictors=(lambda preset: KnownPredictor(),),
        ),
    )
    train_config = tmp_path / "train.yaml"
    train_config.write_text(
        yaml.safe_dump({"data": {"dataset": "known_clouds", "root": str(tmp_path), "test_file": "test"}})
    )
    document = {
        "experiment": "fake",
        "preset": "tiny",
        "train_config": str(train_config),
        "runs_dir": str(tmp_path / "runs"),
        "results_dir": str(tmp_path / "results"),
        "grid": {"a": [1, 2], "b": ["x", "y"]},
        "ds": {"k": 1, "shape_points": 2},
    }
    path = tmp_path / "fake.yaml"
    path.write_text(yaml.safe_dump(document))
    yield load_preset(path)
    EXPERIMENTS.pop("fake")
    unregister_dataset("known_clouds")


def _run(preset: Preset) -> pd.DataFrame:
    """The runner's steps in this process; the output jobs are those whose marker (the record) is missing."""
    runner.measure_inputs(preset)
    for job in runner.output_jobs(preset):
        if not job.done_marker.exists():
            runner.evaluate_target(preset, job.command[job.command.index("--target") + 1])
    return runner.tabulate(preset)


def test_table_of_a_fake_experiment_matches_hand_computed_values(preset: Preset) -> None:
    assert not runner.needs_training(preset)
    table = _run(preset)
    assert list(table.columns[:5]) == ["experiment", "a", "b", "predictor", "measure"]
    assert set(table["experiment"]) == {"fake"} and set(table["preset"]) == {"tiny"}
    rows = {
        (r.measure, r.a if pd.notna(r.a) else None, r.b if isinstance(r.b, str) else None): r
        for r in table.itertuples()
    }
    assert set(rows) == {
        ("gt_test", None, None),
        ("input_shape", 1, None),
        ("input_shape", 2, None),
        ("output", 1, "x"),
        ("output", 1, "y"),
        ("output", 2, "x"),
        ("output", 2, "y"),
    }
    assert rows[("input_shape", 1, None)].ds == pytest.approx(2.0)  # [A, A, B, B], k = 1
    assert rows[("input_shape", 2, None)].ds == pytest.approx(0.0)  # [A, A, A, A]
    assert rows[("gt_test", None, None)].ds == pytest.approx(2.0)  # [A, B, A, B]
    for a in (1, 2):
        x, y = rows[("output", a, "x")], rows[("output", a, "y")]
        assert x.ds == pytest.approx(0.0) and x.inertia == pytest.approx(0.0)  # four copies of A
        assert x.chamfer == pytest.approx(2.0)  # (0 + 4 + 0 + 4) / 4
        assert x.fscore == pytest.approx(0.5) and x.fscore_atlasnet == pytest.approx(0.5)
        assert y.ds == pytest.approx(2.0) and y.chamfer == pytest.approx(0.0) and y.fscore == pytest.approx(1.0)
        assert x.predictor == "known" and x.n == 4 and x.k == 1
    matrix = np.load(preset.results_dir / rows[("output", 1, "y")].matrix)
    np.testing.assert_allclose(matrix, 4.0 * (1 - np.eye(4)) * np.array([[0, 1, 0, 1], [1, 0, 1, 0]] * 2), atol=1e-6)
    saved = read_predictions(preset.results_dir, "known_1_x")
    assert saved.info["predictor"] == "known" and saved.info["ids"] == ["item0", "item1", "item2", "item3"]
    np.testing.assert_array_equal(saved.points, np.stack([A] * 4))
    assert (preset.results_dir / runner.LONG_TABLE).is_file()


def test_rerun_skips_everything_and_a_prediction_is_made_once(preset: Preset) -> None:
    _run(preset)
    files = sorted((preset.results_dir / "records").glob("*.json")) + sorted(
        (preset.results_dir / "predictions").glob("*")
    )
    before = {path: path.stat().st_mtime_ns for path in files}
    (preset.results_dir / "records" / "known_1_x_output.json").unlink()  # one measurement lost
    _run(preset)
    after = {path: path.stat().st_mtime_ns for path in files if path.exists()}
    changed = [path.name for path in files if after.get(path) != before[path]]
    assert changed == ["known_1_x_output.json"]  # re-measured from the kept prediction file, not re-predicted


def test_ds_of_another_kmedoids_revision_is_measured_again(preset: Preset, monkeypatch: pytest.MonkeyPatch) -> None:
    """A k-medoids change (revision 2: swaps in a shuffled order) gives other DS values for the same matrix:
    records and DS-vs-k curves stored by an earlier revision, or before revisions were stored, are measured
    again on a rerun; predictions are kept."""
    preset.config["ds"]["k_curve"] = [1, 2]
    monkeypatch.setattr(runner, "KMEDOIDS_REVISION", 1)
    first = _run(preset)
    records = sorted((preset.results_dir / "records").glob("*.json"))
    curves = sorted((preset.results_dir / "curves").glob("*.json"))
    kept = sorted((preset.results_dir / "predictions").glob("*"))
    assert records and curves and kept
    before = {path: path.stat().st_mtime_ns for path in [*records, *curves, *kept]}
    monkeypatch.setattr(runner, "KMEDOIDS_REVISION", 2)
    second = _run(preset)
    assert all(path.stat().st_mtime_ns != before[path] for path in [*records, *curves])
    assert all(path.stat().st_mtime_ns == before[path] for path in kept)
    assert all(json.loads(path.read_text())["result"]["kmedoids_revision"] == 2 for path in records)
    pd.testing.assert_frame_equal(
        first.drop(columns=["device", "kmedoids_revision"]), second.drop(columns=["device", "kmedoids_revision"])
    )
    # A record written before revisions were stored counts as revision 1.
    old = records[0]
    document = json.loads(old.read_text())
    del document["result"]["kmedoids_revision"]
    old.write_text(json.dumps(document))
    assert runner.record_mismatch(old) is None and "kmedoids_revision is None" in runner.record_mismatch(
        old, {"kmedoids_revision": 2}
    )
    assert runner._needs_measuring(old) and not runner._needs_measuring(records[1])


def test_ds_vs_k_curves_and_input_subsample(preset: Preset) -> None:
    preset.config["ds"]["k_curve"] = [1, 2, 3, 4, 9]
    table = _run(preset)
    curves = pd.read_csv(preset.results_dir / runner.DS_VS_K_TABLE)
    first = curves[(curves["measure"] == "input_shape") & (curves["a"] == 1)].set_index("k")["ds"]
    # [A, A, B, B]: one medoid leaves two items at 4 (DS 2); two medoids (one A, one B) leave none; k > n is skipped
    assert first.to_dict() == pytest.approx({1: 2.0, 2: 0.0, 3: 0.0, 4: 0.0})
    assert len(curves) == 4 * (len(table))  # every matrix has n = 4
    preset.config["ds"]["input_subsample"] = 0.5
    for path in (preset.results_dir / "records").glob("*input_shape.json"):
        path.unlink()
    table = _run(preset)
    inputs = table[table["measure"] == "input_shape"]
    assert (inputs["n"] == 2).all() and set(inputs["subsample"]) == {0.5}


def test_out_of_core_matrices_give_the_same_table(preset: Preset, monkeypatch: pytest.MonkeyPatch) -> None:
    in_memory = _run(preset).drop(columns=["device"])
    for folder in ("records", "matrices", "predictions"):
        for path in (preset.results_dir / folder).glob("*"):
            path.unlink()
    monkeypatch.setattr(runner, "TILED_MIN_ITEMS", 2)  # every matrix (n = 4) through resumable tiles
    tiled = _run(preset).drop(columns=["device"])
    assert list((preset.results_dir / "matrices").glob("*.npy.tiles"))  # the tiles' work folders
    pd.testing.assert_frame_equal(tiled, in_memory)


def test_truncated_record_and_truncated_predictions_are_measured_again(preset: Preset) -> None:
    """Issue 22: a record JSON cut short crashed every rerun in the table step; a prediction .npy cut short (its
    JSON intact) was never predicted again; an edited record matrix was reused. Each is now made again."""
    first = _run(preset)
    records = preset.results_dir / "records"
    (records / "known_1_x_output.json").write_text((records / "known_1_x_output.json").read_text()[:40])
    points = preset.results_dir / "predictions" / "known_2_y.npy"
    points.write_bytes(points.read_bytes()[:100])
    (records / "known_2_y_output.json").unlink()  # its evaluation (killed, failed) is still to be done
    matrix_path = preset.results_dir / "matrices" / "1_input_shape.npy"
    edited = np.load(matrix_path)
    edited[0] = 0.0
    np.save(matrix_path, edited)
    second = _run(preset)
    pd.testing.assert_frame_equal(first.drop(columns=["device"]), second.drop(columns=["device"]))
    assert read_predictions(preset.results_dir, "known_2_y").points.shape == (4, 2, 3)
    assert np.load(matrix_path)[0].any()  # the edited matrix was measured again


def test_predictions_and_measurements_of_changed_weights_are_made_again(
    preset: Preset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A network trained again (its damaged final model replaced) makes other weights: the predictions made
    from the old weights and the measurements of those predictions are made again, nothing else."""
    weights = tmp_path / "final.pt"
    weights.write_bytes(b"first training")
    known = KnownPredictor.predict

    def predict_from_weights(self, preset, target, *, device):
        made = known(self, preset, target, device=device)
        sources = (weights,) if target.name == "known_1_y" else ()
        return PredictedClouds(made.points, made.ids, made.info, made.settings, sources=sources)

    monkeypatch.setattr(KnownPredictor, "predict", predict_from_weights)
    first = _run(preset)
    files = sorted((preset.results_dir / "records").glob("*.json")) + sorted(
        (preset.results_dir / "predictions").glob("*")
    )
    before = {path: path.stat().st_mtime_ns for path in files}
    weights.write_bytes(b"second training")
    second = _run(preset)
    changed = sorted(path.name for path in files if path.stat().st_mtime_ns != before[path])
    assert changed == ["known_1_y.json", "known_1_y.npy", "known_1_y_output.json"]
    pd.testing.assert_frame_equal(first.drop(columns=["device"]), second.drop(columns=["device"]))


def test_a_run_with_damaged_weights_is_trained_again_by_the_sweep(preset: Preset) -> None:
    """The sweep skips a training job whose ``done`` marker exists: a run whose final model no longer matches
    the record in ``done`` loses the marker, so the job runs (and trains it again); intact runs keep theirs."""
    from models.training import DONE_FILE, FINAL_FILE, write_done

    damaged, intact = preset.runs[0].directory, preset.runs[1].directory
    for directory in (damaged, intact):
        directory.mkdir(parents=True)
        (directory / FINAL_FILE).write_bytes(b"trained weights")
        write_done(directory, FINAL_FILE)
    (damaged / FINAL_FILE).write_bytes(b"trained weighTs")
    jobs = {job.name: job for job in runner.training_jobs(preset)}
    assert not (damaged / DONE_FILE).exists() and not jobs[preset.runs[0].name].done_marker.exists()
    assert (intact / DONE_FILE).exists()


@pytest.fixture
def root_logger_restored() -> Iterator[None]:
    """A command's main run in this process logs to a file in its results folder through the root logger (as
    the command does): its handlers are closed and removed afterwards, so that no later test writes there."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


@pytest.mark.usefixtures("root_logger_restored")
def test_an_evaluation_run_by_hand_is_refused_while_a_sweep_holds_the_results(
    preset: Preset, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22, kind 2: ``python -m experiments.evaluate`` by hand takes the results folder's lock; the jobs of
    the sweep holding it (which pass its folders on in the environment) run under the sweep's lock."""
    from dispersion_score.locks import directory_lock
    from experiments import cli

    monkeypatch.delenv(cli.SWEEP_LOCKS_VARIABLE, raising=False)
    argv = ["--config", str(preset.source), "--target", "known_1_x"]
    with directory_lock(preset.results_dir, what="sweep (results)"):
        with pytest.raises(SystemExit) as refused:
            cli.main_job(argv)
        assert refused.value.code == 2 and "sweep (results)" in capsys.readouterr().err
        monkeypatch.setenv(cli.SWEEP_LOCKS_VARIABLE, str(preset.results_dir.resolve()))
        assert cli.main_job(argv) == 0  # a job of the sweep that holds the lock
    monkeypatch.delenv(cli.SWEEP_LOCKS_VARIABLE)
    assert cli.main_job(argv) == 0  # by hand, nobody else writing: takes the lock and runs


def test_a_sweep_passes_its_locked_folders_to_its_jobs(preset: Preset) -> None:
    import argparse
    import os

    from experiments import cli

    with cli.owning(argparse.ArgumentParser(), [preset], runs=True, results=True):
        held = os.environ[cli.SWEEP_LOCKS_VARIABLE].split(os.pathsep)
        assert held == [str(preset.runs_dir.resolve()), str(preset.results_dir.resolve())]
    assert cli.SWEEP_LOCKS_VARIABLE not in os.environ
