"""Training throughput: items/s per preset, one step of each model at paper size, trainer overhead.

Run from the repository root:

    .venv/bin/python -m benchmarks.bench_train [--threads 1] [--repeats 3] [--skip-paper]

Measured in one process, on the same thread count, with in-memory procedural data (``models.toy_data``) of
each preset's image size and point count, so disk and PNG decoding are left out:

(a) items/s of the trainer's epoch loop (``models.engine.train_epoch`` over a shuffled DataLoader of cached
    items, as in a run) for each preset config (``configs/synthetic_quick.yaml``, ``synthetic_paper.yaml``);
(b) the time of one training step of each docs/models.md model at paper size (batch 8, 224² images, 2500 points):
    AtlasNet with 1 sphere, AtlasNet with 25 squares, PSGN, FoldNet;
(c) for each of those models, the trainer's step (``train_epoch``: DataLoader, collation, device copies,
    loss accumulation) against a minimal hand-written loop over the same model, the same pre-collated batch
    and the same loss and optimiser (zero_grad, forward, chamfer_distance, backward, step), timed
    alternately; ratio = trainer / hand loop (target <= 1.1). Also reported: the hand loop with torch's
    default (non-fused) Adam, what a plain script would use.

Prints the table and writes ``benchmarks/results/bench_train.json`` (settings, provenance, times, ratios).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from dispersion_score.chamfer import chamfer_distance
from dispersion_score.io import atomic_write_text, provenance
from models import build_model
from models.config import load_config, resolve_config
from models.data import CachedDataset
from models.engine import make_optimizer, train_epoch
from models.toy_data import ToyShapesDataset

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "bench_train.json"
PAPER_MODELS = {
    "atlasnet_sphere1": {"name": "atlasnet", "atlasnet": {"template": "sphere", "primitives": 1}},
    "atlasnet_square25": {"name": "atlasnet", "atlasnet": {"template": "square", "primitives": 25}},
    "psgn": {"name": "psgn"},
    "foldnet": {"name": "foldnet"},
}


def _loader(config: dict[str, Any], items: int, seed: int = 0) -> DataLoader:
    data = config["data"]
    dataset = ToyShapesDataset(
        index_file=f"train:{items}", num_points=data["num_points"], image_size=data["image_size"]
    )
    cached = CachedDataset(dataset)
    for index in range(len(cached)):
        cached[index]  # load everything before timing
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(cached, batch_size=config["train"]["batch_size"], shuffle=True, generator=generator)


def preset_throughput(path: Path, *, epochs: int, items: int) -> dict[str, Any]:
    """Items/s of ``train_epoch`` for a preset's model and sizes (the first, warm-up epoch excluded)."""
    config = load_config(path)
    torch.manual_seed(0)
    model = build_model(config)
    optimizer, _ = make_optimizer(model, config["train"])
    loader = _loader(config, items)
    device = torch.device("cpu")
    train_epoch(model, loader, optimizer, device=device)
    started = time.perf_counter()
    for _ in range(epochs):
        train_epoch(model, loader, optimizer, device=device)
    seconds = time.perf_counter() - started
    return {
        "config": str(path.relative_to(REPO)),
        "image_size": config["data"]["image_size"],
        "num_points": config["data"]["num_points"],
        "bottleneck": config["model"]["bottleneck"],
        "items": items,
        "epochs_timed": epochs,
        "items_per_second": items * epochs / seconds,
        "seconds_per_epoch": seconds / epochs,
    }


def _alternate(functions: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, calls interleaved so that load changes hit all of them alike."""
    for function in functions.values():
        function()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def step_comparison(model_settings: dict[str, Any], *, repeats: int) -> dict[str, Any]:
    """One paper-size step: trainer vs hand-written loop (same model, batch, loss, optimiser)."""
    config = resolve_config({"data": {"root": "."}, "model": model_settings})
    torch.manual_seed(0)
    model = build_model(config)
    model.train()
    optimizer, _ = make_optimizer(model, config["train"])
    plain_adam = torch.optim.Adam(model.parameters(), lr=config["train"]["lr"])
    loader = _loader(config, config["train"]["batch_size"])  # exactly one batch per "epoch"
    batch = next(iter(loader))
    images, points = batch["image"], batch["points"]
    device = torch.device("cpu")

    def trainer() -> None:
        train_epoch(model, loader, optimizer, device=device)

    def hand_loop(opt: torch.optim.Optimizer) -> Callable[[], None]:
        def step() -> None:
            opt.zero_grad()
            loss = chamfer_distance(model(images), points)
            loss.backward()
            opt.step()

        return step

    times = _alternate(
        {
            "trainer": trainer,
            "hand_loop": hand_loop(optimizer),
            "hand_loop_default_adam": hand_loop(plain_adam),
        },
        repeats,
    )
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_points": model.num_points(regular=False),
        "predict_points": model.num_points(regular=True),
        "seconds_per_step": times,
        "trainer_over_hand_loop": times["trainer"] / times["hand_loop"],
        "trainer_over_hand_loop_default_adam": times["trainer"] / times["hand_loop_default_adam"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per model and loop")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per preset")
    parser.add_argument("--items", type=int, default=20, help="training items per preset epoch")
    parser.add_argument("--skip-paper", action="store_true", help="skip the paper-size measurements")
    parser.add_argument("--models", nargs="+", choices=list(PAPER_MODELS), default=list(PAPER_MODELS))
    parser.add_argument("--skip-presets", action="store_true", help="only the paper-size step comparison")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    presets = (
        [] if args.skip_presets else ["synthetic_quick"] + ([] if args.skip_paper else ["synthetic_paper"])
    )
    results: dict[str, Any] = {"presets": {}, "paper_steps": {}}
    for name in presets:
        epochs = args.epochs if name.endswith("quick") else 1
        result = preset_throughput(REPO / "configs" / f"{name}.yaml", epochs=epochs, items=args.items)
        results["presets"][name] = result
        print(
            f"{name:18s} {result['items_per_second']:8.2f} items/s"
            f"  ({result['seconds_per_epoch']:.2f} s/epoch)"
        )
    if not args.skip_paper:
        print(
            f"{'paper-size step':18s} {'trainer':>9s} {'hand loop':>10s} {'ratio':>6s}"
            f" {'vs default Adam':>16s}"
        )
        for name in args.models:
            result = step_comparison(PAPER_MODELS[name], repeats=args.repeats)
            results["paper_steps"][name] = result
            seconds = result["seconds_per_step"]
            ratio, ratio_default = (
                result["trainer_over_hand_loop"],
                result["trainer_over_hand_loop_default_adam"],
            )
            print(
                f"{name:18s} {seconds['trainer']:8.3f}s {seconds['hand_loop']:9.3f}s"
                f" {ratio:6.3f} {ratio_default:16.3f}"
            )
    payload = {
        "benchmark": "bench_train",
        "settings": vars(args) | {"out": str(args.out)},
        "threads": torch.get_num_threads(),
        "provenance": provenance("cpu"),
        "results": results,
    }
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
