"""The synthetic cube↔sphere experiment (SPEC §3, §2.3): data → training sweep → DS table → figures.

``python -m experiments.synthetic --preset quick`` runs it all; ``train_scripts/train_synthetic.py`` and
``eval_scripts/eval_ds_synthetic.py`` run the training and the evaluation steps alone. Every step is
resumable: finished data, runs and measurements are kept and skipped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from dataset.cubesphere import CubeSphereDataset
from dispersion_score import chamfer_distance, chamfer_matrix, dispersion_score, feature_matrix, fscore
from dispersion_score.perceptual import feature_label, perceptual_features
from experiments.records import read_records, records_table, write_record, write_table
from experiments.sweep import Job, SweepReport, python_command, run_jobs
from experiments.sweep_config import REPO_ROOT, SweepConfig, load_sweep_config, preset_path
from models.config import load_config
from models.engine import load_trained, predict_points

LOGGER = logging.getLogger("experiments.synthetic")
TRAIN_SCRIPT = REPO_ROOT / "train_scripts" / "train.py"


def training_set_file(kind: str, s: int) -> str:
    """File name of a training set of SPEC §3 (relative to the dataset root)."""
    return f"cluster_{kind}_2by10_cltsize{s:02d}.json"


def run_name(kind: str, s: int, seed: int) -> str:
    return f"{kind}_s{s:02d}_seed{seed}"


def sweep_runs(cfg: SweepConfig) -> Iterator[tuple[str, int, int]]:
    """(kind, s, seed) of every training run of the sweep, in a fixed order."""
    return itertools.product(cfg.kinds, cfg.cluster_sizes, cfg.seeds)


@dataclass(frozen=True)
class Launch:
    """Where a sweep's jobs run: ``launcher`` and ``gpus`` as in :func:`experiments.sweep.run_jobs`;
    ``workers`` None = the preset's; ``slurm_parameters`` go to submitit (partition, timeout_min, ...)."""

    launcher: str = "local"
    gpus: tuple[int, ...] = ()
    workers: int | None = None
    slurm_parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> str:
        """Device of the work done in this process (the first listed GPU, else the CPU)."""
        return f"cuda:{self.gpus[0]}" if self.gpus else "cpu"

    def run(self, jobs: list[Job], cfg: SweepConfig, *, folder: Path, description: str) -> SweepReport:
        return run_jobs(
            jobs,
            launcher=self.launcher,
            gpus=self.gpus,
            workers=self.workers or cfg.workers,
            cwd=REPO_ROOT,
            slurm_folder=folder,
            slurm_parameters=self.slurm_parameters,
            description=description,
        )


def train_settings(cfg: SweepConfig) -> dict[str, Any]:
    """The resolved training config shared by all runs (data root, image size, ...)."""
    return load_config(cfg.train_config, list(cfg.train_overrides))


def data_root(cfg: SweepConfig) -> Path:
    root = Path(train_settings(cfg)["data"]["root"])
    return root if root.is_absolute() else REPO_ROOT / root


def setup_logging(log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(log_file) for h in root.handlers):
        root.addHandler(handler)


# ---------------------------------------------------------------------------------------------- data


def build_data(cfg: SweepConfig, *, workers: int) -> None:
    """Build (or finish building) the synthetic dataset the training config points at."""
    command = [
        sys.executable, "-m", "dataset.synthetic",
        "--root", str(data_root(cfg)),
        "--image-size", str(cfg.data.image_size),
        "--points", str(cfg.data.points),
        "--workers", str(workers),
        *cfg.data.build_args,
    ]  # fmt: skip
    LOGGER.info("building data: %s", " ".join(command))
    if subprocess.run(command, cwd=REPO_ROOT).returncode != 0:
        raise RuntimeError(f"building the synthetic data failed: {' '.join(command)}")


# ------------------------------------------------------------------------------------------ training


def training_jobs(cfg: SweepConfig) -> list[Job]:
    """One job per (kind, s, seed): ``train_scripts/train.py`` with the run's training set and seed."""
    jobs = []
    for kind, s, seed in sweep_runs(cfg):
        run_dir = cfg.runs_dir / run_name(kind, s, seed)
        overrides = [*cfg.train_overrides, f"data.train_file={training_set_file(kind, s)}", f"seed={seed}"]
        command = python_command(
            TRAIN_SCRIPT, "--config", str(cfg.train_config), "--out", str(run_dir),
            *[item for override in overrides for item in ("--set", override)],
        )  # fmt: skip
        jobs.append(Job(run_name(kind, s, seed), command, run_dir / "done", run_dir / "job.log"))
    return jobs


def train(cfg: SweepConfig, launch: Launch = Launch()) -> SweepReport:
    """Train every run of the sweep that is not finished yet."""
    return launch.run(training_jobs(cfg), cfg, folder=cfg.runs_dir / "submitit", description=f"training ({cfg.preset})")


# -------------------------------------------------------------------------------------------- inputs


def _settings(cfg: SweepConfig, **extra: Any) -> dict[str, Any]:
    return {"sweep": cfg.as_dict(), **extra}


def _dataset(cfg: SweepConfig, index_file: str, *, image_size: int | None = None) -> CubeSphereDataset:
    return CubeSphereDataset(
        data_root(cfg), index_file, num_points=cfg.eval.shape_points, image_size=image_size, seed=cfg.eval.ds_seed
    )


def stacked_points(dataset: CubeSphereDataset) -> np.ndarray:
    """(N, P, 3) ground-truth clouds of a dataset, in item order."""
    return np.stack([dataset[i]["points"].numpy() for i in range(len(dataset))])


def _ds_columns(matrix: np.ndarray, cfg: SweepConfig, device: str) -> dict[str, Any]:
    result = dispersion_score(matrix, cfg.eval.k, method=cfg.eval.method, seed=cfg.eval.ds_seed, device=device)
    return {"ds": result.ds, "inertia": result.inertia, "k": result.k, "n": result.n, "method": result.method}


def evaluate_inputs(cfg: SweepConfig, *, device: str = "cpu") -> None:
    """Input image DS and input shape DS of every training set, and the ground-truth test DS."""
    root = data_root(cfg)
    label = feature_label(cfg.eval.image_weights, "channel_max")
    sets = {
        f"{kind}_s{s:02d}": (kind, s, json.loads((root / training_set_file(kind, s)).read_text()))
        for kind in cfg.kinds
        for s in cfg.cluster_sizes
    }
    records_dir = cfg.results_dir / "records"
    missing_images = [name for name in sets if not (records_dir / f"{name}_input_image.json").exists()]
    features = _image_features(root, [sets[name][2] for name in missing_images], cfg, device)
    for name in tqdm(list(sets), desc="input DS"):
        kind, s, entries = sets[name]
        columns = {"kind": kind, "s": s, "preset": cfg.preset}
        settings = _settings(cfg, training_set=training_set_file(kind, s))
        if name in missing_images:
            matrix = feature_matrix(np.stack([features[entry["image"]] for entry in entries]), device=device)
            columns_image = {**columns, "measure": "input_image", "features": label}
            _write_ds_record(cfg, f"{name}_input_image", matrix, columns_image, settings, device)
        if not (records_dir / f"{name}_input_shape.json").exists():
            matrix = chamfer_matrix(stacked_points(_dataset(cfg, training_set_file(kind, s))), device=device)
            columns_shape = {**columns, "measure": "input_shape", "features": "chamfer"}
            _write_ds_record(cfg, f"{name}_input_shape", matrix, columns_shape, settings, device)
    if not (records_dir / "gt_test.json").exists():
        test_file = train_settings(cfg)["data"]["test_file"]
        matrix = chamfer_matrix(stacked_points(_dataset(cfg, test_file)), device=device, progress=True)
        columns = {"kind": "test", "measure": "gt_test", "preset": cfg.preset, "features": "chamfer"}
        _write_ds_record(cfg, "gt_test", matrix, columns, _settings(cfg, index_file=test_file), device)


def _image_features(
    root: Path, training_sets: list[list[dict[str, Any]]], cfg: SweepConfig, device: str
) -> dict[str, np.ndarray]:
    """VGG16 features of every image the given training sets use, keyed by the entry's ``image`` path.

    Each image is computed once, in batches: the shape_aug sets all reuse image_aug_35's images.
    """
    paths = sorted({entry["image"] for entries in training_sets for entry in entries})
    if not paths:
        return {}
    features = perceptual_features(
        [root / path for path in paths],
        weights=cfg.eval.image_weights,
        device=device,
        batch_size=cfg.eval.batch_size,
        progress=True,
    )
    return dict(zip(paths, features, strict=True))


def _write_ds_record(
    cfg: SweepConfig,
    name: str,
    matrix: np.ndarray,
    columns: dict[str, Any],
    settings: dict[str, Any],
    device: str,
) -> dict[str, Any]:
    """DS of ``matrix`` with the sweep's k-medoids settings, written as ``records/<name>.json`` + matrix."""
    return write_record(
        cfg.results_dir / "records" / f"{name}.json",
        {**columns, **_ds_columns(matrix, cfg, device), "ds_seed": cfg.eval.ds_seed},
        settings=settings,
        device=device,
        matrix=matrix,
        matrix_path=cfg.results_dir / "matrices" / f"{name}.npy",
    )


# ------------------------------------------------------------------------------------------- outputs


def evaluate_run(cfg: SweepConfig, kind: str, s: int, seed: int, *, device: str = "cpu") -> dict[str, Any]:
    """Output DS, test Chamfer and F-score of one finished run on the test split (SPEC §2.3)."""
    name = run_name(kind, s, seed)
    run_dir = cfg.runs_dir / name
    model, run_config = load_trained(run_dir, device=device)
    test_set = _dataset(cfg, run_config["data"]["test_file"], image_size=run_config["data"]["image_size"])
    predictions = predict_points(model, test_set, device=device, batch_size=cfg.eval.batch_size)
    ground_truth = stacked_points(test_set)
    matrix = chamfer_matrix(predictions, device=device)
    pred_t, gt_t = torch.from_numpy(predictions).float(), torch.from_numpy(ground_truth).float()
    columns = {
        "kind": kind, "s": s, "seed": seed, "measure": "output", "preset": cfg.preset, "features": "chamfer",
        "chamfer": float(chamfer_distance(pred_t, gt_t, reduction="mean")),
        "fscore": float(fscore(pred_t, gt_t, convention="euclidean").mean()),
        "fscore_convention": "euclidean, tau=0.01 (unit ball)",
        # tau = 0.01 is below the point spacing of 1000-2500-point clouds, so the old AtlasNet convention
        # (squared distance < 0.001, i.e. tau = 0.032) is recorded too: it still separates models.
        "fscore_atlasnet": float(fscore(pred_t, gt_t, convention="atlasnet_squared").mean()),
        "prediction_points": int(predictions.shape[1]),
    }  # fmt: skip
    settings = _settings(cfg, run_dir=str(run_dir), run_config=run_config)
    return _write_ds_record(cfg, f"{name}_output", matrix, columns, settings, device)


def output_jobs(cfg: SweepConfig) -> list[Job]:
    """One evaluation job per finished training run (unfinished runs are left out)."""
    jobs = []
    for kind, s, seed in sweep_runs(cfg):
        name = run_name(kind, s, seed)
        if not (cfg.runs_dir / name / "done").exists():
            continue
        command = (
            sys.executable, "-m", "experiments.evaluate_run", "--sweep-config", str(cfg.source),
            "--kind", kind, "--s", str(s), "--seed", str(seed),
            *_config_overrides_args(cfg),
        )  # fmt: skip
        record = cfg.results_dir / "records" / f"{name}_output.json"
        jobs.append(Job(f"eval_{name}", command, record, cfg.results_dir / "logs" / f"eval_{name}.log"))
    return jobs


def _config_overrides_args(cfg: SweepConfig) -> tuple[str, ...]:
    # Evaluation jobs must see the same sweep as their parent, including command-line seed overrides.
    return ("--seeds", *map(str, cfg.seeds))


def evaluate(cfg: SweepConfig, launch: Launch = Launch()) -> tuple[SweepReport, pd.DataFrame]:
    """Input DS (in this process), output DS of every finished run (as jobs), then the table."""
    evaluate_inputs(cfg, device=launch.device)
    report = launch.run(output_jobs(cfg), cfg, folder=cfg.results_dir / "submitit", description="output DS")
    table = records_table(read_records(cfg.results_dir / "records"))
    write_table(table, cfg.results_dir / "ds_table.csv")
    return report, table


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """DS per training set and measure (mean over seeds), one row per (kind, s)."""
    per_set = table[table["measure"] != "gt_test"]
    pivot = per_set.pivot_table(index=["kind", "s"], columns="measure", values="ds", aggfunc="mean")
    return pivot.reindex(columns=[c for c in ("input_image", "input_shape", "output") if c in pivot.columns])


# ------------------------------------------------------------------------------------------- main job


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="quick", help="preset name (configs/synthetic_sweep_<preset>.yaml)")
    parser.add_argument("--config", type=Path, help="a sweep file instead of a named preset")
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: the preset's)")
    parser.add_argument("--gpus", type=int, nargs="*", default=[], help="GPU indices; one job per GPU")
    parser.add_argument("--workers", type=int, help="concurrent CPU jobs (default: the preset's)")
    parser.add_argument("--launcher", choices=("local", "slurm", "submitit-local"), default="local")
    slurm = parser.add_argument_group("SLURM (--launcher slurm)")
    slurm.add_argument("--slurm-partition", help="partition to submit to")
    slurm.add_argument("--slurm-timeout-min", type=int, default=240, help="time limit per job, minutes")
    slurm.add_argument("--slurm-cpus-per-task", type=int, default=4)


def launch_from_arguments(args: argparse.Namespace) -> Launch:
    slurm_parameters: dict[str, Any] = {}
    if args.launcher == "slurm":
        slurm_parameters = {"timeout_min": args.slurm_timeout_min, "cpus_per_task": args.slurm_cpus_per_task}
        if args.slurm_partition:
            slurm_parameters["slurm_partition"] = args.slurm_partition
    return Launch(args.launcher, tuple(args.gpus), args.workers, slurm_parameters)


def parse_sweep_command_line(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> tuple[argparse.Namespace, SweepConfig]:
    """Add the common options, parse, load the sweep; a bad preset or file exits with status 2."""
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    try:
        path = args.config or preset_path(args.preset)
        cfg = load_sweep_config(path, seeds=tuple(args.seeds) if args.seeds else None)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    return args, cfg


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-figures", action="store_true")
    args, cfg = parse_sweep_command_line(parser, argv)
    setup_logging(cfg.results_dir / "experiment.log")
    started = time.time()
    launch = launch_from_arguments(args)
    build_data(cfg, workers=args.workers or cfg.workers)
    train_report = train(cfg, launch)
    print(f"training: {train_report.summary()}")
    eval_report, table = evaluate(cfg, launch)
    print(f"evaluation: {eval_report.summary()}")
    if not args.skip_figures:
        from experiments.figures import write_figures

        for path in write_figures(cfg.results_dir):
            print(f"figure: {path}")
    with pd.option_context("display.float_format", "{:.5g}".format, "display.width", 120):
        print(summary_table(table))
    gt = table[table["measure"] == "gt_test"]["ds"]
    if len(gt):
        print(f"ground-truth test shape DS: {gt.iloc[0]:.5g}")
    print(f"table: {cfg.results_dir / 'ds_table.csv'}  ({time.time() - started:.0f} s)")
    return 0 if train_report.ok and eval_report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
