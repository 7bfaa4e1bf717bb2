"""The image classifier of the clustering baseline: image → cluster label, trained with cross-entropy, resumably.

Architectures (``baselines.classifier.arch`` of a preset): torchvision ResNet-50 or ResNet-18 whose final layer is
replaced by a k-way linear layer (initialised from ``seed``). Weights (``baselines.classifier.weights``):

* ``imagenet``: torchvision's IMAGENET1K_V1 file from the torch hub cache (``$TORCH_HOME/hub/checkpoints``,
  e.g. ``resnet50-0676ba61.pth``), the same mechanism :mod:`dispersion_score.perceptual` uses for VGG16. Nothing
  is downloaded: a missing file is an error that names the file, its URL and where to put it;
* a torchvision weights name (``IMAGENET1K_V2``) or a path to a state-dict file of the architecture;
* ``none``: torchvision's random initialisation (labelled ``scratch``).

Inputs: the dataset's images (``image(i)`` when the dataset has it, else ``dataset[i]["image"]``; (3, H, W) RGB in
[0, 1], exactly what the networks see), normalised with the ImageNet mean and std; no augmentation.

Training (:func:`train_classifier`) is a task of the project's training protocol (``models.training``, the one the
reconstruction networks follow): one process at a time per folder (the run lock), a resumable ``checkpoint.pt``
(model, optimiser, scheduler, epoch, every RNG state and the settings, written atomically every
``checkpoint_every`` epochs and when a run stops early; deleted when training finishes), ``config.yaml`` (the
settings), ``metrics.jsonl`` (per epoch: ``cross_entropy``, ``train_accuracy``, ``lr``, ``seconds``), ``train.log``,
``classifier.pt`` (the final weights with the settings, the last epoch's training accuracy and provenance) and
``done`` (last, with the record of ``classifier.pt``).

Rerunning an unfinished folder resumes from ``checkpoint.pt`` (on CPU with the same thread count the result is
bit-identical to an uninterrupted run); a finished folder is reused when its settings are the same, trained again
when its ``classifier.pt`` was damaged, and refused (``RunDirectoryError``) when they differ, unless ``force``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dataset.contract import DatasetSplit
from dispersion_score import resolve_device
from dispersion_score.perceptual import IMAGENET_MEAN, IMAGENET_STD
from models.config import dump_config
from models.training import (
    DONE_FILE,
    CheckpointError,
    RunOptions,
    TrainingTask,
    final_model_problem,
    load_checkpoint_file,
    make_optimizer,
    run_training,
    seed_everything,
)

CLASSIFIER_FORMAT = "dispersion-score-classifier/1"
FINAL_FILE = "classifier.pt"
NO_WEIGHTS = "none"


# ------------------------------------------------------------------------------------------- networks


def _builders(arch: str) -> tuple[Any, Any]:
    from torchvision import models  # late: torchvision takes about a second to import

    table = {
        "resnet50": (models.resnet50, models.ResNet50_Weights),
        "resnet18": (models.resnet18, models.ResNet18_Weights),
    }
    if arch not in table:
        raise ValueError(f"classifier arch must be one of {sorted(table)}, got {arch!r}")
    return table[arch]


def _weights_source(arch: str, weights: str) -> tuple[str, Any]:
    """("none", None), ("enum", torchvision weights enum) or ("file", Path)."""
    _, enum = _builders(arch)
    if weights == NO_WEIGHTS:
        return "none", None
    if weights == "imagenet":
        return "enum", enum.IMAGENET1K_V1
    if weights in enum.__members__:
        return "enum", enum[weights]
    return "file", Path(weights).expanduser()


def weights_label(arch: str, weights: str) -> str:
    """Names the classifier for tables: ``resnet50[imagenet1k_v1]``, ``resnet18[scratch]``, ``resnet50[file:x.pth]``."""
    kind, value = _weights_source(arch, weights)
    if kind == "none":
        return f"{arch}[scratch]"
    return f"{arch}[{value.name.lower() if kind == 'enum' else 'file:' + Path(value).name}]"


def cached_weights_file(enum: Any) -> Path:
    """Where torchvision's ``load_state_dict_from_url`` keeps the file of a weights enum (never fetched here)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(enum.url).path)


def _read_weights(arch: str, weights: str) -> dict[str, torch.Tensor] | None:
    kind, value = _weights_source(arch, weights)
    if kind == "none":
        return None
    path = cached_weights_file(value) if kind == "enum" else value
    if not path.is_file():
        if kind == "enum":
            raise FileNotFoundError(
                f"{arch} weights {value} not found at {path}; nothing is downloaded here. Copy {path.name} (from "
                f"{value.url}) into {path.parent} (the torch hub cache; TORCH_HOME selects another), or set "
                f"baselines.classifier.weights to the file's path, or to 'none' for a classifier trained from scratch"
            )
        raise FileNotFoundError(f"classifier weights file not found: {path} (baselines.classifier.weights)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch.load raises many types for unreadable files
        raise ValueError(f"could not read classifier weights {path}: {type(error).__name__}: {error}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"classifier weights {path} do not hold a state dict (a dict of tensors)")
    return {key.removeprefix("module."): tensor for key, tensor in state.items()}


def build_classifier(arch: str, weights: str, num_classes: int, *, seed: int) -> nn.Module:
    """A torchvision ResNet with the given weights and a new ``num_classes``-way ``fc`` layer (CPU, train mode).

    Args:
        arch: "resnet50" or "resnet18".
        weights: "imagenet", a torchvision weights name of ``arch``, a state-dict file, or "none".
        num_classes: outputs of the new final layer (k >= 1).
        seed: seed of the random initialisation (the whole network for "none", the new layer otherwise).

    Raises:
        FileNotFoundError: the weights file is missing (the message says where to put it).
        ValueError: unknown arch, or a weights file that is not a state dict of ``arch``.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    builder, _ = _builders(arch)
    state = _read_weights(arch, weights)
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        network = builder(weights=None)
        if state is not None:
            try:
                network.load_state_dict(state)
            except RuntimeError as error:
                message = " ".join(str(error).split())[:300]
                raise ValueError(f"classifier weights ({weights}) are not a torchvision {arch}: {message}") from None
        network.fc = nn.Linear(network.fc.in_features, num_classes)
    finally:
        torch.set_rng_state(generator_state)
    return network


def _normalised(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


class LabelledImages(Dataset):
    """(image, label) pairs of a dataset's items (read with the contract's ``image(i)``), labels given."""

    def __init__(self, dataset: DatasetSplit, labels: np.ndarray | None = None) -> None:
        self.dataset = dataset
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        if self.labels is not None and len(self.labels) != len(dataset):
            raise ValueError(f"{len(self.labels)} labels for {len(dataset)} items")

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.dataset.image(index)
        return image, -1 if self.labels is None else int(self.labels[index])


# ------------------------------------------------------------------------------------------- training


def train_classifier(
    out_dir: str | Path,
    dataset: DatasetSplit,
    labels: np.ndarray,
    settings: Mapping[str, Any],
    *,
    device: str = "cpu",
    stop_after_epochs: int | None = None,
    force: bool = False,
) -> Path:
    """Trains (or finishes training) an image → cluster classifier in ``out_dir``; returns ``out_dir``.

    Args:
        out_dir: the classifier folder (created if missing; see the module docstring).
        dataset: the training items (images).
        labels: (N,) int cluster label of each item, in [0, num_classes).
        settings: ``baselines.classifier`` of the preset (arch, weights, epochs, batch_size, lr, weight_decay,
            milestones, gamma, seed, checkpoint_every, num_workers) plus ``num_classes`` and anything that
            identifies the task (e.g. the matrix the labels come from): plain values (str, int, float, lists,
            mappings). Everything but ``checkpoint_every`` and ``num_workers`` must match to resume or to reuse
            a finished classifier.
        device: "cpu", "cuda" or "cuda:N".
        stop_after_epochs: stop (resumably) after this many epochs in total; for tests and debugging.
        force: start over even when the folder holds a finished classifier or one with other settings.

    Raises:
        RunDirectoryError: the folder holds a classifier with other settings (and not ``force``).
        DirectoryLockedError: another process is training in the folder.
        CheckpointError: the folder's checkpoint is corrupt or from other settings.
        ValueError: fewer than two items, or labels outside [0, num_classes).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) < 2:
        raise ValueError(f"the classifier needs at least 2 training items, got {len(labels)}")
    if labels.min() < 0 or labels.max() >= settings["num_classes"]:
        raise ValueError(f"labels must lie in [0, {settings['num_classes']}), got [{labels.min()}, {labels.max()}]")
    task = ClassifierTask(dataset, labels, settings, device=device, stop_after_epochs=stop_after_epochs)
    return run_training(task, out_dir, force=force)


# Settings that may change between the starts of one classifier: they do not change its weights.
_RESUME_FREE = ("checkpoint_every", "num_workers")


class ClassifierTask(TrainingTask):
    """The classifier as a task of the training protocol (``models.training``): cross-entropy on the training
    images' cluster labels; no validation (the baseline scores its predictions on the test split).

    Args:
        dataset: the training items (images).
        labels: (N,) int64 cluster label of each item.
        settings: see :func:`train_classifier`.
        device: "cpu", "cuda" or "cuda:N".
        stop_after_epochs: stop (resumably) after this many epochs in total.
    """

    what = "classifier training"
    noun = "classifier"
    final_file = FINAL_FILE
    checkpoint_format = CLASSIFIER_FORMAT
    config_key = "settings"
    force_option = "force=True"
    announce_skip = False  # the baseline reuses its classifier silently
    loss_key = "cross_entropy"
    bar_prefix = "classifier "

    def __init__(
        self,
        dataset: Dataset,
        labels: np.ndarray,
        settings: Mapping[str, Any],
        *,
        device: str = "cpu",
        stop_after_epochs: int | None = None,
    ) -> None:
        self.dataset, self.labels = dataset, labels
        self.config = self.normalise(settings)
        self.device = resolve_device(device)
        self.options = RunOptions(
            epochs=self.config["epochs"],
            checkpoint_every=self.config["checkpoint_every"],
            stop_after_epochs=stop_after_epochs,
        )

    def normalise(self, config: Any) -> dict[str, Any]:
        if not isinstance(config, Mapping):
            raise ValueError(f"classifier settings must be a mapping, got {type(config).__name__}")
        # Through JSON: tuples become lists and numpy scalars numbers, as they come back from config.yaml.
        return json.loads(json.dumps(dict(config), default=_plain))

    def relevant(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in config.items() if key not in _RESUME_FREE}

    def dump_config(self) -> str:
        return dump_config(self.config)

    def build(self) -> None:
        settings = self.config
        seed_everything(settings["seed"])
        model = build_classifier(settings["arch"], settings["weights"], settings["num_classes"], seed=settings["seed"])
        self.model = model.to(self.device)
        self.optimizer, self.scheduler = make_optimizer(self.model, settings)
        self.generator = torch.Generator().manual_seed(settings["seed"])
        batch = settings["batch_size"]
        self.train_loader = DataLoader(
            LabelledImages(self.dataset, self.labels),
            batch_size=batch,
            shuffle=True,
            generator=self.generator,
            num_workers=settings["num_workers"],
            # BatchNorm cannot train on a batch of one image.
            drop_last=len(self.labels) % batch == 1,
            pin_memory=self.device.type == "cuda",
        )

    def train_epoch(self, batches: Iterable[Any]) -> dict[str, float]:
        model, optimizer, device = self.model, self.optimizer, self.device
        model.train()
        total = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        count = 0
        for images, labels in batches:
            images, labels = _normalised(images.to(device)), labels.to(device)
            optimizer.zero_grad(set_to_none=True)
            logits = model(images)
            loss = nn.functional.cross_entropy(logits, labels)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum()
            count += len(labels)
        return {"cross_entropy": float(total) / max(count, 1), "train_accuracy": float(correct) / max(count, 1)}

    def epoch_line(self, record: Mapping[str, Any]) -> str:
        return (
            f"epoch {record['epoch']}/{self.options.epochs} cross_entropy {record['cross_entropy']:.5g}"
            f" train_accuracy {record['train_accuracy']:.4f}"
        )

    def describe(self) -> str:
        settings = self.config
        return (
            f"{len(self.labels)} images, {settings['num_classes']} classes, "
            f"{weights_label(settings['arch'], settings['weights'])}, device {self.device}"
        )

    def final_extras(self, last: Mapping[str, Any] | None) -> dict[str, Any]:
        return {"train_accuracy": float("nan") if last is None else last["train_accuracy"]}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"classifier settings hold a {type(value).__name__}; use plain values (str, int, float, list)")


# ------------------------------------------------------------------------------------------- inference


def load_classifier(out_dir: str | Path, *, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The trained classifier of a finished folder (eval mode, on ``device``) and its settings."""
    path = Path(out_dir) / FINAL_FILE
    if not (Path(out_dir) / DONE_FILE).exists():
        raise FileNotFoundError(f"{out_dir} holds no finished classifier (no {DONE_FILE})")
    problem = final_model_problem(out_dir, FINAL_FILE)
    if problem is not None:
        raise CheckpointError(f"{problem}; rerun to train it again")
    content = load_checkpoint_file(path)
    settings = dict(content["settings"])
    model = build_classifier(settings["arch"], NO_WEIGHTS, settings["num_classes"], seed=settings["seed"])
    model.load_state_dict(content["model"])
    return model.to(resolve_device(device)).eval(), {**settings, "train_accuracy": content.get("train_accuracy")}


@torch.no_grad()
def classify(model: nn.Module, dataset: DatasetSplit, *, device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """(N,) int64 predicted class of every item's image, in item order."""
    torch_device = resolve_device(device)
    model = model.to(torch_device).eval()
    loader = DataLoader(LabelledImages(dataset), batch_size=batch_size, shuffle=False)
    labels = [model(_normalised(images.to(torch_device))).argmax(dim=1).cpu() for images, _ in loader]
    return torch.cat(labels).numpy().astype(np.int64) if labels else np.zeros(0, dtype=np.int64)
