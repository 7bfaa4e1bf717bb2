"""Helpers over whole splits, written with the contract's methods (:class:`dataset.contract.DatasetSplit`):
arrays of every item's points, rotations, ids and image files, an evenly spaced subset, and an in-memory cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from dataset.contract import DatasetSplit, TrainingSplit


def stacked_points(split: DatasetSplit) -> np.ndarray:
    """(N, P, 3) float32 ground-truth clouds of every item, in item order and in the split's frame."""
    return np.stack([split.points(i).numpy() for i in range(len(split))]).astype(np.float32, copy=False)


def item_rotations(split: DatasetSplit) -> np.ndarray:
    """(N, 3, 3) float64 world → camera rotations of every item's view.

    Raises:
        NotProvidedError: the dataset has no camera per item.
    """
    return np.stack([np.asarray(split.rotation(i), dtype=np.float64) for i in range(len(split))])


def item_ids(split: DatasetSplit) -> list[str]:
    """The id of every item, in item order."""
    return [split.item_id(i) for i in range(len(split))]


def image_paths(split: DatasetSplit) -> list[Path]:
    """The image file of every item, in item order.

    Raises:
        NotProvidedError: the dataset's images are not files.
    """
    return [Path(split.image_path(i)) for i in range(len(split))]


def evenly_spaced_subset(split: DatasetSplit, count: int | None) -> DatasetSplit:
    """``count`` items spread evenly over ``split`` (first and last included); all of it when None."""
    size = len(split)
    if count is None or count >= size:
        return split
    indices = np.unique(np.linspace(0, size - 1, count).round().astype(np.int64))
    return split.subset(indices.tolist())


class CachedDataset(Dataset):
    """Keeps every item of ``dataset`` in memory once loaded (only valid for deterministic items): a
    :class:`~dataset.contract.TrainingSplit`.

    Items of the built-in datasets are deterministic (the point sample is seeded per item), so caching does not
    change what a run computes; it removes PNG decoding and point sampling from every epoch.
    """

    def __init__(self, dataset: TrainingSplit) -> None:
        self.dataset = dataset
        self._items: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        if index not in self._items:
            self._items[index] = self.dataset[index]
        return self._items[index]
