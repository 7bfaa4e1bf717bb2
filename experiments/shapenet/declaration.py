"""The paper's ShapeNet experiments (docs/experiments.md), declared for the generic runner.

* ``more_imgs`` (more dispersed images): AtlasNet sphere×1 per yaw range r ∈ {0, 15, …, 90} and seed, trained
  on that r's training renders with object-centred targets; input image DS per r, input shape DS once; output
  DS, Chamfer and F-score of every run on the r = 90 test renders.
* ``more_shapes`` (more dispersed shapes): R2N2 view 01 for training, view 00 for test; object- vs
  viewer-centred targets × {AtlasNet sphere×1, AtlasNet square×25, FoldNet, PSGN} × seed; input image DS once
  (identical for both frames), input shape DS per frame; output DS in the object frame.
* ``nviews`` (number of training views): viewer-centred AtlasNet sphere×1 with 1, 3, 6, … R2N2 views per shape.

Registered by :mod:`experiments.builtin`. ``python -m experiments.shapenet --preset quick`` runs all three
(:data:`EXPERIMENT_NAMES`; building the stand-in and its yaw renders when the preset asks for it);
``train_scripts/train_more_imgs.py`` etc. run one experiment's steps (:mod:`experiments.cli`).
Presets: ``configs/presets/<experiment>/<preset>.yaml``; results under ``results/shapenet/<preset>/<experiment>/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dataset.locations import REPO_ROOT
from dataset.shapenet.dataset import FRAMES
from dataset.shapenet.layout import R2N2_VIEWS, TEST_YAW, YAW_IMAGE_SIZE, YAW_RANGES
from dispersion_score.launch import Launch
from experiments.baselines import BASELINES
from experiments.config import Preset, repo_path
from experiments.declaration import Axis, Direction, Experiment, InputMeasure, Point, run_builder
from experiments.directions import SETTINGS as DIRECTION_SETTINGS
from experiments.network_predictor import network_predictor
from experiments.records import MEASUREMENT_COLUMNS
from models.config import DECODERS, Key, decoder_overrides

MAX_VIEWS = R2N2_VIEWS - 1  # R2N2 training views are 01..23 (00 is the test view)
# The experiments ``python -m experiments.shapenet`` runs (one training sweep for all), in this order.
EXPERIMENT_NAMES = ("more_imgs", "more_shapes", "nviews")
# Columns of each experiment's ds_table.csv: every ShapeNet axis (empty where an experiment does not use it).
VIEW_COLUMNS = ("experiment", "yaw", "frame", "decoder", "views", "seed", *MEASUREMENT_COLUMNS)

DATA_SETTINGS = {
    "standin": Key(bool, False, "build the ShapeNet-13 stand-in at the training config's data.root if missing"),
    "per_category": Key(int, 20, "stand-in shapes per category", minimum=2),
    "categories": Key(
        list,
        None,
        "categories of the stand-in and its yaw renders (null: the ShapeNet-13)",
        nullable=True,
        item_type=str,
    ),
    "standin_seed": Key(int, 0, "seed of the stand-in generator", minimum=0),
    "yaw_renders": Key(bool, False, "render the yaw-limited sets this experiment needs if missing"),
    "yaw_image_size": Key(int, YAW_IMAGE_SIZE, "side of the yaw-limited renders", minimum=8),
    "render_seed": Key(int, 0, "seed of the yaw-limited camera draws", minimum=0),
}

# The paper's directions (Zhou et al. 2021, Sec. 5), fixed before any result is seen (issue 19). The paper states
# no direction of output DS against the number of views: that one is tested two-sided.
MORE_IMGS_DIRECTIONS = (
    Direction("input image DS rises with the yaw range r", "input_image", "yaw", +1),
    Direction("output DS falls with the yaw range r", "output", "yaw", -1),
)
VC_OC = ("object", "viewer")  # (low, high) of the paired tests: the direction is stated towards viewer-centred
MORE_SHAPES_DIRECTIONS = (
    Direction("input shape DS viewer-centred > object-centred", "input_shape", "frame", +1, "paired", VC_OC),
    Direction("output DS viewer-centred > object-centred", "output", "frame", +1, "paired", VC_OC, per=("decoder",)),
)
NVIEWS_DIRECTIONS = (
    Direction("input image DS rises with the views", "input_image", "views", +1),
    Direction("input shape DS rises with the views", "input_shape", "views", +1),
    Direction("output DS against the views", "output", "views", 0),
)

SEED = Axis("seed", int, "training seed", label=lambda seed: f"seed{seed}", minimum=0)


# --------------------------------------------------------------------------------------------- data


def _data_root(preset: Preset) -> Path:
    return repo_path(preset.training_config(preset.runs[0])["data"]["root"])


def _run_module(module: str, *arguments: str) -> None:
    run_builder("the ShapeNet data", module, arguments, REPO_ROOT)


def _categories(settings: Mapping[str, Any]) -> list[str]:
    return ["--categories", *settings["categories"]] if settings["categories"] else []


def build_standin(preset: Preset, launch: Launch) -> None:
    """The stand-in (meshes, point clouds, R2N2 renders, taxonomy) at the data root, if the preset asks."""
    settings = preset.config["data"]
    if not settings["standin"]:
        return
    _run_module(
        "dataset.shapenet.standin",
        "--root",
        str(_data_root(preset)),
        "--per-category",
        str(settings["per_category"]),
        "--seed",
        str(settings["standin_seed"]),
        "--workers",
        str(launch.workers or preset.workers),
        *_categories(settings),
    )


def build_yaw_renders(preset: Preset, launch: Launch, yaws: Sequence[int]) -> None:
    """The yaw-limited render sets of ``yaws`` for the training split and r = 90 for the test split."""
    settings = preset.config["data"]
    if not settings["yaw_renders"]:
        return
    root = _data_root(preset)
    common = [
        "--meshes",
        str(root / "ShapeNetCore.v1"),
        "--out",
        str(root / "ShapeNetV1RenderingAnglelimit"),
        "--image-size",
        str(settings["yaw_image_size"]),
        "--seed",
        str(settings["render_seed"]),
        "--workers",
        str(launch.workers or preset.workers),
        *_categories(settings),
    ]
    _run_module("dataset.shapenet.render", *common, "--split", "train", "--yaw", *map(str, yaws))
    _run_module("dataset.shapenet.render", *common, "--split", "test", "--yaw", str(TEST_YAW))


def _build_more_imgs(preset: Preset, launch: Launch) -> None:
    build_standin(preset, launch)
    build_yaw_renders(preset, launch, preset.config["grid"]["yaw"])


# ----------------------------------------------------------------------------------------- overrides


def _more_imgs_overrides(point: Point, preset: Mapping[str, Any]) -> list[str]:
    return [
        "data.dataset=shapenet", "data.shapenet.images=yaw", f"data.shapenet.yaw={point['yaw']}",
        f"data.shapenet.test_yaw={TEST_YAW}", "data.shapenet.frame=object", f"seed={point['seed']}",
    ]  # fmt: skip


def _more_shapes_overrides(point: Point, preset: Mapping[str, Any]) -> list[str]:
    return [
        "data.dataset=shapenet", "data.shapenet.images=r2n2", "data.shapenet.views=1",
        f"data.shapenet.frame={point['frame']}", *decoder_overrides(point["decoder"]), f"seed={point['seed']}",
    ]  # fmt: skip


def _nviews_overrides(point: Point, preset: Mapping[str, Any]) -> list[str]:
    views = point["views"]
    overrides = ["data.dataset=shapenet", "data.shapenet.images=r2n2", f"data.shapenet.views={views}",
                 "data.shapenet.frame=viewer", f"seed={point['seed']}"]  # fmt: skip
    steps = preset["steps"]
    if steps["equal"]:
        # Every view count gets the gradient steps of one view: epochs (and milestones) divided by the views.
        epochs = max(1, round(steps["epochs_at_one_view"] / views))
        milestones = sorted({max(1, round(m / views)) for m in steps["milestones_at_one_view"]})
        overrides += [f"train.epochs={epochs}", f"train.milestones={milestones}"]
    return overrides


STEPS_SETTINGS = {
    "equal": Key(bool, False, "train every view count for about the steps of one view (epochs / views)"),
    "epochs_at_one_view": Key(int, 120, "epochs of the one-view run (with equal: true)", minimum=1),
    "milestones_at_one_view": Key(list, [90, 110, 115], "its learning-rate milestones", item_type=int),
}


# ------------------------------------------------------------------------------------------- tables


def table_view(table: pd.DataFrame) -> pd.DataFrame:
    """ds_table.csv: the long table with every ShapeNet axis as a column (empty where not used)."""
    view = table.copy()
    for column in VIEW_COLUMNS:
        if column not in view.columns:
            view[column] = None
    return view[list(VIEW_COLUMNS) + [c for c in view.columns if c not in VIEW_COLUMNS]]


def _figures(name: str):  # noqa: ANN202 - a small closure factory
    def write(results_dir: Path) -> list[Path]:
        from experiments.shapenet.figures import write_figures

        return write_figures(results_dir, name)

    return write


def _declaration(
    name: str,
    axes: tuple[Axis, ...],
    overrides,
    inputs,
    build,
    data_axes: tuple[str, ...],
    baselines: bool,  # noqa: ANN001
    directions: tuple[Direction, ...],
    **settings: Any,
) -> Experiment:
    return Experiment(
        name=name,
        axes=axes,
        run_overrides=overrides,
        inputs=inputs,
        predictors=(network_predictor, *(BASELINES if baselines else ())),
        data_axes=data_axes,
        settings={"data": DATA_SETTINGS, "directions": DIRECTION_SETTINGS, **settings},
        directions=directions,
        build_data=build,
        figures=_figures(name),
        table_view=table_view,
        view_file="ds_table.csv",
    )


def more_imgs() -> Experiment:
    """The declaration of the more-images experiment (yaw range r × seed; registered as ``more_imgs``)."""
    yaw = Axis(
        "yaw", int, "yaw range r of the training renders, degrees", choices=YAW_RANGES, label=lambda r: f"yaw{r:03d}"
    )
    return _declaration(
        "more_imgs",
        (yaw, SEED),
        _more_imgs_overrides,
        (InputMeasure("input_image", ("yaw",)), InputMeasure("input_shape", ())),
        _build_more_imgs,
        data_axes=("yaw",),
        baselines=True,
        directions=MORE_IMGS_DIRECTIONS,
    )


def more_shapes() -> Experiment:
    """The declaration of the more-shapes experiment (frame × decoder × seed; registered as ``more_shapes``)."""
    frame = Axis("frame", str, "target frame: object- or viewer-centred", choices=FRAMES)
    decoder = Axis("decoder", str, "decoder (models.config.DECODERS)", choices=tuple(DECODERS))
    return _declaration(
        "more_shapes",
        (frame, decoder, SEED),
        _more_shapes_overrides,
        (InputMeasure("input_image", ()), InputMeasure("input_shape", ("frame",))),
        build_standin,
        data_axes=("frame",),
        baselines=True,
        directions=MORE_SHAPES_DIRECTIONS,
    )


def nviews() -> Experiment:
    """The declaration of the number-of-views experiment (views × seed; registered as ``nviews``)."""
    views = Axis(
        "views",
        int,
        "R2N2 training views per shape",
        choices=tuple(range(1, MAX_VIEWS + 1)),
        label=lambda v: f"views{v:02d}",
    )
    return _declaration(
        "nviews",
        (views, SEED),
        _nviews_overrides,
        (InputMeasure("input_image", ("views",)), InputMeasure("input_shape", ("views",))),
        build_standin,
        data_axes=("views",),
        baselines=False,  # the paper places the baselines in the two dispersion experiments only
        directions=NVIEWS_DIRECTIONS,
        steps=STEPS_SETTINGS,
    )
