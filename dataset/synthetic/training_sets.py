"""Instances, splits and the 16 "2 clusters × 10 items" training sets of the synthetic experiment (docs/dataset.md).

Instances (t is the shape parameter of :mod:`dataset.synthetic.geometry`):

* training pool: ``train_<i:04d>`` at t = i / 1000, i = 0..999;
* test split: ``test_<j:04d>`` at t = (j + 0.5) / 200, j = 0..199;
* validation split: ``val_<j:04d>`` at t = (j + 0.25) / 200, j = 0..199;

so no test or validation shape is in the pool (their t never equals a multiple of 1/1000).

Training sets, cluster size s ∈ {1, 5, 10, 15, 20, 25, 30, 35}, cluster centres c ∈ {250, 750}, items
j = 0..9 of each cluster:

* ``image_aug_s``: item (c, j) shows the render of pool instance c + r(s·(j − 4.5)); its target shape is
  pool instance c.
* ``shape_aug_s``: item (c, j) shows the image of item (c, j) of ``image_aug_35``; its target shape is c
  for s = 1 and, for s ≥ 5, pool instance c + r(s·(j − 4.5)) (the instance whose image is item (c, j) of
  ``image_aug_s``). ``shape_aug_35`` pairs every image with its own shape; ``shape_aug_1`` equals
  ``image_aug_35``.

Decision (rounding): s·(j − 4.5) is a half-integer whenever s is odd (s = 1, 5, 15, 25, 35), so the
rounding rule matters. r rounds half away from zero (r(−2.5) = −3, r(2.5) = 3), which keeps each cluster
symmetric about its centre: offsets for s = 1 are ±1..±5, for s = 5 they are ±3, ±8, ±13, ±18, ±23.
(Python's ``round`` and ``numpy.round`` round half to even and would give lopsided clusters, e.g. offsets
−4, −4, −2, −2, 0, 0, 2, 2, 4, 4 for s = 1: repeated images and a centre image the other sizes lack.)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

POOL_SIZE = 1000
TEST_SIZE = 200
VAL_SIZE = 200
CLUSTER_CENTRES = (250, 750)
CLUSTER_SIZES = (1, 5, 10, 15, 20, 25, 30, 35)
ITEMS_PER_CLUSTER = 10
KINDS = ("image_aug", "shape_aug")
SPLITS = ("train", "test", "val")
SPLIT_CODES = {"train": 0, "test": 1, "val": 2}
INDEX_FILES = {"train": "train_pool.json", "test": "test.json", "val": "val.json"}
INSTANCE_FILES = ("model.obj", "points.npy", "Isometric.png")


@dataclasses.dataclass(frozen=True)
class Instance:
    """One generated shape: its split, its index in the split and its shape parameter t."""

    split: str
    index: int
    t: float

    @property
    def id(self) -> str:
        return f"{self.split}_{self.index:04d}"

    @property
    def directory(self) -> str:
        """Directory relative to the dataset root (forward slashes)."""
        return f"instances/{self.id}"

    def path(self, name: str) -> str:
        return f"{self.directory}/{name}"


def round_half_away_from_zero(x: float) -> int:
    """Nearest integer; exact halves go away from zero (2.5 → 3, −2.5 → −3)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def split_t(split: str, index: int, size: int) -> float:
    """t of instance ``index`` of a split of ``size`` instances: i/size, (j+0.5)/size or (j+0.25)/size."""
    offset = {"train": 0.0, "test": 0.5, "val": 0.25}[split]
    return (index + offset) / size


def split_instances(split: str, size: int) -> list[Instance]:
    """All instances of a split of ``size`` instances (the pool is "train")."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if size < 1:
        raise ValueError(f"size of split {split!r} must be >= 1, got {size}")
    return [Instance(split, i, split_t(split, i, size)) for i in range(size)]


def cluster_offsets(s: int) -> list[int]:
    """Pool-index offsets r(s·(j − 4.5)) of the 10 items of a cluster of size s, j = 0..9."""
    return [round_half_away_from_zero(s * (j - (ITEMS_PER_CLUSTER - 1) / 2)) for j in range(ITEMS_PER_CLUSTER)]


@dataclasses.dataclass(frozen=True)
class TrainingItem:
    """One item of a training set: which pool instance gives the image and which the target shape."""

    cluster: int  # 0 or 1 (centre 250 or 750)
    item: int  # j = 0..9
    image_index: int  # pool index of the rendered instance
    shape_index: int  # pool index of the target shape


def training_set_items(kind: str, s: int) -> list[TrainingItem]:
    """The 20 items of ``cluster_<kind>_2by10_cltsize<s>.json`` in file order (cluster 0 first, j ascending)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if s not in CLUSTER_SIZES:
        raise ValueError(f"cluster size must be one of {CLUSTER_SIZES}, got {s!r}")
    items = []
    for cluster, centre in enumerate(CLUSTER_CENTRES):
        if kind == "image_aug":
            images = [centre + o for o in cluster_offsets(s)]
            shapes = [centre] * ITEMS_PER_CLUSTER
        else:
            images = [centre + o for o in cluster_offsets(max(CLUSTER_SIZES))]
            shapes = [centre] * ITEMS_PER_CLUSTER if s == 1 else [centre + o for o in cluster_offsets(s)]
        items += [TrainingItem(cluster, j, images[j], shapes[j]) for j in range(ITEMS_PER_CLUSTER)]
    return items


def training_set_name(kind: str, s: int) -> str:
    return f"cluster_{kind}_2by10_cltsize{s:02d}.json"


def all_training_sets() -> list[tuple[str, int]]:
    """(kind, s) of the 16 training sets, image_aug first."""
    return [(kind, s) for kind in KINDS for s in CLUSTER_SIZES]


def referenced_pool_indices() -> list[int]:
    """Sorted pool indices used (as image or shape) by any of the 16 training sets."""
    used: set[int] = set()
    for kind, s in all_training_sets():
        for item in training_set_items(kind, s):
            used.update((item.image_index, item.shape_index))
    return sorted(used)


def index_entry(instance: Instance) -> dict:
    """Entry of a plain index file: the instance's own image and shape (t_image = t_shape)."""
    return {
        "id": instance.id,
        "split": instance.split,
        "index": instance.index,
        "image": instance.path("Isometric.png"),
        "points": instance.path("points.npy"),
        "mesh": instance.path("model.obj"),
        "t_image": instance.t,
        "t_shape": instance.t,
    }


def training_entry(item: TrainingItem, pool: dict[int, Instance]) -> dict:
    """Entry of a training-set file; ``id`` is the image instance's id (unique within a file)."""
    image, shape = pool[item.image_index], pool[item.shape_index]
    return {
        "id": image.id,
        "image_id": image.id,
        "shape_id": shape.id,
        "cluster": item.cluster,
        "item": item.item,
        "image": image.path("Isometric.png"),
        "points": shape.path("points.npy"),
        "mesh": shape.path("model.obj"),
        "t_image": image.t,
        "t_shape": shape.t,
    }


def pool_lookup(instances: Iterable[Instance]) -> dict[int, Instance]:
    return {inst.index: inst for inst in instances if inst.split == "train"}
