"""Recognition baselines as predictors (docs/baselines.md; Tatarchenko et al., CVPR 2019, as the paper uses them).

Each baseline writes test-split predictions as files like a trained network (:mod:`experiments.prediction_files`), so
output DS, test Chamfer and F-score are measured on them by the same code, and their rows appear in the tables
with ``predictor`` = the baseline's name. They put a network's output DS on a scale: pure recognition (the
baselines) at one end, the ground-truth test set's DS at the other.

* ``clustering``: k-medoids (k = ``baselines.k``, default ``ds.k``) on the training shapes' Chamfer matrix, the
  very matrix the input-shape DS measurement stored (``matrices/<record>.npy``; it is never recomputed); an image
  classifier (:mod:`experiments.cluster_classifier`) trained with cross-entropy to predict each training image's
  cluster; prediction = the predicted cluster's medoid shape. At most k distinct shapes are predicted.
* ``retrieval``: the training image nearest to the test image in VGG16 relu3_3 channel-max feature space (the
  features of input image DS, with the preset's ``ds.image_weights``; squared Euclidean distance); prediction =
  that training item's shape.
* ``oracle``: the training shape with the smallest Chamfer distance (the evaluation's Chamfer, test × train through
  :func:`dispersion_score.chamfer_cross`) to the ground-truth test shape. It reads the ground truth: it is an
  upper bound for any retrieval method, not a method.

Targets: a baseline needs no training run; it makes one prediction per combination of the experiment's data axes
(:attr:`experiments.declaration.Experiment.data_axes`, the axes that change the training data), named
``<baseline>_<point>`` (``clustering_image_aug_s05``), on the test split of the first run (in grid order) with
those values. The training split is that run's, built like every evaluation split (``ds.shape_points`` points
drawn with ``ds.ds_seed``).

Frames: a baseline predicts in the frame the networks are trained in (the training split's: the object frame, or
for viewer-centred data each training item's viewer frame) and, for viewer-centred data, rotates its predictions
back to the object frame with each test item's camera rotation (``P R``), exactly like the network predictor.

Declaring them: ``Experiment(..., data_axes=("kind", "s"), predictors=(network_predictor, *BASELINES))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset

from dataset.contract import DatasetSplit
from dataset.splits import image_paths, item_ids, item_rotations, stacked_points
from dispersion_score import chamfer_cross, kmedoids, nearest_shapes, resolve_device
from dispersion_score.artefact import load_npy_recorded, save_npy_recorded
from dispersion_score.clustering import KMEDOIDS_REVISION
from dispersion_score.io import load_result, read_npy
from dispersion_score.perceptual import feature_label, perceptual_features
from experiments.cluster_classifier import classify, load_classifier, train_classifier, weights_label
from experiments.config import Preset, partial_point
from experiments.declaration import Experiment, PredictedClouds, Target
from experiments.runner import (
    DS_THREADS,
    cached_features,
    evaluation_split,
    feature_cache,
    input_record_name,
    input_split,
    record_path,
    run_config,
)

BASELINE_NAMES = ("clustering", "retrieval", "oracle")
ORACLE_NOTE = "reads the ground truth: an upper bound for retrieval, not a method"


# --------------------------------------------------------------------------------------------- targets


def data_axes(experiment: Experiment) -> tuple[str, ...]:
    """The experiment's data axes; ValueError when it declares none."""
    if experiment.data_axes is None:
        raise ValueError(
            f"experiment {experiment.name} declares no data_axes (the axes that change the training data); "
            "the recognition baselines make one prediction per combination of them"
        )
    return tuple(experiment.data_axes)


def baseline_targets(preset: Preset, name: str) -> list[Target]:
    """One target per combination of the data axes' values, on the first run (grid order) that has it."""
    axes = data_axes(preset.experiment)
    found: dict[str, Target] = {}
    for run in preset.runs:
        point = partial_point(run.point, axes)
        label = preset.experiment.name_of(point)
        target = f"{name}_{label}" if label else name
        found.setdefault(target, Target(name, target, point, run.name))
    return list(found.values())


@dataclass(frozen=True)
class Splits:
    """The training and test splits of a target's run, and the frame the networks are trained in."""

    config: dict[str, Any]
    train: DatasetSplit
    test: DatasetSplit
    frame: str


def target_splits(preset: Preset, target: Target) -> Splits:
    """The evaluation splits (``ds.shape_points`` points, seed ``ds.ds_seed``) of the target's run."""
    config = run_config(preset, preset.run(target.run))
    train, test = evaluation_split(preset, config, "train"), evaluation_split(preset, config, "test")
    frame = train.frame
    if test.frame != frame:
        raise ValueError(f"{target.name}: the training split is in the {frame} frame, the test split is not")
    return Splits(config, train, test, frame)


def clouds_of(dataset: DatasetSplit, indices: np.ndarray) -> np.ndarray:
    """(len(indices), P, 3) float32 ground-truth clouds of the given items (in the dataset's frame)."""
    unique, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
    clouds = np.stack([np.asarray(dataset.points(int(i)), dtype=np.float32) for i in unique])
    return clouds[inverse.reshape(-1)]


def _predicted(
    name: str, splits: Splits, chosen: np.ndarray, info: dict[str, Any], settings: dict[str, Any]
) -> PredictedClouds:
    """Training item ``chosen[i]``'s shape for test item i, in the frame of the training split (rotated to the
    object frame with the test item's rotation when written)."""
    points = clouds_of(splits.train, chosen)
    rotations = item_rotations(splits.test) if splits.frame == "viewer" else None
    info = {
        "baseline": name,
        "predicted_frame": splits.frame,
        "distinct_shapes": int(len(np.unique(chosen))),
        "train_items": [int(i) for i in chosen],
        **info,
    }
    settings = {"run_config": splits.config, **settings}
    return PredictedClouds(points, item_ids(splits.test), info, settings, rotations=rotations)


# ---------------------------------------------------------------------------------------------- oracle


@dataclass(frozen=True)
class OraclePredictor:
    """The training shape nearest (Chamfer) to each ground-truth test shape: an upper bound for retrieval."""

    name: str = "oracle"
    trains: bool = False

    def targets(self, preset: Preset) -> list[Target]:
        return baseline_targets(preset, self.name)

    def predict(self, preset: Preset, target: Target, *, device: str) -> PredictedClouds:
        splits = target_splits(preset, target)
        # The evaluation's Chamfer on the clouds as given: the oracle minimises exactly the test Chamfer reported.
        chosen = nearest_shapes(stacked_points(splits.test), stacked_points(splits.train), device=device, progress=True)
        return _predicted(self.name, splits, chosen, {"note": ORACLE_NOTE}, {})


def oracle_predictor(preset: Preset) -> OraclePredictor:
    return OraclePredictor()


# ------------------------------------------------------------------------------------------- retrieval


@torch.no_grad()
def nearest_features(
    queries: np.ndarray, references: np.ndarray, *, device: str = "cpu", block: int = 1024
) -> np.ndarray:
    """(N_q,) index of the reference row nearest (squared Euclidean) to each query row; ties to the lowest index.

    Rows of ``queries`` (N_q, d) are compared with ``references`` (N_r, d) in blocks of ``block`` queries, one
    matmul each; both are first centred on the references' mean (float64), which changes no distance and keeps
    the expansion |q|² + |r|² − 2 q·r from cancelling. Memory: block · N_r floats.
    """
    dev = resolve_device(device)
    mean = torch.from_numpy(np.asarray(references, dtype=np.float64).mean(axis=0)).to(dev)
    refs = (torch.from_numpy(np.asarray(references)).to(dev, torch.float64) - mean).float()
    ref_norms = refs.square().sum(dim=1)
    out = []
    for start in range(0, len(queries), block):
        rows = (torch.from_numpy(np.asarray(queries[start : start + block])).to(dev, torch.float64) - mean).float()
        distances = torch.addmm(rows.square().sum(dim=1, keepdim=True) + ref_norms, rows, refs.T, alpha=-2.0)
        out.append(distances.argmin(dim=1).cpu())
    return torch.cat(out).numpy().astype(np.int64)


@dataclass(frozen=True)
class RetrievalPredictor:
    """The shape of the training image nearest to each test image (VGG16 relu3_3 channel-max features)."""

    name: str = "retrieval"
    trains: bool = False

    def targets(self, preset: Preset) -> list[Target]:
        return baseline_targets(preset, self.name)

    def predict(self, preset: Preset, target: Target, *, device: str) -> PredictedClouds:
        splits = target_splits(preset, target)
        train = split_features(preset, image_paths(splits.train), device=device)
        test = split_features(preset, image_paths(splits.test), device=device)
        chosen = nearest_features(test, train, device=device)
        label = feature_label(preset.ds["image_weights"], "channel_max")
        return _predicted(self.name, splits, chosen, {"features": label}, {"features": label})


def split_features(preset: Preset, paths: list[Path], *, device: str = "cpu") -> np.ndarray:
    """(N, 3136) VGG16 relu3_3 channel-max features of a split's images (weights ``ds.image_weights``).

    Cached (:func:`experiments.runner.feature_cache`): the targets of an experiment share one test split (e.g. 16
    synthetic targets, or every yaw range's r = 90 test renders), whose features are then computed once, and the
    training splits' features come from the input image DS measurements, which store them there.
    """
    cached = cached_features(preset, paths)
    if cached is not None:
        return cached
    unique = sorted(set(paths))  # training sets often repeat images
    features = perceptual_features(
        unique, weights=preset.ds["image_weights"], device=device, batch_size=preset.ds["batch_size"], progress=True
    )
    row = {path: i for i, path in enumerate(unique)}
    out = features[[row[path] for path in paths]]
    save_npy_recorded(feature_cache(preset, paths), out)
    return out


def retrieval_predictor(preset: Preset) -> RetrievalPredictor:
    return RetrievalPredictor()


# ------------------------------------------------------------------------------------------ clustering


@dataclass(frozen=True)
class ShapeMatrix:
    """The stored input-shape Chamfer matrix of a target's training split (memory-mapped) and where it came from."""

    matrix: np.ndarray
    record: str
    run: str
    file: Path


def input_shape_matrix(preset: Preset, target: Target) -> ShapeMatrix:
    """The input-shape DS matrix of the target's training data, as the input measurement stored it.

    Raises:
        ValueError: the experiment measures no input shape DS, or the matrix does not fit the training split.
        FileNotFoundError: the measurement has not been made yet (the message says how).
    """
    measures = [m for m in preset.experiment.inputs if m.measure == "input_shape"]
    if not measures:
        raise ValueError(
            f"experiment {preset.experiment.name} measures no input shape DS; the clustering baseline clusters "
            "that measurement's Chamfer matrix (declare InputMeasure('input_shape', ...))"
        )
    point = partial_point(preset.run(target.run).point, measures[0].per)
    name = input_record_name(preset, point, "input_shape")
    path = record_path(preset, name)
    if not path.is_file():
        raise FileNotFoundError(
            f"{target.name}: the input shape DS record {path} does not exist; measure the inputs first "
            f"(the experiment's evaluation does it before the predictions)"
        )
    document = load_result(path, load_matrix=False)
    if not document.get("matrix_file"):
        raise ValueError(f"{path} names no matrix file")
    file = (path.parent / document["matrix_file"]).resolve()
    matrix = read_npy(file, what="input-shape matrix", mmap_mode="r")
    return ShapeMatrix(matrix, name, str(document["settings"]["run"]), file)


@dataclass(frozen=True)
class ClusteringPredictor:
    """k-medoids of the training shapes, an image classifier of the clusters, the medoid as prediction."""

    name: str = "clustering"
    trains: bool = False

    def targets(self, preset: Preset) -> list[Target]:
        return baseline_targets(preset, self.name)

    def predict(self, preset: Preset, target: Target, *, device: str) -> PredictedClouds:
        stored = input_shape_matrix(preset, target)
        splits = target_splits(preset, target)
        rows = matrix_rows(preset, stored, splits.train, target.run)
        k = preset.config["baselines"]["k"] or preset.ds["k"]
        clusters = cluster_training_shapes(preset, stored, k, device=device)
        medoids = rows[clusters.medoids]  # training items
        labels = label_training_items(splits.train, rows, clusters.labels, medoids, device=device)
        classifier = dict(preset.config["baselines"]["classifier"])
        settings = {**classifier, "num_classes": k, "matrix": stored.record, "medoids": medoids.tolist()}
        folder = preset.runs_dir / "baselines" / target.name
        train_classifier(folder, splits.train, labels, settings, device=device)
        model, trained = load_classifier(folder, device=device)
        predicted = classify(model, splits.test, device=device, batch_size=classifier["batch_size"])
        chosen = medoids[predicted]
        info = {
            "k": k,
            "matrix": stored.record,
            "matrix_items": int(len(rows)),
            "classifier": weights_label(classifier["arch"], classifier["weights"]),
            "classifier_train_accuracy": trained["train_accuracy"],
            "classifier_folder": str(folder),
            "kmedoids_inertia": clusters.inertia,
            "kmedoids_revision": KMEDOIDS_REVISION,
        }
        return _predicted(self.name, splits, chosen, info, {"classifier": settings})


def matrix_rows(preset: Preset, stored: ShapeMatrix, train: DatasetSplit, run: str) -> np.ndarray:
    """(M,) the training item of each row of the stored matrix.

    The matrix covers the training split of the run it was measured on, or its seeded subsample when
    ``ds.input_subsample`` is set (the same items :func:`experiments.runner.input_split` draws); when the
    measurement depends on fewer axes than the data (e.g. shapes measured once for every yaw range), the
    target's run must have the same training items in the same order (checked by item id).

    Raises:
        ValueError: the matrix does not fit the split (another size, or other items).
    """
    measured = input_split(preset, preset.run(stored.run))
    rows = np.asarray(measured.indices if isinstance(measured, Subset) else range(len(measured)), dtype=np.int64)
    if stored.matrix.shape != (len(rows), len(rows)):
        raise ValueError(
            f"{stored.file} has shape {stored.matrix.shape} but the input-shape measurement of run {stored.run} "
            f"covers {len(rows)} training items; the clustering baseline needs its rows to be those items"
        )
    if stored.run != run:
        full = evaluation_split(preset, run_config(preset, preset.run(stored.run)), "train")
        if item_ids(full) != item_ids(train):
            raise ValueError(
                f"{stored.file} was measured on the training split of run {stored.run}, whose items differ from "
                f"those of run {run}; declare the input_shape measurement per the data axes"
            )
    return rows


def label_training_items(
    train: DatasetSplit, rows: np.ndarray, row_labels: np.ndarray, medoids: np.ndarray, *, device: str = "cpu"
) -> np.ndarray:
    """(N,) cluster of every training item: the k-medoids label for items that are matrix rows, the nearest medoid
    (the matrix's unit-ball Chamfer, one items × medoids :func:`dispersion_score.chamfer_cross`) for the others
    (a matrix measured on a subsample of the training split; the classifier still learns from every image).

    Args:
        train: the training split. rows: (M,) training item of each matrix row. row_labels: (M,) their
            k-medoids labels. medoids: (k,) training items of the medoids, in label order.
    """
    n = len(train)  # type: ignore[arg-type]
    labels = np.full(n, -1, dtype=np.int64)
    labels[rows] = row_labels
    rest = np.flatnonzero(labels < 0)
    if len(rest):
        # the matrix's Chamfer (unit-ball normalised), so rows and the rest are labelled by one distance
        distances = chamfer_cross(clouds_of(train, rest), clouds_of(train, medoids), device=device)
        labels[rest] = distances.argmin(axis=1)
    return labels


@dataclass(frozen=True)
class Clusters:
    medoids: np.ndarray  # (k,) int64 rows of the matrix
    labels: np.ndarray  # (M,) int64 cluster of each row
    inertia: float


def cluster_training_shapes(preset: Preset, stored: ShapeMatrix, k: int, *, device: str = "cpu") -> Clusters:
    """k-medoids (the preset's method, seed ``ds.ds_seed``) of the stored matrix, cached beside the classifiers.

    The cache (``<runs_dir>/baselines/clusters/<record>_k<k>_<method>_seed<seed>_rev<KMEDOIDS_REVISION>.npy``,
    rows medoids then labels) is shared by every target that uses the same matrix (e.g. one per yaw range when the
    shapes do not change).
    """
    method, seed = preset.ds["method"], preset.ds["ds_seed"]
    n = stored.matrix.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"baselines.k = {k} must lie in [1, {n}] (the training shapes of {stored.record})")
    # The k-medoids revision is part of the key: another revision gives other medoids for the same seed.
    name = f"{stored.record}_k{k}_{method}_seed{seed}_rev{KMEDOIDS_REVISION}.npy"
    cache = preset.runs_dir / "baselines" / "clusters" / name
    saved = load_npy_recorded(cache)  # None when absent or not the file that was cached
    if saved is not None and saved.shape == (2, n):
        medoids, labels = saved[0, :k], saved[1]
        if labels.min() >= 0 and labels.max() < k:
            inertia = float(np.asarray(stored.matrix[labels, medoids[labels]], dtype=np.float64).sum())
            return Clusters(medoids, labels, inertia)
    result = kmedoids(stored.matrix, k, method=method, seed=seed, device=device, threads=DS_THREADS)
    packed = np.zeros((2, n), dtype=np.int64)
    packed[0, :k], packed[1] = result.medoids, result.labels
    save_npy_recorded(cache, packed)
    return Clusters(
        np.asarray(result.medoids, dtype=np.int64), np.asarray(result.labels, dtype=np.int64), result.inertia
    )


def clustering_predictor(preset: Preset) -> ClusteringPredictor:
    return ClusteringPredictor()


# The factories an experiment lists after its network predictor: predictors=(network_predictor, *BASELINES).
BASELINES = (clustering_predictor, retrieval_predictor, oracle_predictor)
