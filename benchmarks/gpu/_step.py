"""What every step of the GPU run shares: its sizes, a result file written after every figure, skip and check.

A step runs in its own process (``python -m benchmarks.gpu.steps NAME``) so that a crash, a CUDA error or a
hang in one step loses only that step: the figures it recorded before are already in its result file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dispersion_score.atomic import atomic_write_text  # torch-free: the runner imports this module


class StepSkipped(Exception):
    """Raised by a step that cannot run here; the message is the reason, reported in the JSON."""


class CheckFailed(Exception):
    """Raised by a step whose result is wrong (e.g. GPU and CPU disagree); the message says by how much."""


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one mode: ``full`` (the GPU machine) or ``dry`` (a CPU, seconds)."""

    mode: str
    device: str
    chamfer_n: int  # clouds of the GPU Chamfer matrix
    chamfer_points: int
    chamfer_baseline_n: int  # clouds of the plain torch cdist/min baseline (same device)
    chamfer_cpu_n: int  # clouds of the CPU kernel run (the agreement check uses this corner)
    vgg_images: int
    vgg_batches: tuple[int, ...]
    kmedoids_n: int
    kmedoids_k: int
    quick_epochs: int
    paper_synthetic_epochs: int  # timed epochs (3 steps each: 20 items, batch 8)
    standin_per_category: int
    standin_categories: tuple[str, ...] | None
    shapenet_steps: int
    shapenet_workers: int
    warmup_steps: int  # untimed steps before each training measurement (cuDNN autotuning, allocator)
    decoder_steps: int  # timed steps of each decoder on a resident batch
    validation_items: int  # synthetic validation items timed (the preset validates on 200)
    tiles_n: int
    tiles_points: int
    tile_size: int
    pytest_paths: tuple[str, ...]
    train_overrides: tuple[str, ...] = ()  # config overrides of every training step (dry: a tiny network)

    def __post_init__(self) -> None:
        # The CPU check compares the corner of the baseline-sized device matrix.
        if not self.chamfer_cpu_n <= self.chamfer_baseline_n <= self.chamfer_n:
            raise ValueError("chamfer sizes must satisfy cpu_n <= baseline_n <= n")


FULL = Sizes(
    mode="full",
    device="cuda",
    chamfer_n=2000,
    chamfer_points=2500,
    chamfer_baseline_n=500,
    chamfer_cpu_n=300,
    vgg_images=1024,
    vgg_batches=(32, 128),
    kmedoids_n=5000,
    kmedoids_k=500,
    quick_epochs=10,
    paper_synthetic_epochs=10,
    standin_per_category=20,
    standin_categories=None,
    shapenet_steps=20,
    shapenet_workers=8,
    warmup_steps=3,
    decoder_steps=5,
    validation_items=200,
    tiles_n=600,
    tiles_points=2500,
    tile_size=256,
    pytest_paths=("tests",),
)

DRY = Sizes(
    mode="dry",
    device="cpu",
    chamfer_n=24,
    chamfer_points=200,
    chamfer_baseline_n=16,
    chamfer_cpu_n=12,
    vgg_images=4,
    vgg_batches=(2,),
    kmedoids_n=120,
    kmedoids_k=6,
    quick_epochs=2,
    paper_synthetic_epochs=1,
    standin_per_category=5,
    standin_categories=("airplane", "chair"),
    shapenet_steps=2,
    shapenet_workers=0,
    warmup_steps=1,
    decoder_steps=1,
    validation_items=8,
    tiles_n=20,
    tiles_points=100,
    tile_size=8,
    pytest_paths=("tests/test_chamfer.py",),
    train_overrides=(
        "data.image_size=32",
        "data.num_points=64",
        "train.batch_size=4",
        "eval.batch_size=4",
        "model.bottleneck=16",
        "model.atlasnet.hidden=16",
        "model.atlasnet.sphere_level=1",
        "model.psgn.hidden=[16]",
        "model.foldnet.hidden=[16,16]",
    ),
)

MODES = {"full": FULL, "dry": DRY}


class Recorder:
    """Figures of one step, rewritten to ``path`` (JSON) after every ``put`` so a killed step keeps them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.figures: dict[str, Any] = {}

    def put(self, key: str, value: Any) -> Any:
        from dispersion_score.io import to_jsonable  # imports torch: only steps record figures

        self.figures[key] = to_jsonable(value)
        atomic_write_text(self.path, json.dumps(self.figures, indent=1, allow_nan=True))
        print(f"  {key} = {json.dumps(self.figures[key], allow_nan=True)}", flush=True)
        return value


def read_figures(path: Path) -> dict[str, Any]:
    """What a step recorded (empty if it recorded nothing or the file is unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def cpu_count() -> int:
    """CPUs this process may use (the affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
