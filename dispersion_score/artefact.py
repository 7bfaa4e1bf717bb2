"""What a finished file was when it was made, checked before a rerun reuses it.

Every artefact a rerun may reuse instead of recomputing (assembled tiled matrices, measurement records and
their matrices, prediction files, feature caches) is recorded when it is completed: its size in bytes, a
CRC-32 of all its bytes and, for a ``.npy`` file, the array's shape and dtype. Before reuse the file is
compared with that record; a file that does not match (replaced, edited, truncated, a damaged header) is
recomputed when the caller can, else refused with one line naming the file.

Why a streamed CRC-32 of the whole file is enough: the records guard against accidents (a file replaced by
another matrix, an edited entry, a truncated copy, a half-synced disk), not against an adversary. The size
catches every truncation, the shape every replacement by another array, and CRC-32 every error burst of up to
32 bits and any other change with probability 1 - 2⁻³². Cost (``python -m benchmarks.bench_artefact``, a 0.54 GB
matrix in the page cache, shared 2-core machine): verifying runs at 2.7 GB/s, 1.9-2.2x faster than SHA-256 of
the same file (0.43 GB/s while the machine was loaded), so a 4.9 GB ShapeNet-13 matrix costs 2-11 s against
the hours it took to compute. A sampled hash would be cheaper still but misses a single edited entry, which is
one of the faults this exists for. The tiles' markers use the same CRC-32.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_BLOCK = 8 << 20  # bytes read at a time: large enough to stream at memory speed, small enough to stay bounded


@dataclass(frozen=True)
class FileRecord:
    """A completed file as it was written.

    Attributes:
        size: bytes.
        crc32: CRC-32 of all the bytes, 8 lowercase hex digits.
        shape: the array's shape for a ``.npy`` file, else None.
        dtype: the array's dtype string (``"<f4"``) for a ``.npy`` file, else None.
    """

    size: int
    crc32: str
    shape: tuple[int, ...] | None = None
    dtype: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "crc32": self.crc32, "shape": list(self.shape) if self.shape else self.shape,
                "dtype": self.dtype}  # fmt: skip

    @classmethod
    def from_json(cls, document: Any) -> FileRecord | None:
        """The record stored by :meth:`to_json`, or None when ``document`` is not one (absent, older format)."""
        if not isinstance(document, dict):
            return None
        try:
            shape = document.get("shape")
            return cls(
                size=int(document["size"]),
                crc32=str(document["crc32"]),
                shape=tuple(int(s) for s in shape) if shape is not None else None,
                dtype=document.get("dtype"),
            )
        except (KeyError, TypeError, ValueError):
            return None


def file_crc32(path: str | os.PathLike) -> str:
    """CRC-32 of a file's bytes, streamed in 8 MiB blocks (bounded memory), as 8 hex digits."""
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


def _npy_header(path: Path) -> tuple[tuple[int, ...], str]:
    with open(path, "rb") as handle:
        major, _ = np.lib.format.read_magic(handle)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(handle)
    return tuple(int(s) for s in shape), dtype.str


def record_file(path: str | os.PathLike) -> FileRecord:
    """The :class:`FileRecord` of a file just completed (``.npy``: with its shape and dtype)."""
    path = Path(path)
    shape = dtype = None
    if path.suffix.lower() == ".npy":
        shape, dtype = _npy_header(path)
    return FileRecord(size=path.stat().st_size, crc32=file_crc32(path), shape=shape, dtype=dtype)


def mismatch(path: str | os.PathLike, record: FileRecord | None) -> str | None:
    """Why ``path`` is not the file ``record`` describes (missing, other size, shape, dtype or bytes), or None
    when it is. No record (an artefact made before records existed) is a mismatch: it cannot be verified."""
    path = Path(path)
    if record is None:
        return "no record of it was kept when it was made, so it cannot be verified"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "it does not exist"
    if size != record.size:
        return f"it has {size} bytes, {record.size} were written"
    if record.shape is not None:
        try:
            shape, dtype = _npy_header(path)
        except (OSError, ValueError) as error:
            return f"its .npy header is unreadable ({error})"
        if shape != record.shape or dtype != record.dtype:
            return f"it holds a {dtype} array of shape {shape}; a {record.dtype} array of {record.shape} was written"
    if file_crc32(path) != record.crc32:
        return "its contents changed since it was written (CRC-32 differs)"
    return None


class ArtefactMismatchError(ValueError):
    """A file that a finished step recorded is no longer the file it wrote."""


def check_file(path: str | os.PathLike, record: FileRecord | None, *, what: str = "file") -> None:
    """Raises :class:`ArtefactMismatchError` (one line naming ``what`` and the file, and why) unless ``path``
    matches ``record``."""
    reason = mismatch(path, record)
    if reason is not None:
        raise ArtefactMismatchError(f"{what} {os.fspath(path)} is not the one that was made: {reason}")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".record.json")


def save_npy_recorded(path: str | os.PathLike, array: Any) -> FileRecord:
    """Saves ``array`` to ``path`` atomically with its record beside it (``<path>.record.json``, written last):
    a cache that :func:`load_npy_recorded` serves only while it is intact."""
    import json

    from dispersion_score.atomic import atomic_save_npy, atomic_write_text

    path = Path(path)
    atomic_save_npy(path, array)
    record = record_file(path)
    atomic_write_text(_sidecar(path), json.dumps(record.to_json()))
    return record


def load_npy_recorded(path: str | os.PathLike, *, mmap_mode: str | None = None) -> np.ndarray | None:
    """The array :func:`save_npy_recorded` wrote at ``path``, or None (recompute it) when it is absent, has no
    readable record, or is not the file the record describes."""
    import json

    path = Path(path)
    try:
        record = FileRecord.from_json(json.loads(_sidecar(path).read_text()))
    except (OSError, ValueError):
        return None
    if record is None or mismatch(path, record) is not None:
        return None
    return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)


def made_from(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """The records of the files an artefact is computed from, to keep in the artefact's own record: each
    ``{"path": absolute path, "record": FileRecord}``. :func:`inputs_mismatch` tells later whether they are
    still the same files (a retrained model, re-made predictions): an artefact of changed inputs is stale."""
    return [{"path": os.fspath(Path(path).resolve()), "record": record_file(path).to_json()} for path in paths]


def inputs_mismatch(entries: Any) -> str | None:
    """Why the inputs listed by :func:`made_from` are no longer the files the artefact was computed from, or
    None when they all are (or nothing was listed: artefacts made before inputs were recorded)."""
    if not entries:
        return None
    if not isinstance(entries, list):
        return "its list of inputs is unreadable"
    for entry in entries:
        if not isinstance(entry, dict) or "path" not in entry:
            return "its list of inputs is unreadable"
        reason = mismatch(entry["path"], FileRecord.from_json(entry.get("record")))
        if reason is not None:
            return f"its input {entry['path']} changed since ({reason})"
    return None
