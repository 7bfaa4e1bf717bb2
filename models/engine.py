"""The reconstruction trainer: image → point-cloud networks trained on the Chamfer loss, as a task of the training
protocol (``models.training``), and the helpers evaluation needs.

``train(config, out_dir)`` writes into ``out_dir`` the files of ``models.training``:

* ``config.yaml``: the resolved config (every key; see ``models.config``);
* ``metrics.jsonl``: one JSON object per epoch with ``epoch``, ``train_loss`` (mean training Chamfer of the
  epoch, random template), ``val_chamfer`` and ``val_fscore`` (``predict`` on the validation items, regular
  template; ``null`` in epochs without validation, see ``eval.every``), ``lr`` (the rate used in the epoch)
  and ``seconds`` (wall time of the epoch, validation included);
* TensorBoard events (``events.out.tfevents.*``), ``train.log`` (a header per start, one line per epoch);
* ``checkpoint.pt``: model, optimiser, scheduler, grad scaler, epoch and every RNG state (python, numpy,
  torch, CUDA, the data order), written atomically every ``run.checkpoint_every`` epochs and when the run
  stops; deleted when the run finishes unless ``run.keep_checkpoint`` (it is 3× the model's size);
* ``final.pt``: the trained weights with the config and provenance;
* ``done``: written last. A run with ``done`` is skipped unless ``force``.

Rerunning an unfinished run resumes from ``checkpoint.pt``; on CPU, with the same thread count, the result is
bit-identical to an uninterrupted run. Losses are Chamfer distances as in docs/library.md (squared distances,
both directions, no ½).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dataset.registry import build_dataset
from dataset.splits import CachedDataset, evenly_spaced_subset
from dispersion_score import resolve_device
from dispersion_score.chamfer import chamfer_distance, fscore
from models import build_model
from models.base import PointCloudNet
from models.config import dump_config, resolve_config, results_relevant
from models.training import (
    FINAL_FILE,
    CheckpointError,
    RunOptions,
    TrainingTask,
    final_model_problem,
    load_checkpoint_file,
    make_optimizer,
    run_training,
    seed_everything,
    seed_worker,
)

CHECKPOINT_FORMAT = "dispersion-score-checkpoint/1"


# ---------------------------------------------------------------------------------------------- public


def train(
    config: Mapping[str, Any], out_dir: str | Path, *, device: str | torch.device | None = None, force: bool = False
) -> Path:
    """Trains one run (or finishes an interrupted one) and returns its directory.

    Args:
        config: a training config, partial or resolved (``models.config.resolve_config`` fills it in).
        out_dir: the run directory (created if missing).
        device: "cpu", "cuda", "cuda:N" or None (the CPU), resolved by ``dispersion_score.resolve_device``.
        force: start over even when ``out_dir`` holds a finished run or a run with another config (the run's
            own files are deleted; other files in ``out_dir``, e.g. a sweep's job log, are kept).

    Returns:
        ``out_dir``. It holds ``done`` unless ``run.stop_after_epochs`` stopped the run early.

    Raises:
        RunDirectoryError: ``out_dir/config.yaml`` holds a different config (and not ``force``), or
            ``out_dir`` is a file.
        DirectoryLockedError: another process is training in ``out_dir`` (the message names its pid, host
            and start time); one process at a time owns a run directory (``dispersion_score.locks``).
        CheckpointError: ``out_dir/checkpoint.pt`` is corrupt or incompatible (the message names it).
        ValueError: a setting the model or the data refuse (nothing is written into ``out_dir`` then: a start
            refused for a bad setting leaves no ``config.yaml`` behind to block the corrected command).
    """
    return run_training(ReconstructionTask(config, device), out_dir, force=force)


def load_trained(
    run_dir: str | Path, *, device: str | torch.device | None = None
) -> tuple[PointCloudNet, dict[str, Any]]:
    """The trained network of a finished run, in eval mode on ``device``, and the run's resolved config.

    Raises:
        FileNotFoundError: ``run_dir`` holds no ``final.pt``.
        CheckpointError: ``final.pt`` is not the file its training wrote, or not a usable model.
    """
    path = Path(run_dir) / FINAL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the run in {run_dir} has not finished")
    problem = final_model_problem(run_dir)
    if problem is not None:
        raise CheckpointError(f"{problem}; rerun the training to make it again")
    content = load_checkpoint_file(path)
    try:
        config = resolve_config(content["config"])
        model = build_model(config)
        model.load_state_dict(content["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path} is not a usable final model: {error}") from None
    return model.to(resolve_device(device)).eval(), config


@torch.no_grad()
def predict_points(
    model: PointCloudNet,
    dataset_or_loader: Dataset | Iterable[Any],
    *,
    device: str | torch.device | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """``model.predict`` on every item, in order.

    Args:
        model: a trained network.
        dataset_or_loader: a map-style dataset of dict items with ``image`` (3, H, W), or an iterable of
            batches (dicts with ``image`` (B, 3, H, W), or image tensors).
        device: where to run the network (the model is moved there).
        batch_size: items per forward pass when a dataset is given.

    Returns:
        (N, M, 3) float32 array of predicted points (M = ``model.num_points(regular=True)``).
    """
    torch_device = resolve_device(device)
    model = model.to(torch_device)
    if isinstance(dataset_or_loader, Dataset):
        batches: Iterable[Any] = DataLoader(dataset_or_loader, batch_size=batch_size, shuffle=False)
    else:
        batches = dataset_or_loader
    outputs = []
    for batch in batches:
        images = batch["image"] if isinstance(batch, Mapping) else batch
        outputs.append(model.predict(images.to(torch_device)).float().cpu().numpy())
    if not outputs:
        return np.zeros((0, model.num_points(regular=True), 3), dtype=np.float32)
    return np.concatenate(outputs)


def train_epoch(
    model: PointCloudNet,
    batches: Iterable[Mapping[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """One pass over ``batches`` (dicts with ``image`` (B, 3, H, W) and ``points`` (B, P, 3)).

    Returns:
        The mean training Chamfer distance of the pass, weighted by batch size.
    """
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    non_blocking = device.type == "cuda"
    for batch in batches:
        images = batch["image"].to(device, non_blocking=non_blocking)
        points = batch["points"].to(device, non_blocking=non_blocking)
        loss = train_step(model, images, points, optimizer, scaler=scaler, autocast_dtype=autocast_dtype)
        # Accumulate on the device: no host synchronisation per step.
        total += loss.detach() * images.shape[0]
        count += images.shape[0]
    return float(total) / max(count, 1)


def train_step(
    model: PointCloudNet,
    images: torch.Tensor,
    points: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    scaler: torch.amp.GradScaler | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """One optimisation step on the batch-mean Chamfer loss; returns the loss (a 0-d tensor)."""
    optimizer.zero_grad(set_to_none=True)
    if autocast_dtype is not None:
        with torch.autocast(device_type=images.device.type, dtype=autocast_dtype):
            predicted = model(images)
    else:
        predicted = model(images)
    loss = chamfer_distance(predicted.float(), points)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss


@torch.no_grad()
def validate(
    model: PointCloudNet,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    device: torch.device,
    threshold: float | None = None,
    convention: str = "euclidean",
) -> tuple[float, float]:
    """Mean Chamfer distance and mean F-score of ``model.predict`` (regular template) against ``points``.

    ``threshold`` and ``convention`` are those of ``dispersion_score.fscore`` (None: the convention's default,
    0.01 Euclidean).
    """
    chamfer, fscores, count = 0.0, 0.0, 0
    for batch in batches:
        predicted = model.predict(batch["image"].to(device)).float()
        points = batch["points"].to(device)
        chamfer += float(chamfer_distance(predicted, points, reduction="sum"))
        fscores += float(fscore(predicted, points, threshold=threshold, convention=convention).sum())
        count += points.shape[0]
    if count == 0:
        return math.nan, math.nan
    return chamfer / count, fscores / count


# ---------------------------------------------------------------------------------------------- the task


class ReconstructionTask(TrainingTask):
    """A network of ``models`` trained on the batch-mean Chamfer loss, validated with ``predict``.

    Args:
        config: a training config, partial or resolved (resolved here).
        device: "cpu", "cuda", "cuda:N" or None (the CPU).
    """

    what = "training run"
    noun = "run"
    checkpoint_format = CHECKPOINT_FORMAT
    stop_option = "run.stop_after_epochs"
    loss_key = "train_loss"

    model: PointCloudNet
    autocast_dtype: torch.dtype | None  # mixed precision on CUDA (train.amp), else None
    val_loader: DataLoader

    def __init__(self, config: Mapping[str, Any], device: str | torch.device | None = None) -> None:
        self.config = resolve_config(config)
        self.device = resolve_device(device)
        run = self.config["run"]
        self.options = RunOptions(
            epochs=self.config["train"]["epochs"],
            checkpoint_every=run["checkpoint_every"],
            stop_after_epochs=run["stop_after_epochs"],
            keep_checkpoint=run["keep_checkpoint"],
            progress=run["progress"],
            echo=True,
            tensorboard=True,
        )

    def normalise(self, config: Any) -> dict[str, Any]:
        return resolve_config(config)

    def relevant(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return results_relevant(config)

    def dump_config(self) -> str:
        return dump_config(self.config)

    def build(self) -> None:
        config, device = self.config, self.device
        train_cfg = config["train"]
        seed_everything(config["seed"])
        self.model = build_model(config).to(device)
        self.optimizer, self.scheduler = make_optimizer(self.model, train_cfg)
        use_amp = train_cfg["amp"] and device.type == "cuda"
        self.autocast_dtype = getattr(torch, train_cfg["amp_dtype"]) if use_amp else None
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast_dtype == torch.float16 else None
        self.generator = torch.Generator().manual_seed(config["seed"])
        self.train_loader, self.val_loader = self._loaders()

    def _loaders(self) -> tuple[DataLoader, DataLoader]:
        run = self.config["run"]
        train_set = build_dataset(self.config, "train")
        val_set = evenly_spaced_subset(build_dataset(self.config, "val"), self.config["eval"]["items"])
        if run["cache_data"]:
            train_set, val_set = CachedDataset(train_set), CachedDataset(val_set)
        if len(train_set) == 0:
            raise ValueError(f"the training set ({self.config['data']['train_file']}) is empty")
        workers = run["num_workers"]
        common = {
            "num_workers": workers,
            "pin_memory": self.device.type == "cuda",
            "worker_init_fn": seed_worker if workers else None,
            "persistent_workers": workers > 0,
        }
        train_loader = DataLoader(
            train_set,
            batch_size=self.config["train"]["batch_size"],
            shuffle=True,
            generator=self.generator,
            **common,
        )
        # Its own generator: a DataLoader without one draws its base seed from the global torch RNG at every
        # iteration, so each validation shifted the random templates of all later steps and the training
        # depended on eval.every (a learning curve with eval.every=1 would not be the run it describes).
        val_loader = DataLoader(
            val_set,
            batch_size=self.config["eval"]["batch_size"],
            shuffle=False,
            generator=torch.Generator().manual_seed(self.config["seed"]),
            **common,
        )
        return train_loader, val_loader

    def train_epoch(self, batches: Iterable[Any]) -> dict[str, float]:
        loss = train_epoch(
            self.model, batches, self.optimizer, device=self.device, scaler=self.scaler,
            autocast_dtype=self.autocast_dtype,
        )  # fmt: skip
        return {"train_loss": loss}

    def validate(self, epoch: int) -> dict[str, float | None]:
        every = self.config["eval"]["every"]
        if not (epoch == self.options.epochs or (every > 0 and epoch % every == 0)):
            return {"val_chamfer": None, "val_fscore": None}
        evaluation = self.config["eval"]
        chamfer, fscores = validate(
            self.model, self.val_loader, device=self.device,
            threshold=evaluation["fscore_threshold"], convention=evaluation["fscore_convention"],
        )  # fmt: skip
        return {"val_chamfer": chamfer, "val_fscore": fscores}

    def epoch_line(self, record: Mapping[str, Any]) -> str:
        line = f"epoch {record['epoch']}/{self.options.epochs} train_loss {record['train_loss']:.6g}"
        if record["val_chamfer"] is not None:
            line += f" val_chamfer {record['val_chamfer']:.6g} val_fscore {record['val_fscore']:.4f}"
        return line + f" lr {record['lr']:.3g} {record['seconds']:.2f}s"

    def scalars(self, record: Mapping[str, Any]) -> dict[str, float]:
        scalars = {"train/chamfer": record["train_loss"], "train/lr": record["lr"]}
        if record["val_chamfer"] is not None:
            scalars.update({"val/chamfer": record["val_chamfer"], "val/fscore": record["val_fscore"]})
        return scalars

    def describe(self) -> str:
        config = self.config
        parameters = sum(p.numel() for p in self.model.parameters())
        return (
            f"preset {config['preset']} seed {config['seed']} model {config['model']['name']}"
            f" ({parameters} parameters) device {self.device} threads {torch.get_num_threads()}"
            f" train items {len(self.train_loader.dataset)} val items {len(self.val_loader.dataset)}"  # type: ignore[arg-type]
        )


__all__ = ["ReconstructionTask", "load_trained", "predict_points", "train", "train_epoch", "train_step", "validate"]
