"""Item folders written whole, and the temporaries a killed build leaves behind.

:func:`replace_folder` writes an item's files into a temporary sibling ``.tmp-<name>-<pid>`` and renames it
into place only when every file is written, so a folder is either complete or absent; a killed build leaves at
most ``.tmp-*`` folders (and the ``.<name>.*.tmp`` files of :mod:`dispersion_score.atomic`), which
:func:`remove_temporaries` clears at the start of the next build.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

TMP_PREFIX = ".tmp-"


def replace_folder(final: Path, files: Mapping[str, bytes]) -> None:
    """Makes ``final`` hold exactly ``files`` ({path relative to ``final``, forward slashes: bytes}), swapped
    in whole: written into ``.tmp-<name>-<pid>`` beside it, then renamed over any earlier ``final`` (which is
    moved aside first, so ``final`` is never a mix of old and new files). Parents are created.

    Raises:
        OSError: a file or folder cannot be written or renamed.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    # No fsync: a rerun re-hashes every recorded file, so what a crash could lose is found and rebuilt.
    for relative, data in files.items():
        target = tmp / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if final.exists():
        stale = final.parent / f"{TMP_PREFIX}stale-{final.name}-{os.getpid()}"
        os.rename(final, stale)
        shutil.rmtree(stale)
    os.rename(tmp, final)


def remove_temporaries(folders: Iterable[Path], logger: logging.Logger) -> None:
    """Deletes the ``.tmp-*`` entries and ``.*.tmp`` files directly inside each existing folder of
    ``folders`` (what a killed :func:`replace_folder` or atomic write left), logging each ``.tmp-*`` one."""
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(TMP_PREFIX):
                logger.info("removing leftover temporary %s", path)
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            elif path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
