"""Folder options checked before any work: ``--root DIR`` that is a file, lies under a file, or cannot be made.

Standard library only (the download script runs before the project is installed).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def check_writable_folder(path: str | os.PathLike, option: str) -> Path:
    """``path`` as a Path when it is a folder, or can be made one, that this process can write into.

    Nothing is left behind: a missing folder is not created; the nearest existing ancestor is tried with a
    temporary folder that is removed at once (``os.access`` would say yes to root on a read-only mount).

    Raises:
        ValueError: one line naming ``option`` and the path: it is a file, lies under a file, or its nearest
            existing folder cannot be written.
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{option} {path} is a file, not a folder")
        existing = path
    else:
        existing = next((p for p in path.parents if p.exists()), Path("."))
        if not existing.is_dir():
            raise ValueError(f"{option} {path} lies under {existing}, which is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-check-", dir=existing))
    except OSError as error:
        raise ValueError(f"{option} {path}: cannot write in {existing} ({error.strerror})") from None
    return path
