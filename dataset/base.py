"""Defaults for implementing :class:`dataset.contract.DatasetSplit`: :class:`DatasetBase` and :class:`SplitSubset`.

A dataset that subclasses :class:`DatasetBase` and defines ``__len__`` and ``__getitem__`` satisfies the contract:
the per-item readers fall back to reading the whole item, ``frame`` is "object", :meth:`~DatasetBase.subset`
gives a :class:`SplitSubset`, and the methods it cannot know (``image_path``, ``rotation``) raise
:class:`~dataset.contract.NotProvidedError`. The built-in datasets override the readers with cheaper ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from dataset.contract import NotProvidedError


class DatasetBase(Dataset):
    """A map-style dataset with the contract's methods derived from its items (see the module docstring);
    subclasses define ``__len__`` and ``__getitem__``."""

    frame: str = "object"

    def points(self, index: int) -> torch.Tensor:
        """FloatTensor (P, 3): ``self[index]["points"]``."""
        return self._key(index, "points")

    def image(self, index: int) -> torch.Tensor:
        """FloatTensor (3, H, W) in [0, 1]: ``self[index]["image"]``."""
        return self._key(index, "image")

    def item_id(self, index: int) -> str:
        """``str(self[index]["id"])``."""
        return str(self._key(index, "id"))

    def _key(self, index: int, key: str) -> Any:
        item = self[index]
        if key not in item:
            raise KeyError(
                f"{type(self).__name__} item {index} has no {key!r}: the contract's items carry image, points, id "
                "and index (docs/datasets.md; dataset.checks.check_split checks a split)"
            )
        return item[key]

    def image_path(self, index: int) -> Path:
        """Not provided by default.

        Raises:
            NotProvidedError: always (a dataset whose images are files overrides this).
        """
        raise NotProvidedError(
            f"{type(self).__name__} does not name its image files (no image_path(i)); input image DS and the "
            "retrieval baseline need them"
        )

    def rotation(self, index: int) -> np.ndarray:
        """Not provided by default.

        Raises:
            NotProvidedError: always (a dataset with a camera per item overrides this).
        """
        raise NotProvidedError(
            f"{type(self).__name__} has no camera per item (no rotation(i)); only viewer-frame evaluation needs one"
        )

    def subset(self, indices: Sequence[int]) -> SplitSubset:
        """The items at ``indices``, with every method of this dataset (:class:`SplitSubset`)."""
        return SplitSubset(self, indices)


class SplitSubset(Subset):
    """Items ``indices`` of a split, keeping every contract method (a ``torch.utils.data.Subset``: ``dataset`` and
    ``indices`` are the parent and the positions in it).

    Args:
        dataset: the parent split (a :class:`~dataset.contract.DatasetSplit`).
        indices: positions in the parent, in the subset's order (ints; negative ones count from the end).
    """

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        super().__init__(dataset, [int(i) for i in indices])

    @property
    def frame(self) -> str:
        """The parent's frame."""
        return self.dataset.frame

    def points(self, index: int) -> torch.Tensor:
        return self.dataset.points(self.indices[index])

    def image(self, index: int) -> torch.Tensor:
        return self.dataset.image(self.indices[index])

    def image_path(self, index: int) -> Path:
        return self.dataset.image_path(self.indices[index])

    def item_id(self, index: int) -> str:
        return self.dataset.item_id(self.indices[index])

    def rotation(self, index: int) -> np.ndarray:
        return self.dataset.rotation(self.indices[index])

    def subset(self, indices: Sequence[int]) -> SplitSubset:
        """A subset of this subset, as positions in the parent (no chain of wrappers)."""
        return SplitSubset(self.dataset, [self.indices[i] for i in indices])
