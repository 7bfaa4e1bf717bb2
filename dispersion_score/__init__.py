"""dispersion-score: the dispersion score (DS) of Zhou et al., 3DV 2021, on CPU and GPU."""

from dispersion_score.chamfer import chamfer_distance

__all__ = ["chamfer_distance"]
__version__ = "0.1.0"
