"""Prediction files: every predictor (a trained network, a recognition baseline) writes its test-split
predictions once; output DS, test Chamfer and F-score read them.

Layout, under ``<results>/predictions/``: ``<name>.npy`` holds the (N, M, 3) float32 predicted clouds in the
**object frame** (viewer-centred predictions are rotated back, docs/shapenet.md), item i being item i of the test
split; ``<name>.json`` is a result document (:func:`dispersion_score.io.result_document`, kind
``predictions``) with the predictor, the target, the run, the item ids and the settings that made them. The
JSON is written last, atomically: its presence marks a complete prediction file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dispersion_score.artefact import FileRecord, check_file, inputs_mismatch, made_from, mismatch, record_file
from dispersion_score.frames import to_object_frame
from dispersion_score.io import atomic_save_npy, atomic_write_text, dumps, load_result, read_npy, result_document

PREDICTIONS_KIND = "predictions"


@dataclass(frozen=True)
class Predictions:
    """A prediction file read back: ``points`` (N, M, 3) float32 (memory-mapped), ``info`` (the JSON's result:
    predictor, target, run, ids, ...), ``settings`` and the files."""

    points: np.ndarray
    info: dict[str, Any]
    settings: dict[str, Any]
    points_file: Path
    info_file: Path
    made_from: list[dict[str, Any]] = field(default_factory=list)


def prediction_files(results_dir: Path, name: str) -> tuple[Path, Path]:
    """(points .npy, info .json) of prediction ``name``."""
    folder = results_dir / "predictions"
    return folder / f"{name}.npy", folder / f"{name}.json"


def is_complete(results_dir: Path, name: str) -> bool:
    """True when prediction ``name``'s JSON reads back, its points file is the one written with it (size,
    shape, CRC-32) and the files it was computed from (a network's weights) are unchanged; anything else
    (missing, truncated, edited, a model trained again) is predicted again."""
    points_file, info_file = prediction_files(results_dir, name)
    try:
        document = load_result(info_file, load_matrix=False)
    except (OSError, ValueError):
        return False
    return (
        document.get("kind") == PREDICTIONS_KIND
        and mismatch(points_file, FileRecord.from_json(document.get("points_record"))) is None
        and inputs_mismatch(document.get("made_from")) is None
    )


def write_predictions(
    results_dir: Path,
    name: str,
    points: np.ndarray,
    *,
    info: Mapping[str, Any],
    settings: Mapping[str, Any],
    ids: Sequence[str] | None = None,
    device: str | None = None,
    sources: Sequence[Path] = (),
    rotations: np.ndarray | None = None,
) -> Path:
    """Writes prediction ``name`` atomically (points first, the JSON last), always in the object frame.

    Args:
        results_dir: the experiment's results folder.
        name: the target's name (unique in the experiment).
        points: (N, M, 3) finite float predicted clouds: in the object frame, or, with ``rotations``, each in its
            item's viewer frame (rotated back here, once: :func:`dispersion_score.frames.to_object_frame`).
        info: what the table needs (predictor, target, run, frame the network predicted in, ...).
        settings: everything that made them (preset, run config, weights, ...).
        ids: the N test items' ids, in order.
        device: where they were computed.
        sources: files they were computed from (a network's weights), recorded so that predictions of a
            changed source are not reused (:func:`is_complete`).
        rotations: (N, 3, 3) world → camera rotations of the items' views when ``points`` are viewer-centred;
            None when they are in the object frame.

    Returns:
        The JSON path.

    Raises:
        ValueError: ``points`` is not (N, M, 3) with N, M >= 1 and finite values, ``ids`` has another length, or
            ``rotations`` is not (N, 3, 3).
    """
    if rotations is not None:
        points = to_object_frame(points, rotations)
    points = np.ascontiguousarray(points, dtype=np.float32)
    if points.ndim != 3 or points.shape[2] != 3 or 0 in points.shape:
        raise ValueError(f"prediction {name}: expected (N, M, 3) points with N, M >= 1, got {points.shape}")
    bad = ~np.isfinite(points).all(axis=(1, 2))
    if bad.any():
        raise ValueError(f"prediction {name}: item {int(np.flatnonzero(bad)[0])} has NaN or infinite coordinates")
    if ids is not None and len(ids) != len(points):
        raise ValueError(f"prediction {name}: {len(ids)} ids for {len(points)} clouds")
    points_file, info_file = prediction_files(results_dir, name)
    atomic_save_npy(points_file, points)
    result = {
        **info,
        "name": name,
        "n": int(points.shape[0]),
        "points_per_cloud": int(points.shape[1]),
        "frame": "object",
        "points_file": points_file.name,
        "ids": list(ids) if ids is not None else None,
    }
    document = result_document(result, settings=dict(settings), device=device, kind=PREDICTIONS_KIND)
    document["points_record"] = record_file(points_file).to_json()
    document["made_from"] = made_from(list(sources))
    atomic_write_text(info_file, dumps(document))
    return info_file


def read_predictions(results_dir: Path, name: str) -> Predictions:
    """Reads prediction ``name``.

    Raises:
        FileNotFoundError: it has not been written (or not completely).
        ValueError: the files do not match (wrong kind, shape or count), naming the file.
    """
    points_file, info_file = prediction_files(results_dir, name)
    if not info_file.is_file():
        raise FileNotFoundError(f"prediction {name} is not complete: {info_file} does not exist")
    document = load_result(info_file, load_matrix=False)
    if document.get("kind") != PREDICTIONS_KIND:
        raise ValueError(f"{info_file} is not a prediction file (kind {document.get('kind')!r})")
    info = document["result"]
    if document.get("points_record") is not None:  # files written before records were kept are not checked
        check_file(points_file, FileRecord.from_json(document["points_record"]), what="prediction points")
    points = read_npy(points_file, what="prediction points", mmap_mode="r")
    if points.ndim != 3 or points.shape[0] != info["n"] or points.shape[2] != 3:
        raise ValueError(f"{points_file} has shape {points.shape}; {info_file} says {info['n']} clouds of 3-D points")
    return Predictions(
        points, info, document.get("settings", {}), points_file, info_file, list(document.get("made_from") or [])
    )
