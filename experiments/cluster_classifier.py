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

Files of a classifier folder (:func:`train_classifier`):

* ``checkpoint.pt``: model, optimiser, scheduler, epoch, every RNG state and the settings, written atomically every
  ``checkpoint_every`` epochs and when a run stops early; deleted when training finishes;
* ``train.log``: one line per epoch (mean cross-entropy, training accuracy);
* ``classifier.pt``: the final weights with the settings and provenance; ``done`` is written last.

Rerunning an unfinished folder resumes from ``checkpoint.pt`` (on CPU with the same thread count the result is
bit-identical to an uninterrupted run); a folder holding other settings is refused.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dataset.contract import DatasetSplit
from dispersion_score.io import provenance
from dispersion_score.perceptual import IMAGENET_MEAN, IMAGENET_STD
from models.engine import (
    CheckpointError,
    atomic_torch_save,
    final_model_problem,
    load_checkpoint_file,
    make_optimizer,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
    write_done,
)

CLASSIFIER_FORMAT = "dispersion-score-classifier/1"
CHECKPOINT_FILE, FINAL_FILE, DONE_FILE, LOG_FILE = "checkpoint.pt", "classifier.pt", "done", "train.log"
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
) -> Path:
    """Trains (or finishes training) an image → cluster classifier in ``out_dir``; returns ``out_dir``.

    Args:
        out_dir: the classifier folder (created if missing; see the module docstring).
        dataset: the training items (images).
        labels: (N,) int cluster label of each item, in [0, num_classes).
        settings: ``baselines.classifier`` of the preset (arch, weights, epochs, batch_size, lr, weight_decay,
            milestones, gamma, seed, checkpoint_every, num_workers) plus ``num_classes`` and anything that
            identifies the task (e.g. the matrix the labels come from). Everything but ``checkpoint_every`` and
            ``num_workers`` must match to resume.
        device: "cpu", "cuda" or "cuda:N".
        stop_after_epochs: stop (resumably) after this many epochs in total; for tests and debugging.

    Raises:
        CheckpointError: the folder holds a classifier or checkpoint with other settings, or a corrupt file.
        ValueError: fewer than two items, or labels outside [0, num_classes).
    """
    out_dir = Path(out_dir)
    settings = dict(settings)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) < 2:
        raise ValueError(f"the classifier needs at least 2 training items, got {len(labels)}")
    if labels.min() < 0 or labels.max() >= settings["num_classes"]:
        raise ValueError(f"labels must lie in [0, {settings['num_classes']}), got [{labels.min()}, {labels.max()}]")
    if (out_dir / DONE_FILE).exists():
        problem = final_model_problem(out_dir, FINAL_FILE)
        if problem is None:
            _check_settings(load_checkpoint_file(out_dir / FINAL_FILE), settings, out_dir / FINAL_FILE)
            return out_dir
        # The only copy of the trained weights is damaged (its checkpoint is gone): train it again.
        print(f"{problem}; training the classifier again", file=sys.stderr)
        (out_dir / DONE_FILE).unlink()
        (out_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch_device = resolve_device(device)
    seed_everything(settings["seed"])
    model = build_classifier(settings["arch"], settings["weights"], settings["num_classes"], seed=settings["seed"])
    model = model.to(torch_device)
    optimizer, scheduler = make_optimizer(model, settings)
    generator = torch.Generator().manual_seed(settings["seed"])
    batch = settings["batch_size"]
    loader = DataLoader(
        LabelledImages(dataset, labels),
        batch_size=batch,
        shuffle=True,
        generator=generator,
        num_workers=settings["num_workers"],
        # BatchNorm cannot train on a batch of one image.
        drop_last=len(labels) % batch == 1,
        pin_memory=torch_device.type == "cuda",
    )
    start = 0
    checkpoint = out_dir / CHECKPOINT_FILE
    if checkpoint.exists():
        content = load_checkpoint_file(checkpoint)
        _check_settings(content, settings, checkpoint)
        model.load_state_dict(content["model"])
        optimizer.load_state_dict(content["optimizer"])
        scheduler.load_state_dict(content["scheduler"])
        set_rng_state(content["rng"], generator)
        start = int(content["epoch"])
    epochs = settings["epochs"]
    stop_at = min(epochs, stop_after_epochs or epochs)
    with open(out_dir / LOG_FILE, "a") as log:
        _log(log, f"{'resumed after epoch ' + str(start) if start else 'started'}: {len(labels)} images, "
                  f"{settings['num_classes']} classes, {weights_label(settings['arch'], settings['weights'])}, "
                  f"device {torch_device}")  # fmt: skip
        accuracy = float("nan")
        for epoch in tqdm(range(start, stop_at), desc=f"classifier {out_dir.name}", unit="epoch", disable=None):
            loss, accuracy = _train_epoch(model, loader, optimizer, torch_device)
            scheduler.step()
            _log(log, f"epoch {epoch + 1}/{epochs} cross_entropy {loss:.5g} train_accuracy {accuracy:.4f}")
            if (epoch + 1) % settings["checkpoint_every"] == 0 or epoch + 1 == stop_at:
                state = {
                    "format": CLASSIFIER_FORMAT,
                    "settings": settings,
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rng_state(generator),
                }
                atomic_torch_save(state, checkpoint)
        if stop_at < epochs:
            _log(log, f"stopped after epoch {stop_at}; rerun to resume")
            return out_dir
        final = {
            "format": CLASSIFIER_FORMAT,
            "settings": settings,
            "epoch": epochs,
            "model": model.state_dict(),
            "train_accuracy": accuracy,
            "provenance": provenance(str(torch_device)),
        }
        atomic_torch_save(final, out_dir / FINAL_FILE)
        _log(log, f"finished; wrote {FINAL_FILE}")
    write_done(out_dir, FINAL_FILE)
    checkpoint.unlink(missing_ok=True)
    return out_dir


def _train_epoch(
    model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, device: torch.device
) -> tuple[float, float]:
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    for images, labels in loader:
        images, labels = _normalised(images.to(device)), labels.to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(images)
        loss = nn.functional.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum()
        count += len(labels)
    return float(total) / max(count, 1), float(correct) / max(count, 1)


_RESUME_FREE = ("checkpoint_every", "num_workers")


def _check_settings(content: Mapping[str, Any], settings: Mapping[str, Any], path: Path) -> None:
    if content.get("format") != CLASSIFIER_FORMAT:
        raise CheckpointError(f"{path} is not a classifier file of this project (format {content.get('format')!r})")
    stored = {k: v for k, v in dict(content.get("settings", {})).items() if k not in _RESUME_FREE}
    wanted = {k: v for k, v in settings.items() if k not in _RESUME_FREE}
    if stored != wanted:
        differing = sorted(key for key in set(stored) | set(wanted) if stored.get(key) != wanted.get(key))
        raise CheckpointError(
            f"{path} was written with other classifier settings (differs at: {', '.join(differing)}); "
            f"delete {path.parent} to train again"
        )


def _log(log: Any, line: str) -> None:
    log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
    log.flush()


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
