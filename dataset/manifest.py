"""The dataset's ``manifest.json``: what was built, with which settings, and a SHA-256 for every file.

Layout::

    {"format": "cubesphere-manifest/1", "generator_version": "...", "settings": {...},
     "fingerprint": "<sha256 of the settings>", "provenance": {...versions, time...},
     "instances": {"train_0000": {"split": "train", "index": 0, "t": 0.0}, ...},
     "files": {"instances/train_0000/points.npy": "<sha256>", ..., "train_pool.json": "<sha256>", ...}}

Paths are relative to the dataset root, with forward slashes. :func:`verify` re-hashes every listed file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "cubesphere-manifest/1"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def settings_fingerprint(settings: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the settings that determine the files' contents."""
    return sha256_bytes(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode())


def canonical_json(document: Any) -> str:
    """JSON text written for index files and the manifest: sorted keys, two-space indent, final newline."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def read_manifest(root: str | os.PathLike, expected_format: str = MANIFEST_FORMAT) -> dict[str, Any] | None:
    """The root's manifest, or None if there is none, it is unreadable (e.g. a truncated file) or its
    ``format`` is not ``expected_format``."""
    path = Path(root) / MANIFEST_NAME
    try:
        document = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict) or document.get("format") != expected_format:
        return None
    return document


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically: a temporary file in the same directory, then os.replace.

    The same contract as ``dispersion_score.io.atomic_write_text``, without importing torch (which that
    package loads: ~0.5 GB and seconds for a build that never uses it).
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> Path:
    """Writes ``data`` to ``path`` atomically (temporary file in the same directory, then os.replace).

    ``durable=True`` also fsyncs the data before the rename (survives a power cut); without it the write is
    still atomic for readers and against the process being killed, and costs no disk flush.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_manifest(root: str | os.PathLike, document: dict[str, Any]) -> Path:
    return atomic_write_text(Path(root) / MANIFEST_NAME, canonical_json(document))


@dataclasses.dataclass
class VerifyReport:
    """Outcome of :func:`verify`: relative paths that are missing or whose SHA-256 differs."""

    checked: int
    missing: list[str]
    corrupt: list[str]
    error: str | None = None  # set when there is no usable manifest

    @property
    def ok(self) -> bool:
        return self.error is None and not self.missing and not self.corrupt

    def summary(self) -> str:
        if self.error:
            return f"verify: {self.error}"
        lines = [f"verify: {self.checked} files checked, {len(self.missing)} missing, {len(self.corrupt)} corrupt"]
        lines += [f"  missing: {path}" for path in self.missing]
        lines += [f"  corrupt: {path}" for path in self.corrupt]
        return "\n".join(lines)


def files_intact(root: Path, files: dict[str, str]) -> bool:
    """True when every file exists and has the listed SHA-256."""
    for relative, digest in files.items():
        try:
            if sha256_file(root / relative) != digest:
                return False
        except OSError:
            return False
    return True


def verify(root: str | os.PathLike, expected_format: str = MANIFEST_FORMAT) -> VerifyReport:
    """Checks every file listed in ``root/manifest.json`` (of format ``expected_format``) against its SHA-256."""
    root = Path(root)
    manifest = read_manifest(root, expected_format)
    if manifest is None:
        return VerifyReport(0, [], [], error=f"no readable {MANIFEST_NAME} in {root} (build not finished?)")
    missing, corrupt = [], []
    for relative, digest in sorted(manifest["files"].items()):
        path = root / relative
        try:
            actual = sha256_file(path)
        except OSError:
            missing.append(relative)
            continue
        if actual != digest:
            corrupt.append(relative)
    return VerifyReport(len(manifest["files"]), missing, corrupt)
