"""Experiment presets (``configs/presets/<experiment>/<preset>.yaml``): loaded by the training configs' loader.

A preset is a YAML file validated against a schema made of the generic keys below, the experiment's grid
(one list per axis under ``grid:``) and the experiment's own sections (``Experiment.settings``). It may
``inherit_from`` another preset (``quick`` inherits from ``paper`` and lists only what differs) and take
``--set key.sub=value`` overrides, exactly like a training config (:mod:`models.config`); errors name the key
path. Relative paths are relative to the repository root.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from dataset.locations import REPO_ROOT
from dispersion_score.clustering import METHODS
from experiments.declaration import Experiment, Point
from experiments.registry import get_experiment
from models.config import Key, load_config, read_config, resolve_config

DS_SCHEMA: dict[str, Key] = {
    "k": Key(int, 500, "medoids of every DS (k-medoids)", minimum=1),
    "method": Key(str, "pam", "k-medoids method", choices=METHODS),
    "ds_seed": Key(int, 0, "seed of k-medoids and of the ground-truth point sampling", minimum=0),
    "shape_points": Key(int, 2500, "points per ground-truth shape in input shape DS, gt DS and metrics", minimum=1),
    "image_weights": Key(
        str, "imagenet", "VGG16 weights of input image DS: imagenet, a state-dict file, or random (tests only)"
    ),
    "batch_size": Key(int, 50, "images per forward pass (features, predictions)", minimum=1),
    "input_subsample": Key(
        float,
        None,
        "input DS on a seeded random fraction of the training items (the original used 0.1); null = all",
        nullable=True,
        minimum=1e-6,
        maximum=1.0,
    ),
    "k_curve": Key(
        list,
        None,
        "also DS for these k of every matrix (DS-vs-k curves, ds_vs_k.csv); null = none",
        nullable=True,
        item_type=int,
        minimum=1,
    ),
}


PRESETS_DIR = REPO_ROOT / "configs" / "presets"
"""Experiment presets, one folder per experiment: ``<experiment>/<preset>.yaml``."""


def preset_schema(experiment: Experiment) -> dict[str, Any]:
    """The full preset schema of an experiment: generic keys, ``grid``, ``ds`` and its own sections."""
    grid = {
        axis.name: Key(
            list, None, axis.doc, item_type=axis.type, choices=axis.choices, minimum=axis.minimum, required=True
        )
        for axis in experiment.axes
    }
    schema: dict[str, Any] = {
        "experiment": Key(str, experiment.name, "experiment name (experiments.declaration registry)"),
        "preset": Key(str, None, "preset name recorded with every result (paper, quick, ...)", required=True),
        "train_config": Key(str, None, "training config of the runs (repository-relative path)", nullable=True),
        "train_overrides": Key(list, [], "--set overrides of every run's training config", item_type=str),
        "runs_dir": Key(str, None, "folder of the training runs", required=True),
        "results_dir": Key(str, None, "folder of records, matrices, predictions, tables, figures", required=True),
        "workers": Key(int, 1, "concurrent CPU jobs (training, evaluation) without --gpus", minimum=1),
        "grid": grid,
        "ds": dict(DS_SCHEMA),
        "baselines": {**BASELINES_SCHEMA, "classifier": dict(BASELINES_SCHEMA["classifier"])},
    }
    for name, section in experiment.settings.items():
        if name in schema:
            raise ValueError(f"experiment {experiment.name}: section {name!r} clashes with a generic preset key")
        schema[name] = section
    return schema


# Settings of the recognition baselines (experiments.baselines, docs/baselines.md). The defaults are the paper's
# (ResNet-50 with ImageNet weights); quick presets switch to a ResNet-18 trained from scratch.
CLASSIFIER_ARCHS = ("resnet50", "resnet18")
BASELINES_SCHEMA: dict[str, Any] = {
    "k": Key(int, None, "clusters of the clustering baseline; null = ds.k", nullable=True, minimum=1),
    "classifier": {
        "arch": Key(str, "resnet50", "image classifier of the clustering baseline", choices=CLASSIFIER_ARCHS),
        "weights": Key(
            str, "imagenet", "imagenet (torchvision file in the torch hub cache), a state-dict file, or none (scratch)"
        ),
        "epochs": Key(int, 30, "training epochs of the classifier", minimum=1),
        "batch_size": Key(int, 64, "images per step", minimum=1),
        "lr": Key(float, 1e-4, "Adam learning rate"),
        "weight_decay": Key(float, 0.0, "Adam weight decay"),
        "milestones": Key(list, [20], "epochs after which lr is multiplied by gamma", item_type=int),
        "gamma": Key(float, 0.1, "learning-rate factor at each milestone"),
        "seed": Key(int, 1, "seed of the initialisation of the new layer and of the data order", minimum=0),
        "checkpoint_every": Key(int, 1, "write the resumable checkpoint every N epochs", minimum=1),
        "num_workers": Key(int, 0, "DataLoader worker processes", minimum=0),
    },
}


def repo_path(value: str | Path) -> Path:
    """A repository-relative path made absolute (absolute paths are kept)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


@dataclass(frozen=True)
class Run:
    """One training run of the grid: its point, name, folder and training-config overrides."""

    point: Point
    name: str
    directory: Path
    overrides: tuple[str, ...]

    @property
    def finished(self) -> bool:
        return (self.directory / "done").exists()


@dataclass(frozen=True)
class Preset:
    """A loaded, validated preset of one experiment.

    Attributes:
        experiment: the declaration.
        config: the resolved preset (every key of :func:`preset_schema`).
        source: the preset file.
        overrides: the ``--set`` overrides applied on top of the file (jobs are started with the same ones).
        job_arguments: further options its evaluation jobs get (``--runs DIR`` for the original release).
    """

    experiment: Experiment
    config: dict[str, Any]
    source: Path
    overrides: tuple[str, ...] = ()
    job_arguments: tuple[str, ...] = ()  # extra options of its evaluation jobs (e.g. --runs DIR)

    @property
    def name(self) -> str:
        return str(self.config["preset"])

    @property
    def runs_dir(self) -> Path:
        return repo_path(self.config["runs_dir"])

    @property
    def results_dir(self) -> Path:
        return repo_path(self.config["results_dir"])

    @property
    def ds(self) -> dict[str, Any]:
        """The DS settings (section ``ds``: k, method, seeds, point counts, image weights)."""
        return self.config["ds"]

    @property
    def workers(self) -> int:
        return int(self.config["workers"])

    @property
    def train_config_path(self) -> Path:
        if self.config["train_config"] is None:
            raise ValueError(f"{self.source}: train_config is not set; this experiment's runs need one")
        return repo_path(self.config["train_config"])

    @cached_property
    def runs(self) -> list[Run]:
        """Every run of the grid, in grid order (first axis slowest)."""
        runs = []
        for point in self.experiment.points(self.config["grid"]):
            name = self.experiment.name_of(point)
            overrides = (*self.config["train_overrides"], *self.experiment.run_overrides(point, self.config))
            runs.append(Run(point, name, self.runs_dir / name, tuple(overrides)))
        names = [run.name for run in runs]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.source}: two runs of the grid get the same name; check the axes' labels")
        return runs

    def run(self, name: str) -> Run:
        for run in self.runs:
            if run.name == name:
                return run
        raise ValueError(f"no run {name!r} in preset {self.name} of {self.experiment.name}")

    def training_config(self, run: Run) -> dict[str, Any]:
        """The resolved training config of a run (what ``train_scripts/train.py`` will train with)."""
        return load_config(self.train_config_path, list(run.overrides))

    def as_dict(self) -> dict[str, Any]:
        """What results record as the preset: the resolved preset, its file and overrides."""
        return {
            "experiment": self.experiment.name,
            "source": str(self.source),
            "overrides": list(self.overrides),
            **self.config,
        }


def preset_path(experiment: Experiment, preset: str) -> Path:
    """The file of a named preset of an experiment ("quick", "paper")."""
    folder = PRESETS_DIR / experiment.name
    path = folder / f"{preset}.yaml"
    if not path.exists():
        available = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ValueError(f"unknown preset {preset!r}; available: {available}")
    return path


def load_preset(path: str | Path, overrides: Sequence[str] = (), *, experiment: str | None = None) -> Preset:
    """Reads and validates a preset file.

    Args:
        path: the YAML file (``inherit_from`` allowed).
        overrides: ``key.sub=value`` strings applied on top (e.g. ``grid.seed=[1, 2]``).
        experiment: the experiment the caller expects; the file's ``experiment`` key, when present, must
            agree (a file without one is read as this experiment).

    Raises:
        ValueError: unreadable file, unknown experiment, or a schema error naming the key path.
    """
    path = Path(path)
    raw = read_config(path, overrides)
    name = raw.get("experiment", experiment)
    if name is None:
        raise ValueError(f"{path}: missing key 'experiment' (the experiment this preset belongs to)")
    if experiment is not None and name != experiment:
        raise ValueError(f"{path} is a preset of experiment {name!r}, not {experiment!r}")
    if "eval" in raw:  # the section was called eval before it was told apart from the trainer's validation
        raise ValueError(f"{path}: the DS settings section is now called 'ds' (rename 'eval:' to 'ds:')")
    declaration = get_experiment(str(name))
    try:
        config = resolve_config(raw, schema=preset_schema(declaration))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return Preset(declaration, config, path.resolve(), tuple(overrides))


def partial_point(point: Point, axes: Sequence[str]) -> dict[str, Any]:
    """The point restricted to ``axes`` (in the point's order)."""
    return {name: value for name, value in point.items() if name in axes}


def with_settings(config: Mapping[str, Any], **data: Any) -> dict[str, Any]:
    """A training config with ``data`` keys replaced (e.g. the evaluation's point count and seed)."""
    return resolve_config({**config, "data": {**config["data"], **data}})
