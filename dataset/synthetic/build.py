"""Builds the synthetic cube↔sphere dataset (docs/dataset.md): ``python -m dataset.synthetic --root DIR``.

Root layout::

    DIR/instances/<split>_<index:04d>/{model.obj, points.npy, Isometric.png}   split ∈ train, test, val
    DIR/train_pool.json, DIR/test.json, DIR/val.json                           plain index files
    DIR/cluster_image_aug_2by10_cltsizeNN.json, DIR/cluster_shape_aug_2by10_cltsizeNN.json
                                                  NN ∈ 01 05 10 15 20 25 30 35 (see dataset.synthetic.training_sets)
    DIR/manifest.json                             generator version, settings, SHA-256 of every file
    DIR/build.log

Every index / training-set file is a JSON list of entries with ``id``, ``image``, ``points``, ``mesh``
(paths relative to DIR), ``t_image`` and ``t_shape``.

This module plans the build (which instances exist, the settings) and :mod:`dataset.synthetic.instance` makes
one instance; :func:`dataset.build.runner.run_build` does the rest. The build is resumable: finished instances
are recorded (``DIR/.build_journal.jsonl`` while a build runs, ``manifest.json`` once it is done); a rerun
skips every instance whose files still match their recorded SHA-256 and regenerates the rest (missing,
corrupt or half-written). ``manifest.json`` exists only for a completed build; ``--verify`` re-hashes every
file it lists.

A root belongs to one set of settings: a build with other settings over an existing (finished or
unfinished) build is refused, naming the settings that differ; ``--force`` rebuilds it with the new
settings. One build at a time owns a root (``DIR/.lock``, :func:`dispersion_score.locks.directory_lock`): a
second build started on the same root is refused, naming the first one's pid, host and start time.

Reduced builds (tests, smoke runs): ``--pool clusters`` builds only the ~170 pool instances the 16
training sets use (indices stay those of the 1000-instance pool; ``train_pool.json`` lists the built
ones), ``--test-size`` / ``--val-size`` shrink the test / validation splits (t = (j + 0.5)/n and
(j + 0.25)/n), and ``--image-size`` / ``--points`` shrink the files.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from dataset.build.command_line import BUILD_ERRORS, add_run_options, print_error, print_verify
from dataset.build.manifest import MANIFEST_FORMAT, canonical_json, sha256_bytes
from dataset.build.runner import LOG_NAME, Builder, BuildSummary, Files, run_build
from dataset.build.temporaries import TMP_PREFIX
from dataset.synthetic.instance import GENERATOR_VERSION, InstanceSettings, instance_maker
from dataset.synthetic.render import RenderSettings
from dataset.synthetic.training_sets import (
    INDEX_FILES,
    POOL_SIZE,
    TEST_SIZE,
    VAL_SIZE,
    Instance,
    all_training_sets,
    index_entry,
    pool_lookup,
    referenced_pool_indices,
    split_instances,
    training_entry,
    training_set_items,
    training_set_name,
)
from dispersion_score.atomic import atomic_write_text
from dispersion_score.launch import OneLineParser, non_negative_int, positive_int
from dispersion_score.paths import check_writable_folder

POOL_CHOICES = ("full", "clusters")
SEED_LIMIT = 2**32  # Mitsuba's sampler seed is an unsigned 32-bit integer
logger = logging.getLogger("dataset.synthetic")


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """What to build and where. ``instance_settings`` determine file contents; the rest the file set."""

    root: Path
    image_size: int = 224
    num_points: int = 30000
    workers: int = 2
    seed: int = 0
    samples_per_pixel: int = 16
    pool: str = "full"
    test_size: int = TEST_SIZE
    val_size: int = VAL_SIZE
    progress: bool = True
    force: bool = False

    def __post_init__(self) -> None:
        if self.pool not in POOL_CHOICES:
            raise ValueError(f"pool must be one of {POOL_CHOICES}, got {self.pool!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < SEED_LIMIT:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        if Path(self.root).exists() and not Path(self.root).is_dir():
            raise ValueError(f"root {self.root} is a file, not a directory")
        for name in ("test_size", "val_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    @property
    def instance_settings(self) -> InstanceSettings:
        render = RenderSettings(image_size=self.image_size, samples_per_pixel=self.samples_per_pixel, seed=self.seed)
        return InstanceSettings(num_points=self.num_points, seed=self.seed, render=render)

    def settings(self) -> dict[str, Any]:
        return {
            "instance": self.instance_settings.to_dict(),
            "pool": self.pool,
            "pool_size": POOL_SIZE,
            "test_size": self.test_size,
            "val_size": self.val_size,
        }


def planned_instances(config: BuildConfig) -> list[Instance]:
    """Every instance the build writes, pool first, then test, then validation."""
    pool = split_instances("train", POOL_SIZE)
    if config.pool == "clusters":
        pool = [pool[i] for i in referenced_pool_indices()]
    return pool + split_instances("test", config.test_size) + split_instances("val", config.val_size)


def _write_json(root: Path, name: str, document: Any) -> tuple[str, str]:
    text = canonical_json(document)
    atomic_write_text(root / name, text)
    return name, sha256_bytes(text.encode())


def write_index_files(root: Path, instances: Sequence[Instance]) -> dict[str, str]:
    """Writes the 3 index files and the 16 training-set files; returns {name: sha256}."""
    files: dict[str, str] = {}
    for split, name in INDEX_FILES.items():
        entries = [index_entry(inst) for inst in instances if inst.split == split]
        files.update([_write_json(root, name, entries)])
    pool = pool_lookup(instances)
    for kind, s in all_training_sets():
        entries = [training_entry(item, pool) for item in training_set_items(kind, s)]
        files.update([_write_json(root, training_set_name(kind, s), entries)])
    return files


def instance_key(instance_id: str, t: float) -> str:
    """An instance's key in the journal: its id and its t (a test or validation id's t depends on the split's
    size), so a record is reused only for the same shape."""
    return f"{instance_id} t={t!r}"


@dataclasses.dataclass(frozen=True)
class SyntheticBuild(Builder[Instance]):
    """The synthetic dataset as a :class:`dataset.build.runner.Builder`: the instances of ``config``."""

    config: BuildConfig
    manifest_format: ClassVar[str] = MANIFEST_FORMAT
    generator_version: ClassVar[str] = GENERATOR_VERSION
    packages: ClassVar[tuple[str, ...]] = ("numpy", "trimesh", "mitsuba")
    noun: ClassVar[str] = "instances"
    progress_label: ClassVar[str] = "instances"
    progress_unit: ClassVar[str] = "inst"
    chunksize: ClassVar[int] = 4
    logger: ClassVar[logging.Logger] = logger

    @property
    def root(self) -> Path:
        return Path(self.config.root)

    def settings(self) -> dict[str, Any]:
        return self.config.settings()

    def item_settings(self) -> dict[str, Any]:
        return self.config.instance_settings.to_dict()

    def plan(self) -> list[Instance]:
        return planned_instances(self.config)

    def key(self, item: Instance) -> str:
        return instance_key(item.id, item.t)

    def recorded(self, manifest: dict[str, Any]) -> dict[str, Files]:
        return {
            instance_key(instance_id, info["t"]): {
                path: digest
                for path, digest in manifest["files"].items()
                if path.startswith(f"instances/{instance_id}/")
            }
            for instance_id, info in manifest.get("instances", {}).items()
        }

    def start_worker(self) -> Callable[[Instance], Files]:
        return instance_maker(self.root, self.config.instance_settings)

    def work_folders(self) -> list[Path]:
        return [self.root / "instances"]

    def finish(self, plan: Sequence[Instance], made: dict[str, Files]) -> tuple[Files, dict[str, Any]]:
        planned = {inst.id for inst in plan}
        unlisted = sorted(
            p.name
            for p in (self.root / "instances").iterdir()
            if p.is_dir() and p.name not in planned and not p.name.startswith(TMP_PREFIX)
        )
        if unlisted:
            logger.warning("%d instance directories are not part of this build (e.g. %s)", len(unlisted), unlisted[0])
        instances = {inst.id: {"split": inst.split, "index": inst.index, "t": inst.t} for inst in plan}
        return write_index_files(self.root, plan), {"instances": instances}


def build(config: BuildConfig) -> BuildSummary:
    """Builds (or completes) the dataset under ``config.root``. See the module docstring.

    Raises:
        BuildSettingsError: the root holds a build with other settings (and not ``config.force``).
        DirectoryLockedError: another build is running on the root.
    """
    return run_build(SyntheticBuild(config), workers=config.workers, force=config.force, progress=config.progress)


# --------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m dataset.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="dataset directory (created if missing)")
    parser.add_argument("--image-size", type=positive_int, default=224, help="render width = height in pixels")
    parser.add_argument("--points", type=positive_int, default=30000, help="surface samples per instance")
    parser.add_argument("--workers", type=positive_int, default=2, help="parallel processes")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="base seed of point sampling and rendering")
    parser.add_argument("--spp", type=positive_int, default=16, help="render samples per pixel (anti-aliasing)")
    parser.add_argument(
        "--pool", choices=POOL_CHOICES, default="full", help="'clusters': only the pool instances training sets use"
    )
    parser.add_argument("--test-size", type=non_negative_int, default=TEST_SIZE, help="number of test instances")
    parser.add_argument("--val-size", type=non_negative_int, default=VAL_SIZE, help="number of validation instances")
    add_run_options(
        parser,
        force_help="rebuild a root that holds a build with other settings",
        verify_help="only check every file against manifest.json; exit 1 on any problem",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verify:
        return print_verify(args.root, MANIFEST_FORMAT)
    try:
        check_writable_folder(args.root, "--root")
        config = BuildConfig(
            root=args.root,
            image_size=args.image_size,
            num_points=args.points,
            workers=args.workers,
            seed=args.seed,
            samples_per_pixel=args.spp,
            pool=args.pool,
            test_size=args.test_size,
            val_size=args.val_size,
            progress=not args.no_progress,
            force=args.force,
        )
        config.instance_settings  # noqa: B018  (validates the render settings before any work)
        summary = build(config)
    except BUILD_ERRORS as error:
        return print_error(error)
    print(
        f"built {summary.built} instances, skipped {summary.skipped} already built, "
        f"{summary.seconds:.1f} s; root {summary.root} (log: {Path(summary.root) / LOG_NAME})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
