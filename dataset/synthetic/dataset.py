"""Torch dataset over the synthetic cube↔sphere data: ``CubeSphereDataset(root, index_file, ...)``.

Reads the index and training-set files written by :mod:`dataset.synthetic.build` (entries with ``id``, ``image``,
``points``, ``t_image``, ``t_shape``; paths relative to the root) and the index files of the original
release (entries with ``isometric_path``, ``ptcloud_path``, ``shapekey_value`` and ``dir_path``; its dense
clouds are the ``pt_30000.npy`` files beside each ``ptcloud_path``).

In the original's files ``shapekey_value`` is the t of the instance at ``dir_path`` (its Blender generator
reads them as a pair), which is the image's instance in the plain splits and the image_aug sets, but the
*shape's* instance in the shape_aug sets with s >= 5 (``dataset/toy_dataset/dataset_overview.py`` copies
``dir_path``, ``ptcloud_path`` and ``shapekey_value`` together from image_aug_s while keeping the images of
image_aug_35). So t of an instance folder is looked up by folder: from the release's catalogue
``CubeSphere_interp_*.json`` in the root, else from the entries' own (``dir_path``, ``shapekey_value``)
pairs; NaN if neither lists it.

Each item is a dict:

* ``image``: (3, H, W) float32 in [0, 1], RGB channel order (H = W = ``image_size`` if given, else the file's
  size), read by the library's one image reader (:func:`dispersion_score.images.read_image`: every bit
  depth, Pillow's bilinear filter). An alpha channel, if the PNG has one, is dropped.
* ``points``: (num_points, 3) float32, drawn without replacement from the item's dense cloud, once per item,
  with a generator seeded by (seed, item index); so an item always gives the same points. With
  ``normalization="unit_ball"`` they are centred on the dense cloud's centroid (mean of its points) and
  divided by the dense cloud's largest centred norm (the transform belongs to the shape, not the sample).
* ``t``: t of the target shape (``t_shape``); ``t_image``: t of the rendered instance.
* ``id``: the entry's id (original format: the name of the image's instance directory); ``index``: the
  item's position in the index file.

Items keep the index file's order (the original loader sorted by ``shapekey_value``; we do not).

The dataset implements :class:`dataset.contract.DatasetSplit`: object frame; ``rotation`` raises
:class:`~dataset.contract.NotProvidedError` (one fixed isometric camera, not recorded per item). Registered as
``data.dataset: cubesphere`` (:mod:`dataset.builtin`; factory :func:`cubesphere_split`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections import OrderedDict
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from dataset.base import DatasetBase
from dataset.registry import SplitRequest
from dispersion_score.chamfer import unit_ball_transform
from dispersion_score.images import read_image
from dispersion_score.io import read_npy

NORMALIZATIONS = ("unit_ball", "none")
ORIGINAL_FIELDS = ("isometric_path", "ptcloud_path", "shapekey_value")
ORIGINAL_DENSE_NAME = "pt_30000.npy"
_DENSE_CACHE_SIZE = 64


@dataclasses.dataclass(frozen=True)
class Item:
    """One entry of an index file, resolved: absolute paths and the two shape parameters."""

    id: str
    image: Path
    points: Path
    t_image: float
    t_shape: float


def _original_instance_dir(path: str) -> str:
    return str(PurePosixPath(path).parent)


def _original_described_dir(entry: dict) -> str:
    """The instance folder an original entry's ``shapekey_value`` belongs to: its ``dir_path`` (older files
    without one: the image's folder)."""
    if "dir_path" in entry:
        return str(PurePosixPath(str(entry["dir_path"]).rstrip("/")))
    return _original_instance_dir(entry["isometric_path"])


def _original_shapekeys(root: Path, entries: list[dict]) -> dict[str, float]:
    """Instance directory → shapekey_value: the release's catalogue first, then the entries themselves."""
    table: dict[str, float] = {}
    for entry in entries:
        table[_original_described_dir(entry)] = float(entry["shapekey_value"])
    for catalogue in sorted(root.glob("CubeSphere_interp_*.json")):
        try:
            listed = json.loads(catalogue.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for entry in listed if isinstance(listed, list) else []:
            if isinstance(entry, dict) and "shapekey_value" in entry and ({"dir_path", "isometric_path"} & set(entry)):
                table[_original_described_dir(entry)] = float(entry["shapekey_value"])
    return table


class CubeSphereDataset(DatasetBase):
    """Images and point clouds of the synthetic cube↔sphere data (see the module docstring).

    Args:
        root: dataset directory; the paths in the index file are relative to it.
        index_file: JSON list of entries, relative to ``root`` (or absolute).
        num_points: points per item, drawn without replacement from the dense cloud.
        image_size: resize images to image_size × image_size (None: keep the file's size).
        normalization: "unit_ball" (centroid 0, max norm 1, from the dense cloud) or "none".
        seed: base seed of the per-item point draws.

    Raises:
        FileNotFoundError: the index file, or an item's image or dense cloud, does not exist (the message
            names the item and the path).
        ValueError: bad arguments, a malformed entry, or an unreadable image or cloud (names the item).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        index_file: str | os.PathLike,
        *,
        num_points: int = 2500,
        image_size: int | None = None,
        normalization: str = "unit_ball",
        seed: int = 0,
    ) -> None:
        if not isinstance(num_points, int) or isinstance(num_points, bool) or num_points < 1:
            raise ValueError(f"num_points must be a positive int, got {num_points!r}")
        if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
            raise ValueError(f"image_size must be None or a positive int, got {image_size!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.root = Path(root)
        self.index_file = self.root / index_file
        self.num_points = num_points
        self.image_size = image_size
        self.normalization = normalization
        self.seed = int(seed)
        self.items = self._read_index()
        missing = [
            (i, kind, path)
            for i, item in enumerate(self.items)
            for kind, path in (("image", item.image), ("point cloud", item.points))
            if not path.is_file()
        ]
        if missing:
            i, kind, path = missing[0]
            raise FileNotFoundError(
                f"{len(missing)} file(s) listed in {self.index_file} are missing; first: item {i} "
                f"(id {self.items[i].id!r}) {kind} {path}"
            )
        self._points_cache: dict[int, torch.Tensor] = {}
        # A few dense clouds stay loaded: items of a training set share their target shapes. (A plain
        # OrderedDict rather than functools.lru_cache keeps the dataset picklable for DataLoader workers.)
        self._dense_cache: OrderedDict[Path, np.ndarray] = OrderedDict()

    # ------------------------------------------------------------------------------------------ index

    def _read_index(self) -> list[Item]:
        try:
            entries = json.loads(self.index_file.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"index file {self.index_file} not found") from None
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"index file {self.index_file} is not readable JSON: {error}") from error
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError(f"index file {self.index_file} must hold a JSON list of objects")
        if entries and all(all(field in e for field in ORIGINAL_FIELDS) for e in entries):
            return self._read_original(entries)
        return [self._read_entry(i, entry) for i, entry in enumerate(entries)]

    def _read_entry(self, i: int, entry: dict[str, Any]) -> Item:
        required = ("id", "image", "points", "t_image", "t_shape")
        absent = [field for field in required if field not in entry]
        if absent:
            raise ValueError(
                f"entry {i} of {self.index_file} lacks field(s) {absent}; expected {list(required)} "
                f"(or the original release's {list(ORIGINAL_FIELDS)})"
            )
        return Item(
            id=str(entry["id"]),
            image=self.root / entry["image"],
            points=self.root / entry["points"],
            t_image=float(entry["t_image"]),
            t_shape=float(entry["t_shape"]),
        )

    def _read_original(self, entries: list[dict[str, Any]]) -> list[Item]:
        shapekeys = _original_shapekeys(self.root, entries)
        items = []
        for entry in entries:
            image_dir = _original_instance_dir(entry["isometric_path"])
            shape_dir = _original_instance_dir(entry["ptcloud_path"])
            items.append(
                Item(
                    id=PurePosixPath(image_dir).name,
                    image=self.root / entry["isometric_path"],
                    points=self.root / shape_dir / ORIGINAL_DENSE_NAME,
                    t_image=shapekeys.get(image_dir, math.nan),
                    t_shape=shapekeys.get(shape_dir, math.nan),
                )
            )
        return items

    # ------------------------------------------------------------------------------------------ items

    def __len__(self) -> int:
        return len(self.items)

    def _check_index(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        return int(index) % len(self)

    def _describe(self, index: int) -> str:
        return f"item {index} (id {self.items[index].id!r}) of {self.index_file}"

    @staticmethod
    def _read_dense(path: Path) -> np.ndarray:
        dense = read_npy(path, what="point cloud")  # one-line errors, a 0-byte file included
        if dense.ndim != 2 or dense.shape[1] != 3 or dense.shape[0] == 0:
            raise ValueError(f"point cloud {path} must have shape (P, 3) with P >= 1, got {dense.shape}")
        finite = np.isfinite(dense).all(axis=1)
        if not finite.all():  # the whole cloud: the sample drawn from it may miss the bad point
            raise ValueError(f"point cloud {path} has a NaN or infinite point (first at {int(np.argmin(finite))})")
        return dense

    def dense_points(self, index: int) -> np.ndarray:
        """The item's stored dense cloud, (P, 3), unnormalised (cached for the last few clouds read)."""
        item = self.items[index]
        try:
            dense = self._dense_cache.get(item.points)
            if dense is None:
                dense = self._read_dense(item.points)
                self._dense_cache[item.points] = dense
                if len(self._dense_cache) > _DENSE_CACHE_SIZE:
                    self._dense_cache.popitem(last=False)
            else:
                self._dense_cache.move_to_end(item.points)
            return dense
        except FileNotFoundError:
            raise FileNotFoundError(f"{self._describe(index)}: point cloud {item.points} not found") from None
        except ValueError as error:
            raise ValueError(f"{self._describe(index)}: {error}") from None

    def points(self, index: int) -> torch.Tensor:
        """(num_points, 3) float32 points of item ``index`` (drawn once, then cached)."""
        index = self._check_index(index)
        cached = self._points_cache.get(index)
        if cached is not None:
            return cached
        dense = self.dense_points(index)
        if dense.shape[0] < self.num_points:
            raise ValueError(
                f"{self._describe(index)}: point cloud {self.items[index].points} has {dense.shape[0]} points, "
                f"fewer than num_points={self.num_points}"
            )
        rng = np.random.default_rng([self.seed, index])
        chosen = dense[rng.choice(dense.shape[0], size=self.num_points, replace=False)].astype(np.float64)
        if self.normalization == "unit_ball":
            centroid, scale = unit_ball_transform(dense)
            chosen = (chosen - centroid) / scale
        points = torch.from_numpy(chosen.astype(np.float32))
        self._points_cache[index] = points
        return points

    def image_path(self, index: int) -> Path:
        """The image file of item ``index``."""
        return self.items[self._check_index(index)].image

    def item_id(self, index: int) -> str:
        """The id of item ``index``."""
        return self.items[self._check_index(index)].id

    def image(self, index: int) -> torch.Tensor:
        """(3, H, W) float32 RGB image of item ``index`` in [0, 1] (:func:`dispersion_score.images.read_image`)."""
        index = self._check_index(index)
        path = self.items[index].image
        try:
            array = read_image(path, size=self.image_size)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self._describe(index)}: image {path} not found") from None
        except ValueError as error:
            raise ValueError(f"{self._describe(index)}: {error}") from None
        return torch.from_numpy(array.transpose(2, 0, 1).copy())

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        item = self.items[index]
        return {
            "image": self.image(index),
            "points": self.points(index),
            "t": item.t_shape,
            "t_image": item.t_image,
            "id": item.id,
            "index": index,
        }


def cubesphere_split(request: SplitRequest) -> CubeSphereDataset:
    """The registry's factory of ``cubesphere``: the split's index file ``request.index_file`` under the root."""
    return CubeSphereDataset(request.root, request.index_file, **request.item_settings())
