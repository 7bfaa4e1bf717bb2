"""One resumable build of a dataset root: what the dataset builders share.

A family's :class:`Builder` says which items exist, which settings decide their files, how to make one item and
what the root holds besides its items; :func:`run_build` does the rest:

* one build at a time owns a root (``ROOT/.lock``, :func:`dispersion_score.locks.directory_lock`);
* a root holding a finished (manifest) or unfinished (journal) build with other settings is refused, naming
  each difference (:func:`dataset.build.manifest.refuse_other_settings`), unless ``force``;
* resume: an item that an earlier build with the same item settings recorded (manifest, then journal) and
  whose files all still have their SHA-256 is kept; every other item is made (again);
* ``ROOT/.build_journal.jsonl`` while the build runs: a header ``{"settings": ..., "planned": [keys]}``, then
  ``{"fingerprint": ..., "key": ..., "files": {path: sha256}}`` per finished item, so a killed build resumes;
* a killed build's temporaries are removed (:mod:`dataset.build.temporaries`); items are made in this process
  or a spawned pool (:func:`dataset.build.worker_pool.make_items`), under a progress bar;
* ``ROOT/manifest.json`` (:mod:`dataset.build.manifest`) is written last, and only for a finished build;
  ``ROOT/build.log`` gets the builder's log.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from dataset.build.log_file import log_to_file
from dataset.build.manifest import (
    MANIFEST_NAME,
    files_intact,
    package_versions,
    read_manifest,
    refuse_other_settings,
    settings_fingerprint,
    write_manifest,
)
from dataset.build.temporaries import remove_temporaries
from dataset.build.worker_pool import Progress, make_items
from dispersion_score.atomic import atomic_write_text
from dispersion_score.locks import directory_lock

JOURNAL_NAME = ".build_journal.jsonl"
LOG_NAME = "build.log"
Item = TypeVar("Item")
Files = dict[str, str]  # {path relative to the root, forward slashes: SHA-256 hex digest}


class Builder(abc.ABC, Generic[Item]):
    """What :func:`run_build` needs from one dataset family. Subclasses are picklable (frozen dataclasses):
    :meth:`start_worker` runs in spawned worker processes.

    Class attributes: ``manifest_format`` (the manifest's ``format``), ``generator_version`` (recorded in the
    manifest), ``version_keys`` (top-level settings keys the refusal does not compare: code versions that
    rebuild without asking), ``packages`` (whose versions the manifest records), ``noun`` (the items, in the
    log), ``progress_label`` / ``progress_unit`` (the progress bar), ``chunksize`` (items sent to a worker at
    a time; speed only) and ``logger`` (logged to ``ROOT/build.log`` during the build).
    """

    manifest_format: ClassVar[str]
    generator_version: ClassVar[str]
    version_keys: ClassVar[tuple[str, ...]] = ()
    packages: ClassVar[tuple[str, ...]] = ("numpy",)
    noun: ClassVar[str]
    progress_label: ClassVar[str]
    progress_unit: ClassVar[str]
    chunksize: ClassVar[int] = 1
    logger: ClassVar[logging.Logger]

    @property
    @abc.abstractmethod
    def root(self) -> Path:
        """The dataset root (created if missing)."""

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """JSON-able settings of the whole root: recorded in the manifest; a root built with others is refused."""

    @abc.abstractmethod
    def item_settings(self) -> dict[str, Any]:
        """JSON-able settings that decide an item's files: records made with others are not reused."""

    @abc.abstractmethod
    def plan(self) -> list[Item]:
        """Every item of the build, in the order the journal and the manifest list them."""

    @abc.abstractmethod
    def key(self, item: Item) -> str:
        """The item's name in the journal and manifest, including anything besides :meth:`item_settings` that
        decides its files: an item is kept only when a record under its key exists."""

    @abc.abstractmethod
    def recorded(self, manifest: dict[str, Any]) -> dict[str, Files]:
        """``{key: files}`` of the items a manifest of this format lists."""

    @abc.abstractmethod
    def start_worker(self) -> Callable[[Item], Files]:
        """Sets up one process (a renderer, say) and returns ``make(item)``, which writes the item's files
        under the root, each complete or absent, and returns ``{path: sha256}`` of every file it wrote."""

    @abc.abstractmethod
    def finish(self, plan: Sequence[Item], made: dict[str, Files]) -> tuple[Files, dict[str, Any]]:
        """After every item is made (``made``: key → files): writes the root's own files (index files,
        taxonomy) and returns (their {path: sha256}, the manifest's family-specific sections)."""

    def work_folders(self) -> list[Path]:
        """Folders whose children are items' files or folders: a killed build's temporaries there are removed."""
        return []

    def check_root(self, plan: Sequence[Item], known: set[str]) -> None:
        """Raises (ValueError) when the root must not be built into, before anything changes; ``known`` holds
        the keys that any earlier build of this family recorded or planned here, whatever its settings."""

    def prepare(self, plan: Sequence[Item], todo: Sequence[Item]) -> int:
        """Tidies the root before the items in ``todo`` are made; returns how many old items it removed."""
        return 0


@dataclasses.dataclass
class BuildSummary:
    """What :func:`run_build` did: items made, items kept from earlier builds, old items removed, wall time."""

    root: Path
    built: int
    skipped: int
    removed: int
    seconds: float


def _journal(root: Path) -> list[dict[str, Any]]:
    """The journal's lines that parse as JSON objects (a killed build's last line may be cut short)."""
    path = root / JOURNAL_NAME
    try:
        lines = path.read_text().splitlines() if path.exists() else []
    except (OSError, UnicodeDecodeError):
        return []
    documents = []
    for line in lines:
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict):
            documents.append(document)
    return documents


def existing_settings(root: Path, manifest_format: str) -> dict[str, Any] | None:
    """The settings of the build already in ``root``: the finished one (manifest of ``manifest_format``) or
    an unfinished one (journal header); None for a root without either."""
    manifest = read_manifest(root, manifest_format)
    if manifest is not None:
        return manifest.get("settings")
    journal = _journal(root)
    return journal[0].get("settings") if journal else None


def _known_keys(builder: Builder[Any], root: Path) -> set[str]:
    manifest = read_manifest(root, builder.manifest_format)
    known = set(builder.recorded(manifest)) if manifest is not None else set()
    for document in _journal(root):
        known.update(document.get("planned", []))
        if "key" in document:
            known.add(document["key"])
    return known


def _records(builder: Builder[Any], root: Path, fingerprint: str) -> dict[str, Files]:
    """{key: files} recorded by earlier builds with these item settings (manifest, then journal)."""
    records: dict[str, Files] = {}
    manifest = read_manifest(root, builder.manifest_format)
    if manifest is not None and manifest.get("fingerprint") == fingerprint:
        records.update(builder.recorded(manifest))
    for document in _journal(root):
        if document.get("fingerprint") == fingerprint and "key" in document:
            records[document["key"]] = document["files"]
    return records


def _journal_line(fingerprint: str, key: str, files: Files) -> str:
    return json.dumps({"fingerprint": fingerprint, "key": key, "files": files}) + "\n"


def run_build(builder: Builder[Any], *, workers: int, force: bool = False, progress: bool = True) -> BuildSummary:
    """Builds (or completes) ``builder.root``; see the module docstring. ``workers``: processes that make
    items (1: this process); ``force``: rebuild a root that holds a build with other settings; ``progress``:
    show the progress bar.

    Raises:
        DirectoryLockedError: another build owns the root (the message names it); nothing is changed.
        BuildSettingsError: the root holds a build with other settings and not ``force``; nothing is changed.
        ValueError: :meth:`Builder.check_root` refused the root; nothing is changed.
        WorkerStartError: a worker process could not start (its error); finished items stay journaled.
        Exception: what making an item raised, noted with the item; finished items stay journaled.
    """
    root = Path(builder.root)
    with directory_lock(root, what="dataset root"):
        plan = builder.plan()
        builder.check_root(plan, _known_keys(builder, root))
        settings = builder.settings()
        if not force:
            existing = existing_settings(root, builder.manifest_format)
            refuse_other_settings(root, existing, settings, ignore=builder.version_keys)
        with log_to_file(builder.logger, root / LOG_NAME):
            return _build(builder, root, plan, settings, workers, progress)


def _build(
    builder: Builder[Any], root: Path, plan: list[Any], settings: dict[str, Any], workers: int, progress: bool
) -> BuildSummary:
    start = time.perf_counter()
    logger = builder.logger
    fingerprint = settings_fingerprint(builder.item_settings())
    logger.info("build start: root=%s settings=%s workers=%d", root, json.dumps(settings), workers)
    remove_temporaries(builder.work_folders(), logger)
    records = _records(builder, root, fingerprint)
    keys = [builder.key(item) for item in plan]
    done: dict[str, Files] = {}
    todo = []
    for key, item in zip(keys, plan, strict=True):
        files = records.get(key)
        if files is not None and files_intact(root, files):
            done[key] = files
        else:
            todo.append(item)
    logger.info(
        "%d %s planned: %d already built and verified, %d to build", len(plan), builder.noun, len(done), len(todo)
    )
    removed = builder.prepare(plan, todo)

    # From here on the manifest would no longer describe the root: drop it, keep what it knew in the journal.
    # The plan goes first: a killed build's half-written items are then known as this family's on the next run.
    journal_path = root / JOURNAL_NAME
    header = json.dumps({"settings": settings, "planned": keys}) + "\n"
    atomic_write_text(journal_path, header + "".join(_journal_line(fingerprint, k, done[k]) for k in keys if k in done))
    (root / MANIFEST_NAME).unlink(missing_ok=True)
    if todo:
        shown = Progress(builder.progress_label, builder.progress_unit, shown=progress)
        made = make_items(builder.start_worker, todo, workers=workers, progress=shown, chunksize=builder.chunksize)
        with open(journal_path, "a") as journal:
            try:
                for item, files in made:
                    key = builder.key(item)
                    journal.write(_journal_line(fingerprint, key, files))
                    journal.flush()
                    done[key] = files
            except Exception as error:
                logger.error("build stopped: %s (%s)", error, "; ".join(getattr(error, "__notes__", [])))
                raise

    files: Files = {}
    for key in keys:
        files.update(done[key])
    root_files, sections = builder.finish(plan, {key: done[key] for key in keys})
    files.update(root_files)
    manifest = {
        "format": builder.manifest_format,
        "generator_version": builder.generator_version,
        "settings": settings,
        "fingerprint": fingerprint,
        "provenance": {"versions": package_versions(*builder.packages), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        **sections,
        "files": files,
    }
    write_manifest(root, manifest)
    journal_path.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    kept = len(plan) - len(todo)
    logger.info("build done: %d built, %d skipped, %d removed, %.1f s", len(todo), kept, removed, seconds)
    return BuildSummary(root, built=len(todo), skipped=kept, removed=removed, seconds=seconds)
