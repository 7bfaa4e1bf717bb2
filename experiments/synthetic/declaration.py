"""The synthetic cube↔sphere experiment (docs/dataset.md, docs/library.md), declared for the generic runner.

Grid: kind (image_aug, shape_aug) × cluster size s × seed; each run trains on the training set
``cluster_<kind>_2by10_cltsize<s>.json``. Inputs: image DS and shape DS of each training set (per kind and s).
Predictors: the trained networks and the recognition baselines (one prediction per kind and s, the data axes;
docs/baselines.md). ``ds_table.csv`` keeps the experiment's own columns (kind, s, seed, ...);
``measurements.csv`` is the long table shared by all experiments. Registered by :mod:`experiments.builtin`;
the commands (:mod:`experiments.cli`):

    python -m experiments.synthetic --preset quick          # data, training, evaluation, figures
    python train_scripts/train_synthetic.py --preset paper --gpus 0 1 2 3
    python eval_scripts/eval_ds_synthetic.py --preset paper --gpus 0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from dataset.locations import REPO_ROOT
from dataset.synthetic.training_sets import CLUSTER_SIZES, KINDS, training_set_name
from dispersion_score.launch import Launch
from experiments.baselines import BASELINES
from experiments.config import Preset, repo_path
from experiments.declaration import Axis, Direction, Experiment, InputMeasure, Point, run_builder
from experiments.directions import SETTINGS as DIRECTION_SETTINGS
from experiments.network_predictor import network_predictor
from experiments.synthetic.figures import write_figures
from models.config import Key

NAME = "synthetic"

# The columns of ds_table.csv: the experiment's view of the long table.
VIEW_COLUMNS = (
    "kind",
    "s",
    "seed",
    "predictor",
    "measure",
    "ds",
    "inertia",
    "k",
    "n",
    "chamfer",
    "fscore",
    "preset",
    "method",
    "features",
    "ds_seed",
    "device",
    "matrix",
    "fscore_convention",
    "fscore_atlasnet",
    "prediction_points",
)

DATA_SETTINGS = {
    "image_size": Key(int, 224, "render size of the built data (the network resizes to its own input)", minimum=8),
    "points": Key(int, 30000, "dense surface samples per instance", minimum=1),
    "build_args": Key(
        list, [], "extra options of python -m dataset.synthetic (e.g. [--pool, clusters])", item_type=str
    ),
}


# The paper's directions (Zhou et al. 2021, Sec. 4), fixed before any result is seen (issue 19).
DIRECTIONS = (
    Direction("input image DS rises along image_aug", "input_image", "s", +1, where={"kind": "image_aug"}),
    Direction("input shape DS rises along shape_aug", "input_shape", "s", +1, where={"kind": "shape_aug"}),
    Direction("output DS falls along image_aug", "output", "s", -1, where={"kind": "image_aug"}),
    Direction("output DS rises along shape_aug", "output", "s", +1, where={"kind": "shape_aug"}),
)


def run_overrides(point: Point, preset: Mapping[str, Any]) -> list[str]:
    return [f"data.train_file={training_set_name(point['kind'], point['s'])}", f"seed={point['seed']}"]


def build_data(preset: Preset, launch: Launch) -> None:
    """Build (or finish building) the synthetic dataset the training config points at."""
    training = preset.training_config(preset.runs[0])
    settings = preset.config["data"]
    arguments = [
        "--root",
        str(repo_path(training["data"]["root"])),
        "--image-size",
        str(settings["image_size"]),
        "--points",
        str(settings["points"]),
        "--workers",
        str(launch.workers or preset.workers),
        *settings["build_args"],
    ]
    run_builder("the synthetic data", "dataset.synthetic", arguments, REPO_ROOT)


def table_view(table: pd.DataFrame) -> pd.DataFrame:
    """ds_table.csv: the synthetic columns; the ground-truth row has kind "test"."""
    view = table.copy()
    view.loc[view["measure"] == "gt_test", "kind"] = "test"
    for column in VIEW_COLUMNS:
        if column not in view.columns:
            view[column] = None
    view = view[list(VIEW_COLUMNS)]
    return view.sort_values(["measure", "kind", "s", "predictor", "seed"], na_position="first").reset_index(drop=True)


def synthetic() -> Experiment:
    """The declaration of the synthetic experiment (registered as ``synthetic``)."""
    return Experiment(
        name=NAME,
        axes=(
            Axis("kind", str, "training-set family (docs/dataset.md)", choices=KINDS),
            Axis("s", int, "cluster size parameter s", choices=CLUSTER_SIZES, label=lambda s: f"s{s:02d}"),
            Axis("seed", int, "training seed", label=lambda seed: f"seed{seed}", minimum=0),
        ),
        run_overrides=run_overrides,
        inputs=(InputMeasure("input_image", ("kind", "s")), InputMeasure("input_shape", ("kind", "s"))),
        predictors=(network_predictor, *BASELINES),
        data_axes=("kind", "s"),
        settings={"data": DATA_SETTINGS, "directions": DIRECTION_SETTINGS},
        directions=DIRECTIONS,
        build_data=build_data,
        figures=write_figures,
        table_view=table_view,
        view_file="ds_table.csv",
    )
