"""dispersion-score: the dispersion score (DS) of Zhou et al., 3DV 2021, on CPU and GPU."""

from dispersion_score.chamfer import (
    chamfer_cross,
    chamfer_distance,
    chamfer_matrix,
    fscore,
    normalize_unit_ball,
)
from dispersion_score.features import feature_matrix
from dispersion_score.io import (
    atomic_save_npy,
    atomic_write_bytes,
    atomic_write_text,
    load_result,
    provenance,
    save_result,
)
from dispersion_score.kmedoids import KMedoidsResult, kmedoids
from dispersion_score.perceptual import (
    feature_label,
    load_images,
    perceptual_features,
    pixel_features,
    vgg16_relu3_3,
)
from dispersion_score.score import (
    DispersionResult,
    DispersionScores,
    ElbowResult,
    dispersion_score,
    dispersion_scores,
    elbow,
)
from dispersion_score.shapes_io import list_shape_files, load_shapes

__all__ = [
    "chamfer_distance",
    "chamfer_matrix",
    "chamfer_cross",
    "normalize_unit_ball",
    "fscore",
    "feature_matrix",
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
    "vgg16_relu3_3",
    "load_shapes",
    "list_shape_files",
    "save_result",
    "load_result",
    "provenance",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_save_npy",
]
__version__ = "0.1.0"
