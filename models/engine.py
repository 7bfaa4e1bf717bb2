"""The trainer: one resumable, device-agnostic training run per call, and the helpers evaluation needs.

``train(config, out_dir)`` writes into ``out_dir``:

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

import contextlib
import io
import json
import math
import random
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dataset.registry import build_dataset
from dataset.splits import CachedDataset, evenly_spaced_subset
from dispersion_score._validation import resolve_device
from dispersion_score.artefact import FileRecord, mismatch, record_file
from dispersion_score.chamfer import chamfer_distance, fscore
from dispersion_score.io import atomic_write_bytes, atomic_write_text, provenance
from dispersion_score.locks import directory_lock
from models import build_model
from models.base import PointCloudNet
from models.config import dump_config, read_yaml, resolve_config, results_relevant

CHECKPOINT_FORMAT = "dispersion-score-checkpoint/1"
CONFIG_FILE, METRICS_FILE, LOG_FILE = "config.yaml", "metrics.jsonl", "train.log"
CHECKPOINT_FILE, FINAL_FILE, DONE_FILE = "checkpoint.pt", "final.pt", "done"
_STEP_BAR_MIN_STEPS = 20


class CheckpointError(RuntimeError):
    """A checkpoint or final model file that cannot be used (corrupt, from another config or model)."""


class RunDirectoryError(ValueError):
    """A run directory that holds a different run (its config.yaml differs)."""


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

    Nothing is written into ``out_dir`` before the run can really start (model and data built): a start
    refused for a bad setting leaves no ``config.yaml`` behind to block the corrected command.
    """
    config = resolve_config(config)
    out_dir = Path(out_dir)
    torch_device = resolve_device(device)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirectoryError(f"run directory {out_dir} is a file, not a directory")
    with directory_lock(out_dir, what="training run"):
        if not force and (out_dir / DONE_FILE).exists():
            _check_same_config(out_dir, config)
            problem = final_model_problem(out_dir)
            if problem is None:
                print(f"{out_dir}: finished run (found {DONE_FILE}); skipping. Use --force to train again.")
                return out_dir
            # The weights of a finished run are the only copy (its checkpoint is gone): train it again.
            print(f"{out_dir}: {problem}; training the run again", file=sys.stderr)
            force = True
        if not force:
            _check_same_config(out_dir, config)
        run = _Run(config, out_dir, torch_device)  # builds the model and the data: may still refuse
        if force:
            clear_run(out_dir)
        atomic_write_text(out_dir / CONFIG_FILE, dump_config(config))
        return run.execute()


def load_trained(
    run_dir: str | Path, *, device: str | torch.device | None = None
) -> tuple[PointCloudNet, dict[str, Any]]:
    """The trained network of a finished run, in eval mode on ``device``, and the run's resolved config."""
    path = Path(run_dir) / FINAL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the run in {run_dir} has not finished")
    problem = final_model_problem(run_dir)
    if problem is not None:
        raise CheckpointError(f"{problem}; rerun the training to make it again")
    content = _torch_load(path)
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


def make_optimizer(
    model: torch.nn.Module, train: Mapping[str, Any]
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.MultiStepLR]:
    """Adam (``train.lr``) and a MultiStepLR multiplying the rate by ``train.gamma`` at ``train.milestones``.

    The fused Adam kernel does the same update as the default one in a single pass over the parameters
    (about 3× faster per step on CPU for ResNet-18's 11 M parameters).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=train["lr"], weight_decay=train["weight_decay"], fused=True)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=train["milestones"], gamma=train["gamma"])
    return optimizer, scheduler


def clear_run(out_dir: Path) -> None:
    """Deletes the files ``train`` writes into ``out_dir`` (and nothing else)."""
    if not out_dir.is_dir():
        return
    for name in (DONE_FILE, FINAL_FILE, CHECKPOINT_FILE, METRICS_FILE, LOG_FILE, CONFIG_FILE):
        (out_dir / name).unlink(missing_ok=True)
    for events in out_dir.glob("events.out.tfevents.*"):
        events.unlink()


# ------------------------------------------------------------------------------------------ run state


class _Run:
    """State of one training run; ``execute`` trains from the checkpoint (or from scratch) to the end."""

    def __init__(self, config: dict[str, Any], out_dir: Path, device: torch.device) -> None:
        self.config, self.out_dir, self.device = config, out_dir, device
        train_cfg, self.run_cfg = config["train"], config["run"]
        _seed_everything(config["seed"])
        self.model = build_model(config).to(device)
        self.optimizer, self.scheduler = make_optimizer(self.model, train_cfg)
        use_amp = train_cfg["amp"] and device.type == "cuda"
        self.autocast_dtype = getattr(torch, train_cfg["amp_dtype"]) if use_amp else None
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast_dtype == torch.float16 else None
        self.generator = torch.Generator().manual_seed(config["seed"])
        self.train_loader, self.val_loader = self._loaders()
        self.epoch = 0

    def _loaders(self) -> tuple[DataLoader, DataLoader]:
        train_set = build_dataset(self.config, "train")
        val_set = evenly_spaced_subset(build_dataset(self.config, "val"), self.config["eval"]["items"])
        if self.run_cfg["cache_data"]:
            train_set, val_set = CachedDataset(train_set), CachedDataset(val_set)
        if len(train_set) == 0:
            raise ValueError(f"the training set ({self.config['data']['train_file']}) is empty")
        workers = self.run_cfg["num_workers"]
        common = {
            "num_workers": workers,
            "pin_memory": self.device.type == "cuda",
            "worker_init_fn": _seed_worker if workers else None,
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

    # ------------------------------------------------------------------------------------ checkpoints

    def state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "config": self.config,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": _rng_state(self.generator),
        }

    def save_checkpoint(self) -> None:
        _atomic_torch_save(self.state(), self.out_dir / CHECKPOINT_FILE)

    def load_checkpoint(self, path: Path) -> None:
        content = _torch_load(path)
        try:
            if content.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"format {content.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
            if results_relevant(resolve_config(content["config"])) != results_relevant(self.config):
                raise ValueError("it was written by a run with a different config")
            self.model.load_state_dict(content["model"])
            self.optimizer.load_state_dict(content["optimizer"])
            self.scheduler.load_state_dict(content["scheduler"])
            if self.scaler is not None and content["scaler"] is not None:
                self.scaler.load_state_dict(content["scaler"])
            _set_rng_state(content["rng"], self.generator)
            self.epoch = int(content["epoch"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            raise CheckpointError(
                f"{path} is incompatible with this run: {error}. Delete it or rerun with --force."
            ) from None

    # ---------------------------------------------------------------------------------------- training

    def execute(self) -> Path:
        checkpoint = self.out_dir / CHECKPOINT_FILE
        resumed = checkpoint.exists()
        if resumed:
            self.load_checkpoint(checkpoint)
        else:  # a fresh start: events of an attempt killed before its first checkpoint are stale
            for events in self.out_dir.glob("events.out.tfevents.*"):
                events.unlink()
        _truncate_metrics(self.out_dir / METRICS_FILE, self.epoch)
        epochs = self.config["train"]["epochs"]
        stop_at = min(epochs, self.run_cfg["stop_after_epochs"] or epochs)
        with open(self.out_dir / LOG_FILE, "a") as log, _summary_writer(self.out_dir, self.epoch) as writer:
            self._log_header(log, resumed)
            progress = tqdm(
                total=epochs, initial=self.epoch, desc=self.out_dir.name, unit="epoch", disable=self._no_bar()
            )
            with progress:
                while self.epoch < stop_at:
                    record = self._one_epoch()
                    self._write_epoch(record, log, writer, echo=progress.disable)
                    progress.set_postfix(loss=f"{record['train_loss']:.4g}", refresh=False)
                    progress.update(1)
                    every = self.run_cfg["checkpoint_every"]
                    # A run that finishes now writes final.pt and deletes checkpoint.pt (unless kept): a checkpoint
                    # of the last epoch would be written only to be deleted (docs/training_speed.md).
                    finishing = self.epoch == epochs and not self.run_cfg["keep_checkpoint"]
                    if (self.epoch % every == 0 or self.epoch == stop_at) and not finishing:
                        self.save_checkpoint()
            if self.epoch < epochs:
                _log(log, f"stopped after epoch {self.epoch} (run.stop_after_epochs); rerun to resume")
                return self.out_dir
            self._finish(log)
        return self.out_dir

    def _one_epoch(self) -> dict[str, Any]:
        started = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        batches = self.train_loader
        if len(self.train_loader) >= _STEP_BAR_MIN_STEPS and not self._no_bar():
            batches = tqdm(self.train_loader, desc=f"epoch {self.epoch + 1}", leave=False, unit="step")
        train_loss = train_epoch(
            self.model, batches, self.optimizer, device=self.device, scaler=self.scaler,
            autocast_dtype=self.autocast_dtype,
        )  # fmt: skip
        self.scheduler.step()
        self.epoch += 1
        val_chamfer = val_fscore = None
        if self._validate_now():
            evaluation = self.config["eval"]
            val_chamfer, val_fscore = validate(
                self.model, self.val_loader, device=self.device,
                threshold=evaluation["fscore_threshold"], convention=evaluation["fscore_convention"],
            )  # fmt: skip
        return {
            "epoch": self.epoch,
            "train_loss": train_loss,
            "val_chamfer": val_chamfer,
            "val_fscore": val_fscore,
            "lr": lr,
            "seconds": time.perf_counter() - started,
        }

    def _validate_now(self) -> bool:
        every = self.config["eval"]["every"]
        return self.epoch == self.config["train"]["epochs"] or (every > 0 and self.epoch % every == 0)

    def _no_bar(self) -> bool:
        return not (self.run_cfg["progress"] and sys.stderr.isatty())

    def _write_epoch(self, record: dict[str, Any], log: Any, writer: Any, *, echo: bool) -> None:
        with open(self.out_dir / METRICS_FILE, "a") as metrics:
            metrics.write(json.dumps(_json_safe(record)) + "\n")
        epoch = record["epoch"]
        writer.add_scalar("train/chamfer", record["train_loss"], epoch)
        writer.add_scalar("train/lr", record["lr"], epoch)
        if record["val_chamfer"] is not None:
            writer.add_scalar("val/chamfer", record["val_chamfer"], epoch)
            writer.add_scalar("val/fscore", record["val_fscore"], epoch)
        line = f"epoch {epoch}/{self.config['train']['epochs']} train_loss {record['train_loss']:.6g}"
        if record["val_chamfer"] is not None:
            line += f" val_chamfer {record['val_chamfer']:.6g} val_fscore {record['val_fscore']:.4f}"
        line += f" lr {record['lr']:.3g} {record['seconds']:.2f}s"
        _log(log, line)
        if echo:  # no progress bar (e.g. output redirected to a job log): say something per epoch
            print(line, flush=True)

    def _log_header(self, log: Any, resumed: bool) -> None:
        config = self.config
        start = f"resumed after epoch {self.epoch}" if resumed else "started"
        parameters = sum(p.numel() for p in self.model.parameters())
        _log(
            log,
            f"{start}: preset {config['preset']} seed {config['seed']} model {config['model']['name']}"
            f" ({parameters} parameters) device {self.device} threads {torch.get_num_threads()}"
            f" train items {len(self.train_loader.dataset)} val items {len(self.val_loader.dataset)}",
        )
        _log(log, f"provenance {json.dumps(provenance(str(self.device)))}")

    def _finish(self, log: Any) -> None:
        final = {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "config": self.config,
            "model": self.model.state_dict(),
            "provenance": provenance(str(self.device)),
        }
        _atomic_torch_save(final, self.out_dir / FINAL_FILE)
        _log(log, f"finished after epoch {self.epoch}; wrote {FINAL_FILE}")
        write_done(self.out_dir, FINAL_FILE)
        if not self.run_cfg["keep_checkpoint"]:
            # The resumable state is 3× the model's size and useless once final.pt exists.
            (self.out_dir / CHECKPOINT_FILE).unlink(missing_ok=True)


# ------------------------------------------------------------------------------- finished-run records


def write_done(out_dir: Path, final_name: str) -> None:
    """Marks a run finished: ``done`` holds the finish time and the record (size, CRC-32) of its final model
    file ``final_name``, written after that file, so a rerun can tell the weights it made from any others."""
    document = {"finished": time.strftime("%Y-%m-%d %H:%M:%S"), "final": record_file(out_dir / final_name).to_json()}
    atomic_write_text(out_dir / DONE_FILE, json.dumps(document) + "\n")


def final_record(out_dir: str | Path) -> FileRecord | None:
    """The final model's record kept in ``out_dir/done``, or None for a run without one (not finished, or
    finished by a version that wrote only the time into ``done``)."""
    try:
        document = json.loads((Path(out_dir) / DONE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return FileRecord.from_json(document.get("final")) if isinstance(document, dict) else None


def final_model_problem(out_dir: str | Path, final_name: str = FINAL_FILE) -> str | None:
    """Why the final model of the finished run in ``out_dir`` is not the file its training wrote (missing,
    truncated, replaced or edited), or None when it is. Runs finished before ``done`` held a record are
    taken as they are (their file is still checked when it is loaded)."""
    out_dir = Path(out_dir)
    if not (out_dir / DONE_FILE).exists():
        return None
    record = final_record(out_dir)
    if record is None:
        return None
    reason = mismatch(out_dir / final_name, record)
    return None if reason is None else f"final model {out_dir / final_name} is not the one its training wrote: {reason}"


# --------------------------------------------------------------------------------------------- helpers


def _check_same_config(out_dir: Path, config: Mapping[str, Any]) -> None:
    path = out_dir / CONFIG_FILE
    if not path.exists():
        return
    try:
        existing = resolve_config(read_yaml(path, what="run config") or {})
    except ValueError as error:
        raise RunDirectoryError(f"{path} cannot be used ({error}); rerun with --force to start over") from None
    differences = _differences(results_relevant(existing), results_relevant(config))
    if differences:
        raise RunDirectoryError(
            f"{path} holds a different config (differs at: {', '.join(differences)}); "
            "use another output directory or --force to start over"
        )


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = list(a) + [key for key in b if key not in a]
        return [diff for key in keys for diff in _differences(a.get(key), b.get(key), f"{path}{key}.")]
    return [] if a == b else [path.rstrip(".")]


def _truncate_metrics(path: Path, epoch: int) -> None:
    """Drops metric lines of epochs after ``epoch`` (they are recomputed after a resume)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["epoch"] <= epoch:
                kept.append(line + "\n")
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut by a kill
    atomic_write_text(path, "".join(kept))


def _json_safe(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def _log(log: Any, line: str) -> None:
    log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
    log.flush()


@contextlib.contextmanager
def _summary_writer(out_dir: Path, epoch: int) -> Iterator[Any]:
    from torch.utils.tensorboard import SummaryWriter  # slow import: only when training

    # purge_step hides events a killed run wrote after its last checkpoint.
    writer = SummaryWriter(log_dir=str(out_dir), purge_step=epoch + 1 if epoch else None)
    try:
        yield writer
    finally:
        writer.close()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": generator.get_state(),
    }


def _set_rng_state(state: Mapping[str, Any], generator: torch.Generator) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["loader"])


def _atomic_torch_save(obj: Any, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _torch_load(path: Path) -> dict[str, Any]:
    try:
        # weights_only: checkpoints hold only tensors and plain containers, so no pickled code is executed.
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to read means the same thing to the user
        raise CheckpointError(
            f"{path} is corrupt or unreadable ({type(error).__name__}: {error}). Delete it or rerun with --force."
        ) from None
    if not isinstance(content, dict):
        raise CheckpointError(f"{path} is not a checkpoint of this project (holds {type(content).__name__})")
    return content


# Public names of the checkpoint and RNG helpers, for the project's other trainers (the clustering baseline's
# classifier, experiments.cluster_classifier), so that they resume exactly like a training run without a copy.
seed_everything = _seed_everything
rng_state = _rng_state
set_rng_state = _set_rng_state
atomic_torch_save = _atomic_torch_save
load_checkpoint_file = _torch_load

__all__ = [
    "CheckpointError",
    "RunDirectoryError",
    "atomic_torch_save",
    "clear_run",
    "final_model_problem",
    "final_record",
    "load_checkpoint_file",
    "make_optimizer",
    "rng_state",
    "seed_everything",
    "set_rng_state",
    "write_done",
    "load_trained",
    "predict_points",
    "resolve_device",
    "train",
    "train_epoch",
    "train_step",
    "validate",
]
