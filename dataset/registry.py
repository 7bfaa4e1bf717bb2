"""The registry of datasets: ``data.dataset`` names → factory and settings schema (docs/datasets.md).

A training config's ``data`` section (:data:`DATA_SCHEMA`) holds the keys every dataset reads (``root``, the
split index files, ``num_points``, ``image_size``, ``normalization``, ``point_seed``) and one section per
registered dataset that has settings of its own (``data.shapenet``). ``build_dataset(config, split)`` hands the
selected dataset's factory a :class:`SplitRequest` and checks that what comes back is a
:class:`~dataset.contract.DatasetSplit`.

The built-in datasets (cubesphere, shapenet, toy) are registered in :mod:`dataset.builtin`, imported by the
``dataset`` package itself, so they are registered whenever anything of ``dataset`` is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataset.contract import CONTRACT_MEMBERS, DatasetSplit
from dataset.locations import REPO_ROOT
from dataset.schema import Key, validate, with_defaults

SPLIT_ROLES = ("train", "val", "test")
"""The splits a caller may ask a factory for (a dataset without one maps it to another, see SplitRequest)."""


@dataclass(frozen=True)
class SplitRequest:
    """What a factory is asked to build: one split of one dataset, from a config's ``data`` section.

    Attributes:
        dataset: the registered name (``data.dataset``).
        split: "train", "val" or "test": the split the caller asks for. A dataset without one of them maps it
            to another in its factory, and documents it (ShapeNet: "val" → "test").
        root: ``data.root`` as an absolute path (a relative root is relative to the repository root).
        index_file: ``data.<split>_file``, for datasets that read one index file per split (others ignore it).
        num_points: ground-truth points per item (``data.num_points``, or the evaluation's count).
        image_size: side of the images in pixels (``data.image_size``).
        normalization: point normalisation (``data.normalization``: "unit_ball" or "none").
        seed: seed of the per-item point sampling (``data.point_seed``, or the evaluation's seed).
        options: the dataset's own settings (``data.<dataset>``, validated, defaults filled); empty when the
            dataset was registered without a schema.
    """

    dataset: str
    split: str
    root: Path
    index_file: str
    num_points: int
    image_size: int
    normalization: str
    seed: int
    options: Mapping[str, Any] = field(default_factory=dict)

    def item_settings(self) -> dict[str, Any]:
        """What every item is made with, as the keyword arguments the built-in dataset classes take:
        ``num_points``, ``image_size``, ``normalization`` and ``seed``."""
        return {
            "num_points": self.num_points,
            "image_size": self.image_size,
            "normalization": self.normalization,
            "seed": self.seed,
        }


DatasetFactory = Callable[[SplitRequest], DatasetSplit]


@dataclass(frozen=True)
class RegisteredDataset:
    """A registry entry: the factory and the schema of ``data.<name>`` (None: no settings of its own)."""

    name: str
    factory: DatasetFactory
    schema: Mapping[str, Any] | None


DATA_SCHEMA: dict[str, Any] = {
    "dataset": Key(str, "cubesphere", "registered dataset name (dataset.registry; built-ins: dataset.builtin)"),
    "root": Key(str, None, "dataset root; relative paths are relative to the repository root", required=True),
    "train_file": Key(str, "train_pool.json", "index file of the training items (relative to root)"),
    "val_file": Key(str, "val.json", "index file of the validation items"),
    "test_file": Key(str, "test.json", "index file of the test items (used by evaluation, not training)"),
    "num_points": Key(int, 2500, "ground-truth points per item (loss and metrics)", minimum=1),
    "image_size": Key(int, 224, "network input size in pixels (images are resized to it)", minimum=1),
    "normalization": Key(str, "unit_ball", "point-cloud normalisation passed to the dataset"),
    "point_seed": Key(int, 0, "seed of the per-item ground-truth point sampling (not the training seed)"),
}
"""The training config's ``data`` section: the keys above, then ``data.<name>`` for each dataset registered with a
schema. Live: :func:`register_dataset` adds sections to this very dict (``models.config.SCHEMA`` holds it)."""

COMMON_KEYS = tuple(DATA_SCHEMA)
_DATASETS: dict[str, RegisteredDataset] = {}


def register_dataset(name: str, factory: DatasetFactory, *, schema: Mapping[str, Any] | None = None) -> None:
    """Makes ``data.dataset: <name>`` build splits with ``factory`` (replacing an earlier registration of ``name``).

    Args:
        name: the dataset's name in configs.
        factory: ``factory(request: SplitRequest) -> DatasetSplit``.
        schema: the dataset's own settings, a mapping of :class:`~dataset.schema.Key` (sections allowed); they
            become the config section ``data.<name>`` and reach the factory as ``request.options``.

    Raises:
        ValueError: ``name`` is empty or one of the common keys of ``data`` (``root``, ...).
    """
    if not name or name in COMMON_KEYS:
        raise ValueError(f"dataset name {name!r} is empty or a key of the data section ({', '.join(COMMON_KEYS)})")
    _DATASETS[name] = RegisteredDataset(name, factory, None if schema is None else dict(schema))
    DATA_SCHEMA.pop(name, None)
    if schema is not None:
        DATA_SCHEMA[name] = dict(schema)


def unregister_dataset(name: str) -> None:
    """Removes a registration and its ``data.<name>`` section (nothing if ``name`` is not registered)."""
    _DATASETS.pop(name, None)
    if name not in COMMON_KEYS:
        DATA_SCHEMA.pop(name, None)


def registered_datasets() -> list[str]:
    """The registered names, sorted."""
    return sorted(_DATASETS)


def dataset_entry(name: str) -> RegisteredDataset:
    """The registration of ``name``.

    Raises:
        ValueError: ``name`` is not registered (the message lists the registered names).
    """
    if name not in _DATASETS:
        raise ValueError(f"data.dataset: unknown dataset {name!r}; registered: {registered_datasets()}")
    return _DATASETS[name]


def data_root(data: Mapping[str, Any]) -> Path:
    """``data.root`` as a path; a relative root is relative to the repository root (not the working dir)."""
    root = Path(data["root"]).expanduser()
    return root if root.is_absolute() else REPO_ROOT / root


def build_dataset(
    config: Mapping[str, Any], split: str, *, num_points: int | None = None, point_seed: int | None = None
) -> DatasetSplit:
    """One split of the dataset a training config's ``data`` section selects.

    Args:
        config: a resolved training config (:func:`models.config.load_config`); only ``data`` is read.
        split: "train", "val" or "test".
        num_points: replaces ``data.num_points`` (evaluation reads its ground truth with its own count).
        point_seed: replaces ``data.point_seed``.

    Returns:
        The split, a :class:`~dataset.contract.DatasetSplit`.

    Raises:
        ValueError: an unknown split or ``data.dataset``, or a bad ``data.<dataset>`` setting (the message
            names the key), or what the factory raises for its data.
        TypeError: the factory returned something that is not a DatasetSplit (the message names the missing
            methods).
    """
    if split not in SPLIT_ROLES:
        raise ValueError(f"split must be one of {SPLIT_ROLES}, got {split!r}")
    data = config["data"]
    entry = dataset_entry(data["dataset"])
    options: dict[str, Any] = {}
    if entry.schema is not None:
        given = data.get(entry.name, {})
        if not isinstance(given, Mapping):
            raise ValueError(f"data.{entry.name}: must be a section (mapping), got {given!r}")
        options = with_defaults(entry.schema, given)
        validate(options, entry.schema, path=f"data.{entry.name}.")
    request = SplitRequest(
        dataset=entry.name,
        split=split,
        root=data_root(data),
        index_file=data[f"{split}_file"],
        num_points=data["num_points"] if num_points is None else num_points,
        image_size=data["image_size"],
        normalization=data["normalization"],
        seed=data["point_seed"] if point_seed is None else point_seed,
        options=options,
    )
    made = entry.factory(request)
    if not isinstance(made, DatasetSplit):
        missing = [member for member in CONTRACT_MEMBERS if not hasattr(made, member)]
        raise TypeError(
            f"dataset {entry.name!r}: its factory returned a {type(made).__name__}, which lacks {missing} of the "
            "dataset contract (dataset.contract.DatasetSplit; dataset.base.DatasetBase gives defaults)"
        )
    return made
