"""Validation does not change training: the loss curve of a seeded run is the same whatever eval.every is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.engine import train

TINY = {
    "preset": "test",
    "seed": 5,
    "data": {"dataset": "toy", "root": ".", "train_file": "train:6", "val_file": "val:4", "num_points": 64,
             "image_size": 32},
    "model": {"bottleneck": 16, "atlasnet": {"hidden": 16, "sphere_level": 1}},
    "train": {"epochs": 4, "batch_size": 4, "milestones": [3]},
    "run": {"checkpoint_every": 4, "progress": False},
}  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_validating_every_epoch_leaves_the_training_bitwise_unchanged(tmp_path: Path) -> None:
    # AtlasNet draws random sphere points every step from the global torch RNG; before the fix each validation
    # drew a DataLoader seed from it too, so validating more often changed every later step.
    rare = train({**TINY, "eval": {"every": 0}}, tmp_path / "rare")
    often = train({**TINY, "eval": {"every": 1}}, tmp_path / "often")
    assert _losses(rare) == _losses(often)
    records = [json.loads(line) for line in (often / "metrics.jsonl").read_text().splitlines()]
    assert all(record["val_chamfer"] is not None for record in records)
