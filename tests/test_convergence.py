"""The convergence criterion on every run of a sweep (experiments.convergence.sweep_convergence), on runs the real
trainer wrote: the plateau ratio recomputed by hand from each run's metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from experiments.convergence import (
    PLATEAU_THRESHOLD,
    convergence_table,
    main,
    sweep_convergence,
    without_unconverged,
)
from models.engine import train

EPOCHS = 10  # windows of one epoch: ratio = loss of epoch 10 / loss of epoch 9
TINY = {
    "preset": "test",
    "data": {"dataset": "toy", "root": ".", "train_file": "train:6", "val_file": "val:4", "num_points": 64,
             "image_size": 32},
    "model": {"bottleneck": 16, "atlasnet": {"hidden": 16, "sphere_level": 1}},
    "train": {"epochs": EPOCHS, "batch_size": 4, "milestones": [5, 8]},
    "eval": {"every": 5},
    "run": {"checkpoint_every": 5, "progress": False},
}  # fmt: skip


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    runs = tmp_path_factory.mktemp("sweep")
    try:
        for seed in (1, 2):
            train({**TINY, "seed": seed}, runs / f"run_seed{seed}")
        stopped = {**TINY, "seed": 3, "run": {**TINY["run"], "stop_after_epochs": 5}}
        train(stopped, runs / "run_seed3")  # unfinished: left out
    finally:
        torch.set_num_threads(threads)
    (runs / "baselines").mkdir()  # not a training run
    return runs


def _hand_ratio(run: Path) -> float:
    losses = [json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    return losses[-1] / losses[-2]


def test_every_finished_run_and_its_ratio(sweep: Path) -> None:
    table = sweep_convergence(sweep).set_index("run")
    assert list(table.index) == ["run_seed1", "run_seed2"]
    for name in table.index:
        ratio = _hand_ratio(sweep / name)
        assert table.loc[name, "plateau_ratio"] == pytest.approx(ratio)
        assert table.loc[name, "converged"] == (ratio >= PLATEAU_THRESHOLD)
        assert table.loc[name, "epochs"] == EPOCHS
        last_val = json.loads((sweep / name / "metrics.jsonl").read_text().splitlines()[-1])["val_chamfer"]
        assert table.loc[name, "test_chamfer_last"] == pytest.approx(last_val)


def test_command_and_unreadable_runs(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "convergence.csv"
    assert main([str(sweep), "--out", str(out)]) == 0
    assert "of 2 runs converged" in capsys.readouterr().out
    assert out.read_text().count("run_seed") == 2
    broken = tmp_path / "broken"
    (broken / "r").mkdir(parents=True)
    for name in ("done", "metrics.jsonl"):
        (broken / "r" / name).write_text("{}\n")
    (broken / "r" / "config.yaml").write_text("seed: 1\n")  # no train.epochs
    with pytest.raises(SystemExit) as exit_info:
        main([str(broken)])
    assert exit_info.value.code == 2
    assert "cannot read its training curve" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a runs folder"):
        sweep_convergence(tmp_path / "missing")


def test_a_spike_moves_the_means_not_the_medians() -> None:
    # 30 epochs, windows of 3: a spike in the window before the last makes the means fall 17 %, the medians 0 %.
    losses = [2.0] * 24 + [1.0, 1.6, 1.0] + [1.0, 1.0, 1.0]
    curve = pd.DataFrame({"run": "spiky", "epoch": range(1, 31), "train_chamfer": losses, "test_chamfer": np.nan})
    row = convergence_table(curve, 30).iloc[0]
    assert row["plateau_ratio"] == pytest.approx(1.0 / 1.2) and not row["converged"]
    assert row["plateau_ratio_median"] == pytest.approx(1.0) and row["converged_median"]


def _results_and_runs(tmp_path: Path, falling: set[str]) -> tuple[Path, Path]:
    """A synthetic results folder (measurements.csv, ds_vs_k.csv with the runner's columns) and its runs folder:
    every network run finished after 20 epochs in the trainer's files, flat but for the ``falling`` runs, whose
    training Chamfer drops by 20 % over the last two epochs."""
    rng = np.random.default_rng(0)
    results, runs = tmp_path / "results", tmp_path / "runs"
    results.mkdir()
    rows, curves = [], []
    for kind in ("image_aug", "shape_aug"):
        for s in (1, 10, 20, 35):
            point = {"experiment": "synthetic", "kind": kind, "s": s, "k": 2}
            rows.append({**point, "measure": "input_image", "ds": 1e-4 * s})
            for seed in (1, 2, 3):
                run = f"{kind}_s{s:02d}_seed{seed}"
                trend = -2e-5 * s if kind == "image_aug" else 1e-5 * s
                ds = 4e-3 + trend + rng.normal(scale=2e-4)
                rows.append({**point, "seed": seed, "measure": "output", "predictor": "network", "ds": ds,
                             "predictions": f"predictions/{run}.npy"})  # fmt: skip
                for k in (2, 3, 4):
                    curves.append({**point, "seed": seed, "measure": "output", "predictor": "network", "k": k,
                                   "ds": ds * (1 + 0.1 * k)})  # fmt: skip
                folder = runs / run
                folder.mkdir(parents=True)
                (folder / "config.yaml").write_text("train:\n  epochs: 20\n")
                losses = [1.0] * 18 + ([0.8, 0.8] if run in falling else [1.0, 1.0])
                (folder / "metrics.jsonl").write_text(
                    "".join(json.dumps({"epoch": e + 1, "train_loss": v, "val_chamfer": None}) + "\n"
                            for e, v in enumerate(losses))
                )  # fmt: skip
                (folder / "done").write_text("")
    pd.DataFrame(rows).to_csv(results / "measurements.csv", index=False)
    pd.DataFrame(curves).to_csv(results / "ds_vs_k.csv", index=False)
    return results, runs


def test_directions_of_the_converged_runs_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--converged-only: the directions of the tables with the unconverged runs' rows dropped by hand."""
    from experiments.directions import CONVERGED_TABLE, converged_directions, direction_table
    from experiments.directions import main as directions_main
    from experiments.registry import get_experiment

    falling = {"image_aug_s35_seed1", "image_aug_s01_seed2", "shape_aug_s10_seed3"}
    results, runs = _results_and_runs(tmp_path, falling)
    experiment = get_experiment("synthetic")
    found, directions, dropped = converged_directions(results, runs)
    assert found.name == experiment.name
    assert dropped == sorted(falling)

    table, curves = pd.read_csv(results / "measurements.csv"), pd.read_csv(results / "ds_vs_k.csv")
    names = [f"{kind}_s{int(s):02d}_seed{int(seed)}" if seed == seed else "" for kind, s, seed in
             zip(table["kind"], table["s"], table["seed"], strict=True)]  # fmt: skip
    curve_names = [f"{kind}_s{int(s):02d}_seed{int(seed)}" for kind, s, seed in
                   zip(curves["kind"], curves["s"], curves["seed"], strict=True)]  # fmt: skip
    expected = direction_table(
        experiment,
        table[[name not in falling for name in names]],
        curves[[name not in falling for name in curve_names]],
    )
    pd.testing.assert_frame_equal(directions, expected)
    written = pd.read_csv(results / CONVERGED_TABLE)
    columns = ["direction", "statistic", "p", "effect", "runs", "seeds", "verdict"]
    pd.testing.assert_frame_equal(written[columns], expected[columns], check_dtype=False, rtol=1e-12)
    _, kept_curves, _ = without_unconverged(table, curves, sweep_convergence(runs), experiment.axis_names)
    pd.testing.assert_frame_equal(kept_curves, curves[[name not in falling for name in curve_names]])
    assert len(kept_curves) == len(curves) - 3 * len(falling)  # three k per run
    everything = direction_table(experiment, table, curves)
    output_rows = everything["measure"] == "output"
    assert list(everything.loc[output_rows, "runs"]) == [12, 12]
    assert list(expected.loc[output_rows, "runs"]) == [10, 11]
    assert not (results / "directions.csv").exists()  # the declared analysis is left alone

    assert directions_main([str(results), "--converged-only", str(runs)]) == 0
    assert "left out 3 runs" in capsys.readouterr().out
    for argv, message in (
        ([str(results), str(results), "--converged-only", str(runs)], "one results folder"),
        ([str(results), "--converged-only", str(tmp_path / "missing")], "not a runs folder"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            directions_main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    (runs / "shape_aug_s35_seed2" / "done").unlink()  # unfinished: its criterion cannot be judged
    with pytest.raises(ValueError, match="shape_aug_s35_seed2 are not finished runs"):
        converged_directions(results, runs)
