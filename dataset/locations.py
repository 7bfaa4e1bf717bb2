"""Where the checkout and its data folders are: the one owner of these paths for every dataset module."""

from __future__ import annotations

from pathlib import Path

DATASET_DIR = Path(__file__).resolve().parent
"""The ``dataset/`` folder: real ShapeNet under ``data/``, generated data under ``*_data/`` (git-ignored)."""

REPO_ROOT = DATASET_DIR.parent
"""The checkout's root: the working directory of spawned ``python -m dataset...`` jobs; relative roots in
configs are relative to it."""
