"""The trainer: run directory contents, resume equivalence, skip / --force, checkpoint and config errors."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dataset.registry import SplitRequest, build_dataset, register_dataset, unregister_dataset
from dataset.toy import ToyShapesDataset
from models import build_model
from models.config import resolve_config
from models.engine import load_trained, predict_points, train
from models.training import CheckpointError, RunDirectoryError
from train_scripts.train import main as train_main

EPOCHS = 4
TINY = {
    "preset": "test",
    "seed": 3,
    "data": {"dataset": "toy", "root": ".", "train_file": "train:6", "val_file": "val:4", "num_points": 64,
             "image_size": 32},
    "model": {"bottleneck": 16, "atlasnet": {"hidden": 16, "sphere_level": 1}},  # predict: 42 points
    "train": {"epochs": EPOCHS, "batch_size": 4, "milestones": [2, 3]},
    "eval": {"every": 2},
    "run": {"checkpoint_every": 2, "progress": False},
}  # fmt: skip


def _config(**sections: dict) -> dict:
    config = copy.deepcopy(TINY)
    for name, values in sections.items():
        if isinstance(values, dict):
            config[name] = {**config.get(name, {}), **values}
        else:
            config[name] = values
    return config


# Resume equivalence is bit-exact at a fixed thread count (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(TINY, tmp_path_factory.mktemp("runs") / "uninterrupted")
    finally:
        torch.set_num_threads(threads)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "final.pt", map_location="cpu", weights_only=True)["model"]


def test_run_directory(finished_run: Path) -> None:
    run = finished_run
    for name in ("config.yaml", "metrics.jsonl", "train.log", "final.pt", "done"):
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*")), "no TensorBoard events"
    assert not (run / "checkpoint.pt").exists()  # removed once final.pt exists (run.keep_checkpoint false)
    assert yaml.safe_load((run / "config.yaml").read_text()) == resolve_config(TINY)

    metrics = _metrics(run)
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4]
    for m in metrics:
        assert set(m) == {"epoch", "train_loss", "val_chamfer", "val_fscore", "lr", "seconds"}
        assert m["train_loss"] > 0 and m["seconds"] > 0
    # eval.every = 2: epochs 2 and 4 validated, the others hold null.
    assert metrics[0]["val_chamfer"] is None and metrics[2]["val_fscore"] is None
    assert metrics[1]["val_chamfer"] > 0 and 0 <= metrics[3]["val_fscore"] <= 1
    # MultiStepLR at milestones [2, 3]: the rate used in each epoch.
    assert [m["lr"] for m in metrics] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5])

    log = (run / "train.log").read_text()
    assert len(re.findall(r" epoch \d+/4 train_loss ", log)) == EPOCHS and "finished" in log


def test_load_trained_and_predict_points(finished_run: Path) -> None:
    model, config = load_trained(finished_run, device="cpu")
    assert config == resolve_config(TINY)
    assert not model.training
    val = build_dataset(config, "val")
    predictions = predict_points(model, val, device="cpu", batch_size=3)
    assert predictions.shape == (4, 42, 3) and predictions.dtype == np.float32
    images = torch.stack([val[i]["image"] for i in range(len(val))])
    np.testing.assert_allclose(predictions, model.predict(images).numpy(), rtol=1e-5, atol=1e-6)
    # The final validation metric is the one of these predictions.
    from dispersion_score.chamfer import chamfer_distance

    points = torch.stack([val[i]["points"] for i in range(len(val))])
    chamfer = float(chamfer_distance(torch.from_numpy(predictions), points))
    assert chamfer == pytest.approx(_metrics(finished_run)[-1]["val_chamfer"], rel=1e-5)


def test_resume_gives_identical_weights(finished_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "interrupted"
    train(_config(run={"stop_after_epochs": 2}), run)
    assert (run / "checkpoint.pt").is_file() and not (run / "done").exists() and not (run / "final.pt").exists()
    assert len(_metrics(run)) == 2
    # A kill after epoch 3 but before its checkpoint leaves a metrics line that the resume must redo.
    with open(run / "metrics.jsonl", "a") as metrics:
        metrics.write(json.dumps({"epoch": 3, "train_loss": 123.0}) + "\n")
    train(_config(run={"checkpoint_every": 1}), run)  # `run` settings may differ on resume
    assert (run / "done").is_file()
    assert "resumed after epoch 2" in (run / "train.log").read_text()

    expected, resumed = _weights(finished_run), _weights(run)
    assert expected.keys() == resumed.keys()
    different = [name for name in expected if not torch.equal(expected[name], resumed[name])]
    assert not different, f"resumed run differs in {different}"
    strip = [{k: v for k, v in m.items() if k != "seconds"} for m in _metrics(run)]
    assert strip == [{k: v for k, v in m.items() if k != "seconds"} for m in _metrics(finished_run)]


def test_other_seed_gives_other_weights(finished_run: Path, tmp_path: Path) -> None:
    # Guards the resume test against passing trivially (e.g. weights that never change).
    run = train(_config(seed=4, train={"epochs": 1}), tmp_path / "seed4")
    first = _weights(run)
    assert not torch.equal(first["encoder.net.conv1.weight"], _weights(finished_run)["encoder.net.conv1.weight"])


def test_finished_run_is_skipped_unless_forced(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    (run / "job.log").write_text("a sweep's log\n")
    stamp = (run / "final.pt").stat().st_mtime_ns
    assert train(TINY, run) == run
    assert (run / "final.pt").stat().st_mtime_ns == stamp
    assert "skipping" in capsys.readouterr().out

    train(_config(train={"epochs": 1}, eval={"every": 1}), run, force=True)
    assert (run / "done").is_file() and (run / "final.pt").stat().st_mtime_ns != stamp
    assert [m["epoch"] for m in _metrics(run)] == [1]
    assert (run / "job.log").read_text() == "a sweep's log\n"  # not ours: kept


def test_other_config_in_run_directory_is_an_error(finished_run: Path, tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match=r"config\.yaml.*seed"):
        train(_config(seed=9), finished_run)
    run = tmp_path / "partial"
    train(_config(run={"stop_after_epochs": 1}), run)
    with pytest.raises(RunDirectoryError, match=r"data\.train_file"):
        train(_config(data={**TINY["data"], "train_file": "train:5"}), run)


@pytest.fixture
def stopped_run(tmp_path: Path) -> Path:
    run = tmp_path / "stopped"
    train(_config(run={"stop_after_epochs": 1}), run)
    assert (run / "checkpoint.pt").is_file()
    return run


def test_corrupt_checkpoint_names_the_file(stopped_run: Path) -> None:
    checkpoint = stopped_run / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated, as by a full disk
    with pytest.raises(CheckpointError, match=str(checkpoint)):
        train(TINY, stopped_run)
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=str(checkpoint)):
        train(TINY, stopped_run)
    # --force starts over instead.
    train(_config(train={"epochs": 1}), stopped_run, force=True)
    assert (stopped_run / "done").is_file()


def test_incompatible_checkpoint_names_the_file(stopped_run: Path) -> None:
    checkpoint = stopped_run / "checkpoint.pt"
    content = torch.load(checkpoint, weights_only=True)
    content["model"] = build_model({"model": {"name": "psgn", "bottleneck": 16}}).state_dict()
    torch.save(content, checkpoint)
    with pytest.raises(CheckpointError, match=str(checkpoint)):
        train(TINY, stopped_run)
    content["model"], content["config"] = {}, resolve_config(_config(seed=11))
    torch.save(content, checkpoint)
    with pytest.raises(CheckpointError, match="different config"):
        train(TINY, stopped_run)


def test_missing_final_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="final.pt"):
        load_trained(tmp_path)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(TINY))
    run = tmp_path / "cli"
    code = train_main(["--config", str(config_file), "--set", "train.epochs=1", "seed=5", "--out", str(run)])
    assert code == 0 and (run / "done").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 5
    assert train_main(["--config", str(config_file), "--set", "train.epochs=1", "seed=5", "--out", str(run)]) == 0
    assert "skipping" in capsys.readouterr().out
    assert train_main(["--config", str(config_file), "--set", "train.epoks=1", "--out", str(run)]) == 2
    assert "train.epoks" in capsys.readouterr().err
    assert train_main(["--config", str(config_file), "--set", "seed=6", "--out", str(run)]) == 2
    assert "--force" in capsys.readouterr().err


def test_dataset_registry(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data.dataset"):
        build_dataset(resolve_config(_config(data={**TINY["data"], "dataset": "nope"})), "train")
    seen: list[SplitRequest] = []

    def factory(request: SplitRequest) -> ToyShapesDataset:
        seen.append(request)
        return ToyShapesDataset(request.root, "train:2", num_points=request.num_points)

    register_dataset("spy", factory)
    try:
        config = resolve_config(_config(data={**TINY["data"], "dataset": "spy", "root": "rel/dir"}))
        assert len(build_dataset(config, "test")) == 2
    finally:
        unregister_dataset("spy")
    request = seen[0]
    assert request.root.is_absolute() and request.root.parts[-2:] == ("rel", "dir")  # relative to the repository root
    assert request.index_file == TINY["data"].get("test_file", "test.json")
    assert (request.dataset, request.split, request.options) == ("spy", "test", {})
    assert (request.num_points, request.image_size, request.normalization, request.seed) == (64, 32, "unit_ball", 0)


def test_cubesphere_is_wired(tmp_path: Path) -> None:
    pytest.importorskip("dataset.synthetic.dataset")
    from PIL import Image

    entries = []
    for index in range(2):
        folder = tmp_path / "instances" / f"train_{index:04d}"
        folder.mkdir(parents=True)
        Image.fromarray(np.full((40, 40, 3), 100 + 50 * index, dtype=np.uint8)).save(folder / "Isometric.png")
        np.save(folder / "points.npy", np.random.default_rng(index).normal(size=(300, 3)).astype(np.float32))
        relative = f"instances/train_{index:04d}"
        entries.append({"id": f"train_{index:04d}", "image": f"{relative}/Isometric.png",
                        "points": f"{relative}/points.npy", "mesh": f"{relative}/model.obj",
                        "t_image": index / 2, "t_shape": index / 2})  # fmt: skip
    (tmp_path / "train.json").write_text(json.dumps(entries))
    config = resolve_config(
        {
            "data": {
                "dataset": "cubesphere",
                "root": str(tmp_path),
                "train_file": "train.json",
                "num_points": 50,
                "image_size": 32,
            }
        }  # fmt: skip
    )
    item = build_dataset(config, "train")[1]
    assert item["image"].shape == (3, 32, 32) and item["points"].shape == (50, 3)
    assert float(item["points"].norm(dim=1).max()) <= 1 + 1e-5


@pytest.mark.cuda
def test_cuda_mixed_precision(tmp_path: Path) -> None:
    run = train(_config(train={"epochs": 1, "amp": True}), tmp_path / "cuda", device="cuda")
    model, _ = load_trained(run, device="cuda")
    assert next(model.parameters()).is_cuda
    assert np.isfinite(_metrics(run)[0]["train_loss"])


# --- issue 9: nothing written before the run starts; one-line errors for a broken run config --------------


def test_refused_start_leaves_nothing_that_blocks_the_corrected_command(tmp_path: Path, capsys) -> None:
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(_config(data={**TINY["data"], "dataset": "cubesphere", "root": "/nowhere"})))
    run = tmp_path / "run"
    assert train_main(["--config", str(config_file), "--out", str(run)]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (run / "config.yaml").exists()  # before: written, then "differs at: data.root ... --force"
    config_file.write_text(yaml.safe_dump(_config(train={"epochs": 1})))
    assert train_main(["--config", str(config_file), "--out", str(run)]) == 0
    assert (run / "done").is_file()


def test_broken_yaml_in_the_run_config_is_one_line(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 3\ndata:\n  root: [unclosed\n  num_points: 64\n")
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(TINY))
    assert train_main(["--config", str(config_file), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err  # before: PyYAML's 8-line message
    assert "config.yaml" in err and "line" in err and "--force" in err
    config_file.write_text("seed: 3\n  bad indent: [\n")
    assert train_main(["--config", str(config_file), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "tiny.yaml is not valid YAML" in err and "line 2" in err
