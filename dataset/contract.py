"""What every dataset split provides: the contract the trainer, the experiment runner, the baselines and the
predictors read splits through (docs/datasets.md).

Two protocols:

* :class:`TrainingSplit`, what the trainer (:mod:`models.engine`) needs: a map-style dataset whose items are
  dicts with at least ``image`` and ``points`` (a ``torch.utils.data.DataLoader`` batches them).
* :class:`DatasetSplit`, what every registered dataset gives (:func:`dataset.registry.build_dataset` checks it):
  a :class:`TrainingSplit` plus per-item readers that do not read the whole item, the target frame, and
  :meth:`~DatasetSplit.subset`.

Items (``split[i]``) are dicts with at least:

* ``image``: FloatTensor (3, H, W), RGB in [0, 1] (H = W = ``data.image_size`` for the built-ins);
* ``points``: FloatTensor (P, 3), the ground-truth cloud in the split's :attr:`~DatasetSplit.frame`
  (P = ``data.num_points``; unit-ball normalised for ``data.normalization: unit_ball``);
* ``id``: str, the item's id (:meth:`~DatasetSplit.item_id`): for ShapeNet the model id, for the synthetic data
  the index entry's id; several items may share an id (ShapeNet views of one shape);
* ``index``: int, the item's position in its dataset (a subset keeps its parent's positions).

Datasets add their own keys (``t``, ``t_image`` for the synthetic data, ``cam_rotmat``, ``category``, ``view`` for
ShapeNet).

A method a dataset cannot provide (the image files of an in-memory dataset, the camera of a dataset without
one) raises :class:`NotProvidedError` naming the dataset and what it lacks; every method is still present, so
``isinstance(split, DatasetSplit)`` holds for every registered dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch

"""Frames of the ground-truth points: "object" (the shape's canonical frame) or "viewer" (rotated into the
item's camera frame, ``P Rᵀ`` with R = :meth:`DatasetSplit.rotation`)."""

CONTRACT_MEMBERS = ("__len__", "__getitem__", "frame", "points", "image", "image_path", "item_id", "rotation", "subset")
"""The members of :class:`DatasetSplit`, for messages naming what a dataset lacks."""


class NotProvidedError(ValueError):
    """A dataset cannot give what a contract method asks for (e.g. ``image_path`` of an in-memory dataset,
    ``rotation`` of a dataset without cameras). The message names the dataset and what is missing."""


@runtime_checkable
class TrainingSplit(Protocol):
    """A map-style dataset of dict items with ``image`` (3, H, W) and ``points`` (P, 3) (see the module)."""

    def __len__(self) -> int:
        """The number of items."""
        ...

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Item ``index`` (negative indices count from the end).

        Raises:
            IndexError: ``index`` is out of range.
        """
        ...


@runtime_checkable
class DatasetSplit(TrainingSplit, Protocol):
    """One split of a registered dataset: items, per-item readers, the target frame and subsets.

    Every per-item reader takes an item index in ``[-len, len)`` and raises IndexError outside it; it gives the
    same value as the matching key of ``split[index]`` without reading the rest of the item.
    """

    @property
    def frame(self) -> str:
        """The frame of ``points``: "object" or "viewer" (:data:`dispersion_score.frames.FRAMES`)."""
        ...

    def points(self, index: int) -> torch.Tensor:
        """FloatTensor (P, 3), the item's ground-truth cloud in :attr:`frame` (``split[index]["points"]``)."""
        ...

    def image(self, index: int) -> torch.Tensor:
        """FloatTensor (3, H, W), RGB in [0, 1], the image the networks see (``split[index]["image"]``)."""
        ...

    def image_path(self, index: int) -> Path:
        """The image file the item's image is read from (input image DS and the retrieval baseline read the files).

        Raises:
            NotProvidedError: the dataset's images are not files (an in-memory dataset).
        """
        ...

    def item_id(self, index: int) -> str:
        """The item's id (``split[index]["id"]``)."""
        ...

    def rotation(self, index: int) -> np.ndarray:
        """ndarray (3, 3) float32, the world → camera rotation R of the item's view (rows: the camera's axes in
        world coordinates); viewer-frame points are object-frame points times Rᵀ (docs/shapenet.md).

        Raises:
            NotProvidedError: the dataset has no camera per item (object-frame datasets need none).
        """
        ...

    def subset(self, indices: Sequence[int]) -> DatasetSplit:
        """The items at ``indices`` (in that order, repeats allowed), as a split with every method of this one:
        item j of the subset is item ``indices[j]`` of this split, ``item["index"]`` included."""
        ...
