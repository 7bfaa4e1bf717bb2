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

The build is resumable: finished instances are recorded (``DIR/.build_journal.jsonl`` while a build runs,
``manifest.json`` once it is done); a rerun skips every instance whose files still match their recorded
SHA-256 and regenerates the rest (missing, corrupt or half-written). ``manifest.json`` exists only for a
completed build; ``--verify`` re-hashes every file it lists.

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
import json
import logging
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dataset.build.log_file import log_to_file
from dataset.build.manifest import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    canonical_json,
    files_intact,
    read_manifest,
    refuse_other_settings,
    settings_fingerprint,
    sha256_bytes,
    verify,
    write_manifest,
)
from dataset.build.worker_pool import WorkerStartError, imap_unordered
from dataset.synthetic import instance as instance_module
from dataset.synthetic.instance import GENERATOR_VERSION, TMP_PREFIX, InstanceSettings
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
from dispersion_score.locks import DirectoryLockedError, directory_lock
from dispersion_score.paths import check_writable_folder

JOURNAL_NAME = ".build_journal.jsonl"
LOG_NAME = "build.log"
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


@dataclasses.dataclass
class BuildSummary:
    root: Path
    built: int
    skipped: int
    seconds: float


def planned_instances(config: BuildConfig) -> list[Instance]:
    """Every instance the build writes, pool first, then test, then validation."""
    pool = split_instances("train", POOL_SIZE)
    if config.pool == "clusters":
        pool = [pool[i] for i in referenced_pool_indices()]
    return pool + split_instances("test", config.test_size) + split_instances("val", config.val_size)


def _versions() -> dict[str, str]:
    import mitsuba
    import numpy
    import trimesh

    return {
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "trimesh": trimesh.__version__,
        "mitsuba": mitsuba.__version__,
    }


# --------------------------------------------------------------------------------------------- records


def _load_records(root: Path, fingerprint: str) -> dict[str, dict[str, Any]]:
    """Instance records {id: {"t": t, "files": {path: sha256}}} left by earlier builds with these settings."""
    records: dict[str, dict[str, Any]] = {}
    manifest = read_manifest(root)
    if manifest is not None and manifest.get("fingerprint") == fingerprint:
        for instance_id, info in manifest.get("instances", {}).items():
            files = {p: d for p, d in manifest["files"].items() if p.startswith(f"instances/{instance_id}/")}
            records[instance_id] = {"t": info["t"], "files": files}
    journal = root / JOURNAL_NAME
    if journal.exists():
        for line in journal.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a killed build may be cut short
            if "id" in record and record.get("fingerprint") == fingerprint:
                records[record["id"]] = {"t": record["t"], "files": record["files"]}
    return records


def _journal_line(fingerprint: str, instance: Instance, files: dict[str, str]) -> str:
    return json.dumps({"fingerprint": fingerprint, "id": instance.id, "t": instance.t, "files": files}) + "\n"


def _journal_header(settings: dict[str, Any]) -> str:
    """The journal's first line: the settings of the build in progress (compared by the next build)."""
    return json.dumps({"settings": settings}) + "\n"


def existing_settings(root: Path) -> dict[str, Any] | None:
    """The settings of the build already in ``root``: the finished one (manifest) or an unfinished one
    (journal header); None for a root without a build."""
    manifest = read_manifest(root)
    if manifest is not None:
        return manifest.get("settings")
    journal = root / JOURNAL_NAME
    try:
        first = journal.read_text().splitlines()[0] if journal.exists() else ""
        header = json.loads(first) if first else {}
    except (OSError, json.JSONDecodeError, IndexError):
        return None
    return header.get("settings") if isinstance(header, dict) else None


def _check_settings(root: Path, settings: dict[str, Any], force: bool) -> None:
    if not force:
        refuse_other_settings(root, existing_settings(root), settings)


def _remove_stale_temporaries(root: Path) -> None:
    instances_dir = root / "instances"
    if not instances_dir.is_dir():
        return
    for path in instances_dir.iterdir():
        if path.name.startswith(TMP_PREFIX):
            logger.info("removing leftover temporary directory %s", path)
            shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------- running


def _run_serial(root: Path, settings: InstanceSettings, todo: list[Instance]) -> Iterator[tuple[Instance, dict]]:
    instance_module.init_worker(str(root), settings)
    for instance in todo:
        yield instance_module.build_instance(instance)


def _run_parallel(
    root: Path, settings: InstanceSettings, todo: list[Instance], workers: int
) -> Iterator[tuple[Instance, dict]]:
    yield from imap_unordered(
        instance_module.build_instance,
        todo,
        workers=workers,
        initializer=instance_module.init_worker,
        initargs=(str(root), settings),
        chunksize=4,
    )


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


def build(config: BuildConfig) -> BuildSummary:
    """Builds (or completes) the dataset under ``config.root``. See the module docstring.

    Raises:
        BuildSettingsError: the root holds a build with other settings (and not ``config.force``).
        DirectoryLockedError: another build is running on the root.
    """
    root = Path(config.root)
    with directory_lock(root, what="dataset root"):
        _check_settings(root, config.settings(), config.force)
        return _build(config, root)


def _build(config: BuildConfig, root: Path) -> BuildSummary:
    start = time.perf_counter()
    settings = config.settings()
    fingerprint = settings_fingerprint(config.instance_settings.to_dict())
    with log_to_file(logger, root / LOG_NAME):
        logger.info("build start: root=%s settings=%s workers=%d", root, json.dumps(settings), config.workers)
        _remove_stale_temporaries(root)
        records = _load_records(root, fingerprint)
        plan = planned_instances(config)
        done: dict[str, dict[str, str]] = {}
        todo: list[Instance] = []
        for inst in plan:
            record = records.get(inst.id)
            if record is not None and record["t"] == inst.t and files_intact(root, record["files"]):
                done[inst.id] = record["files"]
            else:
                todo.append(inst)
        logger.info("%d instances planned: %d already built and verified, %d to build", len(plan), len(done), len(todo))

        # From here on the manifest would no longer describe the directory: drop it, keep what it knew.
        journal_path = root / JOURNAL_NAME
        atomic_write_text(
            journal_path,
            _journal_header(settings)
            + "".join(_journal_line(fingerprint, inst, done[inst.id]) for inst in plan if inst.id in done),
        )
        (root / MANIFEST_NAME).unlink(missing_ok=True)

        if todo:
            instance_settings = config.instance_settings
            workers = min(config.workers, len(todo))
            results = (
                _run_serial(root, instance_settings, todo)
                if workers == 1
                else _run_parallel(root, instance_settings, todo, workers)
            )
            with (
                open(journal_path, "a") as journal,
                tqdm(total=len(todo), desc="instances", unit="inst", disable=not config.progress) as bar,
            ):
                for inst, files in results:
                    journal.write(_journal_line(fingerprint, inst, files))
                    journal.flush()
                    done[inst.id] = files
                    bar.update()

        files: dict[str, str] = {}
        for inst in plan:
            files.update(done[inst.id])
        files.update(write_index_files(root, plan))
        unlisted = sorted(
            p.name
            for p in (root / "instances").iterdir()
            if p.is_dir() and p.name not in done and not p.name.startswith(TMP_PREFIX)
        )
        if unlisted:
            logger.warning("%d instance directories are not part of this build (e.g. %s)", len(unlisted), unlisted[0])
        manifest = {
            "format": MANIFEST_FORMAT,
            "generator_version": GENERATOR_VERSION,
            "settings": settings,
            "fingerprint": fingerprint,
            "provenance": {"versions": _versions(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
            "instances": {inst.id: {"split": inst.split, "index": inst.index, "t": inst.t} for inst in plan},
            "files": files,
        }
        write_manifest(root, manifest)
        journal_path.unlink(missing_ok=True)
        seconds = time.perf_counter() - start
        logger.info("build done: %d built, %d skipped, %.1f s", len(todo), len(plan) - len(todo), seconds)
    return BuildSummary(root, built=len(todo), skipped=len(plan) - len(todo), seconds=seconds)


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
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--force", action="store_true", help="rebuild a root that holds a build with other settings")
    parser.add_argument(
        "--verify", action="store_true", help="only check every file against manifest.json; exit 1 on any problem"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verify:
        report = verify(args.root)
        print(report.summary())
        return 0 if report.ok else 1
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
    except (ValueError, DirectoryLockedError, OSError, WorkerStartError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(
        f"built {summary.built} instances, skipped {summary.skipped} already built, "
        f"{summary.seconds:.1f} s; root {summary.root} (log: {Path(summary.root) / LOG_NAME})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
