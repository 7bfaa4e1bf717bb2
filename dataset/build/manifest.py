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
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from dispersion_score.atomic import atomic_write_text

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


# Provenance names of packages whose import name differs.
_IMPORT_NAMES = {"pillow": "PIL"}


def package_versions(*packages: str) -> dict[str, str]:
    """The manifest's ``provenance.versions``: {"python": "3.11.x", package: its ``__version__`` ("unknown"
    when it has none)} for each of ``packages`` (e.g. "numpy", "pillow"), imported here.

    Raises:
        ImportError: a package is not installed.
    """
    versions = {"python": sys.version.split()[0]}
    for package in packages:
        module = importlib.import_module(_IMPORT_NAMES.get(package, package))
        versions[package] = getattr(module, "__version__", "unknown")
    return versions


def settings_fingerprint(settings: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the settings that determine the files' contents."""
    return sha256_bytes(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode())


def settings_differences(old: Any, new: Any, path: str = "") -> list[str]:
    """``key.sub: old → new`` for every leaf where two nested settings dicts differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(old) + [key for key in new if key not in old]
        return [d for key in keys for d in settings_differences(old.get(key), new.get(key), f"{path}{key}.")]
    return [] if old == new else [f"{path.rstrip('.')}: {old!r} → {new!r}"]


class BuildSettingsError(ValueError):
    """A root holds a (finished or unfinished) build with other settings, and ``force`` was not given."""


def refuse_other_settings(
    root: str | os.PathLike,
    existing: dict[str, Any] | None,
    requested: dict[str, Any],
    *,
    ignore: tuple[str, ...] = (),
    remedy: str = "use another --root, or --force to rebuild it with the requested settings",
) -> None:
    """Raises :class:`BuildSettingsError` naming every differing setting (``key.sub: old → new``) when ``root``
    holds a build made with ``existing`` settings (None or not a dict: no readable build) other than
    ``requested``; top-level keys in ``ignore`` (code versions, say) are not compared. ``remedy`` ends the
    message: the command-line options that get past the refusal."""
    if not isinstance(existing, dict):
        return
    requested = json.loads(json.dumps(requested))  # as stored: lists, not tuples
    differences = settings_differences(
        {k: v for k, v in existing.items() if k not in ignore}, {k: v for k, v in requested.items() if k not in ignore}
    )
    if differences:
        raise BuildSettingsError(
            f"{root} holds a build with other settings (existing → requested: {'; '.join(differences)}); {remedy}"
        )


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
