"""What an experiment is: a declaration that the generic runner (:mod:`experiments.runner`) carries out.

An :class:`Experiment` names

* its **grid**: named axes (:class:`Axis`); the preset lists each axis's values and every combination is one
  training run (e.g. kind × s × seed for the synthetic experiment; yaw × seed; frame × decoder × seed);
* how a run's **training config** is derived: the preset's ``train_config`` plus the preset's
  ``train_overrides`` plus the declaration's ``run_overrides(point, preset)``;
* its **input measurements** (:class:`InputMeasure`): image DS and/or shape DS of the training split, taken
  once per combination of the axes they depend on;
* its **predictors**: objects that write test-split predictions as files (:mod:`experiments.prediction_files`);
  the trained network of each run is one, recognition baselines are others;
* its **data build**, its **figures**, and an optional **table view** (the experiment's own CSV columns);
* its **expected directions** (:class:`Direction`): how a DS should move along an axis, fixed before any result
  is seen; :mod:`experiments.directions` tests them and writes ``directions.csv``.

A point is a mapping axis name → value; a partial point holds only some axes. ``Experiment.name_of(point)``
joins the axes' labels in declaration order: ``image_aug_s05_seed1`` for the synthetic experiment.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from dispersion_score.launch import Launch
    from experiments.config import Preset

LOGGER = logging.getLogger("experiments")

Point = Mapping[str, Any]
MEASURES = ("input_image", "input_shape", "output", "gt_test")


@dataclass(frozen=True)
class Axis:
    """One axis of an experiment's grid.

    Attributes:
        name: the column name in tables and the key under ``grid:`` in presets.
        type: type of the values (int, str, float).
        doc: what the axis means (shown in config errors).
        choices: the allowed values, taken from the registry that defines them (None: any value).
        label: formats a value for run and record names (default ``str``); must give distinct names.
        minimum: smallest allowed value of a numeric axis.
    """

    name: str
    type: type
    doc: str
    choices: tuple[Any, ...] | None = None
    label: Callable[[Any], str] = str
    minimum: float | None = None


@dataclass(frozen=True)
class InputMeasure:
    """An input DS of the training split.

    Attributes:
        measure: "input_image" (VGG16 perceptual distance of the training images) or "input_shape" (Chamfer
            distance of the training targets, in the frame the network is trained in).
        per: the axes the measurement depends on; it is taken once per combination of their values, on the
            training split of the first run (in grid order) with those values.
    """

    measure: str
    per: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.measure not in ("input_image", "input_shape"):
            raise ValueError(f"input measure must be input_image or input_shape, got {self.measure!r}")


TESTS = ("spearman", "paired")


@dataclass(frozen=True)
class Direction:
    """An expected direction of one DS along one axis, declared in advance (issue 19; :mod:`experiments.directions`).

    Attributes:
        label: how tables name it, e.g. "output DS falls along image_aug".
        measure: "input_image", "input_shape" or "output" (rows of ``measurements.csv`` with that ``measure``).
        axis: the grid axis it is read along.
        sign: +1 the DS is expected to rise along the axis (towards ``levels[1]`` for a paired test), -1 to fall,
            0 no direction declared (two-sided test; the verdict says which way it went).
        test: "spearman": Spearman's rho of DS against the (numeric) axis over every run; "paired": paired t-test
            of ``levels[1]`` against ``levels[0]`` over the runs that share every other axis (the seeds).
        levels: (low, high) of a paired test, e.g. ("object", "viewer").
        where: fixed values of other axes, e.g. {"kind": "image_aug"}.
        per: axes to test separately, one ``directions.csv`` row per value (e.g. ("decoder",)).
        predictor: the predictor of ``output`` rows ("network"); input measures have none.
    """

    label: str
    measure: str
    axis: str
    sign: int
    test: str = "spearman"
    levels: tuple[Any, Any] | None = None
    where: Mapping[str, Any] = field(default_factory=dict)
    per: tuple[str, ...] = ()
    predictor: str = "network"

    def __post_init__(self) -> None:
        if self.measure not in ("input_image", "input_shape", "output"):
            raise ValueError(f"direction {self.label!r}: measure must be input_image, input_shape or output")
        if self.sign not in (-1, 0, 1):
            raise ValueError(f"direction {self.label!r}: sign must be -1, 0 or +1, got {self.sign!r}")
        if self.test not in TESTS:
            raise ValueError(f"direction {self.label!r}: test must be one of {TESTS}, got {self.test!r}")
        if (self.test == "paired") != (self.levels is not None and len(self.levels) == 2):
            raise ValueError(f"direction {self.label!r}: a paired test needs levels=(low, high), and only it")

    @property
    def axes(self) -> tuple[str, ...]:
        return (self.axis, *self.where, *self.per)


@dataclass(frozen=True)
class PredictedClouds:
    """What a predictor returns for one target.

    Attributes:
        points: (N, M, 3) predicted clouds (object frame unless ``rotations``), item i = item i of the test split.
        ids: the N items' ids (None if the dataset has none).
        info: small facts for the prediction file (frame the predictor worked in, weights, ...).
        settings: everything that made them (run config, classifier settings, ...).
        sources: files the predictions are computed from (a network's weights): when one of them changes
            (e.g. a damaged model trained again) the predictions and their measurements are made again.
        rotations: (N, 3, 3) world → camera rotations when ``points`` are in each item's viewer frame (they are
            rotated to the object frame once, when written); None when ``points`` are in the object frame.
    """

    points: Any
    ids: list[str] | None
    info: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    sources: tuple[Path, ...] = ()
    rotations: Any = None


@dataclass(frozen=True)
class Target:
    """One prediction file a predictor writes: a name (unique in the experiment), the grid point it belongs to
    (the axes it depends on) and the run whose config defines the test split (and, for networks, the weights).
    ``split``, when given, is a training config whose test split is used instead (e.g. the original
    release's runs, which are not runs of the preset).
    """

    predictor: str
    name: str
    point: Point
    run: str
    split: Mapping[str, Any] | None = field(default=None, compare=False)


class Predictor(Protocol):
    """Writes test-split predictions (see :mod:`experiments.prediction_files`)."""

    name: str
    trains: bool  # whether its targets need the training runs first

    def targets(self, preset: Preset) -> list[Target]:
        """The prediction files this predictor writes for the preset (only those it can make now)."""
        ...

    def predict(self, preset: Preset, target: Target, *, device: str) -> PredictedClouds:
        """Predicts the target's test split (object-frame clouds; see :mod:`experiments.prediction_files`)."""
        ...


@dataclass(frozen=True)
class Experiment:
    """The declaration of one experiment (see the module docstring).

    Attributes:
        name: registry name ("synthetic", "more_imgs", ...); also the ``experiment`` column of tables.
        axes: the grid axes, in naming order.
        run_overrides: (point, resolved preset config) → ``--set`` overrides of the training config for that run.
        inputs: the input measurements.
        predictors: factories of the predictors evaluated (called with the preset).
        settings: extra preset sections of this experiment (``models.config.Key`` schema), e.g. ``data``.
        build_data: makes the dataset(s) the preset needs if missing (called with the preset and the launch).
        figures: writes the figures of a results folder; returns their paths.
        table_view: the experiment's own table from the long table (None: the long table only).
        view_file: file name of the view under the results folder.
        data_axes: the axes whose values change the training data (images or targets), e.g. ``kind`` and ``s``
            of the synthetic experiment, but not ``seed`` or ``decoder``. Predictors that need no training
            run (the recognition baselines, :mod:`experiments.baselines`) make one prediction per combination
            of these axes. None: not declared (such predictors then refuse the experiment).
        directions: the expected directions, tested after evaluation (``directions.csv``); the preset's
            ``directions`` section sets the k range of the secondary statistic and the bootstrap.
    """

    name: str
    axes: tuple[Axis, ...]
    run_overrides: Callable[[Point, Mapping[str, Any]], list[str]]
    inputs: tuple[InputMeasure, ...] = ()
    predictors: tuple[Callable[[Preset], Predictor], ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    build_data: Callable[[Preset, Launch], None] | None = None
    figures: Callable[[Path], list[Path]] | None = None
    table_view: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    view_file: str | None = None
    data_axes: tuple[str, ...] | None = None
    directions: tuple[Direction, ...] = ()

    def __post_init__(self) -> None:
        names = [axis.name for axis in self.axes]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.name}: repeated axis names {names}")
        unknown_data = sorted(set(self.data_axes or ()) - set(names))
        if unknown_data:
            raise ValueError(f"experiment {self.name}: data_axes names unknown axes {unknown_data}; axes: {names}")
        for measure in self.inputs:
            unknown = sorted(set(measure.per) - set(names))
            if unknown:
                raise ValueError(f"experiment {self.name}: {measure.measure} depends on unknown axes {unknown}")
        for direction in self.directions:
            unknown = sorted(set(direction.axes) - set(names))
            if unknown:
                raise ValueError(f"experiment {self.name}: direction {direction.label!r} names unknown axes {unknown}")

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(axis.name for axis in self.axes)

    def axis(self, name: str) -> Axis:
        for axis in self.axes:
            if axis.name == name:
                return axis
        raise KeyError(f"experiment {self.name} has no axis {name!r}; axes: {list(self.axis_names)}")

    def name_of(self, point: Point) -> str:
        """Run or record name of a (partial) point: the labels of its axes in declaration order."""
        return "_".join(axis.label(point[axis.name]) for axis in self.axes if axis.name in point)

    def points(self, grid: Mapping[str, Sequence[Any]]) -> Iterator[dict[str, Any]]:
        """Every combination of the grid's values, the first axis varying slowest."""
        yield from _product(self.axis_names, grid)


def _product(names: Sequence[str], grid: Mapping[str, Sequence[Any]]) -> Iterator[dict[str, Any]]:
    if not names:
        yield {}
        return
    first, rest = names[0], names[1:]
    for value in grid[first]:
        for tail in _product(rest, grid):
            yield {first: value, **tail}


class DataBuildError(RuntimeError):
    """A data builder an experiment ran exited non-zero; it has printed its own error (see :func:`run_builder`).

    Attributes:
        what: the data, for messages ("the synthetic data").
        command: the builder's command line.
        returncode: its exit status (2: the builder refused its input, e.g. a data root in use).
    """

    def __init__(self, what: str, command: Sequence[str], returncode: int) -> None:
        self.what, self.command, self.returncode = what, list(command), returncode
        super().__init__(f"building {what} failed (exit {returncode}; its error is above): {' '.join(command)}")


def run_builder(what: str, module: str, arguments: Sequence[str], cwd: Path) -> None:
    """Run a data builder (``python -m module arguments``) in a child process, for a declaration's ``build_data``.

    Raises:
        DataBuildError: the builder exited non-zero; the experiment commands answer it in one line
            (:func:`experiments.cli.building_data`).
    """
    command = [sys.executable, "-m", module, *arguments]
    LOGGER.info("building data: %s", " ".join(command))
    returncode = subprocess.run(command, cwd=cwd).returncode
    if returncode != 0:
        raise DataBuildError(what, command, returncode)
