"""``check_split``: the contract of :mod:`dataset.contract` checked on a split's items, with messages that name
the dataset, the item and what is wrong. For a new dataset's tests (docs/datasets.md, "Add a dataset") and the
built-ins' (tests/test_dataset_contract.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dataset.contract import DatasetSplit, NotProvidedError
from dispersion_score.frames import FRAMES


def _fail(split: DatasetSplit, index: int | None, message: str) -> ValueError:
    where = f"{type(split).__name__}" + ("" if index is None else f" item {index}")
    return ValueError(f"{where}: {message} (contract: docs/datasets.md)")


def check_split(split: DatasetSplit, *, num_points: int, image_size: int, items: int | None = None) -> None:
    """Checks ``split`` against the contract; returns None or raises the first problem found.

    Checked: the protocol's members; ``frame``; for each checked item the keys ``image`` (FloatTensor
    (3, image_size, image_size) in [0, 1]), ``points`` (FloatTensor (num_points, 3), finite), ``id`` (str),
    ``index`` (the position); the readers ``points(i)``, ``image(i)``, ``item_id(i)`` agree with the item; negative
    indices count from the end and ``len(split)`` raises IndexError; ``image_path(i)`` is an existing file or
    raises NotProvidedError; ``rotation(i)`` is a (3, 3) rotation or raises NotProvidedError; ``subset`` maps
    positions.

    Args:
        split: the split to check (e.g. ``build_dataset(config, "test")``).
        num_points: P, the expected point count (``data.num_points``).
        image_size: H = W, the expected image side in pixels (``data.image_size``).
        items: how many items to check, evenly spaced; None: all.

    Raises:
        ValueError: the first violation, naming the dataset, the item and what was expected.
    """
    if not isinstance(split, DatasetSplit):
        raise _fail(split, None, "not a DatasetSplit (subclass dataset.base.DatasetBase)")
    if split.frame not in FRAMES:
        raise _fail(split, None, f"frame must be one of {FRAMES}, got {split.frame!r}")
    size = len(split)
    if size < 1:
        raise _fail(split, None, "empty split")
    count = size if items is None else min(size, items)
    for index in sorted({int(i) for i in np.linspace(0, size - 1, count).round()}):
        _check_item(split, index, num_points, image_size)
    try:
        split.points(size)
    except IndexError:
        pass
    else:
        raise _fail(split, size, "reading one past the end must raise IndexError")
    last = size - 1
    subset = split.subset([last, 0])
    if len(subset) != 2 or subset.item_id(0) != split.item_id(last) or subset.frame != split.frame:
        raise _fail(split, last, "subset([last, 0]) must give the items at those positions, in that order")


def _check_item(split: DatasetSplit, index: int, num_points: int, image_size: int) -> None:
    item = split[index]
    missing = [key for key in ("image", "points", "id", "index") if key not in item]
    if missing:
        raise _fail(split, index, f"missing key(s) {missing}; items carry image, points, id, index")
    image, points = item["image"], item["points"]
    expected_image = (3, image_size, image_size)
    if not isinstance(image, torch.Tensor) or tuple(image.shape) != expected_image or image.dtype != torch.float32:
        raise _fail(split, index, f"image must be a float32 tensor {expected_image}, got {_describe(image)}")
    if float(image.min()) < 0.0 or float(image.max()) > 1.0:
        raise _fail(split, index, "image values must lie in [0, 1]")
    expected_points = (num_points, 3)
    if not isinstance(points, torch.Tensor) or tuple(points.shape) != expected_points or points.dtype != torch.float32:
        raise _fail(split, index, f"points must be a float32 tensor {expected_points}, got {_describe(points)}")
    if not bool(torch.isfinite(points).all()):
        raise _fail(split, index, "points must be finite")
    if not isinstance(item["id"], str) or item["index"] != index:
        raise _fail(split, index, f"id must be a str and index {index}, got {item['id']!r}, {item['index']!r}")
    if split.item_id(index) != item["id"] or split.item_id(index - len(split)) != item["id"]:
        raise _fail(split, index, "item_id(i) (and item_id(i - len)) must equal the item's id")
    if not torch.equal(split.points(index), points) or not torch.equal(split.image(index), image):
        raise _fail(split, index, "points(i) / image(i) must equal the item's points / image")
    try:
        path = Path(split.image_path(index))
        if not path.is_file():
            raise _fail(split, index, f"image_path(i) {path} is not a file")
    except NotProvidedError:
        pass
    try:
        rotation = np.asarray(split.rotation(index), dtype=np.float64)
        if rotation.shape != (3, 3) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5):
            raise _fail(split, index, f"rotation(i) must be a (3, 3) rotation, got shape {rotation.shape}")
    except NotProvidedError:
        if split.frame == "viewer":
            raise _fail(split, index, "a viewer-centred split must provide rotation(i)") from None


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} {tuple(value.shape)}"
    return type(value).__name__
