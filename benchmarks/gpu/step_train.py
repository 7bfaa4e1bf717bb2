"""Step 5 of the GPU run: training on the device.

(a) ``quick_training_step``: one quick synthetic run (``configs/training/synthetic_quick.yaml`` on the procedural toy
    data) trained by ``models.engine.train`` on the CPU and on the device with the same seed: time, and the
    per-epoch training loss of the device within ``LOSS_RTOL`` of the CPU's.
(b) ``paper_synthetic_step``: ``configs/training/synthetic_paper.yaml`` at its sizes (224², 2500 points, batch 8, 20
    training items cached in memory as the preset does) on the toy data: ms/step, peak memory, validation
    time, and the projected time of the paper synthetic sweep on one GPU.
(c) ``paper_shapenet_step``: ``configs/training/shapenet_paper.yaml`` (224², batch 64, 8 loader workers) on the
    ShapeNet-13 stand-in built here, through the real reader: ms/step with the loader and on a resident batch,
    peak memory, each decoder's step, and the projected time of the three paper ShapeNet sweeps on one GPU.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import DataLoader

from benchmarks.gpu._step import CheckFailed, Recorder, Sizes, cpu_count
from dataset.locations import REPO_ROOT
from dataset.registry import build_dataset
from dataset.splits import CachedDataset
from models import build_model
from models.config import decoder_overrides, load_config
from models.engine import predict_points, train, train_step
from models.training import METRICS_FILE, make_optimizer

CONFIGS = REPO_ROOT / "configs" / "training"
PRESETS = REPO_ROOT / "configs" / "presets"
# Device vs CPU training loss, per epoch: float32 sums in another order and cuDNN's TF32 convolutions (torch's
# default on Ampere and later) change the loss in the 4th significant digit per step; after a few dozen Adam
# steps the runs drift apart by well under 5 %.
LOSS_RTOL = 0.05
# ShapeNet-13 training shapes of the paper presets (README: 35,021 with ds.input_subsample=null).
SHAPENET13_TRAIN_SHAPES = 35021


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _losses(run_dir: Path) -> list[float]:
    lines = (run_dir / METRICS_FILE).read_text().splitlines()
    return [float(json.loads(line)["train_loss"]) for line in lines if line.strip()]


def _grid_runs(experiment: str) -> tuple[int, dict[str, list[Any]]]:
    grid = yaml.safe_load((PRESETS / experiment / "paper.yaml").read_text())["grid"]
    return math.prod(len(values) for values in grid.values()), grid


def _validations(epochs: int, every: int) -> int:
    """Validation passes of a run: every ``every`` epochs and the last (``every`` 0: the last only)."""
    if every == 0:
        return 1
    return epochs // every + (1 if epochs % every else 0)


def quick_training_step(sizes: Sizes, record: Recorder, work: Path) -> None:
    """Step 5a: the quick synthetic run on the CPU and on the device, same seed; losses within LOSS_RTOL."""
    overrides = [
        "data.dataset=toy",
        "data.train_file=train:20",
        "data.val_file=val:20",
        f"train.epochs={sizes.quick_epochs}",
        "eval.every=0",
        "run.progress=false",
        *sizes.train_overrides,
    ]
    config = load_config(CONFIGS / "synthetic_quick.yaml", overrides)
    record.put("config", "configs/training/synthetic_quick.yaml + " + " ".join(overrides))
    record.put("loss_rtol", LOSS_RTOL)
    losses, seconds = {}, {}
    for device in ("cpu", sizes.device):
        label = "device" if device != "cpu" else "cpu"
        if label in losses:
            continue
        started = time.perf_counter()
        run_dir = train(config, work / f"quick_{label}", device=device, force=True)
        seconds[label] = time.perf_counter() - started
        losses[label] = _losses(run_dir)
        record.put(f"{label}_seconds", seconds[label])
        record.put(f"{label}_train_loss", losses[label])
    if "device" not in losses:  # dry mode: the device is the CPU; the comparison is then CPU vs CPU
        losses["device"] = losses["cpu"]
    relative = max(abs(d - c) / max(abs(c), 1e-12) for d, c in zip(losses["device"], losses["cpu"], strict=True))
    record.put("max_relative_loss_difference", relative)
    if relative > LOSS_RTOL:
        raise CheckFailed(f"device and CPU training losses differ by {relative:.3g} (relative), more than {LOSS_RTOL}")


def _time_steps(model, optimizer, batches, steps: int, device: torch.device) -> float:  # noqa: ANN001
    """Seconds per optimisation step over ``steps`` batches drawn from the iterator ``batches``."""
    _synchronize(device)
    started = time.perf_counter()
    for batch in itertools.islice(batches, steps):
        images = batch["image"].to(device, non_blocking=True)
        points = batch["points"].to(device, non_blocking=True)
        train_step(model, images, points, optimizer)
    _synchronize(device)
    return (time.perf_counter() - started) / steps


def _forever(loader: DataLoader):  # noqa: ANN202 - an endless iterator over epochs
    while True:
        yield from loader


def paper_synthetic_step(sizes: Sizes, record: Recorder, work: Path) -> None:
    """Step 5b: ms/step of the paper synthetic preset at its sizes, and the sweep's projected time."""
    device = torch.device(sizes.device)
    overrides = ["data.dataset=toy", "data.train_file=train:20", *sizes.train_overrides]
    config = load_config(CONFIGS / "synthetic_paper.yaml", overrides)
    train_cfg, data_cfg = config["train"], config["data"]
    record.put("data", "procedural toy data at the preset's sizes (its 20 training items are cached in memory)")
    record.put("batch_size", train_cfg["batch_size"])
    record.put("image_size", data_cfg["image_size"])
    torch.manual_seed(config["seed"])
    model = build_model(config).to(device)
    optimizer, _ = make_optimizer(model, train_cfg)
    items = CachedDataset(build_dataset(config, "train"))
    loader = DataLoader(items, batch_size=train_cfg["batch_size"], shuffle=True, pin_memory=device.type == "cuda")
    steps_per_epoch = len(loader)
    batches = _forever(loader)
    _time_steps(model, optimizer, batches, sizes.warmup_steps, device)  # warm-up: cuDNN autotuning, allocator
    _reset_peak(device)
    timed = sizes.paper_synthetic_epochs * steps_per_epoch
    step_seconds = _time_steps(model, optimizer, batches, timed, device)
    record.put("timed_steps", timed)
    record.put("ms_per_step", 1000 * step_seconds)
    record.put("peak_memory_gib", _peak_gib(device))
    val_config = load_config(
        CONFIGS / "synthetic_paper.yaml", [*overrides, f"data.val_file=val:{sizes.validation_items}"]
    )
    val_items = CachedDataset(build_dataset(val_config, "val"))
    for index in range(len(val_items)):
        val_items[index]  # load before timing: the preset caches validation items too
    started = time.perf_counter()
    predict_points(model, val_items, device=device, batch_size=config["eval"]["batch_size"])
    # The preset validates on its 200 validation items (eval.items: null).
    val_seconds = (time.perf_counter() - started) * 200 / sizes.validation_items
    record.put("validation_seconds_200_items", val_seconds)
    runs, grid = _grid_runs("synthetic")
    epochs = train_cfg["epochs"]
    validations = _validations(epochs, config["eval"]["every"])
    per_run = epochs * steps_per_epoch * step_seconds + validations * val_seconds
    record.put("sweep_runs", runs)
    record.put("sweep_grid", grid)
    record.put("projected_seconds_per_run", per_run)
    record.put("projected_sweep_hours_one_gpu", runs * per_run / 3600)


def _build_standin(sizes: Sizes, root: Path, record: Recorder) -> None:
    command = [
        sys.executable,
        "-m",
        "dataset.shapenet.standin",
        "--root",
        str(root),
        "--per-category",
        str(sizes.standin_per_category),
        "--workers",
        str(max(1, min(16, cpu_count()))),
        "--no-progress",
    ]
    if sizes.standin_categories:
        command += ["--categories", *sizes.standin_categories]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO_ROOT)
    record.put("standin_build_seconds", time.perf_counter() - started)


def paper_shapenet_step(sizes: Sizes, record: Recorder, work: Path) -> None:
    """Step 5c: ms/step of the paper ShapeNet preset on the stand-in, per decoder, and the sweeps' projection."""
    device = torch.device(sizes.device)
    root = work / "standin"
    _build_standin(sizes, root, record)
    overrides = [
        f"data.root={root}",
        f"data.shapenet.cache_dir={work / 'cloud_cache'}",  # not the repository's default cache folder
        f"run.num_workers={sizes.shapenet_workers}",
        *sizes.train_overrides,
    ]
    if sizes.standin_categories:
        overrides.append(f"data.shapenet.categories=[{','.join(sizes.standin_categories)}]")
    config = load_config(CONFIGS / "shapenet_paper.yaml", overrides)
    batch_size, workers = config["train"]["batch_size"], config["run"]["num_workers"]
    record.put("config", "configs/training/shapenet_paper.yaml + " + " ".join(overrides))
    record.put("batch_size", batch_size)
    items = build_dataset(config, "train")
    record.put("standin_training_items", len(items))
    # The trainer's loader (models.engine.ReconstructionTask): shuffled, pinned, persistent workers.
    loader = DataLoader(
        items,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    torch.manual_seed(config["seed"])
    model = build_model(config).to(device)
    optimizer, _ = make_optimizer(model, config["train"])
    batches = _forever(loader)
    _time_steps(model, optimizer, batches, sizes.warmup_steps, device)  # warm-up: workers start, cuDNN
    _reset_peak(device)
    with_loader = _time_steps(model, optimizer, batches, sizes.shapenet_steps, device)
    record.put("ms_per_step_with_loader", 1000 * with_loader)
    record.put("peak_memory_gib", _peak_gib(device))
    resident = next(batches)
    resident = {key: resident[key].to(device) for key in ("image", "points")}
    del batches, loader  # stop the workers
    compute = {}
    for decoder in ("atlasnet_sphere1", "atlasnet_square25", "foldnet", "psgn"):
        decoder_config = load_config(CONFIGS / "shapenet_paper.yaml", overrides + decoder_overrides(decoder))
        torch.manual_seed(decoder_config["seed"])
        net = build_model(decoder_config).to(device)
        net_optimizer, _ = make_optimizer(net, decoder_config["train"])
        _reset_peak(device)
        _time_steps(net, net_optimizer, itertools.repeat(resident), sizes.warmup_steps, device)
        compute[decoder] = _time_steps(net, net_optimizer, itertools.repeat(resident), sizes.decoder_steps, device)
        record.put(f"ms_per_step_resident_batch_{decoder}", 1000 * compute[decoder])
        record.put(f"peak_memory_gib_{decoder}", _peak_gib(device))
        del net, net_optimizer
    started = time.perf_counter()
    with torch.no_grad():
        model.eval()
        model.predict(resident["image"])
        _synchronize(device)
    predict_batch = time.perf_counter() - started
    record.put("ms_per_validation_batch", 1000 * predict_batch)
    _project_shapenet(config, with_loader, compute, predict_batch, record)


def _project_shapenet(
    config: dict[str, Any], with_loader: float, compute: dict[str, float], predict_batch: float, record: Recorder
) -> None:
    """Hours of each paper ShapeNet sweep on one GPU: runs x epochs x steps x the slower of loader and compute."""
    epochs, batch_size = config["train"]["epochs"], config["train"]["batch_size"]
    validation = (
        _validations(epochs, config["eval"]["every"])
        * math.ceil(config["eval"]["items"] / config["eval"]["batch_size"])
        * predict_batch
    )
    record.put(
        "projection_assumes",
        f"{SHAPENET13_TRAIN_SHAPES} training shapes (ShapeNet-13), one image per shape "
        "and view, the stand-in's loader rate, validation included; DS evaluation excluded",
    )

    def run_seconds(decoder: str, views: int = 1) -> float:
        steps = math.ceil(SHAPENET13_TRAIN_SHAPES * views / batch_size)
        return epochs * steps * max(with_loader, compute[decoder]) + validation

    hours = {}
    runs, grid = _grid_runs("more_imgs")
    hours["more_imgs"] = runs * run_seconds("atlasnet_sphere1") / 3600
    _, grid = _grid_runs("more_shapes")
    seeds = len(grid["seed"])
    hours["more_shapes"] = sum(len(grid["frame"]) * seeds * run_seconds(d) for d in grid["decoder"]) / 3600
    _, grid = _grid_runs("nviews")
    hours["nviews"] = sum(len(grid["seed"]) * run_seconds("atlasnet_sphere1", v) for v in grid["views"]) / 3600
    record.put("projected_sweep_hours_one_gpu", hours)
