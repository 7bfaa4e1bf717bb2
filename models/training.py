"""The training protocol: one resumable run per call in a run directory, for any task that supplies its model,
data, training epoch and validation (:class:`TrainingTask`).

The project's two trainers are tasks of it: the reconstruction networks (``models.engine.ReconstructionTask``)
and the clustering baseline's image classifier (``experiments.cluster_classifier.ClassifierTask``).

``run_training(task, out_dir)`` writes into ``out_dir``:

* ``config.yaml``: the task's config (``TrainingTask.dump_config``);
* ``metrics.jsonl``: one JSON object per epoch: ``epoch``, the task's training then validation metrics, ``lr``
  (the rate used in the epoch) and ``seconds`` (wall time of the epoch, validation included);
* ``train.log``: a header per start (what is trained, provenance), one line per epoch;
* TensorBoard events (``events.out.tfevents.*``) when ``RunOptions.tensorboard``;
* ``checkpoint.pt``: model, optimiser, scheduler, grad scaler, epoch, the config and every RNG state (python,
  numpy, torch, CUDA, the data order), written atomically every ``RunOptions.checkpoint_every`` epochs and when
  the run stops early; deleted when the run finishes unless ``RunOptions.keep_checkpoint``;
* the final model (``TrainingTask.final_file``, by default ``final.pt``): the trained weights with the config and
  provenance;
* ``done``: written last; it holds the final model's file record (:func:`write_done`).

The protocol: one process at a time owns a run directory (``dispersion_score.locks.directory_lock``); a
finished run is skipped when its config is the same and its final model is the file its training wrote (trained
again when that file was damaged), refused when its config differs (:class:`RunDirectoryError`) unless
``force``; an unfinished run resumes from ``checkpoint.pt`` (on CPU, with the same thread count, bit-identical to
an uninterrupted run) when the config is the same. Nothing is written before the task has built its model and
data, so a start refused for a bad setting leaves nothing that blocks the corrected command.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from dispersion_score.artefact import FileRecord, mismatch, record_file
from dispersion_score.io import atomic_write_bytes, atomic_write_text, provenance
from dispersion_score.locks import directory_lock
from models.config import read_yaml

CONFIG_FILE, METRICS_FILE, LOG_FILE = "config.yaml", "metrics.jsonl", "train.log"
CHECKPOINT_FILE, FINAL_FILE, DONE_FILE = "checkpoint.pt", "final.pt", "done"
_STEP_BAR_MIN_STEPS = 20


class CheckpointError(RuntimeError):
    """A checkpoint or final model file that cannot be used (corrupt, from another config or model)."""


class RunDirectoryError(ValueError):
    """A run directory that holds a different run (its config differs) or that is a file."""


@dataclass(frozen=True)
class RunOptions:
    """How a run proceeds; none of it changes the trained weights.

    Attributes:
        epochs: epochs of the whole run (>= 1).
        checkpoint_every: write ``checkpoint.pt`` every this many epochs (>= 1).
        stop_after_epochs: stop (resumably) after this many epochs in total; None runs to the end.
        keep_checkpoint: keep ``checkpoint.pt`` after the run finishes.
        progress: progress bars on stderr when it is a terminal.
        echo: print each epoch's log line to stdout when there is no progress bar (e.g. output to a job log).
        tensorboard: write TensorBoard events of ``TrainingTask.scalars``.
    """

    epochs: int
    checkpoint_every: int
    stop_after_epochs: int | None = None
    keep_checkpoint: bool = False
    progress: bool = True
    echo: bool = False
    tensorboard: bool = False


class TrainingTask(ABC):
    """What one kind of training supplies to :func:`run_training`.

    A task is made cheaply from its config (nothing built); :meth:`build` then makes the model, optimiser,
    scheduler and data, and sets the attributes below. The protocol owns everything else: the run directory,
    the order of the epoch (training epoch, scheduler step, validation), checkpoints, metrics, logs and records.
    """

    #: what the directory holds, for lock messages ("training run")
    what: ClassVar[str]
    #: what is trained again when its final model was damaged ("run")
    noun: ClassVar[str]
    #: the final model's file name in the run directory
    final_file: ClassVar[str] = FINAL_FILE
    #: the ``format`` entry of its checkpoint and final model files
    checkpoint_format: ClassVar[str]
    #: the key of the config inside its checkpoint and final model files
    config_key: ClassVar[str] = "config"
    #: how the caller starts over, for messages ("--force")
    force_option: ClassVar[str] = "--force"
    #: how the caller stops a run early, for the log ("run.stop_after_epochs")
    stop_option: ClassVar[str] = "stop_after_epochs"
    #: print a line when a finished run is skipped
    announce_skip: ClassVar[bool] = True
    #: the training metric shown by the progress bar
    loss_key: ClassVar[str]
    #: prefix of the progress bar's label (the run directory's name)
    bar_prefix: ClassVar[str] = ""

    config: dict[str, Any]
    device: torch.device
    options: RunOptions
    # Set by build():
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None = None
    generator: torch.Generator
    train_loader: DataLoader

    @abstractmethod
    def normalise(self, config: Any) -> dict[str, Any]:
        """A stored config (read from ``config.yaml`` or a checkpoint) in the form ``self.config`` has.

        Raises:
            ValueError: it is not a config of this task.
        """

    @abstractmethod
    def relevant(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The part of a config that must match to resume or to skip a finished run."""

    @abstractmethod
    def dump_config(self) -> str:
        """The text of ``config.yaml``."""

    @abstractmethod
    def build(self) -> None:
        """Seeds the RNGs and makes ``model``, ``optimizer``, ``scheduler``, ``scaler``, ``generator`` (the data
        order's RNG) and ``train_loader``; may refuse (ValueError, OSError) before anything is written."""

    @abstractmethod
    def train_epoch(self, batches: Iterable[Any]) -> dict[str, float]:
        """One pass over ``batches`` (``train_loader``, maybe wrapped in a progress bar); its metrics by name."""

    def validate(self, epoch: int) -> dict[str, float | None]:
        """The validation metrics after ``epoch`` (1-based), None values in epochs without validation."""
        return {}

    @abstractmethod
    def epoch_line(self, record: Mapping[str, Any]) -> str:
        """The log line of an epoch's metrics record."""

    @abstractmethod
    def describe(self) -> str:
        """What is trained, for the header of ``train.log``."""

    def scalars(self, record: Mapping[str, Any]) -> dict[str, float]:
        """TensorBoard scalars (tag: value) of an epoch's metrics record."""
        return {}

    def final_extras(self, last: Mapping[str, Any] | None) -> dict[str, Any]:
        """Entries of the final model file besides format, epoch, config, model and provenance, from the last
        epoch's metrics record (None when there is none)."""
        return {}


# ---------------------------------------------------------------------------------------------- public


def run_training(task: TrainingTask, out_dir: str | Path, *, force: bool = False) -> Path:
    """Trains ``task`` in ``out_dir`` (or finishes an interrupted run, or skips a finished one).

    Args:
        task: the task, not yet built.
        out_dir: the run directory (created if missing).
        force: start over even when ``out_dir`` holds a finished run or a run with another config (the run's
            own files are deleted; other files in ``out_dir``, e.g. a sweep's job log, are kept).

    Returns:
        ``out_dir`` as a Path. It holds ``done`` unless ``task.options.stop_after_epochs`` stopped the run early.

    Raises:
        RunDirectoryError: ``out_dir`` holds a different config (and not ``force``), or is a file.
        DirectoryLockedError: another process is training in ``out_dir`` (the message names its pid, host
            and start time).
        CheckpointError: ``out_dir/checkpoint.pt`` is corrupt or incompatible (the message names it).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirectoryError(f"run directory {out_dir} is a file, not a directory")
    with directory_lock(out_dir, what=task.what):
        if not force and (out_dir / DONE_FILE).exists():
            _check_same_config(task, out_dir)
            problem = final_model_problem(out_dir, task.final_file)
            if problem is None:
                if task.announce_skip:
                    use = f"Use {task.force_option} to train again."
                    print(f"{out_dir}: finished run (found {DONE_FILE}); skipping. {use}")
                return out_dir
            # The weights of a finished run are the only copy (its checkpoint is gone): train it again.
            print(f"{out_dir}: {problem}; training the {task.noun} again", file=sys.stderr)
            force = True
        if not force:
            _check_same_config(task, out_dir)
        task.build()  # may still refuse
        if force:
            clear_run(out_dir, task.final_file)
        atomic_write_text(out_dir / CONFIG_FILE, task.dump_config())
        return _Run(task, out_dir).execute()


def make_optimizer(
    model: torch.nn.Module, train: Mapping[str, Any]
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.MultiStepLR]:
    """Adam (``train["lr"]``, ``train["weight_decay"]``) and a MultiStepLR multiplying the rate by
    ``train["gamma"]`` after each epoch in ``train["milestones"]``.

    The fused Adam kernel does the same update as the default one in a single pass over the parameters
    (about 3× faster per step on CPU for ResNet-18's 11 M parameters).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=train["lr"], weight_decay=train["weight_decay"], fused=True)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=train["milestones"], gamma=train["gamma"])
    return optimizer, scheduler


def clear_run(out_dir: Path, final_file: str = FINAL_FILE) -> None:
    """Deletes the files :func:`run_training` writes into ``out_dir`` (and nothing else); ``final_file`` names
    the final model."""
    if not out_dir.is_dir():
        return
    for name in (DONE_FILE, final_file, CHECKPOINT_FILE, METRICS_FILE, LOG_FILE, CONFIG_FILE):
        (out_dir / name).unlink(missing_ok=True)
    for events in out_dir.glob("events.out.tfevents.*"):
        events.unlink()


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
    """Why the final model ``final_name`` of the finished run in ``out_dir`` is not the file its training wrote
    (missing, truncated, replaced or edited), or None when it is. Runs finished before ``done`` held a record
    are taken as they are (their file is still checked when it is loaded)."""
    out_dir = Path(out_dir)
    if not (out_dir / DONE_FILE).exists():
        return None
    record = final_record(out_dir)
    if record is None:
        return None
    reason = mismatch(out_dir / final_name, record)
    return None if reason is None else f"final model {out_dir / final_name} is not the one its training wrote: {reason}"


# ------------------------------------------------------------------------------------------ run state


class _Run:
    """A built task in its run directory; ``execute`` trains from the checkpoint (or from scratch) to the end."""

    def __init__(self, task: TrainingTask, out_dir: Path) -> None:
        self.task, self.out_dir, self.options = task, out_dir, task.options
        self.epoch = 0
        self.last: dict[str, Any] | None = None  # the latest epoch's metrics record

    def state(self) -> dict[str, Any]:
        task = self.task
        return {
            "format": task.checkpoint_format,
            "epoch": self.epoch,
            task.config_key: task.config,
            "model": task.model.state_dict(),
            "optimizer": task.optimizer.state_dict(),
            "scheduler": task.scheduler.state_dict(),
            "scaler": task.scaler.state_dict() if task.scaler is not None else None,
            "rng": rng_state(task.generator),
        }

    def load_checkpoint(self, path: Path) -> None:
        task = self.task
        content = load_checkpoint_file(path)
        try:
            if content.get("format") != task.checkpoint_format:
                raise ValueError(f"format {content.get('format')!r}, expected {task.checkpoint_format!r}")
            if task.relevant(task.normalise(content[task.config_key])) != task.relevant(task.config):
                raise ValueError("it was written by a run with a different config")
            task.model.load_state_dict(content["model"])
            task.optimizer.load_state_dict(content["optimizer"])
            task.scheduler.load_state_dict(content["scheduler"])
            if task.scaler is not None and content.get("scaler") is not None:
                task.scaler.load_state_dict(content["scaler"])
            set_rng_state(content["rng"], task.generator)
            self.epoch = int(content["epoch"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            raise CheckpointError(
                f"{path} is incompatible with this run: {error}. Delete it or rerun with {task.force_option}."
            ) from None

    def execute(self) -> Path:
        checkpoint = self.out_dir / CHECKPOINT_FILE
        resumed = checkpoint.exists()
        if resumed:
            self.load_checkpoint(checkpoint)
        else:  # a fresh start: events of an attempt killed before its first checkpoint are stale
            for events in self.out_dir.glob("events.out.tfevents.*"):
                events.unlink()
        kept = _truncate_metrics(self.out_dir / METRICS_FILE, self.epoch)
        self.last = kept[-1] if kept else None
        epochs, options = self.options.epochs, self.options
        stop_at = min(epochs, options.stop_after_epochs or epochs)
        writer_context = _summary_writer(self.out_dir, self.epoch) if options.tensorboard else contextlib.nullcontext()
        with open(self.out_dir / LOG_FILE, "a") as log, writer_context as writer:
            self._log_header(log, resumed)
            label = f"{self.task.bar_prefix}{self.out_dir.name}"
            progress = tqdm(total=epochs, initial=self.epoch, desc=label, unit="epoch", disable=self._no_bar())
            with progress:
                while self.epoch < stop_at:
                    record = self._one_epoch()
                    self._write_epoch(record, log, writer, echo=options.echo and progress.disable)
                    progress.set_postfix(loss=f"{record[self.task.loss_key]:.4g}", refresh=False)
                    progress.update(1)
                    # A run that finishes now writes its final model and deletes checkpoint.pt (unless kept): a
                    # checkpoint of the last epoch would be written only to be deleted (docs/training_speed.md).
                    finishing = self.epoch == epochs and not options.keep_checkpoint
                    if (self.epoch % options.checkpoint_every == 0 or self.epoch == stop_at) and not finishing:
                        atomic_torch_save(self.state(), checkpoint)
            if self.epoch < epochs:
                _log(log, f"stopped after epoch {self.epoch} ({self.task.stop_option}); rerun to resume")
                return self.out_dir
            self._finish(log)
        return self.out_dir

    def _one_epoch(self) -> dict[str, Any]:
        task = self.task
        started = time.perf_counter()
        lr = task.optimizer.param_groups[0]["lr"]
        batches: Iterable[Any] = task.train_loader
        if len(task.train_loader) >= _STEP_BAR_MIN_STEPS and not self._no_bar():
            batches = tqdm(task.train_loader, desc=f"epoch {self.epoch + 1}", leave=False, unit="step")
        trained = task.train_epoch(batches)
        task.scheduler.step()
        self.epoch += 1
        validation = task.validate(self.epoch)
        self.last = {"epoch": self.epoch, **trained, **validation, "lr": lr, "seconds": time.perf_counter() - started}
        return self.last

    def _no_bar(self) -> bool:
        return not (self.options.progress and sys.stderr.isatty())

    def _write_epoch(self, record: dict[str, Any], log: Any, writer: Any, *, echo: bool) -> None:
        with open(self.out_dir / METRICS_FILE, "a") as metrics:
            metrics.write(json.dumps(_json_safe(record)) + "\n")
        if writer is not None:
            for tag, value in self.task.scalars(record).items():
                writer.add_scalar(tag, value, record["epoch"])
        line = self.task.epoch_line(record)
        _log(log, line)
        if echo:
            print(line, flush=True)

    def _log_header(self, log: Any, resumed: bool) -> None:
        start = f"resumed after epoch {self.epoch}" if resumed else "started"
        _log(log, f"{start}: {self.task.describe()}")
        _log(log, f"provenance {json.dumps(provenance(str(self.task.device)))}")

    def _finish(self, log: Any) -> None:
        task = self.task
        final = {
            "format": task.checkpoint_format,
            "epoch": self.epoch,
            task.config_key: task.config,
            "model": task.model.state_dict(),
            **task.final_extras(self.last),
            "provenance": provenance(str(task.device)),
        }
        atomic_torch_save(final, self.out_dir / task.final_file)
        _log(log, f"finished after epoch {self.epoch}; wrote {task.final_file}")
        write_done(self.out_dir, task.final_file)
        if not self.options.keep_checkpoint:
            # The resumable state is 3× the model's size and useless once the final model exists.
            (self.out_dir / CHECKPOINT_FILE).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- helpers


def _check_same_config(task: TrainingTask, out_dir: Path) -> None:
    found = _stored_config(task, out_dir)
    if found is None:
        return
    path, stored = found
    differences = _differences(task.relevant(stored), task.relevant(task.config))
    if differences:
        raise RunDirectoryError(
            f"{path} holds a different config (differs at: {', '.join(differences)}); "
            f"use another output directory or {task.force_option} to start over"
        )


def _stored_config(task: TrainingTask, out_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The config of the run in ``out_dir`` and the file it comes from: its ``config.yaml``; for a run finished
    without one (the classifier's, before it followed this protocol) the config inside its intact final model;
    None for neither."""
    path, final = out_dir / CONFIG_FILE, out_dir / task.final_file
    try:
        if path.exists():
            return path, task.normalise(read_yaml(path, what="run config") or {})
        if (out_dir / DONE_FILE).exists() and final.is_file() and final_model_problem(out_dir, task.final_file) is None:
            path = final
            return path, task.normalise(load_checkpoint_file(final).get(task.config_key))
    except ValueError as error:
        raise RunDirectoryError(
            f"{path} cannot be used ({error}); rerun with {task.force_option} to start over"
        ) from None
    return None


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = list(a) + [key for key in b if key not in a]
        return [diff for key in keys for diff in _differences(a.get(key), b.get(key), f"{path}{key}.")]
    return [] if a == b else [path.rstrip(".")]


def _truncate_metrics(path: Path, epoch: int) -> list[dict[str, Any]]:
    """Drops metric lines of epochs after ``epoch`` (they are recomputed after a resume); returns the kept
    records."""
    if not path.exists():
        return []
    kept: list[tuple[str, dict[str, Any]]] = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            if record["epoch"] <= epoch:
                kept.append((line + "\n", record))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut by a kill
    atomic_write_text(path, "".join(line for line, _ in kept))
    return [record for _, record in kept]


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


# ----------------------------------------------------------------------------- RNG and file helpers


def seed_everything(seed: int) -> None:
    """Seeds python's, numpy's and torch's global RNGs with ``seed`` (numpy's with ``seed mod 2**32``)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` of a DataLoader: seeds python's and numpy's RNGs of worker ``worker_id`` from the
    torch seed the loader gave it (so a worker's random draws follow the loader's generator)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state a run depends on (python, numpy, torch, CUDA and the data order's ``generator``), as
    tensors and plain values that ``torch.load(weights_only=True)`` reads back."""
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


def set_rng_state(state: Mapping[str, Any], generator: torch.Generator) -> None:
    """Restores the states :func:`rng_state` returned (CUDA's only on as many devices as were saved).

    Raises:
        KeyError, TypeError, ValueError, RuntimeError: ``state`` is not such a record.
    """
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


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically (a reader sees the old file or the whole new one)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """The dict of a checkpoint or final model file (tensors on the CPU).

    Raises:
        CheckpointError: the file is unreadable, corrupt or holds no dict (the message names it).
    """
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


__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "DONE_FILE",
    "FINAL_FILE",
    "LOG_FILE",
    "METRICS_FILE",
    "CheckpointError",
    "RunDirectoryError",
    "RunOptions",
    "TrainingTask",
    "atomic_torch_save",
    "clear_run",
    "final_model_problem",
    "final_record",
    "load_checkpoint_file",
    "make_optimizer",
    "rng_state",
    "run_training",
    "seed_everything",
    "seed_worker",
    "set_rng_state",
    "write_done",
]
