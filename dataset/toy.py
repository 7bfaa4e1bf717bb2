"""A procedural sphere↔cube dataset in memory: for tests, benchmarks and smoke runs without rendered data.

Item i of a split of n items has a shape parameter t = (i + offset) / n (offset 0, 0.25, 0.5 for train, val,
test, as in docs/dataset.md). Its target is a superellipsoid |x|^p + |y|^p + |z|^p = 1 with p = 2 + 8t (a sphere at
t = 0, close to a cube at t = 1), normalised to the unit ball; its image is a smoothly shaded superellipse
with the same exponent. Registered as ``data.dataset: toy`` (:mod:`dataset.builtin`); the index file names the
split and size, ``"train:20"``; ``root`` is ignored. Object frame; no image files and no cameras
(``image_path`` and ``rotation`` raise :class:`~dataset.contract.NotProvidedError`).
"""

from __future__ import annotations

import numpy as np
import torch

from dataset.base import DatasetBase
from dataset.registry import SplitRequest
from dispersion_score.chamfer import normalize_unit_ball

_OFFSETS = {"train": 0.0, "val": 0.25, "test": 0.5}


class ToyShapesDataset(DatasetBase):
    """Items: dict(image=(3, S, S) float in [0, 1], points=(num_points, 3), t, t_image, id, index).

    Args:
        root: ignored (the data is procedural; kept so every dataset takes its root first).
        index_file: ``"<split>:<count>"``, split in train/val/test.
        num_points: points per target cloud, drawn once per item from a generator seeded by (seed, index).
        image_size: image side S (default 64).
        normalization: only "unit_ball".
        seed: seed of the point sampling.
    """

    def __init__(
        self,
        root: object = None,
        index_file: str = "train:20",
        *,
        num_points: int = 2500,
        image_size: int | None = 64,
        normalization: str = "unit_ball",
        seed: int = 0,
    ) -> None:
        split, _, count = index_file.partition(":")
        if split not in _OFFSETS or not count.isdigit():
            raise ValueError(
                f"toy index_file must look like 'train:20' (split in {list(_OFFSETS)}), got {index_file!r}"
            )
        if normalization != "unit_ball":
            raise ValueError(f"toy dataset supports normalization='unit_ball' only, got {normalization!r}")
        self.split, self.count = split, int(count)
        self.num_points, self.image_size, self.seed = num_points, image_size or 64, seed

    def __len__(self) -> int:
        return self.count

    def t(self, index: int) -> float:
        """The shape parameter of item ``index`` (see the module docstring)."""
        return (index + _OFFSETS[self.split]) / self.count

    def _check_index(self, index: int) -> int:
        if not -self.count <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} items")
        return int(index) % self.count

    def _exponent(self, index: int) -> float:
        return 2.0 + 8.0 * self.t(index)

    def points(self, index: int) -> torch.Tensor:
        """(num_points, 3) float32 points of item ``index`` on its superellipsoid, in the unit ball."""
        index = self._check_index(index)
        generator = np.random.default_rng([self.seed, index])
        return torch.from_numpy(_superellipsoid(self._exponent(index), self.num_points, generator))

    def image(self, index: int) -> torch.Tensor:
        """(3, S, S) float32 image of item ``index`` in [0, 1]."""
        return torch.from_numpy(_image(self._exponent(self._check_index(index)), self.image_size))

    def item_id(self, index: int) -> str:
        """``"<split>_<index:04d>"``."""
        return f"{self.split}_{self._check_index(index):04d}"

    def __getitem__(self, index: int) -> dict[str, object]:
        index = self._check_index(index)
        t = self.t(index)
        return {
            "image": self.image(index),
            "points": self.points(index),
            "t": t,
            "t_image": t,
            "id": self.item_id(index),
            "index": index,
        }


def toy_split(request: SplitRequest) -> ToyShapesDataset:
    """The registry's factory of ``toy``: ``request.index_file`` (``data.<split>_file``) names split and size."""
    return ToyShapesDataset(request.root, request.index_file, **request.item_settings())


def _image(exponent: float, size: int) -> np.ndarray:
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    radius = (np.abs(x / 0.7) ** exponent + np.abs(y / 0.7) ** exponent) ** (1.0 / exponent)
    inside = 1.0 / (1.0 + np.exp((radius - 1.0) * 40.0))  # soft edge: smooth in the exponent
    shade = 0.35 + 0.5 * (1.0 - 0.5 * (x + 1.0)) * (0.5 * (y + 1.0))
    grey = 1.0 - inside * (1.0 - shade)
    tint = np.stack([grey, grey * 0.95, grey * 0.9])
    return np.clip(tint, 0.0, 1.0).astype(np.float32)


def _superellipsoid(exponent: float, count: int, generator: np.random.Generator) -> np.ndarray:
    directions = generator.standard_normal((count, 3))
    scale = (np.abs(directions) ** exponent).sum(axis=1, keepdims=True) ** (1.0 / exponent)
    return normalize_unit_ball(directions / scale).astype(np.float32)
