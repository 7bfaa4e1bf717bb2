"""Datasets for training: a registry from ``data.dataset`` names to dataset classes, and loader helpers.

A registered dataset is a callable
``factory(root, index_file, *, num_points, image_size, normalization, seed)`` returning a map-style dataset
(a dataset with its own config section ``data.<name>``, like ``shapenet``, is called with the split name instead
of an index file and gets that section's options as keywords)
whose items are dicts with at least ``image`` (FloatTensor (3, H, W), RGB in [0, 1]) and ``points``
(FloatTensor (num_points, 3)); ``dataset.synthetic.dataset.CubeSphereDataset`` is one. Tests and new experiments
add their own with ``register_dataset``; ``toy`` is a procedural in-memory one (``models.toy_data``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Subset

from dataset.locations import REPO_ROOT

# What build_dataset is asked for (the trainer's validation included); each family maps them to its own split
# files (ShapeNet has no validation split: dataset.shapenet.categories.SPLITS).
SPLIT_ROLES = ("train", "val", "test")

DatasetFactory = Callable[..., Dataset]


def _cubesphere(root: Path, index_file: str, **options: Any) -> Dataset:
    from dataset.synthetic.dataset import CubeSphereDataset  # imported here: the data package is optional for models

    return CubeSphereDataset(root, index_file, **options)


def _shapenet(
    root: Path, split: str, *, yaw: int | None = None, test_yaw: int | None = None, **options: Any
) -> Dataset:
    from dataset.shapenet.dataset import shapenet_dataset

    # ShapeNet has no validation split (docs/shapenet.md): validation during training uses the test split, as AtlasNet.
    if split != "train":
        split, yaw = "test", (test_yaw if test_yaw is not None else yaw)
    return shapenet_dataset(root, split, yaw=yaw, **options)


def _toy(root: Path, index_file: str, **options: Any) -> Dataset:
    from models.toy_data import ToyShapesDataset

    return ToyShapesDataset(root, index_file, **options)


DATASETS: dict[str, DatasetFactory] = {"cubesphere": _cubesphere, "shapenet": _shapenet, "toy": _toy}


def register_dataset(name: str, factory: DatasetFactory) -> None:
    """Makes ``data.dataset: <name>`` build datasets with ``factory`` (replacing an earlier one)."""
    DATASETS[name] = factory


def data_root(data: Mapping[str, Any]) -> Path:
    """``data.root`` as a path; a relative root is relative to the repository root (not the working dir)."""
    root = Path(data["root"]).expanduser()
    return root if root.is_absolute() else REPO_ROOT / root


def build_dataset(config: Mapping[str, Any], split: str) -> Dataset:
    """The dataset of one split ("train", "val", "test") of a resolved config's ``data`` section."""
    if split not in SPLIT_ROLES:
        raise ValueError(f"split must be one of {SPLIT_ROLES}, got {split!r}")
    data = config["data"]
    name = data["dataset"]
    if name not in DATASETS:
        raise ValueError(f"data.dataset: unknown dataset {name!r}; registered: {sorted(DATASETS)}")
    common = {
        "num_points": data["num_points"],
        "image_size": data["image_size"],
        "normalization": data["normalization"],
        "seed": data["point_seed"],
    }
    section = data.get(name)
    if isinstance(section, Mapping):
        # A dataset with its own config section (data.shapenet) takes the split and its options, not an index file.
        return DATASETS[name](data_root(data), split, **common, **section)
    return DATASETS[name](data_root(data), data[f"{split}_file"], **common)


def evenly_spaced_subset(dataset: Dataset, count: int | None) -> Dataset:
    """``count`` items spread evenly over ``dataset`` (first and last included); all of it when None."""
    size = len(dataset)  # type: ignore[arg-type]
    if count is None or count >= size:
        return dataset
    indices = np.unique(np.linspace(0, size - 1, count).round().astype(np.int64))
    return Subset(dataset, indices.tolist())


class CachedDataset(Dataset):
    """Keeps every item of ``dataset`` in memory once loaded (only valid for deterministic items).

    Items of the synthetic datasets are deterministic (the point sample is seeded per item), so caching does
    not change what a run computes; it removes PNG decoding and point sampling from every epoch.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._items: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        if index not in self._items:
            self._items[index] = self.dataset[index]
        return self._items[index]
