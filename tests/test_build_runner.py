"""The resumable-build runner (dataset.build.runner) on a toy builder: resume after a killed and after a failed
build, the settings refusal, a failing item named, a worker that cannot start, temporaries and the lock."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dataset.build.manifest import MANIFEST_NAME, BuildSettingsError, read_manifest, sha256_bytes, verify
from dataset.build.runner import JOURNAL_NAME, LOG_NAME, Builder, Files, run_build
from dataset.build.temporaries import replace_folder
from dataset.build.worker_pool import WorkerStartError
from dispersion_score.locks import DirectoryLockedError, directory_lock

TESTS = Path(__file__).resolve().parent
FORMAT = "toy-manifest/1"


def _make_toy(root: Path, factor: int, fail_on: int | None, delay: float, item: int) -> Files:
    if item == fail_on:
        raise RuntimeError(f"item {item} cannot be made")
    time.sleep(delay)
    files = {"value.txt": f"{item * factor}\n".encode(), "sub/square.txt": f"{item * item}\n".encode()}
    replace_folder(root / "items" / f"{item:03d}", files)
    return {f"items/{item:03d}/{name}": sha256_bytes(data) for name, data in files.items()}


@dataclasses.dataclass(frozen=True)
class ToyBuild(Builder[int]):
    """Items 0 … count-1, each a folder of two small text files; ``factor`` decides their contents."""

    folder: Path
    count: int = 8
    factor: int = 2
    label: str = "toy"  # a root setting that no item's files depend on
    fail_on: int | None = None  # making this item raises
    broken_worker: bool = False  # start_worker raises (in a spawned worker only)
    delay: float = 0.0  # seconds per item
    manifest_format: ClassVar[str] = FORMAT
    generator_version: ClassVar[str] = "1"
    version_keys: ClassVar[tuple[str, ...]] = ("generator_version",)
    noun: ClassVar[str] = "items"
    progress_label: ClassVar[str] = "toy items"
    progress_unit: ClassVar[str] = "item"
    logger: ClassVar[logging.Logger] = logging.getLogger("tests.toy_build")

    @property
    def root(self) -> Path:
        return self.folder

    def settings(self) -> dict[str, Any]:
        return {**self.item_settings(), "count": self.count, "label": self.label}

    def item_settings(self) -> dict[str, Any]:
        return {"factor": self.factor, "generator_version": "1"}

    def plan(self) -> list[int]:
        return list(range(self.count))

    def key(self, item: int) -> str:
        return f"item {item}"

    def recorded(self, manifest: dict[str, Any]) -> dict[str, Files]:
        return manifest["items"]

    def start_worker(self) -> Callable[[int], Files]:
        import functools
        import multiprocessing

        if self.broken_worker and multiprocessing.parent_process() is not None:
            raise ValueError("no renderer on this machine")
        return functools.partial(_make_toy, self.folder, self.factor, self.fail_on, self.delay)

    def work_folders(self) -> list[Path]:
        return [self.folder / "items"]

    def finish(self, plan: Sequence[int], made: dict[str, Files]) -> tuple[Files, dict[str, Any]]:
        text = json.dumps([self.key(item) for item in plan]) + "\n"
        (self.folder / "index.json").write_text(text)
        return {"index.json": sha256_bytes(text.encode())}, {"items": made}


def _content(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST_NAME, LOG_NAME)
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy") / "reference"
    summary = run_build(ToyBuild(root), workers=1, progress=False)
    assert (summary.built, summary.skipped, summary.removed) == (8, 0, 0)
    return root


def test_a_build_writes_its_items_manifest_and_no_journal(reference: Path) -> None:
    manifest = read_manifest(reference, FORMAT)
    assert manifest is not None and verify(reference, FORMAT).ok
    assert manifest["settings"] == {"factor": 2, "generator_version": "1", "count": 8, "label": "toy"}
    assert manifest["generator_version"] == "1" and set(manifest["provenance"]) == {"versions", "time"}
    assert sorted(manifest["items"]) == [f"item {i}" for i in range(8)]
    assert (
        len(manifest["files"]) == 2 * 8 + 1
        and (reference / "items" / "005" / "sub" / "square.txt").read_text() == "25\n"
    )
    assert not (reference / JOURNAL_NAME).exists()
    log = (reference / LOG_NAME).read_text()
    assert "8 items planned: 0 already built and verified, 8 to build" in log and "build done: 8 built" in log
    again = run_build(ToyBuild(reference), workers=1, progress=False)
    assert (again.built, again.skipped) == (0, 8)


def test_the_same_files_for_any_worker_count(reference: Path, tmp_path: Path) -> None:
    summary = run_build(ToyBuild(tmp_path / "pool"), workers=3, progress=False)
    assert summary.built == 8
    assert _content(tmp_path / "pool") == _content(reference)
    assert read_manifest(tmp_path / "pool", FORMAT)["files"] == read_manifest(reference, FORMAT)["files"]


def test_a_failing_item_is_named_stops_the_build_and_the_rerun_resumes(reference: Path, tmp_path: Path) -> None:
    root = tmp_path / "failed"
    with pytest.raises(RuntimeError, match="item 5 cannot be made") as caught:
        run_build(ToyBuild(root, fail_on=5), workers=1, progress=False)
    assert "while making 5" in caught.value.__notes__
    assert not (root / MANIFEST_NAME).exists()
    assert "build stopped: item 5 cannot be made (while making 5)" in (root / LOG_NAME).read_text()
    journal = [json.loads(line) for line in (root / JOURNAL_NAME).read_text().splitlines()]
    assert journal[0]["planned"] == [f"item {i}" for i in range(8)]
    assert [line["key"] for line in journal[1:]] == [f"item {i}" for i in range(5)]
    summary = run_build(ToyBuild(root), workers=1, progress=False)
    assert (summary.built, summary.skipped) == (3, 5)
    assert _content(root) == _content(reference)


def test_a_failing_item_in_a_worker_process_is_named_too(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="item 3 cannot be made") as caught:
        run_build(ToyBuild(tmp_path / "r", fail_on=3), workers=2, progress=False)
    assert "while making 3" in caught.value.__notes__


def test_resume_after_a_killed_build_keeps_what_was_journaled(reference: Path, tmp_path: Path) -> None:
    """SIGKILL mid-build: no manifest; the rerun keeps the journaled items, drops a cut-short journal line and
    a leftover temporary folder, rebuilds a corrupted item and ends with the reference's files."""
    root = tmp_path / "killed"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from pathlib import Path
        from test_build_runner import ToyBuild
        from dataset.build.runner import run_build
        run_build(ToyBuild(Path({str(root)!r}), delay=0.3), workers=1, progress=False)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    process = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    journal = root / JOURNAL_NAME
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if journal.exists() and len(journal.read_text().splitlines()) >= 4:  # the header and 3 items
                break
            time.sleep(0.02)
        assert process.poll() is None, "the build finished (or failed) before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert not (root / MANIFEST_NAME).exists()
    with open(journal, "a") as handle:
        handle.write('{"fingerprint": "cut sh')
    (root / "items" / ".tmp-007-12345").mkdir(parents=True)
    (root / "items" / ".tmp-007-12345" / "value.txt").write_text("half")
    (root / "items" / "000" / "value.txt").write_text("corrupt\n")
    summary = run_build(ToyBuild(root), workers=1, progress=False)
    assert summary.skipped >= 2 and summary.built == 8 - summary.skipped
    assert _content(root) == _content(reference)
    assert not journal.exists() and verify(root, FORMAT).ok


def test_other_settings_are_refused_naming_them_and_force_rebuilds(reference: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(reference, root)
    before = _content(root)
    with pytest.raises(BuildSettingsError, match=r"factor: 2 → 3; label: 'toy' → 'other'"):
        run_build(ToyBuild(root, factor=3, label="other"), workers=1, progress=False)
    assert _content(root) == before and (root / MANIFEST_NAME).exists()
    # An unfinished build (its settings in the journal's header) is refused the same way.
    manifest = read_manifest(root, FORMAT)
    (root / MANIFEST_NAME).unlink()
    (root / JOURNAL_NAME).write_text(json.dumps({"settings": manifest["settings"], "planned": []}) + "\n")
    with pytest.raises(BuildSettingsError, match="factor: 2 → 3"):
        run_build(ToyBuild(root, factor=3), workers=1, progress=False)
    summary = run_build(ToyBuild(root, factor=3), workers=1, force=True, progress=False)
    assert summary.built == 8 and (root / "items" / "002" / "value.txt").read_text() == "6\n"
    # A root setting that no item depends on: forced, every item is kept.
    summary = run_build(ToyBuild(root, factor=3, label="other"), workers=1, force=True, progress=False)
    assert (summary.built, summary.skipped) == (0, 8)


def test_version_keys_are_not_refused(reference: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(reference, root)
    manifest = read_manifest(root, FORMAT)
    manifest["settings"]["generator_version"] = "0"  # built by an older generator
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    summary = run_build(ToyBuild(root), workers=1, progress=False)
    assert (summary.built, summary.skipped) == (0, 8)


def test_a_worker_that_cannot_start_stops_the_build_with_its_error(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    started = time.monotonic()
    with pytest.raises(WorkerStartError, match="could not start: ValueError: no renderer on this machine"):
        run_build(ToyBuild(root, broken_worker=True), workers=2, progress=False)
    assert time.monotonic() - started < 60
    assert not (root / MANIFEST_NAME).exists() and not list((root / "items").glob("*"))
    assert "build stopped" in (root / LOG_NAME).read_text()


def test_a_second_build_on_a_locked_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "locked"
    with directory_lock(root, what="test"):
        with pytest.raises(DirectoryLockedError, match=f"pid {os.getpid()}"):
            run_build(ToyBuild(root), workers=1, progress=False)
    assert not (root / MANIFEST_NAME).exists() and not (root / JOURNAL_NAME).exists()


def test_check_root_refuses_before_anything_changes(tmp_path: Path) -> None:
    @dataclasses.dataclass(frozen=True)
    class Picky(ToyBuild):
        def check_root(self, plan: Sequence[int], known: set[str]) -> None:
            raise ValueError(f"not this root ({len(plan)} planned, {len(known)} known)")

    root = tmp_path / "picky"
    run_build(ToyBuild(root), workers=1, progress=False)
    before = _content(root)
    with pytest.raises(ValueError, match=r"not this root \(8 planned, 8 known\)"):
        run_build(Picky(root, factor=5), workers=1, progress=False)
    assert _content(root) == before and (root / MANIFEST_NAME).exists()
