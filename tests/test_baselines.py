"""The recognition baselines (experiments.baselines) on fake experiments whose answers are known by construction.

Each test declares a small experiment (axes ``a``: the training set, a data axis; ``seed``: not one) over a fake
dataset of tiny asymmetric clouds and PNG images written here, runs the generic runner's steps, and checks the
prediction files and the table against answers known by construction or computed by a naive reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from dataset.base import DatasetBase
from dataset.registry import register_dataset, unregister_dataset
from dataset.shapenet.camera import camera_rotation
from dispersion_score import nearest_shapes
from dispersion_score.artefact import record_file
from experiments import runner
from experiments.baselines import (
    BASELINES,
    baseline_targets,
    clouds_of,
    clustering_predictor,
    label_training_items,
    nearest_features,
    oracle_predictor,
    retrieval_predictor,
)
from experiments.config import Preset, load_preset
from experiments.declaration import Axis, Experiment, InputMeasure
from experiments.prediction_files import read_predictions
from experiments.registry import EXPERIMENTS, register_experiment

POINTS = 48


def _shape(seed: int) -> np.ndarray:
    """An asymmetric unit-ball cloud (anisotropic Gaussian, centred, max norm 1)."""
    cloud = np.random.default_rng(seed).standard_normal((POINTS, 3)) * np.array([1.0, 0.6, 0.3])
    cloud -= cloud.mean(axis=0)
    return (cloud / np.linalg.norm(cloud, axis=1).max()).astype(np.float32)


@dataclass(frozen=True)
class Item:
    points: np.ndarray  # object frame
    image: Path
    rotation: np.ndarray | None = None  # world → camera, for viewer-centred splits


SPLITS: dict[str, tuple[str, list[Item]]] = {}  # index file name → (frame, items)


class FakeSplit(DatasetBase):
    """The dataset contract: points(i) (in the split's frame), image(i), image_path(i), rotation(i), frame."""

    def __init__(self, index_file: str) -> None:
        self.frame, self.items = SPLITS[index_file]

    def __len__(self) -> int:
        return len(self.items)

    def points(self, index: int) -> torch.Tensor:
        item = self.items[index]
        cloud = item.points if self.frame == "object" else item.points @ item.rotation.T
        return torch.from_numpy(np.ascontiguousarray(cloud, dtype=np.float32))

    def rotation(self, index: int) -> np.ndarray:
        return self.items[index].rotation

    def image_path(self, index: int) -> Path:
        return self.items[index].image

    def image(self, index: int) -> torch.Tensor:
        array = np.asarray(Image.open(self.items[index].image).convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(array.transpose(2, 0, 1).copy())

    def item_id(self, index: int) -> str:
        return f"item{index}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {"image": self.image(index), "points": self.points(index), "id": self.item_id(index)}
        if self.frame == "viewer":
            item["cam_rotmat"] = torch.from_numpy(self.rotation(index))
        return item


def _png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def _noise_image(path: Path, seed: int, colour: tuple[float, float, float] | None = None) -> Path:
    rng = np.random.default_rng(seed)
    base = np.array(colour if colour is not None else rng.random(3), dtype=np.float64)
    return _png(path, base[None, None, :] * 0.8 + 0.2 * rng.random((32, 32, 3)))


def _preset(tmp_path: Path, splits: dict[str, tuple[str, list[Item]]], predictors: tuple, **eval_: Any) -> Preset:
    """A fake experiment: grid a ∈ {1} (training set train<a>, a data axis) × seed ∈ {1, 2} (not a data axis)."""
    SPLITS.clear()
    SPLITS.update(splits)
    register_dataset("baseline_fake", lambda request: FakeSplit(request.index_file))
    register_experiment(
        "baseline_fake",
        lambda: Experiment(
            name="baseline_fake",
            axes=(Axis("a", int, "training set", label=lambda a: f"a{a}"), Axis("seed", int, "seed")),
            run_overrides=lambda point, preset: [f"data.train_file=train{point['a']}", f"seed={point['seed']}"],
            inputs=(InputMeasure("input_shape", ("a",)),),
            predictors=predictors,
            data_axes=("a",),
        ),
    )
    train_config = tmp_path / "train.yaml"
    train_config.write_text(
        yaml.safe_dump({"data": {"dataset": "baseline_fake", "root": str(tmp_path), "test_file": "test"}})
    )
    document = {
        "experiment": "baseline_fake",
        "preset": "tiny",
        "train_config": str(train_config),
        "runs_dir": str(tmp_path / "runs"),
        "results_dir": str(tmp_path / "results"),
        "grid": {"a": [1], "seed": [1, 2]},
        "ds": {"k": 2, "shape_points": POINTS, "image_weights": "random", "batch_size": 8, **eval_},
        "baselines": {"classifier": {"arch": "resnet18", "weights": "none", "epochs": 3, "batch_size": 4, "lr": 1e-3}},
    }
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_preset(path)


@pytest.fixture(autouse=True)
def _unregister() -> Any:
    # One thread: the tiny classifier steps are 5-10x slower with two threads on a shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    EXPERIMENTS.pop("baseline_fake", None)
    unregister_dataset("baseline_fake")
    SPLITS.clear()


def _run(preset: Preset) -> pd.DataFrame:
    """The runner's steps in this process (as tests/test_experiment_runner.py does)."""
    runner.measure_inputs(preset)
    for job in runner.output_jobs(preset):
        if not job.done_marker.exists():
            runner.evaluate_target(preset, job.command[job.command.index("--target") + 1])
    return runner.tabulate(preset)


def _naive_chamfer(a: np.ndarray, b: np.ndarray) -> float:
    d = ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(-1)
    return float(d.min(axis=1).mean() + d.min(axis=0).mean())


# ---------------------------------------------------------------------------------------------- targets


def test_one_target_per_data_point_named_after_it(tmp_path: Path) -> None:
    preset = _preset(tmp_path, {}, BASELINES)
    for factory in BASELINES:
        predictor = factory(preset)
        targets = baseline_targets(preset, predictor.name)
        assert [(t.name, dict(t.point), t.run) for t in targets] == [(f"{predictor.name}_a1", {"a": 1}, "a1_1")]
        assert predictor.targets(preset) == targets and not predictor.trains


def test_experiments_without_data_axes_are_refused(tmp_path: Path) -> None:
    preset = _preset(tmp_path, {}, BASELINES)
    undeclared = Experiment(name="x", axes=(Axis("a", int, "a"),), run_overrides=lambda p, preset: [])
    with pytest.raises(ValueError, match="declares no data_axes"):
        baseline_targets(Preset(undeclared, preset.config, preset.source), "oracle")
    with pytest.raises(ValueError, match=r"data_axes names unknown axes \['b'\]"):
        Experiment(name="x", axes=(Axis("a", int, "a"),), run_overrides=lambda p, preset: [], data_axes=("b",))


# ----------------------------------------------------------------------------------------------- oracle


def test_nearest_shapes_matches_a_naive_argmin() -> None:
    rng = np.random.default_rng(3)
    train = np.stack([_shape(s) for s in range(7)])
    test = train[[4, 0, 6, 2]] + 0.2 * rng.standard_normal((4, POINTS, 3)).astype(np.float32)
    naive = np.array([np.argmin([_naive_chamfer(t, r) for r in train]) for t in test])
    np.testing.assert_array_equal(nearest_shapes(test, train), naive)


def test_oracle_returns_the_known_nearest_training_shape(tmp_path: Path) -> None:
    shapes = [_shape(s) for s in range(5)]
    rng = np.random.default_rng(0)
    image = _noise_image(tmp_path / "img.png", 0)
    order = [3, 0, 4, 1]  # test item i is a slightly jittered copy of training shape order[i]
    splits = {
        "train1": ("object", [Item(shape, image) for shape in shapes]),
        "test": ("object", [Item(shapes[j] + 0.01 * rng.standard_normal((POINTS, 3)), image) for j in order]),
    }
    preset = _preset(tmp_path, splits, (oracle_predictor,))
    table = _run(preset)
    saved = read_predictions(preset.results_dir, "oracle_a1")
    assert saved.info["train_items"] == order and saved.info["distinct_shapes"] == 4
    assert "upper bound" in saved.info["note"]
    np.testing.assert_array_equal(saved.points, np.stack([shapes[j] for j in order]))
    row = table[table["predictor"] == "oracle"].iloc[0]
    assert row["a"] == 1 and pd.isna(row["seed"]) and row["n"] == 4
    gt = [item.points for item in splits["test"][1]]
    expected = np.mean([_naive_chamfer(shapes[j], g) for j, g in zip(order, gt, strict=True)])
    assert row["chamfer"] == pytest.approx(expected, rel=1e-4)


# -------------------------------------------------------------------------------------------- retrieval


def test_nearest_features_matches_a_naive_argmin() -> None:
    rng = np.random.default_rng(1)
    references = rng.standard_normal((40, 16)).astype(np.float32) + 100.0  # a large offset: no cancellation
    queries = references[[5, 17, 33]] + 0.01 * rng.standard_normal((3, 16)).astype(np.float32)
    naive = ((queries[:, None].astype(np.float64) - references[None]) ** 2).sum(-1).argmin(axis=1)
    np.testing.assert_array_equal(nearest_features(queries, references, block=2), naive)
    np.testing.assert_array_equal(naive, [5, 17, 33])


def test_retrieval_with_test_images_identical_to_training_images_returns_their_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shapes = [_shape(s) for s in range(5)]
    images = [_noise_image(tmp_path / "train" / f"{j}.png", seed=j) for j in range(5)]
    copies = {j: tmp_path / "test" / f"copy{j}.png" for j in range(5)}  # same pixels, other files
    for j, path in copies.items():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(images[j].read_bytes())
    order = [2, 4, 0, 3]
    splits = {
        "train1": ("object", [Item(shape, image) for shape, image in zip(shapes, images, strict=True)]),
        # the test shapes are unrelated to the images: retrieval sees only images
        "test": ("object", [Item(_shape(100 + j), copies[j]) for j in order]),
    }
    preset = _preset(tmp_path, splits, (retrieval_predictor,))
    table = _run(preset)
    saved = read_predictions(preset.results_dir, "retrieval_a1")
    assert saved.info["train_items"] == order
    assert saved.info["features"] == "vgg16_relu3_3_channelmax[random-weights]"
    np.testing.assert_array_equal(saved.points, np.stack([shapes[j] for j in order]))
    assert set(table["predictor"].dropna()) == {"retrieval"}
    # the features of both splits are cached: predicting again computes none
    for name in ("retrieval_a1.json", "retrieval_a1.npy"):
        (preset.results_dir / "predictions" / name).unlink()
    (preset.results_dir / "records" / "retrieval_a1_output.json").unlink()
    monkeypatch.setattr("experiments.baselines.perceptual_features", lambda *a, **k: pytest.fail("recomputed"))
    _run(preset)
    assert read_predictions(preset.results_dir, "retrieval_a1").info["train_items"] == order


# ------------------------------------------------------------------------------------------- clustering


def _two_cluster_splits(tmp_path: Path) -> dict[str, tuple[str, list[Item]]]:
    """Training items 0-2 are jittered copies of shape A with red images, items 3-5 of shape B with blue ones."""
    rng = np.random.default_rng(5)
    a, b = _shape(10), _shape(11)
    colours = [(1.0, 0.1, 0.1)] * 3 + [(0.1, 0.1, 1.0)] * 3
    train = [
        Item(base + 0.02 * rng.standard_normal((POINTS, 3)), _noise_image(tmp_path / f"t{j}.png", j, colours[j]))
        for j, base in enumerate([a, a, a, b, b, b])
    ]
    test = [Item(_shape(20 + j), _noise_image(tmp_path / f"q{j}.png", 50 + j, colours[j % 6])) for j in range(5)]
    return {"train1": ("object", train), "test": ("object", test)}


def test_clustering_reuses_the_stored_matrix_and_predicts_medoids_with_output_ds_zero(tmp_path: Path) -> None:
    preset = _preset(tmp_path, _two_cluster_splits(tmp_path), (clustering_predictor,))
    runner.measure_inputs(preset)
    # Replace the stored input-shape matrix by one whose clusters contradict the geometry ({0, 3, 4} and
    # {1, 2, 5} instead of {0, 1, 2} and {3, 4, 5}): medoids from the stored matrix prove that it is reused,
    # not recomputed from the clouds.
    matrix_file = preset.results_dir / "matrices" / "a1_input_shape.npy"
    group = np.array([0, 1, 1, 0, 0, 1])
    tampered = np.where(group[:, None] == group[None, :], 0.01, 1.0).astype(np.float32)
    np.fill_diagonal(tampered, 0.0)
    np.save(matrix_file, tampered)
    # Recorded as the measurement's matrix (as if the measurement had stored it): a matrix edited behind its
    # record's back is measured again instead (dispersion_score.artefact), which this test is not about.
    record = preset.results_dir / "records" / "a1_input_shape.json"
    document = json.loads(record.read_text())
    document["matrix_record"] = record_file(matrix_file).to_json()
    record.write_text(json.dumps(document))
    table = _run(preset)
    saved = read_predictions(preset.results_dir, "clustering_a1")
    medoids = saved.settings["classifier"]["medoids"]
    assert sorted(group[medoids]) == [0, 1]  # one medoid per stored cluster
    assert set(saved.info["train_items"]) <= set(medoids) and saved.info["k"] == 2
    train_clouds = clouds_of(runner.evaluation_split(preset, runner.run_config(preset, preset.runs[0]), "train"),
                             np.array(saved.info["train_items"]))  # fmt: skip
    np.testing.assert_array_equal(saved.points, train_clouds)
    row = table[table["predictor"] == "clustering"].iloc[0]
    # Output DS is exactly 0: the predictions are copies of at most k = 2 distinct clouds (the medoids), and
    # k-medoids with k = 2 puts a medoid on each distinct cloud (k-medoids++ never draws a second copy of a
    # chosen cloud: its distance, hence its probability, is 0), so every prediction is at distance 0.
    assert saved.info["distinct_shapes"] <= 2 and row["ds"] == 0.0 and row["inertia"] == 0.0
    folder = preset.runs_dir / "baselines" / "clustering_a1"
    assert (folder / "done").is_file() and (folder / "classifier.pt").is_file()
    assert saved.info["classifier"] == "resnet18[scratch]"


def test_items_outside_a_subsampled_matrix_get_the_nearest_medoid(tmp_path: Path) -> None:
    a, b = _shape(10), _shape(11)
    rng = np.random.default_rng(2)
    clouds = [base + 0.02 * rng.standard_normal((POINTS, 3)) for base in (a, b, a, a, b, b, a)]
    SPLITS["train"] = ("object", [Item(cloud, tmp_path / "unused.png") for cloud in clouds])
    train = FakeSplit("train")
    rows = np.array([0, 1, 4])  # a subsample: items 0, 1, 4 are matrix rows, labelled by k-medoids
    labels = label_training_items(train, rows, np.array([1, 0, 1]), medoids=np.array([1, 0]))
    # label 0 = medoid item 1 (b), label 1 = medoid item 0 (a). Rows keep their k-medoids labels, even one that
    # contradicts the geometry (item 4 is b-like, labelled 1); every other item gets its nearest medoid.
    np.testing.assert_array_equal(labels, [1, 0, 1, 1, 1, 0, 1])


def test_clustering_rerun_reuses_the_classifier_and_clusters(tmp_path: Path) -> None:
    preset = _preset(tmp_path, _two_cluster_splits(tmp_path), (clustering_predictor,))
    _run(preset)
    folder = preset.runs_dir / "baselines"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    for name in ("clustering_a1.json", "clustering_a1.npy"):
        (preset.results_dir / "predictions" / name).unlink()
    (preset.results_dir / "records" / "clustering_a1_output.json").unlink()
    _run(preset)
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_clusters_of_another_kmedoids_revision_are_computed_again(tmp_path: Path, monkeypatch) -> None:
    """The clustering baseline's cached k-medoids result is keyed by the k-medoids revision: clusters another
    revision computed are not reused (its medoids can differ for the same seed)."""
    from experiments import baselines

    preset = _preset(tmp_path, _two_cluster_splits(tmp_path), (clustering_predictor,))
    monkeypatch.setattr(baselines, "KMEDOIDS_REVISION", 1)
    _run(preset)
    clusters = preset.runs_dir / "baselines" / "clusters"
    assert [p.name.endswith("_rev1.npy") for p in clusters.glob("*.npy")] == [True]
    calls, original = [], baselines.kmedoids
    monkeypatch.setattr(baselines, "KMEDOIDS_REVISION", 2)
    monkeypatch.setattr(baselines, "kmedoids", lambda *a, **k: calls.append(1) or original(*a, **k))
    for name in ("clustering_a1.json", "clustering_a1.npy"):
        (preset.results_dir / "predictions" / name).unlink()
    _run(preset)
    assert calls and sorted(p.name[-8:] for p in clusters.glob("*.npy")) == ["rev1.npy", "rev2.npy"]
    assert read_predictions(preset.results_dir, "clustering_a1").info["kmedoids_revision"] == 2


# --------------------------------------------------------------------------------------- viewer-centred


def test_viewer_centred_baselines_predict_in_the_training_frame_and_rotate_back(tmp_path: Path) -> None:
    shapes = [_shape(s) for s in range(4)]
    rotations = [
        camera_rotation(azimuth, elevation) for azimuth, elevation in ((10, 20), (100, 25), (200, 28), (300, 22))
    ]
    images = [_noise_image(tmp_path / f"v{j}.png", 70 + j) for j in range(4)]
    train = [Item(s, im, r) for s, im, r in zip(shapes, images, rotations, strict=True)]
    order = [2, 0, 3, 1]  # test item i = training item order[i]: same shape, same view, same image
    splits = {"train1": ("viewer", train), "test": ("viewer", [train[j] for j in order])}
    preset = _preset(tmp_path, splits, BASELINES)
    table = _run(preset)
    object_gt = np.stack([shapes[j] for j in order])
    for name in ("oracle", "retrieval"):
        saved = read_predictions(preset.results_dir, f"{name}_a1")
        assert saved.info["predicted_frame"] == "viewer" and saved.info["train_items"] == order
        # viewer-frame training cloud S R_j^T, rotated back with the test item's R_j: the object-frame shape
        np.testing.assert_allclose(saved.points, object_gt, atol=1e-5)
    clustering = read_predictions(preset.results_dir, "clustering_a1")
    chosen = clustering.info["train_items"]
    expected = np.stack(
        [shapes[m] @ rotations[m].T @ rotations[j] for m, j in zip(chosen, order, strict=True)]
    )  # the medoid as seen from its own training view, rotated back with the test view
    np.testing.assert_allclose(clustering.points, expected, atol=1e-5)
    rows = table[table["measure"] == "output"].set_index("predictor")
    assert rows.loc["oracle", "chamfer"] == pytest.approx(0.0, abs=1e-6)
    assert rows.loc["oracle", "chamfer"] <= rows.loc["clustering", "chamfer"]


# ------------------------------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
def test_oracle_and_retrieval_searches_on_cuda_match_the_cpu() -> None:
    rng = np.random.default_rng(4)
    train = np.stack([_shape(s) for s in range(9)])
    test = train[[8, 1, 5]] + 0.05 * rng.standard_normal((3, POINTS, 3)).astype(np.float32)
    np.testing.assert_array_equal(nearest_shapes(test, train, device="cuda"), nearest_shapes(test, train))
    references = rng.standard_normal((50, 32)).astype(np.float32)
    queries = references[[3, 30]] + 0.01
    np.testing.assert_array_equal(nearest_features(queries, references, device="cuda"), [3, 30])
