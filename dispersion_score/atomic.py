"""Atomic file writes: a temporary file in the target's directory, fsync, then ``os.replace``.

A killed job never leaves a half-written file under the final name. The file gets the permissions a plain
``open()`` would give it (a new file: 0o666 minus the umask; an existing file keeps its mode). This module
imports only the standard library and numpy, so that torch-free tools (the dataset builder) share it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# Read once at import: os.umask can only be read by setting it, which is not thread-safe to repeat.
_UMASK = _current_umask()


def _atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], *, durable: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_stream(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Writes a file atomically through ``write(handle)`` (a binary file object): for large files written in
    pieces (e.g. the tiled matrices' shared input)."""
    return _atomic_write(path, write)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> Path:
    """Writes ``data`` to ``path`` atomically (temp file in the same directory + os.replace).

    ``durable=True`` also fsyncs the data before the rename (it survives a power cut); without it the write is
    still atomic for readers and against a killed process, and costs no disk flush (many small render files).
    """
    return _atomic_write(path, lambda handle: handle.write(data), durable=durable)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Writes ``text`` to ``path`` atomically (temp file in the same directory + os.replace)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_save_npy(path: str | os.PathLike, array: Any) -> Path:
    """Saves ``array`` as a `.npy` file at exactly ``path`` (no suffix added), atomically."""
    import numpy as np

    array = np.asarray(array)
    return _atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))
