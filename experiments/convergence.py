"""The convergence criterion of docs/convergence.md, on learning curves or on every run of a sweep.

The criterion looks at the training Chamfer only, never at DS: a run **has converged** when its plateau ratio
(mean training Chamfer over the last :data:`PLATEAU_WINDOW` of its epochs ÷ the same over the window before) is at
least :data:`PLATEAU_THRESHOLD`. That mean-based ratio is the criterion as first fixed; a single spike of the
per-epoch loss (a few batches per epoch, a random template) moves it by several per cent, so the amended
criterion (docs/convergence.md says when and why) compares the windows' **medians** with the same threshold; both
are reported. The trainer logs the training Chamfer of every epoch of every run (``metrics.jsonl``), so the
criterion can be checked on all runs of a sweep, not only on the learning-curve runs:

    python -m experiments.convergence log/synthetic/quick log/shapenet/quick/*

prints, per runs folder, how many finished runs converged and the range of their plateau ratios, and with
``--out`` writes one row per run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from experiments.records import write_table

PLATEAU_WINDOW = 0.1
"""Share of the training epochs in each of the two windows the plateau ratio compares (docs/convergence.md)."""
PLATEAU_THRESHOLD = 0.95
"""A run has converged when its plateau ratio is at least this: the training Chamfer fell by less than 5 % over
the last tenth of training (docs/convergence.md)."""


def convergence_table(curves: pd.DataFrame, epochs: int) -> pd.DataFrame:
    """The convergence criterion per run: one row per run of ``curves`` that reached ``epochs``.

    Args:
        curves: one row per (run, epoch): ``run``, ``epoch`` (1-based), ``train_chamfer``, ``test_chamfer``
            (nan in epochs without validation), as ``experiments.learning_curves.read_curves`` gives.
        epochs: the runs' number of training epochs.

    Returns:
        Columns ``run``, ``epochs``, ``train_chamfer_last`` (mean training Chamfer over the last
        ``PLATEAU_WINDOW`` of the epochs), ``train_chamfer_before`` (the same over the window before it),
        ``plateau_ratio`` (last / before), ``converged`` (ratio >= ``PLATEAU_THRESHOLD``),
        ``plateau_ratio_median`` and ``converged_median`` (the same with the windows' medians: the amended
        criterion), ``test_chamfer_last`` (the last validated test Chamfer, reported next to the baselines, not
        part of the criterion).
    """
    window = max(1, round(PLATEAU_WINDOW * epochs))
    rows = []
    for name, run in curves.groupby("run", sort=False):
        run = run.sort_values("epoch")
        if run["epoch"].max() < epochs:
            continue
        last = run[run["epoch"] > epochs - window]["train_chamfer"]
        before = run[(run["epoch"] > epochs - 2 * window) & (run["epoch"] <= epochs - window)]["train_chamfer"]
        tested = run.dropna(subset=["test_chamfer"])
        ratio = float(last.mean() / before.mean())
        median_ratio = float(last.median() / before.median())
        test_last = tested["test_chamfer"].iloc[-1] if len(tested) else float("nan")
        rows.append({"run": name, "epochs": epochs, "train_chamfer_last": last.mean(),
                     "train_chamfer_before": before.mean(), "plateau_ratio": ratio,
                     "converged": ratio >= PLATEAU_THRESHOLD, "plateau_ratio_median": median_ratio,
                     "converged_median": median_ratio >= PLATEAU_THRESHOLD,
                     "test_chamfer_last": test_last})  # fmt: skip
    return pd.DataFrame(rows)


def training_curve(metrics: Path, run: str) -> pd.DataFrame:
    """A run's ``metrics.jsonl`` as curve rows: ``run``, ``epoch``, ``train_chamfer`` (the logged training loss,
    random template), ``test_chamfer`` (the validation Chamfer; nan in epochs without validation).

    Raises:
        KeyError, ValueError: a line that is not the trainer's epoch record.
    """
    records = [json.loads(line) for line in Path(metrics).read_text().splitlines() if line]
    rows = [{"run": run, "epoch": record["epoch"], "train_chamfer": record["train_loss"],
             "test_chamfer": record.get("val_chamfer")} for record in records]  # fmt: skip
    return pd.DataFrame(rows, columns=["run", "epoch", "train_chamfer", "test_chamfer"]).astype({"test_chamfer": float})


def sweep_convergence(runs_dir: Path) -> pd.DataFrame:
    """The criterion on every finished training run directly under ``runs_dir`` (a sweep's runs folder).

    A training run is a folder with ``config.yaml`` (its ``train.epochs``), ``metrics.jsonl`` and ``done``;
    unfinished runs and other folders (baselines, learning curves) are left out.

    Returns:
        :func:`convergence_table`'s columns plus ``runs_dir``, one row per finished run, sorted by run name.

    Raises:
        ValueError: ``runs_dir`` is not a folder, or a finished run's config or metrics cannot be read.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise ValueError(f"{runs_dir} is not a runs folder")
    tables = []
    for run in sorted(path for path in runs_dir.iterdir() if (path / "done").is_file()):
        if not (run / "config.yaml").is_file() or not (run / "metrics.jsonl").is_file():
            continue
        try:
            epochs = int(yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"])
            curve = training_curve(run / "metrics.jsonl", run.name)
        except (KeyError, TypeError, ValueError, yaml.YAMLError) as error:
            raise ValueError(f"{run}: cannot read its training curve ({error!r})") from error
        tables.append(convergence_table(curve, epochs))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["run"])
    return table.assign(runs_dir=str(runs_dir))


def without_unconverged(
    table: pd.DataFrame, curves: pd.DataFrame | None, convergence: pd.DataFrame, axes: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame | None, list[str]]:
    """A results folder's tables without the networks' runs that do not meet the criterion (by the medians), for a
    sensitivity analysis: do the directions hold on the converged runs alone?

    Args:
        table: ``measurements.csv``; a network's output rows name their run by ``predictions``
            (``predictions/<run>.npy``).
        curves: ``ds_vs_k.csv`` or None; its network rows are matched to runs by the experiment's axis values.
        convergence: :func:`sweep_convergence` of the runs folder the results were measured from.
        axes: the experiment's axis names (``Experiment.axis_names``), seed included.

    Returns:
        ``(table, curves, dropped)``: the tables without the rows of the runs that did not converge, and those
        runs' names, sorted.

    Raises:
        ValueError: a network row without ``predictions``, or whose run is not among the finished runs of the
            runs folder (its criterion cannot be judged).
    """
    network = (table["measure"] == "output") & (table["predictor"] == "network")
    if network.any() and ("predictions" not in table or table.loc[network, "predictions"].isna().any()):
        raise ValueError("measurements.csv has network rows without a predictions file: cannot tell their runs")
    runs = table.loc[network, "predictions"].map(lambda path: Path(str(path)).stem)
    judged = dict(zip(convergence["run"], convergence.get("converged_median", []), strict=True))
    unknown = sorted(set(runs) - set(judged))
    if unknown:
        raise ValueError(f"runs {', '.join(unknown)} are not finished runs of the runs folder: cannot judge them")
    dropped_rows = runs[~runs.map(judged).astype(bool)]
    dropped = sorted(set(dropped_rows))
    kept = table.drop(index=dropped_rows.index)
    if curves is not None and len(dropped_rows):
        axes = [axis for axis in axes if axis in table and axis in curves]
        keys = set(_axis_keys(table.loc[dropped_rows.index], axes))
        curve_network = (curves["measure"] == "output") & (curves["predictor"] == "network")
        curves = curves[~(curve_network & pd.Series(_axis_keys(curves, axes), index=curves.index).isin(keys))]
    return kept, curves, dropped


def _axis_keys(frame: pd.DataFrame, axes: Sequence[str]) -> list[tuple[object, ...]]:
    # A seed is 1.0 in a table whose input rows leave it empty and 1 in one without: numbers compare as floats.
    columns = [
        frame[axis].astype(float) if pd.api.types.is_numeric_dtype(frame[axis]) else frame[axis].astype(str)
        for axis in axes
    ]
    return list(zip(*columns, strict=True)) if columns else [() for _ in range(len(frame))]


def summary_line(table: pd.DataFrame) -> str:
    """How many runs of a :func:`sweep_convergence` table converged by each criterion, with the ratios' range."""
    if table.empty:
        return "no finished runs"
    parts = []
    for name, ratio, flag in (("means", "plateau_ratio", "converged"),
                              ("medians", "plateau_ratio_median", "converged_median")):  # fmt: skip
        ratios = table[ratio]
        parts.append(
            f"{int(table[flag].sum())} of {len(table)} runs converged by the {name} (plateau ratio "
            f"{ratios.min():.3f} / {ratios.median():.3f} / {ratios.max():.3f} min / median / max)"
        )
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="runs folders of sweeps (e.g. log/synthetic/quick)")
    parser.add_argument("--out", type=Path, default=None, help="CSV of the criterion per run")
    args = parser.parse_args(argv)
    try:
        tables = [sweep_convergence(folder) for folder in args.runs]
    except ValueError as error:
        parser.exit(2, f"error: {' '.join(str(error).split())}\n")
    for folder, table in zip(args.runs, tables, strict=True):
        print(f"{folder}: {summary_line(table)}")
        if "converged" in table:
            for row in table[~(table["converged"] & table["converged_median"]).astype(bool)].itertuples():
                print(f"  not converged: {row.run} (plateau ratio by the means {row.plateau_ratio:.3f}, "
                      f"by the medians {row.plateau_ratio_median:.3f})")  # fmt: skip
    if args.out is not None:
        write_table(pd.concat(tables, ignore_index=True), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
