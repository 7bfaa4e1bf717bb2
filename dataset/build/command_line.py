"""The command-line pieces every dataset builder shares: the run options, ``--verify`` and one-line errors."""

from __future__ import annotations

import argparse
import os
import sys

from dataset.build.manifest import verify
from dataset.build.worker_pool import WorkerStartError
from dispersion_score.locks import DirectoryLockedError

# What a build refuses or fails with (BuildSettingsError is a ValueError), printed as one line, exit 2.
BUILD_ERRORS: tuple[type[Exception], ...] = (ValueError, OSError, DirectoryLockedError, WorkerStartError)


def add_run_options(parser: argparse.ArgumentParser, *, force_help: str | None, verify_help: str) -> None:
    """Adds ``--no-progress``, ``--force`` (unless ``force_help`` is None: a builder with its own option) and
    ``--verify``, in that order, to ``parser``."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    if force_help is not None:
        parser.add_argument("--force", action="store_true", help=force_help)
    parser.add_argument("--verify", action="store_true", help=verify_help)


def print_verify(root: str | os.PathLike, manifest_format: str, label: str = "") -> int:
    """Re-hashes every file of ``root``'s manifest (of ``manifest_format``) and prints the report, after
    ``label`` when given; returns the exit status: 0 when every file is intact, else 1."""
    report = verify(root, manifest_format)
    print(f"{label}{report.summary()}")
    return 0 if report.ok else 1


def print_error(error: BaseException) -> int:
    """Prints ``error: <message on one line>`` to stderr; returns the exit status 2."""
    print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
    return 2
