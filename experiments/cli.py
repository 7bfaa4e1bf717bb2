"""The command line shared by every experiment's entry points (everything, train, evaluate, plot, one job).

    python -m experiments.synthetic --preset quick                   # data, training, evaluation, figures
    python -m experiments.shapenet --preset quick [--experiments more_imgs ...]   # the three, one sweep
    python train_scripts/train_<name>.py --preset paper --gpus 0 1   # the training sweep
    python eval_scripts/eval_ds_<name>.py --preset paper --gpus 0    # the DS tables
    python -m experiments.evaluate --config FILE --target NAME       # one evaluation job of a sweep

The experiment declarations (:mod:`experiments.synthetic.declaration`, ...) hold no entry code: the commands
are here, and ``python -m experiments.<name>`` is the package's ``__main__`` calling :func:`main_all`.

Options: ``--preset NAME`` or ``--config FILE``, ``--set key.sub=value`` (preset overrides), ``--seeds``,
``--gpus``, ``--workers``, ``--launcher local|slurm|submitit-local`` and the SLURM settings. Bad input (an
unknown preset, a schema error, ``--workers 0``, repeated seeds, GPUs or SLURM that are not there) prints one
line and exits with status 2 before any job starts.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import pandas as pd

import experiments.builtin  # noqa: F401 - the entry points register the built-in experiments
from dataset.locations import REPO_ROOT
from dispersion_score.launch import (
    Launch,
    SweepReport,
    add_launch_arguments,
    fail_on,
    launch_from_arguments,
    non_negative_int,
)
from dispersion_score.locks import DirectoryLockedError, directory_lock
from experiments import runner
from experiments.config import Preset, load_preset, preset_path
from experiments.declaration import DataBuildError
from experiments.directions import DIRECTIONS_TABLE, format_directions
from experiments.registry import get_experiment

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {message}\n")


def build_parser(description: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The options every experiment entry point takes (``prog``: the command in usage lines; default the script)."""
    parser = _Parser(description=description, prog=prog)
    parser.add_argument("--preset", default="quick", help="preset name (configs/presets/<experiment>/<preset>.yaml)")
    parser.add_argument("--config", type=Path, help="a preset file instead of a named preset")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset value, e.g. --set ds.k=10 grid.s=[1,35] (repeatable)",
    )
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", help="training seeds (default: the preset's)")
    add_launch_arguments(parser.add_argument_group("where jobs run (default: --workers from the preset, here)"))
    return parser


def parse(
    experiment: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> tuple[argparse.Namespace, Preset, Launch]:
    """Parses the options, loads the preset and checks the launch; bad input exits with status 2."""
    args = parser.parse_args(argv)
    presets, launch = load_presets([experiment], parser, args)
    return args, presets[0], launch


def load_presets(
    experiments: Sequence[str], parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[list[Preset], Launch]:
    """The presets of ``experiments`` (``--preset`` or ``--config``, then ``--set`` and ``--seeds``) and the launch.

    ``--config`` names one preset file, hence one experiment. Bad input (an unknown preset, a schema error, a
    repeated seed, ``--config`` with several experiments, a launch that cannot run) exits with status 2.
    """
    overrides = [item for group in args.overrides for item in group]
    try:
        if args.seeds:
            if len(set(args.seeds)) != len(args.seeds):
                raise ValueError(f"--seeds {' '.join(map(str, args.seeds))}: a seed is repeated")
            overrides.append(f"grid.seed=[{', '.join(map(str, args.seeds))}]")
        if args.config is not None and len(experiments) != 1:
            raise ValueError(
                f"--config {args.config} is the preset of one experiment; pick it with --experiments "
                f"(one of {', '.join(experiments)})"
            )
        presets = [
            load_preset(args.config or preset_path(get_experiment(name), args.preset), overrides, experiment=name)
            for name in experiments
        ]
        launch = launch_from_arguments(args)
    except ValueError as error:
        parser.exit(EXIT_BAD_INPUT, f"error: {' '.join(str(error).split())}\n")
    return presets, launch


def setup_logging(log_file: Path) -> None:
    """Log INFO and above to ``log_file`` (appended; one handler per file)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(log_file) for h in root.handlers):
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)


@contextlib.contextmanager
def owning(parser: argparse.ArgumentParser, presets: Sequence[Preset], *, runs: bool, results: bool) -> Iterator[None]:
    """Holds the sweep folders (runs and/or results) of ``presets`` for the block: one sweep process at a time
    per folder. A folder held by another process exits with status 2 and one line naming the holder."""
    with contextlib.ExitStack() as stack:
        held = []
        try:
            for preset in presets:
                if runs:
                    held.append(stack.enter_context(directory_lock(preset.runs_dir, what="sweep (runs)")))
                if results:
                    held.append(stack.enter_context(directory_lock(preset.results_dir, what="sweep (results)")))
        except (DirectoryLockedError, NotADirectoryError) as error:
            parser.exit(EXIT_BAD_INPUT, f"error: {' '.join(str(error).split())}\n")
        # The sweep's own jobs (local processes, SLURM jobs: both inherit the environment) write into these
        # folders under this process's lock; anything else that writes there must take the lock itself.
        stack.enter_context(_environment(SWEEP_LOCKS_VARIABLE, os.pathsep.join(str(p.resolve()) for p in held)))
        yield


SWEEP_LOCKS_VARIABLE = "DISPERSION_SCORE_SWEEP_LOCKS"


def building_data(parser: argparse.ArgumentParser, preset: Preset, launch: Launch) -> None:
    """:func:`runner.build_data`; a builder that fails (it has printed its own error, e.g. a data root in use by
    another process) ends the command with one more line naming it, and the builder's exit status."""
    try:
        runner.build_data(preset, launch)
    except DataBuildError as error:
        parser.exit(error.returncode if error.returncode > 0 else 1, f"error: {error}\n")


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _held_by_sweep(folder: Path) -> bool:
    """Whether ``folder`` is held by the sweep that started this process (see :func:`owning`)."""
    held = os.environ.get(SWEEP_LOCKS_VARIABLE, "")
    return str(folder.resolve()) in held.split(os.pathsep)


def print_summary(preset: Preset, table: pd.DataFrame) -> None:
    with pd.option_context("display.float_format", "{:.5g}".format, "display.width", 160, "display.max_columns", 20):
        print(runner.summary_table(preset, table))
    gt = table[table["measure"] == "gt_test"]["ds"]
    if len(gt):
        print(f"ground-truth test shape DS: {gt.iloc[0]:.5g}")
    directions = preset.results_dir / DIRECTIONS_TABLE
    if directions.is_file():
        print(f"directions ({directions}):")
        print(format_directions(pd.read_csv(directions)))


def main_all(
    experiments: str | Sequence[str],
    argv: Sequence[str] | None = None,
    *,
    description: str = "",
    suite: str = "",
    prog: str | None = None,
) -> int:
    """Everything: data, training, evaluation, tables, figures and a summary; the exit status.

    Args:
        experiments: one experiment's registry name, or the names of a suite (``--experiments`` then picks some;
            default all) whose runs are trained in one sweep, so that every worker stays busy.
        argv: the options (default ``sys.argv[1:]``); see :func:`build_parser`, plus ``--skip-figures``.
        description: the ``--help`` description.
        suite: the suite's name in messages ("ShapeNet"); required with several experiments.
        prog: the command in usage lines (``python -m experiments.shapenet``; default the script's name).

    Raises:
        ValueError: several experiments without a suite name (bad input exits with status 2 instead).
    """
    names = [experiments] if isinstance(experiments, str) else list(experiments)
    if len(names) > 1 and not suite:
        raise ValueError(f"main_all of several experiments {names} needs the suite's name")
    parser = build_parser(description or f"The {names[0]} experiment, end to end.", prog)
    if suite:
        parser.add_argument("--experiments", nargs="+", choices=names, default=names, help="run only these")
    parser.add_argument("--skip-figures", action="store_true")
    args = parser.parse_args(argv)
    presets, launch = load_presets(args.experiments if suite else names, parser, args)
    started = time.time()
    with owning(parser, presets, runs=True, results=True):
        for preset in presets:
            setup_logging(preset.results_dir / "experiment.log")
            building_data(parser, preset, launch)
        status = fail_on(_train(presets, launch, suite), "training")
        for preset in presets:
            report, table = runner.evaluate(preset, launch)
            status = max(status, fail_on(report, f"evaluation ({preset.experiment.name})" if suite else "evaluation"))
            if not args.skip_figures and preset.experiment.figures is not None:
                for path in preset.experiment.figures(preset.results_dir):
                    print(f"figure: {path}")
            table_file = preset.results_dir / (preset.experiment.view_file or runner.LONG_TABLE)
            if suite:
                print(f"== {preset.experiment.name} ({preset.name}): {table_file}")
                print_summary(preset, table)
    if suite:
        print(f"{suite} experiments done in {time.time() - started:.0f} s")
    else:
        print_summary(preset, table)
        print(f"table: {table_file}  ({time.time() - started:.0f} s)")
    return status


def _train(presets: Sequence[Preset], launch: Launch, suite: str) -> SweepReport:
    """The training sweep: one preset's (:func:`runner.train`), or one sweep for the runs of a whole suite."""
    if not suite:
        return runner.train(presets[0], launch)
    jobs = [job for preset in presets if runner.needs_training(preset) for job in runner.training_jobs(preset)]
    return launch.run(
        jobs,
        default_workers=presets[0].workers,
        cwd=REPO_ROOT,
        folder=presets[0].runs_dir.parent / "submitit",
        description=f"training ({suite})",
    )


def main_train(experiment: str, argv: Sequence[str] | None = None, *, description: str = "") -> int:
    """The training sweep of a preset (finished runs are skipped), after building the data the preset asks for
    if it is missing (a quick check when it is there)."""
    parser = build_parser(description or f"Train the {experiment} sweep.")
    _, preset, launch = parse(experiment, parser, argv)
    with owning(parser, [preset], runs=True, results=False):
        setup_logging(preset.runs_dir / "sweep.log")
        building_data(parser, preset, launch)
        return fail_on(runner.train(preset, launch), "training")


def main_evaluate(experiment: str, argv: Sequence[str] | None = None, *, description: str = "") -> int:
    """Input DS, predictions and output DS of every finished run, then the tables."""
    parser = build_parser(description or f"Measure DS for {experiment}.")
    parser.add_argument(
        "--runs",
        type=Path,
        help="evaluate the original release's run folders here instead "
        "(log/train_synthetic, log/more_imgs, log/more_shapes); results go to <results>/original_release",
    )
    args, preset, launch = parse(experiment, parser, argv)
    if args.runs is not None:
        preset = _with_original_runs(preset, args.runs, parser)
    with owning(parser, [preset], runs=False, results=True):
        setup_logging(preset.results_dir / "evaluate.log")
        report, table = runner.evaluate(preset, launch)
    print(f"wrote {preset.results_dir / (preset.experiment.view_file or runner.LONG_TABLE)} ({len(table)} rows)")
    return fail_on(report, "evaluation")


def _with_original_runs(preset: Preset, runs: Path, parser: argparse.ArgumentParser) -> Preset:
    from experiments.original_release import with_original_runs

    if not runs.is_dir():
        parser.exit(EXIT_BAD_INPUT, f"error: --runs {runs}: no such folder\n")
    return with_original_runs(preset, runs)


def main_plot(experiment: str, argv: Sequence[str] | None = None, *, description: str = "") -> int:
    """Figures of a results folder (default: the preset's), drawn from its tables."""
    parser = build_parser(description or f"Figures of the {experiment} experiment.")
    parser.add_argument("results_dir", type=Path, nargs="?", help="a results folder (default: the preset's)")
    args, preset, _ = parse(experiment, parser, argv)
    if preset.experiment.figures is None:
        parser.exit(EXIT_BAD_INPUT, f"error: experiment {experiment} draws no figures\n")
    try:
        paths = preset.experiment.figures(args.results_dir or preset.results_dir)
    except ValueError as error:
        parser.exit(EXIT_BAD_INPUT, f"error: {error}\n")
    for path in paths:
        print(path)
    return 0


def main_job(argv: Sequence[str] | None = None) -> int:
    """One evaluation job of a sweep (``python -m experiments.evaluate``): a target's predictions and output DS."""
    parser = _Parser(description=main_job.__doc__)
    parser.add_argument("--config", type=Path, required=True, help="the preset file")
    parser.add_argument("--set", dest="overrides", action="append", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--target", required=True, help="prediction target name (a run name for networks)")
    parser.add_argument("--runs", type=Path, help="the original release's run folders (see eval_ds_* --runs)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        preset = load_preset(args.config, [item for group in args.overrides for item in group])
    except ValueError as error:
        parser.exit(EXIT_BAD_INPUT, f"error: {error}\n")
    if args.runs is not None:
        preset = _with_original_runs(preset, args.runs, parser)
    with contextlib.ExitStack() as stack:
        if not _held_by_sweep(preset.results_dir):  # run by hand: one writer per results folder
            stack.enter_context(owning(parser, [preset], runs=False, results=True))
        setup_logging(preset.results_dir / "logs" / "evaluate_target.log")
        record = runner.evaluate_target(preset, args.target, device=args.device)
    print(f"{args.target}: output DS {record['ds']:.5g}, chamfer {record['chamfer']:.5g}")
    return 0


if __name__ == "__main__":
    sys.exit(main_job())
