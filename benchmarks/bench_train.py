"""Training throughput: items/s per preset, one step of each model at paper size, trainer overhead.

Run from the repository root:

    .venv/bin/python -m benchmarks.bench_train [--threads 1] [--repeats 3] [--skip-paper]

Measured in one process, on the same thread count, with in-memory procedural data (``dataset.toy``) of
each preset's image size and point count, so disk and PNG decoding are left out:

(a) items/s of the trainer's epoch loop (``models.engine.train_epoch`` over a shuffled DataLoader of cached
    items, as in a run) for each preset config (``configs/training/synthetic_quick.yaml``, ``synthetic_paper.yaml``);
(b) the time of one training step of each docs/models.md model at paper size (batch 8, 224² images, 2500 points):
    AtlasNet with 1 sphere, AtlasNet with 25 squares, PSGN, FoldNet;
(c) for each of those models, the trainer's step (``train_epoch``: DataLoader, collation, device copies,
    loss accumulation) against a minimal hand-written loop over the same model, the same pre-collated batch
    and the same loss and optimiser (zero_grad, forward, chamfer_distance, backward, step), timed
    alternately; ratio = trainer / hand loop (target <= 1.1). Also reported: the hand loop with torch's
    default (non-fused) Adam, what a plain script would use.

(d) ``--end-to-end --base COMMIT --data-root DIR``: whole training runs of ``configs/training/synthetic_quick.yaml``
    (``train_scripts/train.py`` in a fresh process: start-up, data, training, validation, checkpoints, final
    model), the code of COMMIT (a temporary ``git worktree``) against this checkout's in the same run,
    ``--repeats`` times each in alternating order; prints the median wall times, the ratio base / current of
    each repeat and their median, and whether the two loss curves (``metrics.jsonl``: train_loss, val_chamfer
    per epoch) are bitwise identical.

Prints the table and writes ``benchmarks/results/bench_train.json`` (settings, provenance, times, ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from dataset.locations import REPO_ROOT
from dataset.splits import CachedDataset
from dataset.toy import ToyShapesDataset
from dispersion_score.chamfer import chamfer_distance
from dispersion_score.io import atomic_write_text, provenance
from models import build_model
from models.config import load_config, resolve_config
from models.engine import train_epoch
from models.training import make_optimizer

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "bench_train.json"
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
        "config": str(path.relative_to(REPO_ROOT)),
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


def _git(*arguments: str) -> str:
    return subprocess.run(["git", "-C", str(REPO_ROOT), *arguments], check=True, capture_output=True, text=True).stdout


def _training_run(root: Path, out: Path, overrides: list[str], threads: int) -> float:
    """Wall seconds of one ``train_scripts/train.py`` process of the checkout at ``root`` (imports included)."""
    environment = {**os.environ, "PYTHONPATH": str(root)}
    environment.update({name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    script, config = root / "train_scripts" / "train.py", root / "configs" / "training" / "synthetic_quick.yaml"
    command = [sys.executable, str(script), "--config", str(config), "--set", *overrides, "--out", str(out), "--force"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"training run of {root} failed: {result.stderr.strip()[-2000:]}")
    return seconds


def _curve(run: Path) -> list[tuple[Any, Any]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [(record["train_loss"], record["val_chamfer"]) for record in map(json.loads, lines)]


def end_to_end(base: str, data_root: Path, *, repeats: int, threads: int, overrides: list[str]) -> dict[str, Any]:
    """Whole quick training runs: the code of commit ``base`` against this checkout's, alternately (see (d))."""
    commit = _git("rev-parse", base).strip()
    scratch = Path(tempfile.mkdtemp(prefix="bench_train_"))
    worktree = scratch / "base"
    _git("worktree", "add", "--detach", str(worktree), commit)
    settings = [f"data.root={data_root}", *overrides]
    times: dict[str, list[float]] = {"base": [], "current": []}
    curves: dict[str, list[Any]] = {}
    try:
        for repeat in range(repeats):
            # Alternating order (base first, then current first, ...) and per-repeat ratios: the load of a shared
            # machine drifts, and a fixed order would hand the drift to one side.
            order = (("base", worktree), ("current", REPO_ROOT))
            for name, root in order if repeat % 2 == 0 else order[::-1]:
                run = scratch / f"{name}_{repeat}"
                times[name].append(_training_run(root, run, settings, threads))
                curves.setdefault(name, _curve(run))
                print(f"  {name:8s} repeat {repeat + 1}: {times[name][-1]:.1f} s", flush=True)
    finally:
        _git("worktree", "remove", "--force", str(worktree))
        shutil.rmtree(scratch, ignore_errors=True)
    base_curve, current_curve = curves["base"], curves["current"]
    differences = [
        abs(a - b) / abs(a)
        for pair_a, pair_b in zip(base_curve, current_curve, strict=True)
        for a, b in zip(pair_a, pair_b, strict=True)
        if a is not None and b is not None and a != 0
    ]
    median = {name: statistics.median(values) for name, values in times.items()}
    ratios = [b / c for b, c in zip(times["base"], times["current"], strict=True)]
    return {
        "base_commit": commit,
        "current_commit": _git("rev-parse", "HEAD").strip(),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no").strip()),
        "overrides": settings,
        "seconds": times,
        "median_seconds": median,
        "base_over_current_per_repeat": ratios,
        "base_over_current": statistics.median(ratios),
        "epochs": len(current_curve),
        "loss_curve_bitwise_identical": base_curve == current_curve,
        "loss_curve_max_relative_difference": max(differences, default=0.0),
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
    parser.add_argument("--end-to-end", action="store_true", help="only (d): whole runs, --base against this code")
    parser.add_argument("--base", default=None, help="commit whose code (d) compares against (e.g. a0ee695)")
    parser.add_argument("--data-root", type=Path, default=None, help="built synthetic quick data for (d)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], help="training overrides for (d)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.end_to_end:
        if args.base is None or args.data_root is None or not args.data_root.is_dir():
            parser.error("--end-to-end needs --base COMMIT and --data-root DIR (a built synthetic quick dataset)")
        result = end_to_end(
            args.base, args.data_root.resolve(), repeats=args.repeats, threads=args.threads, overrides=args.overrides
        )
        print(
            f"end to end ({result['epochs']} epochs): base {result['median_seconds']['base']:.1f} s, current "
            f"{result['median_seconds']['current']:.1f} s, base/current per repeat "
            f"{', '.join(f'{r:.3f}' for r in result['base_over_current_per_repeat'])}, median "
            f"{result['base_over_current']:.3f}; loss "
            f"curve bitwise identical: {result['loss_curve_bitwise_identical']} (max relative difference "
            f"{result['loss_curve_max_relative_difference']:.3g})"
        )
        payload = {"benchmark": "bench_train --end-to-end", "settings": vars(args) | {"out": str(args.out),
                   "data_root": str(args.data_root)}, "provenance": provenance("cpu"), "results": result}  # fmt: skip
        atomic_write_text(args.out, json.dumps(payload, indent=2, default=str) + "\n")
        print(f"wrote {args.out}")
        return 0

    presets = [] if args.skip_presets else ["synthetic_quick"] + ([] if args.skip_paper else ["synthetic_paper"])
    results: dict[str, Any] = {"presets": {}, "paper_steps": {}}
    for name in presets:
        epochs = args.epochs if name.endswith("quick") else 1
        result = preset_throughput(REPO_ROOT / "configs" / "training" / f"{name}.yaml", epochs=epochs, items=args.items)
        results["presets"][name] = result
        print(f"{name:18s} {result['items_per_second']:8.2f} items/s  ({result['seconds_per_epoch']:.2f} s/epoch)")
    if not args.skip_paper:
        print(f"{'paper-size step':18s} {'trainer':>9s} {'hand loop':>10s} {'ratio':>6s} {'vs default Adam':>16s}")
        for name in args.models:
            result = step_comparison(PAPER_MODELS[name], repeats=args.repeats)
            results["paper_steps"][name] = result
            seconds = result["seconds_per_step"]
            ratio, ratio_default = (
                result["trainer_over_hand_loop"],
                result["trainer_over_hand_loop_default_adam"],
            )
            print(
                f"{name:18s} {seconds['trainer']:8.3f}s {seconds['hand_loop']:9.3f}s {ratio:6.3f} {ratio_default:16.3f}"
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
