"""Log one builder's messages to a file for the duration of a build."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def log_to_file(logger: logging.Logger, path: Path) -> Iterator[None]:
    """Send ``logger``'s INFO and above to ``path`` (appended, parents created) inside the block; the handler
    and the logger's previous level are restored on exit, so nothing outlives the build."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        handler.close()
