"""ShapeNet-13 for training and DS (docs/shapenet.md): the torch dataset, split-level accessors, and the data check.

``ShapeNet(root, split="train", images="r2n2", views=1)`` reads the real formats (AtlasNet's
``ShapeNetV1PointCloud`` and ``ShapeNetV1Renderings``, the paper's yaw-limited renders) and the stand-in
written in the same formats (``dataset.shapenet.standin.build``). Layout: :mod:`dataset.shapenet.layout`; the
normalised-cloud cache: :mod:`dataset.shapenet.cache`; the camera: :mod:`dataset.shapenet.camera`.

Items are dicts:

* ``image``: (3, H, W) float32 RGB in [0, 1], H = W = ``image_size``. R2N2 renders are loaded as AtlasNet
  does: alpha dropped (the transparent background becomes black, its stored RGB), CenterCrop(127), then
  resized (bilinear, antialiased) to ``image_size``. Yaw renders: alpha dropped, resized only if their size
  differs from ``image_size``.
* ``points``: (num_points, 3) float32, drawn with replacement (as AtlasNet) from the shape's unit-ball
  normalised dense cloud by a generator seeded by (seed, item index); in the object frame, or rotated into
  the view's frame (``P Rᵀ``) when ``frame="viewer"``.
* ``cam_rotmat``: (3, 3) float32 R of docs/shapenet.md for the item's camera (from the metadata file).
* ``category`` (synset id), ``id`` (the ShapeNet model id: ``id`` is its one name in items, the cache's
  ``ids`` and :class:`~dataset.shapenet.cache.Skipped`), ``view`` (render index; 0 for yaw renders), ``index``.

:class:`ShapeNet` implements :class:`dataset.contract.DatasetSplit` (``frame`` as given, ``rotation`` from each
item's camera). Registered as ``data.dataset: shapenet`` (:mod:`dataset.builtin`; factory :func:`shapenet_split`,
which also holds the split rule: ShapeNet has no validation split, "val" reads the test split).

Items are ordered by category (the given order; default: the 13 by synset id), then model id, then view.
The split is the usual one: per category the sorted ids of the point-cloud files, first int(0.8·n) train. A shape
whose cloud is unusable or whose renders are missing is skipped and counted in one log line (and listed in
``dataset.skipped``), never paired with another shape's image.

Check a data root: ``python -m dataset.shapenet --root dataset/data --summary``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dataset.base import DatasetBase
from dataset.locations import DATASET_DIR
from dataset.registry import SplitRequest
from dataset.shapenet.cache import Skipped, SplitClouds, load_split_clouds
from dataset.shapenet.camera import View, camera_rotation
from dataset.shapenet.categories import SHAPENET13, SPLITS, resolve_categories, split_ids
from dataset.shapenet.layout import (
    MESH_DIR,
    POINT_CLOUD_DIR,
    R2N2_DIR,
    R2N2_VIEWS,
    CloudFile,
    check_png,
    check_point_cloud_header,
    check_r2n2,
    check_r2n2_complete,
    check_yaw,
    list_point_clouds,
    mesh_dir,
    present_yaw_sets,
    r2n2_dir,
    r2n2_image_name,
    read_taxonomy,
    yaw_image_path,
    yaw_set_name,
)
from dispersion_score.frames import FRAMES

IMAGE_SETS = ("r2n2", "yaw")
NORMALIZATIONS = ("unit_ball",)
R2N2_CROP = 127
TEST_VIEW = 0
DEFAULT_ROOT = DATASET_DIR / "data"
logger = logging.getLogger("dataset.shapenet")


# --------------------------------------------------------------------------------------------- split files


def category_ids(root: str | os.PathLike, categories: Iterable[str] | None = None) -> list[str]:
    """Synset ids of ``categories`` (names or ids; None = the 13), names resolved with the root's taxonomy.json.

    Raises:
        FileNotFoundError: no taxonomy.json (see :func:`dataset.shapenet.layout.read_taxonomy`).
        ValueError: an unknown category (the message lists the known ones).
    """
    names = read_taxonomy(root)
    if categories is None:
        return sorted(SHAPENET13)
    return resolve_categories(categories, names={**SHAPENET13, **names})


def split_files(root: str | os.PathLike, split: str, categories: Sequence[str]) -> list[CloudFile]:
    """The point-cloud files of one split, category by category (the order given), sorted ids within each."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    files: list[CloudFile] = []
    for synset in categories:
        listed = list_point_clouds(root, synset)
        by_id = {file.id: file for file in listed}
        files.extend(by_id[model_id] for model_id in split_ids(list(by_id), split))
    return files


def split_clouds(
    root: str | os.PathLike,
    split: str,
    *,
    categories: Iterable[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> SplitClouds:
    """The unit-ball normalised dense clouds of a split, for input shape DS and the baselines.

    Args:
        root: data root (holds taxonomy.json and ShapeNetV1PointCloud/).
        split: "train" or "test".
        categories: names or synset ids; None = ShapeNet-13.
        cache_dir: cache directory (see :mod:`dataset.shapenet.cache`).

    Returns:
        A :class:`~dataset.shapenet.cache.SplitClouds`: ``.open()`` gives the (N, P, 3) float32 read-only
        memory map (row r = shape (``.synsets[r]``, ``.ids[r]``)), ``.skipped`` the unusable files. Every
        readable cloud of the split has a row, whether or not it has renders; ``ShapeNet.shape_rows`` selects
        the shapes of a dataset.
    """
    synsets = category_ids(root, categories)
    files = split_files(root, split, synsets)
    return load_split_clouds(files, split=split, root=root, categories=synsets, cache_dir=cache_dir, progress=progress)


# --------------------------------------------------------------------------------------------- images


def _center_crop(rgb: np.ndarray, size: int, path: Path) -> np.ndarray:
    height, width = rgb.shape[:2]
    if height < size or width < size:
        raise ValueError(f"image {path} is {width}×{height}, smaller than the {size}×{size} centre crop")
    # torchvision's CenterCrop offsets: round((H − size) / 2)
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return rgb[top : top + size, left : left + size]


def load_render(path: str | os.PathLike, *, crop: int | None, size: int) -> torch.Tensor:
    """One render as (3, size, size) float32 RGB in [0, 1]: alpha dropped, optional centre crop, then resize
    (bilinear, antialiased) when the size differs. Uses the project's image reader."""
    from dispersion_score.images import read_image, resize_batch

    path = Path(path)
    rgb = read_image(path, alpha="drop")
    if crop is not None:
        rgb = _center_crop(rgb, crop, path)
    tensor = torch.from_numpy(rgb).permute(2, 0, 1)  # a strided view: the resize reads it without a copy
    return resize_batch(tensor.unsqueeze(0), size)[0].contiguous()


# --------------------------------------------------------------------------------------------- dataset


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class ShapeNet(DatasetBase):
    """ShapeNet images with their shapes' point clouds (see the module docstring for the items).

    Args:
        root: data root (taxonomy.json, ShapeNetV1PointCloud/, ShapeNetV1Renderings/ and/or
            ShapeNetV1RenderingAnglelimit/).
        split: "train" or "test" (the ShapeNet split: sorted ids, first int(0.8·n) of each category train).
        categories: names ("chair", as taxonomy.json's first lemma) or synset ids; None = ShapeNet-13.
        images: "r2n2" (ShapeNetV1Renderings) or "yaw" (ShapeNetV1RenderingSampleYaw{yaw:03d}).
        views: R2N2 training views per shape: items use views 01..views (1 <= views <= 23); the test split
            always uses view 00 alone. Ignored for "yaw" (one render per shape).
        yaw: the yaw range r in degrees (an int, e.g. 0, 15, …, 90); required for images="yaw".
        frame: "object" (canonical points) or "viewer" (points rotated by the item's camera, P Rᵀ).
        num_points: points per item, drawn with replacement from the dense cloud.
        image_size: H = W of the returned images.
        seed: base seed of the per-item point draws.
        cache_dir: where the normalised-cloud cache lives (default: see :mod:`dataset.shapenet.cache`).
        progress: show a progress bar while checking renders and building the cache.

    Raises:
        FileNotFoundError: no taxonomy.json, or a category's point-cloud folder is missing.
        ValueError: a bad argument (the message says which), or no usable item at all.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        split: str,
        categories: Iterable[str] | None = None,
        images: str = "r2n2",
        views: int = 1,
        yaw: int | None = None,
        frame: str = "object",
        num_points: int = 2500,
        image_size: int = 224,
        seed: int = 0,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if images not in IMAGE_SETS:
            raise ValueError(f"images must be one of {IMAGE_SETS}, got {images!r}")
        if frame not in FRAMES:
            raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")
        if images == "yaw":
            if yaw is None:
                raise ValueError("images='yaw' needs yaw=r, the yaw range in degrees (0, 15, ..., 90)")
            yaw_set_name(yaw)  # validates
        elif yaw is not None:
            raise ValueError(f"yaw={yaw!r} is only meaningful with images='yaw' (images={images!r})")
        views = _positive_int("views", views)
        if views > R2N2_VIEWS - 1:
            raise ValueError(f"views must be <= {R2N2_VIEWS - 1} (training views are 01..views), got {views}")
        self.root = Path(root)
        self.split = split
        self.images = images
        self.views = views
        self.yaw = None if yaw is None else int(yaw)
        self.frame = frame
        self.num_points = _positive_int("num_points", num_points)
        self.image_size = _positive_int("image_size", image_size)
        self.seed = int(seed)
        self.categories = category_ids(self.root, categories)
        self.clouds = load_split_clouds(
            split_files(self.root, split, self.categories),
            split=split,
            root=self.root,
            categories=self.categories,
            cache_dir=cache_dir,
            progress=progress,
        )
        self.skipped: list[Skipped] = list(self.clouds.skipped)
        self._index_items(progress)
        self._points: np.ndarray | None = None
        self._fd: int | None = None
        self._row_offset = 0
        self._log_counts()

    # ------------------------------------------------------------------------------------------ index

    @property
    def item_views(self) -> list[int]:
        """Render indices used per shape: 01..views for R2N2 training, 00 for R2N2 test and yaw renders."""
        if self.images == "yaw" or self.split == "test":
            return [TEST_VIEW]
        return list(range(1, self.views + 1))

    def _index_items(self, progress: bool) -> None:
        views = self.item_views
        rows, item_views, cameras = [], [], []
        for row, (synset, model_id) in enumerate(
            tqdm(
                zip(self.clouds.synsets, self.clouds.ids, strict=True),
                total=len(self.clouds),
                desc="renders",
                disable=not progress,
            )
        ):
            if self.images == "r2n2":
                found, problem = check_r2n2(self.root, synset, model_id, views)
                shape_cameras = [found[v] for v in views] if problem is None else []
            else:
                camera, problem = check_yaw(self.root, self.yaw, synset, model_id)
                shape_cameras = [camera] if problem is None else []
            if problem is not None:
                self.skipped.append(Skipped(synset, model_id, problem))
                continue
            for view, camera in zip(views, shape_cameras, strict=True):
                rows.append(row)
                item_views.append(view)
                cameras.append((camera.azimuth, camera.elevation, camera.distance_ratio))
        # numpy arrays, not lists of Python objects: DataLoader workers touch no refcounts, so forked
        # workers do not copy them page by page.
        self._item_rows = np.asarray(rows, dtype=np.int64)
        self._item_views = np.asarray(item_views, dtype=np.int16)
        self._item_cameras = np.asarray(cameras, dtype=np.float64).reshape(-1, 3)
        if len(self._item_rows) == 0:
            first = "; ".join(s.reason for s in self.skipped[:3])
            raise ValueError(f"{self._label()}: no usable item in {self.root} ({len(self.skipped)} skipped: {first})")

    def _label(self) -> str:
        if self.images == "r2n2":
            what = f"r2n2 views {self.item_views[0]:02d}..{self.item_views[-1]:02d}"
        else:
            what = yaw_set_name(self.yaw)  # type: ignore[arg-type]
        return f"ShapeNet {self.split} ({what}, {len(self.categories)} categories)"

    def _log_counts(self) -> None:
        shapes = len(self.shape_rows)
        logger.info("%s: %d shapes, %d items, %d shapes skipped", self._label(), shapes, len(self), len(self.skipped))
        if self.skipped:
            examples = "; ".join(s.reason for s in self.skipped[:3])
            logger.warning(
                "%s: %d of %d shapes skipped (missing or unreadable files), e.g. %s",
                self._label(),
                len(self.skipped),
                shapes + len(self.skipped),
                examples,
            )

    @property
    def shape_rows(self) -> np.ndarray:
        """(S,) int64 rows of ``self.clouds`` of the shapes this dataset uses, in item order (each once)."""
        rows = self._item_rows
        if len(rows) == 0:
            return rows
        keep = np.ones(len(rows), dtype=bool)
        keep[1:] = rows[1:] != rows[:-1]
        return rows[keep]

    # ------------------------------------------------------------------------------------------ items

    def __len__(self) -> int:
        return len(self._item_rows)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # A memmap would be pickled with its contents and a file descriptor not at all: workers reopen.
        state["_points"] = None
        state["_fd"] = None
        return state

    def dense_points(self) -> np.ndarray:
        """(N, P, 3) float32 read-only memory map of the split's normalised clouds (rows of ``self.clouds``)."""
        if self._points is None:
            self._points = self.clouds.open()
        return self._points

    def _dense_row(self, row: int) -> np.ndarray:
        """(P, 3) float32 normalised cloud of cache row ``row``.

        Read with one ``os.pread`` of the row from the cache file rather than through the memory map: the
        bytes come from the page cache that every worker shares either way, but a mapping would count every
        page it ever touched in the worker's RSS (up to the whole 12.6 GB file on the real data), while a
        read leaves RSS flat (measured in benchmarks/bench_shapenet_loader.py). It is also faster than a
        fancy index into the map (one copy instead of a page fault per 4 KB).
        """
        if self._fd is None:
            self._fd = os.open(self.clouds.path, os.O_RDONLY)
            weakref.finalize(self, os.close, self._fd)
            self._row_offset = int(self.dense_points().offset)
        size = self.clouds.num_points * 3 * 4
        data = os.pread(self._fd, size, self._row_offset + row * size)
        if len(data) != size:
            raise ValueError(f"cloud cache {self.clouds.path} is truncated at row {row}; delete it to rebuild")
        return np.frombuffer(data, dtype=np.float32).reshape(self.clouds.num_points, 3)

    def _check_index(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        return int(index) % len(self)

    def shape(self, index: int) -> tuple[str, str]:
        """(synset, model id) of item ``index``."""
        row = self._item_rows[self._check_index(index)]
        return self.clouds.synsets[row], self.clouds.ids[row]

    def item_id(self, index: int) -> str:
        """The model id of item ``index`` (its ``id``), without reading the item."""
        return self.shape(index)[1]

    def camera(self, index: int) -> View:
        """The camera of item ``index`` (from its metadata file)."""
        azimuth, elevation, ratio = self._item_cameras[self._check_index(index)]
        return View(float(azimuth), float(elevation), float(ratio))

    def image_path(self, index: int) -> Path:
        """The render file of item ``index`` (R2N2 view ``view`` or the yaw set's ``00.png``)."""
        index = self._check_index(index)
        synset, model_id = self.shape(index)
        if self.images == "yaw":
            return yaw_image_path(self.root, self.yaw, synset, model_id)  # type: ignore[arg-type]
        return r2n2_dir(self.root, synset, model_id) / r2n2_image_name(int(self._item_views[index]))

    def image_paths(self) -> list[Path]:
        """The image file of every item, in item order (for input image DS)."""
        return [self.image_path(i) for i in range(len(self))]

    def image(self, index: int) -> torch.Tensor:
        """(3, image_size, image_size) float32 RGB image of item ``index`` in [0, 1]."""
        crop = R2N2_CROP if self.images == "r2n2" else None
        return load_render(self.image_path(index), crop=crop, size=self.image_size)

    def points(self, index: int) -> torch.Tensor:
        """(num_points, 3) float32 points of item ``index`` (object or viewer frame, as ``frame``)."""
        index = self._check_index(index)
        dense = self._dense_row(int(self._item_rows[index]))
        choice = np.random.default_rng([self.seed, index]).integers(0, dense.shape[0], size=self.num_points)
        points = dense[choice]
        if self.frame == "viewer":
            points = points @ self.rotation(index).T
        return torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))

    def rotation(self, index: int) -> np.ndarray:
        """(3, 3) float32 R of item ``index``'s camera (rows X̂, Ŷ, Ẑ; VC points = P Rᵀ)."""
        azimuth, elevation, _ = self._item_cameras[self._check_index(index)]
        return camera_rotation(float(azimuth), float(elevation)).astype(np.float32)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        synset, model_id = self.shape(index)
        return {
            "image": self.image(index),
            "points": self.points(index),
            "cam_rotmat": torch.from_numpy(self.rotation(index)),
            "category": synset,
            "id": model_id,
            "view": int(self._item_views[index]),
            "index": index,
        }


def split_image_paths(
    root: str | os.PathLike,
    split: str,
    *,
    categories: Iterable[str] | None = None,
    images: str = "r2n2",
    views: int = 1,
    yaw: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> list[Path]:
    """The image files of a split's items, in item order (for input image DS); the same items as
    ``ShapeNet(root, split=split, ...)`` (shapes without usable files skipped)."""
    dataset = ShapeNet(
        root, split=split, categories=categories, images=images, views=views, yaw=yaw, cache_dir=cache_dir
    )
    return dataset.image_paths()


def shapenet_split(request: SplitRequest) -> ShapeNet:
    """The registry's factory of ``shapenet``: a :class:`ShapeNet` from ``request.options`` (``data.shapenet``).

    The split rule: ShapeNet has no validation split (docs/shapenet.md), so "train" reads the train split and
    both "val" and "test" read the test split, with the test renders' yaw range ``test_yaw`` (null: ``yaw``);
    validation during training therefore runs on the test split, as AtlasNet's. ``request.index_file`` is not
    used (the split comes from the point-cloud files).

    Raises:
        ValueError: ``normalization`` is not "unit_ball" (the clouds are cached normalised), or a bad option
            (see :class:`ShapeNet`).
    """
    if request.normalization not in NORMALIZATIONS:
        raise ValueError(
            f"ShapeNet clouds are normalised to the unit ball; normalization={request.normalization!r} is not supported"
        )
    options = request.options
    split, yaw = request.split, options["yaw"]
    if split != "train":
        split, yaw = "test", (options["test_yaw"] if options["test_yaw"] is not None else yaw)
    return ShapeNet(
        request.root,
        split=split,
        categories=options["categories"],
        images=options["images"],
        views=options["views"],
        yaw=yaw,
        frame=options["frame"],
        num_points=request.num_points,
        image_size=request.image_size,
        seed=request.seed,
        cache_dir=options["cache_dir"],
    )


# --------------------------------------------------------------------------------------------- summary


@dataclasses.dataclass
class SetStatus:
    """One render set (or the meshes) of one category: shapes with complete files, and the problems."""

    complete: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class CategorySummary:
    synset: str
    name: str
    shapes: int = 0
    train: int = 0
    test: int = 0
    unreadable: list[str] = dataclasses.field(default_factory=list)
    r2n2: SetStatus | None = None
    yaw: dict[int, SetStatus] = dataclasses.field(default_factory=dict)
    meshes: int = 0
    error: str | None = None


@dataclasses.dataclass
class Summary:
    root: Path
    categories: list[CategorySummary]
    yaw_sets: list[int]
    error: str | None = None
    extra_folders: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing or unreadable (absent yaw sets and meshes are not problems)."""
        if self.error is not None:
            return False
        for category in self.categories:
            if category.error or category.unreadable or category.r2n2 is None or category.r2n2.problems:
                return False
            if any(status.problems for status in category.yaw.values()):
                return False
        return True


def summarize(
    root: str | os.PathLike, *, categories: Iterable[str] | None = None, deep: bool = False, progress: bool = False
) -> Summary:
    """Checks a data root: per category the shapes, split counts, which render sets are complete, and every
    missing or unreadable file. ``deep`` also reads every cloud and decodes every PNG (slow)."""
    root = Path(root)
    try:
        names = read_taxonomy(root)
    except (FileNotFoundError, ValueError) as error:
        return Summary(root, [], [], error=str(error))
    synsets = sorted(SHAPENET13) if categories is None else resolve_categories(categories, {**SHAPENET13, **names})
    yaw_sets = present_yaw_sets(root)
    cloud_dir = root / POINT_CLOUD_DIR
    extra = (
        sorted(p.name for p in cloud_dir.iterdir() if p.is_dir() and p.name not in synsets)
        if cloud_dir.is_dir()
        else []
    )
    has_r2n2 = (root / R2N2_DIR).is_dir()
    result = []
    for synset in tqdm(synsets, desc="categories", disable=not progress):
        category = CategorySummary(synset, names.get(synset, SHAPENET13.get(synset, "?")))
        result.append(category)
        try:
            files = list_point_clouds(root, synset)
        except (FileNotFoundError, ValueError) as error:
            category.error = str(error)
            continue
        ids = [file.id for file in files]
        category.shapes = len(ids)
        category.train, category.test = len(split_ids(ids, "train")), len(split_ids(ids, "test"))
        category.r2n2 = SetStatus() if has_r2n2 else None
        category.yaw = {r: SetStatus() for r in yaw_sets}
        for file in files:
            problem = _check_cloud(file.path, deep)
            if problem is not None:
                category.unreadable.append(problem)
            if category.r2n2 is not None:
                _tally(category.r2n2, check_r2n2_complete(root, synset, file.id), deep, [
                    r2n2_dir(root, synset, file.id) / r2n2_image_name(v) for v in range(R2N2_VIEWS)
                ])  # fmt: skip
            for r in yaw_sets:
                _, problem = check_yaw(root, r, synset, file.id)
                _tally(category.yaw[r], problem, deep, [yaw_image_path(root, r, synset, file.id)])
            category.meshes += (mesh_dir(root, synset, file.id) / "model.obj").is_file()
    return Summary(root, result, yaw_sets, extra_folders=extra)


def _check_cloud(path: Path, deep: bool) -> str | None:
    _, problem = check_point_cloud_header(path)
    if problem is None and deep:
        try:
            points = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            return f"unreadable .npy {path}: {error}"
        if not np.isfinite(points[:, :3]).all():
            return f"{path} holds NaN or infinite coordinates"
    return problem


def _tally(status: SetStatus, problem: str | None, deep: bool, images: list[Path]) -> None:
    if problem is None and deep:
        problem = next((p for p in map(check_png, images) if p is not None), None)
    if problem is None:
        status.complete += 1
    else:
        status.problems.append(problem)


def format_summary(summary: Summary, *, limit: int | None = 10) -> str:
    """The summary as text: a table per category, then every problem (``limit`` per category and set)."""
    lines = [f"ShapeNet data root: {summary.root}"]
    if summary.error:
        return "\n".join([*lines, f"ERROR: {summary.error}"])
    sets = ["r2n2", *(f"yaw{r:03d}" for r in summary.yaw_sets)]
    header = f"{'category':<12} {'synset':<9} {'shapes':>6} {'train':>6} {'test':>5} {'bad npy':>7} "
    header += " ".join(f"{name:>11}" for name in sets) + f" {'meshes':>7}"
    lines += [header, "-" * len(header)]
    problems: list[str] = []
    totals = np.zeros(4, dtype=np.int64)
    for c in summary.categories:
        if c.error:
            lines.append(f"{c.name:<12} {c.synset:<9} {'missing':>6}")
            problems.append(f"  {c.name} {c.synset}: {c.error}")
            continue
        totals += (c.shapes, c.train, c.test, len(c.unreadable))
        cells = [_cell(c.r2n2, c.shapes)] + [_cell(c.yaw[r], c.shapes) for r in summary.yaw_sets]
        lines.append(
            f"{c.name:<12} {c.synset:<9} {c.shapes:>6} {c.train:>6} {c.test:>5} {len(c.unreadable):>7} "
            + " ".join(f"{cell:>11}" for cell in cells)
            + f" {c.meshes:>7}"
        )
        problems += _listed(f"{c.name} {c.synset}: unreadable point clouds", c.unreadable, limit)
        if c.r2n2 is None:
            problems.append(f"  {c.name} {c.synset}: no R2N2 renders ({summary.root / R2N2_DIR} missing)")
        else:
            problems += _listed(f"{c.name} {c.synset}: R2N2 renders incomplete", c.r2n2.problems, limit)
        for r in summary.yaw_sets:
            problems += _listed(f"{c.name} {c.synset}: {yaw_set_name(r)} incomplete", c.yaw[r].problems, limit)
    lines.append("-" * len(header))
    lines.append(f"{'total':<12} {'':<9} {totals[0]:>6} {totals[1]:>6} {totals[2]:>5} {totals[3]:>7}")
    lines.append(
        "cells: shapes with complete files / shapes ('r2n2': 24 views + metadata; 'yawRRR': one view + metadata)"
    )
    if not summary.yaw_sets:
        lines.append("yaw-limited renders: none (make them with python -m dataset.shapenet.render)")
    if summary.extra_folders:
        lines.append(f"other category folders in {POINT_CLOUD_DIR} (not checked): {', '.join(summary.extra_folders)}")
    if not any(c.meshes for c in summary.categories):
        lines.append(f"meshes: no {MESH_DIR}/ (only needed to render yaw sets)")
    if problems:
        lines += ["", f"PROBLEMS ({len(problems)} groups):", *problems]
    else:
        lines += ["", "OK: nothing missing or unreadable"]
    return "\n".join(lines)


def _cell(status: SetStatus | None, shapes: int) -> str:
    return "absent" if status is None else f"{status.complete}/{shapes}"


def _listed(title: str, problems: list[str], limit: int | None) -> list[str]:
    if not problems:
        return []
    shown = problems if limit is None else problems[:limit]
    more = [f"    ... and {len(problems) - len(shown)} more (--all lists them)"] if len(shown) < len(problems) else []
    return [f"  {title} ({len(problems)} shapes):", *(f"    {p}" for p in shown), *more]


# --------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dataset.shapenet", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="data root (default dataset/data)")
    parser.add_argument("--summary", action="store_true", help="check the root and print what is there")
    parser.add_argument("--categories", nargs="+", default=None, help="names or synset ids (default: the 13)")
    parser.add_argument("--deep", action="store_true", help="also read every cloud and decode every PNG (slow)")
    parser.add_argument("--all", action="store_true", help="list every problem (default: 10 per category and set)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.summary:
        _parser().print_help()
        return 2
    if not args.root.is_dir():
        print(f"error: --root {args.root} is not a folder (a ShapeNet data root)", file=sys.stderr)
        return 2
    try:
        summary = summarize(args.root, categories=args.categories, deep=args.deep, progress=not args.no_progress)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary, limit=None if args.all else 10))
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
