"""The convergence criterion on every run of a sweep (experiments.convergence.sweep_convergence), on runs the real
trainer wrote: the plateau ratio recomputed by hand from each run's metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from experiments.convergence import PLATEAU_THRESHOLD, convergence_table, main, sweep_convergence
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
