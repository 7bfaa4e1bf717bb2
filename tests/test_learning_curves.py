"""The learning-curve tool without training: which runs, their overrides, reading metrics.jsonl, the figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.config import load_preset, preset_path
from experiments.convergence import convergence_table
from experiments.learning_curves import (
    curve_convergence,
    curve_dir,
    curve_overrides,
    curve_runs,
    curves_figure,
    read_curves,
)
from experiments.registry import get_experiment


def _preset(name: str, tmp_path: Path, *overrides: str):  # noqa: ANN202
    return load_preset(
        preset_path(get_experiment(name), "quick"),
        [f"runs_dir={tmp_path / 'runs'}", f"results_dir={tmp_path / 'results'}", *overrides],
        experiment=name,
    )


def test_ends_of_each_axis_first_seed(tmp_path: Path) -> None:
    preset = _preset("synthetic", tmp_path, "grid.seed=[3, 1]")
    points = [(run.point["kind"], run.point["s"], run.point["seed"]) for run in curve_runs(preset)]
    assert points == [("image_aug", 1, 3), ("image_aug", 35, 3), ("shape_aug", 1, 3), ("shape_aug", 35, 3)]
    shapes = _preset("more_shapes", tmp_path)
    grid = shapes.config["grid"]
    assert len(curve_runs(shapes)) == len(grid["frame"]) * len(grid["decoder"])  # categorical: every value


def test_overrides_validate_every_epoch_on_the_test_split(tmp_path: Path) -> None:
    preset = _preset("synthetic", tmp_path)
    run = curve_runs(preset)[0]
    overrides = curve_overrides(preset, run)
    assert overrides[: len(run.overrides)] == list(run.overrides)
    assert {"eval.every=1", "eval.items=null", "data.val_file=test.json"} <= set(overrides)
    imgs = _preset("more_imgs", tmp_path)
    assert not any(o.startswith("data.val_file") for o in curve_overrides(imgs, curve_runs(imgs)[0]))


def test_curves_are_read_from_the_metrics_and_drawn(tmp_path: Path) -> None:
    preset = _preset("synthetic", tmp_path)
    runs = curve_runs(preset)
    for index, run in enumerate(runs[:2]):
        folder = curve_dir(preset, run)
        folder.mkdir(parents=True)
        lines = [{"epoch": e, "train_loss": 1.0 / (e + index), "val_chamfer": 2.0 / e} for e in (1, 2, 3)]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    curves = read_curves(preset)
    assert len(curves) == 6 and set(curves["run"]) == {runs[0].name, runs[1].name}
    second = curves[curves["run"] == runs[1].name]
    assert list(second["train_chamfer"]) == [1 / 2, 1 / 3, 1 / 4] and list(second["test_chamfer"]) == [2, 1, 2 / 3]
    figure = curves_figure(curves, curves.groupby("run")["test_chamfer"].min(), "test")
    assert len(figure.axes) == 2 and len(figure.axes[0].lines) == 2


def test_convergence_criterion_on_hand_computable_curves() -> None:
    # 20 epochs, windows of 2: run "flat" ends at 1.0 after 1.02 (ratio 0.98 >= 0.95), "falling" at 0.5 after 1.0.
    epochs = list(range(1, 21))
    flat = [2.0] * 16 + [1.02, 1.02, 1.0, 1.0]
    falling = [2.0] * 16 + [1.0, 1.0, 0.5, 0.5]
    short = [1.0] * 10  # stopped early: left out
    rows = []
    for name, values in (("flat", flat), ("falling", falling), ("short", short)):
        for epoch, value in zip(epochs[: len(values)], values, strict=True):
            test = 3.0 if (name, epoch) == ("flat", 20) else None
            rows.append({"run": name, "epoch": epoch, "train_chamfer": value, "test_chamfer": test})
    table = convergence_table(pd.DataFrame(rows), 20).set_index("run")
    assert list(table.index) == ["flat", "falling"]
    assert table.loc["flat", "plateau_ratio"] == pytest.approx(1.0 / 1.02) and table.loc["flat", "converged"]
    assert table.loc["falling", "plateau_ratio"] == pytest.approx(0.5) and not table.loc["falling", "converged"]
    assert table.loc["flat", "test_chamfer_last"] == 3.0 and np.isnan(table.loc["falling", "test_chamfer_last"])


def test_each_run_is_judged_on_its_own_epoch_count(tmp_path: Path) -> None:
    """nviews trains its view counts for equal steps, so 1 view has 20 epochs and 12 views 2: the criterion of the
    12-view run was left out when every run was judged on the first run's epoch count."""
    preset = _preset("nviews", tmp_path)
    runs = curve_runs(preset)
    epochs = {run.name: int(preset.training_config(run)["train"]["epochs"]) for run in runs}
    assert len(set(epochs.values())) == 2, epochs
    for run in runs:
        folder = curve_dir(preset, run)
        folder.mkdir(parents=True)
        lines = [{"epoch": e, "train_loss": 1.0 / e, "val_chamfer": None} for e in range(1, epochs[run.name] + 1)]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    table = curve_convergence(preset, read_curves(preset)).set_index("run")
    assert sorted(table.index) == sorted(epochs)
    for name, count in epochs.items():
        window = max(1, round(0.1 * count))
        last = np.mean([1.0 / e for e in range(count - window + 1, count + 1)])
        before = np.mean([1.0 / e for e in range(count - 2 * window + 1, count - window + 1)])
        assert table.loc[name, "epochs"] == count
        assert table.loc[name, "plateau_ratio"] == pytest.approx(last / before)
