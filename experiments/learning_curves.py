"""Learning curves of a preset: training and test Chamfer per epoch of the runs at the ends of each axis.

Issue 19 §2 asks for a convergence criterion that does not look at DS; these curves are what it is read from.
The runs are the preset's own (same training config, data and seed) with validation on the test split at every
epoch (``eval.every=1``; for a dataset with a validation file, ``data.val_file`` = its test file and every test
item). Validation has its own RNG (``models.engine``), so the training computes what the preset's run computes; measured
curves can still differ from a sweep's run by float rounding (thread counts), which a few hundred steps amplify.
They are trained into ``<runs_dir>/learning_curves/`` (finished ones are kept) and drawn into one figure, with
the test Chamfer of the recognition baselines (from ``measurements.csv``, when the preset was evaluated).

    python -m experiments.learning_curves synthetic --preset quick --figure docs/learning_curves_synthetic.png
    python -m experiments.learning_curves more_imgs --preset quick --workers 2

Which runs: the first and last value of every numeric axis, every value of a categorical one (kind, frame,
decoder), the first seed.

The convergence criterion of docs/convergence.md is computed from the curves (:mod:`experiments.convergence`) and
written next to the figure (``<figure>_convergence.csv``); it looks at the training Chamfer only, never at DS.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from dataset.locations import REPO_ROOT
from dispersion_score.io import save_figure
from dispersion_score.launch import Job, fail_on, positive_int, python_command
from dispersion_score.paths import check_writable_folder
from experiments import cli
from experiments.config import Preset, Run
from experiments.convergence import convergence_table, training_curve
from experiments.runner import LONG_TABLE, TRAIN_SCRIPT

FOLDER = "learning_curves"
BASELINE_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))


def curve_runs(preset: Preset) -> list[Run]:
    """The preset's runs at the ends of each axis (see the module docstring), in grid order."""
    chosen: dict[str, set] = {}
    for axis in preset.experiment.axes:
        values = list(preset.config["grid"][axis.name])
        if axis.name == "seed":
            chosen[axis.name] = {values[0]}
        elif axis.type in (int, float):
            chosen[axis.name] = {min(values), max(values)}
        else:
            chosen[axis.name] = set(values)
    return [run for run in preset.runs if all(run.point[name] in chosen[name] for name in chosen)]


def curve_overrides(preset: Preset, run: Run, every: int = 1) -> list[str]:
    """The run's overrides plus validation on the whole test split every ``every`` epochs."""
    data = preset.training_config(run)["data"]
    overrides = [*run.overrides, f"eval.every={every}", "eval.items=null"]
    if data["dataset"] != "shapenet":  # ShapeNet validates on its test split already (shapenet_split)
        overrides.append(f"data.val_file={data['test_file']}")
    return overrides


def curve_dir(preset: Preset, run: Run) -> Path:
    return preset.runs_dir / FOLDER / run.name


def curve_jobs(preset: Preset, every: int = 1) -> list[Job]:
    """One ``train_scripts/train.py`` job per learning-curve run (validation every ``every`` epochs)."""
    jobs = []
    for run in curve_runs(preset):
        out = curve_dir(preset, run)
        settings = [item for override in curve_overrides(preset, run, every) for item in ("--set", override)]
        command = python_command(TRAIN_SCRIPT, "--config", str(preset.train_config_path), "--out", str(out), *settings)
        jobs.append(Job(f"curve_{run.name}", command, out / "done", out / "job.log"))
    return jobs


def read_curves(preset: Preset) -> pd.DataFrame:
    """One row per (run, epoch): the run's axes, ``epoch``, ``train_chamfer`` (training loss, random template),
    ``test_chamfer`` (regular template, whole test split); runs not started are left out."""
    curves = []
    for run in curve_runs(preset):
        metrics = curve_dir(preset, run) / "metrics.jsonl"
        if metrics.is_file():
            curves.append(training_curve(metrics, run.name).assign(**run.point))
    if not curves:
        return pd.DataFrame()
    columns = ["run", *curve_runs(preset)[0].point, "epoch", "train_chamfer", "test_chamfer"]
    return pd.concat(curves, ignore_index=True)[columns]


def curve_convergence(preset: Preset, curves: pd.DataFrame) -> pd.DataFrame:
    """The convergence criterion of each finished learning-curve run, with the run's own number of epochs (nviews
    trains every view count for the same steps, so its runs have different epoch counts)."""
    tables = [
        convergence_table(curves[curves["run"] == run.name], int(preset.training_config(run)["train"]["epochs"]))
        for run in curve_runs(preset)
    ]
    return pd.concat(tables, ignore_index=True)


def baseline_chamfer(preset: Preset) -> pd.Series:
    """Mean test Chamfer of each recognition baseline over its data points (empty if not evaluated)."""
    path = preset.results_dir / LONG_TABLE
    if not path.is_file():
        return pd.Series(dtype=float)
    table = pd.read_csv(path)
    rows = table[(table["measure"] == "output") & table["predictor"].notna() & (table["predictor"] != "network")]
    return rows.groupby("predictor")["chamfer"].mean()


def curves_figure(curves: pd.DataFrame, baselines: pd.Series, title: str) -> Figure:
    """Training and test Chamfer against the epoch, one line per run (log scale); the recognition baselines' mean
    test Chamfer as black lines, one line style each, labelled with their value."""
    figure = Figure(figsize=(12, 4.5))
    train_axis, test_axis = figure.subplots(1, 2, sharey=True)
    for index, (name, rows) in enumerate(curves.groupby("run", sort=False)):
        color = f"C{index % 10}"
        train_axis.plot(rows["epoch"], rows["train_chamfer"], color=color, label=name)
        test = rows.dropna(subset=["test_chamfer"])
        test_axis.plot(test["epoch"], test["test_chamfer"], color=color, label=name)
    for index, (predictor, value) in enumerate(baselines.items()):
        style = BASELINE_STYLES[index % len(BASELINE_STYLES)]
        test_axis.axhline(value, linestyle=style, color="black", linewidth=1.0, label=f"{predictor} ({value:.3g})")
    for axis, name in ((train_axis, "training Chamfer (random template)"), (test_axis, "test Chamfer")):
        axis.set_yscale("log")
        axis.set_xlabel("epoch")
        axis.set_title(name, fontsize=10)
        axis.grid(alpha=0.3)
    test_axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print("usage: python -m experiments.learning_curves EXPERIMENT [--preset quick] [options]", file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    experiment, rest = argv[0], argv[1:]
    parser = cli.build_parser(__doc__.splitlines()[0])
    parser.add_argument("--figure", type=Path, default=None, help="PNG path (default: <results>/figures/...)")
    parser.add_argument("--every", type=positive_int, default=1, help="validate on the test split every N epochs")
    args, preset, launch = cli.parse(experiment, parser, rest)
    path = args.figure or preset.results_dir / "figures" / f"learning_curves_{preset.name}.png"
    try:  # before hours of training: the figure must be writable
        check_writable_folder(path.parent, "--figure's folder")
    except ValueError as error:
        parser.exit(cli.EXIT_BAD_INPUT, f"error: {error}\n")
    with cli.owning(parser, [preset], runs=True, results=False):
        cli.building_data(parser, preset, launch)
        report = launch.run(
            curve_jobs(preset, args.every),
            default_workers=preset.workers,
            cwd=REPO_ROOT,
            folder=preset.runs_dir / FOLDER / "submitit",
            description=f"learning curves ({preset.name})",
        )
    status = fail_on(report, "learning-curve training")
    curves = read_curves(preset)
    if curves.empty:
        return status or 1
    save_figure(curves_figure(curves, baseline_chamfer(preset), f"{experiment} ({preset.name})"), path)
    curves.to_csv(path.with_suffix(".csv"), index=False)
    convergence = curve_convergence(preset, curves)
    convergence.to_csv(path.with_name(f"{path.stem}_convergence.csv"), index=False)
    print(f"figure: {path}")
    print(convergence.to_string(index=False))
    return status


if __name__ == "__main__":
    sys.exit(main())
