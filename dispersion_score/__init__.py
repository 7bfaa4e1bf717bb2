"""dispersion-score: the dispersion score (DS) of Zhou et al., 3DV 2021, on CPU and GPU.

The public names below are imported on first use (PEP 562), so that the torch-free modules
(:mod:`dispersion_score.atomic`, :mod:`dispersion_score.locks`, :mod:`dispersion_score.images`) can be used
by tools that never load torch (the dataset builder and its worker processes).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "chamfer_distance": "chamfer",
    "chamfer_matrix": "chamfer",
    "chamfer_cross": "chamfer",
    "normalize_unit_ball": "chamfer",
    "unit_ball_transform": "chamfer",
    "fscore": "chamfer",
    "feature_matrix": "features",
    "to_object_frame": "frames",
    "nearest_shapes": "evaluation",
    "output_metrics": "evaluation",
    "KMedoidsResult": "clustering",
    "kmedoids": "clustering",
    "DispersionResult": "score",
    "DispersionScores": "score",
    "ElbowResult": "score",
    "dispersion_score": "score",
    "dispersion_scores": "score",
    "elbow": "score",
    "perceptual_features": "perceptual",
    "pixel_features": "perceptual",
    "feature_label": "perceptual",
    "load_images": "images",
    "read_image": "images",
    "vgg16_relu3_3": "perceptual",
    "load_shapes": "shapes_io",
    "list_shape_files": "shapes_io",
    "save_result": "io",
    "load_result": "io",
    "provenance": "io",
    "atomic_write_bytes": "atomic",
    "atomic_write_text": "atomic",
    "atomic_save_npy": "atomic",
    "directory_lock": "locks",
    "DirectoryLockedError": "locks",
    "resolve_device": "_validation",
}

__all__ = [
    "chamfer_distance",
    "chamfer_matrix",
    "chamfer_cross",
    "normalize_unit_ball",
    "unit_ball_transform",
    "fscore",
    "feature_matrix",
    "to_object_frame",
    "nearest_shapes",
    "output_metrics",
    "KMedoidsResult",
    "kmedoids",
    "DispersionResult",
    "DispersionScores",
    "ElbowResult",
    "dispersion_score",
    "dispersion_scores",
    "elbow",
    "perceptual_features",
    "pixel_features",
    "feature_label",
    "load_images",
    "read_image",
    "vgg16_relu3_3",
    "load_shapes",
    "list_shape_files",
    "save_result",
    "load_result",
    "provenance",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_save_npy",
    "directory_lock",
    "DirectoryLockedError",
    "resolve_device",
]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from dispersion_score._validation import resolve_device
    from dispersion_score.atomic import atomic_save_npy, atomic_write_bytes, atomic_write_text
    from dispersion_score.chamfer import (
        chamfer_cross,
        chamfer_distance,
        chamfer_matrix,
        fscore,
        normalize_unit_ball,
        unit_ball_transform,
    )
    from dispersion_score.clustering import KMedoidsResult, kmedoids
    from dispersion_score.evaluation import nearest_shapes, output_metrics
    from dispersion_score.features import feature_matrix
    from dispersion_score.frames import to_object_frame
    from dispersion_score.images import load_images, read_image
    from dispersion_score.io import load_result, provenance, save_result
    from dispersion_score.locks import DirectoryLockedError, directory_lock
    from dispersion_score.perceptual import feature_label, perceptual_features, pixel_features, vgg16_relu3_3
    from dispersion_score.score import (
        DispersionResult,
        DispersionScores,
        ElbowResult,
        dispersion_score,
        dispersion_scores,
        elbow,
    )
    from dispersion_score.shapes_io import list_shape_files, load_shapes


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dispersion_score' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"dispersion_score.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
