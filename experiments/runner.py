"""The generic experiment runner: build data → train → predict → measure → tabulate → plot, resumably.

Every step skips what is done: training runs with ``done``, prediction files with their JSON, measurements
with their record. Training and prediction+output measurement run as jobs of the sweep runner
(:class:`dispersion_score.launch.Launch`: local CPU workers, one job per GPU, or SLURM through submitit);
input measurements and the ground-truth DS run in this process. A failed job is logged and the sweep goes on;
the caller exits non-zero listing the failures.

Datasets are built through the dataset registry (:func:`dataset.registry.build_dataset`) from a run's config,
with the evaluation's point count and seed (``ds.shape_points``, ``ds.ds_seed``), and read through the dataset
contract (:class:`dataset.contract.DatasetSplit`: ``points(i)``, ``image_path(i)``, ``rotation(i)``, ``frame``,
``subset``; docs/datasets.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from dataset.contract import DatasetSplit
from dataset.locations import REPO_ROOT
from dataset.registry import build_dataset
from dataset.splits import image_paths, item_rotations
from dataset.splits import stacked_points as split_frame_points
from dispersion_score import chamfer_matrix, dispersion_score, elbow, feature_matrix, output_metrics
from dispersion_score.artefact import load_npy_recorded, made_from, save_npy_recorded
from dispersion_score.clustering import KMEDOIDS_REVISION
from dispersion_score.frames import to_object_frame
from dispersion_score.io import atomic_write_text, read_npy
from dispersion_score.launch import Job, Launch, SweepReport, python_command
from dispersion_score.perceptual import feature_label, perceptual_features
from experiments.config import Preset, Run, partial_point
from experiments.declaration import InputMeasure, Predictor, Target
from experiments.directions import write_directions
from experiments.prediction_files import (
    is_complete,
    read_predictions,
    write_predictions,
)
from experiments.records import long_table, read_records, record_mismatch, write_record, write_table
from models.config import load_config
from models.training import DONE_FILE, final_model_problem

LOGGER = logging.getLogger("experiments.runner")
TRAIN_SCRIPT = REPO_ROOT / "train_scripts" / "train.py"
LONG_TABLE = "measurements.csv"
DS_VS_K_TABLE = "ds_vs_k.csv"
# k-medoids is a long chain of small operations: one thread was 6x faster than two here (docs/library.md).
DS_THREADS = 1
TILED_MIN_ITEMS = 2000  # matrices of this many items or more are computed out of core, in resumable tiles
_INPUT_SUBSAMPLE_STREAM = 2  # the input subsample's random stream, apart from k-medoids' (seed ds_seed)


# ------------------------------------------------------------------------------------------ datasets


def run_config(preset: Preset, run: Run) -> dict[str, Any]:
    """A run's own stored config (``config.yaml`` in its folder) when it has been started, else the config
    the preset derives for it."""
    stored = run.directory / "config.yaml"
    if stored.is_file():
        return load_config(stored)
    return preset.training_config(run)


def evaluation_split(preset: Preset, config: Mapping[str, Any], split: str) -> DatasetSplit:
    """The ``split`` of a run's data, with the evaluation's ground-truth point count and seed."""
    return build_dataset(config, split, num_points=preset.ds["shape_points"], point_seed=preset.ds["ds_seed"])


def stacked_points(dataset: DatasetSplit, *, object_frame: bool = False) -> np.ndarray:
    """(N, P, 3) float32 ground-truth clouds in item order; with ``object_frame`` viewer-centred items are
    rotated back to the object frame."""
    clouds = split_frame_points(dataset)
    if object_frame and dataset.frame == "viewer":
        clouds = to_object_frame(clouds, item_rotations(dataset))
    return clouds


# ---------------------------------------------------------------------------------------------- data


def build_data(preset: Preset, launch: Launch) -> None:
    """The experiment's data build (a no-op for declarations without one)."""
    if preset.experiment.build_data is not None:
        preset.experiment.build_data(preset, launch)


# ------------------------------------------------------------------------------------------ training


def training_jobs(preset: Preset) -> list[Job]:
    """One ``train_scripts/train.py`` job per run of the grid."""
    jobs = []
    for run in preset.runs:
        command = python_command(
            TRAIN_SCRIPT,
            "--config",
            str(preset.train_config_path),
            "--out",
            str(run.directory),
            *[item for override in run.overrides for item in ("--set", override)],
        )
        done = run.directory / DONE_FILE
        problem = final_model_problem(run.directory)
        if problem is not None:
            # The sweep skips a job whose marker exists: a run whose weights are damaged must not count as one.
            LOGGER.warning("run %s is trained again: %s", run.name, problem)
            done.unlink()
        jobs.append(Job(run.name, command, done, run.directory / "job.log"))
    return jobs


def needs_training(preset: Preset) -> bool:
    return any(predictor.trains for predictor in predictors(preset))


def train(preset: Preset, launch: Launch) -> SweepReport:
    """Trains every run that is not finished (nothing when no predictor needs trained runs)."""
    if not needs_training(preset):
        return SweepReport()
    return launch.run(
        training_jobs(preset),
        default_workers=preset.workers,
        cwd=REPO_ROOT,
        folder=preset.runs_dir / "submitit",
        description=f"training ({preset.name})",
    )


# -------------------------------------------------------------------------------------- predictions


def predictors(preset: Preset) -> list[Predictor]:
    return [factory(preset) for factory in preset.experiment.predictors]


def targets(preset: Preset) -> list[tuple[Predictor, Target]]:
    """Every prediction file the predictors can write now, with its predictor."""
    pairs = [(predictor, target) for predictor in predictors(preset) for target in predictor.targets(preset)]
    names = [target.name for _, target in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"experiment {preset.experiment.name}: two prediction targets share a name")
    return pairs


def find_target(preset: Preset, name: str) -> tuple[Predictor, Target]:
    for predictor, target in targets(preset):
        if target.name == name:
            return predictor, target
    raise ValueError(f"no prediction target {name!r} in preset {preset.name} (is its run finished?)")


def ensure_predictions(preset: Preset, predictor: Predictor, target: Target, *, device: str) -> None:
    """Writes the target's prediction file unless it is complete."""
    if is_complete(preset.results_dir, target.name):
        return
    made = predictor.predict(preset, target, device=device)
    write_predictions(
        preset.results_dir,
        target.name,
        made.points,
        ids=made.ids,
        device=device,
        info={
            "predictor": target.predictor,
            "target": target.name,
            "run": target.run,
            "point": dict(target.point),
            **made.info,
        },
        settings={"preset": preset.as_dict(), **made.settings},
        sources=made.sources,
        rotations=made.rotations,
    )


# ------------------------------------------------------------------------------------------ records


def record_path(preset: Preset, name: str) -> Path:
    return preset.results_dir / "records" / f"{name}.json"


def _ds_columns(preset: Preset, matrix: np.ndarray, device: str) -> dict[str, Any]:
    settings = preset.ds
    result = dispersion_score(
        matrix, settings["k"], method=settings["method"], seed=settings["ds_seed"], device=device, threads=DS_THREADS
    )
    return {
        "ds": result.ds,
        "inertia": result.inertia,
        "k": result.k,
        "n": result.n,
        "method": result.method,
        "kmedoids_revision": KMEDOIDS_REVISION,
    }


def write_ds_record(
    preset: Preset,
    name: str,
    matrix: np.ndarray,
    columns: Mapping[str, Any],
    settings: Mapping[str, Any],
    device: str,
) -> dict[str, Any]:
    """DS of ``matrix`` with the preset's k-medoids settings, written as ``records/<name>.json`` + matrix."""
    target = preset.results_dir / "matrices" / f"{name}.npy"
    # A matrix computed out of core already lives at its place: reference it instead of writing it again.
    in_place = isinstance(matrix, np.memmap) and Path(str(matrix.filename)).resolve() == target.resolve()
    full = {
        "experiment": preset.experiment.name,
        **columns,
        **_ds_columns(preset, matrix, device),
        "ds_seed": preset.ds["ds_seed"],
    }
    return write_record(
        record_path(preset, name),
        full,
        device=device,
        matrix=None if in_place else matrix,
        matrix_path=target,
        settings={"preset": preset.as_dict(), **settings},
    )


# ------------------------------------------------------------------------------------------- inputs


def _representatives(preset: Preset, measure: InputMeasure) -> list[tuple[dict[str, Any], Run]]:
    """(partial point, first run with it) for each combination of the measure's axes, in grid order."""
    seen: dict[str, tuple[dict[str, Any], Run]] = {}
    for run in preset.runs:
        point = partial_point(run.point, measure.per)
        seen.setdefault(preset.experiment.name_of(point), (point, run))
    return list(seen.values())


def _needs_measuring(path: Path) -> bool:
    """True when the record at ``path`` is missing, does not verify (:func:`records.record_mismatch`) or holds
    a DS of another k-medoids revision (:data:`KMEDOIDS_REVISION`; records written before revisions were stored
    have none); such a record is reported and measured again."""
    reason = record_mismatch(path, {"kmedoids_revision": KMEDOIDS_REVISION})
    if reason is not None and path.exists():
        LOGGER.warning("record %s is measured again: %s", path, reason)
    return reason is not None


def input_record_name(preset: Preset, point: Mapping[str, Any], measure: str) -> str:
    prefix = preset.experiment.name_of(point)
    return f"{prefix}_{measure}" if prefix else measure


def matrix_file(preset: Preset, name: str, n: int) -> Path | None:
    """Where a measurement's N×N matrix is computed out of core (resumable tiles, :mod:`dispersion_score.tiles`),
    or None to compute it in memory: tiles for N >= :data:`TILED_MIN_ITEMS` (same numbers either way)."""
    return preset.results_dir / "matrices" / f"{name}.npy" if n >= TILED_MIN_ITEMS else None


def measure_inputs(preset: Preset, *, device: str = "cpu", launch: Launch | None = None) -> None:
    """Input image/shape DS of the training splits and the ground-truth test DS (missing records only).

    Large matrices are computed in tiles run by ``launch`` (None: in this process), see :func:`matrix_file`.
    """
    todo = []
    for measure in preset.experiment.inputs:
        for point, run in _representatives(preset, measure):
            name = input_record_name(preset, point, measure.measure)
            if _needs_measuring(record_path(preset, name)):
                todo.append((measure.measure, point, run, name))
    splits = {run.name: input_split(preset, run) for _, _, run, _ in todo}
    features = _image_features(preset, [splits[run.name] for kind, _, run, _ in todo if kind == "input_image"], device)
    label = feature_label(preset.ds["image_weights"], "channel_max")
    for kind, point, run, name in tqdm(todo, desc="input DS", disable=not todo):
        dataset = splits[run.name]
        columns = {**point, "measure": kind, "preset": preset.name, "subsample": preset.ds["input_subsample"]}
        if kind == "input_image":
            out = matrix_file(preset, name, len(dataset))
            paths = image_paths(dataset)
            stacked = np.stack([features[path] for path in paths])
            save_npy_recorded(feature_cache(preset, paths), stacked)
            matrix = feature_matrix(
                stacked,
                device=device,
                out=out,
                launch=launch if out else None,
            )
            columns["features"] = label
        else:
            out = matrix_file(preset, name, len(dataset))
            matrix = chamfer_matrix(stacked_points(dataset), device=device, out=out, launch=launch if out else None)
            columns["features"] = "chamfer"
        write_ds_record(
            preset, name, matrix, columns, {"run": run.name, "split": "train", "frame": dataset.frame}, device
        )
    if preset.experiment.predictors and preset.runs and _needs_measuring(record_path(preset, "gt_test")):
        run = preset.runs[0]
        external = [target for _, target in targets(preset) if target.split is not None]
        config = dict(external[0].split) if external else run_config(preset, run)
        dataset = evaluation_split(preset, config, "test")
        out = matrix_file(preset, "gt_test", len(dataset))
        matrix = chamfer_matrix(
            stacked_points(dataset, object_frame=True),
            device=device,
            progress=True,
            out=out,
            launch=launch if out else None,
        )
        columns = {"measure": "gt_test", "preset": preset.name, "features": "chamfer"}
        write_ds_record(
            preset, "gt_test", matrix, columns, {"run": run.name, "split": "test", "frame": "object"}, device
        )


def input_split(preset: Preset, run: Run) -> DatasetSplit:
    """A run's training split for input DS: all items, or the seeded subsample of ``ds.input_subsample``."""
    dataset = evaluation_split(preset, run_config(preset, run), "train")
    fraction = preset.ds["input_subsample"]
    if fraction is None or fraction >= 1.0:
        return dataset
    count = max(1, round(fraction * len(dataset)))
    rng = np.random.default_rng([preset.ds["ds_seed"], _INPUT_SUBSAMPLE_STREAM])
    return dataset.subset(np.sort(rng.choice(len(dataset), size=count, replace=False)).tolist())


def feature_cache(preset: Preset, paths: list[Path]) -> Path:
    """Where the VGG16 features of these images (in this order) are cached: ``<results>/features/<key>.npy``,
    the key hashing the feature label and every file's path, size and modification time (rebuilt images are
    recomputed). Input image DS stores its training splits' features there; the retrieval baseline reads them.
    """
    digest = hashlib.sha256(feature_label(preset.ds["image_weights"], "channel_max").encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"\n{path}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return preset.results_dir / "features" / f"{digest.hexdigest()[:32]}.npy"


def cached_features(preset: Preset, paths: list[Path]) -> np.ndarray | None:
    """The (len(paths), D) features :func:`feature_cache` holds for these images, or None when the cache is
    absent, not the file that was cached, or of another shape (computed again)."""
    cached = load_npy_recorded(feature_cache(preset, paths))
    return cached if cached is not None and cached.ndim == 2 and cached.shape[0] == len(paths) else None


def _image_features(preset: Preset, datasets: Iterable[DatasetSplit], device: str) -> dict[Path, np.ndarray]:
    """VGG16 features of every image the datasets use, keyed by path: read from a dataset's intact feature
    cache (:func:`feature_cache`; a DS measured again, e.g. by another k-medoids revision, needs no new
    features), the others computed once each, in batches (training sets often share images)."""
    known: dict[Path, np.ndarray] = {}
    missing: set[Path] = set()
    for dataset in datasets:
        paths = image_paths(dataset)
        cached = cached_features(preset, paths)
        if cached is not None:
            known.update(zip(paths, cached, strict=True))
        else:
            missing.update(paths)
    todo = sorted(missing - known.keys())
    if todo:
        features = perceptual_features(
            todo, weights=preset.ds["image_weights"], device=device, batch_size=preset.ds["batch_size"], progress=True
        )
        known.update(zip(todo, features, strict=True))
    return known


# ------------------------------------------------------------------------------------------ outputs


def evaluate_target(preset: Preset, name: str, *, device: str = "cpu") -> dict[str, Any]:
    """Prediction file (if missing) and the output record (output DS, test Chamfer, F-score) of one target."""
    predictor, target = find_target(preset, name)
    ensure_predictions(preset, predictor, target, device=device)
    predictions = read_predictions(preset.results_dir, name)
    test_set = evaluation_split(preset, _split_config(preset, target), "test")
    ground_truth = stacked_points(test_set, object_frame=True)
    points = np.array(predictions.points, dtype=np.float32)  # a writable copy of the memory map
    if len(points) != len(ground_truth):
        raise ValueError(f"prediction {name} has {len(points)} clouds but the test split has {len(ground_truth)} items")
    # Inside a job: out-of-core tiles in this process (resumable if the job is killed), no nested jobs.
    matrix = chamfer_matrix(points, device=device, out=matrix_file(preset, f"{name}_output", len(points)))
    metrics = output_metrics(points, ground_truth)
    columns = {
        **target.point,
        "predictor": target.predictor,
        "measure": "output",
        "preset": preset.name,
        "features": "chamfer",
        "chamfer": metrics["chamfer"],
        "fscore": metrics["fscore"],
        "fscore_convention": "euclidean, tau=0.01 (unit ball)",
        # tau = 0.01 is below the point spacing of 1000-2500-point clouds, so the old AtlasNet convention
        # (squared distance < 0.001, i.e. tau = 0.032) is recorded too: it still separates models.
        "fscore_atlasnet": metrics["fscore_atlasnet"],
        "prediction_points": int(points.shape[1]),
        "predictions": f"predictions/{predictions.points_file.name}",
    }
    protocol = predictions.info.get("output_protocol")
    if protocol:
        columns["ds_original_protocol"] = _protocol_ds(points, protocol, device)
    settings = {
        "target": name,
        "run": target.run,
        "prediction_info": predictions.info,
        "prediction_settings": predictions.settings,
        # The measurement is stale once its predictions (or the weights that made them) change.
        "made_from": [*made_from([predictions.points_file]), *predictions.made_from],
    }
    return write_ds_record(preset, f"{name}_output", matrix, columns, settings, device)


def _split_config(preset: Preset, target: Target) -> dict[str, Any]:
    """The config whose test split a target predicts: its own, or its run's stored config."""
    return dict(target.split) if target.split is not None else run_config(preset, preset.run(target.run))


def _protocol_ds(points: np.ndarray, protocol: Mapping[str, Any], device: str) -> float:
    """Output DS under another protocol (the original release's: raw clouds, alternate, its seed and k)."""
    matrix = chamfer_matrix(points, device=device, normalize=bool(protocol["normalize_predictions"]))
    k = min(int(protocol["k"]), len(points))
    return dispersion_score(
        matrix, k, method=protocol["method"], seed=int(protocol["seed"]), device=device, threads=DS_THREADS
    ).ds


def output_jobs(preset: Preset) -> list[Job]:
    """One job per prediction target whose output record is missing (targets not ready are left out)."""
    jobs = []
    for _, target in targets(preset):
        command = (
            sys.executable,
            "-m",
            "experiments.evaluate",
            "--config",
            str(preset.source),
            *[item for override in preset.overrides for item in ("--set", override)],
            *preset.job_arguments,
            "--target",
            target.name,
        )
        marker = record_path(preset, f"{target.name}_output")
        if marker.exists() and _needs_measuring(marker):
            marker.unlink()  # the sweep skips a job whose marker exists: an unsound record must not count as one
        jobs.append(
            Job(f"eval_{target.name}", command, marker, preset.results_dir / "logs" / f"eval_{target.name}.log")
        )
    return jobs


def evaluate(preset: Preset, launch: Launch) -> tuple[SweepReport, pd.DataFrame]:
    """Input DS (here), prediction and output DS of every target (as jobs), then the tables."""
    measure_inputs(preset, device=launch.device, launch=launch)
    report = launch.run(
        output_jobs(preset),
        default_workers=preset.workers,
        cwd=REPO_ROOT,
        folder=preset.results_dir / "submitit",
        description="output DS",
    )
    return report, tabulate(preset)


# ------------------------------------------------------------------------------------------- tables


def tabulate(preset: Preset) -> pd.DataFrame:
    """Writes ``measurements.csv`` (the long table), the experiment's view, with ``ds.k_curve`` ``ds_vs_k.csv``,
    and ``directions.csv`` (:mod:`experiments.directions`); returns the long table."""
    rows = read_records(preset.results_dir / "records")
    table = long_table(rows, preset.experiment.axis_names)
    write_table(table, preset.results_dir / LONG_TABLE)
    experiment = preset.experiment
    if experiment.table_view is not None and experiment.view_file is not None:
        write_table(experiment.table_view(table), preset.results_dir / experiment.view_file)
    curves = ds_vs_k(preset, table) if preset.ds["k_curve"] else None
    if curves is not None:
        write_table(curves, preset.results_dir / DS_VS_K_TABLE)
    write_directions(experiment, preset.results_dir, table, curves, settings=preset.config.get("directions"))
    return table


def ds_vs_k(preset: Preset, table: pd.DataFrame) -> pd.DataFrame:
    """DS of every measurement's matrix for each k of ``ds.k_curve`` (k <= n), one row per (measurement, k).

    Shows whether the ordering of the sets holds over a range of k rather than at one k (docs/library.md). Each curve
    is cached in ``curves/<record>.json`` and recomputed only when the k list or the matrix changes.
    """
    ks = sorted(set(preset.ds["k_curve"]))
    keep = ["experiment", *preset.experiment.axis_names, "predictor", "measure", "n", "matrix"]
    rows = []
    for row in table[table["matrix"].notna()].itertuples(index=False):
        row = row._asdict()
        matrix_file = preset.results_dir / row["matrix"]
        usable = [k for k in ks if k <= int(row["n"])]
        for k, ds in zip(usable, _curve(preset, matrix_file, usable), strict=True):
            rows.append({**{key: row[key] for key in keep}, "k": k, "ds": ds})
    return pd.DataFrame(rows, columns=[*keep, "k", "ds"])


def _curve(preset: Preset, matrix_file: Path, ks: list[int]) -> list[float]:
    cache = preset.results_dir / "curves" / f"{matrix_file.stem}.json"
    key = {
        "ks": ks,
        "method": preset.ds["method"],
        "seed": preset.ds["ds_seed"],
        "kmedoids_revision": KMEDOIDS_REVISION,
        "matrix_mtime_ns": matrix_file.stat().st_mtime_ns,
        "matrix_bytes": matrix_file.stat().st_size,
    }
    try:
        stored = json.loads(cache.read_text())
    except (OSError, ValueError):  # absent, or cut short by a killed run: computed again
        stored = None
    if isinstance(stored, dict) and stored.get("key") == key and isinstance(stored.get("ds"), list):
        return stored["ds"]
    matrix = read_npy(matrix_file, what="distance matrix", mmap_mode="r")
    curve = elbow(matrix, ks, method=preset.ds["method"], seed=preset.ds["ds_seed"], threads=DS_THREADS) if ks else None
    values = [float(v) for v in curve.ds] if curve is not None else []
    atomic_write_text(cache, json.dumps({"key": key, "ds": values}))
    return values


def summary_table(preset: Preset, table: pd.DataFrame) -> pd.DataFrame:
    """DS per grid point without its seed, one column per (predictor, measure), mean over seeds."""
    axes = [axis for axis in preset.experiment.axis_names if axis != "seed"]
    rows = table[table["measure"] != "gt_test"].copy()
    if rows.empty or not axes:
        return rows
    rows["column"] = [
        m if p in (None, "network") or pd.isna(p) else f"{p}:{m}"
        for p, m in zip(rows["predictor"], rows["measure"], strict=True)
    ]
    pivot = rows.pivot_table(index=axes, columns="column", values="ds", aggfunc="mean")
    first = [c for c in ("input_image", "input_shape", "output") if c in pivot.columns]
    return pivot.reindex(columns=first + sorted(c for c in pivot.columns if c not in first))
