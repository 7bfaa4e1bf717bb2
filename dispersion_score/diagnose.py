"""Place any model's test predictions on the DS scale between pure recognition and the ground truth (docs/baselines.md).

:func:`diagnose` takes predicted clouds, their ground truth and (optionally) the training shapes, and reports

* ``ds_predictions`` (output DS) and ``ds_ground_truth``: DS_k of each set's Chamfer matrix (docs/library.md);
* ``chamfer`` (docs/library.md, squared, both directions, mean over items) and ``fscore`` / ``fscore_atlasnet``
  (Euclidean τ = 0.01 and the old AtlasNet convention, squared distance < 0.001; :func:`dispersion_score.fscore`);
* with training shapes: the **oracle-NN** predictions (for each ground-truth shape, the training shape nearest
  to it in Chamfer distance: an upper bound for any retrieval method) with their DS, Chamfer and F-score;
  ``distinct_nearest_predictions``, the number of distinct training shapes the predictions are nearest to (a
  recognizer that copies training shapes scores at most k), and the same count for the ground truth;
* ``position`` and ``ds_recognition`` (below).

**Position** places the predictions on the scale whose ends are pure recognition and the ground truth::

    position = (DS_pred - DS_rec) / (DS_gt - DS_rec) = DS_pred / DS_gt

with every DS taken in the frame the predictions are made in. The recognition end DS_rec is 0: a recognizer
that outputs at most k distinct shapes (the clustering baseline, any copy of k prototypes) has DS_k = 0, since
k-medoids puts a medoid on each distinct shape. So position 0 = as dispersed as pure recognition, 1 = as
dispersed as the ground truth (predictions equal to the ground truth give exactly 1); above 1 = more dispersed
than the ground truth; NaN when DS_gt = 0 (the scale has no length). Position measures dispersion only: read
it with the Chamfer and F-score, since predictions can be dispersed and wrong. Small noise on the ground truth
moves position only slightly away from 1, and not always upwards: normalising a noisy cloud to the unit ball
also shrinks it.

**Recognition extreme, as the tables see it.** ``ds_recognition`` is the object-frame DS of the k-prototype
recognizer: every ground-truth item replaced by the nearest (Chamfer) of the k medoids of the training shapes (of
the ground truth itself when no training shapes are given), found in the prediction frame. It is 0 in the object
frame; for viewer-centred predictions the k prototypes are rotated back with each test item's rotation, so it is
positive, possibly above DS_gt: recognition of view-dependent shapes looks dispersed in the object frame, which is
why position is measured in the prediction frame.

**Frames.** ``frame="object"``: every cloud is in one canonical frame. ``frame="viewer"``: predictions and
ground truth are in each test item's camera frame and ``rotations`` gives each item's world → camera rotation
R_i (docs/shapenet.md: viewer = object · R_iᵀ); training shapes are in the frame the model was trained in (each
training item's own view). The reported DS values (``ds_predictions``, ``ds_ground_truth``, ``ds_oracle``,
``ds_recognition``) are measured in the object frame (clouds · R_i), as output DS in docs/library.md and the
experiment tables; ``ds_predictions_viewer`` and ``ds_ground_truth_viewer`` are the viewer-frame values that
position uses. Chamfer and F-score do not depend on the frame (one rotation applies to both clouds); nearest
training shapes are searched in the viewer frame, where a viewer-centred recognizer makes its copies.

Every cloud is normalised to the unit ball first (centroid = mean of the points, largest norm 1), as for the
DS matrices, unless ``normalize=False``. Cost: three N×N Chamfer matrices (five in the viewer frame), one
N×N_train matrix per nearest-shape search, and, with training shapes and no ``train_matrix``, the N_train ×
N_train matrix for the medoids (pass the one ``dispersion-score shapes --save-matrix`` wrote to reuse it).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dispersion_score.chamfer import chamfer_matrix, normalize_unit_ball
from dispersion_score.clustering import kmedoids
from dispersion_score.evaluation import nearest_shapes, output_metrics
from dispersion_score.frames import FRAMES, to_object_frame
from dispersion_score.score import dispersion_score
from dispersion_score.shapes_io import list_shape_files, load_shapes

_ORTHONORMAL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose` reports (see the module docstring for each quantity's meaning).

    DS values use k medoids (``k``, ``method``, ``seed``) and are measured in the object frame; Chamfer values are
    squared distances of unit-ball clouds (when ``normalize``); F-scores are in [0, 1]. Fields about training
    shapes are None when none were given.
    """

    n: int
    k: int
    frame: str
    method: str
    seed: int
    normalize: bool
    ds_predictions: float
    ds_ground_truth: float
    ds_recognition: float
    recognition_source: str
    position: float
    chamfer: float
    fscore: float
    fscore_atlasnet: float
    n_train: int | None = None
    ds_oracle: float | None = None
    chamfer_oracle: float | None = None
    fscore_oracle: float | None = None
    fscore_atlasnet_oracle: float | None = None
    distinct_nearest_predictions: int | None = None
    distinct_nearest_oracle: int | None = None
    ds_predictions_viewer: float | None = None
    ds_ground_truth_viewer: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def position(ds_predictions: float, ds_ground_truth: float, ds_recognition: float = 0.0) -> float:
    """(ds_predictions − ds_recognition) / (ds_ground_truth − ds_recognition), all in one frame: 0 = pure
    recognition (DS 0 for at most k distinct shapes), 1 = as dispersed as the ground truth; NaN when
    ds_ground_truth <= ds_recognition. See the module docstring."""
    span = ds_ground_truth - ds_recognition
    if not span > 0:
        return math.nan
    return (ds_predictions - ds_recognition) / span


def diagnose(
    predictions: Any,
    ground_truth: Any,
    *,
    k: int,
    train: Any = None,
    train_matrix: np.ndarray | None = None,
    frame: str = "object",
    rotations: Any = None,
    method: str = "pam",
    seed: int = 0,
    normalize: bool = True,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Diagnosis:
    """Output DS, ground-truth DS, test metrics, oracle-NN and the position of the predictions on the DS scale.

    Args:
        predictions: (N, P, 3) predicted clouds, item i predicting ground-truth item i.
        ground_truth: (N, Q, 3) ground-truth clouds.
        k: medoids of every DS and of the recognition extreme, 1 <= k <= N (and <= N_train).
        train: optional (N_train, R, 3) training shapes (in the frame the model was trained in).
        train_matrix: optional (N_train, N_train) Chamfer matrix of ``train`` (e.g. the input shape DS's), used
            for its k medoids instead of computing it.
        frame: "object" or "viewer" (see the module docstring).
        rotations: (N, 3, 3) world → camera rotation of each test item; required for (only for) "viewer".
        method, seed: k-medoids method ("pam" or "alternate") and seed of every DS and of the medoids.
        normalize: normalise every cloud to the unit ball first.
        device: where to compute; None = the CPU.
        progress: tqdm progress bars for the matrices.

    Returns:
        A :class:`Diagnosis`.

    Raises:
        ValueError: mismatched counts, bad shapes or values (naming the set and item), k out of range, an
            unknown frame, missing or non-orthonormal rotations.
    """
    if frame not in FRAMES:
        raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")
    if train is None and train_matrix is not None:
        raise ValueError("train_matrix is the training shapes' matrix: it needs the training shapes (train)")
    pred = _clouds(predictions, "predictions", normalize)
    gt = _clouds(ground_truth, "ground_truth", normalize)
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} predictions for {len(gt)} ground-truth shapes; expected one per item")
    n = len(gt)
    if not 1 <= k <= n:
        raise ValueError(f"k must satisfy 1 <= k <= N = {n} (the number of test items), got {k}")
    rot = _rotations(rotations, n, frame)
    options = {"method": method, "seed": seed, "device": device}
    search = {"device": device, "progress": progress}

    def ds(clouds: np.ndarray, *, object_frame: bool = True) -> float:
        clouds = clouds if rot is None or not object_frame else to_object_frame(clouds, rot)
        matrix = chamfer_matrix(clouds, device=device, normalize=False, progress=progress)
        return dispersion_score(matrix, k, **options).ds

    gt_object = gt if rot is None else to_object_frame(gt, rot)
    gt_matrix = chamfer_matrix(gt_object, device=device, normalize=False, progress=progress)
    gt_result = dispersion_score(gt_matrix, k, **options)
    ds_predictions = ds(pred)
    if rot is None:
        scale = {"position": position(ds_predictions, gt_result.ds)}
    else:
        viewer = {
            "ds_predictions_viewer": ds(pred, object_frame=False),
            "ds_ground_truth_viewer": ds(gt, object_frame=False),
        }
        scale = {**viewer, "position": position(viewer["ds_predictions_viewer"], viewer["ds_ground_truth_viewer"])}
    metrics = output_metrics(pred, gt)
    fields: dict[str, Any] = {}
    if train is None:
        medoid_clouds, source = gt[gt_result.medoids], "ground-truth medoids"
    else:
        train_clouds = _clouds(train, "train", normalize)
        if k > len(train_clouds):
            raise ValueError(f"k = {k} exceeds the number of training shapes ({len(train_clouds)})")
        if train_matrix is None:
            train_matrix = chamfer_matrix(train_clouds, device=device, normalize=False, progress=progress)
        elif np.shape(train_matrix) != (len(train_clouds), len(train_clouds)):
            raise ValueError(
                f"train_matrix (--train-matrix) has shape {np.shape(train_matrix)}, expected "
                f"{(len(train_clouds),) * 2}: one row and column per training shape"
            )
        medoids = kmedoids(train_matrix, k, **options).medoids
        medoid_clouds, source = train_clouds[medoids], "training medoids"
        oracle = train_clouds[nearest_shapes(gt, train_clouds, **search)]
        oracle_metrics = output_metrics(oracle, gt)
        fields = {
            "n_train": len(train_clouds),
            "ds_oracle": ds(oracle),
            "chamfer_oracle": oracle_metrics["chamfer"],
            "fscore_oracle": oracle_metrics["fscore"],
            "fscore_atlasnet_oracle": oracle_metrics["fscore_atlasnet"],
            "distinct_nearest_predictions": int(len(np.unique(nearest_shapes(pred, train_clouds, **search)))),
            "distinct_nearest_oracle": int(len(np.unique(nearest_shapes(gt, train_clouds, **search)))),
        }
    recognition = medoid_clouds[nearest_shapes(gt, medoid_clouds, **search)]
    return Diagnosis(
        n=n,
        k=k,
        frame=frame,
        method=method,
        seed=seed,
        normalize=normalize,
        ds_predictions=ds_predictions,
        ds_ground_truth=gt_result.ds,
        ds_recognition=ds(recognition),
        recognition_source=source,
        **scale,
        **metrics,
        **fields,
    )


def _clouds(clouds: Any, name: str, normalize: bool) -> np.ndarray:
    array = clouds.detach().cpu().numpy() if isinstance(clouds, torch.Tensor) else np.asarray(clouds)
    if array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
        raise ValueError(f"{name} must be an (N, P, 3) array of clouds with N, P >= 1, got shape {array.shape}")
    array = array.astype(np.float32)
    bad = ~np.isfinite(array).all(axis=(1, 2))
    if bad.any():
        raise ValueError(f"{name}[{int(np.flatnonzero(bad)[0])}] has NaN or infinite coordinates")
    return normalize_unit_ball(array) if normalize else array


def _rotations(rotations: Any, n: int, frame: str) -> np.ndarray | None:
    if frame == "object":
        if rotations is not None:
            raise ValueError("rotations are only used with frame='viewer'")
        return None
    if rotations is None:
        raise ValueError("frame='viewer' needs the (N, 3, 3) world → camera rotation of every test item")
    rot = np.asarray(rotations, dtype=np.float64)
    if rot.shape != (n, 3, 3):
        raise ValueError(f"rotations must have shape ({n}, 3, 3), got {rot.shape}")
    error = np.abs(rot @ rot.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))
    if (error > _ORTHONORMAL_TOLERANCE).any():
        raise ValueError(
            f"rotations[{int(np.argmax(error))}] is not orthonormal (R Rᵀ differs from I by {error.max():.3g})"
        )
    return rot


# ------------------------------------------------------------------------------------------------ folders


def item_key(path: Path, directory: Path) -> str:
    """The name that matches files across folders: the path relative to ``directory`` with the file name cut at
    its first dot (``02691156/1a04.points.ply.npy`` → ``02691156/1a04``, as ShapeNet model ids)."""
    relative = path.relative_to(directory)
    return (relative.parent / relative.name.split(".", 1)[0]).as_posix()


def _keyed(directory: Path, recursive: bool, what: str) -> dict[str, Path]:
    keyed: dict[str, Path] = {}
    for path in list_shape_files(directory, recursive=recursive):
        key = item_key(path, directory)
        if key in keyed:
            raise ValueError(f"{what} folder {directory}: {keyed[key].name} and {path.name} have the same name {key!r}")
        keyed[key] = path
    return keyed


def match_shape_files(
    predictions_dir: str | os.PathLike, ground_truth_dir: str | os.PathLike, *, recursive: bool = False
) -> tuple[list[str], list[Path], list[Path]]:
    """Pairs the shape files of two folders by name (:func:`item_key`), in sorted name order.

    Returns:
        (names, prediction files, ground-truth files).

    Raises:
        ValueError: a name present in one folder only (listing up to 10 of each side), or two files of one folder
            with the same name.
    """
    pred = _keyed(Path(predictions_dir), recursive, "predictions")
    gt = _keyed(Path(ground_truth_dir), recursive, "ground-truth")
    only_pred, only_gt = sorted(set(pred) - set(gt)), sorted(set(gt) - set(pred))
    if only_pred or only_gt:
        parts = [
            f"{len(names)} only in {folder}: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}"
            for names, folder in ((only_pred, predictions_dir), (only_gt, ground_truth_dir))
            if names
        ]
        raise ValueError("prediction and ground-truth files do not match by name; " + "; ".join(parts))
    names = sorted(gt)
    return names, [pred[name] for name in names], [gt[name] for name in names]


def read_rotations(directory: str | os.PathLike, names: Sequence[str]) -> np.ndarray:
    """(N, 3, 3) rotations from ``<directory>/<name>.npy`` files (one (3, 3) world → camera matrix each).

    Raises:
        ValueError: a missing file (listing up to 10) or a file that is not a (3, 3) array (naming it).
    """
    directory = Path(directory)
    missing = [name for name in names if not (directory / f"{name}.npy").is_file()]
    if missing:
        listed = ", ".join(f"{name}.npy" for name in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise ValueError(f"{len(missing)} rotation file(s) missing in {directory}: {listed}")
    out = []
    for name in names:
        path = directory / f"{name}.npy"
        try:
            rotation = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ValueError(f"could not read rotation {path}: {error}") from error
        if rotation.shape != (3, 3):
            raise ValueError(f"rotation {path} has shape {rotation.shape}; expected (3, 3)")
        out.append(rotation)
    return np.stack(out).astype(np.float64)


def diagnose_folders(
    predictions_dir: str | os.PathLike,
    ground_truth_dir: str | os.PathLike,
    *,
    k: int,
    train_dir: str | os.PathLike | None = None,
    train_matrix: np.ndarray | None = None,
    frame: str = "object",
    rotations_dir: str | os.PathLike | None = None,
    points: int = 2500,
    sample_seed: int = 0,
    recursive: bool = False,
    npz_key: str | None = None,
    voxel_threshold: float = 0.5,
    **options: Any,
) -> tuple[Diagnosis, list[str]]:
    """:func:`diagnose` on folders of point clouds / meshes (the formats :func:`dispersion_score.load_shapes`
    reads), prediction and ground-truth files matched by name (:func:`match_shape_files`), rotations (viewer frame)
    from ``rotations_dir/<name>.npy``. Item i of each folder gets ``points`` points drawn with
    ``default_rng([sample_seed, i])``; ``npz_key`` and ``voxel_threshold`` are :func:`load_shapes`'s.
    ``options`` go to :func:`diagnose` (method, seed, normalize, device, progress). Returns the diagnosis and the
    matched names."""
    if frame == "viewer" and rotations_dir is None:
        raise ValueError(
            "frame 'viewer' needs a rotations folder (rotations_dir= / --rotations DIR: <name>.npy, each test "
            "item's (3, 3) rotation)"
        )
    if frame != "viewer" and rotations_dir is not None:
        raise ValueError("a rotations folder (--rotations) is only used with frame 'viewer' (--frame viewer)")
    names, pred_files, gt_files = match_shape_files(predictions_dir, ground_truth_dir, recursive=recursive)
    reading = {"num_points": points, "seed": sample_seed, "npz_key": npz_key, "voxel_threshold": voxel_threshold,
               "progress": bool(options.get("progress", False))}  # fmt: skip
    pred = load_shapes(pred_files, **reading)
    gt = load_shapes(gt_files, **reading)
    train = None
    if train_dir is not None:
        train = load_shapes(list_shape_files(train_dir, recursive=recursive), **reading)
    rotations = read_rotations(rotations_dir, names) if rotations_dir is not None else None
    result = diagnose(
        pred, gt, k=k, train=train, train_matrix=train_matrix, frame=frame, rotations=rotations, **options
    )
    return result, names


# ----------------------------------------------------------------------------------------------- figure


def plot_diagnosis(result: Diagnosis, *, title: str | None = None) -> Any:
    """The scale position is measured on, as one DS axis: the recognition end, the oracle-NN (object frame only),
    the predictions and the ground truth, marked and labelled with their values (a matplotlib Figure, drawn
    without pyplot). Viewer-frame results are drawn on the viewer-frame scale; the caption gives the
    object-frame output DS."""
    from matplotlib.figure import Figure

    if result.frame == "viewer":
        prediction, truth = result.ds_predictions_viewer, result.ds_ground_truth_viewer
        marks = [("recognition", 0.0, "tab:red", "s")]
        axis_label = f"dispersion score in the viewer frame (k = {result.k})"
    else:
        prediction, truth = result.ds_predictions, result.ds_ground_truth
        marks = [("recognition", result.ds_recognition, "tab:red", "s")]
        if result.ds_oracle is not None:
            marks.append(("oracle NN", result.ds_oracle, "tab:purple", "D"))
        axis_label = f"dispersion score (k = {result.k})"
    marks += [("predictions", prediction, "tab:blue", "o"), ("ground truth", truth, "k", "^")]
    figure = Figure(figsize=(7.5, 3.0))
    axis = figure.subplots()
    if truth > marks[0][1]:
        axis.axvspan(marks[0][1], truth, color="0.92", zorder=0)
    # Each mark has its own label height and marker size, so equal values (e.g. predictions at the recognition
    # end) stay readable: recognition and predictions above the axis, oracle and ground truth below.
    offsets = {"recognition": (12, 12), "predictions": (40, 7), "oracle NN": (-30, 9), "ground truth": (-58, 9)}
    for label, value, colour, marker in marks:
        offset, size = offsets[label]
        axis.plot([value], [0], marker=marker, color=colour, markersize=size, linestyle="none", label=label)
        axis.annotate(
            f"{label}\n{value:.4g}",
            (value, 0),
            xytext=(0, offset),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            color=colour,
        )
    values = [value for _, value, _, _ in marks]
    margin = 0.12 * (max(values) - min(values) or max(abs(max(values)), 1e-6))
    axis.set_xlim(min(values) - margin, max(values) + margin)
    axis.set_ylim(-1, 1)
    axis.set_yticks([])
    for side in ("left", "right", "top"):
        axis.spines[side].set_visible(False)
    axis.set_xlabel(axis_label)
    summary = (
        f"position {result.position:.3g} (0 = recognition, 1 = ground truth) · Chamfer {result.chamfer:.4g}"
        f" · F-score {result.fscore:.3f} (τ=0.01), {result.fscore_atlasnet:.3f} (AtlasNet)"
    )
    if result.frame == "viewer":
        summary += f"\nobject frame: output DS {result.ds_predictions:.4g}, ground truth {result.ds_ground_truth:.4g}"
    axis.set_title(summary if title is None else f"{title}\n{summary}", fontsize=9)
    figure.tight_layout()
    return figure
