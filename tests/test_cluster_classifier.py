"""The clustering baseline's image classifier: learns a separable task, resumes bit-identically, follows the
training protocol (run lock; a finished classifier is reused, refused for other settings unless forced, trained
again when damaged), and reads weights only from files (a missing ImageNet file is an error that says where to
put it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from dispersion_score.locks import DirectoryLockedError, directory_lock
from experiments.cluster_classifier import (
    build_classifier,
    cached_weights_file,
    classify,
    load_classifier,
    train_classifier,
    weights_label,
)
from models.training import CheckpointError, RunDirectoryError

SETTINGS = {
    "arch": "resnet18",
    "weights": "none",
    "epochs": 4,
    "batch_size": 4,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "milestones": [3],
    "gamma": 0.1,
    "seed": 1,
    "checkpoint_every": 1,
    "num_workers": 0,
    "num_classes": 2,
}


class Colours(Dataset):
    """Class 0: reddish 32×32 images, class 1: bluish ones (plus seeded noise)."""

    def __init__(self, n: int = 8, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.labels = np.arange(n) % 2
        base = np.where(self.labels[:, None] == 0, [[0.9, 0.1, 0.1]], [[0.1, 0.1, 0.9]])
        images = base[:, :, None, None] * 0.7 + 0.3 * rng.random((n, 3, 32, 32))
        self.images = torch.from_numpy(images.astype(np.float32))

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> torch.Tensor:
        return self.images[index]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # bit-identical resumption


def test_learns_a_separable_task(tmp_path: Path) -> None:
    data = Colours()
    train_classifier(tmp_path / "c", data, data.labels, {**SETTINGS, "epochs": 8, "milestones": [6]})
    model, settings = load_classifier(tmp_path / "c")
    np.testing.assert_array_equal(classify(model, Colours(seed=1)), Colours(seed=1).labels)  # unseen noise
    assert settings["train_accuracy"] == 1.0
    log = (tmp_path / "c" / "train.log").read_text()
    assert "epoch 8/8" in log and not (tmp_path / "c" / "checkpoint.pt").exists()


def test_resumed_training_equals_uninterrupted_training(tmp_path: Path) -> None:
    data = Colours()
    train_classifier(tmp_path / "whole", data, data.labels, SETTINGS)
    train_classifier(tmp_path / "parts", data, data.labels, SETTINGS, stop_after_epochs=2)
    assert (tmp_path / "parts" / "checkpoint.pt").exists() and not (tmp_path / "parts" / "done").exists()
    train_classifier(tmp_path / "parts", data, data.labels, {**SETTINGS, "checkpoint_every": 3})  # resume
    whole = load_classifier(tmp_path / "whole")[0].state_dict()
    parts = load_classifier(tmp_path / "parts")[0].state_dict()
    assert all(torch.equal(whole[key], parts[key]) for key in whole)
    assert "resumed after epoch 2" in (tmp_path / "parts" / "train.log").read_text()


def test_other_settings_are_refused(tmp_path: Path) -> None:
    data = Colours()
    train_classifier(tmp_path / "c", data, data.labels, SETTINGS, stop_after_epochs=1)
    with pytest.raises(RunDirectoryError, match=r"config.yaml holds a different config \(differs at: lr\)"):
        train_classifier(tmp_path / "c", data, data.labels, {**SETTINGS, "lr": 1e-2})
    # Without config.yaml the checkpoint's own settings still refuse it.
    (tmp_path / "c" / "config.yaml").unlink()
    with pytest.raises(CheckpointError, match="checkpoint.pt is incompatible with this run: .* different config"):
        train_classifier(tmp_path / "c", data, data.labels, {**SETTINGS, "lr": 1e-2})
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        train_classifier(tmp_path / "d", data, data.labels + 1, SETTINGS)


# --- one training protocol (models.training): the run lock and the config check of a finished classifier ------


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "classifier.pt", weights_only=True)["model"]


def test_a_finished_classifier_is_reused_refused_or_retrained_like_a_training_run(tmp_path: Path) -> None:
    data, folder = Colours(), tmp_path / "c"
    other = {**SETTINGS, "epochs": 2, "milestones": [1]}
    train_classifier(tmp_path / "other", data, data.labels, other)
    train_classifier(folder, data, data.labels, SETTINGS)
    assert (folder / "config.yaml").is_file() and (folder / "done").is_file()
    assert [json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    written = (folder / "classifier.pt").stat().st_mtime_ns
    # The same settings (those that do not change the weights may differ): reused, not trained again.
    train_classifier(folder, data, data.labels, {**SETTINGS, "checkpoint_every": 2, "num_workers": 1})
    assert (folder / "classifier.pt").stat().st_mtime_ns == written
    # Other settings: refused, the folder untouched; with force: trained again, as a fresh folder would be.
    with pytest.raises(RunDirectoryError, match=r"differs at: epochs, milestones\); .*force=True"):
        train_classifier(folder, data, data.labels, other)
    assert (folder / "classifier.pt").stat().st_mtime_ns == written
    train_classifier(folder, data, data.labels, other, force=True)
    expected, retrained = _weights(tmp_path / "other"), _weights(folder)
    assert all(torch.equal(expected[key], retrained[key]) for key in expected)
    assert "epoch 4/4" not in (folder / "train.log").read_text()  # the old run's files were cleared


def test_a_damaged_classifier_is_trained_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, folder = Colours(), tmp_path / "c"
    train_classifier(folder, data, data.labels, SETTINGS)
    expected = _weights(folder)
    content = bytearray((folder / "classifier.pt").read_bytes())
    content[-100] ^= 1
    (folder / "classifier.pt").write_bytes(bytes(content))
    with pytest.raises(CheckpointError, match="not the one its training wrote"):
        load_classifier(folder)
    train_classifier(folder, data, data.labels, SETTINGS)
    assert "training the classifier again" in capsys.readouterr().err
    retrained = load_classifier(folder)[0].state_dict()
    assert all(torch.equal(expected[key], retrained[key]) for key in expected)


def test_a_classifier_finished_before_config_yaml_is_checked_against_its_final_file(tmp_path: Path) -> None:
    data, folder = Colours(), tmp_path / "c"
    train_classifier(folder, data, data.labels, SETTINGS)
    (folder / "config.yaml").unlink()  # as the classifier's own loop left its folders
    train_classifier(folder, data, data.labels, SETTINGS)  # reused
    with pytest.raises(RunDirectoryError, match=r"classifier.pt holds a different config \(differs at: lr\)"):
        train_classifier(folder, data, data.labels, {**SETTINGS, "lr": 1e-2})


def test_one_process_at_a_time_trains_a_classifier_folder(tmp_path: Path) -> None:
    data, folder = Colours(), tmp_path / "c"
    with directory_lock(folder, what="another classifier training"):
        with pytest.raises(DirectoryLockedError, match=f"pid {os.getpid()}"):
            train_classifier(folder, data, data.labels, SETTINGS)
    assert not list(folder.iterdir())  # nothing written, the lock file gone with the lock
    train_classifier(folder, data, data.labels, SETTINGS, stop_after_epochs=1)
    assert (folder / "checkpoint.pt").is_file()


def test_missing_imagenet_weights_say_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    from torchvision.models import ResNet50_Weights

    expected = cached_weights_file(ResNet50_Weights.IMAGENET1K_V1)
    assert expected == tmp_path / "hub" / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    with pytest.raises(FileNotFoundError) as error:
        build_classifier("resnet50", "imagenet", 5, seed=0)
    message = str(error.value)
    assert str(expected) in message and ResNet50_Weights.IMAGENET1K_V1.url in message and "'none'" in message
    assert weights_label("resnet50", "imagenet") == "resnet50[imagenet1k_v1]"
    assert weights_label("resnet18", "none") == "resnet18[scratch]"


def test_weights_come_from_a_state_dict_file(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    torch.manual_seed(7)
    source = resnet18()
    path = tmp_path / "r18.pth"
    torch.save(source.state_dict(), path)
    model = build_classifier("resnet18", str(path), 3, seed=0)
    assert torch.equal(model.conv1.weight, source.conv1.weight) and model.fc.out_features == 3
    assert weights_label("resnet18", str(path)) == "resnet18[file:r18.pth]"
    with pytest.raises(ValueError, match="not a torchvision resnet50"):
        build_classifier("resnet50", str(path), 3, seed=0)
